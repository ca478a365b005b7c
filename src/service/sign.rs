//! The one signing pipeline. Every way to sign (`sign/jwt`, `sign/jws`, `sign/http`, and the
//! routes to come) is a [`SignOperation`] run by [`Service::sign`], which does what all of them
//! need, in this order:
//!
//! 1. key set lookup (404) and caller permission (403): may this client sign with this key set;
//! 2. [`SignOperation::admit`]: the operation's policy check at `now` (route and profile
//!    admission, header and claims, RFC 9421 times); it names the profile the signature is made
//!    under;
//! 3. [`SignOperation::choose_key`]: the key that signs (default: the active key at `now`);
//! 4. [`SignOperation::signing_input`]: the exact bytes to sign, built with that key;
//! 5. the backends run under one deadline (a session permit, the queue bound, `op_timeout`), where
//!    the key signs and self-checks; `route` picks the backend and context, spreads the load and
//!    moves a request caught by a failing or hung backend to another;
//! 6. the per-signature audit event when the key set has `audit_signatures = true` (kid, key set,
//!    profile, client, SHA-256 of the signed bytes, never the bytes): written before the signature
//!    is returned, and a signature whose event cannot be written is withheld;
//! 7. [`SignOperation::finish`]: the operation shapes its result;
//! 8. `signet_signatures_total{key_set, alg, outcome}` for every attempt past step 1.
//!
//! `sign/compact` (a caller-built JWS, `service::compact_sign`): `admit` parses the signing input
//! (`signing::compact`) and, for a key set with several profiles, picks one from `typ` and the
//! claims; `choose_key` is [`SetKeys::named`] (the header's `kid`, if the lifecycle rule lets it
//! sign); `signing_input` returns the caller's bytes unchanged.
//!
//! Vault Transit sign (`service::transit`): `admit` decodes the input and, for a JWT key set, runs
//! `sign/compact`'s admission on it; `choose_key` picks by version ([`SetKeys::records`] in
//! creation order) under the same rule as `sign/compact`; a `batch_input` is one [`Service::sign`]
//! per item, so each item gets its own audit event and metric; `finish` shapes DER or JWS output.
//!
//! Extension points (see DESIGN.md):
//! - `header_x5c = true`: the JWS operations note the key set's flag in `admit` and build their
//!   header with `jws::protected_header`, the one place where the key's certificate chain (`x5c`)
//!   joins `alg` and `kid`.
//!
//! Knows nothing of axum.

use sha2::{Digest, Sha256};

use super::route::Job;
use super::view::KeyView;
use super::{Service, ServiceError};
use crate::config::{ClientConfig, KeySetConfig, Role};
use crate::keys::{KeyChange, NewEvent, StoreError, lifecycle};
use crate::signing::{Profile, SignError, SigningKey};

/// One way to sign: its policy check, its key choice, its signing input and its result. The
/// pipeline ([`Service::sign`]) does everything else.
pub trait SignOperation: Send {
    type Output;

    /// The policy check of this request under key set `set` at `now`: whether the route applies
    /// to the key set's profile, and whether the request passes it. Returns the profile the
    /// signature is made under (recorded in the audit trail).
    fn admit(&mut self, set: &KeySetConfig, now: i64) -> Result<Profile, ServiceError>;

    /// The key that signs. Default: the key set's active key at `now`.
    fn choose_key(&self, keys: &SetKeys<'_>) -> Result<SigningKey, ServiceError> {
        keys.active()
    }

    /// The exact bytes `key` signs.
    fn signing_input(&mut self, key: &SigningKey, now: i64) -> Result<Vec<u8>, ServiceError>;

    /// The result, from the signed bytes and their (self-checked) signature.
    fn finish(
        self,
        key: &SigningKey,
        input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<Self::Output, ServiceError>;
}

/// The keys of one key set at one instant, for [`SignOperation::choose_key`].
#[derive(Debug)]
pub struct SetKeys<'a> {
    view: &'a KeyView,
    set: &'a KeySetConfig,
    now: i64,
}

