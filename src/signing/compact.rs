//! A caller-built compact JWS signing input (`sign/compact`): `BASE64URL(header) "."
//! BASE64URL(payload)`, parsed and checked before Signet signs the exact bytes it was given.
//!
//! Parsing is serde_json's; only the duplicate-member check is added (a visitor that refuses a
//! member name seen twice in one object, at any depth), since RFC 7515 4 and RFC 7519 4 ask a
//! producer never to emit duplicates and verifiers disagree about which one wins. Pure.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a signing input cannot be signed as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("signing_input must be BASE64URL(header).BASE64URL(payload): {0}")]
    Malformed(&'static str),
    #[error("the {part} is not JSON: {reason}")]
    NotJson { part: &'static str, reason: String },
    #[error("the payload must be a JSON object")]
    PayloadNotObject,
    #[error("the {part} repeats the member name `{name}`")]
    DuplicateMember { part: &'static str, name: String },
    #[error("header alg `{given}` is not this key set's alg {expected}")]
    AlgMismatch { given: String, expected: String },
}

impl CompactError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::NotJson { .. } => "malformed_signing_input",
            Self::PayloadNotObject => "payload_not_object",
            Self::DuplicateMember { .. } => "duplicate_member",
            Self::AlgMismatch { .. } => "alg_mismatch",
        }
    }
}

/// A parsed signing input.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactInput {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload as a JSON object, when it is one.
    pub claims: Option<Map<String, Value>>,
}

