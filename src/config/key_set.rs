//! One `[[key_set]]`: its profiles, algorithm, backends, issuer and lifecycle policy, with the
//! rules between them (DESIGN.md "Configuration"). Apart from `validate` to keep files short.

use super::raw::{RawKeySet, RawServer};
use super::validate::{
    DEFAULT_ACTIVATION_GRACE, DEFAULT_CLOCK_SKEW, DEFAULT_DESTROY_DELAY, DEFAULT_MAX_LIFETIME,
    DEFAULT_RSA_BITS, Result, backends, duration, human, name_ok, nonzero,
};
use super::*;

pub(super) fn key_set(
    i: usize,
    raw: &RawKeySet,
    raw_server: &RawServer,
    server: &ServerConfig,
    hsms: &[HsmConfig],
) -> Result<KeySetConfig> {
    let key = |field: &str| format!("key_set[{i}].{field}");
    name_ok(&key("name"), &raw.name)?;
    let profiles =
        super::key_set_profiles::profiles(&key, raw.profile.as_deref(), raw.profiles.as_deref())?;
    let profile = profiles[0];
    let fapi = raw.fapi.unwrap_or(true);
    let alg = alg(&key, raw, profile, fapi)?;
    let hsm = backends(&key("hsm"), &raw.hsm.names(), hsms)?;
    let issuer = issuer(&key, raw, raw_server, profile, fapi)?;
    let rsa_bits = raw.rsa_bits.unwrap_or(DEFAULT_RSA_BITS);
    if ![2048, 3072, 4096].contains(&rsa_bits) {
        return Err((key("rsa_bits"), "must be 2048, 3072 or 4096".into()));
    }
    let policy = policy(&key, raw, server.jwks_max_age)?;
    let header_x5c = raw.header_x5c.unwrap_or(false);
    if header_x5c && profile == Profile::HttpMessage {
        return Err((
            key("header_x5c"),
            "an http_message key set signs no JWS header; remove header_x5c".into(),
        ));
    }
    Ok(KeySetConfig {
        name: raw.name.clone(),
        profile,
        profiles,
        alg,
        hsms: hsm,
        issuer,
        fapi,
        rsa_bits,
        policy,
        audit_signatures: raw.audit_signatures.unwrap_or(false),
        allow_exposed_import: raw.allow_exposed_import.unwrap_or(false),
        header_x5c,
        require_certificate: raw.require_certificate.unwrap_or(false),
    })
}

/// The key set's algorithm: an RFC 9421 name for `http_message`, a JWS name otherwise, FAPI's
/// list unless `fapi = false`.
fn alg(
    key: &dyn Fn(&str) -> String,
    raw: &RawKeySet,
    profile: Profile,
    fapi: bool,
) -> Result<Algorithm> {
    let alg = if profile == Profile::HttpMessage {
        Algorithm::from_http(&raw.alg).ok_or_else(|| {
            (
                key("alg"),
                format!(
                    "`{}` is not an RFC 9421 algorithm Signet signs with (ed25519, \
                     ecdsa-p256-sha256, rsa-pss-sha512)",
                    raw.alg
                ),
            )
        })?
    } else {
        let alg = Algorithm::from_jose(&raw.alg)
            .filter(|a| *a != Algorithm::Ps512)
            .ok_or_else(|| {
                (
                    key("alg"),
                    format!(
                        "`{}` is not a JWS algorithm Signet signs with (PS256, ES256, EdDSA, \
                         Ed25519; RS256, PS384, ES384 with fapi = false)",
                        raw.alg
                    ),
                )
            })?;
        if fapi && !alg.fapi_allowed() {
            return Err((
                key("alg"),
                format!("{alg} is not allowed by FAPI 2.0; set fapi = false to use it"),
            ));
        }
        alg
    };
    Ok(alg)
}

/// The issuer (the key set's, else `server.issuer`): required for JWT profiles, https under FAPI
/// (http only on loopback).
fn issuer(
    key: &dyn Fn(&str) -> String,
    raw: &RawKeySet,
    raw_server: &RawServer,
    profile: Profile,
    fapi: bool,
) -> Result<String> {
    let issuer = raw
        .issuer
        .clone()
        .or_else(|| raw_server.issuer.clone())
        .unwrap_or_default();
    if profile != Profile::HttpMessage && issuer.is_empty() {
        return Err((key("issuer"), "required (or set server.issuer)".into()));
    }
    if fapi && !issuer.is_empty() && !super::key_set_profiles::issuer_ok(&issuer) {
        return Err((
            key("issuer"),
            format!("`{issuer}` must be an https URL under FAPI 2.0 (http only on loopback)"),
        ));
    }
    Ok(issuer)
}

/// The lifecycle policy, and the rules between its durations and `server.jwks_max_age`.
fn policy(key: &dyn Fn(&str) -> String, raw: &RawKeySet, max_age: Duration) -> Result<Policy> {
    let policy = Policy {
        rotation_period: nonzero(&key("rotation_period"), Some(&raw.rotation_period), "")?,
        min_publish: duration(&key("min_publish"), Some(&raw.min_publish), "")?,
        retain: duration(&key("retain"), Some(&raw.retain), "")?,
        destroy_after: raw
            .destroy_after
            .as_deref()
            .map(|d| duration(&key("destroy_after"), Some(d), ""))
            .transpose()?,
        destroy_delay: duration(
            &key("destroy_delay"),
            raw.destroy_delay.as_deref(),
            DEFAULT_DESTROY_DELAY,
        )?,
        max_lifetime: nonzero(
            &key("max_lifetime"),
            raw.max_lifetime.as_deref(),
            DEFAULT_MAX_LIFETIME,
        )?,
        clock_skew: duration(
            &key("clock_skew"),
            raw.clock_skew.as_deref(),
            DEFAULT_CLOCK_SKEW,
        )?,
        activation_grace: duration(
            &key("activation_grace"),
            raw.activation_grace.as_deref(),
            DEFAULT_ACTIVATION_GRACE,
        )?,
    };
    if policy.min_publish < 2 * max_age {
        return Err((
            key("min_publish"),
            format!(
                "{} is shorter than 2 x server.jwks_max_age ({}): verifiers could meet a kid they \
                 have not cached",
                human(policy.min_publish),
                human(2 * max_age)
            ),
        ));
    }
    if policy.retain < policy.max_lifetime + max_age {
        return Err((
            key("retain"),
            format!(
                "{} is shorter than max_lifetime + server.jwks_max_age ({}): tokens would outlive \
                 their key in the JWKS",
                human(policy.retain),
                human(policy.max_lifetime + max_age)
            ),
        ));
    }
    if policy.rotation_period <= policy.min_publish {
        return Err((
            key("rotation_period"),
            format!(
                "{} must be longer than min_publish ({})",
                human(policy.rotation_period),
                human(policy.min_publish)
            ),
        ));
    }
    Ok(policy)
}
