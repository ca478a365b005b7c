//! Start-up reconciliation of the store and the tokens: what an interrupted generation, a manual
//! change in the token or a lost token left behind.
//!
//! - A private key labelled `signet/...` that no store row references (by backend and `CKA_ID`) is
//!   an **orphan**: logged, shown in `/readyz`, and recorded once as an `orphan_found` audit event
//!   per key set (again only when the list changes). Never destroyed: it may be a key an operator
//!   means to import, or the proof of an incident.
//! - An unreferenced `signet/<set>/pending` object older than [`PENDING_MAX_AGE`] is a generation
//!   that died before its key got a kid (no signature can exist under it): destroyed, and
//!   recorded as `pending_destroyed`. Younger ones may be another replica's generation in flight.
//! - A store row whose private object is not in its token (and is not marked destroyed) is
//!   **missing**: logged and shown in `/readyz`.
//! - Private objects sharing a `CKA_ID` or a label are **ambiguous**, and a stored key whose
//!   `CKA_LOCAL` / `CKA_ALWAYS_SENSITIVE` / `CKA_NEVER_EXTRACTABLE` differ from what was recorded
//!   has its **provenance changed** (see `service::provenance`): logged, shown in `/readyz`, and
//!   recorded by the leader as `hsm_objects_ambiguous` / `provenance_changed` events. The leader
//!   also records the provenance of keys stored before Signet recorded it
//!   (`provenance_recorded`).
//! - A store row whose private object is not found by its `CKA_ID` on one of its key set's
//!   backends (and is not marked destroyed) is **missing** there: logged and shown in `/readyz`
//!   (per backend; signing moves to the backends that have it).
//!
//! Every replica reconciles at start-up, for its `/readyz`; only the replica that holds the
//! scheduler lease writes audit events and destroys stale pending objects (it reconciles again
//! whenever it takes the lease over), so that replicas starting together do not do it twice.
//! The token is listed before the store is read, so that a key another replica generates and
//! stores meanwhile is not reported; one relabelled but not yet stored at that instant can be
//! reported once, harmlessly.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::json;

use std::sync::Arc;

use super::keygen::SCHEDULER;
use super::provenance::{self, Ambiguous, ProvenanceChanged};
use super::{BackendSlot, Service};
use crate::hsm::TokenKey;
use crate::keys::{KeyChange, KeyRecord, NewEvent};
use crate::support::{Chain, read, write};

/// Pending objects older than this (seconds) are destroyed: ten times the generation deadline.
pub(crate) const PENDING_MAX_AGE: i64 = 600;

/// A token object no store row accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Orphan {
    pub(crate) hsm: String,
    pub(crate) key_set: Option<String>,
    /// `CKA_ID`, hex.
    pub(crate) hsm_id: String,
    pub(crate) label: String,
}

/// A store row whose private object is gone from its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Missing {
    pub(crate) hsm: String,
    pub(crate) key_set: String,
    pub(crate) kid: String,
}

/// What the last reconciliation found.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Reconciliation {
    pub(crate) at: i64,
    pub(crate) orphans: Vec<Orphan>,
    pub(crate) missing: Vec<Missing>,
    pub(crate) pending_destroyed: Vec<Orphan>,
    /// `CKA_ID`s and labels that several private objects share.
    pub(crate) ambiguous: Vec<Ambiguous>,
    /// Stored keys whose private object's provenance attributes changed under Signet.
    pub(crate) provenance_changed: Vec<ProvenanceChanged>,
    /// Backends that could not be listed, and why.
    pub(crate) errors: Vec<String>,
}

