//! The store suite's fixtures: the database a test runs against (SQLite in a temporary directory,
//! or a database of its own on the shared throwaway PostgreSQL server), and short ways to write
//! key records, changes and events.

use std::sync::Arc;

use signet::keys::{
    KeyChange, KeyRecord, NewEvent, Origin, Provenance, Store, StoreError, open_store,
};

use super::postgres::Postgres;

/// The database a test runs against.
pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, _server: Arc<Postgres> },
}

impl Db {
    pub fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    pub fn postgres(name: &str) -> Db {
        let server = Postgres::shared();
        Db::Postgres {
            url: server.database(name),
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(dir) => format!("sqlite://{}/signet.db", dir.path().display()),
            Db::Postgres { url, .. } => url.clone(),
        }
    }

    /// Opens (and migrates) a store on this database, as the service does from `[store] url`.
    pub async fn open(&self) -> Arc<dyn Store> {
        open_store(&self.url()).await.expect("open the store")
    }
}

/// A generated ES256 key, neither revoked nor destroyed.
pub fn key(key_set: &str, kid: &str, created_at: i64, activate_at: i64) -> KeyRecord {
    KeyRecord {
        alg: "ES256".into(),
        hsm: "primary".into(),
        hsm_id: kid.as_bytes().to_vec(),
        activate_at,
        provenance: Some(Provenance {
            local: true,
            always_sensitive: true,
            never_extractable: true,
        }),
        ..KeyRecord::new(key_set, kid, Origin::Generated, created_at)
    }
}

pub fn insert(k: &KeyRecord) -> KeyChange {
    KeyChange::Insert(k.clone())
}

/// Adds one key, with no audit event.
pub async fn add(store: &Arc<dyn Store>, k: KeyRecord) -> Result<(), StoreError> {
    store.apply(&[KeyChange::Insert(k)], &[]).await
}

pub fn activate(key_set: &str, kid: &str, at: i64) -> KeyChange {
    KeyChange::Activate {
        key_set: key_set.into(),
        kid: kid.into(),
        at,
    }
}

pub fn destroyed(key_set: &str, kid: &str, at: i64) -> KeyChange {
    KeyChange::Destroyed {
        key_set: key_set.into(),
        kid: kid.into(),
        at,
    }
}

pub fn revoke(key_set: &str, kid: &str, at: i64) -> KeyChange {
    KeyChange::Revoke {
        key_set: key_set.into(),
        kid: kid.into(),
        at,
        reason: "test".into(),
    }
}

pub fn event(at: i64, action: &str, key_set: &str, kid: &str) -> NewEvent {
    NewEvent::new(at, "test", action).key(key_set, kid)
}

#[track_caller]
pub fn assert_conflict(result: Result<(), StoreError>, says: &str) {
    match result {
        Err(StoreError::Conflict(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("expected a conflict saying `{says}`, got {other:?}"),
    }
}
