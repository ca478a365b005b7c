//! The audit sink (`[audit] sink = "file:<path>"`, DESIGN.md "State"): every event of the chain
//! as a JSON line, in chain order, exactly as `GET /v1/audit` gives it; `signet audit verify
//! --file` passes on it and finds an edited, deleted or moved line; a sink that cannot be written
//! shows in `/readyz` and, once it can, gets every event (none lost, none twice), also across a
//! restart. In process (common/local.rs): real SoftHSM and SQLite.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::local::Local;
use common::*;
use serde_json::{Value, json};

fn audited() -> Set<'static> {
    Set {
        name: "id",
        profile: "id_token",
        alg: "ES256",
        extra: "audit_signatures = true",
    }
}

fn with_sink(path: &Path) -> impl FnOnce(String) -> String {
    let path = path.display().to_string();
    move |c| format!("{c}\n[audit]\nsink = \"file:{path}\"\n")
}

async fn sign(local: &Local) {
    let now = local.service.now();
    let body = json!({"claims": claims_for("id_token", now)});
    let (status, out) = local
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;
    assert_eq!(status, 200, "{out}");
}

/// The whole trail through `GET /v1/audit`.
async fn trail(local: &Local) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let path = format!("/v1/audit?after={}&limit=1000", all.len());
        let (status, out) = local.get(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{out}");
        let events = out["events"].as_array().unwrap().clone();
        if events.is_empty() {
            return all;
        }
        all.extend(events);
    }
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until the file holds exactly the store's trail, in order.
async fn synced(local: &Local, path: &Path) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let expected = trail(local).await;
        let got = lines(path);
        if got == expected {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the sink file does not hold the trail:\nfile:  {got:?}\nstore: {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `signet audit verify --file`: exit code, stdout, stderr.
fn verify_file(path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["audit", "verify", "--file"])
        .arg(path)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// A copy of `lines` at `dir/name`, one JSON text a line.
fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sink_holds_the_chain_and_verify_file_finds_any_edit() {
    let siem = tempfile::tempdir().unwrap();
    let path = siem.path().join("audit.jsonl");
    let local = Local::start(&[audited()], with_sink(&path)).await;
    for _ in 0..3 {
        sign(&local).await;
    }
    local.clock.advance(130); // past min_publish
    let (status, out) = local
        .post("/v1/key-sets/id/rotate", Some(ADMIN_TOKEN), &json!({}))
        .await;
    assert_eq!(status, 200, "{out}");
    sign(&local).await;
    let events = synced(&local, &path).await;
    assert!(events.len() >= 6, "{events:?}");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());

    let (code, out, err) = verify_file(&path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("from the start of the chain"), "{out}");

    let text: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let fails_at = |name: &str, lines: Vec<String>, expected: &str| {
        let (code, out, err) = verify_file(&write_lines(siem.path(), name, &lines));
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(err.contains(expected), "{name}: {err}");
    };
    // A field changed (the client of a signature).
    let mut edited = text.clone();
    let mut third: Value = serde_json::from_str(&edited[2]).unwrap();
    third["actor"] = json!("mallory");
    edited[2] = third.to_string();
    fails_at(
        "edited",
        edited,
        "line 3 (seq 3): contents do not match its hash",
    );
    // A detail changed.
    let mut detail = text.clone();
    let mut fourth: Value = serde_json::from_str(&detail[3]).unwrap();
    fourth["detail"]["injected"] = json!(true);
    detail[3] = fourth.to_string();
    fails_at("detail", detail, "line 4 (seq 4)");
    // A line deleted.
    let mut deleted = text.clone();
    deleted.remove(1);
    fails_at("deleted", deleted, "line 2 (seq 2): missing");
    // Two lines swapped.
    let mut swapped = text.clone();
    swapped.swap(2, 3);
    fails_at("swapped", swapped, "line 3 (seq 3)");
    // Not an event at all.
    let mut garbage = text.clone();
    garbage[1] = "{\"seq\": 2".into();
    fails_at("garbage", garbage, "line 2: not a JSON event");

    // A file rotated by the SIEM starts mid-chain: checked from its first line's prev_hash.
    let rotated = write_lines(siem.path(), "rotated", &text[2..]);
    let (code, out, err) = verify_file(&rotated);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("starting mid-chain at seq 3"), "{out}");
    let mut rotated_edit = text[2..].to_vec();
    rotated_edit.swap(1, 2);
    fails_at("rotated-edit", rotated_edit, "line 2 (seq 4)");
}

async fn readyz(local: &Local) -> Value {
    let (status, body) = local.get("/readyz", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        status, 200,
        "signing goes on while the sink is down: {body}"
    );
    body
}

async fn wait_sink(local: &Local, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = readyz(local).await;
        if body["audit_sink"]["state"] == state {
            return body;
        }
        assert!(Instant::now() < deadline, "sink never {state}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_cannot_be_written_shows_in_readyz_and_loses_no_event() {
    let siem = tempfile::tempdir().unwrap();
    let dir = siem.path().join("siem");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let local = Local::start(&[audited()], with_sink(&path)).await;
    sign(&local).await;
    synced(&local, &path).await;
    assert_eq!(readyz(&local).await["status"], "ready");

    // The directory gone (a file in its place): the sink is down, the replica degraded.
    let away = siem.path().join("siem.away");
    std::fs::rename(&dir, &away).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    sign(&local).await;
    sign(&local).await;
    let body = wait_sink(&local, "down").await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["audit_sink"]["reason"]
            .as_str()
            .unwrap()
            .contains("audit.jsonl"),
        "{body}"
    );
    let (status, public) = local.get("/readyz", None).await;
    assert_eq!(
        (status, &public["audit_sink"]),
        (200, &json!("down")),
        "{public}"
    );
    sign(&local).await;

    // Back: every event written meanwhile follows, once each, in order.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&away, &dir).unwrap();
    wait_sink(&local, "up").await;
    synced(&local, &path).await;
    assert_eq!(readyz(&local).await["status"], "ready");
    let (code, out, err) = verify_file(&path);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_sink_resumes_after_the_last_line_of_its_file() {
    let siem = tempfile::tempdir().unwrap();
    let path = siem.path().join("audit.jsonl");
    let first = Local::start(&[audited()], with_sink(&path)).await;
    sign(&first).await;
    synced(&first, &path).await;
    // Events written while no replica streams (this one has no sink)...
    let other = first.replica(&[audited()], |c| c).await;
    drop(first);
    sign(&other).await;
    sign(&other).await;
    // ...and a last line cut short by a crash.
    let mut file = std::fs::read_to_string(&path).unwrap();
    file.push_str("{\"seq\": 99, \"hash\": \"ab");
    std::fs::write(&path, file).unwrap();
    let again = other.replica(&[audited()], with_sink(&path)).await;
    let events = synced(&again, &path).await;
    assert_eq!(events, trail(&other).await);
    let (code, out, err) = verify_file(&path);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_of_another_trail_is_never_appended_to() {
    let siem = tempfile::tempdir().unwrap();
    let path = siem.path().join("audit.jsonl");
    let first = Local::start(&[audited()], with_sink(&path)).await;
    sign(&first).await;
    synced(&first, &path).await;
    drop(first);
    let before = std::fs::read(&path).unwrap();
    // Another deployment (another store) pointed at the same file: its last line is not this
    // store's event of that seq.
    let other = Local::start(&[audited()], with_sink(&path)).await;
    sign(&other).await;
    let body = wait_sink(&other, "down").await;
    let reason = body["audit_sink"]["reason"].as_str().unwrap();
    assert!(reason.contains("another trail"), "{body}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
