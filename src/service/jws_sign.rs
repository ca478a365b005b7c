//! `sign/jwt` and `sign/jws` as operations of the signing pipeline (`service::sign`): their policy
//! checks (profile, header, claims) and their compact JWS. Knows nothing of axum.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value};

use super::ServiceError;
use super::sign::{SignOperation, wrong_profile};
use crate::config::KeySetConfig;
use crate::signing::{ClaimPolicy, Profile, SigningKey, TimePolicy, jws};

/// What `sign/jwt` and `sign/jws` return: the compact JWS (or JWT), its kid and alg.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Signed {
    #[serde(skip)]
    pub token: String,
    pub kid: String,
    pub alg: &'static str,
}

/// `sign/jwt`: `claims` as a JWT under the key set's profile.
#[derive(Debug)]
pub struct SignJwt {
    claims: Map<String, Value>,
    header: Map<String, Value>,
    /// The key set's `header_x5c`, learnt in `admit`.
    x5c: bool,
}

impl SignJwt {
    /// `header` holds the members the caller asks for (`typ`; anything allowed for `generic`).
    pub fn new(claims: Map<String, Value>, header: Map<String, Value>) -> Self {
        Self {
            claims,
            header,
            x5c: false,
        }
    }
}

/// A key set's time rules, for profiles and RFC 9421 signatures alike.
pub(super) fn times(set: &KeySetConfig) -> TimePolicy {
    TimePolicy {
        max_lifetime_s: set.policy.max_lifetime.as_secs() as i64,
        clock_skew_s: set.policy.clock_skew.as_secs() as i64,
    }
}

impl SignOperation for SignJwt {
    type Output = Signed;

    fn admit(&mut self, set: &KeySetConfig, now: i64) -> Result<Profile, ServiceError> {
        if !set.profile.signs_jwt() {
            return Err(wrong_profile(set, "sign/jwt"));
        }
        // A key set with several profiles picks one from `typ` and the claims.
        let typ = self.header.get("typ").and_then(Value::as_str);
        let profile = crate::signing::select_profile(&set.profiles, typ, &self.claims)?;
        self.header = profile.header(&self.header)?;
        let policy = ClaimPolicy {
            issuer: &set.issuer,
            times: times(set),
        };
        profile.check_claims(&self.claims, &policy, now)?;
        self.x5c = set.header_x5c;
        Ok(profile)
    }

    fn signing_input(&mut self, key: &SigningKey, _now: i64) -> Result<Vec<u8>, ServiceError> {
        let header = jws::protected_header(key, std::mem::take(&mut self.header), self.x5c);
        let payload = Value::Object(std::mem::take(&mut self.claims)).to_string();
        Ok(jws::signing_input(header, payload.as_bytes()).into_bytes())
    }

    fn finish(
        self,
        key: &SigningKey,
        input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<Signed, ServiceError> {
        Ok(signed(key, &input, &signature))
    }
}

/// `sign/jws` (profile `generic`): an arbitrary payload, attached or detached.
#[derive(Debug)]
pub struct SignJws {
    payload_b64: String,
    payload: Vec<u8>,
    header: Map<String, Value>,
    detached: bool,
    /// The key set's `header_x5c`, learnt in `admit`.
    x5c: bool,
}

impl SignJws {
    /// `payload_b64` is the payload in base64url (padding tolerated).
    pub fn new(payload_b64: String, header: Map<String, Value>, detached: bool) -> Self {
        Self {
            payload_b64,
            payload: Vec::new(),
            header,
            detached,
            x5c: false,
        }
    }
}

impl SignOperation for SignJws {
    type Output = Signed;

    fn admit(&mut self, set: &KeySetConfig, _now: i64) -> Result<Profile, ServiceError> {
        if set.profile != Profile::Generic {
            return Err(wrong_profile(set, "sign/jws"));
        }
        self.payload = B64URL
            .decode(self.payload_b64.trim_end_matches('='))
            .map_err(ServiceError::PayloadNotBase64url)?;
        self.header = set.profile.header(&self.header)?;
        self.x5c = set.header_x5c;
        Ok(set.profile)
    }

    fn signing_input(&mut self, key: &SigningKey, _now: i64) -> Result<Vec<u8>, ServiceError> {
        let header = jws::protected_header(key, std::mem::take(&mut self.header), self.x5c);
        Ok(jws::signing_input(header, &self.payload).into_bytes())
    }

    fn finish(
        self,
        key: &SigningKey,
        input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<Signed, ServiceError> {
        let mut out = signed(key, &input, &signature);
        if self.detached {
            out.token = jws::detach(&out.token);
        }
        Ok(out)
    }
}

fn signed(key: &SigningKey, input: &[u8], signature: &[u8]) -> Signed {
    // The input is the ASCII signing input `jws::signing_input` built: the conversion is exact.
    let input = String::from_utf8_lossy(input);
    Signed {
        token: jws::compact(&input, signature),
        kid: key.kid().to_string(),
        alg: key.alg().jose_name(),
    }
}
