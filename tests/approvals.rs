//! The two-person rule (`[approvals] require = ["destroy", "import", "force"]`) on a real SoftHSM2
//! token and a real SQLite store: one admin cannot destroy, import or force a rotation alone; a
//! different admin client's approval carries the request out; self-approval, a second decision
//! and an expired approval are refused; a revocation is never held; the audit trail names both
//! admins; approvals live in the store (another service on it decides them); the CLI holds, lists,
//! approves and rejects.

mod common;

use axum::http::Method;
use common::local::{Local, cli, process_token};
use common::*;
use serde_json::{Value, json};

const SECOND: &str = "test-second-admin-token";

fn sets() -> Vec<Set<'static>> {
    vec![Set {
        name: "id",
        profile: "id_token",
        alg: "ES256",
        extra: "destroy_delay = \"0s\"",
    }]
}

/// A second admin client, and the rule on for every held kind.
fn edit(c: String) -> String {
    format!(
        "{c}\n[[client]]\nname = \"second\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\n\
         [approvals]\nrequire = [\"destroy\", \"import\", \"force\"]\nexpire = \"1h\"\n",
        sha256_hex(SECOND)
    )
}

fn active_and_next(local: &Local) -> (String, String) {
    let mut records = local.service.records("id");
    records.retain(|r| r.revoked_at.is_none());
    let now = local.service.now();
    let active = records.iter().rfind(|r| r.activate_at <= now).unwrap();
    let next = records.iter().find(|r| r.activate_at > now).unwrap();
    (active.kid.clone(), next.kid.clone())
}

/// Asserts a 202 with a pending approval of `action`; returns its id.
#[track_caller]
fn pending(answer: (u16, Value), action: &str) -> String {
    let (status, out) = answer;
    assert_eq!(status, 202, "{out}");
    let a = &out["approval"];
    assert_eq!(a["action"], action, "{out}");
    assert_eq!(
        (a["status"].as_str(), a["requested_by"].as_str()),
        (Some("pending"), Some("admin"))
    );
    assert_eq!(a["key_set"], "id");
    assert!(
        a["requested_at"].is_string() && a["expires_at"].is_string(),
        "{out}"
    );
    a["id"].as_str().unwrap().to_string()
}

#[track_caller]
fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(
        (answer.0, answer.1["code"].as_str()),
        (status, Some(code)),
        "{}",
        answer.1
    );
}

