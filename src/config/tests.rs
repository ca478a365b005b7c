use super::*;

fn no_env() -> std::iter::Empty<(String, String)> {
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

fn minimal(extra_set: &str) -> String {
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

fn error(text: &str) -> ConfigError {
    Config::from_toml(text, "test.toml", no_env()).unwrap_err()
}

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

fn with_tls(extra_server: &str, clients: &str) -> String {
    let base = minimal("").replace(
        "[store]",
        &format!(
            "[server.tls]\ncert = \"/etc/signet/tls.crt\"\nkey = \"/etc/signet/tls.key\"\n{extra_server}\n[store]"
        ),
    );
    format!("{base}\n{clients}")
}

#[test]
fn tls_allows_any_address_and_certificate_clients() {
    let clients = r#"
[[client]]
name = "as"
role = "signer"
key_sets = ["id"]
cert_san = "spiffe://example.org/as"
rate = "500/s"

[[client]]
name = "worker"
role = "signer"
key_sets = ["*"]
cert_san = "Worker.Example.Org"
rate = "90/m"

[[client]]
name = "audit"
role = "auditor"
cert_subject = "audit.example.org"
rate = "10/s"
burst = 50
"#;
    let text = with_tls("client_ca = \"/etc/signet/clients.pem\"", clients)
        .replace("127.0.0.1:8080", "0.0.0.0:8443");
    let c = Config::from_toml(&text, "t.toml", no_env()).unwrap();
    assert_eq!(
        c.server.listen,
        Listen::Tcp("0.0.0.0:8443".parse().unwrap())
    );
    let tls = c.server.tls.as_ref().unwrap();
    assert_eq!(tls.cert, PathBuf::from("/etc/signet/tls.crt"));
    assert_eq!(
        tls.client_ca,
        Some(PathBuf::from("/etc/signet/clients.pem"))
    );
    assert_eq!(
        c.clients[0].auth,
        ClientAuth::CertSan("spiffe://example.org/as".into())
    );
    // DNS names compare case-insensitively.
    assert_eq!(
        c.clients[1].auth,
        ClientAuth::CertSan("worker.example.org".into())
    );
    assert_eq!(
        c.clients[2].auth,
        ClientAuth::CertSubject("audit.example.org".into())
    );
    let q = |i: usize| c.clients[i].quota.unwrap();
    assert_eq!(
        (q(0).count, q(0).per, q(0).burst),
        (500, Duration::from_secs(1), 500)
    );
    // 90/m is 1.5/s: default burst rounds up.
    assert_eq!(
        (q(1).count, q(1).per, q(1).burst),
        (90, Duration::from_secs(60), 2)
    );
    assert_eq!(q(2).burst, 50);
    assert!((q(1).per_second() - 1.5).abs() < 1e-9);

    // SIGNET_SERVER__TLS__<FIELD> overrides [server.tls].
    let env = vec![(
        "SIGNET_SERVER__TLS__CERT".to_string(),
        "/run/tls/new.crt".to_string(),
    )];
    let c = Config::from_toml(&text, "t.toml", env.into_iter()).unwrap();
    assert_eq!(
        c.server.tls.unwrap().cert,
        PathBuf::from("/run/tls/new.crt")
    );
}

#[test]
fn tls_and_client_errors_name_their_key() {
    let cert_client = "[[client]]\nname = \"as\"\nrole = \"signer\"\nkey_sets = [\"id\"]\n";
    let cases = [
        (
            with_tls("", &format!("{cert_client}cert_san = \"spiffe://x/as\"\n")),
            "client[0].cert_san",
            "client_ca",
        ),
        (
            format!("{}\n{cert_client}cert_subject = \"as\"\n", minimal("")),
            "client[0].cert_subject",
            "[server.tls]",
        ),
        (
            with_tls("", "").replace("127.0.0.1:8080", "unix:/run/s.sock"),
            "server.tls",
            "Unix socket",
        ),
        (
            with_tls("", "").replace("cert = \"/etc/signet/tls.crt\"", "cert = \"\""),
            "server.tls.cert",
            "PEM",
        ),
        (
            with_tls("", "").replace("key = \"/etc/signet/tls.key\"\n", ""),
            "server",
            "key",
        ),
        (
            with_tls(
                "client_ca = \"/ca.pem\"",
                &format!("{cert_client}cert_subject = \"as\"\nrate = \"5/h\"\n"),
            ),
            "client[0].rate",
            "500/s",
        ),
        (
            with_tls(
                "client_ca = \"/ca.pem\"",
                &format!("{cert_client}cert_subject = \"as\"\nrate = \"0/s\"\n"),
            ),
            "client[0].rate",
            "at least one",
        ),
        (
            with_tls(
                "client_ca = \"/ca.pem\"",
                &format!("{cert_client}cert_subject = \"as\"\nburst = 5\n"),
            ),
            "client[0].burst",
            "rate",
        ),
        (
            with_tls(
                "client_ca = \"/ca.pem\"",
                &format!(
                    "{cert_client}cert_subject = \"as\"\n\n[[client]]\nname = \"b\"\nrole = \"admin\"\ncert_subject = \"as\"\n"
                ),
            ),
            "client[1].cert_subject",
            "shares",
        ),
        (
            with_tls(
                "client_ca = \"/ca.pem\"",
                &format!("{cert_client}cert_subject = \"as\"\ncert_san = \"x\"\n"),
            ),
            "client[0].token_sha256",
            "exactly one",
        ),
    ];
    for (text, key, reason) in cases {
        let e = error(&text);
        assert!(e.key.starts_with(key), "expected key {key}, got {e}");
        assert!(
            e.to_string().contains(reason),
            "expected `{reason}` in: {e}"
        );
    }
}