impl SetKeys<'_> {
    /// The key that signs for the key set at `now`: 503 `no_active_key` when there is none.
    pub fn active(&self) -> Result<SigningKey, ServiceError> {
        let active = self
            .view
            .active(&self.set.name, self.now)
            .ok_or_else(|| ServiceError::NoActiveKey(self.set.name.clone()))?;
        self.signer(&active.kid)
    }

    /// The key a caller-built JWS names (`sign/compact`), if the lifecycle rule lets it sign now:
    /// the active key, or the key a rotation superseded less than `activation_grace` ago
    /// (`keys::lifecycle::may_sign`). Otherwise 409 `kid_not_active` with the active and next kids.
    pub fn named(&self, kid: Option<&str>) -> Result<SigningKey, ServiceError> {
        let records = self.view.records(&self.set.name);
        let grace = self.set.policy.activation_grace.as_secs() as i64;
        match kid {
            Some(kid) if lifecycle::may_sign(records, kid, grace, self.now) => self.signer(kid),
            _ => Err(ServiceError::KidNotActive {
                set: self.set.name.clone(),
                kid: kid.map(str::to_string),
                active_kid: lifecycle::active(records, self.now).map(|k| k.kid.clone()),
                next_kid: lifecycle::next(records, self.now).map(|k| k.kid.clone()),
            }),
        }
    }

    /// The key set's records (oldest first), for an operation that picks by version.
    pub fn records(&self) -> &[crate::keys::KeyRecord] {
        self.view.records(&self.set.name)
    }

    pub fn set(&self) -> &KeySetConfig {
        self.set
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    /// The key `kid` of this key set, ready to sign, whatever its state: the operation applies the
    /// lifecycle rule that lets it sign.
    pub fn signer(&self, kid: &str) -> Result<SigningKey, ServiceError> {
        self.view.signer(&self.set.name, kid)
    }
}

/// The route `route` does not apply to `set`'s profile.
pub(super) fn wrong_profile(set: &KeySetConfig, route: &'static str) -> ServiceError {
    ServiceError::WrongProfile {
        set: set.name.clone(),
        profile: set.profile.name(),
        route,
    }
}

impl Service {
    /// Runs `op` for `client` with key set `set`: see the module docs for the steps.
    pub async fn sign<O: SignOperation>(
        &self,
        client: &ClientConfig,
        set: &str,
        op: O,
    ) -> Result<O::Output, ServiceError> {
        let cfg = self.key_set(set)?;
        may_sign(client, cfg)?;
        let result = match self.view_fresh() {
            Ok(()) => self.run_operation(client, cfg, op).await,
            Err(e) => Err(e),
        };
        observe(cfg, &result);
        result
    }

    async fn run_operation<O: SignOperation>(
        &self,
        client: &ClientConfig,
        cfg: &KeySetConfig,
        mut op: O,
    ) -> Result<O::Output, ServiceError> {
        let now = self.now();
        let profile = op.admit(cfg, now)?;
        let (key, id) = {
            let view = self.view();
            let key = op.choose_key(&SetKeys {
                view: &view,
                set: cfg,
                now,
            })?;
            let id =
                view.hsm_id(&cfg.name, key.kid())
                    .ok_or_else(|| ServiceError::KeyNotFound {
                        set: cfg.name.clone(),
                        kid: key.kid().to_string(),
                    })?;
            (key, id)
        };
        let input = op.signing_input(&key, now)?;
        let job = Job::new(key, input, id);
        let signature = self.sign_routed(cfg, job.clone()).await;
        let (key, input) = Job::into_parts(job);
        let signature = signature?;
        // A signature made while its key was being revoked is withheld, never returned: the
        // caller gets `kid_not_active` and signs again with the key that took over.
        if self.revoked_meanwhile(cfg, key.kid()) {
            return Err(self.revoked_in_flight(cfg, key.kid()));
        }
        self.audit_signature(cfg, client, profile, key.kid(), &input)
            .await
            .map_err(|e| match e {
                ServiceError::Store(StoreError::Conflict(_)) => {
                    self.revoked_in_flight(cfg, key.kid())
                }
                e => e,
            })?;
        op.finish(&key, input, signature)
    }

