//! `sign/compact` as an operation of the signing pipeline (`service::sign`): a JWS whose header and
//! payload the caller built (an AS such as oidc-provider with an `ExternalSigningKey`). Signet
//! signs the exact bytes it was given after enforcing what it can: the key set's `alg`, a `kid`
//! that may sign now, no forbidden header member, the profile (picked from `typ` and the claims
//! for a key set with several) and its claim checks. Knows nothing of axum.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::ServiceError;
use super::jws_sign::times;
use super::sign::{SetKeys, SignOperation, wrong_profile};
use crate::config::KeySetConfig;
use crate::signing::compact::{self, CompactInput};
use crate::signing::{ClaimPolicy, Profile, SigningKey, select_profile};

/// What `sign/compact` returns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompactSigned {
    /// The JWS signature, base64url.
    pub signature: String,
    /// `signing_input "." signature`.
    pub jws: String,
    pub kid: String,
    pub alg: &'static str,
    pub profile: &'static str,
}

/// `sign/compact`: the caller's `BASE64URL(header).BASE64URL(payload)`.
#[derive(Debug)]
pub struct SignCompact {
    signing_input: String,
    parsed: Option<CompactInput>,
    profile: Profile,
}

impl SignCompact {
    pub fn new(signing_input: String) -> Self {
        Self {
            signing_input,
            parsed: None,
            profile: Profile::Generic,
        }
    }

    /// The header's `kid`, once `admit` has parsed the signing input.
    pub(super) fn kid(&self) -> Option<&str> {
        self.parsed.as_ref().and_then(CompactInput::kid)
    }
}

/// Checks `input` against `set` at `now`: the profile it is signed under.
fn admit(set: &KeySetConfig, input: &CompactInput, now: i64) -> Result<Profile, ServiceError> {
    let Some(claims) = &input.claims else {
        // Only `generic` accepts a payload that is not a JSON object (`compact::parse`).
        Profile::Generic.header(&input.caller_members())?;
        return Ok(Profile::Generic);
    };
    let profile = select_profile(&set.profiles, input.typ(), claims)?;
    profile.header(&input.caller_members())?;
    let policy = ClaimPolicy {
        issuer: &set.issuer,
        times: times(set),
    };
    profile.check_claims(claims, &policy, now)?;
    Ok(profile)
}

impl SignOperation for SignCompact {
    type Output = CompactSigned;

    fn admit(&mut self, set: &KeySetConfig, now: i64) -> Result<Profile, ServiceError> {
        if set.profile == Profile::HttpMessage {
            return Err(wrong_profile(set, "sign/compact"));
        }
        let generic = set.profile == Profile::Generic;
        let input = compact::parse(&self.signing_input, set.alg.jose_name(), generic)?;
        self.profile = admit(set, &input, now)?;
        self.parsed = Some(input);
        Ok(self.profile)
    }

    fn choose_key(&self, keys: &SetKeys<'_>) -> Result<SigningKey, ServiceError> {
        keys.named(self.parsed.as_ref().and_then(CompactInput::kid))
    }

    fn signing_input(&mut self, _key: &SigningKey, _now: i64) -> Result<Vec<u8>, ServiceError> {
        Ok(std::mem::take(&mut self.signing_input).into_bytes())
    }

    fn finish(
        self,
        key: &SigningKey,
        input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<CompactSigned, ServiceError> {
        // `compact::parse` split the input into two base64url parts: it is ASCII.
        let input =
            String::from_utf8(input).map_err(|_| ServiceError::Internal("non-ASCII input"))?;
        let signature = B64URL.encode(signature);
        Ok(CompactSigned {
            jws: format!("{input}.{signature}"),
            signature,
            kid: key.kid().to_string(),
            alg: key.alg().jose_name(),
            profile: self.profile.name(),
        })
    }
}
