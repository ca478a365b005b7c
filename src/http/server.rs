//! The accept loop, the same for plain TCP (loopback), TLS and a Unix socket (`listener`): the
//! cap on open connections, back-off when `accept` fails (`EMFILE`, `ENFILE`, ...), TLS
//! handshakes off the accept path, and the graceful drain after SIGTERM.
//!
//! Past `max_connections`, new connections wait in the kernel's listen backlog (1024) rather than
//! being refused: a client that arrives while a peer holds every place is served late, not turned
//! away, and the header-read timeout (`conn`) frees the places idle peers hold. Knows sockets,
//! hyper (through `conn`) and the `Router`; nothing of routes or the service.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use super::conn::{self, Shared, Timeouts};
pub use super::listener::Listener;
use super::listener::{Accepted, is_per_connection};
use super::tls::{self, Tls};
use crate::config::ServerConfig;

/// Descriptors kept out of the automatic `max_connections` for the HSM modules, the store's
/// pool, the log and the runtime itself (an idle service holds about 30).
const FD_RESERVE: u64 = 128;
/// The automatic `max_connections` never exceeds this (each connection costs buffers too).
const AUTO_MAX_CONNECTIONS: usize = 8192;
const AUTO_MIN_CONNECTIONS: usize = 16;
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Whether the service is draining (after SIGTERM): `/readyz` answers 503 and every response
/// asks the client to close its connection.
#[derive(Debug, Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The open-connection cap: `configured`, or the file limit less [`FD_RESERVE`], within bounds.
fn max_connections(configured: Option<NonZeroUsize>, file_limit: Option<u64>) -> usize {
    if let Some(n) = configured {
        return n.get();
    }
    let room = file_limit.map_or(AUTO_MAX_CONNECTIONS as u64, |n| {
        n.saturating_sub(FD_RESERVE)
    });
    usize::try_from(room)
        .unwrap_or(AUTO_MAX_CONNECTIONS)
        .clamp(AUTO_MIN_CONNECTIONS, AUTO_MAX_CONNECTIONS)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit in force.
fn file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// One episode of failing `accept` calls: logged when it starts and when it ends.
#[derive(Default)]
struct Backoff {
    delay: Option<Duration>,
    failures: u64,
}

impl Backoff {
    fn failed(&mut self, e: &io::Error) -> Duration {
        self.failures += 1;
        let delay = match self.delay {
            None => {
                tracing::warn!(
                    error = %e,
                    "accept failed; backing off (10 ms doubling to 1 s) until it succeeds"
                );
                BACKOFF_FIRST
            }
            Some(d) => (d * 2).min(BACKOFF_MAX),
        };
        self.delay = Some(delay);
        delay
    }

    fn succeeded(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!(failures = self.failures, "accepting connections again");
            self.failures = 0;
        }
    }
}

/// What the accept loop hands each connection.
#[derive(Clone)]
struct Accepting {
    shared: Arc<Shared>,
    conns: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    tls: Option<Arc<Tls>>,
}

