//! The store's queries for [`KeyChange`]s to the key rows: a new key, and the conditional
//! updates (each matching the key it changes only in the state the change expects; an update
//! that touches no row is a [`StoreError::Conflict`]).

use serde_json::Value;

use super::Writer;
use super::destruction;
use crate::keys::{KeyChange, KeyRecord, StoreError};

/// A value a conditional update binds before the key set and kid.
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// One conditional update: `sql` binds `params` as `$1..`, then the key set and the kid, and
/// returns a row when it matched the key.
pub(super) struct Update<'c> {
    sql: &'static str,
    params: Vec<Param>,
    key_set: &'c str,
    kid: &'c str,
    /// What the key is when nothing matched: `key {kid} of {key_set} {conflict}`.
    conflict: &'static str,
}

impl<'c> Update<'c> {
    pub(super) fn new(
        sql: &'static str,
        params: Vec<Param>,
        (key_set, kid): (&'c str, &'c str),
        conflict: &'static str,
    ) -> Self {
        Self {
            sql,
            params,
            key_set,
            kid,
            conflict,
        }
    }
}

/// The update that applies `change`, or for [`KeyChange::Insert`] the key to insert.
fn update(change: &KeyChange) -> Result<Update<'_>, &KeyRecord> {
    use Param::{Int, Text};
    Ok(match change {
        KeyChange::Insert(key) => return Err(key),
        KeyChange::ScheduleDestruction { key_set, kid, at } => {
            destruction::schedule(key_set, kid, *at)
        }
        KeyChange::CancelDestruction { key_set, kid, at } => destruction::cancel(key_set, kid, *at),
        KeyChange::Destroyed { key_set, kid, at } => destruction::destroyed(key_set, kid, *at),
        KeyChange::Activate { key_set, kid, at } => Update::new(
            "UPDATE keys SET activate_at = $1 \
             WHERE key_set = $2 AND kid = $3 AND revoked_at IS NULL RETURNING kid",
            vec![Int(*at)],
            (key_set, kid),
            "is unknown or revoked",
        ),
        KeyChange::Revoke {
            key_set,
            kid,
            at,
            reason,
        } => Update::new(
            "UPDATE keys SET revoked_at = $1, revoke_reason = $2 \
             WHERE key_set = $3 AND kid = $4 AND revoked_at IS NULL RETURNING kid",
            vec![Int(*at), Text(reason.clone())],
            (key_set, kid),
            "is unknown or already revoked",
        ),
        KeyChange::Provenance {
            key_set,
            kid,
            provenance: p,
        } => Update::new(
            "UPDATE keys SET cka_local = $1, always_sensitive = $2, \
             never_extractable = $3 WHERE key_set = $4 AND kid = $5 RETURNING kid",
            [p.local, p.always_sensitive, p.never_extractable]
                .map(|b| Int(i64::from(b)))
                .into(),
            (key_set, kid),
            "is unknown",
        ),
        KeyChange::Certify {
            key_set,
            kid,
            x5c,
            not_after,
            at,
        } => Update::new(
            "UPDATE keys SET certificate_chain = $1, certificate_not_after = $2, \
             certified_at = COALESCE(certified_at, $3) WHERE key_set = $4 AND kid = $5 \
             AND revoked_at IS NULL AND destroyed_at IS NULL RETURNING kid",
            vec![
                Text(Value::from(x5c.clone()).to_string()),
                Int(*not_after),
                Int(*at),
            ],
            (key_set, kid),
            "is unknown, revoked or destroyed",
        ),
        KeyChange::NotRevoked { key_set, kid } => Update::new(
            "SELECT kid FROM keys WHERE key_set = $1 AND kid = $2 AND revoked_at IS NULL",
            Vec::new(),
            (key_set, kid),
            "was revoked",
        ),
    })
}

over_db! {
impl<'s, DB> Writer<'s, DB> {
    /// Applies one change; an update that touches no row is a [`StoreError::Conflict`].
    pub(super) async fn change(&mut self, change: &KeyChange) -> Result<(), StoreError> {
        let u = match update(change) {
            Ok(u) => u,
            Err(key) => return self.insert(key).await,
        };
        let mut query = sqlx::query(u.sql);
        for p in u.params {
            query = match p {
                Param::Int(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
            };
        }
        let row = query
            .bind(u.key_set.to_string())
            .bind(u.kid.to_string())
            .fetch_optional(&mut *self.tx)
            .await?;
        match row {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict(format!(
                "key {} of {} {}",
                u.kid, u.key_set, u.conflict
            ))),
        }
    }

    async fn insert(&mut self, key: &KeyRecord) -> Result<(), StoreError> {
        let jwk = Value::Object(key.public_jwk.clone()).to_string();
        let result = sqlx::query(
            "INSERT INTO keys (key_set, kid, alg, hsm, hsm_id, public_jwk, origin, created_at, \
             activate_at, revoked_at, revoke_reason, destroyed_at, cka_local, always_sensitive, \
             never_extractable, certificate_required, certified_at, certificate_chain, \
             certificate_not_after, destroy_at, destroy_cancelled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21)",
        )
        .bind(&key.key_set)
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.hsm)
        .bind(&key.hsm_id)
        .bind(jwk)
        .bind(key.origin.name().to_string())
        .bind(key.created_at)
        .bind(key.activate_at)
        .bind(key.revoked_at)
        .bind(&key.revoke_reason)
        .bind(key.destroyed_at)
        .bind(key.provenance.map(|p| i64::from(p.local)))
        .bind(key.provenance.map(|p| i64::from(p.always_sensitive)))
        .bind(key.provenance.map(|p| i64::from(p.never_extractable)))
        .bind(i64::from(key.certificate_required))
        .bind(key.certified_at)
        .bind(
            key.certificate
                .as_ref()
                .map(|c| Value::from(c.x5c.clone()).to_string()),
        )
        .bind(key.certificate.as_ref().map(|c| c.not_after))
        .bind(key.destroy_at)
        .bind(key.destroy_cancelled_at)
        .execute(&mut *self.tx)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("key {} already exists in key set {}", key.kid, key.key_set),
            )),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }
}
}
