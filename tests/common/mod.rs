//! Test fixtures: a fresh SoftHSM2 token in a temporary directory, and the real `signet` binary
//! serving a config that points at it. Nothing here is mocked.
#![allow(dead_code)]

pub mod containers;
pub mod load;
pub mod local;
pub mod postgres;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PIN: &str = "4321";
pub const SIGNER_TOKEN: &str = "test-signer-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const LIMITED_TOKEN: &str = "test-limited-token";
pub const ISSUER: &str = "https://as.example.test";
pub const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A SoftHSM2 token of its own, in a temporary directory.
pub struct Token {
    pub dir: tempfile::TempDir,
    pub label: String,
}

impl Token {
    pub fn new(label: &str) -> Token {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new(repo().join("hsm/init-token"))
            .args([dir.path().to_str().unwrap(), label, PIN])
            .stderr(Stdio::null())
            .status()
            .expect("run hsm/init-token");
        assert!(status.success(), "hsm/init-token failed");
        Token {
            dir,
            label: label.to_string(),
        }
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// Runs `pkcs11-tool` logged in to this token.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .args([
                "--module",
                SOFTHSM,
                "--token-label",
                &self.label,
                "--login",
                "--pin",
                PIN,
            ])
            .args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .expect("run pkcs11-tool")
    }
}

