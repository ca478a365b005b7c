//! The background health check and what `/readyz` answers from it.
//!
//! A task ([`Service::spawn_health`]) probes every `[server] health_interval`: it reloads the key
//! view from the store and pings each HSM that is up. `/readyz` reads what the last probe found
//! and never calls into the HSM or the store itself, however often it is asked.
//!
//! The store: the first failed load of the key view (by the probe or any reload) starts the
//! clock; the next successful one stops it. While it has been failing for less than
//! `[store] grace` the replica is `degraded` (200): signing and the JWKS go on from the cached
//! view, and operator changes answer `store_unavailable` at once instead of waiting on the store.
//! Past `grace` the replica can no longer learn of a revocation: `/readyz` answers 503 and
//! signing stops with `key_view_stale`, until the store answers again.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use serde::Serialize;

use super::backends::{BackendSlot, BackendState};
use super::reconcile::Reconciliation;
use super::{Service, ServiceError};
use crate::support::{Chain, read, write};

/// What the last probes found.
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthState {
    /// When the last probe finished (unix seconds).
    checked_at: Option<i64>,
    /// Since when loading the key view from the store fails, and the last error.
    store_down: Option<(i64, String)>,
    /// Each backend's last probe: `None` up, `Some(reason)` down.
    backends: BTreeMap<String, Option<String>>,
}

/// A component of `/readyz`: `{"state": "up"}` or `{"state": "down", "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub(crate) enum ComponentState {
    Up,
    Down { reason: String },
}

impl ComponentState {
    fn word(&self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down { .. } => "down",
        }
    }
}

/// A key set in `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KeySetReadiness {
    pub(crate) active_kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<&'static str>,
    /// What does not stop signing but needs an operator (certificates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
    /// Backends of the key set on which the last reconciliation did not find the active key by
    /// its `CKA_ID` (signing moves to the others).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) missing_on: Vec<String>,
}

/// The scheduler lease in `/readyz` (informative, not a readiness condition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SchedulerStatus {
    pub(crate) leader: bool,
    pub(crate) holder: Option<String>,
    pub(crate) lease_expires_at: Option<i64>,
    pub(crate) error: Option<String>,
}

/// `/readyz` with details (admin and auditor): `ready`, `degraded` (signing works, something
/// else does not) or `not_ready` (some key set cannot sign, or the key view is stale).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Readiness {
    pub(crate) status: &'static str,
    /// When the background health check last probed (unix seconds).
    pub(crate) checked_at: Option<i64>,
    pub(crate) store: ComponentState,
    /// Since when the store has been unreachable (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_down_since: Option<i64>,
    pub(crate) backends: BTreeMap<String, ComponentState>,
    /// The `[audit] sink`, if one is configured: down while it cannot be written (the events
    /// wait in the store; signing goes on, so the replica is `degraded`, not `not_ready`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audit_sink: Option<ComponentState>,
    pub(crate) key_sets: BTreeMap<String, KeySetReadiness>,
    pub(crate) scheduler: SchedulerStatus,
    /// What the start-up reconciliation found (informative).
    pub(crate) reconciliation: Option<Reconciliation>,
}

/// `/readyz` without credentials: the status and each component's up/down, nothing more.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PublicReadiness {
    pub(crate) status: &'static str,
    pub(crate) store: &'static str,
    pub(crate) backends: BTreeMap<String, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audit_sink: Option<&'static str>,
    pub(crate) key_sets: BTreeMap<String, &'static str>,
}

impl Readiness {
    /// 200 (`ready` or `degraded`) or 503.
    pub(crate) fn can_sign(&self) -> bool {
        self.status != "not_ready"
    }

    pub(crate) fn public(&self) -> PublicReadiness {
        PublicReadiness {
            status: self.status,
            store: self.store.word(),
            backends: (self.backends.iter())
                .map(|(k, v)| (k.clone(), v.word()))
                .collect(),
            audit_sink: self.audit_sink.as_ref().map(ComponentState::word),
            key_sets: (self.key_sets.iter())
                .map(|(k, v)| (k.clone(), if v.reason.is_none() { "up" } else { "down" }))
                .collect(),
        }
    }
}

