//! The read models the HTTP layer shows: key sets with their active and next keys, key listings,
//! readiness and the gauges of `/metrics`, as plain serialisable structs. Key states are derived
//! here, once, from the key view and the clock (`keys::lifecycle`); `http/` serialises these and
//! derives nothing.

use serde::Serialize;
use serde_json::{Map, Value};

use super::backends::BackendState;
use super::certs::CertificateInfo;
use super::{Service, ServiceError};
use crate::config::format_duration;
use crate::keys::{KeyRecord, KeyState, Provenance, lifecycle};
use crate::signing::x509::x5t_s256;
use crate::signing::{Profile, PublicKey};

/// Unix seconds, shown as RFC 3339 (`2026-11-29T12:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rfc3339(pub i64);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0.max(0) as u64);
        write!(f, "{}", humantime::format_rfc3339_seconds(t))
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One entry of `GET /v1/key-sets`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeySetStatus {
    pub(crate) name: String,
    pub(crate) profile: &'static str,
    /// Every profile of the key set (`profile` is the first).
    pub(crate) profiles: Vec<&'static str>,
    /// The RFC 9421 name for `http_message` key sets, the JOSE name otherwise.
    pub(crate) alg: &'static str,
    pub(crate) hsm: String,
    pub(crate) issuer: String,
    pub(crate) active_kid: Option<String>,
    pub(crate) active_since: Option<Rfc3339>,
    pub(crate) next_kid: Option<String>,
    pub(crate) next_activate_at: Option<Rfc3339>,
    pub(crate) keys: usize,
    pub(crate) rotation_period: String,
    pub(crate) min_publish: String,
    pub(crate) retain: String,
    pub(crate) max_lifetime: String,
}

/// One key with its state now: an entry of `GET /v1/key-sets/{set}/keys`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyEntry {
    pub(crate) kid: String,
    pub(crate) state: &'static str,
    pub(crate) published: bool,
    pub(crate) alg: String,
    pub(crate) origin: &'static str,
    pub(crate) hsm: String,
    /// `CKA_ID`, hex.
    pub(crate) hsm_id: String,
    pub(crate) created_at: Rfc3339,
    pub(crate) activate_at: Rfc3339,
    pub(crate) revoked_at: Option<Rfc3339>,
    pub(crate) revoke_reason: Option<String>,
    pub(crate) destroyed_at: Option<Rfc3339>,
    /// When the scheduler destroys the private object (`DELETE .../keys/{kid}` with a
    /// `destroy_delay`, or `destroy_after`); `null` when no destruction is pending.
    pub(crate) pending_destruction: Option<Rfc3339>,
    /// What the token says of the private object: `{"local", "always_sensitive",
    /// "never_extractable"}` (`null` until recorded for a key stored before Signet did).
    pub(crate) provenance: Option<Provenance>,
    /// The public JWK (`null` if the stored one does not parse).
    pub(crate) jwk: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retired_until: Option<Rfc3339>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expired_since: Option<Rfc3339>,
    /// Created under `require_certificate`: does not take over before a chain is attached.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) certificate_required: bool,
    /// The attached chain's leaf: expiry and `x5t#S256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) certificate: Option<CertificateInfo>,
}

impl KeyEntry {
    fn new(k: &KeyRecord, state: KeyState) -> Self {
        Self {
            kid: k.kid.clone(),
            state: state.name(),
            published: state.is_published(),
            alg: k.alg.clone(),
            origin: k.origin.name(),
            hsm: k.hsm.clone(),
            hsm_id: hex::encode(&k.hsm_id),
            created_at: Rfc3339(k.created_at),
            activate_at: Rfc3339(k.activate_at),
            revoked_at: k.revoked_at.map(Rfc3339),
            revoke_reason: k.revoke_reason.clone(),
            destroyed_at: k.destroyed_at.map(Rfc3339),
            pending_destruction: k
                .destroy_at
                .filter(|_| k.destroyed_at.is_none())
                .map(Rfc3339),
            provenance: k.provenance,
            jwk: PublicKey::from_jwk(&k.public_jwk)
                .ok()
                .map(|p| p.to_jwk(&k.kid, &k.alg)),
            retired_until: match state {
                KeyState::Retired { until } => Some(Rfc3339(until)),
                _ => None,
            },
            expired_since: match state {
                KeyState::Expired { since } => Some(Rfc3339(since)),
                _ => None,
            },
            certificate_required: k.certificate_required,
            certificate: k.certificate.as_ref().map(|c| CertificateInfo {
                not_after: Rfc3339(c.not_after),
                chain_length: c.x5c.len(),
                x5t_s256: c.x5c.first().and_then(|l| x5t_s256(l)),
                certified_at: k.certified_at.map(Rfc3339),
            }),
        }
    }
}

/// `GET /v1/key-sets/{set}/keys`: every key of one key set with its state now.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyListing {
    pub(crate) key_set: String,
    pub(crate) keys: Vec<KeyEntry>,
}

/// The gauges of `/metrics`, read at scrape time.
#[derive(Debug, Clone)]
pub(crate) struct Gauges {
    pub(crate) backends: Vec<BackendGauge>,
    pub(crate) key_sets: Vec<KeySetGauge>,
    /// The store answered the last key-view load.
    pub(crate) store_up: bool,
    /// The `[audit] sink`, if one is configured: up, last seq written, events read not written.
    pub(crate) audit_sink: Option<(bool, i64, i64)>,
}

