//! The key lifecycle rule of DESIGN.md as a pure function of the key rows and the time.
//!
//! At time `t`, for one key set:
//! - the **active** key is the non-revoked key with the greatest `activate_at <= t` (ties: greatest kid);
//! - a non-revoked key with `activate_at > t` is **next**;
//! - a key superseded at `s` by a newer key that did become active is **retired** until `s + retain`,
//!   then **expired**;
//! - a key is **revoked** from `revoked_at` on.
//!
//! A key created while its key set had `require_certificate = true` (`certificate_required`)
//! takes over only once a certificate chain is attached: until `certified_at` it stays **next**
//! even past its `activate_at`, and the key it would supersede keeps signing (rotation waits). It
//! then takes over at `max(activate_at, certified_at)`.
//!
//! Every replica computes the same answer from the same rows and the clock. The rule for when a new
//! next key may activate ([`next_activation`]) lives here too, for the scheduler and for imports.

use super::KeyRecord;

/// The derived state of a key at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    /// Superseded; published until `until`.
    Retired {
        until: i64,
    },
    Expired {
        since: i64,
    },
    Revoked,
}

impl KeyState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired { .. } => "retired",
            Self::Expired { .. } => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Whether the key belongs in the JWKS.
    pub(crate) fn is_published(self) -> bool {
        matches!(self, Self::Next | Self::Active | Self::Retired { .. })
    }
}

impl KeyRecord {
    pub(crate) fn is_revoked_at(&self, t: i64) -> bool {
        self.revoked_at.is_some_and(|r| r <= t)
    }

    /// Whether the key's certificate requirement, if any, is met at `t`.
    pub(crate) fn certified_by(&self, t: i64) -> bool {
        !self.certificate_required || self.certified_at.is_some_and(|c| c <= t)
    }

    /// A key still waiting for the certificate it needs (at any time: nothing attached yet).
    pub(crate) fn awaits_certificate(&self) -> bool {
        self.certificate_required && self.certified_at.is_none()
    }

    /// When this key takes over: `activate_at`, or for a key that needs a certificate, the time
    /// its chain was attached if later; `None` while it has none.
    fn takes_over_at(&self) -> Option<i64> {
        if !self.certificate_required {
            return Some(self.activate_at);
        }
        self.certified_at.map(|c| c.max(self.activate_at))
    }

    /// Whether this key was ever the active key (it took over before any revocation).
    fn ever_activated_by(&self, t: i64) -> bool {
        self.takes_over_at()
            .is_some_and(|s| s <= t && self.revoked_at.is_none_or(|r| r > s))
    }

    fn order(&self) -> (i64, &str) {
        (self.activate_at, self.kid.as_str())
    }
}

/// The active key of one key set's `keys` at `t`.
pub(crate) fn active(keys: &[KeyRecord], t: i64) -> Option<&KeyRecord> {
    keys.iter()
        .filter(|k| {
            k.activate_at <= t
                && !k.is_revoked_at(t)
                && k.destroyed_at.is_none()
                && k.certified_by(t)
        })
        .max_by(|a, b| a.order().cmp(&b.order()))
}

/// The next key (the earliest-activating one if several are scheduled): one whose time has not
/// come, or one past its time that still waits for its certificate.
pub(crate) fn next(keys: &[KeyRecord], t: i64) -> Option<&KeyRecord> {
    let active = active(keys, t).map(KeyRecord::order);
    keys.iter()
        .filter(|k| {
            !k.is_revoked_at(t)
                && k.destroyed_at.is_none()
                && (k.activate_at > t || !k.certified_by(t))
                && active.is_none_or(|a| k.order() > a)
        })
        .min_by(|a, b| a.order().cmp(&b.order()))
}

/// When a new next key of one key set's `keys` may activate, decided at `now`:
/// `max(active.activate_at + rotation_period, now + min_publish)`, so that no key signs before it
/// has been published for `min_publish`. A key that takes the place of the scheduled next key (an
/// import replaces it) keeps that key's time, pushed to `now + min_publish` if earlier. Without an
/// active key: `now + min_publish`. (The first key of a new key set is the caller's exception: it
/// activates at once, since nobody can have cached a kid of a key set that never had one.)
pub(crate) fn next_activation(
    keys: &[KeyRecord],
    rotation_period_s: i64,
    min_publish_s: i64,
    now: i64,
) -> i64 {
    let earliest = now + min_publish_s;
    match (next(keys, now), active(keys, now)) {
        (Some(n), _) => n.activate_at.max(earliest),
        (None, Some(a)) => (a.activate_at + rotation_period_s).max(earliest),
        (None, None) => earliest,
    }
}