/// The tests of this binary share one SoftHSM token (common/local.rs). SoftHSM may never show
/// this process an object another process (`pkcs11-tool`) creates while this process destroys
/// one (its token generation check), so the test that imports such objects and the one that
/// destroys keys take turns.
static TOKEN_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn one_admin_cannot_destroy_import_or_force_alone() {
    let _turn = TOKEN_TURN.lock().await;
    let main = Local::start(&sets(), edit).await;
    let (a, b) = (Some(ADMIN_TOKEN), Some(SECOND));
    let (active, next) = active_and_next(&main);
    // Revoking is never held (the emergency path).
    let revoke = format!("/v1/key-sets/id/keys/{next}/revoke");
    let (status, out) = main.post(&revoke, a, &json!({"reason": "test"})).await;
    assert_eq!(status, 200, "{out}");

    // Destroy: checked at once (404/409 come now, not after approval), then held.
    let none = "/v1/key-sets/id/keys/nope";
    refused(
        main.call(Method::DELETE, none, a, None).await,
        404,
        "key_not_found",
    );
    let in_use = format!("/v1/key-sets/id/keys/{active}");
    refused(
        main.call(Method::DELETE, &in_use, a, None).await,
        409,
        "key_in_use",
    );
    let delete = format!("/v1/key-sets/id/keys/{next}");
    let id = pending(main.call(Method::DELETE, &delete, a, None).await, "destroy");
    assert!(main.in_token(&next).await, "held, not destroyed");
    let (status, list) = main.get("/v1/approvals", b).await;
    assert_eq!(status, 200);
    assert_eq!(list["approvals"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["approvals"][0]["kid"], next.as_str(), "{list}");

    // The requester cannot approve it; a different admin can, and it is carried out.
    let approve = format!("/v1/approvals/{id}/approve");
    refused(
        main.call(Method::POST, &approve, a, None).await,
        403,
        "self_approval",
    );
    let (status, out) = main.call(Method::POST, &approve, b, None).await;
    assert_eq!(status, 200, "{out}");
    assert!(out["destroyed_at"].is_string(), "{out}");
    assert!(!main.in_token(&next).await, "the private object is gone");
    refused(
        main.call(Method::POST, &approve, b, None).await,
        409,
        "approval_decided",
    );
    refused(
        main.call(Method::POST, "/v1/approvals/ab12/approve", b, None)
            .await,
        404,
        "approval_not_found",
    );
    assert_eq!(main.get("/v1/approvals", a).await.1["approvals"], json!([]));

    // The audit trail: requested by one, approved by the other, then the change itself.
    let events = main.service.audit_after(0, 1000).await.unwrap();
    let at = events
        .iter()
        .position(|e| e.action == "approval_approved")
        .unwrap();
    let detail: Value = serde_json::from_str(&events[at].detail).unwrap();
    assert_eq!(
        (events[at].actor.as_str(), &detail["requested_by"]),
        ("second", &json!("admin"))
    );
    assert_eq!(detail["approved_by"], "second");
    assert_eq!(detail["approval"], id.as_str());
    assert_eq!(events[at + 1].action, "destroyed");
    assert_eq!(events[at + 1].kid.as_deref(), Some(next.as_str()));
    assert!(
        events
            .iter()
            .any(|e| e.action == "approval_requested" && e.actor == "admin")
    );
    let refusal = events
        .iter()
        .find(|e| e.action == "refused" && e.detail.contains("self_approval"));
    assert!(
        refusal.is_some_and(|e| e.actor == "admin"),
        "self-approval attempt audited"
    );

    // A forced rotation is held; rejected, it can no longer be approved.
    let force = json!({"force": true});
    let id = pending(
        main.post("/v1/key-sets/id/rotate", a, &force).await,
        "rotate",
    );
    let (status, out) = main
        .post(&format!("/v1/approvals/{id}/reject"), b, &json!({}))
        .await;
    assert_eq!(
        (status, &out["approval"]["status"]),
        (200, &json!("rejected")),
        "{out}"
    );
    assert_eq!(out["approval"]["decided_by"], "second");
    let approve = format!("/v1/approvals/{id}/approve");
    refused(
        main.call(Method::POST, &approve, b, None).await,
        409,
        "approval_decided",
    );
    assert_eq!(
        active_and_next(&main).0,
        active,
        "a rejected rotation changes nothing"
    );

    // Approvals expire.
    let id = pending(
        main.post("/v1/key-sets/id/rotate", a, &force).await,
        "rotate",
    );
    main.clock.advance(3600);
    let approve = format!("/v1/approvals/{id}/approve");
    refused(
        main.call(Method::POST, &approve, b, None).await,
        409,
        "approval_expired",
    );
    assert_eq!(main.get("/v1/approvals", a).await.1["approvals"], json!([]));

    // Held in the store: another service on it (a replica, or after a restart) approves, and
    // the forced rotation happens.
    let id = pending(
        main.post("/v1/key-sets/id/rotate", a, &force).await,
        "rotate",
    );
    let (_, next) = active_and_next(&main);
    let replica = main.replica(&sets(), edit).await;
    replica.clock.set(main.service.now());
    let (status, out) = replica
        .call(
            Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            b,
            None,
        )
        .await;
    assert_eq!((status, &out["rotated_to"]), (200, &json!(next)), "{out}");

    // Import: a key pair that cannot be imported is refused at once; a good one is held, then
    // imported when approved.
    main.service.reload().await.unwrap(); // as every key_refresh: the replica's rotation
    let import = "/v1/key-sets/id/keys/import";
    let missing = json!({"label": "no-such-label"});
    refused(
        main.post(import, a, &missing).await,
        404,
        "hsm_key_not_found",
    );
    process_token().keypair("a9b0c001", "ceremony-approved", "EC:prime256v1", true);
    main.wait_for_keys(&["ceremony-approved"]).await;
    let id = pending(
        main.post(import, a, &json!({"label": "ceremony-approved"}))
            .await,
        "import",
    );
    let (status, out) = main
        .call(
            Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            b,
            None,
        )
        .await;
    assert_eq!((status, &out["origin"]), (201, &json!("imported")), "{out}");

    // A held import is carried out only on the key pair its requester saw: another key pair put
    // under the same label since is refused, not imported.
    let token = process_token();
    token.keypair("a9b0c002", "swapped", "EC:prime256v1", true);
    main.wait_for_keys(&["swapped"]).await;
    let id = pending(
        main.post(import, a, &json!({"label": "swapped"})).await,
        "import",
    );
    for kind in ["privkey", "pubkey"] {
        let out = token.pkcs11_tool(&["--delete-object", "--type", kind, "--label", "swapped"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let slot = &main.service.backends[0];
        let listed = (slot.with_backend(std::time::Duration::from_secs(5), |b| b.list_ids("")))
            .await
            .unwrap_or_default();
        if !listed.iter().any(|(_, label)| label == "swapped") {
            break;
        }
        assert!(std::time::Instant::now() < gone, "still listed: {listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    token.keypair("a9b0c003", "swapped", "EC:prime256v1", true);
    main.wait_for_keys(&["swapped"]).await;
    let approve = format!("/v1/approvals/{id}/approve");
    refused(
        main.call(Method::POST, &approve, b, None).await,
        409,
        "approval_stale",
    );

    // A forced revocation is not held either.
    let (active, _) = active_and_next(&main);
    let revoke = format!("/v1/key-sets/id/keys/{active}/revoke");
    let (status, out) = main
        .post(&revoke, a, &json!({"reason": "compromise", "force": true}))
        .await;
    assert_eq!(status, 200, "{out}");
    let verified = main.service.audit_verify().await.unwrap();
    assert!(verified.is_ok(), "{verified:?}");

    // A request left undecided: once it lapses, the scheduler records `approval_expired` with
    // its requester, and it can no longer be approved.
    let id = pending(
        main.post("/v1/key-sets/id/rotate", a, &force).await,
        "rotate",
    );
    main.clock.advance(3601);
    main.service.tick().await;
    let (status, out) = main.get("/v1/audit?after=0&limit=1000", a).await;
    assert_eq!(status, 200, "{out}");
    let of = |action: &str| {
        (out["events"].as_array().unwrap().iter())
            .find(|e| e["action"] == action && e["detail"]["approval"] == json!(id))
            .unwrap_or_else(|| panic!("no {action} of {id}: {out}"))
            .clone()
    };
    let (requested, expired) = (of("approval_requested"), of("approval_expired"));
    assert_eq!(
        expired["detail"]["requested_by"], requested["actor"],
        "{expired}"
    );
    assert_eq!(expired["key_set"], "id", "{expired}");
    refused(
        main.call(
            Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            b,
            None,
        )
        .await,
        409,
        "approval_expired",
    );
    let verified = main.service.audit_verify().await.unwrap();
    assert!(verified.is_ok(), "{verified:?}");
}

#[test]
fn unknown_actions_are_refused_at_start_up_naming_the_key() {
    let token = process_token();
    let dir = tempfile::tempdir().unwrap();
    let text = config(token, dir.path(), 1, &sets())
        + "\n[approvals]\nrequire = [\"destroy\", \"revoke\"]\n";
    let err = signet::config::Config::from_toml(&text, "two.toml", std::iter::empty()).unwrap_err();
    assert_eq!(
        (err.file.as_str(), err.key.as_str()),
        ("two.toml", "approvals.require[1]")
    );
    assert!(err.reason.contains("revoke"), "{}", err.reason);
}

/// The approval id a held CLI request prints (`... signet approvals approve <id>`).
#[track_caller]
fn held_id(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with("held for a second admin"))
        .unwrap_or_else(|| panic!("not held:\n{out}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_holds_lists_approves_and_rejects() {
    let _turn = TOKEN_TURN.lock().await;
    let main = Local::start(&sets(), edit).await;
    let base = main.serve().await;

    // A forced rotation by one admin is held (the CLI says so and names the approval); the
    // second admin rejects it and nothing changes.
    let before = active_and_next(&main);
    let (code, out, err) = cli(&base, ADMIN_TOKEN, &["keys", "rotate", "id", "--force"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = held_id(&out);
    let (code, out, _) = cli(&base, SECOND, &["approvals", "list"]).await;
    assert!(
        code == 0 && out.contains(&id) && out.contains("rotate"),
        "{out}"
    );
    let (code, out, err) = cli(&base, SECOND, &["approvals", "reject", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rejected"), "{out}");
    assert_eq!(active_and_next(&main), before);
    let (_, out, _) = cli(&base, SECOND, &["approvals", "list"]).await;
    assert!(out.contains("no pending approvals"), "{out}");

    // `keys destroy` is held; the requester's own approval is refused with the API's code; the
    // second admin's carries the destruction out.
    let next = before.1;
    let revoke = ["keys", "revoke", "id", &next, "--reason", "t"];
    let (code, out, err) = cli(&base, ADMIN_TOKEN, &revoke).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&base, ADMIN_TOKEN, &["keys", "destroy", "id", &next]).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = held_id(&out);
    assert!(main.in_token(&next).await, "held, not destroyed");
    let (code, out, err) = cli(&base, ADMIN_TOKEN, &["approvals", "approve", &id]).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("self_approval"), "{err}");
    let (code, out, err) = cli(&base, SECOND, &["approvals", "approve", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!main.in_token(&next).await, "destroyed on approval");
}
