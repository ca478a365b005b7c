//! The service core: key sets with their backends and keys, the in-memory key view, key
//! generation and operator changes, the one signing pipeline (`sign`) the signing routes run
//! through, and the read models the HTTP layer shows (`read`).
//!
//! Wires `hsm/`, `keys/` and `signing/` together; knows nothing of axum.

mod admin;
mod approvals;
mod audit_sink;
mod backends;
mod certs;
mod compact_sign;
mod context;
mod destruction;
mod error;
mod health;
mod held_keys;
pub mod hsm_signer;
mod http_sign;
mod import;
mod jws_sign;
mod keygen;
pub(crate) mod lease;
mod provenance;
mod read;
pub(crate) mod reconcile;
mod route;
mod sign;
mod signing_key;
mod transit;
mod transit_keys;
mod view;
mod workers;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};

use crate::config::{Config, KeySetConfig};
use crate::keys::{KeyRecord, Store};
use crate::support::{Chain, read, write};

pub(crate) use crate::signing::x509::CsrRequest;
pub(crate) use approvals::{ApprovalView, Executed, Held};
pub use backends::{BackendDown, BackendSlot, BackendState, DownReason, PinError, resolve_pin};
pub use compact_sign::{CompactSigned, SignCompact};
pub use error::{ApprovalRefusal, Invalid, Refusal, ServiceError};
pub use http_sign::{HttpSigned, SignHttp};
pub(crate) use import::ImportBy;
pub use jws_sign::{SignJws, SignJwt, Signed};
pub(crate) use read::{BackendGauge, KeyEntry, KeyListing, KeySetGauge, Rfc3339};
pub use sign::{SetKeys, SignOperation};
pub(crate) use signing_key::SigningKeys;
pub use transit::{Marshaling, TransitOptions, TransitSign, TransitSigned};
pub(crate) use view::{Jwks, KeyView};

/// Current time in unix seconds; tests move it instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct Service {
    pub config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub backends: Vec<Arc<BackendSlot>>,
    clock: Arc<dyn Clock>,
    view: RwLock<Arc<KeyView>>,
    jwks_cache: view::JwksCache,
    /// Serialises key changes (admin calls and the scheduler) within this process.
    ops: tokio::sync::Mutex<()>,
    /// The scheduler lease among replicas sharing the store.
    pub(crate) elector: lease::Elector,
    reconciled: RwLock<Option<reconcile::Reconciliation>>,
    /// What the background health check found (see `health`).
    health: RwLock<health::HealthState>,
    /// What the audit sink has written (see `audit_sink`).
    audit_sink: RwLock<audit_sink::SinkStatus>,
    /// Round-robin turn over the backends of key sets with several (`route`).
    spread: AtomicUsize,
}

