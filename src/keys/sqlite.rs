//! SQLite, for one node: the connection options, the migrations embedded from
//! `migrations/sqlite`, and how a write transaction is opened. The queries are in `keys::sql`.

use std::str::FromStr;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::StoreError;
use super::sql::{Dialect, SqlStore};

/// The embedded SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

impl Dialect for Sqlite {
    /// Takes SQLite's write lock at once: another process cannot write between this transaction's
    /// reads (audit head, "not already revoked", the one-next-key guard) and its commit.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_WRITERS: Option<&'static str> = None;
    /// In WAL mode a read transaction sees one snapshot from its first read on.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN";
}

impl SqlStore<Sqlite> {
    /// Opens `url` (`sqlite://path`), creating the file and its directory if missing, and applies
    /// the embedded migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unsupported(format!("{url}: cannot create {}: {e}", dir.display()))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self::new(pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Store;

    /// What only SQLite does: create the database file's directory, and journal in WAL mode (the
    /// queries and transactions are tested on both databases in `tests/store.rs`).
    #[tokio::test]
    async fn open_creates_the_directory_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/dir/signet.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.ping().await.unwrap();
        assert!(dir.path().join("sub/dir/signet.db").exists());
        assert!(dir.path().join("sub/dir/signet.db-wal").exists());
    }
}
