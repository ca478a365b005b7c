//! Import: adopting a key pair already in a key set's token (e.g. from a key ceremony) as the key
//! set's next key. The key must be a protected, sign-capable token object of the key set's
//! algorithm; it takes the place (and the activation time) of the generated next key, which is
//! revoked in the same transaction, so that exactly one next key stays published.
//!
//! Provenance (DESIGN.md "Key provenance"): a key whose private bytes were ever outside the HSM
//! (not `CKA_ALWAYS_SENSITIVE` or not `CKA_NEVER_EXTRACTABLE`) is refused with
//! `key_material_exposed` unless the key set sets `allow_exposed_import` and the request says
//! `accept_exposed_material`; the `imported` event records the provenance and the acceptance.
//! A `CKA_ID` or label that matches several objects is refused, never resolved to the first.

use std::sync::Arc;

use serde_json::json;

use super::hsm_signer::{fits, public_key};
use super::{ApprovalRefusal, BackendSlot, Invalid, KeyEntry, Refusal, Service, ServiceError};
use crate::config::KeySetConfig;
use crate::hsm::{HsmError, KeyAttributes};
use crate::keys::{KeyChange, KeyRecord, NewEvent, Origin, Provenance, lifecycle};
use crate::signing::PublicKey;

/// How an operator names an existing key pair in the token.
#[derive(Debug, Clone)]
pub(crate) enum ImportBy {
    /// `CKA_ID`, hex.
    Id(String),
    Label(String),
}

/// What the token says of the key pair to import.
struct Found {
    hsm_id: Vec<u8>,
    public: PublicKey,
    attrs: KeyAttributes,
}

impl Service {
    /// Adopts a key pair already in the key set's token as its next key, activating when
    /// `keys::lifecycle::next_activation` says. A generated next key it replaces is revoked.
    pub(crate) async fn import(
        &self,
        set: &str,
        by: ImportBy,
        accept_exposed: bool,
        actor: &str,
    ) -> Result<KeyEntry, ServiceError> {
        self.import_expecting(set, by, accept_exposed, actor, None)
            .await
    }

    /// [`Self::import`]; with `expect` (an approval's id and the kid its requester saw), a token
    /// object that is now another key pair (replaced under the same label or id) is refused.
    pub(super) async fn import_expecting(
        &self,
        set: &str,
        by: ImportBy,
        accept_exposed: bool,
        actor: &str,
        expect: Option<(&str, &str)>,
    ) -> Result<KeyEntry, ServiceError> {
        let cfg = self.key_set(set)?;
        self.store_reachable()?;
        let _ops = self.ops.lock().await;
        let slot = self.backend_of(cfg);
        let found = read_key_pair(slot, &by).await?;
        let attrs = &found.attrs;
        let provenance = admissible(cfg, &found, accept_exposed)?;
        let exposed = provenance.exposed();
        let kid = found.public.thumbprint();
        if let Some((id, want)) = expect
            && want != kid
        {
            let reason = format!("the token's key pair is now {kid}, not {want} as requested");
            return Err(ApprovalRefusal::Stale {
                id: id.into(),
                reason,
            }
            .into());
        }
        if self.view().records_all().any(|k| k.kid == kid) {
            return Err(Refusal::KeyExists(kid).into());
        }
        let now = self.now();
        let records = self.records(set);
        let replaced = lifecycle::next(&records, now).cloned();
        let activate_at = lifecycle::next_activation(
            &records,
            cfg.policy.rotation_period.as_secs() as i64,
            cfg.policy.min_publish.as_secs() as i64,
            now,
        );
        let record = KeyRecord {
            alg: cfg.alg.jose_name().into(),
            hsm: slot.config.name.clone(),
            hsm_id: found.hsm_id.clone(),
            public_jwk: found.public.jwk_members(),
            activate_at,
            provenance: Some(provenance),
            certificate_required: cfg.require_certificate && !records.is_empty(),
            ..KeyRecord::new(set, &kid, Origin::Imported, now)
        };
        let mut changes = vec![KeyChange::Insert(record)];
        let mut events = vec![NewEvent::new(now, actor, "imported").key(set, &kid).detail(json!({
            "hsm_id": hex::encode(&found.hsm_id),
            "by": match &by { ImportBy::Id(i) => json!({"id": i}), ImportBy::Label(l) => json!({"label": l}) },
            "activate_at": activate_at,
            "sign_only": !(attrs.decrypt || attrs.unwrap || attrs.derive),
            "replaces": replaced.as_ref().map(|r| r.kid.clone()),
            "provenance": provenance,
            "exposed_material_accepted": exposed,
        }))];
        if let Some(r) = &replaced {
            let reason = format!("replaced by imported key {kid}");
            changes.push(KeyChange::Revoke {
                key_set: set.into(),
                kid: r.kid.clone(),
                at: now,
                reason: reason.clone(),
            });
            events.push(
                NewEvent::new(now, actor, "revoked")
                    .key(set, &r.kid)
                    .detail(json!({ "reason": reason, "state": "next" })),
            );
        }
        self.store.apply(&changes, &events).await?;
        self.reload().await?;
        self.key_entry(set, &kid)
    }

