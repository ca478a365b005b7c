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
//! The key-row changes are in `sql/changes.rs` (and `sql/destruction.rs`), the approvals in
//! `sql/approvals.rs`; every generic `impl` block is written through `over_db!`, which lists the
//! sqlx bounds once.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, IntoArguments, Pool, Row, Transaction, Type};
use tokio::sync::{Mutex, MutexGuard};

use super::audit::{AuditEvent, GENESIS, NewEvent};
use super::rows::{event, record};
use super::{KeyChange, KeyRecord, Lease, Store, StoreError};

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

/// Writes an `impl` block generic over the database `DB` with the bounds its queries need,
/// listed here once (Rust does not carry a trait's `where` clause over to the code that uses it):
/// `over_db! { impl<DB> Trait for Type<DB> { .. } }` or `over_db! { impl<'a, DB> Type<'a, DB> { .. } }`.
macro_rules! over_db {
    ($(#[$attr:meta])* impl<$($lt:lifetime,)? DB> $tr:ident for $ty:ty { $($body:tt)* }) => {
        over_db!(@bounds [$(#[$attr])*] [$($lt,)?] [$tr for $ty] [$($body)*]);
    };
    ($(#[$attr:meta])* impl<$($lt:lifetime,)? DB> $ty:ty { $($body:tt)* }) => {
        over_db!(@bounds [$(#[$attr])*] [$($lt,)?] [$ty] [$($body)*]);
    };
    (@bounds [$($attr:tt)*] [$($lt:tt)*] [$($head:tt)*] [$($body:tt)*]) => {
        $($attr)*
        impl<$($lt)* DB> $($head)*
        where
            DB: $crate::keys::sql::Dialect,
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
            for<'n> &'n str: sqlx::ColumnIndex<DB::Row>,
            i64: $crate::keys::sql::ColumnType<DB>,
            String: $crate::keys::sql::ColumnType<DB>,
            Vec<u8>: $crate::keys::sql::ColumnType<DB>,
            Option<i64>: $crate::keys::sql::ColumnType<DB>,
            Option<String>: $crate::keys::sql::ColumnType<DB>,
        {
            $($body)*
        }
    };
}

mod approvals;
mod changes;
mod destruction;

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

over_db! {
impl<'s, DB> Writer<'s, DB> {
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
}

over_db! {
#[async_trait]
impl<DB> Store for SqlStore<DB> {
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
}
