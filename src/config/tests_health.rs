//! `[server] health_interval`, `[store] grace`, `[[key_set]] allow_exposed_import` and `[audit] sink`: defaults,
//! values, environment overrides and errors that name the key.

use std::time::Duration;

use super::*;

fn base() -> String {
    super::tests::minimal("")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml", std::iter::empty())
}

#[test]
fn defaults() {
    let c = parse(&base()).unwrap();
    assert_eq!(c.server.health_interval, Duration::from_secs(2));
    assert_eq!(c.store.grace, Duration::from_secs(60));
    assert!(!c.key_sets[0].allow_exposed_import);
}

#[test]
fn values_and_overrides() {
    let text = base()
        .replace(
            "[store]",
            "health_interval = \"500ms\"\n[store]\ngrace = \"0s\"",
        )
        .replace(
            "retain = \"2h\"",
            "retain = \"2h\"\nallow_exposed_import = true",
        );
    let c = parse(&text).unwrap();
    assert_eq!(c.server.health_interval, Duration::from_millis(500));
    assert_eq!(c.store.grace, Duration::ZERO);
    assert!(c.key_sets[0].allow_exposed_import);
    let env = [("SIGNET_STORE__GRACE".to_string(), "2m".to_string())];
    let c = Config::from_toml(&text, "test.toml", env.into_iter()).unwrap();
    assert_eq!(c.store.grace, Duration::from_secs(120));
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (
            base().replace("[store]", "health_interval = \"0s\"\n[store]"),
            "server.health_interval",
            "greater than zero",
        ),
        (
            base().replace(
                "url = \"sqlite://x.db\"",
                "url = \"sqlite://x.db\"\ngrace = \"a while\"",
            ),
            "store.grace",
            "duration",
        ),
    ];
    for (text, key, reason) in cases {
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "expected `{reason}` in: {e}");
    }
}

#[test]
fn audit_sink() {
    assert_eq!(parse(&base()).unwrap().audit_sink, None);
    let with = |v: &str| parse(&format!("{}\n[audit]\nsink = \"{v}\"\n", base()));
    assert_eq!(with("stdout").unwrap().audit_sink, Some(AuditSink::Stdout));
    assert_eq!(
        with("file:/var/log/signet/audit.jsonl").unwrap().audit_sink,
        Some(AuditSink::File("/var/log/signet/audit.jsonl".into()))
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("audit.jsonl");
    std::fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
    let link = format!("file:{}", dir.path().join("link").display());
    for (bad, why) in [
        ("syslog", "neither"),
        ("file:", "needs a path"),
        ("file:/tmp", "is a directory"),
        ("file:/dev/null", "not a regular file"),
        (link.as_str(), "not a regular file"),
    ] {
        let e = with(bad).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.key.as_str()),
            ("test.toml", "audit.sink")
        );
        assert!(e.reason.contains(why), "{bad}: {}", e.reason);
    }
    // From the environment, as in a container.
    let env = [("SIGNET_AUDIT__SINK".to_string(), "stdout".to_string())];
    let c = Config::from_toml(&base(), "test.toml", env.into_iter()).unwrap();
    assert_eq!(c.audit_sink, Some(AuditSink::Stdout));
}
