//! What a held forced rotation's requester saw of the key set (`service::approvals`): the
//! rotation is carried out only if the key set is still so, else 409 `approval_stale`.

use serde_json::Value;

use super::{ApprovalRefusal, ServiceError};
use crate::keys::{KeyRecord, lifecycle};

/// The key set's active and next keys (and when the next activates) when a forced rotation was
/// requested: what its approver approves. The rotation is carried out only if they are still so (a next key generated since,
/// where there was none, is no change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeenKeys {
    pub(super) active: Option<String>,
    pub(super) next: Option<String>,
    /// When the next key activates (a rotation already scheduled moves it).
    pub(super) next_at: Option<i64>,
}

impl SeenKeys {
    pub(super) fn of(records: &[KeyRecord], now: i64) -> Self {
        Self {
            active: lifecycle::active(records, now).map(|k| k.kid.clone()),
            next: lifecycle::next(records, now).map(|k| k.kid.clone()),
            next_at: lifecycle::next(records, now).map(|k| k.activate_at),
        }
    }

    /// Refuses (`approval_stale`) when the key set's keys at `now` are not the ones seen.
    pub(super) fn still(
        &self,
        id: &str,
        records: &[KeyRecord],
        now: i64,
    ) -> Result<(), ServiceError> {
        let now_keys = Self::of(records, now);
        let shown = |k: &Option<String>| k.clone().unwrap_or_else(|| "none".into());
        let reason = if now_keys.active != self.active {
            format!(
                "the active key is now {}, not {} as when it was requested",
                shown(&now_keys.active),
                shown(&self.active)
            )
        } else if self.next.is_some()
            && (now_keys.next != self.next
                || (self.next_at.is_some() && now_keys.next_at != self.next_at))
        {
            let at = |k: &Option<i64>| k.map_or("-".into(), |t| t.to_string());
            format!(
                "the next key is now {} activating at {}, not {} at {} as when it was requested",
                shown(&now_keys.next),
                at(&now_keys.next_at),
                shown(&self.next),
                at(&self.next_at)
            )
        } else {
            return Ok(());
        };
        Err(ApprovalRefusal::Stale {
            id: id.into(),
            reason,
        }
        .into())
    }
}

/// The keys a held forced rotation's request recorded (none in one held before they were).
pub(super) fn held_keys(request: &str) -> Option<SeenKeys> {
    let req: Value = serde_json::from_str(request).ok()?;
    let text = |k: &str| req[k].as_str().map(str::to_string);
    req.get("active").map(|_| SeenKeys {
        active: text("active"),
        next: text("next"),
        next_at: req["next_activate_at"].as_i64(),
    })
}
