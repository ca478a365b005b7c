//! Vault Transit key versions, the read model of `GET /v1/transit/keys/{set}`, and `verify`.
//!
//! Versions: each key of a key set has a stable version, 1, 2, ... in creation order (records
//! ordered by `created_at`, then `activate_at`, then kid). Public keys are never deleted from the
//! store, so a version never changes; two keys created in the same second are told apart by
//! `activate_at` (the first key of a key set activates at once, its next key later), and only then
//! by kid. `latest_version` is the active key's. Knows nothing of axum.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde::Serialize;

use super::read::Rfc3339;
use super::sign::may_sign;
use super::transit::{Marshaling, TransitOptions};
use super::{Service, ServiceError};
use crate::config::{ClientConfig, KeySetConfig, Role};
use crate::keys::{KeyRecord, KeyState, lifecycle};
use crate::signing::x509::{ecdsa_raw, spki_pem};
use crate::signing::{Algorithm, PublicKey, verify};

/// The records of a key set in version order: version `i + 1` is element `i`.
pub(super) fn versions(records: &[KeyRecord]) -> Vec<&KeyRecord> {
    let mut out: Vec<&KeyRecord> = records.iter().collect();
    out.sort_by(|a, b| {
        (a.created_at, a.activate_at, &a.kid).cmp(&(b.created_at, b.activate_at, &b.kid))
    });
    out
}

fn state_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Next => "next",
        KeyState::Active => "active",
        KeyState::Retired { .. } => "retired",
        KeyState::Expired { .. } => "expired",
        KeyState::Revoked => "revoked",
    }
}

/// Why key version `n` (`record`) may not sign now.
pub(super) fn refusal(
    set: &KeySetConfig,
    records: &[KeyRecord],
    record: &KeyRecord,
    n: u32,
    now: i64,
) -> String {
    let retain = set.policy.retain.as_secs() as i64;
    let kid = &record.kid;
    match lifecycle::state(records, record, retain, now) {
        KeyState::Next => format!(
            "key version {n} ({kid}) of key set {} is the next key: it is published but may not \
             sign before it activates at {}",
            set.name,
            Rfc3339(record.activate_at)
        ),
        state => format!(
            "key version {n} ({kid}) of key set {} is {}: only the active key version signs",
            set.name,
            state_name(state)
        ),
    }
}

/// One version in `GET /v1/transit/keys/{set}`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TransitKeyVersion {
    /// PEM SubjectPublicKeyInfo.
    pub(crate) public_key: String,
    pub(crate) creation_time: Rfc3339,
    /// Vault's name of the key: `P-256`, `P-384`, `rsa-<bits>`, `ed25519`.
    pub(crate) name: String,
    pub(crate) certificate_chain: String,
    /// Signet's: the key's kid (RFC 7638 thumbprint) and its lifecycle state now.
    pub(crate) kid: String,
    pub(crate) state: &'static str,
}

/// Vault's read-key shape, for a Signet key set.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TransitKey {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) key_type: String,
    pub(crate) keys: BTreeMap<String, TransitKeyVersion>,
    pub(crate) latest_version: u32,
    pub(crate) min_available_version: u32,
    pub(crate) min_decryption_version: u32,
    pub(crate) min_encryption_version: u32,
    pub(crate) deletion_allowed: bool,
    pub(crate) derived: bool,
    pub(crate) exportable: bool,
    pub(crate) allow_plaintext_backup: bool,
    pub(crate) supports_encryption: bool,
    pub(crate) supports_decryption: bool,
    pub(crate) supports_derivation: bool,
    pub(crate) supports_signing: bool,
    pub(crate) imported_key: bool,
    pub(crate) auto_rotate_period: u64,
}

/// Vault's key type name of `public`.
fn key_name(public: &PublicKey) -> String {
    match public {
        PublicKey::Ec { x, .. } if x.len() > 32 => "P-384".into(),
        PublicKey::Ec { .. } => "P-256".into(),
        PublicKey::Rsa { n, .. } => {
            let bytes = n.iter().skip_while(|b| **b == 0).count();
            format!("rsa-{}", bytes * 8)
        }
        PublicKey::Ed25519 { .. } => "ed25519".into(),
    }
}

/// Vault's `type` of a key set's keys.
fn key_type(set: &KeySetConfig, latest: Option<&PublicKey>) -> String {
    match (set.alg, latest) {
        (Algorithm::Es256, _) => "ecdsa-p256".into(),
        (Algorithm::Es384, _) => "ecdsa-p384".into(),
        (Algorithm::EdDsa | Algorithm::Ed25519, _) => "ed25519".into(),
        (_, Some(public)) => key_name(public),
        _ => format!("rsa-{}", set.rsa_bits),
    }
}

impl Service {
    /// The key set `set`, if `client` may use it through Transit (a signer of it), with the
    /// marshaling `options` ask for.
    pub fn transit_admit(
        &self,
        client: &ClientConfig,
        set: &str,
        options: &TransitOptions,
    ) -> Result<Marshaling, ServiceError> {
        let cfg = self.key_set(set)?;
        may_sign(client, cfg)?;
        options.check(cfg)
    }

