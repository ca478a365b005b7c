//! Component identifiers (RFC 9421 section 2): parsing the `covered` strings of the API and the
//! items of a Signature-Input inner list into one validated `Component`, and serializing it back.
//!
//! All structured-field syntax goes through `sfv`; this module owns only the RFC 9421 rules on
//! top (which names and parameters exist, which combine). Knows neither axum nor cryptoki.

use sfv::{BareItem, FieldType as _, Item, Parser};

use super::error::HttpSigError;

/// The derived components of RFC 9421 section 2.2 that Signet can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derived {
    Method,
    TargetUri,
    Authority,
    Scheme,
    RequestTarget,
    Path,
    Query,
    QueryParam,
    Status,
}

impl Derived {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "@method" => Self::Method,
            "@target-uri" => Self::TargetUri,
            "@authority" => Self::Authority,
            "@scheme" => Self::Scheme,
            "@request-target" => Self::RequestTarget,
            "@path" => Self::Path,
            "@query" => Self::Query,
            "@query-param" => Self::QueryParam,
            "@status" => Self::Status,
            _ => return None,
        })
    }
}

/// What a component identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Derived(Derived),
    Field,
}

/// One validated component identifier: its sf item (name and parameters in the order given)
/// plus the parameters decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Component {
    /// The identifier as an sf-string item with parameters, order preserved.
    pub(crate) item: Item,
    /// The component name (a field name is lower-case).
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// `req`: take the component from the related request.
    pub(crate) req: bool,
    /// `sf`: strict structured-field re-serialization.
    pub(crate) sf: bool,
    /// `bs`: each field line as a byte sequence.
    pub(crate) bs: bool,
    /// `key`: one member of a dictionary field.
    pub(crate) key: Option<String>,
    /// `name`: the parameter of `@query-param`.
    pub(crate) query_name: Option<String>,
}

impl Component {
    /// Parses one `covered` entry of the API: the name quoted (`"example-dict";key="a"`) or not
    /// (`@query-param;name="Pet"`), then parameters. Field names are lower-cased here, since
    /// field names are case-insensitive and RFC 9421 identifiers carry the lower-case form.
    pub(crate) fn parse(text: &str) -> Result<Self, HttpSigError> {
        let trimmed = text.trim();
        let bad = |why: String| HttpSigError::BadComponent(text.to_owned(), why);
        let quoted = if trimmed.starts_with('"') {
            trimmed.to_owned()
        } else {
            let (name, params) = trimmed.split_at(trimmed.find(';').unwrap_or(trimmed.len()));
            let name = sfv::String::from_string(name.to_owned())
                .map_err(|(e, _)| bad(format!("component name: {e}")))?;
            let mut quoted = Item::new(name).serialize();
            quoted.push_str(params);
            quoted
        };
        let mut item: Item = Parser::new(&quoted)
            .parse()
            .map_err(|e: sfv::Error| bad(e.to_string()))?;
        if let BareItem::String(name) = &item.bare_item
            && !name.as_str().starts_with('@')
        {
            let lower = name.as_str().to_ascii_lowercase();
            item.bare_item = BareItem::String(
                sfv::String::from_string(lower).map_err(|(e, _)| bad(e.to_string()))?,
            );
        }
        Self::from_item(item)
    }

