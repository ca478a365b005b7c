//! The in-memory key view: every key record, a ready [`SigningKey`] for each usable key, and the
//! JWKS documents derived from them at a given time (cached while the published set is unchanged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::hsm_signer::HsmSigner;
use super::{BackendSlot, ServiceError};
use crate::config::Config;
use crate::keys::{KeyRecord, lifecycle};
use crate::signing::x509::x5t_s256;
use crate::signing::{Algorithm, KeyError, PublicKey, SigningKey};
use crate::support::lock;

#[derive(Debug, Default)]
struct SetKeys {
    records: Vec<KeyRecord>,
    /// A ready key for each record not destroyed, or why its record cannot make one.
    signers: HashMap<String, Result<SigningKey, Arc<KeyError>>>,
    /// The `CKA_ID` of each record not destroyed, by kid.
    ids: HashMap<String, Arc<[u8]>>,
}

/// A snapshot of every key, rebuilt on each reload.
#[derive(Debug, Default)]
pub(crate) struct KeyView {
    sets: HashMap<String, SetKeys>,
}

impl KeyView {
    pub(super) fn build(
        config: &Config,
        backends: &[Arc<BackendSlot>],
        records: Vec<KeyRecord>,
    ) -> Self {
        let mut sets: HashMap<String, SetKeys> = HashMap::new();
        for r in records {
            let entry = sets.entry(r.key_set.clone()).or_default();
            if r.destroyed_at.is_none()
                && let Some(cfg) = config.key_set(&r.key_set)
            {
                let signer = signing_key(&r, &backends[cfg.hsms[0]]).map_err(Arc::new);
                entry.signers.insert(r.kid.clone(), signer);
                entry.ids.insert(r.kid.clone(), r.hsm_id.as_slice().into());
            }
            entry.records.push(r);
        }
        KeyView { sets }
    }

    /// The records of key set `set`, oldest first.
    pub(crate) fn records(&self, set: &str) -> &[KeyRecord] {
        self.sets
            .get(set)
            .map(|s| s.records.as_slice())
            .unwrap_or_default()
    }

    /// Every record of every key set.
    pub(super) fn records_all(&self) -> impl Iterator<Item = &KeyRecord> {
        self.sets.values().flat_map(|s| s.records.iter())
    }

    pub(super) fn active(&self, set: &str, now: i64) -> Option<&KeyRecord> {
        lifecycle::active(self.records(set), now)
    }

    /// The key `kid` of `set`, ready to sign: 404 when the key set has no such (undestroyed) key,
    /// 500 when its record cannot make one.
    pub(super) fn signer(&self, set: &str, kid: &str) -> Result<SigningKey, ServiceError> {
        match self.sets.get(set).and_then(|s| s.signers.get(kid)) {
            Some(Ok(key)) => Ok(key.clone()),
            Some(Err(e)) => Err(ServiceError::KeyUnusable {
                set: set.to_string(),
                kid: kid.to_string(),
                source: e.clone(),
            }),
            None => Err(ServiceError::KeyNotFound {
                set: set.to_string(),
                kid: kid.to_string(),
            }),
        }
    }
}

impl KeyView {
    /// The `CKA_ID` of the undestroyed key `kid` of `set`, found by it on every backend.
    pub(super) fn hsm_id(&self, set: &str, kid: &str) -> Option<Arc<[u8]>> {
        self.sets.get(set).and_then(|s| s.ids.get(kid)).cloned()
    }
}

fn signing_key(r: &KeyRecord, slot: &Arc<BackendSlot>) -> Result<SigningKey, KeyError> {
    let alg =
        Algorithm::from_jose(&r.alg).ok_or_else(|| KeyError::UnknownAlgorithm(r.alg.clone()))?;
    let public = PublicKey::from_jwk(&r.public_jwk)?;
    // The signer finds the slot's current context at each call, so a recovered backend needs no
    // rebuilt view.
    let signer = Arc::new(HsmSigner::new(slot.clone(), r.hsm_id.clone(), alg));
    let key = SigningKey::new(r.kid.clone(), alg, public, signer)?;
    Ok(match &r.certificate {
        Some(c) => key.with_x5c(c.x5c.clone()),
        None => key,
    })
}

/// The JWK served for `k`: its public members, `kid`, `alg`, `use`, and with a certificate
/// attached, `x5c` (leaf first) and `x5t#S256` (of the leaf).
pub(super) fn served_jwk(k: &KeyRecord) -> Option<Map<String, Value>> {
    let public = PublicKey::from_jwk(&k.public_jwk).ok()?;
    let mut jwk = public.to_jwk(&k.kid, &k.alg);
    if let Some(c) = &k.certificate {
        jwk.insert("x5c".into(), Value::from(c.x5c.clone()));
        if let Some(t) = c.x5c.first().and_then(|leaf| x5t_s256(leaf)) {
            jwk.insert("x5t#S256".into(), Value::String(t));
        }
    }
    Some(jwk)
}

/// A served JWKS document.
#[derive(Debug)]
pub struct Jwks {
    /// `kid/alg` of each published key, in order: identifies the document.
    identity: Vec<String>,
    pub body: String,
    /// Strong ETag (quoted).
    pub(crate) etag: String,
}

/// The last JWKS per scope (one key set, or all: `None`).
#[derive(Debug, Default)]
pub(super) struct JwksCache {
    docs: Mutex<HashMap<Option<String>, Arc<Jwks>>>,
}

impl JwksCache {
    pub(super) fn get(
        &self,
        config: &Config,
        view: &KeyView,
        set: Option<&str>,
        now: i64,
    ) -> Arc<Jwks> {
        let mut published = Vec::new();
        for cfg in &config.key_sets {
            if set.is_some_and(|s| s != cfg.name) {
                continue;
            }
            let retain = cfg.policy.retain.as_secs() as i64;
            published.extend(lifecycle::published(view.records(&cfg.name), retain, now));
        }
        let identity: Vec<String> = published
            .iter()
            .map(|k| {
                let chain = k.certificate.as_ref().map(|c| c.x5c.join(","));
                format!("{}/{}/{}", k.kid, k.alg, chain.unwrap_or_default())
            })
            .collect();
        let scope = set.map(str::to_string);
        if let Some(doc) = lock(&self.docs).get(&scope)
            && doc.identity == identity
        {
            return doc.clone();
        }
        // Rebuilt from the public key itself, so that nothing but public members can ever be served.
        let keys: Vec<Value> = published
            .iter()
            .filter_map(|k| served_jwk(k).map(Value::Object))
            .collect();
        let body = serde_json::json!({ "keys": keys }).to_string();
        let etag = format!("\"{}\"", B64URL.encode(Sha256::digest(body.as_bytes())));
        let doc = Arc::new(Jwks {
            identity,
            body,
            etag,
        });
        lock(&self.docs).insert(scope, doc.clone());
        doc
    }
}
