//! `signet audit verify --file <path>`: checks a JSON-lines export of the audit trail (what the
//! `[audit] sink` writes) offline, with the store's own chain check (`keys::audit::verify_links`):
//! each line's hash recomputed from its fields, each line linked to the one before, seqs without
//! gaps. A file that starts at seq 1 is checked from the chain's genesis; one that starts later
//! (the SIEM rotated its files) from its first line's `prev_hash`, which the output says.
//! Nothing after the last line can be known from the file: compare its last seq and hash with
//! `GET /v1/audit` to know it is complete.

use std::io::{BufRead, Read};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::keys::audit::{AuditEvent, GENESIS, verify_links};
use crate::keys::audit_json;

/// Runs the check and prints its outcome (JSON with `json`); fails on the first bad line.
pub(crate) fn verify(path: &Path, json: bool) -> ExitCode {
    match check(path) {
        Ok(v) => {
            if json {
                println!("{v}");
            } else {
                println!("{}", v["summary"].as_str().unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(v) => {
            if json {
                println!("{v}");
            }
            eprintln!(
                "audit file BROKEN: {}",
                v["reason"].as_str().unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}

/// The longest line read: an audit event is a few hundred bytes; a longer line is refused
/// rather than read whole into memory.
const MAX_LINE: usize = 1 << 20;

fn broken(path: &Path, line: usize, seq: Option<i64>, reason: String) -> Value {
    let at = match seq {
        Some(s) => format!("line {line} (seq {s})"),
        None => format!("line {line}"),
    };
    json!({
        "ok": false, "file": path.display().to_string(), "line": line, "seq": seq,
        "reason": format!("{}: {at}: {reason}", path.display()),
    })
}

fn unreadable(path: &Path, reason: String) -> Value {
    json!({ "ok": false, "file": path.display().to_string(), "reason": format!("{}: {reason}", path.display()) })
}

/// The events of the file, line by line; the first line that is not one is the error.
fn read_events(path: &Path) -> Result<Vec<AuditEvent>, Value> {
    if path.is_dir() {
        return Err(unreadable(path, "is a directory, not an audit file".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, e.to_string()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = (reader.by_ref().take(MAX_LINE as u64 + 1))
            .read_until(b'\n', &mut buf)
            .map_err(|e| broken(path, n, None, format!("cannot be read: {e}")))?;
        if read == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE {
            let reason = format!("longer than {MAX_LINE} bytes: not an audit event");
            return Err(broken(path, n, None, reason));
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|e| broken(path, n, None, format!("not UTF-8 text: {e}")))?;
        let value: Value = serde_json::from_str(line)
            .map_err(|e| broken(path, n, None, format!("not a JSON event: {e}")))?;
        let seq = value.get("seq").and_then(Value::as_i64);
        events.push(audit_json::from_json(&value).map_err(|e| broken(path, n, seq, e))?);
    }
    Ok(events)
}

fn check(path: &Path) -> Result<Value, Value> {
    let events = read_events(path)?;
    let Some(first) = events.first() else {
        let reason = "no events: an empty file proves nothing (was it truncated?)".into();
        return Err(unreadable(path, reason));
    };
    let (first_seq, prev) = (first.seq, first.prev_hash.clone());
    let (start, from) = if first_seq == 1 {
        (
            GENESIS.to_string(),
            "from the start of the chain".to_string(),
        )
    } else {
        (
            prev.clone(),
            format!(
                "starting mid-chain at seq {first_seq}, after prev_hash {prev} as its first line \
                 says (earlier events are in an earlier file)"
            ),
        )
    };
    verify_links(&events, first_seq, &start)
        .map_err(|(i, brk)| broken(path, i + 1, Some(brk.seq), brk.reason))?;
    let last = events.last().map_or(first_seq, |e| e.seq);
    Ok(json!({
        "ok": true, "events": events.len(), "first_seq": first_seq, "last_seq": last,
        "mid_chain": first_seq != 1,
        "summary": format!(
            "audit file ok: {} events, seq {first_seq}..{last}, {from}; last hash {}",
            events.len(),
            events.last().map_or("", |e| e.hash.as_str())
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::audit::NewEvent;

    fn lines() -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=3)
            .map(|seq| {
                let ev = NewEvent::new(1_700_000_000 + seq, "admin", "revoked").set("id");
                let e = AuditEvent::seal(&ev, seq, &prev);
                prev = e.hash.clone();
                audit_json::to_json(&e).to_string()
            })
            .collect()
    }

    /// The error for a file of `body`: its reason names the file.
    fn fails(body: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, body).unwrap();
        let reason = check(&path).unwrap_err()["reason"]
            .as_str()
            .unwrap()
            .to_string();
        let named = format!("{}: ", path.display());
        assert!(reason.starts_with(&named), "{reason}");
        reason[named.len()..].to_string()
    }

    fn file(ls: &[&str]) -> Vec<u8> {
        ls.iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_whole_file_verifies() {
        let l = lines();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, file(&[&l[0], &l[1], &l[2]])).unwrap();
        assert_eq!(check(&path).unwrap()["events"], 3);
        std::fs::write(&path, file(&[&l[1], &l[2]])).unwrap();
        assert_eq!(check(&path).unwrap()["mid_chain"], true);
    }

    #[test]
    fn every_bad_file_names_the_file_and_the_line() {
        let l = lines();
        assert!(fails(b"").contains("no events"));
        let mut bad_utf8 = file(&[&l[0]]);
        bad_utf8.extend(b"{\"seq\":2,\"actor\":\"\xff\"}\n");
        assert!(fails(&bad_utf8).starts_with("line 2: not UTF-8"));
        let mut huge = file(&[&l[0]]);
        huge.extend(vec![b'a'; MAX_LINE + 10]);
        assert!(fails(&huge).starts_with("line 2: longer than"));
        let mut v: Value = serde_json::from_str(&l[1]).unwrap();
        v.as_object_mut().unwrap().remove("hash");
        let missing = fails(&file(&[&l[0], &v.to_string()]));
        assert!(
            missing.starts_with("line 2 (seq 2): `hash` is missing"),
            "{missing}"
        );
        let twice = fails(&file(&[&l[0], &l[1], &l[1], &l[2]]));
        assert!(twice.starts_with("line 3 (seq 3): "), "{twice}");
        assert!(
            twice.contains("row 2 comes again or out of order"),
            "{twice}"
        );
        let moved = fails(&file(&[&l[0], &l[2], &l[1]]));
        assert!(moved.starts_with("line 2 (seq 2): missing"), "{moved}");
        assert!(fails(&file(&[&l[0], ""])).starts_with("line 2: not a JSON event"));
    }

    #[test]
    fn a_directory_or_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let reason = check(dir.path()).unwrap_err()["reason"].to_string();
        assert!(reason.contains("is a directory"), "{reason}");
        let gone = dir.path().join("gone.jsonl");
        let reason = check(&gone).unwrap_err()["reason"].to_string();
        assert!(reason.contains("gone.jsonl"), "{reason}");
    }
}
