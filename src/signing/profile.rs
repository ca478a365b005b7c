//! Signing profiles: what a key set of each purpose may sign. A profile fixes `typ`, the required
//! claims, the issuer pin, the maximum lifetime and the `iat` skew, and which header members a
//! caller may set. The lifetime and clock-skew rule ([`TimePolicy::check`]) is written once here
//! and serves JWTs (`iat`, `exp`) and RFC 9421 signatures (`created`, `expires`) alike. Pure: the
//! caller passes the time in.

use serde_json::{Map, Value};

mod select;
pub use select::{Unmatched, select};

/// The purpose of a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    IdToken,
    AccessToken,
    Jarm,
    Introspection,
    LogoutToken,
    HttpMessage,
    Generic,
}

/// How long a signature may live and how far its start may be from now (a key set's
/// `max_lifetime` and `clock_skew`, in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePolicy {
    pub max_lifetime_s: i64,
    pub clock_skew_s: i64,
}

/// The rules a JWT profile is checked against, from the key set's configuration.
#[derive(Debug, Clone)]
pub struct ClaimPolicy<'a> {
    pub issuer: &'a str,
    pub times: TimePolicy,
}

/// Which pair of members a time rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMembers {
    /// A JWT's `iat` and `exp`.
    Jwt,
    /// An RFC 9421 signature's `created` and `expires` parameters.
    HttpSignature,
}

impl TimeMembers {
    fn start(self) -> &'static str {
        match self {
            Self::Jwt => "iat",
            Self::HttpSignature => "created",
        }
    }

    fn end(self) -> &'static str {
        match self {
            Self::Jwt => "exp",
            Self::HttpSignature => "expires",
        }
    }
}

/// Why a request breaks its profile. `code()` is the stable problem code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the claim `{0}` is required by this profile")]
    ClaimMissing(&'static str),
    #[error("the claim `{0}` is malformed: {1}")]
    ClaimInvalid(&'static str, &'static str),
    #[error("`iss` must be `{0}`")]
    IssuerMismatch(String),
    #[error("{} - {} is {lifetime} s, more than this key set's max_lifetime of {max} s", .members.end(), .members.start())]
    LifetimeExceeded {
        members: TimeMembers,
        lifetime: i64,
        max: i64,
    },
    #[error("`{}` is {offset} s away from now, more than the allowed clock skew of {skew} s", .members.start())]
    StartOutOfRange {
        members: TimeMembers,
        offset: i64,
        skew: i64,
    },
    #[error("the header member `{0}` is set by Signet and may not be supplied")]
    HeaderForbidden(String),
    #[error("the header member `{0}` is not allowed by this profile")]
    HeaderNotAllowed(String),
    #[error("this profile signs with typ `{0}`")]
    TypMismatch(String),
    #[error("the claim `{0}` is not allowed by this profile")]
    ClaimForbidden(&'static str),
}

impl TimePolicy {
    /// The lifetime and clock-skew rule. A start time (`iat`, `created`), when given, must lie
    /// within the clock skew of `now`; the lifetime from the start (or from now, without one) to
    /// the expiry may not exceed `max_lifetime`. An expiry that is not after the start is left to
    /// the caller: a JWT's `claim_invalid`, RFC 9421's `expires_not_after_created`.
    pub fn check(
        &self,
        members: TimeMembers,
        start: Option<i64>,
        expires: Option<i64>,
        now: i64,
    ) -> Result<(), PolicyError> {
        // Saturating: the times are the caller's, and no i64 may make this panic (found by
        // fuzzing).
        if let Some(start) = start
            && start.saturating_sub(now).saturating_abs() > self.clock_skew_s
        {
            return Err(PolicyError::StartOutOfRange {
                members,
                offset: start.saturating_sub(now),
                skew: self.clock_skew_s,
            });
        }
        let start = start.unwrap_or(now);
        if let Some(expires) = expires
            && expires.saturating_sub(start) > self.max_lifetime_s
        {
            return Err(PolicyError::LifetimeExceeded {
                members,
                lifetime: expires.saturating_sub(start),
                max: self.max_lifetime_s,
            });
        }
        Ok(())
    }
}

impl PolicyError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::ClaimMissing(_) => "claim_missing",
            Self::ClaimInvalid(..) => "claim_invalid",
            Self::IssuerMismatch(_) => "issuer_mismatch",
            Self::LifetimeExceeded { .. } => "lifetime_exceeded",
            Self::StartOutOfRange {
                members: TimeMembers::Jwt,
                ..
            } => "iat_out_of_range",
            Self::StartOutOfRange {
                members: TimeMembers::HttpSignature,
                ..
            } => "created_out_of_range",
            Self::HeaderForbidden(_) => "header_forbidden",
            Self::HeaderNotAllowed(_) => "header_not_allowed",
            Self::TypMismatch(_) => "typ_mismatch",
            Self::ClaimForbidden(_) => "claim_forbidden",
        }
    }
}

