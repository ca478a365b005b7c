//! The store's queries for delayed destruction: scheduling and cancelling it. (The destruction
//! itself is [`KeyChange::Destroyed`], in the parent module.)

use sqlx::{ColumnIndex, Executor};

use super::{ColumnType, Dialect, Writer};
use crate::keys::{KeyChange, StoreError};

impl<DB> Writer<'_, DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
    i64: ColumnType<DB>,
    String: ColumnType<DB>,
    Vec<u8>: ColumnType<DB>,
    Option<i64>: ColumnType<DB>,
    Option<String>: ColumnType<DB>,
{
    /// Applies a [`KeyChange::ScheduleDestruction`] or [`KeyChange::CancelDestruction`]; a key
    /// destroyed already, or not in the state the change expects, is a [`StoreError::Conflict`].
    pub(super) async fn destruction(&mut self, change: &KeyChange) -> Result<(), StoreError> {
        let (query, key_set, kid, at, conflict) = match change {
            KeyChange::ScheduleDestruction { key_set, kid, at } => (
                "UPDATE keys SET destroy_at = $1 WHERE key_set = $2 AND kid = $3 \
                 AND destroyed_at IS NULL AND destroy_at IS NULL RETURNING kid",
                key_set,
                kid,
                at,
                "unknown, destroyed, or its destruction is pending already",
            ),
            KeyChange::CancelDestruction { key_set, kid, at } => (
                "UPDATE keys SET destroy_at = NULL, destroy_cancelled_at = $1 WHERE key_set = $2 \
                 AND kid = $3 AND destroyed_at IS NULL AND destroy_at IS NOT NULL RETURNING kid",
                key_set,
                kid,
                at,
                "unknown, destroyed, or without a pending destruction",
            ),
            _ => return Err(StoreError::Conflict("not a destruction schedule".into())),
        };
        let row = sqlx::query(query)
            .bind(*at)
            .bind(key_set.clone())
            .bind(kid.clone())
            .fetch_optional(&mut *self.tx)
            .await?;
        match row {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict(format!(
                "key {kid} of {key_set} is {conflict}"
            ))),
        }
    }
}
