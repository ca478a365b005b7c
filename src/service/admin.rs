//! Operator changes to keys: rotate, revoke, the `activated` record, and the audit trail's reads. Every change and its audit event land in one store
//! transaction; the key view is reloaded right after, so this replica signs with the new key and
//! serves the new JWKS from the next request on. Imports are in `import`, destruction in
//! `destruction`.

use serde_json::json;

use super::held_keys::SeenKeys;
use super::keygen::SCHEDULER;
use super::{Invalid, Refusal, Service, ServiceError};
use crate::config::KeySetConfig;
use crate::keys::audit::{self, AuditEvent, ChainBreak};
use crate::keys::{KeyChange, KeyRecord, KeyState, NewEvent, lifecycle};
use crate::support::Chain;

impl Service {
    pub(super) fn find(&self, set: &str, kid: &str) -> Result<KeyRecord, ServiceError> {
        self.records(set)
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| ServiceError::KeyNotFound {
                set: set.to_string(),
                kid: kid.to_string(),
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
            return Err(Refusal::MinPublishNotMet {
                kid: key.kid.clone(),
                published_at: key.created_at,
                earliest: key.created_at + min,
                min_publish: crate::config::format_duration(cfg.policy.min_publish),
            }
            .into());
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
        self.rotate_expecting(set, activate_at, force, actor, None)
            .await
    }

    /// [`Self::rotate`]; with `expect` (an approval's id and the keys its requester saw), a key
    /// set whose active or next key changed since is refused (`approval_stale`).
    pub(super) async fn rotate_expecting(
        &self,
        set: &str,
        activate_at: Option<i64>,
        force: bool,
        actor: &str,
        expect: Option<(&str, &SeenKeys)>,
    ) -> Result<KeyRecord, ServiceError> {
        let cfg = self.key_set(set)?;
        self.store_reachable()?;
        let _ops = self.ops.lock().await;
        let now = self.now();
        let at = activate_at.unwrap_or(now);
        if at < now {
            return Err(Invalid::ActivateAtInPast.into());
        }
        let records = self.records(set);
        let active = lifecycle::active(&records, now);
        if let Some((id, seen)) = expect {
            seen.still(id, &records, now)?;
        }
        let from = active.map(|k| k.kid.clone());
        // Times have one-second resolution and equal activation times tie-break by kid: a second
        // rotation within the same second as the last activation takes effect one second later.
        let at = at.max(active.map_or(at, |a| a.activate_at + 1));
        let next = match lifecycle::next(&records, now).cloned() {
            Some(n) => n,
            None if force => self.generate(cfg, at, actor, "forced rotation").await?,
            None => return Err(Refusal::NoNextKey(set.to_string()).into()),
        };
        if next.awaits_certificate() {
            return Err(Refusal::CertificateRequired(next.kid).into());
        }
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
    pub(crate) async fn revoke(
        &self,
        set: &str,
        kid: &str,
        reason: &str,
        force: bool,
        actor: &str,
    ) -> Result<Option<String>, ServiceError> {
        let cfg = self.key_set(set)?;
        if reason.trim().is_empty() {
            return Err(Invalid::ReasonRequired.into());
        }
        self.store_reachable()?;
        let _ops = self.ops.lock().await;
        let now = self.now();
        let key = self.find(set, kid)?;
        if key.revoked_at.is_some() {
            return Err(Refusal::AlreadyRevoked(kid.to_string()).into());
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
                None => return Err(Refusal::NoNextKey(set.to_string()).into()),
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
            tracing::error!(key_set = set, error = %Chain(&e), "revoked, but no new next key yet");
        }
        Ok(promoted)
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

    /// Records a refused admin call (`call` on key set `set`, if any, by `actor`), with the
    /// problem code and detail the caller was given.
    pub(crate) async fn audit_refusal(
        &self,
        actor: &str,
        call: &str,
        set: &str,
        code: &str,
        detail: &str,
    ) -> Result<(), ServiceError> {
        self.store_reachable()?;
        let mut event = NewEvent::new(self.now(), actor, "refused")
            .detail(json!({ "call": call, "code": code, "detail": detail }));
        if !set.is_empty() {
            event = event.set(set);
        }
        Ok(self.store.apply(&[], &[event]).await?)
    }
}
