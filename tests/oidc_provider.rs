//! Signet as the signer of a real FAPI 2.0 authorization server: the demo AS
//! (`integrations/oidc-provider/demo-as.js`, oidc-provider 9.13.3 with Signet's adapter) over a
//! running `signet` on a fresh SoftHSM2 token, driven by the certified RP library openid-client 6
//! (`e2e-driver.js`: PAR, PKCE S256, private_key_jwt, DPoP, JARM, ID token, JWT introspection).
//! Every JWT is verified by the driver with panva jose against the AS's JWKS and Signet's JWKS,
//! and here again with jsonwebtoken against Signet's JWKS, and found in Signet's audit trail.
//!
//! Node >= 20.19 and the npm packages of integrations/oidc-provider are needed: `node` on PATH,
//! `SIGNET_NODE`, or `var/node/bin/node` (all provided by `SIGNET_SETUP_TESTS=1 scripts/setup`).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SETS: [&str; 2] = ["oidc-ps256", "oidc-es256"];

/// The Node that runs the AS and the driver (see the module docs).
fn node() -> PathBuf {
    let candidates = [
        std::env::var_os("SIGNET_NODE").map(PathBuf::from),
        Some(PathBuf::from("node")),
        Some(repo().join("var/node/bin/node")),
    ];
    for c in candidates.into_iter().flatten() {
        let ok = Command::new(&c)
            .args(["-e", "const [a,b]=process.versions.node.split('.').map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c;
        }
    }
    panic!("no Node >= 20.19: run SIGNET_SETUP_TESTS=1 scripts/setup (or set SIGNET_NODE)");
}

fn integration() -> PathBuf {
    let dir = repo().join("integrations/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir()
            && dir.join("node_modules/openid-client").is_dir(),
        "npm packages missing: run SIGNET_SETUP_TESTS=1 scripts/setup (npm ci in {})",
        dir.display()
    );
    dir
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(token: &Token, dir: &std::path::Path, port: u16, issuer: &str) -> String {
    let extra =
        format!("issuer = \"{issuer}\"\naudit_signatures = true\nactivation_grace = \"30s\"");
    let sets = [
        Set {
            name: SETS[0],
            profile: "id_token",
            alg: "PS256",
            extra: &extra,
        },
        Set {
            name: SETS[1],
            profile: "id_token",
            alg: "ES256",
            extra: &extra,
        },
    ];
    let profiles =
        r#"profiles = ["id_token", "access_token", "jarm", "introspection", "logout_token"]"#;
    common::config(token, dir, port, &sets).replace("profile = \"id_token\"", profiles)
}

/// Starts the demo AS on `port` against Signet at `signet`; waits until it listens.
fn start_as(signet: &str, port: u16) -> Proc {
    let mut child = Command::new(node())
        .arg("demo-as.js")
        .current_dir(integration())
        .env("SIGNET_URL", signet)
        .env("SIGNET_TOKEN", SIGNER_TOKEN)
        .env("SIGNET_KEY_SETS", SETS.join(","))
        .env("KEY_REFRESH", "1000")
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo AS");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.contains("listening"),
        "the demo AS did not start: {first}"
    );
    std::thread::spawn(move || lines.for_each(|l| println!("demo AS: {}", l.unwrap_or_default())));
    Proc(child)
}

/// Runs the driver; its JSON lines arrive on the receiver.
fn drive(
    signet: &str,
    issuer: &str,
    flows: usize,
    concurrency: usize,
) -> (Proc, mpsc::Receiver<Value>) {
    let mut child = Command::new(node())
        .arg("e2e-driver.js")
        .current_dir(integration())
        .env("ISSUER", issuer)
        .env("SIGNET_URL", signet)
        .env("FLOWS", flows.to_string())
        .env("CONCURRENCY", concurrency.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the driver");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or(json!({"noise": line}));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    (Proc(child), rx)
}

/// Every flow line until the driver's summary.
fn collect(rx: &mpsc::Receiver<Value>, mut each: impl FnMut(&Value)) -> Vec<Value> {
    let mut flows = Vec::new();
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the driver goes on");
        if v["done"] == true {
            return flows;
        }
        if v.get("flow").is_some() {
            each(&v);
            flows.push(v);
        }
    }
}

async fn admin_get(signet: &Signet, path: &str) -> Value {
    signet
        .http
        .get(signet.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn active_kid(signet: &Signet, set: &str) -> String {
    let keys: Value = signet
        .http
        .get(signet.url(&format!("/v1/key-sets/{set}/signing-key")))
        .bearer_auth(SIGNER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys["active"]["kid"].as_str().unwrap().to_string()
}

/// Each JWT of a flow: verified against Signet's JWKS (jsonwebtoken), its signing input's SHA-256
/// in a `signed` audit event of its kid.
fn check_flow(flow: &Value, jwks: &Value, audited: &BTreeSet<(String, String)>) {
    assert_eq!(flow["ok"], true, "{flow}");
    for name in ["jarm", "id_token", "introspection"] {
        let jwt = flow["jwts"][name].as_str().unwrap();
        let (header, payload) = verify_jwt(jwt, jwks);
        assert_eq!(header["kid"], flow["kids"][name]["kid"]);
        assert!(payload["iss"].is_string());
        let input = jwt.rsplit_once('.').unwrap().0;
        let digest = sha256_hex(input);
        let kid = header["kid"].as_str().unwrap().to_string();
        assert!(
            audited.contains(&(kid, digest)),
            "{name} of flow {} not in the audit trail",
            flow["flow"]
        );
    }
    assert_eq!(flow["kids"]["id_token"]["alg"], "PS256");
    assert_eq!(flow["kids"]["jarm"]["alg"], "ES256");
    assert_eq!(flow["kids"]["introspection"]["alg"], "ES256");
}

async fn audited(signet: &Signet) -> (BTreeSet<(String, String)>, Vec<Value>) {
    let mut set = BTreeSet::new();
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = admin_get(signet, &format!("/v1/audit?after={after}&limit=1000")).await;
        let batch = page["events"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for e in batch {
            after = e["seq"].as_i64().unwrap();
            if e["action"] == "signed" {
                let kid = e["kid"].as_str().unwrap_or_default().to_string();
                set.insert((
                    kid,
                    e["detail"]["input_sha256"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
            events.push(e);
        }
    }
    (set, events)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fapi2_authorization_server_signs_every_token_with_signet() {
    let token = Token::new("oidc-e2e");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let as_port = free_port();
    let issuer = format!("http://127.0.0.1:{as_port}");
    let signet = Signet::start(
        &token,
        dir.path(),
        port,
        &config(&token, dir.path(), port, &issuer),
    )
    .await;
    let _as = start_as(&signet.base, as_port);

    // One flow: every JWT signed inside the HSM, verifying against both JWKS.
    let (_d, rx) = drive(&signet.base, &issuer, 1, 1);
    let first = collect(&rx, |_| {});
    let jwks = signet.get_json("/.well-known/jwks.json").await;
    let (trail, _) = audited(&signet).await;
    check_flow(&first[0], &jwks, &trail);

    // 50 flows, two at a time, with a forced rotation of both key sets after the 10th: no flow
    // fails, and the AS signs with the new keys within key_refresh.
    let old: Vec<String> = futures_kids(&signet).await;
    let (_d, rx) = drive(&signet.base, &issuer, 50, 2);
    let mut rotated_at = None;
    let mut count = 0;
    let flows = collect(&rx, |_| {
        count += 1;
        if count == 10 {
            rotated_at = Some(Instant::now());
            let base = signet.base.clone();
            std::thread::spawn(move || rotate_all(&base))
                .join()
                .unwrap();
        }
    });
    let failed: Vec<_> = flows.iter().filter(|f| f["ok"] != true).collect();
    assert!(
        failed.is_empty(),
        "flows failed across a forced rotation: {failed:?}"
    );
    assert_eq!(flows.len(), 50);
    let new: Vec<String> = futures_kids(&signet).await;
    assert!(
        old.iter().zip(&new).all(|(o, n)| o != n),
        "the rotation took place"
    );
    // Flows that started a key_refresh (1 s) and a margin after the rotation use the new keys.
    let since = rotated_at.expect("rotated").elapsed();
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(since)).await;
    let (_d, rx) = drive(&signet.base, &issuer, 2, 1);
    let late = collect(&rx, |_| {});
    for f in &late {
        assert_eq!(f["ok"], true, "{f}");
        assert_eq!(
            f["kids"]["id_token"]["kid"],
            new[0].as_str(),
            "the AS follows"
        );
        assert_eq!(f["kids"]["jarm"]["kid"], new[1].as_str(), "the AS follows");
    }
    let jwks = signet.get_json("/.well-known/jwks.json").await;
    let (trail, _) = audited(&signet).await;
    for f in &flows {
        check_flow(f, &jwks, &trail);
    }
    // The AS's JWKS publishes what Signet's does (active, next and retired keys of both sets), and
    // tokens signed before the rotation still verify from it.
    let as_jwks: Value = reqwest::get(format!("{issuer}/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kids(&as_jwks), kids(&jwks), "the AS's JWKS and Signet's");
    assert!(late[0]["jwts"]["id_token"].is_string());
    assert_eq!(
        kids(&jwks).len(),
        6,
        "active, next, retired of two sets: {jwks}"
    );
    for f in [&first[0], &flows[0]] {
        for name in ["jarm", "id_token", "introspection"] {
            verify_jwt(f["jwts"][name].as_str().unwrap(), &as_jwks);
        }
    }
    assert!(rotated_at.is_some());

    // Revoking the active PS256 key in the middle of 20 flows costs at most the token requests in
    // flight (two at a time), none is signed by the revoked key after its revocation, and the AS
    // signs with the new key within key_refresh (1 s).
    let (_d, rx) = drive(&signet.base, &issuer, 20, 2);
    let revoked = new[0].clone();
    let mut count = 0;
    let mut gone_at = None;
    let flows = collect(&rx, |_| {
        count += 1;
        if count == 5 {
            let (base, kid, iss) = (signet.base.clone(), revoked.clone(), issuer.clone());
            gone_at = std::thread::spawn(move || revoke(&base, &kid, &iss))
                .join()
                .unwrap();
        }
    });
    let gone = gone_at.expect("the revoked key left the AS's JWKS");
    assert!(
        gone < Duration::from_millis(2500),
        "the AS kept the revoked key {gone:?}"
    );
    let failed = flows.iter().filter(|f| f["ok"] != true).count();
    assert!(
        failed <= 2,
        "{failed} flows failed at a revocation: {flows:?}"
    );
    let (_, events) = audited(&signet).await;
    let revoked_seq = events
        .iter()
        .find(|e| e["action"] == "revoked" && e["kid"] == revoked.as_str())
        .map(|e| e["seq"].as_i64().unwrap())
        .expect("a revoked event");
    let signed_after = events
        .iter()
        .filter(|e| {
            e["action"] == "signed"
                && e["kid"] == revoked.as_str()
                && e["seq"].as_i64().unwrap() > revoked_seq
        })
        .count();
    assert_eq!(
        signed_after, 0,
        "the revoked key signed after its revocation"
    );
    let last = flows.last().unwrap();
    assert_eq!(last["ok"], true, "{last}");
    assert_ne!(last["kids"]["id_token"]["kid"], revoked.as_str());
}

async fn futures_kids(signet: &Signet) -> Vec<String> {
    let mut out = Vec::new();
    for set in SETS {
        out.push(active_kid(signet, set).await);
    }
    out
}

fn blocking_post(url: &str, body: &Value) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { post_json(&reqwest::Client::new(), url, Some(ADMIN_TOKEN), body).await })
}

fn rotate_all(base: &str) {
    for set in SETS {
        let (status, out) = blocking_post(
            &format!("{base}/v1/key-sets/{set}/rotate"),
            &json!({"force": true}),
        );
        assert_eq!(status, 200, "rotate {set}: {out}");
    }
}

/// Revokes `kid`; returns how long the AS at `issuer` went on publishing it (its keystore reads
/// Signet's schedule every key_refresh, and a revoked key is no longer in it).
fn revoke(base: &str, kid: &str, issuer: &str) -> Option<Duration> {
    let url = format!("{base}/v1/key-sets/{}/keys/{kid}/revoke", SETS[0]);
    let (status, out) = blocking_post(
        &url,
        &json!({"reason": "e2e: compromise drill", "force": true}),
    );
    assert_eq!(status, 200, "revoke: {out}");
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    while start.elapsed() < Duration::from_secs(10) {
        let jwks: Value = rt.block_on(async {
            let r = reqwest::get(format!("{issuer}/jwks")).await.unwrap();
            r.json().await.unwrap()
        });
        if !kids(&jwks).contains(kid) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}
