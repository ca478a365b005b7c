//! Destruction of private objects (DESIGN.md "HTTP API v1", `DELETE .../keys/{kid}`): an admin's
//! request schedules it `destroy_delay` later (`0s`: within the request), shown as
//! `pending_destruction` and cancellable until then; `destroy_after` schedules an expired key the
//! same way. The scheduler (lease holder only) destroys what is due. The schedule lives in the
//! store (`keys.destroy_at`), so it survives restarts and any replica that takes the lease
//! carries it out. Every step is audited: `destruction_scheduled`, `destruction_cancelled`,
//! `destroyed`. The public JWK stays in the store for ever.

use serde_json::json;

use super::keygen::SCHEDULER;
use super::{KeyEntry, Refusal, Service, ServiceError};
use crate::config::{KeySetConfig, format_duration};
use crate::keys::{KeyChange, KeyRecord, KeyState, NewEvent, lifecycle};

impl Service {
    /// The key `kid` of `cfg` if its private object may be destroyed (or its destruction
    /// scheduled) at `now`: known, not destroyed, and expired or revoked.
    pub(super) fn destroyable(
        &self,
        cfg: &KeySetConfig,
        kid: &str,
        now: i64,
    ) -> Result<(KeyRecord, KeyState), ServiceError> {
        let set = cfg.name.as_str();
        let key = self.find(set, kid)?;
        if key.destroyed_at.is_some() {
            return Err(Refusal::AlreadyDestroyed(kid.to_string()).into());
        }
        let retain = cfg.policy.retain.as_secs() as i64;
        let state = lifecycle::state(&self.records(set), &key, retain, now);
        if !matches!(state, KeyState::Expired { .. } | KeyState::Revoked) {
            return Err(Refusal::KeyInUse {
                kid: kid.to_string(),
                state: state.name(),
            }
            .into());
        }
        Ok((key, state))
    }

    /// An admin's request to destroy `kid`: at once when the key set's `destroy_delay` is 0,
    /// else scheduled that long from now (a destruction already pending keeps its time). Returns
    /// the key's entry afterwards: `destroyed_at` set, or `pending_destruction`.
    pub(crate) async fn destroy(
        &self,
        set: &str,
        kid: &str,
        actor: &str,
    ) -> Result<KeyEntry, ServiceError> {
        let cfg = self.key_set(set)?;
        self.store_reachable()?;
        let _ops = self.ops.lock().await;
        let delay = cfg.policy.destroy_delay;
        if delay.is_zero() {
            self.destroy_locked(cfg, kid, actor, "admin").await?;
        } else {
            let now = self.now();
            let (key, state) = self.destroyable(cfg, kid, now)?;
            if key.destroy_at.is_none() {
                let at = now + delay.as_secs() as i64;
                let detail = json!({
                    "why": "admin", "state": state.name(), "destroy_at": at,
                    "destroy_delay": format_duration(delay),
                });
                self.schedule_destruction(set, kid, now, at, actor, detail)
                    .await?;
            }
        }
        self.key_entry(set, kid)
    }

    async fn schedule_destruction(
        &self,
        set: &str,
        kid: &str,
        now: i64,
        at: i64,
        actor: &str,
        detail: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let change = KeyChange::ScheduleDestruction {
            key_set: set.into(),
            kid: kid.into(),
            at,
        };
        let event = NewEvent::new(now, actor, "destruction_scheduled")
            .key(set, kid)
            .detail(detail);
        self.store.apply(&[change], &[event]).await?;
        self.reload().await
    }

    /// Cancels the pending destruction of `kid` (409 `no_pending_destruction` when none is
    /// pending, `already_destroyed` when it is too late). Returns the key's entry afterwards.
    pub(crate) async fn cancel_destruction(
        &self,
        set: &str,
        kid: &str,
        actor: &str,
    ) -> Result<KeyEntry, ServiceError> {
        self.key_set(set)?;
        self.store_reachable()?;
        let _ops = self.ops.lock().await;
        let key = self.find(set, kid)?;
        if key.destroyed_at.is_some() {
            return Err(Refusal::AlreadyDestroyed(kid.to_string()).into());
        }
        let Some(was) = key.destroy_at else {
            return Err(Refusal::NoPendingDestruction(kid.to_string()).into());
        };
        let now = self.now();
        let change = KeyChange::CancelDestruction {
            key_set: set.into(),
            kid: kid.into(),
            at: now,
        };
        let event = NewEvent::new(now, actor, "destruction_cancelled")
            .key(set, kid)
            .detail(json!({ "destroy_at": was }));
        self.store.apply(&[change], &[event]).await?;
        self.reload().await?;
        self.key_entry(set, kid)
    }

    /// Destroys the private object of `kid` now (the caller holds the operator lock) and records
    /// it; a key already gone from the token is recorded as destroyed too.
    async fn destroy_locked(
        &self,
        cfg: &KeySetConfig,
        kid: &str,
        actor: &str,
        why: &str,
    ) -> Result<(), ServiceError> {
        let set = cfg.name.as_str();
        let now = self.now();
        let (key, state) = self.destroyable(cfg, kid, now)?;
        let id = key.hsm_id.clone();
        let slot = self.backend_of(cfg);
        let gone = slot
            .with_backend(slot.config.op_timeout, move |b| match b.destroy(&id) {
                Ok(()) => Ok(false),
                Err(crate::hsm::HsmError::KeyNotFound(_)) => Ok(true),
                Err(e) => Err(e),
            })
            .await?;
        let event = NewEvent::new(now, actor, "destroyed")
            .key(set, kid)
            .detail(json!({
                "why": why, "state": state.name(), "already_gone": gone,
                "destroy_at": key.destroy_at,
            }));
        let change = KeyChange::Destroyed {
            key_set: set.into(),
            kid: kid.into(),
            at: now,
        };
        self.store.apply(&[change], &[event]).await?;
        self.reload().await
    }

    /// The scheduler's part (lease holder only, operator lock held): schedules keys expired
    /// under `destroy_after` (at expiry + `destroy_after`, unless an operator cancelled their
    /// destruction before), then destroys every key whose `destroy_at` has come.
    pub(super) async fn destroy_due(&self, cfg: &KeySetConfig) -> Result<(), ServiceError> {
        let now = self.now();
        let set = cfg.name.as_str();
        if let Some(after) = cfg.policy.destroy_after {
            let records = self.records(set);
            let retain = cfg.policy.retain.as_secs() as i64;
            for k in &records {
                if k.destroyed_at.is_some()
                    || k.destroy_at.is_some()
                    || k.destroy_cancelled_at.is_some()
                {
                    continue;
                }
                if let KeyState::Expired { since } = lifecycle::state(&records, k, retain, now) {
                    let at = since + after.as_secs() as i64;
                    let detail = json!({
                        "why": "destroy_after", "state": "expired", "destroy_at": at,
                        "destroy_after": format_duration(after),
                    });
                    self.schedule_destruction(set, &k.kid, now, at, SCHEDULER, detail)
                        .await?;
                }
            }
        }
        let due: Vec<String> = self
            .records(set)
            .into_iter()
            .filter(|k| k.destroyed_at.is_none() && k.destroy_at.is_some_and(|at| at <= now))
            .map(|k| k.kid)
            .collect();
        for kid in due {
            self.destroy_locked(cfg, &kid, SCHEDULER, "scheduled")
                .await?;
        }
        Ok(())
    }
}