    /// `GET /v1/transit/keys/{set}`: for a signer of `set`, an admin or an auditor.
    pub(crate) fn transit_key(
        &self,
        client: &ClientConfig,
        set: &str,
    ) -> Result<TransitKey, ServiceError> {
        let cfg = self.key_set(set)?;
        if !matches!(client.role, Role::Admin | Role::Auditor) {
            may_sign(client, cfg)?;
        }
        let (view, now) = (self.view(), self.now());
        let records = view.records(set);
        let retain = cfg.policy.retain.as_secs() as i64;
        let active = lifecycle::active(records, now);
        let mut keys = BTreeMap::new();
        let mut latest = (0, None);
        for (i, r) in versions(records).into_iter().enumerate() {
            let public = PublicKey::from_jwk(&r.public_jwk)
                .map_err(|_| ServiceError::Internal("a stored public key is corrupt"))?;
            let pem = spki_pem(&public)
                .map_err(|_| ServiceError::Internal("a public key has no SPKI encoding"))?;
            let version = i as u32 + 1;
            if active.is_some_and(|a| a.kid == r.kid) {
                latest = (version, Some(public.clone()));
            }
            let entry = TransitKeyVersion {
                public_key: pem,
                creation_time: Rfc3339(r.created_at),
                name: key_name(&public),
                certificate_chain: String::new(),
                kid: r.kid.clone(),
                state: state_name(lifecycle::state(records, r, retain, now)),
            };
            keys.insert(version.to_string(), entry);
        }
        Ok(TransitKey {
            name: cfg.name.clone(),
            key_type: key_type(cfg, latest.1.as_ref()),
            keys,
            latest_version: latest.0,
            min_available_version: 0,
            min_decryption_version: 1,
            min_encryption_version: 0,
            deletion_allowed: false,
            derived: false,
            exportable: false,
            allow_plaintext_backup: false,
            supports_encryption: false,
            supports_decryption: false,
            supports_derivation: false,
            supports_signing: true,
            imported_key: false,
            auto_rotate_period: 0,
        })
    }

    /// Transit `verify` of one item: whether `signature` (`vault:v<N>:...`) is key version N's
    /// signature of `input` (standard base64). A revoked version verifies nothing.
    pub fn transit_verify(
        &self,
        set: &str,
        marshaling: Marshaling,
        input: &str,
        signature: &str,
    ) -> Result<bool, ServiceError> {
        let cfg = self.key_set(set)?;
        let input = B64
            .decode(input.trim())
            .map_err(|e| ServiceError::Transit(format!("unable to decode input as base64: {e}")))?;
        let (version, encoded) = parse_signature(signature)?;
        let view = self.view();
        let records = view.records(set);
        let ordered = versions(records);
        let record = (version as usize)
            .checked_sub(1)
            .and_then(|i| ordered.get(i))
            .ok_or_else(|| ServiceError::Transit(format!("invalid key version {version}")))?;
        if record.is_revoked_at(self.now()) {
            return Ok(false);
        }
        let public = PublicKey::from_jwk(&record.public_jwk)
            .map_err(|_| ServiceError::Internal("a stored public key is corrupt"))?;
        let decoded = match marshaling {
            Marshaling::Jws => B64URL.decode(encoded),
            Marshaling::Asn1 => B64.decode(encoded),
        };
        let Ok(sig) = decoded else {
            return Err(ServiceError::Transit(
                "invalid base64 signature value".into(),
            ));
        };
        let len = match cfg.alg {
            Algorithm::Es256 => Some(32),
            Algorithm::Es384 => Some(48),
            _ => None,
        };
        let raw = match (len, marshaling) {
            (Some(len), Marshaling::Asn1) => match ecdsa_raw(&sig, len) {
                Some(raw) => raw,
                None => return Ok(false),
            },
            _ => sig,
        };
        verify(cfg.alg, &public, &input, &raw).map_err(|e| ServiceError::KeyUnusable {
            set: set.to_string(),
            kid: record.kid.clone(),
            source: std::sync::Arc::new(e),
        })
    }
}

/// `vault:v<N>:<signature>` split into N and the signature.
fn parse_signature(signature: &str) -> Result<(u32, &str), ServiceError> {
    let rest = signature
        .strip_prefix("vault:v")
        .ok_or_else(|| ServiceError::Transit("invalid signature: no prefix".into()))?;
    let (version, encoded) = rest
        .split_once(':')
        .ok_or_else(|| ServiceError::Transit("invalid signature: wrong number of fields".into()))?;
    let version = version
        .parse::<u32>()
        .map_err(|_| ServiceError::Transit("invalid signature: version number".into()))?;
    Ok((version, encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_creation_then_activation_then_kid() {
        // The first key and its next key, created in the same second: the first activates at once.
        let first = KeyRecord::for_test("zzz", 100);
        let mut next = KeyRecord::for_test("aaa", 200);
        next.created_at = 100;
        let mut later = KeyRecord::for_test("mmm", 300);
        later.created_at = 150;
        let records = [later.clone(), next.clone(), first.clone()];
        let kids: Vec<&str> = versions(&records).iter().map(|r| r.kid.as_str()).collect();
        assert_eq!(kids, ["zzz", "aaa", "mmm"]);
    }

    #[test]
    fn signatures_carry_their_version() {
        assert_eq!(parse_signature("vault:v12:abc=").unwrap(), (12, "abc="));
        for bad in ["abc", "vault:vx:abc", "vault:v1", "v1:abc"] {
            assert!(matches!(
                parse_signature(bad),
                Err(ServiceError::Transit(_))
            ));
        }
    }
}
