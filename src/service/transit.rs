//! Vault Transit `sign` as an operation of the signing pipeline (`service::sign`), and the request
//! options it shares with `verify` (`service::transit_keys`). Knows nothing of axum.
//!
//! Policy stays Signet's: a key set of a JWT profile signs only an `input` that is a JWS signing
//! input passing the `sign/compact` rules (the same [`SignCompact`] admission, on the decoded
//! input), and its header `kid` must be the kid of the key version that signs; only `generic` key
//! sets sign arbitrary bytes. Which version may sign is the `sign/compact` rule too
//! (`lifecycle::may_sign`): the active key, or the one a rotation superseded less than
//! `activation_grace` ago; a next, retired, expired or revoked version refuses.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};

use super::ServiceError;
use super::compact_sign::SignCompact;
use super::sign::{SetKeys, SignOperation, wrong_profile};
use super::transit_keys::{refusal, versions};
use crate::config::KeySetConfig;
use crate::keys::lifecycle;
use crate::signing::x509::ecdsa_der;
use crate::signing::{Algorithm, Profile, SigningKey};

/// How a signature is written: `asn1` (Vault's default; DER for ECDSA) or `jws` (base64url
/// without padding; `r || s` for ECDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Marshaling {
    #[default]
    Asn1,
    Jws,
}

/// The options of a Transit `sign` or `verify` request, as sent (Vault's names).
#[derive(Debug, Clone, Default)]
pub struct TransitOptions {
    /// `hash_algorithm`, or the `{hash}` path segment.
    pub hash_algorithm: Option<String>,
    pub marshaling_algorithm: Option<String>,
    pub signature_algorithm: Option<String>,
    /// `salt_length` as sent (`auto`, `hash`, or a number).
    pub salt_length: Option<String>,
    pub prehashed: bool,
    /// `key_version`; `None` (or 0) is the latest.
    pub key_version: Option<u32>,
}

/// The hash of `alg`'s signature scheme, by Vault's name.
fn hash_of(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::Ps256 | Algorithm::Rs256 | Algorithm::Es256 => Some("sha2-256"),
        Algorithm::Ps384 | Algorithm::Es384 => Some("sha2-384"),
        Algorithm::Ps512 => Some("sha2-512"),
        Algorithm::EdDsa | Algorithm::Ed25519 => None,
    }
}

const HASHES: [&str; 9] = [
    "sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384",
    "sha3-512",
];

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::Transit(msg.into())
}

impl TransitOptions {
    /// Checks the options against key set `set`: the marshaling to use. The hash must be the one
    /// of the key set's algorithm (the HSM mechanism hashes; Ed25519 ignores it, as Vault does),
    /// the RSA scheme the key set's, the PSS salt the hash length; `prehashed` is refused (the
    /// HSM mechanism hashes the input itself).
    pub fn check(&self, set: &KeySetConfig) -> Result<Marshaling, ServiceError> {
        let alg = set.alg;
        if let Some(h) = self.hash_algorithm.as_deref() {
            if !HASHES.contains(&h) && h != "none" {
                return Err(bad(format!("invalid hash algorithm {h:?}")));
            }
            if let Some(fit) = hash_of(alg).filter(|fit| *fit != h) {
                return Err(bad(format!(
                    "hash_algorithm {h} does not fit key set {}'s algorithm {alg}: use {fit}",
                    set.name
                )));
            }
        }
        if self.prehashed {
            return Err(bad(
                "prehashed input is not accepted: the HSM mechanism hashes the input itself",
            ));
        }
        let scheme = match alg {
            Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512 => Some("pss"),
            Algorithm::Rs256 => Some("pkcs1v15"),
            _ => None,
        };
        if let (Some(s), Some(fit)) = (self.signature_algorithm.as_deref(), scheme)
            && s != fit
        {
            return Err(bad(format!(
                "signature_algorithm {s} does not fit key set {}'s algorithm {alg}: use {fit}",
                set.name
            )));
        }
        if let Some(salt) = self.salt_length.as_deref()
            && salt != "auto"
            && salt != "hash"
        {
            return Err(bad(format!(
                "salt_length {salt} is not supported: PSS always uses salt = hash length \
                 (RFC 7518 3.5); use `auto` or `hash`"
            )));
        }
        match self.marshaling_algorithm.as_deref() {
            None | Some("asn1") => Ok(Marshaling::Asn1),
            Some("jws") => Ok(Marshaling::Jws),
            Some(m) => Err(bad(format!("invalid marshaling type {m:?}"))),
        }
    }
}

/// A Transit signature: `vault:v<N>:<signature>`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransitSigned {
    pub signature: String,
    pub key_version: u32,
}

