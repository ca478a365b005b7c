//! The target URI of a request and the derived components RFC 9421 section 2.2 takes from it
//! (`@target-uri`, `@authority`, `@scheme`, `@request-target`, `@path`, `@query`,
//! `@query-param`).
//!
//! A deliberately small splitter for absolute `scheme://authority[path][?query]` URIs: no
//! fragments, no userinfo, no relative references. Knows neither axum nor cryptoki.

use super::error::HttpSigError;
use super::message::is_base_safe;

/// An absolute target URI split into the parts the derived components need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetUri<'a> {
    /// The URI exactly as given (the `@target-uri` value).
    pub(crate) raw: &'a str,
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> TargetUri<'a> {
    /// Splits `raw`; refuses anything that is not an absolute URI with an authority.
    pub(crate) fn parse(raw: &'a str) -> Result<Self, HttpSigError> {
        let invalid = |why: &str| HttpSigError::InvalidTargetUri(format!("{why}: {raw:?}"));
        if !is_base_safe(raw) {
            return Err(HttpSigError::NonAsciiValue("target_uri".into()));
        }
        if raw.contains(' ') {
            return Err(invalid("contains a space"));
        }
        if raw.contains('#') {
            return Err(invalid("a target URI has no fragment"));
        }
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://authority"))?;
        let mut scheme_chars = scheme.chars();
        let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(invalid("bad scheme"));
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        if authority.is_empty() {
            return Err(invalid("empty authority"));
        }
        if authority.contains('@') {
            return Err(invalid("userinfo is not allowed"));
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let uri = Self {
            raw,
            scheme,
            authority,
            path,
            query,
        };
        uri.host_and_port()
            .ok_or_else(|| invalid("bad authority"))?;
        Ok(uri)
    }

    /// `@scheme`: the scheme, lower-cased.
    pub(crate) fn scheme(&self) -> String {
        self.scheme.to_ascii_lowercase()
    }

    /// `@authority`: host lower-cased, the scheme's default port (and an empty port) removed.
    pub(crate) fn authority(&self) -> String {
        let Some((host, port)) = self.host_and_port() else {
            // parse() already refused authorities without a host; keep the raw text otherwise.
            return self.authority.to_ascii_lowercase();
        };
        let host = host.to_ascii_lowercase();
        let default_port = match self.scheme().as_str() {
            "http" | "ws" => Some("80"),
            "https" | "wss" => Some("443"),
            _ => None,
        };
        match port {
            Some(p) if !p.is_empty() && Some(p) != default_port => format!("{host}:{p}"),
            _ => host,
        }
    }

    /// `@path`: the absolute path as sent (percent-encoding kept); an empty path is `/`.
    pub(crate) fn path(&self) -> &'a str {
        if self.path.is_empty() { "/" } else { self.path }
    }

    /// `@query`: the query with its leading `?`; a lone `?` when there is none.
    pub(crate) fn query(&self) -> String {
        format!("?{}", self.query.unwrap_or(""))
    }

    /// `@request-target`: what the HTTP/1.1 request line carries. Origin-form (path and query)
    /// for every method except CONNECT, whose request target is the authority.
    pub(crate) fn request_target(&self, method: &str) -> String {
        if method.eq_ignore_ascii_case("CONNECT") {
            return self.authority.to_owned();
        }
        match self.query {
            Some(q) => format!("{}?{q}", self.path()),
            None => self.path().to_owned(),
        }
    }

    /// `@query-param;name=...`: the value of the one query parameter whose re-encoded name is
    /// `name` (RFC 9421 section 2.2.8).
    pub(crate) fn query_param(&self, name: &str) -> Result<String, HttpSigError> {
        let mut found = None;
        for pair in self
            .query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            if reencode(raw_name) != name {
                continue;
            }
            if found.is_some() {
                return Err(HttpSigError::AmbiguousQueryParam(name.to_owned()));
            }
            found = Some(reencode(raw_value));
        }
        found.ok_or_else(|| HttpSigError::MissingQueryParam(name.to_owned()))
    }

    /// Host and optional port of the authority; `None` when the host is empty or a port is not
    /// all digits.
    fn host_and_port(&self) -> Option<(&'a str, Option<&'a str>)> {
        let a = self.authority;
        let (host, port) = if a.starts_with('[') {
            let close = a.find(']')?;
            let (host, rest) = a.split_at(close + 1);
            match rest {
                "" => (host, None),
                _ => (host, Some(rest.strip_prefix(':')?)),
            }
        } else {
            match a.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (a, None),
            }
        };
        let port_ok = port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()));
        (!host.is_empty() && port_ok).then_some((host, port))
    }
}

