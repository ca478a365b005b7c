//! The signature base of RFC 9421 section 2.5: component values (section 2.1 fields, section 2.2
//! derived components, `;req` from the related request) and the `@signature-params` line.
//!
//! Shared by signing and verification, so both build byte-identical bases. Knows neither axum
//! nor cryptoki.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sfv::{BareItem, Dictionary, FieldType as _, InnerList, Item, List, ListEntry, Parser};

use super::components::{Component, Derived, Kind};
use super::error::HttpSigError;
use super::message::{HttpMessage, canonical_line, is_base_safe, is_field_safe, trimmed_line};
use super::uri::TargetUri;

/// Fields whose structured type is registered, so `sf` parses them as that type. Anything else
/// is tried as a List, then a Dictionary, then an Item (see `strict_value`).
const DICTIONARY_FIELDS: &[&str] = &[
    "accept-signature",
    "cdn-cache-control",
    "content-digest",
    "priority",
    "repr-digest",
    "signature",
    "signature-input",
    "want-content-digest",
    "want-repr-digest",
];
const LIST_FIELDS: &[&str] = &[
    "accept-ch",
    "cache-status",
    "client-cert-chain",
    "proxy-status",
];
const ITEM_FIELDS: &[&str] = &["client-cert"];

/// The messages a signature base is built from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) message: &'a HttpMessage,
    pub(crate) request: Option<&'a HttpMessage>,
}

impl Context<'_> {
    /// A message with a `status`, or signed together with its request, is a response.
    fn message_is_response(&self) -> bool {
        self.message.status.is_some() || self.request.is_some()
    }
}

/// The signature metadata parameters, in the order they are serialized.
#[derive(Debug, Clone, Default)]
pub(crate) struct SigParams<'a> {
    pub(crate) created: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub(crate) nonce: Option<&'a str>,
    pub(crate) alg: Option<&'a str>,
    pub(crate) keyid: Option<&'a str>,
    pub(crate) tag: Option<&'a str>,
}

/// The `@signature-params` inner list: the covered identifiers, then `created`, `expires`,
/// `nonce`, `alg`, `keyid`, `tag` (those present).
pub(crate) fn signature_params(
    components: &[Component],
    params: &SigParams<'_>,
) -> Result<InnerList, HttpSigError> {
    let mut list = InnerList::new(components.iter().map(|c| c.item.clone()).collect());
    let integers = [("created", params.created), ("expires", params.expires)];
    for (name, value) in integers {
        if let Some(value) = value {
            let value = sfv::Integer::try_from(value)
                .map_err(|_| HttpSigError::BadSignatureParameter(name))?;
            list.params.insert(key(name)?, BareItem::Integer(value));
        }
    }
    let strings = [
        ("nonce", params.nonce),
        ("alg", params.alg),
        ("keyid", params.keyid),
        ("tag", params.tag),
    ];
    for (name, value) in strings {
        if let Some(value) = value {
            let value = sfv::String::from_string(value.to_owned())
                .map_err(|_| HttpSigError::BadSignatureParameter(name))?;
            list.params.insert(key(name)?, BareItem::String(value));
        }
    }
    Ok(list)
}

/// A fixed parameter name as an sf-key.
fn key(name: &'static str) -> Result<sfv::Key, HttpSigError> {
    sfv::Key::from_string(name.to_owned()).map_err(|_| HttpSigError::BadSignatureParameter(name))
}

/// Serializes an inner list with its parameters: `("@method" "@path");created=1;keyid="k"`.
pub(crate) fn serialize_inner_list(list: &InnerList) -> String {
    // A list with one member always serializes (only empty lists give None).
    let entries: List = vec![ListEntry::InnerList(list.clone())];
    entries.serialize().unwrap_or_default()
}