impl Accepting {
    /// Serves `conn` on a task of its own, holding `permit` (its place under the cap) until it
    /// closes. A TLS handshake waits for a handshake slot unless `handshake` holds one.
    fn spawn(
        &self,
        conn: Accepted,
        permit: OwnedSemaphorePermit,
        handshake: Option<OwnedSemaphorePermit>,
    ) {
        let shared = self.shared.clone();
        match (conn, self.tls.clone()) {
            (Accepted::Unix(stream), _) => {
                tokio::spawn(async move {
                    conn::serve(stream, None, shared).await;
                    drop(permit);
                });
            }
            (Accepted::Tcp(stream, _), None) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    conn::serve(stream, None, shared).await;
                    drop(permit);
                });
            }
            (Accepted::Tcp(stream, remote), Some(tls_config)) => {
                let _ = stream.set_nodelay(true);
                let handshakes = self.handshakes.clone();
                tokio::spawn(async move {
                    let slot = match handshake {
                        Some(slot) => Ok(slot),
                        None => handshakes.acquire_owned().await,
                    };
                    let done = tls::handshake(&tls_config, stream, remote).await;
                    drop(slot);
                    if let Some((stream, peer)) = done {
                        conn::serve(stream, Some(peer), shared).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

/// Accepts until `halt`, then closes the listener and returns what was still queued.
async fn accept_loop(
    listener: Listener,
    acc: Accepting,
    mut halt: oneshot::Receiver<()>,
) -> Vec<Accepted> {
    let mut backoff = Backoff::default();
    let tls = matches!(listener, Listener::Tls(..));
    loop {
        let permit = tokio::select! {
            _ = &mut halt => break,
            p = acc.conns.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let handshake = if tls {
            tokio::select! {
                _ = &mut halt => break,
                p = acc.handshakes.clone().acquire_owned() => p.ok(),
            }
        } else {
            None
        };
        let accepted = tokio::select! {
            _ = &mut halt => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok(conn) => {
                backoff.succeeded();
                acc.spawn(conn, permit, handshake);
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                let delay = backoff.failed(&e);
                tokio::select! {
                    _ = &mut halt => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    listener.close()
}

/// Serves `listener` until `signal` resolves, then drains: `/readyz` 503 and `Connection: close`
/// for `[server] drain` (a second signal ends that early), then the listener closes and the
/// requests in progress finish, for at most `request_timeout`.
pub async fn serve<S, F>(
    listener: Listener,
    router: Router,
    drain: Drain,
    server: &ServerConfig,
    signal: S,
) where
    S: Fn() -> F,
    F: Future<Output = ()>,
{
    let limits = server.connections;
    let max = max_connections(limits.max_connections, file_limit());
    tracing::info!(
        max_connections = max,
        header_read_timeout = %humantime::format_duration(limits.header_read_timeout),
        idle_timeout = %humantime::format_duration(limits.idle_timeout),
        "connection limits"
    );
    let (stop, stop_rx) = watch::channel(false);
    let acc = Accepting {
        shared: Arc::new(Shared {
            router,
            drain: drain.clone(),
            timeouts: Timeouts {
                header_read: limits.header_read_timeout,
                idle: limits.idle_timeout,
            },
            stop: stop_rx,
        }),
        conns: Arc::new(Semaphore::new(max)),
        handshakes: Arc::new(Semaphore::new(tls::MAX_HANDSHAKES)),
        tls: match &listener {
            Listener::Tls(_, tls) => Some(tls.clone()),
            _ => None,
        },
    };
    let (halt, halt_rx) = oneshot::channel();
    let accepting = tokio::spawn(accept_loop(listener, acc.clone(), halt_rx));

    signal().await;
    drain.start();
    tracing::info!(
        drain = %humantime::format_duration(limits.drain),
        "draining: /readyz answers 503 and responses carry Connection: close"
    );
    tokio::select! {
        () = tokio::time::sleep(limits.drain) => {}
        () = signal() => tracing::info!("second signal: the drain ends now"),
    }
    let _ = halt.send(());
    let queued = accepting.await.unwrap_or_default();
    let _ = stop.send(true);
    tracing::info!(
        open = max - acc.conns.available_permits() + queued.len(),
        "listener closed; finishing the requests in progress"
    );
    finish(acc, queued, max, server.request_timeout).await;
}

/// Serves the connections taken from the queue at close, and waits for every connection to end.
async fn finish(acc: Accepting, queued: Vec<Accepted>, max: usize, limit: Duration) {
    let all_closed = async {
        for conn in queued {
            if let Ok(permit) = acc.conns.clone().acquire_owned().await {
                acc.spawn(conn, permit, None);
            }
        }
        let _ = acc
            .conns
            .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
            .await;
    };
    if tokio::time::timeout(limit, all_closed).await.is_err() {
        tracing::warn!(
            open = max - acc.conns.available_permits(),
            "connections still open after request_timeout are closed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_cap_leaves_room_below_the_file_limit() {
        assert_eq!(max_connections(None, Some(1024)), 1024 - 128);
        assert_eq!(max_connections(None, Some(256)), 128);
        assert_eq!(max_connections(None, Some(100)), AUTO_MIN_CONNECTIONS);
        assert_eq!(max_connections(None, Some(1 << 20)), AUTO_MAX_CONNECTIONS);
        assert_eq!(max_connections(None, None), AUTO_MAX_CONNECTIONS);
        assert_eq!(
            max_connections(NonZeroUsize::new(50_000), Some(256)),
            50_000
        );
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let e = io::Error::from_raw_os_error(24); // EMFILE
        let delays: Vec<u128> = (0..9).map(|_| b.failed(&e).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(&e), BACKOFF_FIRST);
    }

    #[test]
    fn only_listener_errors_back_off() {
        assert!(is_per_connection(&io::ErrorKind::ConnectionAborted.into()));
        assert!(!is_per_connection(&io::Error::from_raw_os_error(24)));
        assert!(!is_per_connection(&io::Error::from_raw_os_error(23))); // ENFILE
    }
}
