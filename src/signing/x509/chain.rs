//! Checking a certificate chain an operator attaches to a key (PEM, leaf first), with
//! `x509-parser`: every block a certificate, the leaf's public key the key's own, each
//! certificate within its validity window at `now` and signed by the next one (the last one, if
//! self-signed, by itself). A certificate whose `notBefore` is still ahead is accepted (a CA's
//! clock a little ahead of ours, or a certificate valid from the key's activation).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::signing::PublicKey;

/// A chain that passed [`check`]: what the JWK and the JWS header carry, and the leaf's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedChain {
    /// Standard base64 of each certificate's DER, leaf first (JWK/JWS `x5c`).
    pub x5c: Vec<String>,
    /// The leaf's `notAfter`, unix seconds.
    pub not_after: i64,
    /// The leaf's subject and issuer (RFC 4514), for the audit trail.
    pub subject: String,
    pub issuer: String,
}

/// Why a chain is refused.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the leaf certificate is for another key (its key's thumbprint is {0})")]
    KeyMismatch(String),
    #[error("the chain is malformed or out of order: {0}")]
    Invalid(String),
    #[error("certificate {index} of the chain ({subject}) expired at {not_after}")]
    Expired {
        index: usize,
        subject: String,
        not_after: String,
    },
}

/// `x5t#S256` of a chain's leaf (base64url SHA-256 of its DER), from its `x5c` entry.
pub fn x5t_s256(leaf_b64: &str) -> Option<String> {
    let der = STANDARD.decode(leaf_b64).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(der)))
}

/// The DER of each PEM `CERTIFICATE` block of `pem`, in order.
fn blocks(pem: &str) -> Result<Vec<Vec<u8>>, ChainError> {
    let mut out = Vec::new();
    for (i, block) in Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let block = block.map_err(|e| ChainError::Invalid(format!("PEM block {i}: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(ChainError::Invalid(format!(
                "PEM block {i} is a {}, not a CERTIFICATE",
                block.label
            )));
        }
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err(ChainError::Invalid(
            "no PEM CERTIFICATE block in `chain`".into(),
        ));
    }
    Ok(out)
}

/// Checks `pem` as the chain of `key` at `now` (unix seconds).
pub fn check(pem: &str, key: &PublicKey, now: i64) -> Result<CheckedChain, ChainError> {
    let ders = blocks(pem)?;
    let mut certs = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| ChainError::Invalid(format!("certificate {i}: {e}")))?;
        if !rest.is_empty() {
            return Err(ChainError::Invalid(format!(
                "certificate {i}: trailing bytes"
            )));
        }
        certs.push(cert);
    }
    let leaf = &certs[0];
    let leaf_key = super::spki::public_key(leaf.public_key())
        .map(|k| k.thumbprint())
        .unwrap_or_else(|| "(not a key Signet signs with)".into());
    if leaf_key != key.thumbprint() {
        return Err(ChainError::KeyMismatch(leaf_key));
    }
    for (i, cert) in certs.iter().enumerate() {
        let validity = cert.validity();
        if now > validity.not_after.timestamp() {
            return Err(ChainError::Expired {
                index: i,
                subject: cert.subject().to_string(),
                not_after: validity.not_after.to_string(),
            });
        }
    }
    for (i, pair) in certs.windows(2).enumerate() {
        issued_by(&pair[0], &pair[1], i)?;
    }
    if let Some(last) = certs.last()
        && certs.len() > 1
        && last.subject().as_raw() == last.issuer().as_raw()
    {
        issued_by(last, last, certs.len() - 1)?;
    }
    Ok(CheckedChain {
        x5c: ders.iter().map(|d| STANDARD.encode(d)).collect(),
        not_after: leaf.validity().not_after.timestamp(),
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
    })
}

/// `cert` (certificate `i`) names `issuer` as its issuer and carries its signature.
fn issued_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    i: usize,
) -> Result<(), ChainError> {
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(ChainError::Invalid(format!(
            "certificate {i} is issued by {}, but the next one is {} (leaf first, then its issuer)",
            cert.issuer(),
            issuer.subject()
        )));
    }
    cert.verify_signature(Some(issuer.public_key()))
        .map_err(|e| {
            ChainError::Invalid(format!(
                "certificate {i} does not verify with its issuer's key: {e}"
            ))
        })
}
