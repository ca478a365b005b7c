//! The store's queries for destruction: scheduling it, cancelling it, and recording that the
//! key's private object was destroyed (applied by the writer in `changes.rs`).

use super::changes::{Param, Update};

/// [`crate::keys::KeyChange::ScheduleDestruction`]: a key destroyed already, or with a
/// destruction pending, is a conflict.
pub(super) fn schedule<'c>(key_set: &'c str, kid: &'c str, at: i64) -> Update<'c> {
    Update::new(
        "UPDATE keys SET destroy_at = $1 WHERE key_set = $2 AND kid = $3 \
         AND destroyed_at IS NULL AND destroy_at IS NULL RETURNING kid",
        vec![Param::Int(at)],
        (key_set, kid),
        "is unknown, destroyed, or its destruction is pending already",
    )
}

/// [`crate::keys::KeyChange::CancelDestruction`] (recorded at `at`): a key destroyed, or with
/// none pending, is a conflict.
pub(super) fn cancel<'c>(key_set: &'c str, kid: &'c str, at: i64) -> Update<'c> {
    Update::new(
        "UPDATE keys SET destroy_at = NULL, destroy_cancelled_at = $1 WHERE key_set = $2 \
         AND kid = $3 AND destroyed_at IS NULL AND destroy_at IS NOT NULL RETURNING kid",
        vec![Param::Int(at)],
        (key_set, kid),
        "is unknown, destroyed, or without a pending destruction",
    )
}

/// [`crate::keys::KeyChange::Destroyed`]: a key destroyed already is a conflict.
pub(super) fn destroyed<'c>(key_set: &'c str, kid: &'c str, at: i64) -> Update<'c> {
    Update::new(
        "UPDATE keys SET destroyed_at = $1 \
         WHERE key_set = $2 AND kid = $3 AND destroyed_at IS NULL RETURNING kid",
        vec![Param::Int(at)],
        (key_set, kid),
        "is unknown or already destroyed",
    )
}
