//! Key generation in the HSM and the start-up/scheduler rule that every key set has an active
//! key and exactly one next key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::hsm_signer::{key_spec, public_key, scheme};
use super::{Service, ServiceError};
use crate::config::KeySetConfig;
use crate::hsm::{Backend, HsmError, KeySpec};
use crate::keys::{KeyChange, KeyRecord, NewEvent, Origin, StoreError, lifecycle};
use crate::signing::PublicKey;
use serde_json::json;

/// The actor of changes the service makes on its own (start-up, scheduler).
pub(crate) const SCHEDULER: &str = "signet";

/// Generation can take seconds for RSA on a busy token.
const GENERATE_TIMEOUT: Duration = Duration::from_secs(60);

static PENDING: AtomicU64 = AtomicU64::new(0);

/// A generation refused by the store's one-next-key guard: another replica (or admin call) stored
/// a key first; the HSM object generated here has been destroyed again.
fn lost_race(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Store(StoreError::Conflict(_)))
}

impl Service {
    /// Gives `set` an active key (only when it has none at all: the bootstrap of a new key set)
    /// and a next key (when none is scheduled).
    pub(crate) async fn ensure_keys(&self, set: &KeySetConfig) -> Result<(), ServiceError> {
        let now = self.now();
        let records = self.records(&set.name);
        match (
            lifecycle::active(&records, now),
            lifecycle::next(&records, now),
        ) {
            (Some(_), _) => {}
            (None, None) => {
                tracing::info!(key_set = %set.name, "no key yet: generating the first active key");
                match self.generate(set, now, SCHEDULER, "bootstrap").await {
                    Err(e) if lost_race(&e) => return self.reload().await,
                    r => {
                        r?;
                    }
                }
            }
            (None, Some(n)) => {
                tracing::warn!(key_set = %set.name, next = %n.kid, activate_at = n.activate_at,
                    "key set has no active key until its next key activates");
                return Ok(());
            }
        }
        let records = self.records(&set.name);
        if lifecycle::next(&records, now).is_none() {
            let activate_at = lifecycle::next_activation(
                &records,
                set.policy.rotation_period.as_secs() as i64,
                set.policy.min_publish.as_secs() as i64,
                now,
            );
            tracing::info!(key_set = %set.name, activate_at, "generating the next key");
            match self.generate(set, activate_at, SCHEDULER, "next").await {
                Err(e) if lost_race(&e) => self.reload().await?,
                r => {
                    r?;
                }
            }
        }
        Ok(())
    }

    /// Generates a key pair for `set` in its HSM, names it after its kid, stores its record and
    /// reloads the view. A pair whose record cannot be stored is destroyed again.
    pub(crate) async fn generate(
        &self,
        set: &KeySetConfig,
        activate_at: i64,
        actor: &str,
        why: &str,
    ) -> Result<KeyRecord, ServiceError> {
        let slot = self.backend_of(set);
        let spec = key_spec(set.alg, set.rsa_bits);
        let now = self.now();
        // The first key of a key set is exempt: there is no key to wait with.
        let certificate_required =
            set.require_certificate && !self.view().records(&set.name).is_empty();
        let pending_id = format!(
            "signet-pending-{now}-{}-{}",
            std::process::id(),
            PENDING.fetch_add(1, Ordering::Relaxed)
        )
        .into_bytes();
        let (set_name, alg) = (set.name.clone(), set.alg);
        let (hsm_id, public, attrs) = slot
            .with_backend(GENERATE_TIMEOUT, move |b| {
                b.check_support(spec, scheme(alg))?;
                let (id, public) = key_pair(b, spec, &set_name, pending_id)?;
                let attrs = b.private_attributes(&id)?;
                Ok((id, public, attrs))
            })
            .await?;
        let provenance = super::import::provenance(&attrs);
        let record = KeyRecord {
            alg: set.alg.jose_name().to_string(),
            hsm: slot.config.name.clone(),
            hsm_id: hsm_id.clone(),
            public_jwk: public.jwk_members(),
            activate_at,
            provenance: Some(provenance),
            certificate_required,
            ..KeyRecord::new(&set.name, &public.thumbprint(), Origin::Generated, now)
        };
        let event = NewEvent::new(now, actor, "key_generated")
            .key(&set.name, &record.kid)
            .detail(json!({
                "why": why,
                "alg": record.alg,
                "hsm": record.hsm,
                "hsm_id": hex::encode(&record.hsm_id),
                "activate_at": activate_at,
                "provenance": provenance,
                "certificate_required": certificate_required,
            }));
        if let Err(e) = self
            .store
            .apply(&[KeyChange::Insert(record.clone())], &[event])
            .await
        {
            if matches!(e, StoreError::Conflict(_)) {
                tracing::info!(kid = %record.kid, reason = %e,
                    "another replica added a key first; destroying the one generated here");
            } else {
                tracing::error!(kid = %record.kid, error = %e, "cannot store the new key; destroying it");
            }
            let _ = slot
                .with_backend(slot.config.op_timeout, move |b| b.destroy(&hsm_id))
                .await;
            return Err(e.into());
        }
        tracing::info!(key_set = %set.name, kid = %record.kid, activate_at, "key generated in the HSM");
        self.reload().await?;
        Ok(record)
    }
}

/// Generates a key pair under `pending_id` and names it after its kid: `CKA_ID` the kid's bytes,
/// `CKA_LABEL` `signet/<set>/<kid>`. Returns the id it ends up with, and its public key.
fn key_pair(
    b: &Backend,
    spec: KeySpec,
    set_name: &str,
    pending_id: Vec<u8>,
) -> Result<(Vec<u8>, PublicKey), HsmError> {
    let pending_label = format!("signet/{set_name}/pending");
    let public = public_key(b.generate(spec, &pending_id, &pending_label)?);
    let kid = public.thumbprint();
    let label = format!("signet/{set_name}/{kid}");
    // Some HSMs refuse to change CKA_ID after generation: then the pending id stays and the
    // store remembers it.
    let id = match b.relabel(&pending_id, kid.as_bytes(), &label) {
        Ok(()) => kid.into_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot set CKA_ID/CKA_LABEL; keeping the generation-time id");
            pending_id
        }
    };
    Ok((id, public))
}
