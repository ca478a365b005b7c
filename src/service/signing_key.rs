//! The read model of `GET /v1/key-sets/{set}/signing-key`: what a signer (an AS that builds its
//! own JWS and calls `sign/compact`) needs to keep its own keystore in step with Signet's
//! schedule, without the admin role. States derived here from the key view and the clock.

use serde::Serialize;
use serde_json::{Map, Value};

use super::read::Rfc3339;
use super::sign::may_sign;
use super::{Service, ServiceError};
use crate::config::ClientConfig;
use crate::keys::{KeyRecord, KeyState, lifecycle};
use crate::signing::PublicKey;

/// One key as a signer sees it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SigningKeyEntry {
    pub(crate) kid: String,
    pub(crate) alg: String,
    /// The public JWK, as the JWKS serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jwk: Option<Map<String, Value>>,
    pub(crate) activate_at: Rfc3339,
}

/// The active key, the next one (if scheduled) and the retired ones still published.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SigningKeys {
    pub(crate) active: SigningKeyEntry,
    pub(crate) next: Option<SigningKeyEntry>,
    pub(crate) retired: Vec<SigningKeyEntry>,
}

impl SigningKeyEntry {
    fn new(k: &KeyRecord) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            jwk: PublicKey::from_jwk(&k.public_jwk)
                .ok()
                .map(|p| p.to_jwk(&k.kid, &k.alg)),
            activate_at: Rfc3339(k.activate_at),
        }
    }
}

impl Service {
    /// `GET /v1/key-sets/{set}/signing-key` for `client` (a signer of `set`): 503
    /// `no_active_key` without an active key.
    pub(crate) fn signing_keys(
        &self,
        client: &ClientConfig,
        set: &str,
    ) -> Result<SigningKeys, ServiceError> {
        let cfg = self.key_set(set)?;
        may_sign(client, cfg)?;
        let now = self.now();
        let view = self.view();
        let records = view.records(set);
        let active = lifecycle::active(records, now)
            .ok_or_else(|| ServiceError::NoActiveKey(set.to_string()))?;
        let retain = cfg.policy.retain.as_secs() as i64;
        let mut retired: Vec<&KeyRecord> = records
            .iter()
            .filter(|k| {
                matches!(
                    lifecycle::state(records, k, retain, now),
                    KeyState::Retired { .. }
                )
            })
            .collect();
        retired.sort_by_key(|k| std::cmp::Reverse(k.activate_at));
        Ok(SigningKeys {
            active: SigningKeyEntry::new(active),
            next: lifecycle::next(records, now).map(SigningKeyEntry::new),
            retired: retired.into_iter().map(SigningKeyEntry::new).collect(),
        })
    }
}
