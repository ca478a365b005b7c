//! The `signet` command line as an operator uses it.

mod common;

use common::*;
use std::process::Command;

fn signet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .current_dir(repo())
        .env_remove("SIGNET_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for file in ["config/dev.toml", "config/signet.toml"] {
        let (code, out, err) = signet(&["--config", file, "check-config"]);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.contains("ok"), "{out}");
    }
}

#[test]
fn a_bad_config_names_file_key_and_reason_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(repo().join("config/dev.toml"))
        .unwrap()
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\"");
    std::fs::write(&path, text).unwrap();
    for cmd in ["check-config", "serve"] {
        let (code, _, err) = signet(&["--config", path.to_str().unwrap(), cmd]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("bad.toml: server.listen:"), "{err}");
        assert!(err.contains("loopback"), "{err}");
    }
    let (code, _, err) = signet(&["--config", "/nonexistent.toml", "check-config"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn hsm_info_shows_the_token_and_the_mechanisms() {
    let token = Token::new("cli-info");
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        set("id", "id_token", "PS256"),
        set("ed", "jarm", "EdDSA"),
        set("es", "access_token", "ES256"),
    ];
    let path = dir.path().join("signet.toml");
    std::fs::write(&path, config(&token, dir.path(), 1, &sets)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--config", path.to_str().unwrap(), "hsm", "info"])
        .env("SOFTHSM2_CONF", token.conf())
        .env("SIGNET_HSM_PIN", PIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("token `cli-info`"), "{stdout}");
    assert!(stdout.contains("logged in"), "{stdout}");
    for s in [
        "`id` (PS256): mechanisms ok",
        "`ed` (EdDSA): mechanisms ok",
        "`es` (ES256): mechanisms ok",
    ] {
        assert!(stdout.contains(s), "{s} in {stdout}");
    }
    // A wrong PIN is reported, not panicked on.
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--config", path.to_str().unwrap(), "hsm", "info"])
        .env("SOFTHSM2_CONF", token.conf())
        .env("SIGNET_HSM_PIN", "0000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("login failed"));
}