/// One query name or value through "application/x-www-form-urlencoded parsing" (`+` is a space,
/// valid `%XX` escapes decode, invalid ones stay literal, UTF-8 decoded lossily) and back through
/// "percent-encode after encoding" with the urlencoded percent-encode set. A space becomes `%20`,
/// not `+`, as RFC 9421's own example (`with+plus+whitespace` -> `with%20plus%20whitespace`) shows.
fn reencode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| Some(hex_digit(*bytes.get(i + 1)?)? << 4 | hex_digit(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(octet) => {
                decoded.push(octet);
                i += 3;
            }
            None => {
                decoded.push(if b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded);
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of one hexadecimal digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(raw: &str) -> TargetUri<'_> {
        TargetUri::parse(raw).expect("valid target URI")
    }

    #[test]
    fn derived_values_of_the_rfc_examples() {
        let u = uri("https://www.example.com/path?param=value");
        assert_eq!(u.raw, "https://www.example.com/path?param=value");
        assert_eq!(u.authority(), "www.example.com");
        assert_eq!(u.scheme(), "https");
        assert_eq!(u.path(), "/path");
        assert_eq!(u.query(), "?param=value");
        assert_eq!(u.request_target("POST"), "/path?param=value");
        let u = uri("http://www.example.com");
        assert_eq!(u.path(), "/");
        assert_eq!(u.query(), "?");
        assert_eq!(u.request_target("GET"), "/");
        assert_eq!(uri("https://example.com/?").query(), "?");
    }

    #[test]
    fn authority_is_normalized() {
        assert_eq!(uri("HTTPS://Example.COM:443/").authority(), "example.com");
        assert_eq!(uri("HTTPS://Example.COM:443/").scheme(), "https");
        assert_eq!(uri("http://example.com:80/").authority(), "example.com");
        assert_eq!(uri("http://example.com:/").authority(), "example.com");
        assert_eq!(uri("https://example.com:80/").authority(), "example.com:80");
        assert_eq!(uri("https://[::1]:8443/").authority(), "[::1]:8443");
        assert_eq!(uri("https://[::1]:443/").authority(), "[::1]");
        assert_eq!(uri("https://h:8/").request_target("CONNECT"), "h:8");
    }

    #[test]
    fn non_absolute_uris_are_refused() {
        for bad in [
            "/foo",
            "example.com/foo",
            "https:///foo",
            "https://u@h/",
            "https://h/#f",
            "https://h:x/",
            "1ttp://h/",
            "https://h/a b",
        ] {
            let err = TargetUri::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_target_uri", "{bad}");
        }
        let err = TargetUri::parse("https://h/caf\u{e9}").expect_err("non-ascii");
        assert_eq!(err.code(), "non_ascii_value");
    }

    #[test]
    fn query_params_follow_rfc_9421_section_2_2_8() {
        let u = uri(
            "https://example.com/parameters?var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something",
        );
        assert_eq!(
            u.query_param("var").expect("var"),
            "this%20is%20a%20big%0Avalue"
        );
        assert_eq!(
            u.query_param("bar").expect("bar"),
            "with%20plus%20whitespace"
        );
        assert_eq!(
            u.query_param("fa%C3%A7ade%22%3A%20").expect("facade"),
            "something"
        );
        let u = uri("https://example.com/foo?param=Value&Pet=dog");
        assert_eq!(u.query_param("Pet").expect("Pet"), "dog");
        assert_eq!(u.query_param("param").expect("param"), "Value");
    }

    #[test]
    fn query_param_edge_cases() {
        let u = uri("https://e.com/?a&b=&c=%zz&d=1&d=2&&e=%7e");
        assert_eq!(u.query_param("a").expect("a"), "");
        assert_eq!(u.query_param("b").expect("b"), "");
        assert_eq!(u.query_param("c").expect("c"), "%25zz");
        assert_eq!(u.query_param("e").expect("e"), "%7E");
        assert_eq!(
            u.query_param("d").expect_err("twice").code(),
            "ambiguous_query_param"
        );
        assert_eq!(
            u.query_param("z").expect_err("absent").code(),
            "missing_query_param"
        );
    }
}
