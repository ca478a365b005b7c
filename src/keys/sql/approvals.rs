//! The store's queries for the two-person rule's approvals (table `approvals`, migration 0008).
//! A decision is one conditional update (`status = 'pending'` and not expired), so that of two
//! admins deciding at once, on any replicas, exactly one wins.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Row};

use super::{ColumnType, SqlStore, Writer};
use crate::keys::approvals::{Approval, ApprovalStore};
use crate::keys::{NewEvent, StoreError};

fn approval<R>(row: &R) -> Result<Approval, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    String: ColumnType<R::Database>,
    i64: ColumnType<R::Database>,
    Option<String>: ColumnType<R::Database>,
    Option<i64>: ColumnType<R::Database>,
{
    Ok(Approval {
        id: row.try_get("id")?,
        action: row.try_get("action")?,
        key_set: row.try_get("key_set")?,
        kid: row.try_get("kid")?,
        request: row.try_get("request")?,
        requested_by: row.try_get("requested_by")?,
        requested_at: row.try_get("requested_at")?,
        expires_at: row.try_get("expires_at")?,
        status: row.try_get("status")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
    })
}

over_db! {
#[async_trait]
impl<DB> ApprovalStore for SqlStore<DB> {
    async fn add_approval(&self, a: &Approval, event: &NewEvent) -> Result<(), StoreError> {
        let mut w = Writer::begin(self).await?;
        sqlx::query(
            "INSERT INTO approvals (id, action, key_set, kid, request, requested_by, \
             requested_at, expires_at, status, decided_by, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(a.id.clone())
        .bind(a.action.clone())
        .bind(a.key_set.clone())
        .bind(a.kid.clone())
        .bind(a.request.clone())
        .bind(a.requested_by.clone())
        .bind(a.requested_at)
        .bind(a.expires_at)
        .bind(a.status.clone())
        .bind(a.decided_by.clone())
        .bind(a.decided_at)
        .execute(&mut *w.tx)
        .await?;
        w.append(std::slice::from_ref(event)).await?;
        w.commit().await
    }

    async fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query("SELECT * FROM approvals WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(approval).transpose()
    }

    async fn pending_approvals(&self, now: i64) -> Result<Vec<Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE status = 'pending' AND expires_at > $1 \
             ORDER BY requested_at, id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval).collect()
    }

    async fn lapsed_approvals(&self, now: i64) -> Result<Vec<Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at, id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval).collect()
    }

    async fn expire_approval(
        &self,
        id: &str,
        at: i64,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let mut w = Writer::begin(self).await?;
        let row = sqlx::query(
            "UPDATE approvals SET status = 'expired', decided_at = $1 \
             WHERE id = $2 AND status = 'pending' AND expires_at <= $1 RETURNING id",
        )
        .bind(at)
        .bind(id.to_string())
        .fetch_optional(&mut *w.tx)
        .await?;
        w.decided(row.is_some(), event, || format!("approval {id} is not a lapsed pending one"))
            .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        status: &str,
        by: &str,
        at: i64,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let mut w = Writer::begin(self).await?;
        let row = sqlx::query(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3 \
             WHERE id = $4 AND status = 'pending' AND expires_at > $3 RETURNING id",
        )
        .bind(status.to_string())
        .bind(by.to_string())
        .bind(at)
        .bind(id.to_string())
        .fetch_optional(&mut *w.tx)
        .await?;
        w.decided(row.is_some(), event, || format!("approval {id} is no longer pending"))
            .await
    }
}
}

over_db! {
impl<'s, DB> Writer<'s, DB> {
    /// Ends a conditional update of an approval: if it matched (`updated`), `event` is appended
    /// and all committed; else nothing is written and the conflict is `why`.
    async fn decided(
        mut self,
        updated: bool,
        event: &NewEvent,
        why: impl FnOnce() -> String + Send,
    ) -> Result<(), StoreError> {
        if !updated {
            return Err(StoreError::Conflict(why()));
        }
        self.append(std::slice::from_ref(event)).await?;
        self.commit().await
    }
}
}
