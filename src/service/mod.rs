//! The service core: key sets with their backends and keys, the in-memory key view, key
//! generation, and the signing operations the HTTP layer calls.
//!
//! Wires `hsm/`, `keys/` and `signing/` together; knows nothing of axum.

mod admin;
mod backends;
pub mod hsm_signer;
pub mod http_sign;
mod keygen;
pub mod lease;
pub mod reconcile;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value};

use crate::config::{Config, KeySetConfig};
use crate::keys::{KeyRecord, Store, StoreError};
use crate::signing::{ClaimPolicy, PolicyError, Profile, SignError, jws};

pub use admin::ImportBy;
pub use backends::{BackendSlot, BackendState, PinError, resolve_pin};
pub use view::{Jwks, KeyView};

/// Current time in unix seconds; tests move it instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A domain failure; the HTTP layer maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no key set named `{0}`")]
    KeySetNotFound(String),
    #[error("key set `{set}` has profile {profile}; {route} is not available for it")]
    WrongProfile {
        set: String,
        profile: &'static str,
        route: &'static str,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("key set `{0}` has no active key")]
    NoActiveKey(String),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service cannot start (a PIN source is missing).
    #[error("{0}")]
    Start(String),
}

/// What a sign call returns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Signed {
    #[serde(skip)]
    pub token: String,
    pub kid: String,
    pub alg: &'static str,
}

#[derive(Debug)]
pub struct Service {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub backends: Vec<Arc<BackendSlot>>,
    clock: Arc<dyn Clock>,
    view: RwLock<Arc<KeyView>>,
    jwks_cache: view::JwksCache,
    /// Serialises key changes (admin calls and the scheduler) within this process.
    ops: tokio::sync::Mutex<()>,
    /// The scheduler lease among replicas sharing the store.
    pub elector: lease::Elector,
    reconciled: RwLock<Option<reconcile::Reconciliation>>,
}

