//! The audit trail as data: events, the hash chain that links them, and its verification. Pure;
//! the store appends and reads rows, this module decides what a valid chain is.
//!
//! `hash(n) = SHA-256(hash(n-1) || seq || at || actor || action || key_set || kid || detail)`, each
//! field length-prefixed, starting from [`GENESIS`]. Seqs run 1, 2, 3... without gaps, and the
//! store's head row (last seq and hash) must match the last event, so editing, deleting or
//! reordering any row, the newest included, breaks verification at a named row.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append (the store assigns `seq` and the hashes).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at: i64,
    /// Client name, or `signet` for the scheduler and start-up.
    pub actor: String,
    pub action: String,
    pub key_set: Option<String>,
    pub kid: Option<String>,
    pub detail: Value,
}

impl NewEvent {
    pub fn new(at: i64, actor: &str, action: &str) -> Self {
        Self {
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            key_set: None,
            kid: None,
            detail: Value::Object(Default::default()),
        }
    }

    pub fn key(mut self, key_set: &str, kid: &str) -> Self {
        self.key_set = Some(key_set.to_string());
        self.kid = Some(kid.to_string());
        self
    }

    pub fn set(mut self, key_set: &str) -> Self {
        self.key_set = Some(key_set.to_string());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub key_set: Option<String>,
    pub kid: Option<String>,
    /// JSON text, hashed exactly as stored.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// Seals `event` as number `seq` after `prev_hash`.
    pub fn seal(event: &NewEvent, seq: i64, prev_hash: &str) -> Self {
        let detail = event.detail.to_string();
        let mut e = AuditEvent {
            seq,
            at: event.at,
            actor: event.actor.clone(),
            action: event.action.clone(),
            key_set: event.key_set.clone(),
            kid: event.kid.clone(),
            detail,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        e.hash = e.computed_hash();
        e
    }

    /// The hash this row's fields and `prev_hash` give.
    pub fn computed_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(self.prev_hash.as_bytes());
        field(&self.seq.to_be_bytes());
        field(&self.at.to_be_bytes());
        field(self.actor.as_bytes());
        field(self.action.as_bytes());
        for opt in [&self.key_set, &self.kid] {
            match opt {
                Some(s) => {
                    field(b"1");
                    field(s.as_bytes());
                }
                None => field(b"0"),
            }
        }
        field(self.detail.as_bytes());
        hex::encode(h.finalize())
    }
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit row {seq}: {reason}")]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Checks `events` (ordered by seq) against each other and against the store's `head`
/// (last seq and hash). Returns the number of events.
pub fn verify(events: &[AuditEvent], head: Option<(i64, String)>) -> Result<usize, ChainBreak> {
    verify_links(events, 1, GENESIS).map_err(|(_, brk)| brk)?;
    let last = events.last().map(|e| (e.seq, e.hash.clone()));
    match (head, last) {
        (None, None) => Ok(0),
        (Some((seq, hash)), Some((last_seq, last_hash)))
            if seq == last_seq && hash == last_hash =>
        {
            Ok(events.len())
        }
        (Some((seq, _)), last) => {
            let last_seq = last.map_or(0, |(s, _)| s);
            Err(ChainBreak {
                seq: (last_seq + 1).min(seq),
                reason: format!(
                    "the trail ends at row {last_seq} but its head says row {seq}: rows were removed"
                ),
            })
        }
        (None, Some(_)) => Err(ChainBreak {
            seq: 1,
            reason: "the head row is missing".into(),
        }),
    }
}

/// Checks that `events` are a piece of a chain: seqs `first_seq`, `first_seq + 1`... without
/// gaps, the first linked to `prev_hash`, each linked to the one before, each hash recomputed from
/// its fields. The one check of the store's trail (`verify`, from [`GENESIS`]) and of an exported
/// file (`signet audit verify --file`, from its first line's `prev_hash`). A break names the
/// index in `events` where it was found.
pub fn verify_links(
    events: &[AuditEvent],
    first_seq: i64,
    prev_hash: &str,
) -> Result<(), (usize, ChainBreak)> {
    let mut prev = prev_hash.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected_seq = first_seq + i as i64;
        let brk = |seq: i64, reason: &str| {
            Err((
                i,
                ChainBreak {
                    seq,
                    reason: reason.to_string(),
                },
            ))
        };
        if e.seq > expected_seq {
            return brk(
                expected_seq,
                &format!("missing (next row found is {})", e.seq),
            );
        }
        if e.seq < expected_seq {
            return brk(
                expected_seq,
                &format!("expected, but row {} comes again or out of order", e.seq),
            );
        }
        if e.prev_hash != prev {
            return brk(e.seq, "prev_hash does not match the previous row");
        }
        if e.computed_hash() != e.hash {
            return brk(e.seq, "contents do not match its hash (edited)");
        }
        prev = e.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let ev = NewEvent::new(seq * 10, "admin", "revoked")
                    .key("id-token", "kid")
                    .detail(json!({"reason": "test"}));
                let e = AuditEvent::seal(&ev, seq, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(c: &[AuditEvent]) -> Option<(i64, String)> {
        c.last().map(|e| (e.seq, e.hash.clone()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, head(&c)), Ok(5));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn any_edit_is_found_at_its_row() {
        let mut c = chain(5);
        let h = head(&c);
        c[2].detail = r#"{"reason":"other"}"#.into();
        assert_eq!(verify(&c, h.clone()).unwrap_err().seq, 3);
        let mut c = chain(5);
        c[1].actor = "mallory".into();
        c[1].hash = c[1].computed_hash();
        // Re-hashing the edited row breaks the link to the next one.
        assert_eq!(verify(&c, h).unwrap_err().seq, 3);
    }

    #[test]
    fn deleting_any_row_is_found() {
        let c = chain(5);
        let h = head(&c);
        let mut middle = c.clone();
        middle.remove(1);
        assert_eq!(verify(&middle, h.clone()).unwrap_err().seq, 2);
        let mut first = c.clone();
        first.remove(0);
        assert_eq!(verify(&first, h.clone()).unwrap_err().seq, 1);
        let mut last = c.clone();
        last.pop();
        let e = verify(&last, h).unwrap_err();
        assert_eq!(e.seq, 5, "{e}");
    }
}
