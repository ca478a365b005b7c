//! The configured HSM backends and their state. A backend that cannot be opened is `Down` with a
//! reason, and is retried by the refresh loop: the service starts and stays up without its HSM,
//! answering 503 for the key sets that need it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::{HsmConfig, PinSource, TokenSelector};
use crate::hsm::{Backend, BackendConfig};
use crate::signing::SignError;

/// Why the service cannot start: a PIN source that is not there.
#[derive(Debug, thiserror::Error)]
#[error("hsm `{hsm}`: {reason}")]
pub struct PinError {
    pub hsm: String,
    pub reason: String,
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
    Down(String),
}

/// One `[[hsm]]`: its configuration, PIN, state, and the permits that bound how many operations
/// wait on it at once.
#[derive(Debug)]
pub struct BackendSlot {
    pub config: HsmConfig,
    pin: SecretString,
    state: RwLock<BackendState>,
    pub permits: Arc<Semaphore>,
}

impl BackendSlot {
    pub fn new(config: HsmConfig, pin: SecretString) -> Self {
        let permits = Arc::new(Semaphore::new(config.sessions));
        Self {
            config,
            pin,
            state: RwLock::new(BackendState::Down("not opened yet".into())),
            permits,
        }
    }

    pub fn state(&self) -> BackendState {
        self.state
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|_| BackendState::Down("state lock poisoned".into()))
    }

    pub fn up(&self) -> Result<Arc<Backend>, SignError> {
        match self.state() {
            BackendState::Up(b) => Ok(b),
            BackendState::Down(reason) => Err(SignError::Unavailable(format!(
                "hsm `{}` is down: {reason}",
                self.config.name
            ))),
        }
    }

    /// Opens the backend if it is down. Blocking.
    pub fn open_if_down(&self) -> bool {
        if matches!(self.state(), BackendState::Up(_)) {
            return false;
        }
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
        let new_state = match Backend::open(cfg, self.pin.clone()) {
            Ok(b) => {
                tracing::info!(hsm = %self.config.name, slot = b.description().slot,
                    token = %b.description().label, "HSM backend logged in");
                BackendState::Up(Arc::new(b))
            }
            Err(e) => {
                tracing::error!(hsm = %self.config.name, error = %e, "HSM backend unavailable");
                BackendState::Down(e.to_string())
            }
        };
        let opened = matches!(new_state, BackendState::Up(_));
        if let Ok(mut s) = self.state.write() {
            *s = new_state;
        }
        opened
    }

    /// Runs `f` on the backend on a blocking thread, holding one permit, under `op_timeout`.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Backend>) -> Result<T, SignError> + Send + 'static,
    ) -> Result<T, SignError> {
        self.run_for(self.config.op_timeout, f).await
    }

    /// As [`Self::run`], with an explicit deadline (key generation takes longer than signing).
    pub async fn run_for<T: Send + 'static>(
        &self,
        deadline: Duration,
        f: impl FnOnce(Arc<Backend>) -> Result<T, SignError> + Send + 'static,
    ) -> Result<T, SignError> {
        let backend = self.up()?;
        let permit = tokio::time::timeout(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| SignError::Busy)?
            .map_err(|_| SignError::Busy)?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(backend)
        });
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(SignError::Failed(format!("HSM task failed: {join}"))),
            Err(_) => Err(SignError::Timeout),
        }
    }
}