impl CompactInput {
    /// The header's `kid`, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The header's `typ`, if it is a string.
    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    /// The header without `alg` and `kid` (which Signet checks itself), for the profile's header
    /// rule.
    pub fn caller_members(&self) -> Map<String, Value> {
        self.header
            .iter()
            .filter(|(name, _)| *name != "alg" && *name != "kid")
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

/// Parses `input`. The header must be a JSON object with `alg` equal to `alg`; the payload must be
/// a JSON object unless `any_payload` (profile `generic`). No member name may repeat in either.
pub fn parse(input: &str, alg: &str, any_payload: bool) -> Result<CompactInput, CompactError> {
    let (h, p) = input
        .split_once('.')
        .ok_or(CompactError::Malformed("no '.'"))?;
    if p.contains('.') {
        return Err(CompactError::Malformed("more than one '.'"));
    }
    if h.is_empty() {
        return Err(CompactError::Malformed("empty header"));
    }
    let header = decode(h, "header")?;
    let header = match strict_json(&header, "header")? {
        Value::Object(map) => map,
        _ => return Err(CompactError::Malformed("the header is not a JSON object")),
    };
    match header.get("alg") {
        Some(Value::String(given)) if given == alg => {}
        other => {
            return Err(CompactError::AlgMismatch {
                given: other.map_or_else(|| "(none)".into(), |v| v.to_string()),
                expected: alg.to_string(),
            });
        }
    }
    let payload = decode(p, "payload")?;
    let claims = match strict_json(&payload, "payload") {
        Ok(Value::Object(map)) => Some(map),
        Err(e @ CompactError::DuplicateMember { .. }) => return Err(e),
        _ if any_payload => None,
        Ok(_) => return Err(CompactError::PayloadNotObject),
        Err(_) => return Err(CompactError::PayloadNotObject),
    };
    Ok(CompactInput { header, claims })
}

fn decode(part: &str, name: &'static str) -> Result<Vec<u8>, CompactError> {
    B64URL.decode(part).map_err(|_| {
        CompactError::Malformed(if name == "header" {
            "the header is not base64url (no padding)"
        } else {
            "the payload is not base64url (no padding)"
        })
    })
}

/// serde_json with duplicate member names refused.
fn strict_json(bytes: &[u8], part: &'static str) -> Result<Value, CompactError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Strict(v)) => Ok(v),
        Err(e) => {
            let reason = e.to_string();
            match reason.strip_prefix(DUPLICATE) {
                Some(rest) => Err(CompactError::DuplicateMember {
                    part,
                    name: rest.split(" at line").next().unwrap_or(rest).to_string(),
                }),
                None => Err(CompactError::NotJson { part, reason }),
            }
        }
    }
}

const DUPLICATE: &str = "duplicate member name: ";

/// A JSON value whose objects have no repeated member name.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.contains_key(&name) {
                return Err(de::Error::custom(format_args!("{DUPLICATE}{name}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64URL.encode(s.as_bytes())
    }

    fn input(header: &str, payload: &str) -> String {
        format!("{}.{}", b64(header), b64(payload))
    }

    #[test]
    fn parses_a_caller_built_input() {
        let i = input(
            r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
            r#"{ "iss" : "x", "n": {"a": [1, {"b": 2}]} }"#,
        );
        let parsed = parse(&i, "ES256", false).unwrap();
        assert_eq!(parsed.kid(), Some("k1"));
        assert_eq!(parsed.typ(), Some("JWT"));
        assert_eq!(parsed.caller_members().len(), 1);
        assert_eq!(parsed.claims.unwrap()["iss"], "x");
    }

    #[test]
    fn refuses_duplicate_members_at_any_depth() {
        let cases = [
            (r#"{"alg":"ES256","alg":"ES256"}"#, "{}", "header", "alg"),
            (
                r#"{"alg":"ES256"}"#,
                r#"{"iss":"a","iss":"b"}"#,
                "payload",
                "iss",
            ),
            (
                r#"{"alg":"ES256"}"#,
                r#"{"x":[{"y":1,"y":2}]}"#,
                "payload",
                "y",
            ),
        ];
        for (h, p, part, name) in cases {
            let err = parse(&input(h, p), "ES256", false).unwrap_err();
            assert_eq!(
                err,
                CompactError::DuplicateMember {
                    part,
                    name: name.into()
                },
                "{h} {p}"
            );
            assert_eq!(err.code(), "duplicate_member");
        }
        // Even where any payload is fine (generic), a JSON object may not repeat a name.
        let err = parse(
            &input(r#"{"alg":"ES256"}"#, r#"{"a":1,"a":1}"#),
            "ES256",
            true,
        );
        assert_eq!(err.unwrap_err().code(), "duplicate_member");
    }

    #[test]
    fn refuses_another_alg() {
        for h in [
            r#"{"alg":"PS256"}"#,
            r#"{"alg":"none"}"#,
            "{}",
            r#"{"alg":1}"#,
        ] {
            let err = parse(&input(h, "{}"), "ES256", false).unwrap_err();
            assert_eq!(err.code(), "alg_mismatch", "{h}");
        }
    }

    #[test]
    fn refuses_a_payload_that_is_not_an_object() {
        for p in ["[1]", "\"s\"", "12", "not json", ""] {
            let err = parse(&input(r#"{"alg":"ES256"}"#, p), "ES256", false).unwrap_err();
            assert_eq!(err, CompactError::PayloadNotObject, "{p}");
        }
        let any = parse(&input(r#"{"alg":"ES256"}"#, "raw bytes"), "ES256", true).unwrap();
        assert_eq!(any.claims, None);
    }

    #[test]
    fn refuses_malformed_inputs() {
        let good = input(r#"{"alg":"ES256"}"#, "{}");
        let cases = [
            "no-dot".to_string(),
            format!("{good}.sig"),
            format!(".{}", b64("{}")),
            format!("{}=.{}", b64(r#"{"alg":"ES256"}"#), b64("{}")),
            format!("{}.{}", b64("[1]"), b64("{}")),
            format!("{}.{}", b64("{"), b64("{}")),
            format!("{}.{}", b64(r#"{"alg":"ES256"} x"#), b64("{}")),
            "a+b.c".to_string(),
        ];
        for c in cases {
            let err = parse(&c, "ES256", false).unwrap_err();
            assert_eq!(err.code(), "malformed_signing_input", "{c}: {err}");
        }
    }
}