#[derive(Debug, Clone)]
pub(crate) struct BackendGauge {
    pub(crate) hsm: String,
    pub(crate) up: bool,
    /// Configured contexts, and those up (fewer: the backend is degraded).
    pub(crate) contexts: usize,
    pub(crate) contexts_up: usize,
    pub(crate) sessions_in_use: usize,
    pub(crate) sessions_idle: usize,
    pub(crate) queue_depth: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct KeySetGauge {
    pub(crate) key_set: String,
    pub(crate) alg: &'static str,
    /// Seconds until the next key activates (0 without one).
    pub(crate) next_rotation_s: i64,
    /// A next key is published.
    pub(crate) next_published: bool,
    /// Seconds since the active key took over (`None` without one), and the rotation period.
    pub(crate) active_age_s: Option<i64>,
    pub(crate) rotation_period_s: i64,
    pub(crate) published_keys: usize,
    /// The next key waits for a certificate (`require_certificate`).
    pub(crate) next_awaits_certificate: bool,
    /// `(kid, seconds to the leaf's notAfter)` of each published key with a certificate.
    pub(crate) certificates: Vec<(String, i64)>,
}

impl Service {
    /// `GET /v1/key-sets`.
    pub(crate) fn key_sets(&self) -> Vec<KeySetStatus> {
        let now = self.now();
        let view = self.view();
        self.config
            .key_sets
            .iter()
            .map(|s| {
                let records = view.records(&s.name);
                let active = lifecycle::active(records, now);
                let next = lifecycle::next(records, now);
                let alg = match s.profile {
                    Profile::HttpMessage => s.alg.http_name().unwrap_or(s.alg.jose_name()),
                    _ => s.alg.jose_name(),
                };
                KeySetStatus {
                    name: s.name.clone(),
                    profile: s.profile.name(),
                    profiles: s.profiles.iter().map(|p| p.name()).collect(),
                    alg,
                    hsm: self.backend_of(s).config.name.clone(),
                    issuer: s.issuer.clone(),
                    active_kid: active.map(|k| k.kid.clone()),
                    active_since: active.map(|k| Rfc3339(k.activate_at)),
                    next_kid: next.map(|k| k.kid.clone()),
                    next_activate_at: next.map(|k| Rfc3339(k.activate_at)),
                    keys: records.len(),
                    rotation_period: format_duration(s.policy.rotation_period),
                    min_publish: format_duration(s.policy.min_publish),
                    retain: format_duration(s.policy.retain),
                    max_lifetime: format_duration(s.policy.max_lifetime),
                }
            })
            .collect()
    }

    /// `GET /v1/key-sets/{set}/keys`: every key of `set` with its state now.
    pub(crate) fn key_listing(&self, set: &str) -> Result<KeyListing, ServiceError> {
        let cfg = self.key_set(set)?;
        let now = self.now();
        let view = self.view();
        let records = view.records(set);
        let retain = cfg.policy.retain.as_secs() as i64;
        Ok(KeyListing {
            key_set: set.to_string(),
            keys: records
                .iter()
                .map(|k| KeyEntry::new(k, lifecycle::state(records, k, retain, now)))
                .collect(),
        })
    }

    /// The entry of key `kid` of `set`, with its state now.
    pub(super) fn key_entry(&self, set: &str, kid: &str) -> Result<KeyEntry, ServiceError> {
        let listing = self.key_listing(set)?;
        listing
            .keys
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| ServiceError::KeyNotFound {
                set: set.to_string(),
                kid: kid.to_string(),
            })
    }

    /// The gauges of `/metrics`, from the live state.
    pub(crate) fn gauges(&self) -> Gauges {
        let backends = self
            .backends
            .iter()
            .map(|slot| {
                let (waiting, running) = slot.load();
                BackendGauge {
                    hsm: slot.name().to_string(),
                    up: matches!(slot.state(), BackendState::Up(_)),
                    contexts: slot.config.contexts,
                    contexts_up: slot.contexts_up(),
                    sessions_in_use: running,
                    sessions_idle: slot.capacity().saturating_sub(running),
                    queue_depth: waiting,
                }
            })
            .collect();
        let now = self.now();
        let view = self.view();
        let key_sets = self
            .config
            .key_sets
            .iter()
            .map(|set| {
                let records = view.records(&set.name);
                let retain = set.policy.retain.as_secs() as i64;
                let published = lifecycle::published(records, retain, now);
                let next = lifecycle::next(records, now);
                KeySetGauge {
                    key_set: set.name.clone(),
                    alg: set.alg.jose_name(),
                    next_rotation_s: next.map_or(0, |k| (k.activate_at - now).max(0)),
                    next_published: next.is_some(),
                    active_age_s: lifecycle::active(records, now).map(|k| now - k.activate_at),
                    rotation_period_s: set.policy.rotation_period.as_secs() as i64,
                    published_keys: published.len(),
                    next_awaits_certificate: next.is_some_and(|k| k.awaits_certificate()),
                    certificates: published
                        .iter()
                        .filter_map(|k| {
                            Some((k.kid.clone(), k.certificate.as_ref()?.not_after - now))
                        })
                        .collect(),
                }
            })
            .collect();
        let audit_sink = (self.audit_sink_status())
            .map(|s| (s.down.is_none(), s.written, (s.seen - s.written).max(0)));
        Gauges {
            backends,
            key_sets,
            store_up: self.store_reachable().is_ok(),
            audit_sink,
        }
    }
}