impl Service {
    /// Builds the service: PINs resolved, backends opened (a backend that fails stays down and is
    /// retried), keys loaded, and every key set given an active and a next key where possible.
    pub async fn start(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Service>, PinError> {
        let mut slots = Vec::new();
        for h in &config.hsms {
            let pin = resolve_pin(h)?;
            slots.push(Arc::new(BackendSlot::new(h.clone(), pin)));
        }
        let elector = lease::Elector::new(lease::holder_id(), config.server.key_refresh);
        let service = Arc::new(Service {
            config,
            store,
            backends: slots,
            clock,
            view: RwLock::new(Arc::new(KeyView::default())),
            jwks_cache: view::JwksCache::default(),
            ops: tokio::sync::Mutex::new(()),
            elector,
            reconciled: RwLock::new(None),
            health: RwLock::default(),
            audit_sink: RwLock::default(),
            spread: AtomicUsize::new(0),
        });
        service.tick().await;
        service.check_health().await;
        service.spawn_health();
        service.start_audit_sink().await;
        Ok(service)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// One round of upkeep: reopen down backends, reload keys, and, on the replica that holds the
    /// scheduler lease only, generate missing keys, record activations, destroy expired keys.
    pub async fn tick(self: &Arc<Self>) {
        for slot in &self.backends {
            // Bounded wait: an open stuck on a hung HSM must not stall the upkeep of the others
            // (the stuck opener keeps the slot's open lock, so no second one piles up).
            let s = slot.clone();
            let open = tokio::task::spawn_blocking(move || s.open_if_down());
            let _ = tokio::time::timeout(2 * slot.config.op_timeout, open).await;
        }
        if let Err(e) = self.reload().await {
            tracing::error!(error = %Chain(&e), "cannot load keys from the store");
            return;
        }
        let now = self.now();
        let was_leader = self.elector.state().leader || self.elector.continues(now);
        if !self.elector.try_lead(&*self.store, now).await {
            return;
        }
        if !was_leader {
            // Start-up, or a take-over: account for what the previous holder may have left. Not
            // after a store blip within this replica's own lease: nobody else held it, and a
            // token listing while the process is short of resources (EMFILE) can make SoftHSM
            // drop the objects it cannot open.
            self.reconcile().await;
        }
        if let Err(e) = self.expire_lapsed_approvals().await {
            tracing::warn!(error = %Chain(&e), "cannot record expired approvals");
        }
        let _ops = self.ops.lock().await;
        for (i, set) in self.config.key_sets.iter().enumerate() {
            // Renewed before every further key set: a generation may take seconds.
            if i > 0 && !self.elector.try_lead(&*self.store, self.now()).await {
                return;
            }
            if let Err(e) = self.ensure_keys(set).await {
                tracing::warn!(key_set = %set.name, error = %Chain(&e), "cannot complete the key set");
            }
            if let Err(e) = self.note_activation(set).await {
                tracing::warn!(key_set = %set.name, error = %Chain(&e), "cannot record the activation");
            }
            if let Err(e) = self.destroy_due(set).await {
                tracing::warn!(key_set = %set.name, error = %Chain(&e), "cannot destroy keys whose time has come");
            }
        }
    }

    /// Reloads every key from the store and rebuilds the view (a failure keeps the cached view
    /// and starts, or continues, the store's grace period: see `health`).
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let records = match self.store.keys().await {
            Ok(records) => {
                self.store_ok();
                records
            }
            Err(e) => {
                self.store_failed(&Chain(&e).to_string());
                return Err(e.into());
            }
        };
        let view = KeyView::build(&self.config, &self.backends, records);
        *write(&self.view) = Arc::new(view);
        Ok(())
    }

    /// The current key view (an `Arc` snapshot).
    pub(crate) fn view(&self) -> Arc<KeyView> {
        read(&self.view).clone()
    }

    pub(crate) fn key_set(&self, name: &str) -> Result<&KeySetConfig, ServiceError> {
        self.config
            .key_set(name)
            .ok_or_else(|| ServiceError::KeySetNotFound(name.to_string()))
    }

    /// The backend key set `set`'s keys are generated, imported and destroyed on: its first.
    pub(crate) fn backend_of(&self, set: &KeySetConfig) -> &Arc<BackendSlot> {
        &self.backends[set.hsms[0]]
    }

    /// Every backend of key set `set`.
    pub(crate) fn backends_of<'a>(
        &'a self,
        set: &'a KeySetConfig,
    ) -> impl Iterator<Item = &'a Arc<BackendSlot>> + 'a {
        set.hsms.iter().map(|&i| &self.backends[i])
    }

    /// Records of one key set, oldest first.
    pub fn records(&self, set: &str) -> Vec<KeyRecord> {
        self.view().records(set).to_vec()
    }

    /// The JWKS of one key set, or of all of them (`None`).
    pub fn jwks(&self, set: Option<&str>) -> Result<Arc<Jwks>, ServiceError> {
        if let Some(name) = set {
            self.key_set(name)?;
        }
        Ok(self
            .jwks_cache
            .get(&self.config, &self.view(), set, self.now()))
    }
}
