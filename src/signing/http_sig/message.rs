//! The HTTP message as the `sign/http` API receives it, and the RFC 9421 section 2.1 rules for
//! turning its field lines into component values.
//!
//! Owns the JSON shape (`HttpMessage`, base64 body), case-insensitive field lookup, obs-fold
//! removal, whitespace trimming and the ASCII rule for signature-base values. Knows neither axum
//! nor cryptoki.

use serde::{Deserialize, Serialize};

/// JSON shape of a message as the API receives it (DESIGN.md, `sign/http`).
///
/// `headers` is `[[name, value], ...]`: names are case-insensitive and each pair is one field
/// line, so a repeated name is several lines, combined in order. `body` is standard base64 with
/// padding.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpMessage {
    pub method: Option<String>,
    pub target_uri: Option<String>,
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, with = "body_base64")]
    pub body: Option<Vec<u8>>,
}

/// The serde error text of an undecodable body; `parse_sign_request` maps it to its own code.
pub(crate) const BODY_BASE64_ERROR: &str = "body is not valid standard base64";

impl HttpMessage {
    /// The raw values of every field line named `name` (compared case-insensitively), in order.
    pub(crate) fn field_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when at least one field line is named `name`.
    pub(crate) fn has_field(&self, name: &str) -> bool {
        self.field_lines(name).next().is_some()
    }
}

/// The value of one field line as RFC 9421 section 2.1 wants it: every obsolete line folding
/// (`OWS CRLF RWS`, a bare LF accepted too) becomes one space, then leading and trailing SP/HTAB
/// go. `None` when a character outside visible ASCII, SP and HTAB remains.
pub(crate) fn canonical_line(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                if c == '\r' && chars.next() != Some('\n') {
                    return None;
                }
                if !matches!(chars.peek(), Some(' ' | '\t')) {
                    return None;
                }
                while matches!(chars.peek(), Some(' ' | '\t')) {
                    chars.next();
                }
                let kept = out.trim_end_matches([' ', '\t']).len();
                out.truncate(kept);
                out.push(' ');
            }
            '\t' | ' '..='~' => out.push(c),
            _ => return None,
        }
    }
    Some(out.trim_matches([' ', '\t']).to_owned())
}

/// The value of one field line for the `bs` parameter: only the surrounding whitespace goes;
/// the bytes are then wrapped as a byte sequence, so any octet is allowed.
pub(crate) fn trimmed_line(raw: &str) -> &str {
    raw.trim_matches([' ', '\t'])
}

/// True when `value` may appear in a signature base line: visible ASCII and SP only.
pub(crate) fn is_base_safe(value: &str) -> bool {
    value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// True when `value` may appear in a field value in the base: visible ASCII, SP and HTAB.
pub(crate) fn is_field_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
}

/// serde helper: `Option<Vec<u8>>` as an optional standard-base64 (padded) string.
mod body_base64 {
    use super::BODY_BASE64_ERROR;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        body: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match body {
            Some(bytes) => serializer.serialize_some(&STANDARD.encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|t| {
            STANDARD
                .decode(t)
                .map_err(|_| D::Error::custom(BODY_BASE64_ERROR))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obs_fold_becomes_one_space_and_ends_are_trimmed() {
        // RFC 9421 section 2.1 example: "Obsolete\r\n    line folding." (with OWS before CRLF).
        assert_eq!(
            canonical_line("  Obsolete \r\n    line folding.  ").as_deref(),
            Some("Obsolete line folding.")
        );
        assert_eq!(canonical_line("a\n\tb").as_deref(), Some("a b"));
        assert_eq!(canonical_line("\tvalue\t").as_deref(), Some("value"));
        assert_eq!(canonical_line("").as_deref(), Some(""));
    }

    #[test]
    fn bare_line_breaks_and_non_ascii_are_refused() {
        assert_eq!(canonical_line("a\r\nb"), None);
        assert_eq!(canonical_line("a\rb"), None);
        assert_eq!(canonical_line("caf\u{e9}"), None);
        assert_eq!(canonical_line("nul\u{0}"), None);
        assert!(!is_base_safe("tab\there"));
        assert!(is_field_safe("tab\there"));
    }

    #[test]
    fn field_lookup_is_case_insensitive_and_keeps_order() {
        let msg = HttpMessage {
            headers: vec![
                ("Cache-Control".into(), "max-age=60".into()),
                ("X-Other".into(), "x".into()),
                ("cache-control".into(), "must-revalidate".into()),
            ],
            ..HttpMessage::default()
        };
        let lines: Vec<&str> = msg.field_lines("cache-control").collect();
        assert_eq!(lines, ["max-age=60", "must-revalidate"]);
        assert!(!msg.has_field("content-type"));
    }

    #[test]
    fn json_shape_round_trips_with_base64_body() {
        let json = r#"{"method":"POST","target_uri":"https://example.com/",
            "headers":[["Content-Type","application/json"]],"body":"eyJoZWxsbyI6ICJ3b3JsZCJ9"}"#;
        let msg: HttpMessage = serde_json::from_str(json).expect("valid message");
        assert_eq!(msg.body.as_deref(), Some(&br#"{"hello": "world"}"#[..]));
        assert_eq!(msg.headers[0].0, "Content-Type");
        let again: HttpMessage =
            serde_json::from_value(serde_json::to_value(&msg).expect("serialize"))
                .expect("deserialize");
        assert_eq!(again, msg);
    }

    #[test]
    fn bad_base64_body_is_a_recognisable_error() {
        let err = serde_json::from_str::<HttpMessage>(r#"{"body":"not base64!"}"#)
            .expect_err("must fail");
        assert!(err.to_string().contains(BODY_BASE64_ERROR));
        let err = serde_json::from_str::<HttpMessage>(r#"{"bdy":""}"#).expect_err("unknown");
        assert!(!err.to_string().contains(BODY_BASE64_ERROR));
    }
}
