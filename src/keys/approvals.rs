//! Pending approvals of the two-person rule as plain data, and the store's part for them.

use async_trait::async_trait;

use super::StoreError;
use super::audit::NewEvent;

/// One held admin request. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    /// `destroy`, `import` or `rotate` (a forced rotation).
    pub action: String,
    pub key_set: String,
    pub kid: Option<String>,
    /// The request to carry out once approved (JSON).
    pub request: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub expires_at: i64,
    /// `pending`, `approved`, `rejected` or `expired` (recorded by the scheduler).
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
}

impl Approval {
    /// The status shown at `now`: a pending approval past its time is `expired`.
    pub fn status_at(&self, now: i64) -> &str {
        if self.status == "pending" && now >= self.expires_at {
            "expired"
        } else {
            &self.status
        }
    }
}

/// Persistence of approvals (part of every [`super::Store`]).
#[async_trait]
pub trait ApprovalStore {
    /// Stores a new pending approval and appends `event`, in one transaction.
    async fn add_approval(&self, approval: &Approval, event: &NewEvent) -> Result<(), StoreError>;
    /// The approval `id`, whatever its status.
    async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError>;
    /// Approvals still pending and not expired at `now`, oldest first.
    async fn pending_approvals(&self, now: i64) -> Result<Vec<Approval>, StoreError>;
    /// Approvals still `pending` whose time ran out at or before `now`, oldest first.
    async fn lapsed_approvals(&self, now: i64) -> Result<Vec<Approval>, StoreError>;
    /// Marks the lapsed approval `id` `expired` at `at` and appends `event`, in one
    /// transaction; one no longer pending (or not yet lapsed) is a [`StoreError::Conflict`].
    async fn expire_approval(&self, id: &str, at: i64, event: &NewEvent) -> Result<(), StoreError>;
    /// Decides the approval `id` (`status` `approved` or `rejected`) by `by` at `at`, and
    /// appends `event`, in one transaction; an approval not pending, or expired at `at`, is a
    /// [`StoreError::Conflict`] (two admins deciding at once: one wins).
    async fn decide_approval(
        &self,
        id: &str,
        status: &str,
        by: &str,
        at: i64,
        event: &NewEvent,
    ) -> Result<(), StoreError>;
}
