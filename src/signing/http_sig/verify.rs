//! Verification side of RFC 9421 section 3.2: parsing the Signature-Input and Signature field
//! values, choosing one signature, rebuilding its base from the message and handing base and
//! signature bytes to a caller-supplied check.
//!
//! Owns no keys and no cryptography: the `verify` callback decides. Knows neither axum nor
//! cryptoki.

use sfv::{BareItem, Dictionary, Item, ListEntry, Parser};

use super::base::{Context, serialize_inner_list, signature_base};
use super::check_covered_digests;
use super::components::{Component, check_duplicates};
use super::error::HttpSigError;
use super::message::HttpMessage;

/// What a verified signature said about itself. Expiry is the caller's to judge against its
/// own clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub(crate) label: String,
    pub keyid: Option<String>,
    pub(crate) created: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub tag: Option<String>,
    /// The covered component identifiers, serialized as in the base: `"@method";req`.
    pub(crate) covered: Vec<String>,
}

/// Verifies one signature of `message` (with `request` for `;req` components).
///
/// `signature_input` and `signature` are the field values (sf dictionaries); `label` picks the
/// signature, or the only one when `None`. A covered Content-Digest field is checked against
/// its body when both are present. `verify(keyid, alg, base, signature)` does the
/// cryptographic check.
///
/// # Errors
/// `signature_input_invalid` / `signature_field_invalid` for unparsable fields,
/// `label_not_found` / `ambiguous_label` when no one signature is chosen, any component error
/// while rebuilding the base, `content_digest_mismatch`, and `signature_invalid` when `verify`
/// returns false.
pub fn verify_message(
    message: &HttpMessage,
    request: Option<&HttpMessage>,
    signature_input: &str,
    signature: &str,
    label: Option<&str>,
    verify: impl FnOnce(Option<&str>, Option<&str>, &[u8], &[u8]) -> bool,
) -> Result<Verified, HttpSigError> {
    let inputs: Dictionary = Parser::new(signature_input)
        .parse()
        .map_err(|e: sfv::Error| HttpSigError::SignatureInputInvalid(e.to_string()))?;
    let signatures: Dictionary = Parser::new(signature)
        .parse()
        .map_err(|e: sfv::Error| HttpSigError::SignatureFieldInvalid(e.to_string()))?;
    let label = match label {
        Some(label) => label.to_owned(),
        None => only_label(&inputs)?,
    };
    let Some(entry) = inputs.get(label.as_str()) else {
        return Err(HttpSigError::LabelNotFound(label));
    };
    let ListEntry::InnerList(list) = entry else {
        return Err(HttpSigError::SignatureInputInvalid(format!(
            "{label} is not an inner list"
        )));
    };
    let signature_bytes = match signatures.get(label.as_str()) {
        Some(ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(bytes),
            ..
        })) => bytes,
        Some(_) => {
            return Err(HttpSigError::SignatureFieldInvalid(format!(
                "{label} is not a byte sequence"
            )));
        }
        None => return Err(HttpSigError::LabelNotFound(label)),
    };

    let components = list
        .items
        .iter()
        .cloned()
        .map(Component::from_item)
        .collect::<Result<Vec<_>, _>>()?;
    check_duplicates(&components)?;
    let params = Params::read(&list.params)?;
    if let (Some(created), Some(expires)) = (params.created, params.expires)
        && expires <= created
    {
        return Err(HttpSigError::ExpiresNotAfterCreated { created, expires });
    }
    check_covered_digests(&components, message, request)?;

    // The parsed inner list re-serialized is the canonical @signature-params value.
    let ctx = Context { message, request };
    let base = signature_base(&ctx, &components, &serialize_inner_list(list))?;
    if !verify(
        params.keyid.as_deref(),
        params.alg.as_deref(),
        base.as_bytes(),
        signature_bytes,
    ) {
        return Err(HttpSigError::SignatureInvalid(label));
    }
    Ok(Verified {
        label,
        keyid: params.keyid,
        created: params.created,
        expires: params.expires,
        tag: params.tag,
        covered: components.iter().map(Component::identifier).collect(),
    })
}

/// The label of the only signature input, when there is exactly one.
fn only_label(inputs: &Dictionary) -> Result<String, HttpSigError> {
    let mut labels = inputs.keys().map(|k| k.as_str().to_owned());
    match (labels.next(), labels.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(HttpSigError::LabelNotFound(String::new())),
        (Some(first), Some(second)) => {
            let rest: Vec<String> = labels.collect();
            let all = [vec![first, second], rest].concat();
            Err(HttpSigError::AmbiguousLabel(all.join(", ")))
        }
    }
}

