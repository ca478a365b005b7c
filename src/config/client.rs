//! One `[[client]]`: role, key sets, how it authenticates (token hash or mTLS identity) and its
//! quota. Apart from `validate` to keep files short.

use super::raw::RawClient;
use super::validate::{Result, name_ok};
use super::*;

pub(super) fn client(
    i: usize,
    raw: &RawClient,
    key_sets: &[KeySetConfig],
    tls: Option<&TlsConfig>,
) -> Result<ClientConfig> {
    let key = |field: &str| format!("client[{i}].{field}");
    name_ok(&key("name"), &raw.name)?;
    let role = match raw.role.as_str() {
        "signer" => Role::Signer,
        "admin" => Role::Admin,
        "auditor" => Role::Auditor,
        other => {
            return Err((
                key("role"),
                format!("unknown role `{other}` (signer, admin, auditor)"),
            ));
        }
    };
    let sets = if raw.key_sets.iter().any(|s| s == "*") {
        None
    } else {
        for s in &raw.key_sets {
            if !key_sets.iter().any(|k| &k.name == s) {
                return Err((key("key_sets"), format!("no [[key_set]] named `{s}`")));
            }
        }
        Some(raw.key_sets.clone())
    };
    if role == Role::Signer && sets.as_ref().is_some_and(|s| s.is_empty()) {
        return Err((
            key("key_sets"),
            "a signer needs at least one key set (or \"*\")".into(),
        ));
    }
    let auth = auth(&key, raw, tls)?;
    let quota = match (&raw.rate, raw.burst) {
        (Some(rate), burst) => Some(quota(&key, rate, burst)?),
        (None, Some(_)) => {
            return Err((key("burst"), "needs a rate (e.g. rate = \"500/s\")".into()));
        }
        (None, None) => None,
    };
    Ok(ClientConfig {
        name: raw.name.clone(),
        role,
        key_sets: sets,
        auth,
        quota,
    })
}

/// `rate = "500/s"` (or "/m"), `burst` defaulting to the per-second rate (at least 1).
fn quota(key: &dyn Fn(&str) -> String, rate: &str, burst: Option<u32>) -> Result<Quota> {
    let bad = || {
        (
            key("rate"),
            format!("`{rate}` is not a rate like \"500/s\" or \"600/m\""),
        )
    };
    let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err((key("rate"), "must allow at least one request".into()));
    }
    let per_second = f64::from(count) / per.as_secs_f64();
    let burst = match burst {
        Some(0) => return Err((key("burst"), "must be at least 1".into())),
        Some(b) => b,
        // Lossless enough: a rate is at most u32::MAX per second.
        None => (per_second.ceil() as u32).max(1),
    };
    Ok(Quota { count, per, burst })
}

/// How the client authenticates: exactly one of a bearer token's SHA-256, a certificate subject
/// or a certificate SAN (mTLS needs `[server.tls] client_ca`).
fn auth(
    key: &dyn Fn(&str) -> String,
    raw: &RawClient,
    tls: Option<&TlsConfig>,
) -> Result<ClientAuth> {
    let auth = match (&raw.token_sha256, &raw.cert_subject, &raw.cert_san) {
        (Some(h), None, None) => {
            let bytes = hex::decode(h.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            ClientAuth::TokenSha256(bytes.ok_or_else(|| {
                (
                    key("token_sha256"),
                    "must be 64 hex digits: the SHA-256 of the bearer token \
                     (printf %s TOKEN | sha256sum)"
                        .to_string(),
                )
            })?)
        }
        (None, Some(v), None) | (None, None, Some(v)) => {
            let field = if raw.cert_subject.is_some() {
                "cert_subject"
            } else {
                "cert_san"
            };
            if tls.and_then(|t| t.client_ca.as_ref()).is_none() {
                return Err((
                    key(field),
                    "mTLS clients need [server.tls] with client_ca (the CA bundle their \
                     certificates are verified against)"
                        .into(),
                ));
            }
            let v = v.trim();
            if v.is_empty() {
                return Err((key(field), "must not be empty".into()));
            }
            if raw.cert_subject.is_some() {
                ClientAuth::CertSubject(v.to_string())
            } else if v.contains("://") {
                ClientAuth::CertSan(v.to_string())
            } else {
                ClientAuth::CertSan(v.to_ascii_lowercase())
            }
        }
        _ => {
            return Err((
                key("token_sha256"),
                "exactly one of token_sha256, cert_subject, cert_san is required".into(),
            ));
        }
    };
    Ok(auth)
}
