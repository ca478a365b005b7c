//! The PKCS#11 backend: one [`Backend`] per `[[hsm]]`, owning the module context, the token's slot,
//! a pool of logged-in sessions and a cache of private-key handles.
//!
//! Every call here blocks; callers run them on blocking threads under their own deadline. Knows
//! nothing of HTTP, JOSE or the store: keys are found by `CKA_ID` and described by [`KeySpec`],
//! [`SignScheme`] and [`PublicKey`].

mod attributes;
mod objects;
mod pool;
mod scheme;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::ObjectHandle;
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::support::lock;

pub use attributes::{KeyAttributes, TokenKey};
pub use objects::PublicKey;
pub use scheme::{KeySpec, SignScheme};
pub(crate) use token::{TokenDescription, list_tokens};

use pool::Pool;
use token::find_token;

/// How many times, process-wide, a pooled session was used for PKCS#11 calls (sign, ping,
/// lookups, generation...): what shows that something (e.g. a `/readyz` probe) reaches the HSM.
static SESSION_USES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`SESSION_USES`].
pub fn session_uses() -> u64 {
    SESSION_USES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where the token is and how to reach it.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub name: String,
    pub module: PathBuf,
    pub token_label: Option<String>,
    pub token_serial: Option<String>,
    pub sessions: usize,
    /// How long a caller may wait for a free session.
    pub checkout_timeout: Duration,
}

/// A PKCS#11 failure, with the call that failed kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("cannot load PKCS#11 module {path}: {source}")]
    Module { path: String, source: CkError },
    #[error("no token {0} in any slot of the module")]
    TokenNotFound(String),
    #[error("login failed: {0}")]
    Login(CkError),
    #[error("{op}: {source}")]
    Pkcs11 { op: &'static str, source: CkError },
    #[error("no key pair with CKA_ID {0} in the token")]
    KeyNotFound(String),
    #[error("the token does not support {0}")]
    Unsupported(String),
    #[error("no PKCS#11 session came free within the deadline")]
    Busy,
    #[error("the HSM did not answer within {0:?}")]
    Unresponsive(std::time::Duration),
    /// Several objects match where one is expected: never resolved by taking the first.
    #[error("{count} {what} in the token; expected one")]
    Ambiguous { what: String, count: usize },
    #[error("malformed key object: {0}")]
    Malformed(String),
}

impl HsmError {
    pub(crate) fn call(op: &'static str) -> impl FnOnce(CkError) -> HsmError {
        move |source| HsmError::Pkcs11 { op, source }
    }

    /// The PKCS#11 return value, if this came from a call.
    pub(crate) fn rv(&self) -> Option<RvError> {
        match self {
            Self::Pkcs11 {
                source: CkError::Pkcs11(rv, _),
                ..
            }
            | Self::Login(CkError::Pkcs11(rv, _))
            | Self::Module {
                source: CkError::Pkcs11(rv, _),
                ..
            } => Some(*rv),
            _ => None,
        }
    }

    /// Whether the device or its connection is gone (as opposed to a refused operation).
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::TokenNotFound(_) | Self::Module { .. } | Self::Unresponsive(_)
        ) || matches!(
            self.rv(),
            Some(
                RvError::DeviceError
                    | RvError::DeviceRemoved
                    | RvError::DeviceMemory
                    | RvError::TokenNotPresent
                    | RvError::TokenNotRecognized
                    | RvError::UserNotLoggedIn
                    | RvError::CryptokiNotInitialized
                    | RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::GeneralError
            )
        )
    }
}

/// The lock that serialises opening contexts of the module at `path` in this process: SoftHSM
/// crashes under concurrent `C_Initialize` of one module, and a module's contexts log in and look
/// up handles best one at a time.
fn module_lock(path: &std::path::Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let locks = LOCKS.get_or_init(Default::default);
    lock(locks).entry(path.to_path_buf()).or_default().clone()
}

