//! Two small policies every layer shares.
//!
//! - **Poisoned locks are recovered and logged.** A lock is poisoned when a thread panicked while
//!   holding it. Every critical section in Signet leaves its data consistent or replaces it whole,
//!   so the data is still usable: carrying on (and saying so in the log) beats failing every later
//!   caller, or silently skipping the update as an `if let Ok(guard)` would.
//! - **Errors are logged with their causes.** Errors keep their cause as `source` (an HSM error
//!   under a signing error, a database error under a store error); [`Chain`] shows the whole chain
//!   in one log field.
//!
//! Knows no other module.

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering (and logging) a poisoned lock.
#[track_caller]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => recovered(poisoned, Location::caller()),
    }
}

/// Read-locks `l`, recovering (and logging) a poisoned lock.
#[track_caller]
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(guard) => guard,
        Err(poisoned) => recovered(poisoned, Location::caller()),
    }
}

/// Write-locks `l`, recovering (and logging) a poisoned lock.
#[track_caller]
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(guard) => guard,
        Err(poisoned) => recovered(poisoned, Location::caller()),
    }
}

/// The guard of a poisoned lock, with a warning that names where it was taken.
pub(crate) fn recovered<G>(poisoned: PoisonError<G>, at: &Location<'_>) -> G {
    tracing::warn!(at = %at, "a lock was poisoned by a panicking thread; recovering its data");
    poisoned.into_inner()
}

/// Displays an error and each of its causes: `outer: cause: root cause`.
pub(crate) struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2);
        let l = RwLock::new(3);
        *write(&l) += 1;
        assert_eq!(*read(&l), 4);
    }

    #[test]
    fn a_chain_shows_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }
}
