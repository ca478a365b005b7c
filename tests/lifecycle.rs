//! Operator workflows end to end, through the real `signet keys` / `signet audit` CLI and the
//! admin API, against the service core in the test process (over a real SoftHSM2 token and
//! SQLite, see common/local.rs) served on a loopback port. Time moves by the service's manual
//! clock, not by sleeping.

mod common;

use std::process::Command;

use common::local::{Local, process_token};
use common::*;
use serde_json::{Value, json};

/// Keys that may sign two seconds after they are published.
fn fast(c: String) -> String {
    c.replace("jwks_max_age = \"60s\"", "jwks_max_age = \"1s\"")
        .replace("min_publish = \"2m\"", "min_publish = \"2s\"")
        .replace(
            "retain = \"1h2m\"",
            "retain = \"1h1s\"\ndestroy_delay = \"0s\"",
        )
}

/// The service and the base URL the CLI reaches it at.
struct Served {
    local: Local,
    base: String,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// The tests of this file run one at a time: they share the process's token, and SoftHSM may
/// not show this process a key `pkcs11-tool` makes while this process writes to the token too.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serve(sets: &[Set<'_>]) -> Served {
    let turn = ONE_AT_A_TIME.lock().await;
    let local = Local::start(sets, fast).await;
    let base = local.serve().await;
    Served {
        local,
        base,
        _turn: turn,
    }
}

/// Runs `signet <args>` as an operator: returns exit code, stdout, stderr.
async fn cli(signet: &Served, token: &str, args: &[&str]) -> (i32, String, String) {
    common::local::cli(&signet.base, token, args).await
}

async fn sign(signet: &Served) -> Value {
    let now = signet.local.service.now();
    let body =
        json!({"claims": {"iss": ISSUER, "sub": "a", "aud": "c", "iat": now, "exp": now + 60}});
    let (status, out) = signet
        .local
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;
    assert_eq!(status, 200, "{out}");
    out
}

/// `signet audit verify` fails, naming `row`.
async fn verify_fails_at(signet: &Served, row: usize) {
    let (code, _, err) = cli(signet, ADMIN_TOKEN, &["audit", "verify"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("BROKEN at row {row}:")),
        "expected row {row}: {err}"
    );
}