/// Header members only Signet sets (or that would let a verifier fetch keys elsewhere).
const FORBIDDEN_HEADER: &[&str] = &[
    "alg", "kid", "jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "b64", "zip", "enc",
];

const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

impl Profile {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "id_token" => Self::IdToken,
            "access_token" => Self::AccessToken,
            "jarm" => Self::Jarm,
            "introspection" => Self::Introspection,
            "logout_token" => Self::LogoutToken,
            "http_message" => Self::HttpMessage,
            "generic" => Self::Generic,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::IdToken => "id_token",
            Self::AccessToken => "access_token",
            Self::Jarm => "jarm",
            Self::Introspection => "introspection",
            Self::LogoutToken => "logout_token",
            Self::HttpMessage => "http_message",
            Self::Generic => "generic",
        }
    }

    /// The `typ` this profile signs with, if it fixes one.
    pub(crate) fn typ(self) -> Option<&'static str> {
        match self {
            Self::AccessToken => Some("at+jwt"),
            Self::Introspection => Some("token-introspection+jwt"),
            Self::LogoutToken => Some("logout+jwt"),
            Self::IdToken | Self::Jarm => Some("JWT"),
            Self::HttpMessage | Self::Generic => None,
        }
    }

    /// Whether `sign/jwt` applies (every JWT profile, and `generic`).
    pub(crate) fn signs_jwt(self) -> bool {
        self != Self::HttpMessage
    }

    fn required_claims(self) -> &'static [&'static str] {
        match self {
            Self::IdToken => &["iss", "sub", "aud", "exp", "iat"],
            Self::AccessToken => &["iss", "sub", "aud", "exp", "iat", "jti", "client_id"],
            Self::Jarm => &["iss", "aud", "exp"],
            Self::Introspection => &["iss", "aud", "iat", "token_introspection"],
            Self::LogoutToken => &["iss", "aud", "iat", "jti", "events"],
            Self::HttpMessage | Self::Generic => &[],
        }
    }

    /// Checks the caller's header members and returns the protected header Signet will sign with
    /// (without `alg` and `kid`, which the signer adds).
    pub fn header(self, caller: &Map<String, Value>) -> Result<Map<String, Value>, PolicyError> {
        let mut out = Map::new();
        for (name, value) in caller {
            if FORBIDDEN_HEADER.contains(&name.as_str()) {
                return Err(PolicyError::HeaderForbidden(name.clone()));
            }
            match (self, name.as_str()) {
                (Self::Generic, _) => {
                    out.insert(name.clone(), value.clone());
                }
                (_, "typ") => {
                    let fixed = self.typ().unwrap_or("JWT");
                    let given = value.as_str().unwrap_or_default();
                    // RFC 7515 4.1.9: media types compare case-insensitively, `application/` optional.
                    let given = given.strip_prefix("application/").unwrap_or(given);
                    if !given.eq_ignore_ascii_case(fixed) {
                        return Err(PolicyError::TypMismatch(fixed.to_string()));
                    }
                }
                _ => return Err(PolicyError::HeaderNotAllowed(name.clone())),
            }
        }
        if let Some(typ) = self.typ() {
            out.insert("typ".into(), Value::String(typ.into()));
        }
        Ok(out)
    }

    /// Checks the claims of a JWT against this profile at time `now` (unix seconds).
    pub fn check_claims(
        self,
        claims: &Map<String, Value>,
        policy: &ClaimPolicy<'_>,
        now: i64,
    ) -> Result<(), PolicyError> {
        for name in self.required_claims() {
            if claims.get(*name).is_none_or(Value::is_null) {
                return Err(PolicyError::ClaimMissing(name));
            }
        }
        if self == Self::Generic {
            return Ok(());
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == policy.issuer => {}
            _ => return Err(PolicyError::IssuerMismatch(policy.issuer.to_string())),
        }
        for name in ["sub", "jti", "client_id", "sid", "nonce", "azp"] {
            if let Some(v) = claims.get(name)
                && v.as_str().is_none_or(str::is_empty)
            {
                return Err(PolicyError::ClaimInvalid(
                    name,
                    "must be a non-empty string",
                ));
            }
        }
        if let Some(aud) = claims.get("aud") {
            let ok = match aud {
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => {
                    !a.is_empty() && a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                }
                _ => false,
            };
            if !ok {
                return Err(PolicyError::ClaimInvalid(
                    "aud",
                    "must be a non-empty string or array of strings",
                ));
            }
        }
        let exp = numeric(claims, "exp")?;
        let iat = numeric(claims, "iat")?;
        numeric(claims, "nbf")?;
        policy.times.check(TimeMembers::Jwt, iat, exp, now)?;
        // Without `iat` the lifetime counts from now.
        if let Some(exp) = exp
            && exp <= iat.unwrap_or(now)
        {
            return Err(PolicyError::ClaimInvalid("exp", "must be after iat"));
        }
        match self {
            Self::Introspection => introspection(claims),
            Self::LogoutToken => logout(claims),
            _ => Ok(()),
        }
    }
}

