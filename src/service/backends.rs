//! The configured HSM backends and their state. A backend that cannot be opened, or that fails
//! with a device-level error (`CKR_DEVICE_ERROR`, `CKR_TOKEN_NOT_PRESENT`, a dead RPC...), is
//! `Down` with a reason: requests for its key sets fail fast with 503 while a recovery task
//! re-initialises the module and logs in again with backoff. The process never restarts for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::{HsmConfig, PinSource, TokenSelector};
use crate::hsm::{Backend, BackendConfig, HsmError};
use crate::signing::SignError;
use crate::support::{Chain, lock, read, write};

/// Why the service cannot start: a PIN source that is not there.
#[derive(Debug, thiserror::Error)]
#[error("hsm `{hsm}`: {reason}")]
pub struct PinError {
    pub(crate) hsm: String,
    pub(crate) reason: String,
}

/// Reads the user PIN from its source. The PIN only ever lives in zeroized buffers.
pub fn resolve_pin(cfg: &HsmConfig) -> Result<SecretString, PinError> {
    let err = |reason: String| PinError {
        hsm: cfg.name.clone(),
        reason,
    };
    match &cfg.pin {
        PinSource::Env(var) => {
            let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                err(format!(
                    "pin_env: the environment variable {var} is not set"
                ))
            })?);
            if value.is_empty() {
                return Err(err(format!("pin_env: {var} is empty")));
            }
            Ok(SecretString::from(value.as_str()))
        }
        PinSource::File(path) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| err(format!("pin_file: cannot read {}: {e}", path.display())))?,
            );
            let pin = text.trim_end_matches(['\r', '\n']);
            if pin.is_empty() {
                return Err(err(format!("pin_file: {} is empty", path.display())));
            }
            Ok(SecretString::from(pin))
        }
    }
}

#[derive(Debug, Clone)]
pub enum BackendState {
    Up(Arc<Backend>),
    Down(DownReason),
}

/// Why a backend is down.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownReason {
    #[error("not opened yet")]
    NotOpened,
    #[error(transparent)]
    Failed(Arc<HsmError>),
}

/// A request for a backend that is down: the `source` of [`SignError::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[error("hsm `{hsm}` is down")]
pub struct BackendDown {
    hsm: String,
    #[source]
    reason: DownReason,
}

/// Recovery backoff: first retry after `BACKOFF_START`, doubling up to `BACKOFF_MAX`.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One `[[hsm]]`: its configuration, PIN, state, and the permits that bound how many operations
/// run (`sessions`) and wait (`max_queue`) on it at once.
#[derive(Debug)]
pub struct BackendSlot {
    pub(crate) config: HsmConfig,
    pin: SecretString,
    state: RwLock<BackendState>,
    /// The context a failure took down, kept until it can be finalised safely.
    stale: Mutex<Option<Arc<Backend>>>,
    /// Serialises (re)opening.
    opening: Mutex<()>,
    recovering: AtomicBool,
    /// Set by a failure, cleared (and counted as a recovery) by the next successful open.
    had_failure: AtomicBool,
    pub(crate) permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
}

