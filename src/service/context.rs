//! One module context of an `[[hsm]]`: a [`Backend`] (module instance, login, session pool) that
//! a device-level failure takes `Down` on its own while a recovery task re-initialises it with
//! backoff. A context some call is stuck in (a hung HSM) is leaked, never finalised under it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::backends::{BackendDown, BackendState, DownReason};
use super::workers::{Refused, Workers};
use crate::config::{HsmConfig, TokenSelector};
use crate::hsm::{Backend, BackendConfig, HsmError};
use crate::signing::SignError;
use crate::support::{Chain, lock, read, write};
use secrecy::SecretString;

/// Recovery backoff: first retry after `BACKOFF_START`, doubling up to `BACKOFF_MAX`.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One module context of an `[[hsm]]` (its own connection, login and session pool): its state,
/// and the worker threads its operations run on, `sessions` of them, with at most `max_queue`
/// operations waiting. Each context fails and recovers on its own.
#[derive(Debug)]
pub struct Context {
    pub(crate) config: HsmConfig,
    /// Which of the backend's contexts this is (for logs).
    index: usize,
    pin: SecretString,
    state: RwLock<BackendState>,
    /// The context a failure took down, kept until it can be finalised safely.
    stale: Mutex<Option<Arc<Backend>>>,
    /// Serialises (re)opening.
    opening: Mutex<()>,
    recovering: AtomicBool,
    /// Set by a failure, cleared (and counted as a recovery) by the next successful open.
    had_failure: AtomicBool,
    workers: Workers,
    /// Ticks each time a failure takes the context down: what operations in flight on it wait
    /// for besides their own answer.
    failures: tokio::sync::watch::Sender<u64>,
}

impl Context {
    pub(crate) fn new(config: HsmConfig, pin: SecretString, index: usize) -> Self {
        let workers = Workers::new(
            format!("{}-{index}", config.name),
            config.sessions,
            config.max_queue,
        );
        Self {
            config,
            index,
            pin,
            state: RwLock::new(BackendState::Down(DownReason::NotOpened)),
            stale: Mutex::new(None),
            opening: Mutex::new(()),
            recovering: AtomicBool::new(false),
            had_failure: AtomicBool::new(false),
            workers,
            failures: tokio::sync::watch::Sender::new(0),
        }
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

    pub(crate) fn is_up(&self) -> bool {
        matches!(*read(&self.state), BackendState::Up(_))
    }

    /// Worker threads not running an operation now.
    pub(crate) fn idle(&self) -> usize {
        self.workers.idle()
    }

    /// Operations waiting for a worker thread, and operations running (for metrics).
    pub(crate) fn load(&self) -> (usize, usize) {
        self.workers.load()
    }

    /// Takes `backend` out of service after `error`, unless a newer context already replaced it,
    /// and starts the recovery task.
    pub(crate) fn failed(self: &Arc<Self>, backend: &Arc<Backend>, error: Arc<HsmError>) {
        {
            let mut state = write(&self.state);
            match &*state {
                BackendState::Up(current) if Arc::ptr_eq(current, backend) => {
                    tracing::error!(hsm = %self.config.name, context = self.index, error = %Chain(&*error),
                        "HSM backend failed; failing fast and recovering");
                    metrics::counter!("signet_hsm_failures_total", "hsm" => self.config.name.clone())
                        .increment(1);
                    self.had_failure.store(true, Ordering::SeqCst);
                    *lock(&self.stale) = Some(current.clone());
                    *state = BackendState::Down(DownReason::Failed(error));
                    self.failures.send_modify(|n| *n += 1);
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
                    tracing::warn!(hsm = %self.config.name, context = self.index,
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
                tracing::info!(hsm = %self.config.name, context = self.index, slot = b.description().slot,
                    token = %b.description().label, "HSM backend logged in");
                if self.had_failure.swap(false, Ordering::SeqCst) {
                    metrics::counter!("signet_hsm_recoveries_total", "hsm" => self.config.name.clone())
                        .increment(1);
                }
                self.set_state(BackendState::Up(Arc::new(b)));
                true
            }
            Err(e) => {
                tracing::warn!(hsm = %self.config.name, context = self.index, error = %Chain(&e),
                    "HSM backend unavailable");
                self.set_state(BackendState::Down(DownReason::Failed(Arc::new(e))));
                false
            }
        }
    }

    /// Runs `f` on one of the context's worker threads, everything (the wait for a thread
    /// included) within `deadline`. More than `max_queue` operations waiting: busy at once. An
    /// operation that overruns marks the context failed (a hung HSM) and its thread is replaced;
    /// so is one still in flight when another call marks the context failed (unavailable).
    pub(crate) async fn run_for<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: Duration,
        f: impl FnOnce() -> Result<T, SignError> + Send + 'static,
    ) -> Result<T, SignError> {
        let until = tokio::time::Instant::now() + deadline;
        self.run_until(until, f).await
    }

    /// As [`Self::run_for`], with an absolute deadline (shared by the attempts of one request).
    pub(crate) async fn run_until<T: Send + 'static>(
        self: &Arc<Self>,
        until: tokio::time::Instant,
        f: impl FnOnce() -> Result<T, SignError> + Send + 'static,
    ) -> Result<T, SignError> {
        let deadline = until.saturating_duration_since(tokio::time::Instant::now());
        let backend = self.up()?;
        let mut failures = self.failures.subscribe();
        let lost = async move {
            let _ = failures.changed().await;
        };
        let slot = self.clone();
        let run = move || {
            // The backend may have gone down while this waited: fail fast rather than call into it.
            slot.up()?;
            f()
        };
        match self.workers.run(until, lost, run).await {
            Ok(result) => result,
            Err(Refused::Full | Refused::Expired) => Err(SignError::Busy),
            // Another call found the device gone while this one waited or ran: move on now rather
            // than wait for an answer that may never come.
            Err(Refused::Lost) => Err(self.up().err().unwrap_or(SignError::Busy)),
            Err(Refused::Panicked) => Err(SignError::Internal("an HSM operation panicked".into())),
            Err(Refused::Overran) => {
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