/// RFC 9421 section 2.5: one `identifier: value` line per component, then the
/// `@signature-params` line (no trailing newline).
pub(crate) fn signature_base(
    ctx: &Context<'_>,
    components: &[Component],
    signature_params: &str,
) -> Result<String, HttpSigError> {
    let mut base = String::new();
    for component in components {
        let value = component_value(ctx, component)?;
        base.push_str(&component.identifier());
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(signature_params);
    Ok(base)
}

/// The value of one component, taken from the message or, with `;req`, from the request.
fn component_value(ctx: &Context<'_>, c: &Component) -> Result<String, HttpSigError> {
    let id = || c.identifier();
    let (message, is_request) = if c.req {
        let request = ctx
            .request
            .ok_or_else(|| HttpSigError::RequestRequired(id()))?;
        (request, true)
    } else {
        (ctx.message, !ctx.message_is_response())
    };
    let derived = match c.kind {
        Kind::Field => return field_value(message, c),
        Kind::Derived(derived) => derived,
    };
    let missing = |part| HttpSigError::MissingMessagePart {
        component: id(),
        part,
    };
    if derived == Derived::Status {
        if is_request {
            return Err(HttpSigError::ComponentNotApplicable(
                id(),
                "@status belongs to responses",
            ));
        }
        let status = message.status.ok_or_else(|| missing("status"))?;
        if !(100..=999).contains(&status) {
            return Err(HttpSigError::InvalidStatus(status));
        }
        return Ok(status.to_string());
    }
    if !is_request {
        return Err(HttpSigError::ComponentNotApplicable(
            id(),
            "request components of a response need `;req`",
        ));
    }
    let value = if derived == Derived::Method {
        let method = message.method.as_deref().ok_or_else(|| missing("method"))?;
        if method.is_empty() {
            return Err(missing("method"));
        }
        method.to_owned()
    } else {
        let raw = message
            .target_uri
            .as_deref()
            .ok_or_else(|| missing("target_uri"))?;
        let uri = TargetUri::parse(raw)?;
        match derived {
            Derived::TargetUri => uri.raw.to_owned(),
            Derived::Authority => uri.authority(),
            Derived::Scheme => uri.scheme(),
            Derived::RequestTarget => uri.request_target(message.method.as_deref().unwrap_or("")),
            Derived::Path => uri.path().to_owned(),
            Derived::Query => uri.query(),
            Derived::QueryParam => uri.query_param(c.query_name.as_deref().unwrap_or(""))?,
            Derived::Method | Derived::Status => String::new(),
        }
    };
    if !is_base_safe(&value) {
        return Err(HttpSigError::NonAsciiValue(id()));
    }
    Ok(value)
}

/// RFC 9421 section 2.1: the field lines combined, then `bs`, `key` or `sf` applied.
fn field_value(message: &HttpMessage, c: &Component) -> Result<String, HttpSigError> {
    let lines: Vec<&str> = message.field_lines(&c.name).collect();
    if lines.is_empty() {
        return Err(HttpSigError::MissingField(c.name.clone()));
    }
    if c.bs {
        let encoded: Vec<String> = lines
            .iter()
            .map(|line| format!(":{}:", STANDARD.encode(trimmed_line(line))))
            .collect();
        return Ok(encoded.join(", "));
    }
    let canonical = lines
        .iter()
        .map(|line| canonical_line(line).filter(|v| is_field_safe(v)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| HttpSigError::NonAsciiValue(c.identifier()))?;
    let combined = canonical.join(", ");
    if let Some(member) = &c.key {
        let dict: Dictionary = Parser::new(&combined)
            .parse()
            .map_err(|e| HttpSigError::NotADictionary(c.name.clone(), e))?;
        let entry =
            dict.get(member.as_str())
                .ok_or_else(|| HttpSigError::MissingDictionaryKey {
                    field: c.name.clone(),
                    key: member.clone(),
                })?;
        // The member value serializes exactly as a one-member list does.
        let single: List = vec![entry.clone()];
        return Ok(single.serialize().unwrap_or_default());
    }
    if c.sf {
        return strict_value(&c.name, &combined);
    }
    Ok(combined)
}

/// `sf`: re-serializes a field value strictly. RFC 9421 section 2.1.1 needs the field's type;
/// registered fields use it. For other fields the value is tried as a List first, because a
/// List keeps every member, while a Dictionary silently drops repeated keys and any Item is
/// also a one-member List with the same serialization; a Dictionary (`a=1`, which no List
/// parses) comes second.
fn strict_value(name: &str, value: &str) -> Result<String, HttpSigError> {
    let failed = |e| HttpSigError::StructuredFieldParse(name.to_owned(), e);
    let parser = || Parser::new(value);
    if DICTIONARY_FIELDS.contains(&name) {
        return parser()
            .parse::<Dictionary>()
            .map(|d| d.serialize().unwrap_or_default())
            .map_err(failed);
    }
    if LIST_FIELDS.contains(&name) {
        return parser()
            .parse::<List>()
            .map(|l| l.serialize().unwrap_or_default())
            .map_err(failed);
    }
    if ITEM_FIELDS.contains(&name) {
        return parser()
            .parse::<Item>()
            .map(|i| i.serialize())
            .map_err(failed);
    }
    if let Ok(list) = parser().parse::<List>() {
        return Ok(list.serialize().unwrap_or_default());
    }
    match parser().parse::<Dictionary>() {
        Ok(dict) => Ok(dict.serialize().unwrap_or_default()),
        Err(_) => parser()
            .parse::<Item>()
            .map(|i| i.serialize())
            .map_err(failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &[(&str, &str)]) -> HttpMessage {
        HttpMessage {
            method: Some("GET".into()),
            target_uri: Some("https://www.example.com/path?param=value".into()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..HttpMessage::default()
        }
    }

    fn value(message: &HttpMessage, covered: &str) -> Result<String, HttpSigError> {
        let ctx = Context {
            message,
            request: None,
        };
        component_value(&ctx, &Component::parse(covered)?)
    }

    /// The field examples of RFC 9421 sections 2.1 to 2.1.3.
    #[test]
    fn rfc_9421_section_2_1_field_examples() {
        let m = msg(&[
            ("Host", "www.example.com"),
            ("X-OWS-Header", "   Leading and trailing whitespace.   "),
            ("X-Obs-Fold-Header", "Obsolete\r\n    line folding."),
            ("Cache-Control", "max-age=60"),
            ("Cache-Control", "   must-revalidate"),
            ("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)"),
            ("Example-Header", "value, with, lots"),
            ("Example-Header", "of, commas"),
            ("X-Empty-Header", ""),
        ]);
        let v = |c: &str| value(&m, c).expect(c);
        assert_eq!(v("host"), "www.example.com");
        assert_eq!(v("x-ows-header"), "Leading and trailing whitespace.");
        assert_eq!(v("x-obs-fold-header"), "Obsolete line folding.");
        assert_eq!(v("cache-control"), "max-age=60, must-revalidate");
        assert_eq!(v("example-dict"), "a=1,    b=2;x=1;y=2,   c=(a   b   c)");
        assert_eq!(v("x-empty-header"), "");
        assert_eq!(v("example-dict;sf"), "a=1, b=2;x=1;y=2, c=(a b c)");
        assert_eq!(v(r#"example-dict;key="a""#), "1");
        assert_eq!(v(r#"example-dict;key="b""#), "2;x=1;y=2");
        assert_eq!(v(r#"example-dict;key="c""#), "(a b c)");
        assert_eq!(v("example-header"), "value, with, lots, of, commas");
        assert_eq!(
            v("example-header;bs"),
            ":dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:"
        );
    }

    #[test]
    fn sf_prefers_registered_types_then_list_then_dictionary() {
        let m = msg(&[
            ("X-List", "a,   a;q=1"),
            ("X-Dict", "a=1,b=2"),
            ("Priority", "u=1,   i"),
            ("Content-Digest", "a,   a"),
        ]);
        assert_eq!(value(&m, "x-list;sf").expect("list"), "a, a;q=1");
        assert_eq!(value(&m, "x-dict;sf").expect("dict"), "a=1, b=2");
        assert_eq!(value(&m, "priority;sf").expect("priority"), "u=1, i");
        assert_eq!(value(&m, "content-digest;sf").expect("dict"), "a");
    }

    #[test]
    fn field_errors_have_their_codes() {
        let m = msg(&[
            ("X-Bad", "caf\u{e9}"),
            ("X-Dict", "a=1"),
            ("X-Tokens", "(a"),
            ("Priority", "1.2.3"),
        ]);
        let code = |c: &str| value(&m, c).expect_err(c).code();
        assert_eq!(code("x-absent"), "missing_field");
        assert_eq!(code("x-bad"), "non_ascii_value");
        assert_eq!(code(r#"x-dict;key="b""#), "missing_dictionary_key");
        assert_eq!(code(r#"x-tokens;key="a""#), "not_a_dictionary");
        assert_eq!(code("x-tokens;sf"), "sf_parse_failed");
        assert_eq!(code("priority;sf"), "sf_parse_failed");
        // `bs` wraps any bytes, so non-ASCII is fine there.
        assert_eq!(value(&m, "x-bad;bs").expect("bs"), ":Y2Fmw6k=:");
    }
}