fn numeric(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, PolicyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .filter(|v| *v >= 0)
            .map(Some)
            .ok_or(PolicyError::ClaimInvalid(
                name,
                "must be a NumericDate (seconds)",
            )),
        Some(_) => Err(PolicyError::ClaimInvalid(
            name,
            "must be a NumericDate (seconds)",
        )),
    }
}

/// RFC 9701 section 5: `token_introspection` is an object carrying the RFC 7662 response.
fn introspection(claims: &Map<String, Value>) -> Result<(), PolicyError> {
    let Some(Value::Object(ti)) = claims.get("token_introspection") else {
        return Err(PolicyError::ClaimInvalid(
            "token_introspection",
            "must be a JSON object (RFC 9701)",
        ));
    };
    match ti.get("active") {
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) if ti.len() == 1 => Ok(()),
        Some(Value::Bool(false)) => Err(PolicyError::ClaimInvalid(
            "token_introspection",
            "an inactive token's response carries only \"active\": false",
        )),
        _ => Err(PolicyError::ClaimInvalid(
            "token_introspection",
            "must hold a boolean `active` member (RFC 7662)",
        )),
    }
}

/// OpenID Connect Back-Channel Logout 1.0 section 2.4.
fn logout(claims: &Map<String, Value>) -> Result<(), PolicyError> {
    let ok = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !ok {
        return Err(PolicyError::ClaimInvalid(
            "events",
            "must hold the back-channel logout event as an object",
        ));
    }
    if claims.get("sub").is_none() && claims.get("sid").is_none() {
        return Err(PolicyError::ClaimMissing("sub"));
    }
    if claims.contains_key("nonce") {
        return Err(PolicyError::ClaimForbidden("nonce"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
