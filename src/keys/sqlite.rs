//! The embedded SQLite store (single node), with migrations compiled in.

use std::str::FromStr;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};

use super::{KeyRecord, Origin, Store, StoreError};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
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
        Ok(Self { pool })
    }
}

fn record(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let kid: String = row.try_get("kid")?;
    let jwk: String = row.try_get("public_jwk")?;
    let public_jwk: Map<String, Value> = serde_json::from_str(&jwk)
        .map_err(|e| StoreError::Corrupt(format!("key {kid}: public_jwk: {e}")))?;
    let origin: String = row.try_get("origin")?;
    Ok(KeyRecord {
        key_set: row.try_get("key_set")?,
        alg: row.try_get("alg")?,
        hsm: row.try_get("hsm")?,
        hsm_id: row.try_get("hsm_id")?,
        public_jwk,
        origin: Origin::from_name(&origin)
            .ok_or_else(|| StoreError::Corrupt(format!("key {kid}: origin `{origin}`")))?,
        created_at: row.try_get("created_at")?,
        activate_at: row.try_get("activate_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoke_reason: row.try_get("revoke_reason")?,
        destroyed_at: row.try_get("destroyed_at")?,
        kid,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM keys ORDER BY key_set, activate_at, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }

    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let jwk = Value::Object(key.public_jwk.clone()).to_string();
        let result = sqlx::query(
            "INSERT INTO keys (key_set, kid, alg, hsm, hsm_id, public_jwk, origin, created_at, \
             activate_at, revoked_at, revoke_reason, destroyed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("key {} already exists in key set {}", key.kid, key.key_set),
            )),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_round_trip_and_duplicates_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/signet.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.ping().await.unwrap();
        let mut k = KeyRecord::for_test("kid-1", 42);
        k.public_jwk
            .insert("kty".into(), Value::String("EC".into()));
        k.revoked_at = Some(50);
        store.insert_key(&k).await.unwrap();
        assert_eq!(store.keys().await.unwrap(), vec![k.clone()]);
        assert!(matches!(
            store.insert_key(&k).await,
            Err(StoreError::Conflict(_))
        ));
        // Re-opening runs the migrations again without harm and keeps the rows.
        let again = SqliteStore::open(&url).await.unwrap();
        assert_eq!(again.keys().await.unwrap().len(), 1);
    }
}