/// The creation time a pending `CKA_ID` (`signet-pending-<unix s>-<pid>-<n>`) carries.
fn pending_since(id: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(id).ok()?;
    s.strip_prefix("signet-pending-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// The key set named by a `signet/<set>/<kid or pending>` label.
fn label_set(label: &str) -> Option<String> {
    let rest = label.strip_prefix("signet/")?;
    rest.rsplit_once('/').map(|(set, _)| set.to_string())
}

impl Service {
    /// Compares every backend's private keys with the store rows; see the module docs.
    pub(crate) async fn reconcile(&self) -> Reconciliation {
        let now = self.now();
        let leader = self.elector.state().leader;
        let mut out = Reconciliation {
            at: now,
            ..Default::default()
        };
        let mut listed = Vec::new();
        for slot in &self.backends {
            match slot
                .with_backend(slot.config.op_timeout, |b| b.list_keys(""))
                .await
            {
                Ok(objects) => listed.push((slot, objects)),
                Err(e) => out.errors.push(format!(
                    "hsm `{}`: not reconciled: {}",
                    slot.config.name,
                    Chain(&e)
                )),
            }
        }
        let records = match self.store.keys().await {
            Ok(r) => r,
            Err(e) => {
                out.errors.push(format!("store: not reconciled: {e}"));
                return self.keep(out);
            }
        };
        for (slot, objects) in listed {
            self.reconcile_backend(slot, &objects, &records, leader, &mut out)
                .await;
        }
        if leader {
            self.audit_orphans(&mut out).await;
        }
        self.keep(out)
    }

    /// Orphans, stale pending objects and missing keys of one backend (see the module docs).
    async fn reconcile_backend(
        &self,
        slot: &Arc<BackendSlot>,
        objects: &[TokenKey],
        records: &[KeyRecord],
        leader: bool,
        out: &mut Reconciliation,
    ) {
        let now = out.at;
        let name = &slot.config.name;
        self.check_objects(name, objects, records, leader, out)
            .await;
        let referenced: HashSet<&[u8]> = records
            .iter()
            .filter(|r| self.held_by(r, name))
            .map(|r| r.hsm_id.as_slice())
            .collect();
        for TokenKey { id, label, .. } in objects {
            if !label.starts_with("signet/") || referenced.contains(id.as_slice()) {
                continue;
            }
            let orphan = Orphan {
                hsm: name.clone(),
                key_set: label_set(label),
                hsm_id: hex::encode(id),
                label: label.clone(),
            };
            let stale = label.ends_with("/pending")
                && pending_since(id).is_some_and(|t| now - t > PENDING_MAX_AGE);
            if stale && !leader {
                continue;
            }
            if !stale {
                tracing::warn!(hsm = %name, label = %label, hsm_id = %orphan.hsm_id,
                    "orphan key in the token: no store row references it (not destroyed; import or remove it by hand)");
                out.orphans.push(orphan);
                continue;
            }
            self.destroy_pending(slot, id.clone(), orphan, out).await;
        }
        let present: HashSet<&[u8]> = objects.iter().map(|o| o.id.as_slice()).collect();
        for r in records.iter().filter(|r| self.held_by(r, name)) {
            if r.destroyed_at.is_none() && !present.contains(r.hsm_id.as_slice()) {
                tracing::warn!(hsm = %name, key_set = %r.key_set, kid = %r.kid,
                    "the private key of a stored key is missing from its token");
                out.missing.push(Missing {
                    hsm: name.clone(),
                    key_set: r.key_set.clone(),
                    kid: r.kid.clone(),
                });
            }
        }
    }

    /// Ambiguous objects and provenance changes of one backend; the leader records them, and the
    /// provenance of keys stored without it.
    async fn check_objects(
        &self,
        name: &str,
        objects: &[TokenKey],
        records: &[KeyRecord],
        leader: bool,
        out: &mut Reconciliation,
    ) {
        let ambiguous = provenance::ambiguous(name, objects);
        let (changed, unrecorded) = provenance::compare(name, objects, records);
        let mut events = Vec::new();
        for a in &ambiguous {
            tracing::warn!(hsm = %name, by = a.by, value = %a.value, count = a.count,
                "several private key objects share one CKA_ID or label; Signet will not pick one");
            events.push(NewEvent::new(out.at, SCHEDULER, "hsm_objects_ambiguous").detail(json!(a)));
        }
        for c in &changed {
            tracing::warn!(hsm = %name, key_set = %c.key_set, kid = %c.kid,
                recorded = ?c.recorded, token = ?c.token,
                "the provenance attributes of a key changed under Signet");
            events.push(
                NewEvent::new(out.at, SCHEDULER, "provenance_changed")
                    .key(&c.key_set, &c.kid)
                    .detail(json!(c)),
            );
        }
        let mut changes = Vec::new();
        for (r, p) in unrecorded {
            changes.push(KeyChange::Provenance {
                key_set: r.key_set.clone(),
                kid: r.kid.clone(),
                provenance: p,
            });
            events.push(
                NewEvent::new(out.at, SCHEDULER, "provenance_recorded")
                    .key(&r.key_set, &r.kid)
                    .detail(json!({ "provenance": p })),
            );
        }
        if leader
            && !events.is_empty()
            && let Err(e) = self.store.apply(&changes, &events).await
        {
            out.errors
                .push(format!("audit of the token's objects: {}", Chain(&e)));
        }
        out.ambiguous.extend(ambiguous);
        out.provenance_changed.extend(changed);
    }

    /// Whether backend `hsm` should hold the key pair of `r`: the backend it was generated on, or
    /// any backend of its key set (found there by the same `CKA_ID`).
    fn held_by(&self, r: &KeyRecord, hsm: &str) -> bool {
        r.hsm == hsm
            || self
                .config
                .key_set(&r.key_set)
                .is_some_and(|set| set.hsms.iter().any(|&i| self.config.hsms[i].name == hsm))
    }

    /// Destroys a stale pending object (leader only) and records it.
    async fn destroy_pending(
        &self,
        slot: &Arc<BackendSlot>,
        id: Vec<u8>,
        orphan: Orphan,
        out: &mut Reconciliation,
    ) {
        let name = &slot.config.name;
        match slot
            .with_backend(slot.config.op_timeout, move |b| b.destroy(&id))
            .await
        {
            Ok(()) => {
                tracing::warn!(hsm = %name, hsm_id = %orphan.hsm_id,
                    "destroyed a pending key pair left by an interrupted generation");
                let mut event = NewEvent::new(out.at, SCHEDULER, "pending_destroyed")
                    .detail(json!({ "hsm": name, "hsm_id": orphan.hsm_id, "label": orphan.label }));
                event.key_set = orphan.key_set.clone();
                if let Err(e) = self.store.apply(&[], &[event]).await {
                    out.errors
                        .push(format!("audit of pending_destroyed: {}", Chain(&e)));
                }
                out.pending_destroyed.push(orphan);
            }
            Err(e) => {
                out.errors.push(format!(
                    "hsm `{name}`: cannot destroy {}: {}",
                    orphan.hsm_id,
                    Chain(&e)
                ));
                out.orphans.push(orphan);
            }
        }
    }

    /// One `orphan_found` event per key set whose orphan list differs from the last one recorded.
    async fn audit_orphans(&self, out: &mut Reconciliation) {
        let mut by_set: BTreeMap<String, Vec<&Orphan>> = BTreeMap::new();
        for o in &out.orphans {
            by_set
                .entry(o.key_set.clone().unwrap_or_default())
                .or_default()
                .push(o);
        }
        for (set, mut orphans) in by_set {
            orphans.sort_by(|a, b| (&a.hsm, &a.hsm_id).cmp(&(&b.hsm, &b.hsm_id)));
            let list = json!(orphans);
            let last = match self.store.last_event(&set, "orphan_found").await {
                Ok(last) => last,
                Err(e) => {
                    out.errors.push(format!("audit of orphan_found: {e}"));
                    continue;
                }
            };
            let seen = last
                .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
                .is_some_and(|d| d["orphans"] == list);
            if seen {
                continue;
            }
            let event = NewEvent::new(self.now(), SCHEDULER, "orphan_found")
                .set(&set)
                .detail(json!({ "orphans": list }));
            if let Err(e) = self.store.apply(&[], &[event]).await {
                out.errors.push(format!("audit of orphan_found: {e}"));
            }
        }
    }

    fn keep(&self, out: Reconciliation) -> Reconciliation {
        *write(&self.reconciled) = Some(out.clone());
        out
    }

    /// Reconciles now (as at start-up); what it finds shows in `/readyz`.
    pub async fn reconcile_now(&self) {
        self.reconcile().await;
    }

    /// The last reconciliation, if one ran.
    pub(crate) fn reconciliation(&self) -> Option<Reconciliation> {
        read(&self.reconciled).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_ids_and_labels_parse() {
        assert_eq!(
            pending_since(b"signet-pending-1700000000-42-3"),
            Some(1_700_000_000)
        );
        assert_eq!(pending_since(b"kid"), None);
        assert_eq!(pending_since(&[0xff, 0x00]), None);
        assert_eq!(
            label_set("signet/id-token/pending").as_deref(),
            Some("id-token")
        );
        assert_eq!(label_set("signet/id/abc").as_deref(), Some("id"));
        assert_eq!(label_set("other/id/abc"), None);
    }
}