async fn get_json(signet: &Served, path: &str) -> Value {
    signet.local.get(path, None).await.1
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn private_ids() -> String {
    let out = process_token().pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_hands_over_at_once_and_destroy_keeps_the_public_key() {
    let signet = serve(&[set("id", "id_token", "ES256")]).await;
    let active = sign(&signet).await["kid"].as_str().unwrap().to_string();
    let jwks = get_json(&signet, "/v1/key-sets/id/jwks").await;
    let next = kids(&jwks).into_iter().find(|k| *k != active).unwrap();

    // The next key has been published for less than min_publish: refused without --force.
    let (code, _, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "revoke", "id", &active, "--reason", "test"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("min_publish_not_met"), "{err}");
    // A signer may not revoke; an unknown kid is 404.
    let (code, _, err) = cli(
        &signet,
        SIGNER_TOKEN,
        &["keys", "revoke", "id", &active, "--reason", "x"],
    )
    .await;
    assert!(code == 1 && err.contains("403"), "{err}");
    let (code, _, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "revoke", "id", "nope", "--reason", "x"],
    )
    .await;
    assert!(code == 1 && err.contains("key_not_found"), "{err}");

    signet.local.clock.advance(3);
    let (code, out, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &[
            "keys",
            "revoke",
            "id",
            &active,
            "--reason",
            "key compromised",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("promoted: {next}")), "{out}");

    // The very next request signs with the former next key; the JWKS no longer has the revoked kid.
    assert_eq!(sign(&signet).await["kid"], next);
    let jwks = get_json(&signet, "/v1/key-sets/id/jwks").await;
    let published = kids(&jwks);
    assert!(!published.contains(&active), "{jwks}");
    assert_eq!(published[0], next);
    assert_eq!(
        published.len(),
        2,
        "the new active key and a freshly generated next key"
    );
    let global = get_json(&signet, "/.well-known/jwks.json").await;
    assert!(!kids(&global).contains(&active));

    // The audit trail records it, with who and why.
    let (code, out, _) = cli(&signet, ADMIN_TOKEN, &["audit", "list", "--json"]).await;
    assert_eq!(code, 0);
    let events: Value = serde_json::from_str(&out).unwrap();
    let revoked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "revoked" && e["kid"] == active.as_str())
        .expect("a revoked event");
    assert_eq!(revoked["actor"], "admin");
    assert_eq!(revoked["detail"]["reason"], "key compromised");
    assert_eq!(revoked["detail"]["promoted"], next.as_str());
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "refused")
    );

    // Destroy: the active key is refused; the revoked one goes from the token, its JWK stays.
    let (code, _, err) = cli(&signet, ADMIN_TOKEN, &["keys", "destroy", "id", &next]).await;
    assert!(code == 1 && err.contains("key_in_use"), "{err}");
    assert!(private_ids().contains(&hex::encode(&active)));
    let (code, out, err) = cli(&signet, ADMIN_TOKEN, &["keys", "destroy", "id", &active]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !private_ids().contains(&hex::encode(&active)),
        "private object gone"
    );
    assert!(private_ids().contains(&hex::encode(&next)));
    let (_, out, _) = cli(&signet, ADMIN_TOKEN, &["keys", "list", "id", "--json"]).await;
    let list: Value = serde_json::from_str(&out).unwrap();
    let gone = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == active.as_str())
        .unwrap();
    assert_eq!(gone["state"], "revoked");
    assert!(gone["destroyed_at"].is_string());
    assert_eq!(
        gone["jwk"]["kid"],
        active.as_str(),
        "the public JWK is kept"
    );
    let (code, _, err) = cli(&signet, ADMIN_TOKEN, &["keys", "destroy", "id", &active]).await;
    assert!(code == 1 && err.contains("already_destroyed"), "{err}");

    // The table view works too.
    let (code, out, _) = cli(&signet, ADMIN_TOKEN, &["keys", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("KEY SET") && out.contains("revoked") && out.contains("active"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ceremony_key_made_with_pkcs11_tool_is_imported_published_and_signs() {
    let signet = serve(&[set("id", "id_token", "ES256")]).await;
    let generated_next = kids(&get_json(&signet, "/v1/key-sets/id/jwks").await)[1].clone();
    let token = process_token();

    token.keypair("c0ffee01", "ceremony-2026", "EC:prime256v1", true);
    token.keypair("c0ffee02", "careless", "EC:prime256v1", false);
    token.keypair("c0ffee03", "wrong-type", "rsa:2048", true);
    signet
        .local
        .wait_for_keys(&["ceremony-2026", "careless", "wrong-type"])
        .await;

    let (code, _, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "import", "id", "--id", "c0ffee02"],
    )
    .await;
    assert!(code == 1 && err.contains("key_not_protected"), "{err}");
    let (code, _, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "import", "id", "--label", "wrong-type"],
    )
    .await;
    assert!(code == 1 && err.contains("key_type_mismatch"), "{err}");
    let (code, _, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "import", "id", "--id", "deadbeef"],
    )
    .await;
    assert!(code == 1 && err.contains("hsm_key_not_found"), "{err}");

    let (code, out, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "import", "id", "--label", "ceremony-2026", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let imported: Value = serde_json::from_str(&out).unwrap();
    let kid = imported["kid"].as_str().unwrap().to_string();
    assert_eq!(imported["state"], "next");
    assert_eq!(imported["origin"], "imported");
    assert_eq!(imported["hsm_id"], "c0ffee01");
    // Imported keys are made sign-only.
    let listing = private_ids();
    let obj = listing
        .split("Private Key Object")
        .find(|o| o.contains("c0ffee01"))
        .unwrap();
    assert!(
        !obj.contains("decrypt") && !obj.contains("unwrap") && !obj.contains("derive"),
        "{obj}"
    );

    // Published at once as the one next key; the generated next key it replaces is revoked.
    let published = kids(&get_json(&signet, "/v1/key-sets/id/jwks").await);
    assert!(published.contains(&kid), "{published:?}");
    assert!(!published.contains(&generated_next), "{published:?}");
    assert_eq!(published.len(), 2);
    let (code, _, err) = cli(
        &signet,
        ADMIN_TOKEN,
        &["keys", "import", "id", "--id", "c0ffee01"],
    )
    .await;
    assert!(code == 1 && err.contains("key_exists"), "{err}");

    // Once published for min_publish, a rotation makes it sign.
    signet.local.clock.advance(3);
    let (code, out, err) = cli(&signet, ADMIN_TOKEN, &["keys", "rotate", "id"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("rotated to: {kid}")), "{out}");
    signet.local.clock.advance(1);
    let signed = sign(&signet).await;
    assert_eq!(signed["kid"], kid.as_str());
    let jwks = get_json(&signet, "/v1/key-sets/id/jwks").await;
    verify_jwt(signed["jwt"].as_str().unwrap(), &jwks);
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_or_deleting_an_audit_row_makes_verify_fail_at_that_row() {
    let audited = Set {
        name: "id",
        profile: "id_token",
        alg: "ES256",
        extra: "audit_signatures = true",
    };
    let signet = serve(&[audited, set("at", "access_token", "ES256")]).await;

    // Per-signature records: kid, key set, profile, client and a digest of the signing input only.
    let signed = sign(&signet).await;
    let jwt = signed["jwt"].as_str().unwrap();
    let input = jwt.rsplit_once('.').unwrap().0;
    let (_, out, _) = cli(&signet, ADMIN_TOKEN, &["audit", "list", "--json"]).await;
    let events: Value = serde_json::from_str(&out).unwrap();
    let record = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "signed")
        .unwrap();
    assert_eq!(record["kid"], signed["kid"]);
    assert_eq!(record["actor"], "signer");
    assert_eq!(record["detail"]["profile"], "id_token");
    assert_eq!(record["detail"]["input_sha256"], sha256_hex(input));
    assert!(
        !out.contains(input.split('.').nth(1).unwrap()),
        "the payload is never recorded"
    );

    let (code, out, err) = cli(&signet, ADMIN_TOKEN, &["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let n: usize = out
        .trim()
        .trim_start_matches("audit chain ok: ")
        .trim_end_matches(" events")
        .parse()
        .unwrap();
    assert!(n >= 4, "{out}");
    let (code, _, err) = cli(&signet, SIGNER_TOKEN, &["audit", "verify"]).await;
    assert!(code == 1 && err.contains("403"), "{err}");

    let db = signet.local.dir.path().join("signet.db");
    let sql = |q: &str| {
        let out = Command::new("sqlite3").arg(&db).arg(q).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Edit a row's contents.
    let original = sql("SELECT detail FROM audit WHERE seq = 3");
    sql("UPDATE audit SET detail = '{\"why\":\"nothing to see\"}' WHERE seq = 3");
    verify_fails_at(&signet, 3).await;
    sql(&format!(
        "UPDATE audit SET detail = '{}' WHERE seq = 3",
        original.replace('\'', "''")
    ));
    assert_eq!(
        cli(&signet, ADMIN_TOKEN, &["audit", "verify"]).await.0,
        0,
        "restored"
    );
    // Edit who did it, and re-hash the row: the next row's link breaks.
    sql("UPDATE audit SET actor = 'mallory' WHERE seq = 2");
    verify_fails_at(&signet, 2).await;
    sql("UPDATE audit SET actor = 'signet' WHERE seq = 2");
    // Delete the newest row (kept aside, then put back), then a row in the middle.
    let last: usize = sql("SELECT max(seq) FROM audit").parse().unwrap();
    sql(&format!(
        "CREATE TABLE kept AS SELECT * FROM audit WHERE seq = {last}"
    ));
    sql(&format!("DELETE FROM audit WHERE seq = {last}"));
    verify_fails_at(&signet, last).await;
    sql("INSERT INTO audit SELECT * FROM kept");
    assert_eq!(
        cli(&signet, ADMIN_TOKEN, &["audit", "verify"]).await.0,
        0,
        "restored"
    );
    sql("DELETE FROM audit WHERE seq = 2");
    verify_fails_at(&signet, 2).await;
    sql("DELETE FROM audit WHERE seq > 0");
    let (code, _, err) = cli(&signet, ADMIN_TOKEN, &["audit", "verify"]).await;
    assert_eq!(code, 1, "an emptied trail with a head is broken: {err}");
}
