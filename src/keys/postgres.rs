//! The PostgreSQL store: the same schema as SQLite (migrations compiled in), shared by several
//! Signet replicas.
//!
//! Every write transaction first locks the single `audit_head` row (`SELECT ... FOR UPDATE`), so
//! writers on all replicas apply one after the other: the audit trail stays one gap-free chain, and
//! the checks made inside a transaction (the one-next-key guard, "not already revoked") see every
//! change committed before it. Writes are rare (key changes, optional per-signature records), so
//! one lock is simpler than finer ones and cannot deadlock.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::audit::{AuditEvent, NewEvent};
use super::store::next_key_conflict;
use super::{KeyChange, KeyRecord, Lease, Store, StoreError};

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) and applies the embedded migrations (sqlx
    /// holds an advisory lock while migrating, so replicas may start together).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

use super::rows::{event, record};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

async fn insert(tx: &mut Tx<'_>, key: &KeyRecord) -> Result<(), StoreError> {
    let jwk = Value::Object(key.public_jwk.clone()).to_string();
    let result = sqlx::query(
        "INSERT INTO keys (key_set, kid, alg, hsm, hsm_id, public_jwk, origin, created_at, \
         activate_at, revoked_at, revoke_reason, destroyed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&key.key_set)
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.hsm)
    .bind(&key.hsm_id)
    .bind(jwk)
    .bind(key.origin.name())
    .bind(key.created_at)
    .bind(key.activate_at)
    .bind(key.revoked_at)
    .bind(&key.revoke_reason)
    .bind(key.destroyed_at)
    .execute(&mut **tx)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("key {} already exists in key set {}", key.kid, key.key_set),
        )),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Runs an UPDATE that must touch exactly one row.
async fn update_one(
    tx: &mut Tx<'_>,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    what: String,
) -> Result<(), StoreError> {
    let done = query.execute(&mut **tx).await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(what))
    }
}

async fn change(tx: &mut Tx<'_>, c: &KeyChange) -> Result<(), StoreError> {
    match c {
        KeyChange::Insert(k) => insert(tx, k).await,
        KeyChange::Activate { key_set, kid, at } => {
            let q = sqlx::query(
                "UPDATE keys SET activate_at = $1 \
                 WHERE key_set = $2 AND kid = $3 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(key_set)
            .bind(kid);
            update_one(
                tx,
                q,
                format!("key {kid} of {key_set} is unknown or revoked"),
            )
            .await
        }
        KeyChange::Revoke {
            key_set,
            kid,
            at,
            reason,
        } => {
            let q = sqlx::query(
                "UPDATE keys SET revoked_at = $1, revoke_reason = $2 \
                 WHERE key_set = $3 AND kid = $4 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(reason)
            .bind(key_set)
            .bind(kid);
            update_one(
                tx,
                q,
                format!("key {kid} of {key_set} is unknown or already revoked"),
            )
            .await
        }
        KeyChange::Destroyed { key_set, kid, at } => {
            let q = sqlx::query(
                "UPDATE keys SET destroyed_at = $1 \
                 WHERE key_set = $2 AND kid = $3 AND destroyed_at IS NULL",
            )
            .bind(at)
            .bind(key_set)
            .bind(kid);
            update_one(
                tx,
                q,
                format!("key {kid} of {key_set} is unknown or already destroyed"),
            )
            .await
        }
    }
}

/// The one-next-key guard, checked once every change of the transaction is applied.
async fn guard_next(tx: &mut Tx<'_>, key: &KeyRecord) -> Result<(), StoreError> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT kid FROM keys WHERE key_set = $1 AND kid <> $2 AND revoked_at IS NULL \
         AND destroyed_at IS NULL AND activate_at > $3 LIMIT 1",
    )
    .bind(&key.key_set)
    .bind(&key.kid)
    .bind(key.created_at)
    .fetch_optional(&mut **tx)
    .await?;
    match other {
        Some(other) => Err(next_key_conflict(key, &other)),
        None => Ok(()),
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        // Byte order, as in SQLite, whatever the database's collation.
        let rows = sqlx::query(
            "SELECT * FROM keys ORDER BY key_set COLLATE \"C\", activate_at, kid COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn apply(&self, changes: &[KeyChange], events: &[NewEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // First statement of every write: the lock that orders writers across replicas. Under READ
        // COMMITTED every later statement sees what the previous holder committed.
        let (mut seq, mut prev): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        for c in changes {
            change(&mut tx, c).await?;
        }
        for c in changes {
            if let KeyChange::Insert(k) = c {
                guard_next(&mut tx, k).await?;
            }
        }
        for ev in events {
            let e = AuditEvent::seal(ev, seq + 1, &prev);
            sqlx::query(
                "INSERT INTO audit (seq, at, actor, action, key_set, kid, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(e.seq)
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.key_set)
            .bind(&e.kid)
            .bind(&e.detail)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .execute(&mut *tx)
            .await?;
            (seq, prev) = (e.seq, e.hash);
        }
        if !events.is_empty() {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(&prev)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event).collect()
    }

    async fn last_event(
        &self,
        key_set: &str,
        action: &str,
    ) -> Result<Option<AuditEvent>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM audit WHERE key_set = $1 AND action = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(key_set)
        .bind(action)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event).transpose()
    }

    async fn audit_all(&self) -> Result<(Vec<AuditEvent>, Option<(i64, String)>), StoreError> {
        // One snapshot for the rows and the head.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query("SELECT * FROM audit ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        // Seq 0 is the migration's empty-trail head, as a missing head row is in SQLite.
        let head = head.filter(|(seq, _)| *seq > 0);
        Ok((rows.iter().map(event).collect::<Result<_, _>>()?, head))
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_s: i64,
    ) -> Result<Lease, StoreError> {
        let taken: Option<(String, i64)> = sqlx::query_as(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 \
             RETURNING holder, expires_at",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_s)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let (holder, expires_at) = match taken {
            Some(t) => t,
            None => {
                sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(Lease { holder, expires_at })
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