    /// Validates one item of a Signature-Input inner list (or of a parsed `covered` entry).
    pub(crate) fn from_item(item: Item) -> Result<Self, HttpSigError> {
        let id = item.serialize();
        let BareItem::String(name) = &item.bare_item else {
            return Err(HttpSigError::BadComponent(
                id,
                "a component name is an sf-string".into(),
            ));
        };
        let name = name.as_str().to_owned();
        let kind = kind_of(&name, &id)?;
        let invalid = |reason: &str| HttpSigError::InvalidComponentParameter {
            component: id.clone(),
            reason: reason.to_owned(),
        };
        let (mut req, mut sf, mut bs, mut trailers) = (false, false, false, false);
        let (mut key, mut query_name) = (None, None);
        for (param, value) in &item.params {
            let flag = || match value {
                BareItem::Boolean(true) => Ok(true),
                _ => Err(invalid(&format!("`{param}` is a flag without a value"))),
            };
            let string = || match value {
                BareItem::String(s) => Ok(Some(s.as_str().to_owned())),
                _ => Err(invalid(&format!("`{param}` takes an sf-string"))),
            };
            match param.as_str() {
                "req" => req = flag()?,
                "sf" => sf = flag()?,
                "bs" => bs = flag()?,
                "tr" => trailers = flag()?,
                "key" => key = string()?,
                "name" => query_name = string()?,
                other => {
                    return Err(HttpSigError::UnknownComponentParameter {
                        component: id.clone(),
                        param: other.to_owned(),
                    });
                }
            }
        }
        if trailers {
            return Err(HttpSigError::TrailersUnsupported(id));
        }
        let name_only_for_query_param = "`name` applies to @query-param only";
        match kind {
            Kind::Derived(_) if sf || bs || key.is_some() => {
                return Err(invalid("`sf`, `bs` and `key` apply to fields only"));
            }
            Kind::Derived(Derived::QueryParam) if query_name.is_none() => {
                return Err(invalid("@query-param needs a `name`"));
            }
            Kind::Derived(Derived::QueryParam) => {}
            Kind::Derived(_) | Kind::Field if query_name.is_some() => {
                return Err(invalid(name_only_for_query_param));
            }
            Kind::Field if bs && (sf || key.is_some()) => {
                return Err(invalid("`bs` cannot combine with `sf` or `key`"));
            }
            Kind::Derived(_) | Kind::Field => {}
        }
        Ok(Self {
            item,
            name,
            kind,
            req,
            sf,
            bs,
            key,
            query_name,
        })
    }

    /// The identifier serialized as an sf-string with its parameters: `"@method";req`.
    pub(crate) fn identifier(&self) -> String {
        self.item.serialize()
    }

    /// The identifier with its parameters sorted: two components that differ only in the order
    /// of their parameters select the same value, so they count as the same component.
    fn canonical(&self) -> String {
        let mut item = self.item.clone();
        item.params.sort_keys();
        item.serialize()
    }
}