/// Whether key `kid` of `keys` may sign a caller-built JWS at `t`: it is the active key, or the key
/// the active key superseded by a rotation (never a revocation) less than `grace_s` ago, so that a
/// signer that switches keys at `activate_at` by its own, slightly late, clock loses no request.
pub(crate) fn may_sign(keys: &[KeyRecord], kid: &str, grace_s: i64, t: i64) -> bool {
    let Some(current) = active(keys, t) else {
        return false;
    };
    if current.kid == kid {
        return true;
    }
    if t >= current.activate_at.saturating_add(grace_s) {
        return false;
    }
    // The key that was active the second before the active key took over, still unrevoked.
    active(keys, current.activate_at - 1).is_some_and(|before| {
        before.kid == kid && !before.is_revoked_at(t) && before.destroyed_at.is_none()
    })
}

/// The state of `key` among `keys` (its key set, including itself) at `t`.
pub(crate) fn state(keys: &[KeyRecord], key: &KeyRecord, retain_s: i64, t: i64) -> KeyState {
    if key.is_revoked_at(t) {
        return KeyState::Revoked;
    }
    if key.activate_at > t {
        return KeyState::Next;
    }
    if key.destroyed_at.is_none() && active(keys, t).is_some_and(|a| a.kid == key.kid) {
        return KeyState::Active;
    }
    // Superseded when a newer key that really became active took over.
    let superseded = keys
        .iter()
        .filter(|j| j.order() > key.order() && j.ever_activated_by(t))
        .filter_map(KeyRecord::takes_over_at)
        .min();
    match superseded {
        Some(s) if t < s + retain_s && key.destroyed_at.is_none() => KeyState::Retired {
            until: s + retain_s,
        },
        Some(s) => KeyState::Expired {
            since: s + retain_s,
        },
        // Past its time, never superseded, waiting for its certificate.
        None if !key.certified_by(t) && key.destroyed_at.is_none() => KeyState::Next,
        // Not active and never superseded: otherwise only a destroyed key gets here.
        None => KeyState::Expired {
            since: key.destroyed_at.unwrap_or(t),
        },
    }
}

