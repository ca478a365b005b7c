use super::*;

pub(super) fn no_env() -> std::iter::Empty<(String, String)> {
    std::iter::empty()
}

fn repo_file(name: &str) -> (String, String) {
    let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    (std::fs::read_to_string(&path).unwrap(), path)
}

#[test]
fn reference_and_dev_configs_parse() {
    let (text, path) = repo_file("config/signet.toml");
    let c = Config::from_toml(&text, &path, no_env()).unwrap();
    assert_eq!(c.key_sets.len(), 3);
    assert_eq!(c.key_sets[2].alg, Algorithm::EdDsa);
    assert_eq!(c.hsms[0].pin, PinSource::Env("SIGNET_HSM_PIN".into()));
    assert_eq!(c.server.tls, None);
    assert_eq!(
        c.clients[0].quota.map(|q| (q.count, q.burst)),
        Some((500, 500))
    );

    let (text, path) = repo_file("config/dev.toml");
    let c = Config::from_toml(&text, &path, no_env()).unwrap();
    assert_eq!(
        c.server.listen,
        Listen::Tcp("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(c.store.url, "sqlite://var/signet.db");
    assert_eq!(c.hsms[0].token, TokenSelector::Label("signet-dev".into()));
    let sets: Vec<(&str, Profile, Algorithm)> = c
        .key_sets
        .iter()
        .map(|k| (k.name.as_str(), k.profile, k.alg))
        .collect();
    assert_eq!(
        sets,
        [
            ("id-token", Profile::IdToken, Algorithm::Ps256),
            ("access-token", Profile::AccessToken, Algorithm::Es256),
            ("jarm", Profile::Jarm, Algorithm::Es256),
            ("introspection", Profile::Introspection, Algorithm::Es256),
            ("logout-token", Profile::LogoutToken, Algorithm::Es256),
            ("http-responses", Profile::HttpMessage, Algorithm::EdDsa),
            ("oidc-ps256", Profile::IdToken, Algorithm::Ps256),
            ("oidc-es256", Profile::IdToken, Algorithm::Es256),
        ]
    );
    // The demo AS's key sets (scripts/demo-as) sign every JWT profile, for a loopback issuer.
    for k in &c.key_sets[6..] {
        assert_eq!(k.profiles.len(), 5);
        assert_eq!(k.issuer, "http://127.0.0.1:3000");
        assert_eq!(
            k.policy.activation_grace,
            std::time::Duration::from_secs(30)
        );
    }
    assert!(
        c.key_sets[..6]
            .iter()
            .all(|k| k.issuer == "https://as.example.test")
    );
    use sha2::Digest;
    let token = |t: &str| ClientAuth::TokenSha256(sha2::Sha256::digest(t.as_bytes()).into());
    assert_eq!(c.clients[0].auth, token("dev-signer-token"));
    assert_eq!(c.clients[0].role, Role::Signer);
    assert_eq!(c.clients[0].key_sets.as_ref().map(Vec::len), Some(8));
    assert_eq!(c.clients[1].auth, token("dev-admin-token"));
    assert_eq!(c.clients[1].role, Role::Admin);
}

pub(super) fn minimal(extra_set: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:8080"
issuer = "https://as.example.com"
jwks_max_age = "1h"
[store]
url = "sqlite://x.db"
[[hsm]]
name = "primary"
module = "/m.so"
token_label = "t"
pin_env = "PIN"
[[key_set]]
name = "id"
profile = "id_token"
alg = "PS256"
hsm = "primary"
rotation_period = "90d"
min_publish = "2h"
retain = "2h"
{extra_set}
"#
    )
}

pub(super) fn error(text: &str) -> ConfigError {
    Config::from_toml(text, "test.toml", no_env()).unwrap_err()
}

// Over 80 lines on purpose: one table of (config edit, key, reason) rows, one row per rule.
#[test]
fn errors_name_the_file_the_key_and_the_reason() {
    let base = minimal("");
    Config::from_toml(&base, "test.toml", no_env()).unwrap();
    let cases = [
        (
            base.replace("127.0.0.1:8080", "0.0.0.0:8080"),
            "server.listen",
            "loopback",
        ),
        (
            base.replace("127.0.0.1:8080", "nonsense"),
            "server.listen",
            "host:port",
        ),
        (
            base.replace("min_publish = \"2h\"", "min_publish = \"1h\""),
            "key_set[0].min_publish",
            "2 x",
        ),
        (
            base.replace("retain = \"2h\"", "retain = \"1h\""),
            "key_set[0].retain",
            "max_lifetime",
        ),
        (
            base.replace("rotation_period = \"90d\"", "rotation_period = \"2h\""),
            "key_set[0].rotation_period",
            "longer",
        ),
        (
            base.replace("rotation_period = \"90d\"", "rotation_period = \"soon\""),
            "key_set[0].rotation_period",
            "duration",
        ),
        (
            base.replace("alg = \"PS256\"", "alg = \"RS256\""),
            "key_set[0].alg",
            "fapi = false",
        ),
        (
            base.replace("alg = \"PS256\"", "alg = \"HS256\""),
            "key_set[0].alg",
            "HS256",
        ),
        (
            base.replace("profile = \"id_token\"", "profile = \"saml\""),
            "key_set[0].profile",
            "saml",
        ),
        (
            base.replace("hsm = \"primary\"", "hsm = \"backup\""),
            "key_set[0].hsm",
            "backup",
        ),
        (
            base.replace("hsm = \"primary\"", "hsm = [\"primary\", \"backup\"]"),
            "key_set[0].hsm",
            "backup",
        ),
        (
            base.replace("hsm = \"primary\"", "hsm = [\"primary\", \"primary\"]"),
            "key_set[0].hsm",
            "twice",
        ),
        (
            base.replace("hsm = \"primary\"", "hsm = []"),
            "key_set[0].hsm",
            "at least one",
        ),
        (
            base.replace("pin_env = \"PIN\"", "pin_env = \"PIN\"\ncontexts = 0"),
            "hsm[0].contexts",
            "between 1 and 64",
        ),
        (
            base.replace("pin_env = \"PIN\"", ""),
            "hsm[0].pin_env",
            "required",
        ),
        (
            base.replace("token_label = \"t\"", ""),
            "hsm[0].token_label",
            "required",
        ),
        (
            base.replace("https://as.example.com", "http://as.example.com"),
            "key_set[0].issuer",
            "https",
        ),
        (minimal("colour = \"red\""), "key_set[0]", "colour"),
        (base.replace("[store]", "[stor]"), "", "stor"),
        (
            format!(
                "{base}\n[[client]]\nname = \"c\"\nrole = \"signer\"\nkey_sets = [\"nope\"]\ntoken_sha256 = \"{}\"\n",
                "ab".repeat(32)
            ),
            "client[0].key_sets",
            "nope",
        ),
        (
            format!(
                "{base}\n[[client]]\nname = \"c\"\nrole = \"signer\"\nkey_sets = [\"id\"]\ntoken_sha256 = \"abc\"\n"
            ),
            "client[0].token_sha256",
            "64 hex",
        ),
        (
            format!("{base}\n[[client]]\nname = \"c\"\nrole = \"root\"\ntoken_sha256 = \"abc\"\n"),
            "client[0].role",
            "root",
        ),
        ("[server\n".to_string(), "(syntax)", ""),
    ];
    for (text, key, reason) in cases {
        let e = error(&text);
        assert_eq!(e.file, "test.toml");
        assert!(e.key.starts_with(key), "expected key {key}, got {e}");
        assert!(
            e.to_string().contains(reason),
            "expected `{reason}` in: {e}"
        );
    }
}

#[test]
fn policy_allows_short_demo_durations() {
    let text = minimal("max_lifetime = \"5s\"")
        .replace("jwks_max_age = \"1h\"", "jwks_max_age = \"1s\"")
        .replace("rotation_period = \"90d\"", "rotation_period = \"10s\"")
        .replace("min_publish = \"2h\"", "min_publish = \"2s\"")
        .replace("retain = \"2h\"", "retain = \"6s\"");
    let c = Config::from_toml(&text, "demo.toml", no_env()).unwrap();
    assert_eq!(
        c.key_sets[0].policy.rotation_period,
        Duration::from_secs(10)
    );
}

#[test]
fn a_key_set_names_several_backends_and_a_backend_several_contexts() {
    let text = minimal("")
        .replace("hsm = \"primary\"", "hsm = [\"backup\", \"primary\"]")
        .replace(
            "pin_env = \"PIN\"",
            "pin_env = \"PIN\"\ncontexts = 4\n[[hsm]]\nname = \"backup\"\nmodule = \"/b.so\"\n\
             token_label = \"t\"\npin_env = \"PIN\"",
        );
    let c = Config::from_toml(&text, "two.toml", no_env()).unwrap();
    assert_eq!(c.key_sets[0].hsms, vec![1, 0]);
    assert_eq!((c.hsms[0].contexts, c.hsms[1].contexts), (4, 1));
    let one = Config::from_toml(&minimal(""), "one.toml", no_env()).unwrap();
    assert_eq!(one.key_sets[0].hsms, vec![0]);
}

#[test]
fn environment_overrides_apply_before_validation() {
    let env = vec![
        (
            "SIGNET_SERVER__LISTEN".to_string(),
            "unix:/tmp/signet.sock".to_string(),
        ),
        (
            "SIGNET_KEY_SET__ID__ROTATION_PERIOD".to_string(),
            "30d".to_string(),
        ),
        ("SIGNET_HSM__PRIMARY__SESSIONS".to_string(), "0".to_string()),
    ];
    let e = Config::from_toml(&minimal(""), "t.toml", env.clone().into_iter()).unwrap_err();
    assert_eq!(e.key, "hsm[0].sessions");
    let c = Config::from_toml(&minimal(""), "t.toml", env.into_iter().take(2)).unwrap();
    assert_eq!(c.server.listen, Listen::Unix("/tmp/signet.sock".into()));
    assert_eq!(
        c.key_sets[0].policy.rotation_period,
        Duration::from_secs(30 * 86_400)
    );
}

#[test]
fn durations_format_in_config_units() {
    assert_eq!(format_duration(Duration::from_secs(90 * 86_400)), "90d");
    assert_eq!(format_duration(Duration::from_secs(3_900)), "1h5m");
    assert_eq!(format_duration(Duration::from_secs(30)), "30s");
}