    /// Whether the key view now has `kid` revoked (it was not when the key was chosen).
    fn revoked_meanwhile(&self, cfg: &KeySetConfig, kid: &str) -> bool {
        (self.view().records(&cfg.name).iter()).any(|r| r.kid == kid && r.revoked_at.is_some())
    }

    /// 409 `kid_not_active` for a signature whose key was revoked while it was being made.
    fn revoked_in_flight(&self, cfg: &KeySetConfig, kid: &str) -> ServiceError {
        let (view, now) = (self.view(), self.now());
        let records = view.records(&cfg.name);
        ServiceError::KidNotActive {
            set: cfg.name.clone(),
            kid: Some(kid.to_string()),
            active_kid: lifecycle::active(records, now).map(|k| k.kid.clone()),
            next_kid: lifecycle::next(records, now).map(|k| k.kid.clone()),
        }
    }

    /// The optional per-signature audit record: never the signed bytes, only their SHA-256. It is
    /// written with a check that the key is not revoked, in one transaction, so that no `signed`
    /// event of a key follows its `revoked` event.
    async fn audit_signature(
        &self,
        cfg: &KeySetConfig,
        client: &ClientConfig,
        profile: Profile,
        kid: &str,
        input: &[u8],
    ) -> Result<(), ServiceError> {
        if !cfg.audit_signatures {
            return Ok(());
        }
        let digest = hex::encode(Sha256::digest(input));
        let event = NewEvent::new(self.now(), &client.name, "signed")
            .key(&cfg.name, kid)
            .detail(serde_json::json!({ "profile": profile.name(), "input_sha256": digest }));
        let check = KeyChange::NotRevoked {
            key_set: cfg.name.clone(),
            kid: kid.to_string(),
        };
        Ok(self.store.apply(&[check], &[event]).await?)
    }
}

/// 403 unless `client` is a signer allowed to use key set `set`.
pub(super) fn may_sign(client: &ClientConfig, set: &KeySetConfig) -> Result<(), ServiceError> {
    let allowed = client.role == Role::Signer
        && client
            .key_sets
            .as_ref()
            .is_none_or(|sets| sets.contains(&set.name));
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            client: client.name.clone(),
            set: set.name.clone(),
        })
    }
}

/// Counts a sign call in `signet_signatures_total{key_set, alg, outcome}`.
fn observe<T>(cfg: &KeySetConfig, result: &Result<T, ServiceError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(
            ServiceError::Policy(_)
            | ServiceError::Message(_)
            | ServiceError::PayloadNotBase64url(_)
            | ServiceError::Compact(_)
            | ServiceError::Transit(_)
            | ServiceError::ProfileUnmatched(_)
            | ServiceError::KidNotActive { .. }
            | ServiceError::WrongProfile { .. },
        ) => "rejected",
        Err(ServiceError::Sign(SignError::Busy)) => "busy",
        Err(ServiceError::Sign(SignError::Timeout)) => "timeout",
        Err(ServiceError::Sign(SignError::Unavailable(_)) | ServiceError::NoActiveKey(_)) => {
            "unavailable"
        }
        Err(ServiceError::Sign(SignError::SelfCheckFailed(_))) => "self_check_failed",
        Err(_) => "error",
    };
    metrics::counter!("signet_signatures_total",
        "key_set" => cfg.name.clone(), "alg" => cfg.alg.jose_name(), "outcome" => outcome)
    .increment(1);
}
