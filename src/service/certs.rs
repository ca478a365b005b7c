//! Certificates of keys (DESIGN.md "Certificates"): a PKCS#10 CSR signed by the key inside its
//! HSM (through the key's backend slot: a worker thread, `op_timeout`, the self-check), and the
//! chain an operator attaches once a CA has issued it, checked (`signing::x509::check_chain`)
//! and stored with its audit event in one transaction. The view then serves `x5c`/`x5t#S256` and,
//! for `header_x5c` key sets, signs with `x5c` in the header.

use serde::Serialize;
use serde_json::json;

use super::{Invalid, KeyEntry, Refusal, Rfc3339, Service, ServiceError};
use crate::config::KeySetConfig;
use crate::keys::{KeyChange, KeyRecord, NewEvent, lifecycle};
use crate::signing::x509::{self, CsrError, CsrRequest, CsrSpec};
use crate::signing::{PublicKey, SignError};

impl Service {
    /// A key that may get a CSR or a chain: known, neither revoked nor destroyed.
    fn certifiable(&self, set: &str, kid: &str) -> Result<KeyRecord, ServiceError> {
        let key = self.find(set, kid)?;
        if key.revoked_at.is_some() {
            return Err(Refusal::AlreadyRevoked(kid.to_string()).into());
        }
        if key.destroyed_at.is_some() {
            return Err(Refusal::AlreadyDestroyed(kid.to_string()).into());
        }
        Ok(key)
    }

    /// `POST .../keys/{kid}/csr`: the PEM CSR for `req`, signed by the key in its HSM.
    pub(crate) async fn csr(
        &self,
        set: &str,
        kid: &str,
        req: CsrRequest,
        actor: &str,
    ) -> Result<String, ServiceError> {
        let cfg = self.key_set(set)?;
        self.certifiable(set, kid)?;
        let spec = CsrSpec::parse(&req).map_err(|e| ServiceError::Invalid(Invalid::Csr(e)))?;
        let key = self.view().signer(set, kid)?;
        let slot = self.backend_of(cfg);
        let pem = (slot.pick()?)
            .run_for(slot.config.op_timeout, move || {
                spec.sign(&key).map_err(|e| match e {
                    CsrError::Sign(s) => s,
                    other => SignError::Internal(Box::new(other)),
                })
            })
            .await?;
        let event = NewEvent::new(self.now(), actor, "csr_created")
            .key(set, kid)
            .detail(json!({ "subject": req.subject, "dns": req.dns, "uri": req.uri }));
        self.store.apply(&[], &[event]).await?;
        Ok(pem)
    }

    /// `PUT .../keys/{kid}/certificate`: checks `chain` (PEM, leaf first) against the key at
    /// `now` and attaches it. Returns the key's entry afterwards.
    pub(crate) async fn attach_certificate(
        &self,
        set: &str,
        kid: &str,
        chain: &str,
        actor: &str,
    ) -> Result<KeyEntry, ServiceError> {
        self.key_set(set)?;
        let _ops = self.ops.lock().await;
        let now = self.now();
        let key = self.certifiable(set, kid)?;
        let public =
            PublicKey::from_jwk(&key.public_jwk).map_err(|e| ServiceError::KeyUnusable {
                set: set.to_string(),
                kid: kid.to_string(),
                source: std::sync::Arc::new(e.into()),
            })?;
        let checked = x509::check_chain(chain, &public, now)?;
        let event = NewEvent::new(now, actor, "certificate_attached")
            .key(set, kid)
            .detail(json!({
                "subject": checked.subject,
                "issuer": checked.issuer,
                "not_after": checked.not_after,
                "chain_length": checked.x5c.len(),
                "x5t#S256": checked.x5c.first().and_then(|l| x509::x5t_s256(l)),
                "replaces_earlier": key.certificate.is_some(),
            }));
        let change = KeyChange::Certify {
            key_set: set.into(),
            kid: kid.into(),
            x5c: checked.x5c,
            not_after: checked.not_after,
            at: now,
        };
        self.store.apply(&[change], &[event]).await?;
        self.reload().await?;
        self.key_entry(set, kid)
    }
}

/// The certificate of a key in listings.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CertificateInfo {
    pub(crate) not_after: Rfc3339,
    pub(crate) chain_length: usize,
    #[serde(rename = "x5t#S256")]
    pub(crate) x5t_s256: Option<String>,
    pub(crate) certified_at: Option<Rfc3339>,
}

/// The certificate warnings of a key set in `/readyz`: a next key that will not activate until
/// its chain is attached (`require_certificate`), an active key without the chain its JWS headers
/// should carry (`header_x5c`).
pub(super) fn warnings(set: &KeySetConfig, records: &[KeyRecord], now: i64) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(next) = lifecycle::next(records, now).filter(|k| k.awaits_certificate()) {
        let when = if next.activate_at <= now {
            format!("was due at {}", Rfc3339(next.activate_at))
        } else {
            format!("is due at {}", Rfc3339(next.activate_at))
        };
        out.push(format!(
            "next key {} {when} but has no certificate: it will not activate until its chain is \
             attached",
            next.kid
        ));
    }
    if let Some(active) = lifecycle::active(records, now)
        && set.header_x5c
        && active.certificate.is_none()
    {
        out.push(format!(
            "active key {} has no certificate: its JWS headers carry no x5c (header_x5c)",
            active.kid
        ));
    }
    out
}
