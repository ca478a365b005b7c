//! `[server.tls]` and certificate-authenticated clients: what is allowed, and errors that name
//! their key.

use super::tests::{error, minimal, no_env};
use super::*;

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
