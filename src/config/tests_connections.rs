//! The `[server]` connection keys: defaults, overrides, and errors that name file, key, reason.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::*;

const BASE: &str = r#"[server]
listen = "127.0.0.1:8080"
issuer = "https://as.example.com"
jwks_max_age = "1h"
[store]
url = "sqlite://x.db"
"#;

fn with(lines: &str) -> String {
    BASE.replace("[store]", &format!("{lines}\n[store]"))
}

fn parse(text: &str) -> Result<ConnectionLimits, ConfigError> {
    Config::from_toml(text, "test.toml", std::iter::empty()).map(|c| c.server.connections)
}

#[test]
fn defaults_are_safe() {
    let c = parse(BASE).unwrap();
    assert_eq!(
        c,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            drain: Duration::from_secs(5),
        }
    );
}

#[test]
fn keys_are_read_and_overridden_from_the_environment() {
    let text = with(
        "header_read_timeout = \"2s\"\nidle_timeout = \"1m\"\nmax_connections = 300\ndrain = \"0s\"",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.header_read_timeout, Duration::from_secs(2));
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.max_connections, NonZeroUsize::new(300));
    assert_eq!(c.drain, Duration::ZERO);
    let env = [(
        "SIGNET_SERVER__MAX_CONNECTIONS".to_string(),
        "64".to_string(),
    )];
    let c = Config::from_toml(&text, "test.toml", env.into_iter()).unwrap();
    assert_eq!(c.server.connections.max_connections, NonZeroUsize::new(64));
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (
            "header_read_timeout = \"0s\"",
            "server.header_read_timeout",
            "greater than zero",
        ),
        ("idle_timeout = \"soon\"", "server.idle_timeout", "duration"),
        (
            "max_connections = 0",
            "server.max_connections",
            "at least 1",
        ),
        ("max_connections = -5", "server.max_connections", ""),
        ("drain = \"5 parsecs\"", "server.drain", "duration"),
    ];
    for (line, key, reason) in cases {
        let e = parse(&with(line)).unwrap_err();
        assert_eq!(e.file, "test.toml");
        assert_eq!(e.key, key, "{e}");
        assert!(e.reason.contains(reason), "expected `{reason}` in: {e}");
    }
}