impl BackendSlot {
    pub(crate) fn new(config: HsmConfig, pin: SecretString) -> Self {
        let permits = Arc::new(Semaphore::new(config.sessions));
        let max_queue = config.max_queue;
        Self {
            config,
            pin,
            state: RwLock::new(BackendState::Down(DownReason::NotOpened)),
            stale: Mutex::new(None),
            opening: Mutex::new(()),
            recovering: AtomicBool::new(false),
            had_failure: AtomicBool::new(false),
            permits,
            waiting: AtomicUsize::new(0),
            max_queue,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub fn state(&self) -> BackendState {
        read(&self.state).clone()
    }

    fn set_state(&self, s: BackendState) {
        *write(&self.state) = s;
    }

    pub(crate) fn up(&self) -> Result<Arc<Backend>, SignError> {
        match self.state() {
            BackendState::Up(b) => Ok(b),
            BackendState::Down(reason) => Err(SignError::Unavailable(Box::new(BackendDown {
                hsm: self.config.name.clone(),
                reason,
            }))),
        }
    }

    /// Operations waiting for a permit, and operations running (for metrics).
    pub(crate) fn load(&self) -> (usize, usize) {
        let running = self.config.sessions - self.permits.available_permits();
        (self.waiting.load(Ordering::Relaxed), running)
    }

    /// Takes `backend` out of service after `error`, unless a newer context already replaced it,
    /// and starts the recovery task.
    pub(crate) fn failed(self: &Arc<Self>, backend: &Arc<Backend>, error: Arc<HsmError>) {
        {
            let mut state = write(&self.state);
            match &*state {
                BackendState::Up(current) if Arc::ptr_eq(current, backend) => {
                    tracing::error!(hsm = %self.config.name, error = %Chain(&*error),
                        "HSM backend failed; failing fast and recovering");
                    metrics::counter!("signet_hsm_failures_total", "hsm" => self.config.name.clone())
                        .increment(1);
                    self.had_failure.store(true, Ordering::SeqCst);
                    *lock(&self.stale) = Some(current.clone());
                    *state = BackendState::Down(DownReason::Failed(error));
                }
                _ => return,
            }
        }
        self.spawn_recovery();
    }

    /// Re-opens the backend in the background with backoff until it is up again.
    fn spawn_recovery(self: &Arc<Self>) {
        if self.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.recovering.store(false, Ordering::SeqCst);
            return;
        };
        let slot = self.clone();
        runtime.spawn(async move {
            let mut backoff = BACKOFF_START;
            loop {
                tokio::time::sleep(backoff).await;
                let s = slot.clone();
                let opened = tokio::task::spawn_blocking(move || s.open_if_down()).await;
                if matches!(slot.state(), BackendState::Up(_)) || opened.is_err() {
                    break;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            slot.recovering.store(false, Ordering::SeqCst);
        });
    }

    /// Finalises the context a failure took down, once no call is inside it. A context some
    /// thread is still stuck in (a hung HSM) is leaked, never finalised under that thread.
    fn retire_stale(&self) {
        let Some(stale) = lock(&self.stale).take() else {
            return;
        };
        let deadline = Instant::now() + self.config.op_timeout;
        let mut stale = stale;
        loop {
            match Arc::try_unwrap(stale) {
                Ok(backend) => {
                    backend.shutdown();
                    return;
                }
                Err(still_used) if Instant::now() < deadline => {
                    stale = still_used;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(still_used) => {
                    tracing::warn!(hsm = %self.config.name,
                        "a call is still inside the failed PKCS#11 context; leaking it");
                    std::mem::forget(still_used);
                    return;
                }
            }
        }
    }

    /// Opens the backend if it is down. Blocking. Returns whether it is up afterwards.
    pub(crate) fn open_if_down(&self) -> bool {
        // Never wait for another opener: with a hung HSM an open can block for good, and the
        // scheduler's tick (which tries to open every backend) must not hang with it.
        let Ok(_opening) = self.opening.try_lock() else {
            return matches!(self.state(), BackendState::Up(_));
        };
        if matches!(self.state(), BackendState::Up(_)) {
            return true;
        }
        self.retire_stale();
        let (token_label, token_serial) = match &self.config.token {
            TokenSelector::Label(l) => (Some(l.clone()), None),
            TokenSelector::Serial(s) => (None, Some(s.clone())),
        };
        let cfg = BackendConfig {
            name: self.config.name.clone(),
            module: self.config.module.clone(),
            token_label,
            token_serial,
            sessions: self.config.sessions,
            checkout_timeout: self.config.op_timeout,
        };
        match Backend::open(cfg, self.pin.clone()) {
            Ok(b) => {
                tracing::info!(hsm = %self.config.name, slot = b.description().slot,
                    token = %b.description().label, "HSM backend logged in");
                if self.had_failure.swap(false, Ordering::SeqCst) {
                    metrics::counter!("signet_hsm_recoveries_total", "hsm" => self.config.name.clone())
                        .increment(1);
                }
                self.set_state(BackendState::Up(Arc::new(b)));
                true
            }
            Err(e) => {
                tracing::warn!(hsm = %self.config.name, error = %Chain(&e), "HSM backend unavailable");
                self.set_state(BackendState::Down(DownReason::Failed(Arc::new(e))));
                false
            }
        }
    }

    /// Runs `f` on a blocking thread, holding one of `sessions` permits, everything (the wait
    /// for a permit included) within `op_timeout`. More than `max_queue` waiters: busy at once.
    /// An operation that overruns marks the backend failed (a hung HSM).
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> Result<T, SignError> + Send + 'static,
    ) -> Result<T, SignError> {
        self.run_for(self.config.op_timeout, f).await
    }

    /// As [`Self::run`], with an explicit deadline (key generation takes longer than signing).
    pub(crate) async fn run_for<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: Duration,
        f: impl FnOnce() -> Result<T, SignError> + Send + 'static,
    ) -> Result<T, SignError> {
        let until = tokio::time::Instant::now() + deadline;
        self.up()?;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SignError::Busy);
        }
        let permit = tokio::time::timeout_at(until, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit
            .map_err(|_| SignError::Busy)?
            .map_err(|_| SignError::Busy)?;
        // The backend may have gone down while we waited: fail fast rather than call into it.
        let backend = self.up()?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        });
        match tokio::time::timeout_at(until, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(SignError::Internal(Box::new(join))),
            Err(_) => {
                self.failed(&backend, Arc::new(HsmError::Unresponsive(deadline)));
                Err(SignError::Timeout)
            }
        }
    }

    /// As [`Self::run_for`], handing `f` the current backend; a device-level failure takes the
    /// backend out of service and starts its recovery.
    pub async fn with_backend<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: Duration,
        f: impl FnOnce(&Backend) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, SignError> {
        let slot = self.clone();
        self.run_for(deadline, move || {
            let backend = slot.up()?;
            f(&backend).map_err(|e| slot.check(&backend, e))
        })
        .await
    }

    /// Maps an HSM error to the signing layer, taking the backend down when the device is gone.
    pub(crate) fn check(self: &Arc<Self>, backend: &Arc<Backend>, e: HsmError) -> SignError {
        if e.is_unavailable() {
            let e = Arc::new(e);
            self.failed(backend, e.clone());
            return SignError::Unavailable(Box::new(e));
        }
        super::hsm_signer::sign_error(e)
    }
}
