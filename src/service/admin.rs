//! Operator actions on keys: rotate, revoke, import, destroy, and the audit trail. Every change and
//! its audit event land in one store transaction; the key view is reloaded right after, so this
//! replica signs with the new key and serves the new JWKS from the next request on.

use serde_json::json;

use super::hsm_signer::{self, fits, public_key};
use super::keygen::SCHEDULER;
use super::{Service, ServiceError};
use crate::config::KeySetConfig;
use crate::keys::audit::{self, AuditEvent, ChainBreak};
use crate::keys::{KeyChange, KeyRecord, KeyState, NewEvent, Origin, lifecycle};

/// How an operator names an existing key pair in the token.
#[derive(Debug, Clone)]
pub enum ImportBy {
    /// `CKA_ID`, hex.
    Id(String),
    Label(String),
}

fn conflict(code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Conflict {
        code,
        message: message.into(),
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest {
        code,
        message: message.into(),
    }
}

impl Service {
    /// Every key of `set` with its state now.
    pub fn keys_with_state(&self, set: &str) -> Result<Vec<(KeyRecord, KeyState)>, ServiceError> {
        let cfg = self.key_set(set)?;
        let now = self.now();
        let records = self.records(set);
        let retain = cfg.policy.retain.as_secs() as i64;
        Ok(records
            .iter()
            .map(|k| (k.clone(), lifecycle::state(&records, k, retain, now)))
            .collect())
    }

    fn find(&self, set: &str, kid: &str) -> Result<KeyRecord, ServiceError> {
        self.records(set)
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| ServiceError::NotFound {
                code: "key_not_found",
                message: format!("no key {kid} in key set {set}"),
            })
    }

    /// How long `key` will have been published at `at`, checked against `min_publish`.
    fn check_published(
        cfg: &KeySetConfig,
        key: &KeyRecord,
        at: i64,
        force: bool,
    ) -> Result<(), ServiceError> {
        let min = cfg.policy.min_publish.as_secs() as i64;
        if at - key.created_at < min && !force {
            return Err(conflict(
                "min_publish_not_met",
                format!(
                    "key {} was published at {} and may not sign before {} (min_publish {}); \
                     verifiers may not have it cached yet. Retry later, or pass force = true",
                    key.kid,
                    key.created_at,
                    key.created_at + min,
                    crate::config::format_duration(cfg.policy.min_publish)
                ),
            ));
        }
        Ok(())
    }

    /// Makes the next key active at `activate_at` (default now). Refused when it would sign before
    /// it has been published for `min_publish`, unless `force`.
    pub async fn rotate(
        &self,
        set: &str,
        activate_at: Option<i64>,
        force: bool,
        actor: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let cfg = self.key_set(set)?;
        let _ops = self.ops.lock().await;
        let now = self.now();
        let at = activate_at.unwrap_or(now);
        if at < now {
            return Err(bad(
                "activate_at_in_past",
                "activate_at must not be in the past",
            ));
        }
        let records = self.records(set);
        let active = lifecycle::active(&records, now);
        let from = active.map(|k| k.kid.clone());
        // Times have one-second resolution and equal activation times tie-break by kid: a second
        // rotation within the same second as the last activation takes effect one second later.
        let at = at.max(active.map_or(at, |a| a.activate_at + 1));
        let next = match lifecycle::next(&records, now).cloned() {
            Some(n) => n,
            None if force => self.generate(cfg, at, actor, "forced rotation").await?,
            None => {
                return Err(conflict(
                    "no_next_key",
                    format!("key set {set} has no next key"),
                ));
            }
        };
        Self::check_published(cfg, &next, at, force)?;
        let event = NewEvent::new(now, actor, "rotated")
            .key(set, &next.kid)
            .detail(json!({
                "from": from, "activate_at": at, "force": force,
            }));
        let change = KeyChange::Activate {
            key_set: set.into(),
            kid: next.kid.clone(),
            at,
        };
        self.store.apply(&[change], &[event]).await?;
        self.reload().await?;
        self.ensure_keys(cfg).await?;
        self.find(set, &next.kid)
    }

    /// Revokes `kid`. Revoking the active key hands signing to the next key at once (refused
    /// while that key has been published for less than `min_publish`, unless `force`) and a new
    /// next key is generated. A revoked key is never published or used again.
    pub async fn revoke(
        &self,
        set: &str,
        kid: &str,
        reason: &str,
        force: bool,
        actor: &str,
    ) -> Result<Option<String>, ServiceError> {
        let cfg = self.key_set(set)?;
        if reason.trim().is_empty() {
            return Err(bad("reason_required", "a revocation needs a reason"));
        }
        let _ops = self.ops.lock().await;
        let now = self.now();
        let key = self.find(set, kid)?;
        if key.revoked_at.is_some() {
            return Err(conflict(
                "already_revoked",
                format!("key {kid} is already revoked"),
            ));
        }
        let records = self.records(set);
        let retain = cfg.policy.retain.as_secs() as i64;
        let state = lifecycle::state(&records, &key, retain, now);
        let mut changes = vec![KeyChange::Revoke {
            key_set: set.into(),
            kid: kid.into(),
            at: now,
            reason: reason.into(),
        }];
        let mut promoted = None;
        if state == KeyState::Active {
            let next = match lifecycle::next(&records, now).cloned() {
                Some(n) => n,
                None if force => {
                    self.generate(cfg, now + 1, actor, "emergency revocation")
                        .await?
                }
                None => {
                    return Err(conflict(
                        "no_next_key",
                        format!("key set {set} has no next key to take over; pass force = true"),
                    ));
                }
            };
            Self::check_published(cfg, &next, now, force)?;
            changes.push(KeyChange::Activate {
                key_set: set.into(),
                kid: next.kid.clone(),
                at: now,
            });
            promoted = Some(next.kid);
        }
        let event = NewEvent::new(now, actor, "revoked")
            .key(set, kid)
            .detail(json!({
                "reason": reason, "state": state.name(), "promoted": promoted, "force": force,
            }));
        self.store.apply(&changes, &[event]).await?;
        self.reload().await?;
        if let Err(e) = self.ensure_keys(cfg).await {
            tracing::error!(key_set = set, error = %e, "revoked, but no new next key yet");
        }
        Ok(promoted)
    }

    /// Adopts a key pair already in the key set's token (e.g. from a key ceremony) as its next key.
    /// A generated next key it replaces is revoked.
    pub async fn import(
        &self,
        set: &str,
        by: ImportBy,
        actor: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let cfg = self.key_set(set)?;
        let _ops = self.ops.lock().await;
        let slot = self.backend_of(cfg);
        enum Lookup {
            Id(Vec<u8>),
            Label(String),
        }
        let lookup = match &by {
            ImportBy::Id(h) => Lookup::Id(
                hex::decode(h.trim())
                    .map_err(|_| bad("invalid_id", "`id` must be the CKA_ID in hex"))?,
            ),
            ImportBy::Label(l) => Lookup::Label(l.clone()),
        };
        let found = slot
            .run(move |b| {
                let read = move || -> Result<_, crate::hsm::HsmError> {
                    let id = match lookup {
                        Lookup::Id(id) => id,
                        Lookup::Label(l) => b.id_by_label(&l)?,
                    };
                    let public = b.public_key(&id)?;
                    let mut attrs = b.private_attributes(&id)?;
                    if attrs.decrypt || attrs.unwrap || attrs.derive {
                        // Ceremony tools often leave these on; Signet only ever signs.
                        match b.restrict_to_sign(&id) {
                            Ok(()) => attrs = b.private_attributes(&id)?,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot make the imported key sign-only")
                            }
                        }
                    }
                    Ok((id, public_key(public), attrs))
                };
                match read() {
                    Ok(v) => Ok(Ok(v)),
                    Err(crate::hsm::HsmError::KeyNotFound(what)) => Ok(Err(what)),
                    Err(e) => Err(hsm_signer::sign_error(e)),
                }
            })
            .await?;
        let (hsm_id, public, attrs) = found.map_err(|what| ServiceError::NotFound {
            code: "hsm_key_not_found",
            message: format!(
                "no key pair {what} in the token of hsm `{}`",
                slot.config.name
            ),
        })?;
        if !(attrs.sensitive && !attrs.extractable && attrs.sign && attrs.private && attrs.token) {
            return Err(bad(
                "key_not_protected",
                "the private key must be a private token object with CKA_SENSITIVE=true, \
                 CKA_EXTRACTABLE=false and CKA_SIGN=true (pkcs11-tool: --sensitive --private)",
            ));
        }
        if !fits(&public, cfg.alg) {
            return Err(bad(
                "key_type_mismatch",
                format!("the key pair does not fit {}", cfg.alg),
            ));
        }
        let kid = public.thumbprint();
        if self.view().records_all().any(|k| k.kid == kid) {
            return Err(conflict(
                "key_exists",
                format!("key {kid} is already managed by Signet"),
            ));
        }
        let now = self.now();
        let records = self.records(set);
        let min = now + cfg.policy.min_publish.as_secs() as i64;
        let replaced = lifecycle::next(&records, now).cloned();
        let activate_at = match (&replaced, lifecycle::active(&records, now)) {
            (Some(n), _) => n.activate_at.max(min),
            (None, Some(a)) => {
                (a.activate_at + cfg.policy.rotation_period.as_secs() as i64).max(min)
            }
            (None, None) => min,
        };
        let record = KeyRecord {
            key_set: set.into(),
            kid: kid.clone(),
            alg: cfg.alg.jose_name().into(),
            hsm: slot.config.name.clone(),
            hsm_id: hsm_id.clone(),
            public_jwk: public.jwk_members(),
            origin: Origin::Imported,
            created_at: now,
            activate_at,
            revoked_at: None,
            revoke_reason: None,
            destroyed_at: None,
        };
        let mut changes = vec![KeyChange::Insert(record.clone())];
        let mut events = vec![NewEvent::new(now, actor, "imported").key(set, &kid).detail(json!({
            "hsm_id": hex::encode(&hsm_id),
            "by": match &by { ImportBy::Id(i) => json!({"id": i}), ImportBy::Label(l) => json!({"label": l}) },
            "activate_at": activate_at,
            "sign_only": !(attrs.decrypt || attrs.unwrap || attrs.derive),
            "replaces": replaced.as_ref().map(|r| r.kid.clone()),
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
                    .detail(json!({
                        "reason": reason, "state": "next",
                    })),
            );
        }
        self.store.apply(&changes, &events).await?;
        self.reload().await?;
        Ok(record)
    }

    /// Destroys the private object of an expired or revoked key; its public JWK stays in the store.
    pub async fn destroy(
        &self,
        set: &str,
        kid: &str,
        actor: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let cfg = self.key_set(set)?;
        let _ops = self.ops.lock().await;
        self.destroy_locked(cfg, kid, actor, "admin").await
    }

    async fn destroy_locked(
        &self,
        cfg: &KeySetConfig,
        kid: &str,
        actor: &str,
        why: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let set = cfg.name.as_str();
        let now = self.now();
        let key = self.find(set, kid)?;
        if key.destroyed_at.is_some() {
            return Err(conflict(
                "already_destroyed",
                format!("key {kid} is already destroyed"),
            ));
        }
        let state = lifecycle::state(
            &self.records(set),
            &key,
            cfg.policy.retain.as_secs() as i64,
            now,
        );
        if !matches!(state, KeyState::Expired { .. } | KeyState::Revoked) {
            return Err(conflict(
                "key_in_use",
                format!(
                    "key {kid} is {}; only expired or revoked keys can be destroyed",
                    state.name()
                ),
            ));
        }
        let id = key.hsm_id.clone();
        let gone = self
            .backend_of(cfg)
            .run(move |b| match b.destroy(&id) {
                Ok(()) => Ok(false),
                Err(crate::hsm::HsmError::KeyNotFound(_)) => Ok(true),
                Err(e) => Err(hsm_signer::sign_error(e)),
            })
            .await?;
        let event = NewEvent::new(now, actor, "destroyed")
            .key(set, kid)
            .detail(json!({
                "why": why, "state": state.name(), "already_gone": gone,
            }));
        let change = KeyChange::Destroyed {
            key_set: set.into(),
            kid: kid.into(),
            at: now,
        };
        self.store.apply(&[change], &[event]).await?;
        self.reload().await?;
        self.find(set, kid)
    }

    /// Destroys the private objects of keys expired for longer than `destroy_after`.
    pub(super) async fn destroy_expired(&self, cfg: &KeySetConfig) -> Result<(), ServiceError> {
        let Some(after) = cfg.policy.destroy_after else {
            return Ok(());
        };
        let now = self.now();
        let records = self.records(&cfg.name);
        let retain = cfg.policy.retain.as_secs() as i64;
        for k in &records {
            if k.destroyed_at.is_some() {
                continue;
            }
            if let KeyState::Expired { since } = lifecycle::state(&records, k, retain, now)
                && now >= since + after.as_secs() as i64
            {
                self.destroy_locked(cfg, &k.kid, SCHEDULER, "destroy_after")
                    .await?;
            }
        }
        Ok(())
    }

    /// Records an `activated` event when a key set's active key changed by time alone.
    pub(super) async fn note_activation(&self, cfg: &KeySetConfig) -> Result<(), ServiceError> {
        let now = self.now();
        let Some(active) = self.view().active(&cfg.name, now).cloned() else {
            return Ok(());
        };
        let last = self.store.last_event(&cfg.name, "activated").await?;
        if last.as_ref().and_then(|e| e.kid.as_deref()) == Some(active.kid.as_str()) {
            return Ok(());
        }
        let event = NewEvent::new(now, SCHEDULER, "activated")
            .key(&cfg.name, &active.kid)
            .detail(json!({ "activate_at": active.activate_at }));
        self.store.apply(&[], &[event]).await?;
        Ok(())
    }

    pub async fn audit_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        Ok(self.store.audit_after(after, limit.clamp(1, 1000)).await?)
    }

    /// Verifies the whole chain: the number of events, or the first bad row.
    pub async fn audit_verify(&self) -> Result<Result<usize, ChainBreak>, ServiceError> {
        let (events, head) = self.store.audit_all().await?;
        Ok(audit::verify(&events, head))
    }

    /// Records an admin call that changed nothing else (e.g. a refused one is not recorded).
    pub async fn audit(&self, event: NewEvent) -> Result<(), ServiceError> {
        Ok(self.store.apply(&[], &[event]).await?)
    }
}
