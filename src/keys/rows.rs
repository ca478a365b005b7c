//! Row mapping for the store: one place that turns a `keys` or `audit` row into its record,
//! whatever the database.

use serde_json::{Map, Value};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::audit::AuditEvent;
use super::{KeyCertificate, KeyRecord, Origin, Provenance, StoreError};

/// `T` can be read from a column of `R`'s database.
pub(super) trait Column<'r, R: Row>: Decode<'r, R::Database> + Type<R::Database> {}
impl<'r, R: Row, T: Decode<'r, R::Database> + Type<R::Database>> Column<'r, R> for T {}

pub(super) fn record<'r, R>(row: &'r R) -> Result<KeyRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Column<'r, R>,
    Vec<u8>: Column<'r, R>,
    i64: Column<'r, R>,
    Option<i64>: Column<'r, R>,
    Option<String>: Column<'r, R>,
{
    let kid: String = row.try_get("kid")?;
    let jwk: String = row.try_get("public_jwk")?;
    let public_jwk: Map<String, Value> = serde_json::from_str(&jwk)
        .map_err(|e| StoreError::Corrupt(format!("key {kid}: public_jwk: {e}")))?;
    let origin: String = row.try_get("origin")?;
    let flags: [Option<i64>; 3] = [
        row.try_get("cka_local")?,
        row.try_get("always_sensitive")?,
        row.try_get("never_extractable")?,
    ];
    let provenance = match flags {
        [Some(l), Some(s), Some(n)] => Some(Provenance {
            local: l != 0,
            always_sensitive: s != 0,
            never_extractable: n != 0,
        }),
        [None, None, None] => None,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "key {kid}: provenance partly recorded"
            )));
        }
    };
    let chain: Option<String> = row.try_get("certificate_chain")?;
    let not_after: Option<i64> = row.try_get("certificate_not_after")?;
    let certificate = match (chain, not_after) {
        (Some(chain), Some(not_after)) => Some(KeyCertificate {
            x5c: serde_json::from_str(&chain)
                .map_err(|e| StoreError::Corrupt(format!("key {kid}: certificate_chain: {e}")))?,
            not_after,
        }),
        _ => None,
    };
    let required: i64 = row.try_get("certificate_required")?;
    Ok(KeyRecord {
        key_set: row.try_get("key_set")?,
        alg: row.try_get("alg")?,
        hsm: row.try_get("hsm")?,
        hsm_id: row.try_get("hsm_id")?,
        public_jwk,
        origin: Origin::from_name(&origin)
            .ok_or_else(|| StoreError::Corrupt(format!("key {kid}: origin `{origin}`")))?,
        created_at: row.try_get("created_at")?,
        activate_at: row.try_get("activate_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoke_reason: row.try_get("revoke_reason")?,
        destroyed_at: row.try_get("destroyed_at")?,
        destroy_at: row.try_get("destroy_at")?,
        destroy_cancelled_at: row.try_get("destroy_cancelled_at")?,
        provenance,
        certificate_required: required != 0,
        certified_at: row.try_get("certified_at")?,
        certificate,
        kid,
    })
}

pub(super) fn event<'r, R>(row: &'r R) -> Result<AuditEvent, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Column<'r, R>,
    i64: Column<'r, R>,
    Option<String>: Column<'r, R>,
{
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        key_set: row.try_get("key_set")?,
        kid: row.try_get("kid")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
