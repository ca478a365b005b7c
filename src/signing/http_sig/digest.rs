//! RFC 9530 `Content-Digest`: computing the field value for a body and checking a message's
//! existing field against its body.
//!
//! Owns only SHA-2 digests of message content (the `sha-256` and `sha-512` algorithms); the
//! dictionary syntax goes through `sfv`. Knows neither axum nor cryptoki.

use serde::{Deserialize, Serialize};
use sfv::{BareItem, Dictionary, FieldType as _, Item, ListEntry, Parser};
use sha2::{Digest as _, Sha256, Sha512};

use super::error::HttpSigError;
use super::message::HttpMessage;

/// A Content-Digest algorithm (RFC 9530 section 5, "Hash Algorithms for HTTP Digest Fields").
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) enum DigestAlg {
    #[serde(rename = "sha-256")]
    Sha256,
    #[serde(rename = "sha-512")]
    Sha512,
}

impl DigestAlg {
    /// The registered algorithm key (`sha-256`, `sha-512`).
    #[must_use]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha512 => "sha-512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha-256" => Some(Self::Sha256),
            "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hash(self, body: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(body).to_vec(),
            Self::Sha512 => Sha512::digest(body).to_vec(),
        }
    }
}

/// The Content-Digest field value for `body`, e.g. `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`.
#[must_use]
pub(crate) fn content_digest(body: &[u8], alg: DigestAlg) -> String {
    // An sf-key followed by "=" and a serialized item is one serialized dictionary member;
    // both halves come from sfv-valid values, so no hand-written escaping is involved.
    let value = Item::new(BareItem::ByteSequence(alg.hash(body))).serialize();
    format!("{}={value}", alg.name())
}

/// Checks every `sha-256`/`sha-512` member of the message's Content-Digest field (all field
/// lines combined) against its body. Other algorithms are ignored, as RFC 9530 lets a
/// recipient do. Nothing to check when the field or the body is absent.
pub(crate) fn check_content_digest(message: &HttpMessage) -> Result<(), HttpSigError> {
    let Some(body) = message.body.as_deref() else {
        return Ok(());
    };
    let lines: Vec<&str> = message.field_lines("content-digest").collect();
    if lines.is_empty() {
        return Ok(());
    }
    let combined = lines.join(", ");
    let dict: Dictionary = Parser::new(&combined)
        .parse()
        .map_err(|e: sfv::Error| HttpSigError::ContentDigestInvalid(e.to_string()))?;
    for (key, entry) in &dict {
        let Some(alg) = DigestAlg::from_name(key.as_str()) else {
            continue;
        };
        let ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(expected),
            ..
        }) = entry
        else {
            return Err(HttpSigError::ContentDigestInvalid(format!(
                "{key} is not a byte sequence"
            )));
        };
        if *expected != alg.hash(body) {
            return Err(HttpSigError::ContentDigestMismatch(alg.name()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &[u8], digest: &str) -> HttpMessage {
        HttpMessage {
            headers: vec![("Content-Digest".into(), digest.into())],
            body: Some(body.to_vec()),
            ..HttpMessage::default()
        }
    }

    #[test]
    fn rfc_9530_vectors() {
        let text = std::fs::read_to_string(super::super::VECTORS).expect("read vectors");
        let json: serde_json::Value = serde_json::from_str(&text).expect("vectors JSON");
        let cases = json["rfc9530"].as_array().expect("rfc9530 array");
        assert_eq!(cases.len(), 2);
        for case in cases {
            let body = case["content"].as_str().expect("content").as_bytes();
            for alg in [DigestAlg::Sha256, DigestAlg::Sha512] {
                let b64 = case[alg.name()].as_str().expect("digest");
                let expected = format!("{}=:{b64}:", alg.name());
                assert_eq!(content_digest(body, alg), expected);
                check_content_digest(&message(body, &expected)).expect("matches");
            }
        }
    }

    #[test]
    fn mismatch_and_malformed_fields_are_refused() {
        let body = br#"{"hello": "world"}"#;
        let other = content_digest(b"other", DigestAlg::Sha512);
        let err = check_content_digest(&message(body, &other)).expect_err("mismatch");
        assert_eq!(err.code(), "content_digest_mismatch");
        // A good sha-256 does not excuse a bad sha-512 in the same field.
        let both = format!("{}, {other}", content_digest(body, DigestAlg::Sha256));
        let err = check_content_digest(&message(body, &both)).expect_err("mismatch");
        assert_eq!(err.code(), "content_digest_mismatch");
        for bad in ["sha-256=\"abc\"", "not a dictionary"] {
            let err = check_content_digest(&message(body, bad)).expect_err(bad);
            assert_eq!(err.code(), "content_digest_invalid");
        }
    }

    #[test]
    fn unknown_algorithms_and_absent_parts_are_not_checked() {
        let body = b"abc";
        check_content_digest(&message(body, "md5=:AAAA:")).expect("unknown algorithm ignored");
        let mut no_body = message(body, "sha-256=:AAAA:");
        no_body.body = None;
        check_content_digest(&no_body).expect("no body, nothing to compare");
        check_content_digest(&HttpMessage::default()).expect("no field");
        // Several field lines are one dictionary.
        let mut split = message(body, &content_digest(body, DigestAlg::Sha256));
        split.headers.push((
            "content-digest".into(),
            content_digest(body, DigestAlg::Sha512),
        ));
        check_content_digest(&split).expect("both lines match");
    }
}
