//! `signet audit verify --file <path>`: checks a JSON-lines export of the audit trail (what the
//! `[audit] sink` writes) offline, with the store's own chain check (`keys::audit::verify_links`):
//! each line's hash recomputed from its fields, each line linked to the one before, seqs without
//! gaps. A file that starts at seq 1 is checked from the chain's genesis; one that starts later
//! (the SIEM rotated its files) from its first line's `prev_hash`, which the output says.
//! Nothing after the last line can be known from the file: compare its last seq and hash with
//! `GET /v1/audit` to know it is complete.

use std::io::BufRead;
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

fn broken(line: usize, seq: Option<i64>, reason: String) -> Value {
    let at = match seq {
        Some(s) => format!("line {line} (seq {s})"),
        None => format!("line {line}"),
    };
    json!({ "ok": false, "line": line, "seq": seq, "reason": format!("{at}: {reason}") })
}

fn check(path: &Path) -> Result<Value, Value> {
    let file = std::fs::File::open(path)
        .map_err(|e| json!({ "ok": false, "reason": format!("{}: {e}", path.display()) }))?;
    let mut events: Vec<AuditEvent> = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| broken(n, None, format!("cannot be read: {e}")))?;
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| broken(n, None, format!("not a JSON event: {e}")))?;
        let seq = value.get("seq").and_then(Value::as_i64);
        events.push(audit_json::from_json(&value).map_err(|e| broken(n, seq, e))?);
    }
    let Some(first) = events.first() else {
        return Ok(json!({ "ok": true, "events": 0, "summary": "audit file ok: no events" }));
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
        .map_err(|(i, brk)| broken(i + 1, Some(brk.seq), brk.reason))?;
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
