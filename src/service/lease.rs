//! Leadership of the key scheduler among replicas sharing one store.
//!
//! One store row, the `scheduler` lease, names the replica that runs the upkeep of every key set
//! (bootstrap and next-key generation, `activated` records, `destroy_after`). The holder renews it
//! on every tick (`server.key_refresh`) for [`ttl`] = 3 x `key_refresh`; anyone takes it over once
//! it has expired, so a replica that dies is replaced within `ttl + key_refresh` (4 x
//! `key_refresh`). A replica that stops gracefully releases it at once. Non-leaders only reload
//! their view. The lease is an efficiency, not the safety net: the store's one-next-key guard keeps
//! two replicas that both believe they lead (a paused process, skewed clocks) from adding two next
//! keys. With SQLite the single process is simply always the holder.

use std::sync::Mutex;
use std::time::Duration;

use crate::keys::{Lease, Store};
use crate::support::lock;

/// The name of the scheduler's lease row.
pub(crate) const SCHEDULER_LEASE: &str = "scheduler";

/// How long a lease lasts without renewal: 3 x `key_refresh`, at least one second.
pub(crate) fn ttl(key_refresh: Duration) -> i64 {
    (3.0 * key_refresh.as_secs_f64()).ceil().max(1.0) as i64
}

/// This replica's name in the lease table: host, process id and start time, unique per process.
pub(crate) fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{host}/{}/{started}", std::process::id())
}

/// What this replica knows of the lease, for `/readyz` and the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Leadership {
    /// This replica holds the lease.
    pub(crate) leader: bool,
    /// The holder last seen (at the last attempt that reached the store), with its expiry.
    pub(crate) holder: Option<Lease>,
    /// Why the last attempt failed (store unreachable).
    pub(crate) error: Option<String>,
}

/// Takes and renews the scheduler lease for one replica.
#[derive(Debug)]
pub(crate) struct Elector {
    pub(crate) me: String,
    ttl_s: i64,
    state: Mutex<Leadership>,
}

impl Elector {
    pub(crate) fn new(me: String, key_refresh: Duration) -> Self {
        Self {
            me,
            ttl_s: ttl(key_refresh),
            state: Mutex::new(Leadership::default()),
        }
    }

    pub(crate) fn state(&self) -> Leadership {
        lock(&self.state).clone()
    }

    /// Whether this replica's own lease, as last seen, still runs at `now`: taking it again then
    /// is a renewal after a failed attempt (a store blip), not a take-over, as no other replica
    /// can have held it in between.
    pub(crate) fn continues(&self, now: i64) -> bool {
        lock(&self.state)
            .holder
            .as_ref()
            .is_some_and(|l| l.holder == self.me && now <= l.expires_at)
    }

    /// Takes or renews the lease at `now`; whether this replica leads. A store error means "not
    /// leader" (another replica may have taken over meanwhile).
    pub(crate) async fn try_lead(&self, store: &dyn Store, now: i64) -> bool {
        let seen = store
            .lease(SCHEDULER_LEASE, &self.me, now, self.ttl_s)
            .await;
        let next = match seen {
            Ok(lease) => Leadership {
                leader: lease.holder == self.me,
                holder: Some(lease),
                error: None,
            },
            Err(e) => Leadership {
                leader: false,
                // Kept: it tells whether this replica's own lease is still running (`continues`).
                holder: self.state().holder,
                error: Some(e.to_string()),
            },
        };
        self.record(next)
    }

    /// Gives the lease up (graceful shutdown).
    pub(crate) async fn step_down(&self, store: &dyn Store) {
        if !self.state().leader {
            return;
        }
        match store.release(SCHEDULER_LEASE, &self.me).await {
            Ok(()) => tracing::info!(holder = %self.me, "released the scheduler lease"),
            Err(e) => tracing::warn!(error = %e, "cannot release the scheduler lease"),
        }
        self.record(Leadership::default());
    }

    fn record(&self, next: Leadership) -> bool {
        let leader = next.leader;
        let mut state = lock(&self.state);
        if state.leader != next.leader || (state.holder.is_none() && next.holder.is_some()) {
            match (&next.holder, &next.error) {
                (_, Some(e)) => {
                    tracing::warn!(holder = %self.me, error = %e, "scheduler lease unknown; not leading")
                }
                (Some(h), None) if next.leader => {
                    tracing::info!(holder = %h.holder, expires_at = h.expires_at, "this replica now leads the key scheduler")
                }
                (Some(h), None) => {
                    tracing::info!(holder = %self.me, leader = %h.holder, expires_at = h.expires_at, "another replica leads the key scheduler")
                }
                (None, None) => {}
            }
        }
        *state = next;
        leader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SqliteStore;

    #[test]
    fn ttl_is_three_refreshes() {
        assert_eq!(ttl(Duration::from_secs(1)), 3);
        assert_eq!(ttl(Duration::from_millis(500)), 2);
        assert_eq!(ttl(Duration::from_secs(10)), 30);
    }

    #[tokio::test]
    async fn one_holder_until_expiry_or_release() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/signet.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let refresh = Duration::from_secs(1);
        let (a, b) = (
            Elector::new("a".into(), refresh),
            Elector::new("b".into(), refresh),
        );
        assert!(a.try_lead(&store, 100).await);
        assert!(!b.try_lead(&store, 101).await);
        assert_eq!(b.state().holder.unwrap().holder, "a");
        // Renewed by its holder, so still held at 103.
        assert!(a.try_lead(&store, 102).await);
        assert!(!b.try_lead(&store, 104).await);
        // Not renewed: expired at 102 + 3.
        assert!(b.try_lead(&store, 105).await);
        assert!(!a.try_lead(&store, 105).await);
        b.step_down(&store).await;
        assert!(a.try_lead(&store, 106).await);
    }
}