    /// The checks of an import that need no lock (the key pair is there, admissible, and not
    /// managed yet), so that a held import is refused at once when it could not be carried out.
    /// Returns its kid.
    pub(super) async fn check_import(
        &self,
        cfg: &KeySetConfig,
        by: &ImportBy,
        accept_exposed: bool,
    ) -> Result<String, ServiceError> {
        let found = read_key_pair(self.backend_of(cfg), by).await?;
        admissible(cfg, &found, accept_exposed)?;
        let kid = found.public.thumbprint();
        if self.view().records_all().any(|k| k.kid == kid) {
            return Err(Refusal::KeyExists(kid).into());
        }
        Ok(kid)
    }
}

/// Reads the key pair `by` names from the token: its `CKA_ID`, public key and private-key
/// attributes, after making it sign-only where the token allows.
async fn read_key_pair(slot: &Arc<BackendSlot>, by: &ImportBy) -> Result<Found, ServiceError> {
    enum Lookup {
        Id(Vec<u8>),
        Label(String),
    }
    let lookup = match by {
        ImportBy::Id(h) => Lookup::Id(hex::decode(h.trim()).map_err(Invalid::Id)?),
        ImportBy::Label(l) => Lookup::Label(l.clone()),
    };
    slot.with_backend(slot.config.op_timeout, move |b| {
        let read = move || -> Result<Found, HsmError> {
            let hsm_id = match lookup {
                Lookup::Id(id) => id,
                Lookup::Label(l) => b.id_by_label(&l)?,
            };
            let public = public_key(b.public_key(&hsm_id)?);
            let mut attrs = b.private_attributes(&hsm_id)?;
            if attrs.decrypt || attrs.unwrap || attrs.derive {
                // Ceremony tools often leave these on; Signet only ever signs.
                match b.restrict_to_sign(&hsm_id) {
                    Ok(()) => attrs = b.private_attributes(&hsm_id)?,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot make the imported key sign-only")
                    }
                }
            }
            Ok(Found {
                hsm_id,
                public,
                attrs,
            })
        };
        // "No such key pair" is the operator's mistake (404), not a failing HSM.
        match read() {
            Ok(found) => Ok(Ok(found)),
            Err(HsmError::KeyNotFound(what)) => Ok(Err(ServiceError::HsmKeyNotFound {
                hsm: b.name().to_string(),
                what,
            })),
            Err(e @ HsmError::Ambiguous { .. }) => Ok(Err(ServiceError::HsmKeyAmbiguous {
                hsm: b.name().to_string(),
                what: e.to_string(),
            })),
            Err(e) => Err(e),
        }
    })
    .await?
}

/// Whether the key set may adopt `found`: a protected token object of its algorithm, never
/// exposed unless both the key set and the request accept it. Returns its provenance.
fn admissible(
    cfg: &KeySetConfig,
    found: &Found,
    accept_exposed: bool,
) -> Result<Provenance, ServiceError> {
    let attrs = &found.attrs;
    if !(attrs.sensitive && !attrs.extractable && attrs.sign && attrs.private && attrs.token) {
        return Err(Invalid::KeyNotProtected.into());
    }
    if !fits(&found.public, cfg.alg) {
        return Err(Invalid::KeyTypeMismatch(cfg.alg).into());
    }
    let p = provenance(attrs);
    if p.exposed() && !(cfg.allow_exposed_import && accept_exposed) {
        return Err(Invalid::KeyMaterialExposed {
            local: p.local,
            always_sensitive: p.always_sensitive,
            never_extractable: p.never_extractable,
            why: if cfg.allow_exposed_import {
                "pass accept_exposed_material = true to adopt it anyway"
            } else {
                "the key set does not set allow_exposed_import"
            },
        }
        .into());
    }
    Ok(p)
}

/// What the token's attributes say of where the private bytes have been.
pub(super) fn provenance(a: &KeyAttributes) -> Provenance {
    Provenance {
        local: a.local,
        always_sensitive: a.always_sensitive,
        never_extractable: a.never_extractable,
    }
}