/// One Transit `sign` (one `batch_input` item): `input` is standard base64.
#[derive(Debug)]
pub struct TransitSign {
    input_b64: String,
    input: Vec<u8>,
    marshaling: Marshaling,
    key_version: Option<u32>,
    /// For a key set of a JWT profile: the `sign/compact` operation on the decoded input.
    compact: Option<SignCompact>,
    /// The version of the key `choose_key` chose.
    chosen: OnceLock<u32>,
}

impl TransitSign {
    /// `marshaling` comes from [`TransitOptions::check`].
    pub fn new(input_b64: String, marshaling: Marshaling, key_version: Option<u32>) -> Self {
        Self {
            input_b64,
            input: Vec::new(),
            marshaling,
            key_version: key_version.filter(|v| *v != 0),
            compact: None,
            chosen: OnceLock::new(),
        }
    }
}

impl SignOperation for TransitSign {
    type Output = TransitSigned;

    fn admit(&mut self, set: &KeySetConfig, now: i64) -> Result<Profile, ServiceError> {
        let bytes = B64
            .decode(self.input_b64.trim())
            .map_err(|e| bad(format!("unable to decode input as base64: {e}")))?;
        match set.profile {
            Profile::Generic => {
                self.input = bytes;
                Ok(Profile::Generic)
            }
            Profile::HttpMessage => Err(wrong_profile(set, "transit/sign")),
            _ => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    bad(format!(
                        "key set {} signs JWTs: input must be a JWS signing input \
                         BASE64URL(header).BASE64URL(payload), and it is not text",
                        set.name
                    ))
                })?;
                let mut compact = SignCompact::new(text);
                let profile = compact.admit(set, now)?;
                self.compact = Some(compact);
                Ok(profile)
            }
        }
    }

    fn choose_key(&self, keys: &SetKeys<'_>) -> Result<SigningKey, ServiceError> {
        let header_kid = self.compact.as_ref().and_then(SignCompact::kid);
        let key = match self.key_version {
            // The latest version, or for a JWT the header's kid under the `sign/compact` rule.
            None if self.compact.is_some() => keys.named(header_kid)?,
            None => keys.active()?,
            Some(n) => by_version(keys, n, self.compact.is_some().then_some(header_kid))?,
        };
        let version = versions(keys.records())
            .iter()
            .position(|r| r.kid == key.kid())
            .ok_or(ServiceError::Internal("the chosen key has no version"))?;
        let _ = self.chosen.set(version as u32 + 1);
        Ok(key)
    }

    fn signing_input(&mut self, key: &SigningKey, now: i64) -> Result<Vec<u8>, ServiceError> {
        match &mut self.compact {
            Some(compact) => compact.signing_input(key, now),
            None => Ok(std::mem::take(&mut self.input)),
        }
    }

    fn finish(
        self,
        key: &SigningKey,
        _input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<TransitSigned, ServiceError> {
        let version = *self
            .chosen
            .get()
            .ok_or(ServiceError::Internal("no key version chosen"))?;
        let ecdsa = matches!(key.alg(), Algorithm::Es256 | Algorithm::Es384);
        let encoded = match self.marshaling {
            Marshaling::Jws => B64URL.encode(&signature),
            Marshaling::Asn1 if ecdsa => B64.encode(
                ecdsa_der(&signature).map_err(|_| ServiceError::Internal("ECDSA DER encoding"))?,
            ),
            Marshaling::Asn1 => B64.encode(&signature),
        };
        Ok(TransitSigned {
            signature: format!("vault:v{version}:{encoded}"),
            key_version: version,
        })
    }
}

/// The key of version `n`, if the `sign/compact` rule lets it sign now; for a JWT
/// (`header_kid` given) the header's kid must be that version's.
fn by_version(
    keys: &SetKeys<'_>,
    n: u32,
    header_kid: Option<Option<&str>>,
) -> Result<SigningKey, ServiceError> {
    let (set, records) = (keys.set(), keys.records());
    let ordered = versions(records);
    let record = (n as usize)
        .checked_sub(1)
        .and_then(|i| ordered.get(i))
        .ok_or_else(|| bad(format!("key set {} has no key version {n}", set.name)))?;
    if let Some(kid) = header_kid
        && kid != Some(record.kid.as_str())
    {
        return Err(bad(format!(
            "the JWS header kid {} is not the kid of key version {n} ({})",
            kid.unwrap_or("(none)"),
            record.kid
        )));
    }
    let grace = set.policy.activation_grace.as_secs() as i64;
    if !lifecycle::may_sign(records, &record.kid, grace, keys.now()) {
        return Err(bad(refusal(set, records, record, n, keys.now())));
    }
    keys.signer(&record.kid)
}
