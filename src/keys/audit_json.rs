//! An audit event as JSON: the one shape `GET /v1/audit` answers and the audit sink writes (one
//! line per event), and the way back from it to an [`AuditEvent`] whose hash can be recomputed
//! (`signet audit verify --file`).
//!
//! `at` is RFC 3339 to the second (the chain's resolution) and `detail` is the stored JSON text
//! parsed; serialising it again gives the stored text back, since the store writes it with the
//! same `serde_json` (`Value::to_string`).

use serde_json::{Value, json};

use super::audit::AuditEvent;

/// The JSON of one event.
pub fn to_json(e: &AuditEvent) -> Value {
    let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::String(e.detail.clone()));
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.at.max(0) as u64);
    json!({
        "seq": e.seq, "at": humantime::format_rfc3339_seconds(at).to_string(),
        "actor": e.actor, "action": e.action, "key_set": e.key_set, "kid": e.kid,
        "detail": detail, "prev_hash": e.prev_hash, "hash": e.hash,
    })
}

/// An event back from its JSON, or what is wrong with it.
pub fn from_json(v: &Value) -> Result<AuditEvent, String> {
    let text = |name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("`{name}` is missing or not a string"))
    };
    let optional = |name: &str| -> Result<Option<String>, String> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{name}` is not a string or null")),
        }
    };
    let seq = (v.get("seq").and_then(Value::as_i64)).ok_or("`seq` is missing or not an integer")?;
    let at = humantime::parse_rfc3339(&text("at")?)
        .map_err(|e| format!("`at` is not an RFC 3339 time: {e}"))?
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "`at` is before 1970".to_string())?
        .as_secs() as i64;
    let detail = v.get("detail").ok_or("`detail` is missing")?.to_string();
    Ok(AuditEvent {
        seq,
        at,
        actor: text("actor")?,
        action: text("action")?,
        key_set: optional("key_set")?,
        kid: optional("kid")?,
        detail,
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::audit::{GENESIS, NewEvent};

    #[test]
    fn an_event_survives_its_json() {
        let ev = NewEvent::new(1_700_000_000, "admin", "revoked")
            .key("id-token", "k1")
            .detail(json!({"reason": "test", "n": 1.5, "z": [1, "a"], "a": null}));
        let e = AuditEvent::seal(&ev, 1, GENESIS);
        let line = to_json(&e).to_string();
        let back = from_json(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.computed_hash(), e.hash);
    }
}
