//! Where a signature is made: on which backend of the key set (`hsm = ["a", "b"]`) and on which
//! of its module contexts. Signing is spread round-robin over the backends that are up; an
//! attempt that fails in a way another holder of the key may not (the backend or context is down,
//! busy, hung, or cannot find the key by `CKA_ID`) moves to the next backend, and one that has not
//! answered after a quarter of `op_timeout` is hedged on another backend. Every attempt of a
//! request shares one deadline (`op_timeout` of the key set's first backend), so a request never
//! waits longer than that; an attempt left behind keeps running in the background until its own
//! context answers or is marked hung (then leaked, never finalised, see `context`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::context::Context;
use super::hsm_signer::{ContextSigner, scheme};
use super::{BackendSlot, Service};
use crate::config::KeySetConfig;
use crate::hsm::{HsmError, SignScheme};
use crate::signing::{SignError, SigningKey};

/// What every attempt of one request signs: the key (for its self-check), its `CKA_ID` and the
/// exact bytes.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) key: SigningKey,
    pub(super) input: Vec<u8>,
    id: Arc<[u8]>,
    scheme: SignScheme,
}

impl Job {
    pub(super) fn new(key: SigningKey, input: Vec<u8>, id: Arc<[u8]>) -> Arc<Job> {
        let scheme = scheme(key.alg());
        Arc::new(Job {
            key,
            input,
            id,
            scheme,
        })
    }

    /// The key and the bytes back (cloned only when a hedged attempt still holds them).
    pub(super) fn into_parts(job: Arc<Job>) -> (SigningKey, Vec<u8>) {
        match Arc::try_unwrap(job) {
            Ok(job) => (job.key, job.input),
            Err(shared) => (shared.key.clone(), shared.input.clone()),
        }
    }
}

/// Whether another backend or context may still make the signature after `e`.
fn moves_on(e: &SignError) -> bool {
    match e {
        SignError::Unavailable(_) | SignError::Busy | SignError::Timeout => true,
        SignError::Failed(source) => source
            .downcast_ref::<HsmError>()
            .is_some_and(|h| matches!(h, HsmError::KeyNotFound(_))),
        _ => false,
    }
}

/// One attempt on `context`, counted in `signet_hsm_signatures_total{hsm, outcome}`.
async fn attempt(
    context: Arc<Context>,
    job: Arc<Job>,
    until: Instant,
) -> Result<Vec<u8>, SignError> {
    let on = context.clone();
    let result = context
        .run_until(until, move || {
            let signer = ContextSigner {
                context: &on,
                id: &job.id,
                scheme: job.scheme,
            };
            job.key.sign_with(&signer, &job.input)
        })
        .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(SignError::Timeout) => "timeout",
        Err(SignError::Busy) => "busy",
        Err(SignError::Unavailable(_)) => "unavailable",
        Err(_) => "error",
    };
    metrics::counter!("signet_hsm_signatures_total",
        "hsm" => context.config.name.clone(), "outcome" => outcome)
    .increment(1);
    result
}

impl Service {
    /// Signs `job` on the key set's backends (see the module docs); the signature, self-checked.
    pub(super) async fn sign_routed(
        &self,
        cfg: &KeySetConfig,
        job: Arc<Job>,
    ) -> Result<Vec<u8>, SignError> {
        let first = &self.backends[cfg.hsms[0]];
        let until = Instant::now() + first.config.op_timeout;
        if cfg.hsms.len() == 1 {
            return self.sign_on(first, job, until).await;
        }
        let n = cfg.hsms.len();
        let start = self.spread.fetch_add(1, Ordering::Relaxed);
        let order = (0..n).map(|k| &self.backends[cfg.hsms[(start + k) % n]]);
        let mut attempts = Attempts {
            fresh: order.clone().collect(),
            again: order.collect(),
            running: JoinSet::new(),
            last: None,
            job,
            until,
        };
        let hedge_after = first.config.op_timeout / 4;
        attempts.launch(false);
        loop {
            if attempts.running.is_empty() {
                return Err(attempts.last.unwrap_or(SignError::Busy));
            }
            let hedge_at = (Instant::now() + hedge_after).min(until);
            let event = tokio::select! {
                joined = attempts.running.join_next() => Event::Done(joined),
                _ = tokio::time::sleep_until(hedge_at), if !attempts.fresh.is_empty() => Event::Hedge,
            };
            let result = match event {
                Event::Hedge => {
                    attempts.launch(false);
                    continue;
                }
                Event::Done(None) => continue,
                Event::Done(Some(Ok(r))) => r,
                Event::Done(Some(Err(join))) => Err(SignError::Internal(Box::new(join))),
            };
            match result {
                Err(e) if moves_on(&e) => {
                    attempts.last = Some(e);
                    if attempts.running.is_empty() {
                        attempts.launch(true);
                    }
                }
                done => {
                    // Attempts left behind finish (or are found hung) on their own.
                    attempts.running.detach_all();
                    return done;
                }
            }
        }
    }

    /// A key set on one backend: on one of its contexts, and on another one if that context
    /// turns out to be down.
    async fn sign_on(
        &self,
        slot: &BackendSlot,
        job: Arc<Job>,
        until: Instant,
    ) -> Result<Vec<u8>, SignError> {
        let mut tries = 1;
        loop {
            match attempt(slot.pick()?, job.clone(), until).await {
                Err(SignError::Unavailable(_))
                    if tries < slot.contexts().len() && Instant::now() < until =>
                {
                    tries += 1;
                }
                result => return result,
            }
        }
    }
}

enum Event {
    Done(Option<Result<Result<Vec<u8>, SignError>, tokio::task::JoinError>>),
    Hedge,
}

/// The attempts of one request on a key set with several backends.
struct Attempts<'a> {
    /// Backends not tried yet, in this request's turn.
    fresh: VecDeque<&'a Arc<BackendSlot>>,
    /// Each backend once more (another context of it) after failures.
    again: VecDeque<&'a Arc<BackendSlot>>,
    running: JoinSet<Result<Vec<u8>, SignError>>,
    last: Option<SignError>,
    job: Arc<Job>,
    until: Instant,
}

impl Attempts<'_> {
    /// Starts an attempt on the next backend that has a context up (with `again`, also on the
    /// backends already tried). Returns whether one started.
    fn launch(&mut self, again: bool) -> bool {
        loop {
            let next = match self.fresh.pop_front() {
                Some(s) => s,
                None if again => match self.again.pop_front() {
                    Some(s) => s,
                    None => return false,
                },
                None => return false,
            };
            match next.pick() {
                Ok(context) => {
                    self.running
                        .spawn(attempt(context, self.job.clone(), self.until));
                    return true;
                }
                Err(e) => {
                    self.last.get_or_insert(e);
                }
            }
        }
    }
}
