//! The in-memory key view: every key record, a ready [`SigningKey`] for each usable key, and the
//! JWKS documents derived from them at a given time (cached while the published set is unchanged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::hsm_signer::HsmSigner;
use super::{BackendSlot, BackendState, ServiceError};
use crate::config::Config;
use crate::keys::{KeyRecord, lifecycle};
use crate::signing::{Algorithm, PublicKey, SignError, SigningKey};

#[derive(Debug, Default)]
struct SetKeys {
    records: Vec<KeyRecord>,
    signers: HashMap<String, SigningKey>,
    /// Why a key of this set has no signer (backend down, bad record).
    unusable: HashMap<String, String>,
}

/// A snapshot of every key, rebuilt on each reload.
#[derive(Debug, Default)]
pub struct KeyView {
    sets: HashMap<String, SetKeys>,
}

impl KeyView {
    pub fn build(config: &Config, backends: &[BackendSlot], records: Vec<KeyRecord>) -> Self {
        let mut sets: HashMap<String, SetKeys> = HashMap::new();
        for r in records {
            let entry = sets.entry(r.key_set.clone()).or_default();
            if r.destroyed_at.is_none()
                && let Some(cfg) = config.key_set(&r.key_set)
            {
                match signing_key(&r, &backends[cfg.hsm]) {
                    Ok(k) => {
                        entry.signers.insert(r.kid.clone(), k);
                    }
                    Err(e) => {
                        entry.unusable.insert(r.kid.clone(), e.to_string());
                    }
                }
            }
            entry.records.push(r);
        }
        KeyView { sets }
    }

    pub fn records(&self, set: &str) -> &[KeyRecord] {
        self.sets
            .get(set)
            .map(|s| s.records.as_slice())
            .unwrap_or_default()
    }

    /// Every record of every key set.
    pub fn records_all(&self) -> impl Iterator<Item = &KeyRecord> {
        self.sets.values().flat_map(|s| s.records.iter())
    }

    pub fn active(&self, set: &str, now: i64) -> Option<&KeyRecord> {
        lifecycle::active(self.records(set), now)
    }

    /// The key that signs for `set` at `now`.
    pub fn signing_key(&self, set: &str, now: i64) -> Result<SigningKey, ServiceError> {
        let active = self
            .active(set, now)
            .ok_or_else(|| ServiceError::NoActiveKey(set.to_string()))?;
        let keys = self.sets.get(set);
        if let Some(k) = keys.and_then(|s| s.signers.get(&active.kid)) {
            return Ok(k.clone());
        }
        let reason = keys
            .and_then(|s| s.unusable.get(&active.kid))
            .cloned()
            .unwrap_or_else(|| "no signer".into());
        Err(SignError::Unavailable(format!("key {}: {reason}", active.kid)).into())
    }
}

fn signing_key(r: &KeyRecord, slot: &BackendSlot) -> Result<SigningKey, SignError> {
    let alg = Algorithm::from_jose(&r.alg)
        .ok_or_else(|| SignError::Key(format!("unknown alg {}", r.alg)))?;
    let public = PublicKey::from_jwk(&r.public_jwk).map_err(|e| SignError::Key(e.to_string()))?;
    let BackendState::Up(backend) = slot.state() else {
        return Err(SignError::Unavailable(format!(
            "hsm `{}` is down",
            slot.config.name
        )));
    };
    let signer = Arc::new(HsmSigner::new(backend, r.hsm_id.clone(), alg));
    SigningKey::new(r.kid.clone(), alg, public, signer)
}

/// A served JWKS document.
#[derive(Debug)]
pub struct Jwks {
    /// `kid/alg` of each published key, in order: identifies the document.
    identity: Vec<String>,
    pub body: String,
    /// Strong ETag (quoted).
    pub etag: String,
}

/// The last JWKS per scope (one key set, or all: `None`).
#[derive(Debug, Default)]
pub struct JwksCache {
    docs: Mutex<HashMap<Option<String>, Arc<Jwks>>>,
}

impl JwksCache {
    pub fn get(&self, config: &Config, view: &KeyView, set: Option<&str>, now: i64) -> Arc<Jwks> {
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
            .map(|k| format!("{}/{}", k.kid, k.alg))
            .collect();
        let scope = set.map(str::to_string);
        if let Ok(docs) = self.docs.lock()
            && let Some(doc) = docs.get(&scope)
            && doc.identity == identity
        {
            return doc.clone();
        }
        // Rebuilt from the public key itself, so that nothing but public members can ever be served.
        let keys: Vec<Value> = published
            .iter()
            .filter_map(|k| {
                let public = PublicKey::from_jwk(&k.public_jwk).ok()?;
                Some(Value::Object(public.to_jwk(&k.kid, &k.alg)))
            })
            .collect();
        let body = serde_json::json!({ "keys": keys }).to_string();
        let etag = format!("\"{}\"", B64URL.encode(Sha256::digest(body.as_bytes())));
        let doc = Arc::new(Jwks {
            identity,
            body,
            etag,
        });
        if let Ok(mut docs) = self.docs.lock() {
            docs.insert(scope, doc.clone());
        }
        doc
    }
}
