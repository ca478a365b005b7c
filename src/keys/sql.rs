//! The store's queries, written once for SQLite and PostgreSQL: [`SqlStore`] implements [`Store`]
//! over sqlx's generic [`Database`] API, in SQL that both databases accept (numbered `$n`
//! placeholders, `ON CONFLICT ... DO UPDATE`, `RETURNING`). What truly differs per database is its
//! [`Dialect`] (write transactions and their cross-process order, read snapshots) and, in
//! `sqlite.rs` and `postgres.rs`, the connection options and the migrations directory.
//!
//! Generic over `sqlx::Database` rather than `sqlx::Any`: each database keeps its own driver,
//! typed connection options (SQLite's WAL journal and busy timeout) and embedded migrations, every
//! bound value is type-checked against both drivers at compile time, and there is no process-wide
//! driver registry to install. The price is a `where` clause that names the column types the
//! queries bind and read.
//!
//! Writers: one at a time per process (an async mutex, so waiting writers queue in order and hold
//! no connection), and across processes whatever the [`Dialect`] opens; every write (`apply`,
//! `lease`, `release`) goes through [`Writer`]. Knows nothing of HTTP, PKCS#11 or JOSE.
//!
//! Over 400 lines on purpose: every query of the store stands in this one file, so that the two
//! databases share them and a reader sees each write next to the guard it relies on (the
//! one-next-key guard, the audit chain head); split, each part would repeat the long list of
//! sqlx bounds that the generic writer needs.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};
use tokio::sync::{Mutex, MutexGuard};

use super::audit::{AuditEvent, GENESIS, NewEvent};
use super::rows::{event, record};
use super::{KeyChange, KeyRecord, Lease, Store, StoreError};

mod approvals;
mod destruction;

/// What differs between the databases in how transactions are opened.
pub trait Dialect: Database<Arguments: IntoArguments<Self>> {
    /// Opens a write transaction.
    const BEGIN_WRITE: &'static str;
    /// The first statement of every write transaction, if the database needs one to order
    /// writers across processes (it must return one row).
    const LOCK_WRITERS: Option<&'static str>;
    /// Opens a read-only transaction whose reads all see one snapshot.
    const BEGIN_SNAPSHOT: &'static str;
}

/// A type the queries bind as a parameter and read from a row: `i64`, text, bytes, and their
/// nullable forms. (The `where` clauses below list these bounds once per `impl` block: Rust does
/// not carry a trait's `where` clause over to the code that uses the trait.)
pub trait ColumnType<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>
{
}

impl<DB: Database, T> ColumnType<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>
{
}

/// The store over a pool of database `DB` (see [`super::SqliteStore`] and [`super::PgStore`]).
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    writer: Arc<Mutex<()>>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store over `pool`, whose migrations have been applied.
    pub(super) fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            writer: Arc::default(),
        }
    }
}

/// The last seq and hash of the audit trail (no row, or seq 0, when it is empty).
const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// A write transaction, opened during this process's turn to write; dropped without
/// [`Writer::commit`] it rolls back, so a failed change leaves nothing behind.
struct Writer<'s, DB: Database> {
    tx: Transaction<'static, DB>,
    _turn: MutexGuard<'s, ()>,
}