impl Service {
    /// Starts the background health check: a probe every `health_interval` (the first one
    /// having run at start-up), until the service is dropped.
    pub(super) fn spawn_health(self: &Arc<Self>) {
        let weak: Weak<Service> = Arc::downgrade(self);
        let every = self.config.server.health_interval;
        let _task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                service.check_health().await;
            }
        });
    }

    /// One probe: the key view reloaded from the store, and every HSM that is up pinged.
    pub async fn check_health(&self) {
        let deadline = (self.config.server.health_interval).clamp(STORE_PROBE_MIN, STORE_PROBE_MAX);
        match tokio::time::timeout(deadline, self.reload()).await {
            Ok(_) => {} // `reload` records success and failure itself.
            Err(_) => self.store_failed(&format!("no answer within {deadline:?}")),
        }
        let mut backends = BTreeMap::new();
        for slot in &self.backends {
            let state = match slot.state() {
                BackendState::Down(reason) => Some(reason.to_string()),
                BackendState::Up(_) => slot
                    .with_backend(slot.config.op_timeout, |b| b.ping())
                    .await
                    .err()
                    .map(|e| Chain(&e).to_string()),
            };
            backends.insert(slot.config.name.clone(), state);
        }
        let mut h = write(&self.health);
        h.backends = backends;
        h.checked_at = Some(self.now());
    }

    /// Records a successful load from the store.
    pub(super) fn store_ok(&self) {
        let was = write(&self.health).store_down.take();
        if let Some((since, _)) = was {
            tracing::info!(down_since = since, "the store answers again");
        }
    }

    /// Records a failed load from the store (the first failure starts the grace period).
    pub(super) fn store_failed(&self, error: &str) {
        let now = self.now();
        let mut h = write(&self.health);
        match &mut h.store_down {
            Some((_, e)) => *e = error.to_string(),
            None => {
                tracing::warn!(
                    error,
                    "the store is unreachable; signing from the cached key view"
                );
                h.store_down = Some((now, error.to_string()));
            }
        }
    }

    /// Operator changes need the store: refused at once while it is known to be unreachable.
    pub(super) fn store_reachable(&self) -> Result<(), ServiceError> {
        match &read(&self.health).store_down {
            Some((since, _)) => Err(ServiceError::StoreUnavailable { since: *since }),
            None => Ok(()),
        }
    }

    /// Signing stops once the store has been unreachable for longer than `[store] grace`.
    pub(super) fn view_fresh(&self) -> Result<(), ServiceError> {
        let grace = self.config.store.grace.as_secs() as i64;
        match read(&self.health).store_down {
            Some((since, _)) if self.now() - since > grace => {
                Err(ServiceError::KeyViewStale { since, grace })
            }
            _ => Ok(()),
        }
    }

    /// `/readyz`, from the last probes and the key view (no call into the HSM or the store).
    pub(crate) fn readiness(&self) -> Readiness {
        let health = read(&self.health).clone();
        let now = self.now();
        let stale = self.view_fresh().is_err();
        let store = match &health.store_down {
            None => ComponentState::Up,
            Some((_, e)) => ComponentState::Down { reason: e.clone() },
        };
        // Down if the last probe failed, or if a request has taken it down since (its state is
        // kept in memory: reading it calls nothing).
        let backend_state =
            |slot: &BackendSlot| match (slot.state(), health.backends.get(slot.name())) {
                (BackendState::Down(reason), _) => ComponentState::Down {
                    reason: reason.to_string(),
                },
                (BackendState::Up(_), Some(None)) => ComponentState::Up,
                (BackendState::Up(_), Some(Some(reason))) => ComponentState::Down {
                    reason: reason.clone(),
                },
                (BackendState::Up(_), None) => ComponentState::Down {
                    reason: "not probed yet".into(),
                },
            };
        let backends: BTreeMap<String, ComponentState> = (self.backends.iter())
            .map(|s| (s.config.name.clone(), backend_state(s.as_ref())))
            .collect();
        let view = self.view();
        let key_sets = self.key_set_readiness(&backends, &view, now, stale);
        let audit_sink = self.audit_sink_state();
        let all_up = store == ComponentState::Up
            && backends.values().all(|b| *b == ComponentState::Up)
            && audit_sink.as_ref().is_none_or(|s| *s == ComponentState::Up);
        let status = if key_sets.values().any(|k| k.reason.is_some()) {
            "not_ready"
        } else if all_up {
            "ready"
        } else {
            "degraded"
        };
        let lease = self.elector.state();
        Readiness {
            status,
            checked_at: health.checked_at,
            store,
            store_down_since: health.store_down.map(|(since, _)| since),
            backends,
            audit_sink,
            key_sets,
            scheduler: SchedulerStatus {
                leader: lease.leader,
                holder: lease.holder.as_ref().map(|l| l.holder.clone()),
                lease_expires_at: lease.holder.as_ref().map(|l| l.expires_at),
                error: lease.error,
            },
            reconciliation: self.reconciliation(),
        }
    }
}

/// The store probe's deadline: the health interval, within these bounds.
const STORE_PROBE_MIN: std::time::Duration = std::time::Duration::from_secs(1);
const STORE_PROBE_MAX: std::time::Duration = std::time::Duration::from_secs(5);

impl Service {
    /// Whether each key set can sign: an active key, one of its backends up, a fresh key view.
    fn key_set_readiness(
        &self,
        backends: &BTreeMap<String, ComponentState>,
        view: &super::view::KeyView,
        now: i64,
        stale: bool,
    ) -> BTreeMap<String, KeySetReadiness> {
        let missing = self.reconciliation().map(|r| r.missing).unwrap_or_default();
        (self.config.key_sets.iter())
            .map(|s| {
                let active_kid = view.active(&s.name, now).map(|k| k.kid.clone());
                let any_up = self
                    .backends_of(s)
                    .any(|b| backends.get(b.name()) == Some(&ComponentState::Up));
                let reason = if active_kid.is_none() {
                    Some("no usable active key")
                } else if !any_up {
                    Some("every backend of the key set is down")
                } else if stale {
                    Some("key view stale: the store has been unreachable longer than grace")
                } else {
                    None
                };
                let missing_on = (missing.iter())
                    .filter(|m| m.key_set == s.name && Some(&m.kid) == active_kid.as_ref())
                    .map(|m| m.hsm.clone())
                    .collect();
                let readiness = KeySetReadiness {
                    warnings: super::certs::warnings(s, view.records(&s.name), now),
                    active_kid,
                    reason,
                    missing_on,
                };
                (s.name.clone(), readiness)
            })
            .collect()
    }
}
