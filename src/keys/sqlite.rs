//! The embedded SQLite store (single node), with migrations compiled in.

use std::str::FromStr;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::audit::{AuditEvent, GENESIS, NewEvent};
use super::store::next_key_conflict;
use super::{KeyChange, KeyRecord, Lease, Store, StoreError};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
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
        Ok(Self {
            pool,
            writer: Default::default(),
        })
    }
}

use super::rows::{event, record};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

async fn insert(tx: &mut Tx<'_>, key: &KeyRecord) -> Result<(), StoreError> {
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
    query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
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
                "UPDATE keys SET activate_at = ? WHERE key_set = ? AND kid = ? AND revoked_at IS NULL",
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
                "UPDATE keys SET revoked_at = ?, revoke_reason = ? \
                 WHERE key_set = ? AND kid = ? AND revoked_at IS NULL",
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
                "UPDATE keys SET destroyed_at = ? \
                 WHERE key_set = ? AND kid = ? AND destroyed_at IS NULL",
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

/// The one-next-key guard (see [`KeyChange::Insert`]), checked once every change is applied.
async fn guard_next(tx: &mut Tx<'_>, key: &KeyRecord) -> Result<(), StoreError> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT kid FROM keys WHERE key_set = ? AND kid <> ? AND revoked_at IS NULL \
         AND destroyed_at IS NULL AND activate_at > ? LIMIT 1",
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

async fn append(tx: &mut Tx<'_>, ev: &NewEvent) -> Result<(), StoreError> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (seq, prev) = head.map_or((1, GENESIS.to_string()), |(s, h)| (s + 1, h));
    let e = AuditEvent::seal(ev, seq, &prev);
    sqlx::query(
        "INSERT INTO audit (seq, at, actor, action, key_set, kid, detail, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(e.seq)
    .bind(&e.hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

    async fn apply(&self, changes: &[KeyChange], events: &[NewEvent]) -> Result<(), StoreError> {
        // One writer at a time in this process; BEGIN IMMEDIATE takes SQLite's write lock at once
        // so that another process cannot interleave between reading the head and appending.
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for c in changes {
            change(&mut tx, c).await?;
        }
        for c in changes {
            if let KeyChange::Insert(k) = c {
                guard_next(&mut tx, k).await?;
            }
        }
        for e in events {
            append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?")
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
            "SELECT * FROM audit WHERE key_set = ? AND action = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(key_set)
        .bind(action)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event).transpose()
    }

    async fn audit_all(&self) -> Result<(Vec<AuditEvent>, Option<(i64, String)>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT * FROM audit ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok((rows.iter().map(event).collect::<Result<_, _>>()?, head))
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_s: i64,
    ) -> Result<Lease, StoreError> {
        let _writer = self.writer.lock().await;
        let taken: Option<(String, i64)> = sqlx::query_as(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ? \
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
                sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = ?")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(Lease { holder, expires_at })
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
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
        k.revoke_reason = Some("test".into());
        let ev = NewEvent::new(42, "signet", "generated").key("set", "kid-1");
        store
            .apply(&[KeyChange::Insert(k.clone())], std::slice::from_ref(&ev))
            .await
            .unwrap();
        assert_eq!(store.keys().await.unwrap(), vec![k.clone()]);
        // A failed change leaves nothing behind: no second row, no audit event.
        let dup = store.apply(&[KeyChange::Insert(k.clone())], &[ev]).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        let (events, head) = store.audit_all().await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(crate::keys::audit::verify(&events, head), Ok(1));
        let revoke = KeyChange::Revoke {
            key_set: "set".into(),
            kid: "kid-1".into(),
            at: 60,
            reason: "r".into(),
        };
        assert!(matches!(
            store.apply(&[revoke], &[]).await,
            Err(StoreError::Conflict(_))
        ));
        // Re-opening runs the migrations again without harm and keeps the rows.
        let again = SqliteStore::open(&url).await.unwrap();
        assert_eq!(again.keys().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_second_next_key_is_a_conflict_unless_it_replaces_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/signet.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let key = |kid: &str, created: i64, activate: i64| {
            let mut k = KeyRecord::for_test(kid, activate);
            k.created_at = created;
            KeyChange::Insert(k)
        };
        store.apply(&[key("active", 10, 10)], &[]).await.unwrap();
        store.apply(&[key("next", 10, 100)], &[]).await.unwrap();
        let second = store.apply(&[key("other", 20, 110)], &[]).await;
        assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
        let replace = [
            key("imported", 20, 100),
            KeyChange::Revoke {
                key_set: "set".into(),
                kid: "next".into(),
                at: 20,
                reason: "replaced".into(),
            },
        ];
        store.apply(&replace, &[]).await.unwrap();
        // Once the next key is active, the following one may be added.
        store.apply(&[key("after", 100, 200)], &[]).await.unwrap();
        assert_eq!(store.keys().await.unwrap().len(), 4);
    }
}
