//! The request and response shapes of the Vault Transit routes (`http::transit`), with Vault's
//! field names. Unknown fields are ignored, as Vault does.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::transit::VaultError;
use crate::service::TransitOptions;

/// The JSON body, or Vault's 400.
pub(crate) fn parse<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, VaultError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| VaultError::bad_request(format!("failed to parse JSON input: {e}")))
}

/// A `batch_input` item.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct BatchItem {
    /// Standard base64 of the bytes to sign (for a JWT key set: of the JWS signing input).
    pub(crate) input: Option<String>,
    /// `verify` only: the `vault:v<N>:...` signature.
    pub(crate) signature: Option<String>,
    /// Echoed in the item's result.
    pub(crate) reference: Option<String>,
}

/// `salt_length`: `auto` or `hash` (PSS always uses salt = hash length); a number is refused.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum SaltLength {
    Name(String),
    Number(i64),
}

impl SaltLength {
    fn as_string(&self) -> String {
        match self {
            SaltLength::Name(s) => s.clone(),
            SaltLength::Number(n) => n.to_string(),
        }
    }
}

/// `POST /v1/transit/sign/{set}[/{hash}]`
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct SignBody {
    /// Standard base64. For a key set of a JWT profile: a JWS signing input
    /// `BASE64URL(header).BASE64URL(payload)` passing the `sign/compact` rules; only `generic`
    /// key sets sign arbitrary bytes.
    pub(crate) input: Option<String>,
    /// `sha2-256`, `sha2-384`, `sha2-512`: must be the key set algorithm's (ignored for Ed25519).
    pub(crate) hash_algorithm: Option<String>,
    /// `asn1` (default; DER for ECDSA) or `jws` (base64url, `r || s` for ECDSA).
    pub(crate) marshaling_algorithm: Option<String>,
    /// RSA: `pss` (PS* key sets) or `pkcs1v15` (RS256).
    pub(crate) signature_algorithm: Option<String>,
    pub(crate) salt_length: Option<SaltLength>,
    /// Refused when true: the HSM mechanism hashes.
    pub(crate) prehashed: Option<bool>,
    /// Default: the latest (active) version.
    #[schema(minimum = 0)]
    pub(crate) key_version: Option<u32>,
    pub(crate) batch_input: Option<Vec<BatchItem>>,
}

impl SignBody {
    pub(crate) fn options(&self, path_hash: Option<String>) -> TransitOptions {
        TransitOptions {
            hash_algorithm: path_hash.or_else(|| self.hash_algorithm.clone()),
            marshaling_algorithm: self.marshaling_algorithm.clone(),
            signature_algorithm: self.signature_algorithm.clone(),
            salt_length: self.salt_length.as_ref().map(SaltLength::as_string),
            prehashed: self.prehashed.unwrap_or(false),
            key_version: self.key_version,
        }
    }
}

/// `POST /v1/transit/verify/{set}[/{hash}]`
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct VerifyBody {
    /// Standard base64 of the signed bytes.
    pub(crate) input: Option<String>,
    /// `vault:v<N>:<signature>`, as `sign` returned it.
    pub(crate) signature: Option<String>,
    /// Not supported (Signet's keys sign).
    pub(crate) hmac: Option<String>,
    pub(crate) hash_algorithm: Option<String>,
    /// How the signature was marshaled: `asn1` (default) or `jws`.
    pub(crate) marshaling_algorithm: Option<String>,
    pub(crate) signature_algorithm: Option<String>,
    pub(crate) salt_length: Option<SaltLength>,
    pub(crate) prehashed: Option<bool>,
    pub(crate) batch_input: Option<Vec<BatchItem>>,
}

impl VerifyBody {
    pub(crate) fn options(&self, path_hash: Option<String>) -> TransitOptions {
        TransitOptions {
            hash_algorithm: path_hash.or_else(|| self.hash_algorithm.clone()),
            marshaling_algorithm: self.marshaling_algorithm.clone(),
            signature_algorithm: self.signature_algorithm.clone(),
            salt_length: self.salt_length.as_ref().map(SaltLength::as_string),
            prehashed: self.prehashed.unwrap_or(false),
            key_version: None,
        }
    }
}

/// Vault's error body (not RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VaultErrorsDoc {
    errors: Vec<String>,
}

/// Vault's envelope of a `sign` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TransitSignedDoc {
    /// `{"signature": "vault:v<N>:...", "key_version": N}`, or `{"batch_results": [...]}` (each
    /// item `signature` and `key_version`, or `error`; and `reference`).
    #[schema(value_type = Object)]
    data: Value,
}

/// Vault's envelope of a `verify` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TransitValidDoc {
    /// `{"valid": bool}`, or `{"batch_results": [...]}`.
    #[schema(value_type = Object)]
    data: Value,
}

/// Vault's envelope of a read-key answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TransitKeyDoc {
    #[schema(value_type = Object)]
    data: Value,
}
