//! PostgreSQL, shared by several Signet replicas: the connection options, the migrations embedded
//! from `migrations/postgres` (same tables and columns as SQLite), and how a write transaction is
//! opened. The queries are in `keys::sql`.
//!
//! Every write transaction (`apply`, `lease`, `release`) first locks the single `audit_head` row
//! (`SELECT ... FOR UPDATE`; the migration creates it with seq 0), so writers on all replicas
//! commit one after the other: the audit trail stays one gap-free chain, and the checks made
//! inside a transaction (the one-next-key guard, "not already revoked", the lease holder) see
//! every change committed before it. Writes are rare (key changes, lease renewals, optional
//! per-signature records), so one lock is simpler than finer ones and cannot deadlock.

use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

use super::StoreError;
use super::sql::{Dialect, SqlStore};

/// The PostgreSQL store.
pub type PgStore = SqlStore<Postgres>;

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Under READ COMMITTED every later statement of the transaction sees what the previous
    /// holder of this lock committed.
    const LOCK_WRITERS: Option<&'static str> =
        Some("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE");
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user@host/db`) and applies the embedded migrations (sqlx
    /// holds an advisory lock while migrating, so replicas may start together).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self::new(pool))
    }
}