impl Token {
    /// A key pair made with `pkcs11-tool --keypairgen` (a key ceremony's), `protect`ed
    /// (sensitive, private) or careless (extractable).
    pub fn keypair(&self, id: &str, label: &str, kind: &str, protect: bool) {
        let mut args = vec![
            "--keypairgen",
            "--key-type",
            kind,
            "--id",
            id,
            "--label",
            label,
        ];
        args.extend(if protect {
            ["--sensitive", "--private"]
        } else {
            ["--private", "--extractable"]
        });
        let out = self.pkcs11_tool(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Token {
    /// An EC P-256 key pair made by `openssl` on disk and written into the token under `id` /
    /// `label` with `pkcs11-tool --write-object ... --type privkey --sensitive` (and its public
    /// key): a software key whose bytes were outside the HSM.
    pub fn pem_keypair(&self, id: &str, label: &str) {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = (dir.path().join("key.pem"), dir.path().join("pub.pem"));
        let (key, public) = (key.to_str().unwrap(), public.to_str().unwrap());
        for args in [
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                key,
            ][..],
            &["pkey", "-in", key, "-pubout", "-out", public][..],
        ] {
            openssl(dir.path(), args);
        }
        for (file, kind, extra) in [
            (key, "privkey", &["--sensitive", "--private"][..]),
            (public, "pubkey", &[][..]),
        ] {
            let mut args = vec!["--write-object", file, "--type", kind, "--id", id];
            args.extend(["--label", label]);
            args.extend(extra);
            let out = self.pkcs11_tool(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Runs the `openssl` CLI in `dir`, which must succeed; its standard output.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed P-256 test CA made with the openssl CLI in `dir`: `ca.key`, `ca.pem`.
pub fn openssl_ca(dir: &Path) {
    let subject = ["-subj", "/CN=Test CA", "-days", "30"];
    let out = ["-keyout", "ca.key", "-out", "ca.pem"];
    let new = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(dir, &[&new[..], &subject, &out].concat());
}

/// The CA of [`openssl_ca`] in `dir` issues `leaf.pem` for the PEM CSR `csr`, valid `days`;
/// returns the leaf's PEM.
pub fn openssl_issue(dir: &Path, csr: &str, days: &str) -> String {
    std::fs::write(dir.join("leaf.csr"), csr).expect("write the CSR");
    let ca = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
    let req = [
        "x509", "-req", "-in", "leaf.csr", "-days", days, "-out", "leaf.pem",
    ];
    openssl(dir, &[&req[..], &ca].concat());
    std::fs::read_to_string(dir.join("leaf.pem")).expect("leaf.pem")
}

/// Valid claims for `profile` at `now`.
pub fn claims_for(profile: &str, now: i64) -> Value {
    match profile {
        "id_token" => {
            serde_json::json!({"iss": ISSUER, "sub": "alice", "aud": "client-1", "iat": now,
            "exp": now + 300, "nonce": "n-0S6_WzA2Mj"})
        }
        "access_token" => {
            serde_json::json!({"iss": ISSUER, "sub": "alice", "aud": "https://rs.example.test",
            "iat": now, "exp": now + 300, "jti": "at-1", "client_id": "client-1", "scope": "openid"})
        }
        "jarm" => {
            serde_json::json!({"iss": ISSUER, "aud": "client-1", "exp": now + 60, "code": "abc",
            "state": "s"})
        }
        "introspection" => {
            serde_json::json!({"iss": ISSUER, "aud": "https://rs.example.test", "iat": now,
            "token_introspection": {"active": true, "sub": "alice", "client_id": "client-1"}})
        }
        "logout_token" => {
            serde_json::json!({"iss": ISSUER, "aud": "client-1", "iat": now, "jti": "lo-1",
            "sub": "alice", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}})
        }
        _ => serde_json::json!({"iss": ISSUER, "anything": [1, 2, 3]}),
    }
}

/// One `[[key_set]]` of a test config.
pub struct Set<'a> {
    pub name: &'a str,
    pub profile: &'a str,
    pub alg: &'a str,
    /// Extra TOML lines (e.g. `fapi = false`).
    pub extra: &'a str,
}

pub fn set<'a>(name: &'a str, profile: &'a str, alg: &'a str) -> Set<'a> {
    Set {
        name,
        profile,
        alg,
        extra: "",
    }
}

/// A config for `token`, with a signer on every key set, a signer limited to the first key set,
/// and an admin.
pub fn config(token: &Token, dir: &Path, port: u16, sets: &[Set<'_>]) -> String {
    let mut c = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
issuer = "{ISSUER}"
jwks_max_age = "60s"
key_refresh = "1s"

[store]
url = "sqlite://{db}"

[[hsm]]
name = "primary"
module = "{SOFTHSM}"
token_label = "{label}"
pin_env = "SIGNET_HSM_PIN"
sessions = 4
op_timeout = "5s"
"#,
        db = dir.join("signet.db").display(),
        label = token.label,
    );
    for s in sets {
        c.push_str(&format!(
            r#"
[[key_set]]
name = "{}"
profile = "{}"
alg = "{}"
hsm = "primary"
rotation_period = "90d"
min_publish = "2m"
retain = "1h2m"
max_lifetime = "1h"
{}
"#,
            s.name, s.profile, s.alg, s.extra
        ));
    }
    let all: Vec<String> = sets.iter().map(|s| format!("\"{}\"", s.name)).collect();
    c.push_str(&format!(
        r#"
[[client]]
name = "signer"
role = "signer"
key_sets = [{}]
token_sha256 = "{}"

[[client]]
name = "limited"
role = "signer"
key_sets = [{}]
token_sha256 = "{}"

[[client]]
name = "admin"
role = "admin"
token_sha256 = "{}"
"#,
        all.join(", "),
        sha256_hex(SIGNER_TOKEN),
        all.first().cloned().unwrap_or_default(),
        sha256_hex(LIMITED_TOKEN),
        sha256_hex(ADMIN_TOKEN),
    ));
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `signet serve`.
pub struct Signet {
    child: Option<Child>,
    pub base: String,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub http: reqwest::Client,
    conf: PathBuf,
    env: Vec<(String, String)>,
}

impl Signet {
    /// Writes `config` to `dir/signet.toml` and starts the service on `port` with `token`.
    pub async fn start(token: &Token, dir: &Path, port: u16, config: &str) -> Signet {
        Self::start_with_env(token, dir, port, config, &[]).await
    }

    /// As [`Signet::start`], with extra environment variables for the service.
    pub async fn start_with_env(
        token: &Token,
        dir: &Path,
        port: u16,
        config: &str,
        env: &[(&str, &str)],
    ) -> Signet {
        let config_path = dir.join("signet.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut s = Signet {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            config_path,
            log_path: dir.join("signet.log"),
            http: reqwest::Client::new(),
            conf: token.conf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn().await;
        s
    }

    /// Writes `config` to `dir/signet.toml` and starts the service without waiting for it, for
    /// listeners the plain `http` client cannot reach (TLS with a test CA, a Unix socket): poll
    /// readiness with a client of your own, calling [`Signet::check_running`] in the loop.
    pub fn launch(token: &Token, dir: &Path, config: &str) -> Signet {
        let config_path = dir.join("signet.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut s = Signet {
            child: None,
            base: String::new(),
            config_path,
            log_path: dir.join("signet.log"),
            http: reqwest::Client::new(),
            conf: token.conf(),
            env: Vec::new(),
        };
        s.spawn_process();
        s
    }

    /// Panics with the log if the service has exited.
    pub fn check_running(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            panic!("signet exited with {status}:\n{}", self.log());
        }
    }

    /// Process id of the running service (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("signet is running").id()
    }

    async fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready().await;
    }

    fn spawn_process(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["--config", self.config_path.to_str().unwrap(), "serve"])
            .env("SOFTHSM2_CONF", &self.conf)
            .env("SIGNET_HSM_PIN", PIN)
            .env("RUST_LOG", "info,cryptoki=off")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn signet");
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("signet exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "signet not ready in 90 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process started last is still running (not exited or restarted).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the process with SIGKILL: no graceful shutdown, no lease release.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `/readyz` with its details (an admin credential): status and body.
    pub async fn readyz_details(&self) -> (u16, Value) {
        let r = (self.http.get(self.url("/readyz")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await;
        r.expect("the service answers").text().await.expect("text")
    }

    /// POSTs JSON with a bearer token; returns status and body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        post_json(&self.http, &self.url(path), token, body).await
    }
}

/// POSTs JSON to `url` with a bearer token; status and body (`Null` when it is not JSON).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = http.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("the service answers");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body)
}

impl Drop for Signet {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

/// Verifies a compact JWS with libraries independent of josekit (jsonwebtoken on aws-lc-rs, and
/// ed25519-dalek for the fully-specified `Ed25519`), using only the key `jwks` holds for its kid.
/// Returns the protected header and the payload as JSON.
pub fn verify_jwt(jwt: &str, jwks: &Value) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS: {jwt}");
    let header: Value = serde_json::from_slice(&b64url(parts[0])).unwrap();
    let kid = header["kid"].as_str().expect("kid in header");
    let alg = header["alg"].as_str().expect("alg in header");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS {jwks}"));
    assert_eq!(jwk["alg"], alg, "JWK alg and header alg");
    let payload: Value = serde_json::from_slice(&b64url(parts[1])).unwrap();
    if alg == "Ed25519" {
        use ed25519_dalek::Verifier;
        let x: [u8; 32] = b64url(jwk["x"].as_str().unwrap()).try_into().unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&b64url(parts[2])).unwrap();
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("Ed25519 signature verifies");
        return (header, payload);
    }
    let mut jwk = jwk.clone();
    jwk.as_object_mut().unwrap().remove("alg");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let alg: jsonwebtoken::Algorithm = alg.parse().unwrap();
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    validation.validate_exp = payload.get("exp").is_some();
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("{alg:?} JWT does not verify: {e}"));
    (header, payload)
}

/// A fresh token and a running `signet` serving `sets` on it with the standard test [`config`].
/// Keep the directory alive as long as the service.
pub async fn serve(label: &str, sets: &[Set<'_>]) -> (Token, tempfile::TempDir, Signet) {
    let token = Token::new(label);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let signet = Signet::start(
        &token,
        dir.path(),
        port,
        &config(&token, dir.path(), port, sets),
    )
    .await;
    (token, dir, signet)
}