/// The signature parameters Signet reads; others stay in the base untouched.
#[derive(Debug, Default)]
struct Params {
    created: Option<i64>,
    expires: Option<i64>,
    keyid: Option<String>,
    alg: Option<String>,
    tag: Option<String>,
}

impl Params {
    fn read(params: &sfv::Parameters) -> Result<Self, HttpSigError> {
        let mut out = Self::default();
        for (key, value) in params {
            let name = key.as_str();
            let wrong = |kind: &str| {
                HttpSigError::SignatureInputInvalid(format!("`{name}` must be {kind}"))
            };
            let integer = || match value {
                BareItem::Integer(i) => Ok(Some(i64::from(*i))),
                _ => Err(wrong("an integer")),
            };
            let string = || match value {
                BareItem::String(s) => Ok(Some(s.as_str().to_owned())),
                _ => Err(wrong("a string")),
            };
            match name {
                "created" => out.created = integer()?,
                "expires" => out.expires = integer()?,
                "keyid" => out.keyid = string()?,
                "alg" => out.alg = string()?,
                "tag" => out.tag = string()?,
                "nonce" => {
                    string()?;
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> HttpMessage {
        HttpMessage {
            method: Some("GET".into()),
            target_uri: Some("https://example.com/a".into()),
            ..HttpMessage::default()
        }
    }

    fn check(input: &str, signature: &str, label: Option<&str>) -> Result<Verified, HttpSigError> {
        verify_message(&request(), None, input, signature, label, |_, _, _, _| true)
    }

    #[test]
    fn the_base_reaches_the_callback_with_keyid_and_alg() {
        let input = r#"s=("@method" "@path");created=1;alg="ed25519";keyid="k";tag="t""#;
        let verified = verify_message(&request(), None, input, "s=:AQID:", None, |k, a, b, s| {
            k == Some("k")
                && a == Some("ed25519")
                && s == [1, 2, 3]
                && b == br#""@method": GET
"@path": /a
"@signature-params": ("@method" "@path");created=1;alg="ed25519";keyid="k";tag="t""#
        })
        .expect("verifies");
        assert_eq!(verified.label, "s");
        assert_eq!(verified.tag.as_deref(), Some("t"));
        assert_eq!(verified.covered, [r#""@method""#, r#""@path""#]);
    }

    #[test]
    fn label_selection() {
        let two = r#"a=("@method");created=1, b=("@path");created=1"#;
        let sigs = "a=:AQ==:, b=:Ag==:";
        assert_eq!(
            check(two, sigs, Some("b")).expect("b").covered,
            [r#""@path""#]
        );
        let code = |input: &str, sig: &str, label| check(input, sig, label).expect_err("").code();
        assert_eq!(code(two, sigs, None), "ambiguous_label");
        assert_eq!(code(two, sigs, Some("c")), "label_not_found");
        assert_eq!(code("", "", None), "label_not_found");
        assert_eq!(code(two, "a=:AQ==:", Some("b")), "label_not_found");
    }

    #[test]
    fn malformed_fields_have_their_codes() {
        let code = |input: &str, sig: &str| check(input, sig, None).expect_err(input).code();
        assert_eq!(code("s=(", "s=:AQ==:"), "signature_input_invalid");
        assert_eq!(code("s=1", "s=:AQ==:"), "signature_input_invalid");
        assert_eq!(
            code("s=();created=x", "s=:AQ==:"),
            "signature_input_invalid"
        );
        assert_eq!(code("s=();keyid=1", "s=:AQ==:"), "signature_input_invalid");
        assert_eq!(code("s=()", "s=:AQ"), "signature_field_invalid");
        assert_eq!(code("s=()", "s=1"), "signature_field_invalid");
        assert_eq!(
            code("s=();created=5;expires=5", "s=:AQ==:"),
            "expires_not_after_created"
        );
        assert_eq!(
            code(r#"s=("@method" "@method")"#, "s=:AQ==:"),
            "duplicate_component"
        );
        assert_eq!(
            code(r#"s=("@status")"#, "s=:AQ==:"),
            "component_not_applicable"
        );
    }

    #[test]
    fn a_failing_callback_is_signature_invalid() {
        let err = verify_message(&request(), None, "s=()", "s=:AQ==:", None, |_, _, _, _| {
            false
        })
        .expect_err("callback says no");
        assert_eq!(err.code(), "signature_invalid");
    }
}
