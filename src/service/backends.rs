//! The configured HSM backends and their state. An `[[hsm]]` is `contexts` independent module
//! contexts ([`Context`]); one that cannot be opened, or that fails with a device-level error
//! (`CKR_DEVICE_ERROR`, `CKR_TOKEN_NOT_PRESENT`, a dead RPC...), is `Down` with a reason while a
//! recovery task re-initialises it and logs in again with backoff; requests go to the contexts
//! that are up, and fail fast with 503 when none is. The process never restarts for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::context::Context;
use crate::config::{HsmConfig, PinSource};
use crate::hsm::{Backend, HsmError};
use crate::signing::SignError;

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
    pub(crate) hsm: String,
    #[source]
    pub(crate) reason: DownReason,
}

/// One `[[hsm]]`: its configuration and its module contexts.
#[derive(Debug)]
pub struct BackendSlot {
    pub(crate) config: HsmConfig,
    contexts: Vec<Arc<Context>>,
    /// Round-robin start for [`Self::pick`].
    turn: AtomicUsize,
}

impl BackendSlot {
    pub(crate) fn new(config: HsmConfig, pin: SecretString) -> Self {
        let contexts = (0..config.contexts)
            .map(|i| Arc::new(Context::new(config.clone(), pin.clone(), i)))
            .collect();
        Self {
            config,
            contexts,
            turn: AtomicUsize::new(0),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn contexts(&self) -> &[Arc<Context>] {
        &self.contexts
    }

    /// Up with one of its live contexts when any is up, else down with the first context's reason.
    pub fn state(&self) -> BackendState {
        let mut first_down = None;
        for c in &self.contexts {
            match c.state() {
                up @ BackendState::Up(_) => return up,
                down => {
                    first_down.get_or_insert(down);
                }
            }
        }
        first_down.unwrap_or(BackendState::Down(DownReason::NotOpened))
    }

    /// How many of its contexts are up.
    pub(crate) fn contexts_up(&self) -> usize {
        self.contexts.iter().filter(|c| c.is_up()).count()
    }

    /// Every live context's backend (for `signet hsm bench`).
    pub(crate) fn live(&self) -> Vec<Arc<Backend>> {
        self.contexts.iter().filter_map(|c| c.up().ok()).collect()
    }

    pub(crate) fn up(&self) -> Result<Arc<Backend>, SignError> {
        self.pick().and_then(|c| c.up())
    }

    /// The context the next operation runs on: round-robin over the contexts that are up,
    /// preferring one with an idle worker thread; 503 (the first context's reason) when none is up.
    pub(crate) fn pick(&self) -> Result<Arc<Context>, SignError> {
        let n = self.contexts.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut fallback = None;
        for k in 0..n {
            let c = &self.contexts[(start + k) % n];
            if !c.is_up() {
                continue;
            }
            if c.idle() > 0 {
                return Ok(c.clone());
            }
            fallback.get_or_insert(c);
        }
        match fallback {
            Some(c) => Ok(c.clone()),
            None => self.contexts[start % n]
                .up()
                .map(|_| self.contexts[start % n].clone()),
        }
    }

    /// Operations waiting for a worker thread, and operations running, over every context (for
    /// metrics).
    pub(crate) fn load(&self) -> (usize, usize) {
        self.contexts
            .iter()
            .map(|c| c.load())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// Sessions of every context together.
    pub(crate) fn capacity(&self) -> usize {
        self.config.sessions * self.contexts.len()
    }

    /// Opens every context that is down, one after the other (a module's contexts are set up one
    /// at a time). Blocking. Returns whether any is up afterwards.
    pub(crate) fn open_if_down(&self) -> bool {
        let mut any = false;
        for c in &self.contexts {
            any |= c.open_if_down();
        }
        any
    }

    /// Runs `f` with the backend of one context (see [`Context::run_for`]: a worker thread,
    /// `deadline`); a device-level failure takes that context out of service and starts its
    /// recovery.
    pub async fn with_backend<T: Send + 'static>(
        &self,
        deadline: Duration,
        f: impl FnOnce(&Backend) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, SignError> {
        self.pick()?.with_backend(deadline, f).await
    }

    /// Maps an HSM error of `backend` (one of this slot's contexts) to the signing layer, taking
    /// that context down when the device is gone.
    pub(crate) fn check(&self, backend: &Arc<Backend>, e: HsmError) -> SignError {
        if e.is_unavailable() {
            let e = Arc::new(e);
            for c in &self.contexts {
                c.failed(backend, e.clone());
            }
            return SignError::Unavailable(Box::new(e));
        }
        super::hsm_signer::sign_error(e)
    }
}
