//! What reconciliation checks of the token's key objects beyond presence: objects that share a
//! `CKA_ID` or a label (ambiguous: Signet never resolves them by taking the first), and stored
//! keys whose provenance attributes (`CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE`,
//! `CKA_NEVER_EXTRACTABLE`) differ from what Signet recorded (changed under Signet), or were never
//! recorded (a key stored before Signet recorded provenance: filled in by the leader).

use std::collections::BTreeMap;

use serde::Serialize;

use super::import::provenance;
use crate::hsm::TokenKey;
use crate::keys::{KeyRecord, Provenance};

/// Several private key objects of one token share a `CKA_ID` or a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Ambiguous {
    pub(crate) hsm: String,
    /// `cka_id` or `label`.
    pub(crate) by: &'static str,
    /// The `CKA_ID` in hex, or the label.
    pub(crate) value: String,
    pub(crate) count: usize,
}

/// A stored key whose private object no longer says what Signet recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ProvenanceChanged {
    pub(crate) hsm: String,
    pub(crate) key_set: String,
    pub(crate) kid: String,
    pub(crate) recorded: Provenance,
    pub(crate) token: Provenance,
}

/// The `CKA_ID`s and labels more than one of `objects` carries.
pub(crate) fn ambiguous(hsm: &str, objects: &[TokenKey]) -> Vec<Ambiguous> {
    let mut ids: BTreeMap<&[u8], usize> = BTreeMap::new();
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for o in objects {
        *ids.entry(o.id.as_slice()).or_default() += 1;
        if !o.label.is_empty() {
            *labels.entry(o.label.as_str()).or_default() += 1;
        }
    }
    let ids = ids
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, count)| Ambiguous {
            hsm: hsm.to_string(),
            by: "cka_id",
            value: hex::encode(id),
            count,
        });
    let labels = labels
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(label, count)| Ambiguous {
            hsm: hsm.to_string(),
            by: "label",
            value: label.to_string(),
            count,
        });
    ids.chain(labels).collect()
}

/// For each live stored key of `hsm` whose `CKA_ID` names exactly one of `objects`: a change of
/// provenance, or (for a key with none recorded) the provenance to record.
pub(crate) fn compare(
    hsm: &str,
    objects: &[TokenKey],
    records: &[KeyRecord],
) -> (Vec<ProvenanceChanged>, Vec<(KeyRecord, Provenance)>) {
    let (mut changed, mut unrecorded) = (Vec::new(), Vec::new());
    for r in records
        .iter()
        .filter(|r| r.hsm == hsm && r.destroyed_at.is_none())
    {
        let mut matching = objects.iter().filter(|o| o.id == r.hsm_id);
        let (Some(object), None) = (matching.next(), matching.next()) else {
            continue;
        };
        let token = provenance(&object.attributes);
        match r.provenance {
            Some(recorded) if recorded != token => changed.push(ProvenanceChanged {
                hsm: hsm.to_string(),
                key_set: r.key_set.clone(),
                kid: r.kid.clone(),
                recorded,
                token,
            }),
            Some(_) => {}
            None => unrecorded.push((r.clone(), token)),
        }
    }
    (changed, unrecorded)
}