/// Parses the API's `covered` list; refuses a component listed twice.
pub(crate) fn parse_covered(covered: &[String]) -> Result<Vec<Component>, HttpSigError> {
    let components = covered
        .iter()
        .map(|c| Component::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    check_duplicates(&components)?;
    Ok(components)
}

/// RFC 9421 section 2.5: a component identifier may occur only once.
pub(crate) fn check_duplicates(components: &[Component]) -> Result<(), HttpSigError> {
    let mut seen = Vec::with_capacity(components.len());
    for component in components {
        let canonical = component.canonical();
        if seen.contains(&canonical) {
            return Err(HttpSigError::DuplicateComponent(component.identifier()));
        }
        seen.push(canonical);
    }
    Ok(())
}

/// Whether `name` (of the identifier `id`) is a derived component or a field.
fn kind_of(name: &str, id: &str) -> Result<Kind, HttpSigError> {
    if name == "@signature-params" {
        Err(HttpSigError::SignatureParamsCovered)
    } else if name.starts_with('@') {
        Derived::from_name(name)
            .map(Kind::Derived)
            .ok_or_else(|| HttpSigError::UnknownDerivedComponent(name.to_owned()))
    } else if !name.is_empty() && name.bytes().all(is_field_name_byte) {
        Ok(Kind::Field)
    } else {
        Err(HttpSigError::BadComponent(
            id.to_owned(),
            "a field name is a non-empty lower-case token".into(),
        ))
    }
}

/// `tchar` of RFC 9110 section 5.6.2, upper-case letters excluded.
fn is_field_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Component {
        Component::parse(text).expect(text)
    }

    fn code(text: &str) -> &'static str {
        Component::parse(text).expect_err(text).code()
    }

    #[test]
    fn quoted_and_unquoted_names_give_the_same_identifier() {
        assert_eq!(parse("@method").identifier(), r#""@method""#);
        assert_eq!(parse(r#""@method";req"#).identifier(), r#""@method";req"#);
        assert_eq!(parse("@method;req").identifier(), r#""@method";req"#);
        assert_eq!(
            parse(r#"@query-param;name="Pet""#).query_name.as_deref(),
            Some("Pet")
        );
        let dict = parse(r#""example-dict";key="a""#);
        assert_eq!(dict.identifier(), r#""example-dict";key="a""#);
        assert_eq!(dict.key.as_deref(), Some("a"));
        assert_eq!(dict.kind, Kind::Field);
        assert_eq!(parse("Content-Type").identifier(), r#""content-type""#);
        assert_eq!(parse(r#""X-Foo";bs"#).identifier(), r#""x-foo";bs"#);
    }

    #[test]
    fn parameters_keep_their_order() {
        let c = parse("example-dict;sf;req");
        assert!(c.sf && c.req);
        assert_eq!(c.identifier(), r#""example-dict";sf;req"#);
        assert_eq!(
            parse("content-digest;req;sf").identifier(),
            r#""content-digest";req;sf"#
        );
    }

    #[test]
    fn rule_breaking_identifiers_get_their_own_codes() {
        assert_eq!(code(""), "bad_component");
        assert_eq!(code(r#""unterminated"#), "bad_component");
        assert_eq!(code("@method;"), "bad_component");
        assert_eq!(code("@method;A"), "bad_component");
        assert_eq!(code(r#"a"b"#), "bad_component");
        assert_eq!(code("date time"), "bad_component");
        assert_eq!(code("@nonsense"), "unknown_derived_component");
        assert_eq!(code("@signature-params"), "signature_params_covered");
        assert_eq!(code("date;foo"), "unknown_component_parameter");
        assert_eq!(code("date;tr"), "trailers_unsupported");
        assert_eq!(code("date;req=1"), "invalid_component_parameter");
        assert_eq!(code("date;key=a"), "invalid_component_parameter");
        assert_eq!(code("date;bs;sf"), "invalid_component_parameter");
        assert_eq!(code(r#"date;bs;key="a""#), "invalid_component_parameter");
        assert_eq!(code(r#"date;name="a""#), "invalid_component_parameter");
        assert_eq!(code("@method;sf"), "invalid_component_parameter");
        assert_eq!(code("@query-param"), "invalid_component_parameter");
        assert_eq!(code(r#"@path;name="a""#), "invalid_component_parameter");
    }

    #[test]
    fn duplicates_are_refused_whatever_the_parameter_order() {
        let covered =
            |list: &[&str]| parse_covered(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(covered(&["@method", "@method;req", "date", "date;sf"]).is_ok());
        assert!(covered(&[]).expect("empty is allowed").is_empty());
        for dup in [
            &["@method", r#""@method""#][..],
            &["Date", "date"],
            &["date;sf;req", "date;req;sf"],
            &[r#"@query-param;name="a""#, r#""@query-param";name="a""#],
        ] {
            let err = covered(dup).expect_err("duplicate");
            assert_eq!(err.code(), "duplicate_component");
        }
    }

    #[test]
    fn signature_input_items_are_validated_too() {
        let item: Item = Parser::new("1").parse().expect("item");
        let err = Component::from_item(item).expect_err("integer name");
        assert_eq!(err.code(), "bad_component");
        let item: Item = Parser::new(r#""Date""#).parse().expect("item");
        let err = Component::from_item(item).expect_err("upper case");
        assert_eq!(err.code(), "bad_component");
    }
}