impl<'s, DB> Writer<'s, DB>
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
    async fn begin(store: &'s SqlStore<DB>) -> Result<Self, StoreError> {
        let turn = store.writer.lock().await;
        let mut tx = store.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(lock) = DB::LOCK_WRITERS {
            sqlx::query(lock).fetch_one(&mut *tx).await?;
        }
        Ok(Self { tx, _turn: turn })
    }

    async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
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

    /// Applies one change; an update that touches no row is a [`StoreError::Conflict`].
    async fn change(&mut self, change: &KeyChange) -> Result<(), StoreError> {
        let (query, conflict) = match change {
            KeyChange::Insert(key) => return self.insert(key).await,
            KeyChange::ScheduleDestruction { .. } | KeyChange::CancelDestruction { .. } => {
                return self.destruction(change).await;
            }
            KeyChange::Activate { key_set, kid, at } => (
                sqlx::query(
                    "UPDATE keys SET activate_at = $1 \
                     WHERE key_set = $2 AND kid = $3 AND revoked_at IS NULL RETURNING kid",
                )
                .bind(at)
                .bind(key_set)
                .bind(kid),
                format!("key {kid} of {key_set} is unknown or revoked"),
            ),
            KeyChange::Revoke {
                key_set,
                kid,
                at,
                reason,
            } => (
                sqlx::query(
                    "UPDATE keys SET revoked_at = $1, revoke_reason = $2 \
                     WHERE key_set = $3 AND kid = $4 AND revoked_at IS NULL RETURNING kid",
                )
                .bind(at)
                .bind(reason)
                .bind(key_set)
                .bind(kid),
                format!("key {kid} of {key_set} is unknown or already revoked"),
            ),
            KeyChange::Provenance {
                key_set,
                kid,
                provenance: p,
            } => (
                sqlx::query(
                    "UPDATE keys SET cka_local = $1, always_sensitive = $2, \
                     never_extractable = $3 WHERE key_set = $4 AND kid = $5 RETURNING kid",
                )
                .bind(i64::from(p.local))
                .bind(i64::from(p.always_sensitive))
                .bind(i64::from(p.never_extractable))
                .bind(key_set)
                .bind(kid),
                format!("key {kid} of {key_set} is unknown"),
            ),
            KeyChange::Certify {
                key_set,
                kid,
                x5c,
                not_after,
                at,
            } => (
                sqlx::query(
                    "UPDATE keys SET certificate_chain = $1, certificate_not_after = $2, \
                     certified_at = COALESCE(certified_at, $3) WHERE key_set = $4 AND kid = $5 \
                     AND revoked_at IS NULL AND destroyed_at IS NULL RETURNING kid",
                )
                .bind(Value::from(x5c.clone()).to_string())
                .bind(not_after)
                .bind(at)
                .bind(key_set)
                .bind(kid),
                format!("key {kid} of {key_set} is unknown, revoked or destroyed"),
            ),
            KeyChange::NotRevoked { key_set, kid } => (
                sqlx::query(
                    "SELECT kid FROM keys WHERE key_set = $1 AND kid = $2 AND revoked_at IS NULL",
                )
                .bind(key_set)
                .bind(kid),
                format!("key {kid} of {key_set} was revoked"),
            ),
            KeyChange::Destroyed { key_set, kid, at } => (
                sqlx::query(
                    "UPDATE keys SET destroyed_at = $1 \
                     WHERE key_set = $2 AND kid = $3 AND destroyed_at IS NULL RETURNING kid",
                )
                .bind(at)
                .bind(key_set)
                .bind(kid),
                format!("key {kid} of {key_set} is unknown or already destroyed"),
            ),
        };
        match query.fetch_optional(&mut *self.tx).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict(conflict)),
        }
    }

    /// The one-next-key guard (see [`KeyChange::Insert`]), checked once every change is applied.
    async fn guard_next(&mut self, key: &KeyRecord) -> Result<(), StoreError> {
        let other = sqlx::query(
            "SELECT kid FROM keys WHERE key_set = $1 AND kid <> $2 AND revoked_at IS NULL \
             AND destroyed_at IS NULL AND activate_at > $3 LIMIT 1",
        )
        .bind(&key.key_set)
        .bind(&key.kid)
        .bind(key.created_at)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(other) = other else {
            return Ok(());
        };
        let other: String = other.try_get("kid")?;
        Err(StoreError::Conflict(format!(
            "key set {} already has a next key ({other}) activating after {}; key {} was not added",
            key.key_set, key.created_at, key.kid
        )))
    }

    /// Appends `events` to the chain after the current head, and moves the head.
    async fn append(&mut self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let (mut seq, mut prev) = match sqlx::query(HEAD).fetch_optional(&mut *self.tx).await? {
            Some(row) => (row.try_get("seq")?, row.try_get("hash")?),
            None => (0, GENESIS.to_string()),
        };
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
            .execute(&mut *self.tx)
            .await?;
            (seq, prev) = (e.seq, e.hash);
        }
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(seq)
        .bind(prev)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
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
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM keys")
            .fetch_all(&self.pool)
            .await?;
        let mut keys = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        // Byte order (as Rust compares strings), whatever the database's collation.
        keys.sort_by(|a, b| {
            (&a.key_set, a.activate_at, &a.kid).cmp(&(&b.key_set, b.activate_at, &b.kid))
        });
        Ok(keys)
    }

    async fn apply(&self, changes: &[KeyChange], events: &[NewEvent]) -> Result<(), StoreError> {
        let mut w = Writer::begin(self).await?;
        for c in changes {
            w.change(c).await?;
        }
        for c in changes {
            if let KeyChange::Insert(key) = c {
                w.guard_next(key).await?;
            }
        }
        w.append(events).await?;
        w.commit().await
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
        .bind(key_set.to_string())
        .bind(action.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event).transpose()
    }

    async fn audit_all(&self) -> Result<(Vec<AuditEvent>, Option<(i64, String)>), StoreError> {
        // One snapshot for the rows and the head.
        let mut tx = self.pool.begin_with(DB::BEGIN_SNAPSHOT).await?;
        let rows = sqlx::query("SELECT * FROM audit ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        let head = match sqlx::query(HEAD).fetch_optional(&mut *tx).await? {
            Some(row) => Some((row.try_get("seq")?, row.try_get("hash")?)),
            None => None,
        };
        tx.commit().await?;
        let events = rows.iter().map(event).collect::<Result<_, _>>()?;
        // Seq 0 (PostgreSQL's head row before the first event) is an empty trail, as no row is.
        Ok((events, head.filter(|(seq, _)| *seq > 0)))
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_s: i64,
    ) -> Result<Lease, StoreError> {
        let mut w = Writer::begin(self).await?;
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 \
             RETURNING holder, expires_at",
        )
        .bind(name.to_string())
        .bind(holder.to_string())
        .bind(now.saturating_add(ttl_s))
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?;
        let row = match taken {
            Some(row) => row,
            None => {
                sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
                    .bind(name.to_string())
                    .fetch_one(&mut *w.tx)
                    .await?
            }
        };
        let lease = Lease {
            holder: row.try_get("holder")?,
            expires_at: row.try_get("expires_at")?,
        };
        w.commit().await?;
        Ok(lease)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut w = Writer::begin(self).await?;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name.to_string())
            .bind(holder.to_string())
            .execute(&mut *w.tx)
            .await?;
        w.commit().await
    }
}