impl Service {
    /// Builds the service: PINs resolved, backends opened (a backend that fails stays down and is
    /// retried), keys loaded, and every key set given an active and a next key where possible.
    pub async fn start(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Service>, ServiceError> {
        let mut slots = Vec::new();
        for h in &config.hsms {
            let pin = resolve_pin(h).map_err(|e| ServiceError::Start(e.to_string()))?;
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
        });
        service.tick().await;
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
            tracing::error!(error = %e, "cannot load keys from the store");
            return;
        }
        let was_leader = self.elector.state().leader;
        if !self.elector.try_lead(&*self.store, self.now()).await {
            return;
        }
        if !was_leader {
            // Start-up, or a take-over: account for what the previous holder may have left.
            self.reconcile().await;
        }
        let _ops = self.ops.lock().await;
        for (i, set) in self.config.key_sets.iter().enumerate() {
            // Renewed before every further key set: a generation may take seconds.
            if i > 0 && !self.elector.try_lead(&*self.store, self.now()).await {
                return;
            }
            if let Err(e) = self.ensure_keys(set).await {
                tracing::warn!(key_set = %set.name, error = %e, "cannot complete the key set");
            }
            if let Err(e) = self.note_activation(set).await {
                tracing::warn!(key_set = %set.name, error = %e, "cannot record the activation");
            }
            if let Err(e) = self.destroy_expired(set).await {
                tracing::warn!(key_set = %set.name, error = %e, "cannot destroy expired keys");
            }
        }
    }

    /// Reloads every key from the store and rebuilds the view.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let records = self.store.keys().await?;
        let view = KeyView::build(&self.config, &self.backends, records);
        if let Ok(mut v) = self.view.write() {
            *v = Arc::new(view);
        }
        Ok(())
    }

    pub fn view(&self) -> Arc<KeyView> {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn key_set(&self, name: &str) -> Result<&KeySetConfig, ServiceError> {
        self.config
            .key_set(name)
            .ok_or_else(|| ServiceError::KeySetNotFound(name.to_string()))
    }

    pub fn backend_of(&self, set: &KeySetConfig) -> &Arc<BackendSlot> {
        &self.backends[set.hsm]
    }

    /// Records of one key set, oldest first.
    pub fn records(&self, set: &str) -> Vec<KeyRecord> {
        self.view().records(set).to_vec()
    }

    /// `sign_jwt` without its metric.
    async fn sign_jwt_unobserved(
        &self,
        actor: &str,
        set: &str,
        claims: Map<String, Value>,
        header: Map<String, Value>,
    ) -> Result<Signed, ServiceError> {
        let cfg = self.key_set(set)?;
        if !cfg.profile.signs_jwt() {
            return Err(ServiceError::WrongProfile {
                set: set.into(),
                profile: cfg.profile.name(),
                route: "sign/jwt",
            });
        }
        let now = self.now();
        let policy = ClaimPolicy {
            issuer: &cfg.issuer,
            max_lifetime_s: cfg.policy.max_lifetime.as_secs() as i64,
            clock_skew_s: cfg.policy.clock_skew.as_secs() as i64,
        };
        let header = cfg.profile.header(&header)?;
        cfg.profile.check_claims(&claims, &policy, now)?;
        let key = self.view().signing_key(set, now)?;
        let (kid, alg) = (key.kid().to_string(), key.alg().jose_name());
        let token = self
            .backend_of(cfg)
            .run(move || jws::sign_jwt(&key, header, &claims))
            .await?;
        self.audit_signature(cfg, actor, &kid, &token).await?;
        Ok(Signed { token, kid, alg })
    }

    /// `sign_jws` without its metric.
    async fn sign_jws_unobserved(
        &self,
        actor: &str,
        set: &str,
        payload_b64: &str,
        header: Map<String, Value>,
        detached: bool,
    ) -> Result<Signed, ServiceError> {
        let cfg = self.key_set(set)?;
        if cfg.profile != Profile::Generic {
            return Err(ServiceError::WrongProfile {
                set: set.into(),
                profile: cfg.profile.name(),
                route: "sign/jws",
            });
        }
        let payload = B64URL
            .decode(payload_b64.trim_end_matches('='))
            .map_err(|_| ServiceError::BadRequest {
                code: "payload_not_base64url",
                message: "`payload` must be base64url".into(),
            })?;
        let header = cfg.profile.header(&header)?;
        let key = self.view().signing_key(set, self.now())?;
        let (kid, alg) = (key.kid().to_string(), key.alg().jose_name());
        let compact = self
            .backend_of(cfg)
            .run(move || jws::sign_compact(&key, header, &payload, true))
            .await?;
        self.audit_signature(cfg, actor, &kid, &compact).await?;
        let token = if detached {
            jws::detach(&compact)
        } else {
            compact
        };
        Ok(Signed { token, kid, alg })
    }

    /// Signs `claims` as a JWT under key set `set`'s profile.
    pub async fn sign_jwt(
        &self,
        actor: &str,
        set: &str,
        claims: Map<String, Value>,
        header: Map<String, Value>,
    ) -> Result<Signed, ServiceError> {
        let result = self.sign_jwt_unobserved(actor, set, claims, header).await;
        self.observe_signature(set, &result);
        result
    }

    /// Signs an arbitrary payload (profile `generic` only).
    pub async fn sign_jws(
        &self,
        actor: &str,
        set: &str,
        payload_b64: &str,
        header: Map<String, Value>,
        detached: bool,
    ) -> Result<Signed, ServiceError> {
        let result = self
            .sign_jws_unobserved(actor, set, payload_b64, header, detached)
            .await;
        self.observe_signature(set, &result);
        result
    }

    /// Counts a sign call in `signet_signatures_total{key_set, alg, outcome}`.
    pub(crate) fn observe_signature<T>(&self, set: &str, result: &Result<T, ServiceError>) {
        let Some(cfg) = self.config.key_set(set) else {
            return;
        };
        let outcome = match result {
            Ok(_) => "ok",
            Err(ServiceError::Policy(_) | ServiceError::BadRequest { .. }) => "rejected",
            Err(ServiceError::WrongProfile { .. }) => "rejected",
            Err(ServiceError::Sign(SignError::Busy)) => "busy",
            Err(ServiceError::Sign(SignError::Timeout)) => "timeout",
            Err(ServiceError::Sign(SignError::Unavailable(_)) | ServiceError::NoActiveKey(_)) => {
                "unavailable"
            }
            Err(_) => "error",
        };
        metrics::counter!("signet_signatures_total",
            "key_set" => cfg.name.clone(), "alg" => cfg.alg.jose_name(), "outcome" => outcome)
        .increment(1);
    }

    /// The optional per-signature audit record: never the payload, only a digest of the signing
    /// input. A signature whose record cannot be written is not returned.
    async fn audit_signature(
        &self,
        cfg: &KeySetConfig,
        actor: &str,
        kid: &str,
        compact: &str,
    ) -> Result<(), ServiceError> {
        if !cfg.audit_signatures {
            return Ok(());
        }
        let input = compact.rsplit_once('.').map_or(compact, |(input, _)| input);
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(input.as_bytes()));
        let event = crate::keys::NewEvent::new(self.now(), actor, "signed")
            .key(&cfg.name, kid)
            .detail(serde_json::json!({ "profile": cfg.profile.name(), "input_sha256": digest }));
        Ok(self.store.apply(&[], &[event]).await?)
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

    /// Readiness: the store answers, every backend is up, every key set has an active key.
    pub async fn readiness(&self) -> Readiness {
        let store = match self.store.ping().await {
            Ok(()) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        let mut backends = HashMap::new();
        for slot in &self.backends {
            let state = match slot.state() {
                BackendState::Down(reason) => Err(reason),
                BackendState::Up(_) => slot
                    .with_backend(slot.config.op_timeout, |b| b.ping())
                    .await
                    .map_err(|e| e.to_string()),
            };
            backends.insert(slot.config.name.clone(), state);
        }
        let now = self.now();
        let view = self.view();
        let key_sets = self
            .config
            .key_sets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    view.active(&s.name, now).map(|k| k.kid.clone()),
                )
            })
            .collect();
        Readiness {
            store,
            backends,
            key_sets,
            scheduler: self.elector.state(),
            reconciliation: self.reconciliation(),
        }
    }
}

/// What `/readyz` reports.
#[derive(Debug)]
pub struct Readiness {
    pub store: Result<(), String>,
    pub backends: HashMap<String, Result<(), String>>,
    /// Active kid per key set.
    pub key_sets: HashMap<String, Option<String>>,
    /// The scheduler lease as this replica last saw it (informative, not a readiness condition).
    pub scheduler: lease::Leadership,
    /// What the start-up reconciliation found (informative).
    pub reconciliation: Option<reconcile::Reconciliation>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.store.is_ok()
            && self.backends.values().all(Result::is_ok)
            && self.key_sets.values().all(Option::is_some)
    }
}
