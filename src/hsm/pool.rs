//! A fixed pool of logged-in read-write sessions on one slot. A caller borrows one session for one
//! operation on a blocking thread; a session the token no longer knows is replaced (and the user
//! logged in again when needed) and the operation retried once.

use std::panic::Location;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::HsmError;
use crate::support::{lock, recovered};

pub(super) struct Pool {
    pkcs11: Pkcs11,
    slot: Slot,
    pin: SecretString,
    idle: Mutex<Vec<Session>>,
    freed: Condvar,
    checkout_timeout: Duration,
}

impl Pool {
    pub(crate) fn open(
        pkcs11: &Pkcs11,
        slot: Slot,
        size: usize,
        pin: SecretString,
        checkout_timeout: Duration,
    ) -> Result<Pool, HsmError> {
        let pool = Pool {
            pkcs11: pkcs11.clone(),
            slot,
            pin,
            idle: Mutex::new(Vec::with_capacity(size)),
            freed: Condvar::new(),
            checkout_timeout,
        };
        let mut sessions = Vec::with_capacity(size);
        for _ in 0..size {
            sessions.push(pool.fresh_session()?);
        }
        *lock(&pool.idle) = sessions;
        Ok(pool)
    }

    /// Opens a session and makes sure the user is logged in (login is per application).
    fn fresh_session(&self) -> Result<Session, HsmError> {
        let session = self
            .pkcs11
            .open_rw_session(self.slot)
            .map_err(HsmError::call("C_OpenSession"))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(HsmError::Login(e)),
        }
    }

    fn checkout(&self) -> Result<Session, HsmError> {
        let deadline = Instant::now() + self.checkout_timeout;
        let mut idle = lock(&self.idle);
        loop {
            if let Some(s) = idle.pop() {
                return Ok(s);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HsmError::Busy);
            }
            idle = match self.freed.wait_timeout(idle, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => recovered(poisoned, Location::caller()).0,
            };
        }
    }

    fn checkin(&self, session: Session) {
        lock(&self.idle).push(session);
        self.freed.notify_one();
    }

    /// Forgets every idle session without closing it (see `Backend::shutdown`).
    pub(crate) fn forget_all(&self) {
        for s in lock(&self.idle).drain(..) {
            std::mem::forget(s);
        }
    }

    /// Runs `f` with a borrowed session. If the session turns out to be dead, it is replaced and
    /// `f` runs once more on the new one.
    pub(crate) fn with_session<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        super::SESSION_USES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = self.checkout()?;
        match f(&session) {
            Err(e) if session_is_dead(&e) => {
                tracing::warn!(error = %e, "PKCS#11 session lost; opening a new one");
                // The dead handle is closed (best effort) before a new one can reuse its number.
                drop(session);
                let session = match self.fresh_session() {
                    Ok(s) => s,
                    Err(e) => {
                        self.replace_lost();
                        return Err(e);
                    }
                };
                let result = f(&session);
                self.checkin(session);
                result
            }
            Err(e) if !self.logged_in(&session) => {
                // Someone logged the application out (login is per application): log in again.
                tracing::warn!(error = %e, "PKCS#11 user logged out; logging in again");
                let result = match session.login(UserType::User, Some(&self.pin)) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => f(&session),
                    Err(login) => Err(HsmError::Login(login)),
                };
                self.checkin(session);
                result
            }
            result => {
                self.checkin(session);
                result
            }
        }
    }

    fn logged_in(&self, session: &Session) -> bool {
        use cryptoki::session::SessionState;
        session
            .get_session_info()
            .map(|i| {
                matches!(
                    i.session_state(),
                    SessionState::RwUser | SessionState::RoUser
                )
            })
            .unwrap_or(true)
    }

    /// Keeps the pool at size after a session could not be replaced: tries once more, quietly.
    fn replace_lost(&self) {
        if let Ok(s) = self.fresh_session() {
            self.checkin(s);
        }
    }
}

fn session_is_dead(e: &HsmError) -> bool {
    matches!(
        e.rv(),
        Some(RvError::SessionHandleInvalid | RvError::SessionClosed | RvError::UserNotLoggedIn)
    )
}
