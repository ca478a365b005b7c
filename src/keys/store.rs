//! The metadata store seam. Callers hold an `Arc<dyn Store>`; which database sits behind it is
//! decided once, from `[store] url`, by [`open_store`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{KeyRecord, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unreachable or failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in the store: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported store url `{0}`")]
    Unsupported(String),
}

/// Persistence of key records.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Every key of every key set (keys are few; the whole view is reloaded at once).
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Adds a key; a kid already in the key set is a [`StoreError::Conflict`].
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
}

/// Opens (creating if needed) and migrates the store named by `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "{url}: only sqlite:// is supported by this version"
        )))
    }
}