/// The published keys of a key set at `t`: active first, then next keys, then retired ones
/// (newest first).
pub(crate) fn published(keys: &[KeyRecord], retain_s: i64, t: i64) -> Vec<&KeyRecord> {
    let mut out: Vec<(u8, &KeyRecord)> = keys
        .iter()
        .filter_map(|k| {
            let rank = match state(keys, k, retain_s, t) {
                KeyState::Active => 0,
                KeyState::Next => 1,
                KeyState::Retired { .. } => 2,
                _ => return None,
            };
            Some((rank, k))
        })
        .collect();
    out.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| b.order().cmp(&a.order())));
    out.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, activate_at: i64) -> KeyRecord {
        KeyRecord::for_test(kid, activate_at)
    }

    const RETAIN: i64 = 100;

    #[test]
    fn active_next_retired_expired() {
        let keys = vec![key("a", 0), key("b", 1000), key("c", 2000)];
        let at = |t| -> Vec<&str> {
            keys.iter()
                .map(|k| state(&keys, k, RETAIN, t).name())
                .collect()
        };
        assert_eq!(at(500), ["active", "next", "next"]);
        assert_eq!(active(&keys, 999).unwrap().kid, "a");
        assert_eq!(active(&keys, 1000).unwrap().kid, "b");
        assert_eq!(at(1050), ["retired", "active", "next"]);
        assert_eq!(at(1100), ["expired", "active", "next"]);
        assert_eq!(next(&keys, 1100).unwrap().kid, "c");
        let kids: Vec<_> = published(&keys, RETAIN, 2050)
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, ["c", "b"]);
    }

    #[test]
    fn a_next_key_activates_one_period_on_and_never_before_min_publish() {
        let (period, min) = (1000, 100);
        // One active key: one period after its activation...
        let keys = vec![key("a", 0)];
        assert_eq!(next_activation(&keys, period, min, 10), 1000);
        // ...but never before it has been published for min_publish.
        assert_eq!(next_activation(&keys, period, min, 950), 1050);
        // An import takes the scheduled next key's place and time.
        let keys = vec![key("a", 0), key("b", 1000)];
        assert_eq!(next_activation(&keys, period, min, 10), 1000);
        assert_eq!(next_activation(&keys, period, min, 990), 1090);
        // No key at all: after min_publish.
        assert_eq!(next_activation(&[], period, min, 10), 110);
    }

    #[test]
    fn ties_go_to_the_greatest_kid() {
        let keys = vec![key("x", 10), key("y", 10)];
        assert_eq!(active(&keys, 10).unwrap().kid, "y");
        assert_eq!(state(&keys, &keys[0], RETAIN, 10).name(), "retired");
    }

    #[test]
    fn revoking_the_active_key_hands_over_to_the_promoted_next_key() {
        // b was next (activate_at 1000); the revoke at 500 moves b's activation to 500.
        let mut a = key("a", 0);
        a.revoked_at = Some(500);
        let keys = vec![a, key("b", 500), key("c", 2000)];
        assert_eq!(active(&keys, 500).unwrap().kid, "b");
        let kids: Vec<_> = published(&keys, RETAIN, 500)
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, ["b", "c"]);
        assert_eq!(state(&keys, &keys[0], RETAIN, 499).name(), "active");
        assert_eq!(state(&keys, &keys[0], RETAIN, 500).name(), "revoked");
    }

    #[test]
    fn a_revoked_next_key_supersedes_nothing() {
        let mut b = key("b", 1000);
        b.revoked_at = Some(900);
        let keys = vec![key("a", 0), b];
        assert_eq!(active(&keys, 1500).unwrap().kid, "a");
        assert_eq!(state(&keys, &keys[0], RETAIN, 1500).name(), "active");
        assert_eq!(state(&keys, &keys[1], RETAIN, 1500).name(), "revoked");
    }

    #[test]
    fn a_key_that_needs_a_certificate_waits_for_it() {
        let mut b = key("b", 1000);
        b.certificate_required = true;
        let mut keys = vec![key("a", 0), b];
        // Past its time without a certificate: a still signs, b is still the next key.
        assert_eq!(active(&keys, 1500).unwrap().kid, "a");
        assert_eq!(next(&keys, 1500).unwrap().kid, "b");
        assert_eq!(state(&keys, &keys[1], RETAIN, 1500), KeyState::Next);
        assert_eq!(state(&keys, &keys[0], RETAIN, 1500), KeyState::Active);
        // Its chain attached at 1600: b takes over then, a is retired from then on.
        keys[1].certified_at = Some(1600);
        assert_eq!(active(&keys, 1599).unwrap().kid, "a");
        assert_eq!(active(&keys, 1600).unwrap().kid, "b");
        assert!(next(&keys, 1600).is_none());
        assert_eq!(
            state(&keys, &keys[0], RETAIN, 1650),
            KeyState::Retired { until: 1700 }
        );
        // Attached before its time: b activates at its time, as any key.
        keys[1].certified_at = Some(500);
        assert_eq!(active(&keys, 999).unwrap().kid, "a");
        assert_eq!(active(&keys, 1000).unwrap().kid, "b");
    }

    #[test]
    fn retired_key_stays_retired_after_its_successor_is_revoked() {
        let mut b = key("b", 1000);
        b.revoked_at = Some(1010);
        let keys = vec![key("a", 0), b, key("c", 1010)];
        assert_eq!(
            state(&keys, &keys[0], RETAIN, 1050),
            KeyState::Retired { until: 1100 }
        );
        assert_eq!(active(&keys, 1050).unwrap().kid, "c");
    }
    #[test]
    fn the_superseded_key_signs_within_the_activation_grace_only() {
        let keys = vec![key("a", 0), key("b", 1000), key("c", 2000)];
        assert!(may_sign(&keys, "a", 30, 999));
        assert!(!may_sign(&keys, "b", 30, 999), "a next key never signs");
        assert!(may_sign(&keys, "b", 30, 1000));
        assert!(may_sign(&keys, "a", 30, 1029));
        assert!(!may_sign(&keys, "a", 30, 1030));
        assert!(!may_sign(&keys, "a", 0, 1000));
        assert!(!may_sign(&keys, "zz", 30, 1000));
    }

    #[test]
    fn a_revoked_key_never_signs_in_the_grace() {
        let mut a = key("a", 0);
        a.revoked_at = Some(500);
        let keys = vec![a, key("b", 500)];
        assert!(may_sign(&keys, "a", 30, 499));
        assert!(!may_sign(&keys, "a", 30, 500));
        assert!(!may_sign(&keys, "a", 30, 510));
        assert!(may_sign(&keys, "b", 30, 500));
    }
}
