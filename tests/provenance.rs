//! Key provenance (DESIGN.md "Key provenance") and ambiguous token objects, against real
//! `pkcs11-tool` objects in SoftHSM2: a private key written into the token from a PEM file made
//! by `openssl` is refused on import with `key_material_exposed` unless both the key set and the
//! request opt in; listings and the audit trail show every key's `CKA_LOCAL`,
//! `CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE`; a `CKA_ID` or label that several objects
//! share is refused on import and reported by reconciliation; a recorded provenance that no
//! longer matches the token is reported. In process (common/local.rs), one test at a time (they
//! share the process's token).

mod common;

use common::local::{Local, cli, process_token};
use common::*;
use serde_json::{Value, json};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sets() -> Vec<Set<'static>> {
    vec![
        Set {
            name: "open",
            profile: "id_token",
            alg: "ES256",
            extra: "allow_exposed_import = true",
        },
        set("strict", "id_token", "ES256"),
    ]
}

async fn import(local: &Local, set: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/key-sets/{set}/keys/import");
    local.post(&path, Some(ADMIN_TOKEN), &body).await
}

async fn keys(local: &Local, set: &str) -> Vec<Value> {
    let path = format!("/v1/key-sets/{set}/keys");
    let (status, out) = local.get(&path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{out}");
    out["keys"].as_array().unwrap().clone()
}

async fn audit(local: &Local) -> Vec<Value> {
    let (status, out) = local.get("/v1/audit", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{out}");
    out["events"].as_array().unwrap().clone()
}

fn detail(event: &Value) -> Value {
    match &event["detail"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    }
}

fn all_true() -> Value {
    json!({"local": true, "always_sensitive": true, "never_extractable": true})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_written_from_a_pem_file_is_refused_unless_both_opt_in() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let local = Local::start(&sets(), |c| c).await;

    // Generated keys: all three attributes true, in the listing and in the audit trail.
    for set in ["open", "strict"] {
        let listed = keys(&local, set).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        for k in &listed {
            assert_eq!(k["origin"], "generated");
            assert_eq!(k["provenance"], all_true(), "{k}");
        }
    }
    let generated: Vec<Value> = audit(&local)
        .await
        .into_iter()
        .filter(|e| e["action"] == "key_generated")
        .collect();
    assert_eq!(generated.len(), 4);
    for e in &generated {
        assert_eq!(detail(e)["provenance"], all_true(), "{e}");
    }

    process_token().pem_keypair("c0ffee10", "from-pem");
    local.wait_for_keys(&["from-pem"]).await;
    let exposed = |what: &str, (status, out): (u16, Value)| {
        assert_eq!(
            (status, out["code"].as_str()),
            (400, Some("key_material_exposed")),
            "{what}: {out}"
        );
        let text = out["detail"].as_str().unwrap();
        assert!(text.contains("CKA_ALWAYS_SENSITIVE=false"), "{text}");
    };
    // The key set does not allow it: refused, with or without the request's opt-in.
    let by_id = json!({"id": "c0ffee10"});
    exposed("strict", import(&local, "strict", by_id.clone()).await);
    let accepting = json!({"id": "c0ffee10", "accept_exposed_material": true});
    exposed(
        "strict, accepting",
        import(&local, "strict", accepting.clone()).await,
    );
    // The same through the CLI's flag.
    let base = local.serve().await;
    let args = [
        "keys",
        "import",
        "strict",
        "--id",
        "c0ffee10",
        "--accept-exposed-material",
    ];
    let (code, _, err) = cli(&base, ADMIN_TOKEN, &args).await;
    assert!(code == 1 && err.contains("key_material_exposed"), "{err}");
    // The key set allows it, the request does not say so: refused.
    exposed("open", import(&local, "open", by_id).await);
    let refusals = audit(&local)
        .await
        .into_iter()
        .filter(|e| e["action"] == "refused" && detail(e)["code"] == "key_material_exposed")
        .count();
    assert_eq!(refusals, 4);
    assert_eq!(keys(&local, "open").await.len(), 2, "nothing was added");

    // Both opt in: adopted, and its provenance shown and audited.
    let (status, entry) = import(&local, "open", accepting).await;
    assert_eq!(status, 201, "{entry}");
    let exposed_provenance =
        json!({"local": false, "always_sensitive": false, "never_extractable": false});
    assert_eq!(entry["provenance"], exposed_provenance, "{entry}");
    let kid = entry["kid"].as_str().unwrap();
    let listed = keys(&local, "open").await;
    let row = listed.iter().find(|k| k["kid"] == kid).unwrap();
    assert_eq!(
        (&row["origin"], &row["provenance"]),
        (&json!("imported"), &exposed_provenance)
    );
    let imported = audit(&local)
        .await
        .into_iter()
        .find(|e| e["action"] == "imported" && e["kid"] == kid)
        .expect("an imported event");
    let d = detail(&imported);
    assert_eq!(d["provenance"], exposed_provenance, "{d}");
    assert_eq!(d["exposed_material_accepted"], true, "{d}");

    // A key made in the token by `pkcs11-tool --keypairgen` is local and never exposed: it needs
    // no opt-in, and says so.
    process_token().keypair("c0ffee11", "ceremony", "EC:prime256v1", true);
    local.wait_for_keys(&["ceremony"]).await;
    let (status, entry) = import(&local, "strict", json!({"label": "ceremony"})).await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["provenance"], all_true(), "{entry}");
    let imported = audit(&local)
        .await
        .into_iter()
        .find(|e| e["action"] == "imported" && e["kid"] == entry["kid"])
        .unwrap();
    assert_eq!(detail(&imported)["exposed_material_accepted"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_ids_and_labels_are_refused_and_reported() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let local = Local::start(&sets(), |c| c).await;
    let token = process_token();
    token.keypair("c0ffee21", "twin-label", "EC:prime256v1", true);
    token.keypair("c0ffee22", "twin-label", "EC:prime256v1", true);
    token.keypair("c0ffee23", "twin-id-a", "EC:prime256v1", true);
    token.keypair("c0ffee23", "twin-id-b", "EC:prime256v1", true);
    local
        .wait_for_keys(&["twin-label", "twin-id-a", "twin-id-b"])
        .await;

    for body in [json!({"label": "twin-label"}), json!({"id": "c0ffee23"})] {
        let (status, out) = import(&local, "strict", body.clone()).await;
        assert_eq!(
            (status, out["code"].as_str()),
            (409, Some("hsm_key_ambiguous")),
            "{body}: {out}"
        );
    }
    assert_eq!(keys(&local, "strict").await.len(), 2, "nothing was added");
    // One of the twins by its own CKA_ID is fine.
    let (status, out) = import(&local, "strict", json!({"id": "c0ffee21"})).await;
    assert_eq!(status, 201, "{out}");

    local.service.reconcile_now().await;
    let (status, ready) = local.get("/readyz", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{ready}");
    let ambiguous = &ready["reconciliation"]["ambiguous"];
    assert!(
        ambiguous
            .as_array()
            .unwrap()
            .contains(&json!({"hsm": "primary", "by": "cka_id", "value": "c0ffee23", "count": 2})),
        "{ambiguous}"
    );
    assert!(
        ambiguous
            .as_array()
            .unwrap()
            .contains(&json!({"hsm": "primary", "by": "label", "value": "twin-label", "count": 2})),
        "{ambiguous}"
    );
    let events = audit(&local).await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "hsm_objects_ambiguous"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation_reports_a_changed_provenance_and_records_a_missing_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let local = Local::start(&sets(), |c| c).await;
    let listed = keys(&local, "strict").await;
    let (changed, unrecorded) = (
        listed[0]["kid"].as_str().unwrap().to_string(),
        listed[1]["kid"].as_str().unwrap().to_string(),
    );
    let url = format!("sqlite://{}", local.dir.path().join("signet.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    // What Signet recorded no longer matches the token (as if the object had been swapped for
    // one written from a file), and one key is as a key stored before provenance was recorded.
    sqlx::query("UPDATE keys SET cka_local = 0, always_sensitive = 0 WHERE kid = ?")
        .bind(&changed)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE keys SET cka_local = NULL, always_sensitive = NULL, never_extractable = NULL \
         WHERE kid = ?",
    )
    .bind(&unrecorded)
    .execute(&db)
    .await
    .unwrap();
    local.service.reload().await.unwrap();
    let listed = keys(&local, "strict").await;
    let row = |kid: &str| listed.iter().find(|k| k["kid"] == kid).unwrap().clone();
    assert_eq!(row(&unrecorded)["provenance"], Value::Null);

    local.service.reconcile_now().await;
    let (_, ready) = local.get("/readyz", Some(ADMIN_TOKEN)).await;
    let reported = ready["reconciliation"]["provenance_changed"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(reported.len(), 1, "{ready}");
    assert_eq!(reported[0]["kid"], changed.as_str());
    assert_eq!(reported[0]["token"], all_true());
    assert_eq!(reported[0]["recorded"]["always_sensitive"], false);
    let events = audit(&local).await;
    let changed_event = events
        .iter()
        .find(|e| e["action"] == "provenance_changed")
        .expect("a provenance_changed event");
    assert_eq!(changed_event["kid"], changed.as_str());
    let recorded = events
        .iter()
        .find(|e| e["action"] == "provenance_recorded")
        .expect("a provenance_recorded event");
    assert_eq!(recorded["kid"], unrecorded.as_str());
    local.service.reload().await.unwrap();
    let listed = keys(&local, "strict").await;
    let row = listed.iter().find(|k| k["kid"] == unrecorded).unwrap();
    assert_eq!(row["provenance"], all_true(), "recorded by reconciliation");
}
