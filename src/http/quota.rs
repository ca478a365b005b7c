//! Per-client request quotas: one token bucket per `[[client]]` that sets a `rate`.
//!
//! Plain data with time passed in: the `Caller` extractor hands `Instant::now()` to
//! [`Limiter::check`]; tests move time by passing it. Knows nothing of HTTP; an exhausted bucket is
//! answered 429 `rate_limited` with `Retry-After` by the caller of `check`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{ClientConfig, Quota};

/// The buckets of every client with a quota, by client name.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    buckets: HashMap<String, Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens the bucket holds.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Limiter {
    /// Full buckets at `now` for the clients that have a quota.
    pub(crate) fn new(clients: &[ClientConfig], now: Instant) -> Self {
        let buckets = clients
            .iter()
            .filter_map(|c| {
                c.quota
                    .map(|q| (c.name.clone(), Mutex::new(Bucket::new(q, now))))
            })
            .collect();
        Self { buckets }
    }

    /// Takes one request from `client`'s bucket at `now`. `Err(seconds)`: the bucket is empty and
    /// the next request fits in that many whole seconds (at least 1, for `Retry-After`).
    /// Clients without a quota always pass.
    pub(crate) fn check(&self, client: &str, now: Instant) -> Result<(), u64> {
        let Some(bucket) = self.buckets.get(client) else {
            return Ok(());
        };
        // A poisoned lock only means another request panicked mid-update; the numbers are still
        // usable, so keep limiting rather than failing every later request of this client.
        let mut bucket = bucket.lock().unwrap_or_else(|p| p.into_inner());
        bucket.take(now)
    }
}

impl Bucket {
    fn new(q: Quota, now: Instant) -> Self {
        let burst = f64::from(q.burst);
        Self {
            rate: q.per_second(),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            // `wait` is finite and positive: rate > 0 is guaranteed by config validation.
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{ClientAuth, Role};

    fn client(name: &str, quota: Option<Quota>) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            role: Role::Signer,
            key_sets: None,
            auth: ClientAuth::CertSubject(name.into()),
            quota,
        }
    }

    fn quota(count: u32, per_secs: u64, burst: u32) -> Option<Quota> {
        Some(Quota {
            count,
            per: Duration::from_secs(per_secs),
            burst,
        })
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let t0 = Instant::now();
        let l = Limiter::new(&[client("a", quota(2, 1, 3))], t0);
        for _ in 0..3 {
            assert_eq!(l.check("a", t0), Ok(()));
        }
        assert_eq!(l.check("a", t0), Err(1));
        // 2/s: one token after 0.5 s, not at 0.4 s.
        assert_eq!(l.check("a", t0 + Duration::from_millis(400)), Err(1));
        assert_eq!(l.check("a", t0 + Duration::from_millis(600)), Ok(()));
        // A long pause refills to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.check("a", later), Ok(()));
        }
        assert_eq!(l.check("a", later), Err(1));
    }

    #[test]
    fn retry_after_counts_whole_seconds_for_slow_rates() {
        let t0 = Instant::now();
        // 6 per minute: one every 10 s.
        let l = Limiter::new(&[client("slow", quota(6, 60, 1))], t0);
        assert_eq!(l.check("slow", t0), Ok(()));
        assert_eq!(l.check("slow", t0), Err(10));
        assert_eq!(l.check("slow", t0 + Duration::from_millis(2500)), Err(8));
        assert_eq!(l.check("slow", t0 + Duration::from_millis(10_100)), Ok(()));
    }

    #[test]
    fn clients_are_independent_and_unlimited_without_a_quota() {
        let t0 = Instant::now();
        let l = Limiter::new(&[client("a", quota(1, 1, 1)), client("b", None)], t0);
        assert_eq!(l.check("a", t0), Ok(()));
        assert_eq!(l.check("a", t0), Err(1));
        for _ in 0..1000 {
            assert_eq!(l.check("b", t0), Ok(()));
        }
        assert_eq!(l.check("nobody", t0), Ok(()));
    }

    #[test]
    fn time_going_backwards_does_not_add_tokens() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let l = Limiter::new(&[client("a", quota(1, 1, 1))], t0);
        assert_eq!(l.check("a", t0), Ok(()));
        assert_eq!(l.check("a", t0 - Duration::from_secs(3)), Err(1));
        assert_eq!(l.check("a", t0), Err(1));
    }
}