/// One logged-in token.
pub struct Backend {
    config: BackendConfig,
    pkcs11: Pkcs11,
    slot: Slot,
    mechanisms: Vec<MechanismType>,
    pool: Pool,
    handles: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
    description: TokenDescription,
    /// Whether this context's C_Initialize did the initialising (and so may finalise).
    initialized_here: bool,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.config.name)
            .field("slot", &self.slot.id())
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Loads the module, finds the token, opens `sessions` sessions and logs in with `pin`.
    /// Opens of one module path are serialised process-wide (see [`module_lock`]).
    pub fn open(config: BackendConfig, pin: SecretString) -> Result<Backend, HsmError> {
        let module = module_lock(&config.module);
        let _opening = lock(&module);
        let module_err = |source| HsmError::Module {
            path: config.module.display().to_string(),
            source,
        };
        let pkcs11 = Pkcs11::new(&config.module).map_err(module_err)?;
        let initialized_here =
            match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) => true,
                Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => false,
                Err(e) => return Err(module_err(e)),
            };
        let opened = find_token(&pkcs11, &config).and_then(|(slot, description)| {
            let pool = Pool::open(&pkcs11, slot, config.sessions, pin, config.checkout_timeout)?;
            Ok((slot, description, pool))
        });
        let (slot, description, pool) = match opened {
            Ok(v) => v,
            Err(e) => {
                // A module initialised while its device was away may never see it come back
                // (p11-kit-client): finalise so that the next attempt starts afresh.
                if initialized_here {
                    let _ = pkcs11.finalize();
                }
                return Err(e);
            }
        };
        let mechanisms = description.mechanisms.clone();
        Ok(Backend {
            config,
            pkcs11,
            slot,
            mechanisms,
            pool,
            handles: Mutex::new(HashMap::new()),
            description,
            initialized_here,
        })
    }

    /// Takes a failed context out of the process: its sessions are forgotten (closing them after
    /// a re-initialise could close a new session that reused the handle) and the module is
    /// finalised. Only call this when no other thread is inside a call on it.
    pub(crate) fn shutdown(self) {
        self.pool.forget_all();
        if self.initialized_here {
            let _ = self.pkcs11.finalize();
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub fn description(&self) -> &TokenDescription {
        &self.description
    }

    /// Checks that the token can generate and sign for `spec` / `scheme`.
    pub fn check_support(&self, spec: KeySpec, scheme: SignScheme) -> Result<(), HsmError> {
        let missing: Vec<String> = scheme::required(spec, scheme, &self.mechanisms)
            .into_iter()
            .map(|m| m.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(HsmError::Unsupported(missing.join(", ")))
        }
    }

    /// Whether a session can still talk to the token and is logged in.
    pub(crate) fn ping(&self) -> Result<(), HsmError> {
        self.pool.with_session(|s| {
            let info = s
                .get_session_info()
                .map_err(HsmError::call("C_GetSessionInfo"))?;
            use cryptoki::session::SessionState;
            match info.session_state() {
                SessionState::RwUser | SessionState::RoUser => Ok(()),
                _ => Err(HsmError::Pkcs11 {
                    op: "C_GetSessionInfo",
                    source: CkError::Pkcs11(
                        RvError::UserNotLoggedIn,
                        cryptoki::context::Function::GetSessionInfo,
                    ),
                }),
            }
        })
    }

    /// The private-key handle for `id`, from the cache or a lookup.
    fn private_handle(
        &self,
        session: &cryptoki::session::Session,
        id: &[u8],
    ) -> Result<ObjectHandle, HsmError> {
        if let Some(h) = lock(&self.handles).get(id).copied() {
            return Ok(h);
        }
        let h = objects::find_private(session, id)?;
        lock(&self.handles).insert(id.to_vec(), h);
        Ok(h)
    }

    fn forget_handle(&self, id: &[u8]) {
        lock(&self.handles).remove(id);
    }

    /// Signs `data` with the private key `id` under `scheme`.
    pub fn sign(&self, id: &[u8], scheme: SignScheme, data: &[u8]) -> Result<Vec<u8>, HsmError> {
        let prepared = scheme::prepare(scheme, data, &self.mechanisms)?;
        self.pool.with_session(|s| {
            let handle = self.private_handle(s, id)?;
            match s.sign(&prepared.mechanism(), handle, &prepared.input) {
                Err(CkError::Pkcs11(
                    RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid,
                    _,
                )) => {
                    // The object was destroyed or the handle went stale: look it up once more.
                    self.forget_handle(id);
                    let handle = self.private_handle(s, id)?;
                    s.sign(&prepared.mechanism(), handle, &prepared.input)
                        .map_err(HsmError::call("C_Sign"))
                }
                other => other.map_err(HsmError::call("C_Sign")),
            }
        })
    }

    /// Generates a key pair of `spec` as token objects (private key sensitive, never extractable,
    /// sign-only) under `id` and `label`, and returns its public key.
    pub fn generate(&self, spec: KeySpec, id: &[u8], label: &str) -> Result<PublicKey, HsmError> {
        self.pool
            .with_session(|s| objects::generate(s, spec, id, label))
    }

    /// Sets a new `CKA_ID` and `CKA_LABEL` on both objects of the pair `old_id`.
    pub fn relabel(&self, old_id: &[u8], new_id: &[u8], label: &str) -> Result<(), HsmError> {
        let r = self
            .pool
            .with_session(|s| objects::relabel(s, old_id, new_id, label));
        self.forget_handle(old_id);
        r
    }

    /// The public key of the pair `id`.
    pub fn public_key(&self, id: &[u8]) -> Result<PublicKey, HsmError> {
        self.pool.with_session(|s| objects::public_key(s, id))
    }

    /// The `CKA_ID` of the private key labelled `label`.
    pub fn id_by_label(&self, label: &str) -> Result<Vec<u8>, HsmError> {
        self.pool.with_session(|s| objects::id_by_label(s, label))
    }

    /// The security attributes of the private key `id`.
    pub fn private_attributes(&self, id: &[u8]) -> Result<KeyAttributes, HsmError> {
        self.pool
            .with_session(|s| attributes::private_attributes(s, id))
    }

    /// Makes the private key `id` sign-only (CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE false).
    pub(crate) fn restrict_to_sign(&self, id: &[u8]) -> Result<(), HsmError> {
        self.pool.with_session(|s| objects::restrict_to_sign(s, id))
    }

    /// Destroys the private object of the pair `id`.
    pub fn destroy(&self, id: &[u8]) -> Result<(), HsmError> {
        self.forget_handle(id);
        self.pool.with_session(|s| objects::destroy(s, id))
    }

    /// The `CKA_ID`s and labels of every private key whose label starts with `prefix`.
    pub fn list_ids(&self, prefix: &str) -> Result<Vec<(Vec<u8>, String)>, HsmError> {
        let keys = self.list_keys(prefix)?;
        Ok(keys.into_iter().map(|k| (k.id, k.label)).collect())
    }

    /// Every private key whose label starts with `prefix`, with its attributes.
    pub fn list_keys(&self, prefix: &str) -> Result<Vec<TokenKey>, HsmError> {
        self.pool.with_session(|s| objects::list(s, prefix))
    }

    #[doc(hidden)]
    pub fn pkcs11(&self) -> &Pkcs11 {
        &self.pkcs11
    }
}
