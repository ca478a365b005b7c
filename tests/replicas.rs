//! Several Signet replicas on one PostgreSQL and one SoftHSM2 token directory: real `signet`
//! processes against a throwaway PostgreSQL server (see common/postgres.rs). Each test has its own
//! server, token and replicas.
//!
//! Bounds under test (README "Several replicas"), with `key_refresh = 1s`:
//! - a change made through one replica is served by the others within `key_refresh` (+ query time);
//! - a killed leader's scheduler lease (TTL 3 x `key_refresh`) is taken over within 4 x `key_refresh`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::*;
use serde_json::{Value, json};
use signet::keys::{KeyChange, KeyRecord, NewEvent, PgStore, Store, StoreError};

const REFRESH: Duration = Duration::from_secs(1);

/// `config` on PostgreSQL, with keys that may sign 2 s after they are published.
fn pg_config(token: &Token, dir: &std::path::Path, port: u16, pg: &Postgres) -> String {
    let sqlite = format!("url = \"sqlite://{}\"", dir.join("signet.db").display());
    config(token, dir, port, &[set("id", "id_token", "ES256")])
        .replace(&sqlite, &format!("url = \"{}\"", pg.url()))
        .replace("jwks_max_age = \"60s\"", "jwks_max_age = \"1s\"")
        .replace("min_publish = \"2m\"", "min_publish = \"2s\"")
        .replace("retain = \"1h2m\"", "retain = \"1h1s\"")
}

/// Replicas sharing `pg` and `token`, each with its own directory (config and log) and port.
struct Replicas {
    _dirs: Vec<tempfile::TempDir>,
    all: Vec<Signet>,
}

impl Replicas {
    /// Starts `n` replicas at once (they race for the lease and the bootstrap).
    async fn start(
        n: usize,
        token: &Token,
        pg: &Postgres,
        rewrite: impl Fn(String) -> String,
    ) -> Self {
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let cfgs: Vec<String> = dirs
            .iter()
            .zip(&ports)
            .map(|(d, p)| rewrite(pg_config(token, d.path(), *p, pg)))
            .collect();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(Signet::start(token, dirs[i].path(), ports[i], &cfgs[i]));
        }
        let mut all = Vec::new();
        {
            // Polled together: every replica's start-up overlaps the others'.
            let mut pending: Vec<_> = starts.into_iter().map(Box::pin).collect();
            while !pending.is_empty() {
                let (s, _, rest) = select_all(pending).await;
                all.push(s);
                pending = rest;
            }
        }
        Replicas { _dirs: dirs, all }
    }

    fn logs(&self) -> String {
        self.all
            .iter()
            .enumerate()
            .map(|(i, s)| format!("--- replica {i} ({})\n{}", s.base, s.log()))
            .collect()
    }
}

/// `futures::select_all` without the dependency: the first of `futs` to finish, and the rest.
async fn select_all<F: std::future::Future + Unpin>(
    mut futs: Vec<F>,
) -> (F::Output, usize, Vec<F>) {
    std::future::poll_fn(move |cx| {
        for i in 0..futs.len() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut futs[i]).poll(cx) {
                let mut rest = std::mem::take(&mut futs);
                rest.remove(i);
                return std::task::Poll::Ready((v, i, rest));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn readyz(s: &Signet) -> Value {
    s.readyz_details().await.1
}

/// The replicas (by index) that say they hold the scheduler lease.
async fn leaders(all: &[&Signet]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, s) in all.iter().enumerate() {
        if readyz(s).await["scheduler"]["leader"] == true {
            out.push(i);
        }
    }
    out
}

async fn jwks_raw(s: &Signet) -> (String, String) {
    let r = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    (r.text().await.unwrap(), etag)
}

async fn sign(s: &Signet) -> String {
    let now = now();
    let body =
        json!({"claims": {"iss": ISSUER, "sub": "a", "aud": "c", "iat": now, "exp": now + 1}});
    let (status, out) = s
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;
    assert_eq!(status, 200, "{out}");
    let jwks = s.get_json("/v1/key-sets/id/jwks").await;
    verify_jwt(out["jwt"].as_str().unwrap(), &jwks);
    out["kid"].as_str().unwrap().to_string()
}

fn kids(jwks: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(jwks).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Polls until every replica serves the same JWKS bytes and ETag; returns them.
async fn same_jwks(all: &[&Signet], within: Duration) -> (String, String) {
    let deadline = Instant::now() + within;
    loop {
        let mut docs = Vec::new();
        for s in all {
            docs.push(jwks_raw(s).await);
        }
        if docs.iter().all(|d| *d == docs[0]) {
            return docs.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "replicas serve different JWKS after {within:?}: {docs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next kid of set `id` as `s` serves it in `GET /v1/key-sets`.
async fn next_kid(s: &Signet) -> Option<String> {
    let r = s
        .http
        .get(s.url("/v1/key-sets"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await;
    let v: Value = r.unwrap().json().await.unwrap();
    v["key_sets"][0]["next_kid"].as_str().map(str::to_string)
}

/// Polls until the store holds exactly one next key of set `id` and every replica in `all` names
/// it as `next_kid`.
async fn settled(all: &[&Signet], db: &sqlx::PgPool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let keys = rows(db).await;
        let next = next_keys(&keys, now());
        let mut served = Vec::new();
        for s in all {
            served.push(next_kid(s).await);
        }
        if next.len() == 1 && served.iter().all(|k| k.as_deref() == Some(next[0])) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {within:?}: next {next:?}, served {served:?}: {keys:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until one replica of `all` holds the scheduler lease and has renewed it once: a whole
/// scheduler round (take-over, reconciliation, upkeep) has run since.
async fn one_scheduler_round(all: &[&Signet], within: Duration) {
    let deadline = Instant::now() + within;
    let mut first_seen: Option<(usize, Value)> = None;
    loop {
        for (i, s) in all.iter().enumerate() {
            let scheduler = readyz(s).await["scheduler"].clone();
            if scheduler["leader"] != true {
                continue;
            }
            let expires = scheduler["lease_expires_at"].clone();
            match &first_seen {
                Some((j, seen)) if *j == i && *seen != expires => return,
                Some((j, _)) if *j == i => {}
                _ => first_seen = Some((i, expires)),
            }
        }
        assert!(
            Instant::now() < deadline,
            "no scheduler round within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `signet audit verify` through `s`: must succeed.
fn audit_verify(s: &Signet) -> u64 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["audit", "verify", "--json"])
        .env("SIGNET_URL", &s.base)
        .env("SIGNET_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "audit verify through {}: {stdout}{}",
        s.base,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    v["events"].as_u64().unwrap()
}

fn private_objects(token: &Token) -> usize {
    let out = token.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    String::from_utf8_lossy(&out.stdout)
        .matches("Private Key Object")
        .count()
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    kid: String,
    origin: String,
    created_at: i64,
    activate_at: i64,
    revoked_at: Option<i64>,
}

/// The keys of set `id`, in the order they were stored (the seq of their audit event).
async fn rows(db: &sqlx::PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT k.kid, k.origin, k.created_at, k.activate_at, k.revoked_at FROM keys k \
         JOIN audit a ON a.kid = k.kid AND a.action IN ('key_generated', 'imported') \
         WHERE k.key_set = 'id' ORDER BY a.seq",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// Polls the keys of set `id` until `done` holds (every 100 ms, for at most `within`).
async fn rows_until(
    db: &sqlx::PgPool,
    within: Duration,
    done: impl Fn(&[Row]) -> bool,
) -> Vec<Row> {
    let deadline = Instant::now() + within;
    loop {
        let keys = rows(db).await;
        if done(&keys) {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "keys not as expected after {within:?}: {keys:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count_events(db: &sqlx::PgPool, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit WHERE action = $1")
        .bind(action)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The non-revoked keys of set `id` that activate after `t`.
fn next_keys(rows: &[Row], t: i64) -> Vec<&str> {
    rows.iter()
        .filter(|r| r.revoked_at.is_none_or(|x| x > t) && r.activate_at > t)
        .map(|r| r.kid.as_str())
        .collect()
}

fn record(kid: &str, created_at: i64, activate_at: i64) -> KeyRecord {
    KeyRecord {
        provenance: None,
        ..common::store::key("s", kid, created_at, activate_at)
    }
}

/// The store alone, from two connection pools (two "replicas"): concurrent appends make one chain,
/// racing next-key inserts leave one next key, the lease has one holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_store_serialises_writers_and_keeps_one_next_key() {
    let pg = Postgres::start();
    let (a, b) = (
        Arc::new(PgStore::open(&pg.url()).await.unwrap()),
        Arc::new(PgStore::open(&pg.url()).await.unwrap()),
    );
    assert_eq!(a.audit_all().await.unwrap(), (vec![], None));

    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let ev = NewEvent::new(i, "test", "signed").key("s", "k");
            store.apply(&[], &[ev.clone(), ev]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (events, head) = b.audit_all().await.unwrap();
    assert_eq!(signet::keys::audit::verify(&events, head), Ok(120));

    // Eight replicas race to add a next key at t = 1000: one wins, the others get a Conflict and
    // leave neither a row nor an event.
    a.apply(&[KeyChange::Insert(record("active", 900, 900))], &[])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let kid = format!("next-{i}");
            let ev = NewEvent::new(1000, "test", "key_generated").key("s", &kid);
            store
                .apply(&[KeyChange::Insert(record(&kid, 1000, 1100 + i))], &[ev])
                .await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won.push(()),
            Err(StoreError::Conflict(m)) => assert!(m.contains("already has a next key"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1);
    let keys = a.keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let next = keys.iter().find(|k| k.kid != "active").unwrap().kid.clone();
    // Once the next key is active, a new next key may be added; replacing one in the same
    // transaction (import) is allowed too.
    a.apply(&[KeyChange::Insert(record("later", 2000, 3000))], &[])
        .await
        .unwrap();
    let replace = [
        KeyChange::Insert(record("imported", 2001, 3000)),
        KeyChange::Revoke {
            key_set: "s".into(),
            kid: "later".into(),
            at: 2001,
            reason: "replaced".into(),
        },
    ];
    b.apply(&replace, &[]).await.unwrap();
    assert!(matches!(
        a.apply(&replace, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    let (events, head) = a.audit_all().await.unwrap();
    assert_eq!(signet::keys::audit::verify(&events, head), Ok(121));
    assert!(a.keys().await.unwrap().iter().any(|k| k.kid == next));

    // The lease: one holder until it expires or is released.
    assert_eq!(a.lease("scheduler", "a", 100, 3).await.unwrap().holder, "a");
    assert_eq!(b.lease("scheduler", "b", 102, 3).await.unwrap().holder, "a");
    assert_eq!(
        a.lease("scheduler", "a", 102, 3).await.unwrap().expires_at,
        105
    );
    assert_eq!(b.lease("scheduler", "b", 105, 3).await.unwrap().holder, "b");
    b.release("scheduler", "a").await.unwrap();
    assert_eq!(a.lease("scheduler", "a", 106, 3).await.unwrap().holder, "b");
    b.release("scheduler", "b").await.unwrap();
    assert_eq!(a.lease("scheduler", "a", 106, 3).await.unwrap().holder, "a");
}

/// Two replicas: one leader, byte-identical JWKS, the same signing kid; a revoke or a rotation
/// through one is served by the other within `key_refresh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_agree_and_see_each_others_changes() {
    let token = Token::new("replicas-agree");
    let pg = Postgres::start();
    let r = Replicas::start(2, &token, &pg, |c| c).await;
    let [r1, r2] = [&r.all[0], &r.all[1]];
    let both = [r1, r2];
    assert_eq!(leaders(&both).await.len(), 1, "{}", r.logs());
    let (doc, _) = same_jwks(&both, REFRESH * 2).await;
    assert_eq!(kids(&doc).len(), 2, "an active and a next key: {doc}");
    let active = sign(r1).await;
    assert_eq!(sign(r2).await, active);

    // Revoke through r1 (forced: the next key is younger than min_publish).
    let (status, out) = r1
        .post(
            &format!("/v1/key-sets/id/keys/{active}/revoke"),
            Some(ADMIN_TOKEN),
            &json!({"reason": "test", "force": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let promoted = sign(r1).await;
    assert_ne!(promoted, active);
    let t = Instant::now();
    loop {
        let (doc, _) = jwks_raw(r2).await;
        if sign(r2).await == promoted && !kids(&doc).contains(&active) {
            break;
        }
        assert!(
            t.elapsed() < REFRESH * 2,
            "r2 still serves the revoked key after {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("revoke seen by the other replica after {:?}", t.elapsed());
    let (doc, _) = same_jwks(&both, REFRESH * 2).await;
    assert_eq!(
        kids(&doc).len(),
        2,
        "promoted key and a new next key: {doc}"
    );

    // Rotate through r2.
    let (status, out) = r2
        .post(
            "/v1/key-sets/id/rotate",
            Some(ADMIN_TOKEN),
            &json!({"force": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let rotated = out["rotated_to"].as_str().unwrap().to_string();
    let t = Instant::now();
    while sign(r1).await != rotated {
        assert!(
            t.elapsed() < REFRESH * 2,
            "r1 does not sign with the rotated key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("rotation seen by the other replica after {:?}", t.elapsed());
    same_jwks(&both, REFRESH * 2).await;
    assert_eq!(audit_verify(r1), audit_verify(r2));
}

/// Three replicas over three rotation periods of 6 s; the leader is killed with SIGKILL in the
/// middle. Another replica takes the scheduler over within the bound, and every rotation creates
/// exactly one next key (no losing generation leaves a row, an event or an HSM object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_exactly_one_next_key_per_rotation() {
    let token = Token::new("replicas-failover");
    let pg = Postgres::start();
    let t0 = now();
    let mut r = Replicas::start(3, &token, &pg, |c| {
        c.replace("rotation_period = \"90d\"", "rotation_period = \"6s\"")
            .replace("retain = \"1h1s\"", "retain = \"3s\"")
            .replace("max_lifetime = \"1h\"", "max_lifetime = \"1s\"")
    })
    .await;
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let all: Vec<&Signet> = r.all.iter().collect();
    let lead = leaders(&all).await;
    assert_eq!(lead.len(), 1, "{}", r.logs());
    let bootstrap = rows(&db).await;
    assert_eq!(bootstrap.len(), 2, "{bootstrap:?}");

    // Kill the leader once the first rotation has happened and it has generated the key of the
    // second: the take-over then falls before the second rotation is due (6 s later).
    let second =
        rows_until(&db, Duration::from_secs(20), |keys| keys.len() >= 3).await[2].activate_at;
    assert!(
        second - now() >= 3,
        "killed too late for the test: {}",
        second - now()
    );
    let lead = leaders(&r.all.iter().collect::<Vec<_>>()).await;
    assert_eq!(lead.len(), 1, "{}", r.logs());
    let mut dead = r.all.remove(lead[0]);
    dead.kill();
    let killed = Instant::now();
    loop {
        let survivors: Vec<&Signet> = r.all.iter().collect();
        match leaders(&survivors).await.len() {
            1 => break,
            0 => {}
            n => panic!("{n} leaders\n{}", r.logs()),
        }
        // Lease TTL (3 x key_refresh) + one refresh, + 1 s for whole-second lease times.
        assert!(
            killed.elapsed() < REFRESH * 5,
            "no replica took over after {:?}\n{}",
            killed.elapsed(),
            r.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("scheduler taken over {:?} after SIGKILL", killed.elapsed());

    // Run to just after the third rotation: the fourth key signs, the fifth is next, and the
    // scheduler has recorded the activation.
    rows_until(&db, Duration::from_secs(30), |keys| {
        keys.len() >= 5 && keys[3].activate_at <= now()
    })
    .await;
    let deadline = Instant::now() + REFRESH * 3;
    while count_events(&db, "activated").await < 4 {
        assert!(
            Instant::now() < deadline,
            "no activation recorded\n{}",
            r.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = now();
    let keys = rows(&db).await;
    let first = keys.iter().map(|k| k.activate_at).min().unwrap();
    assert!(first >= t0);
    let rotations = keys
        .iter()
        .filter(|k| k.activate_at > first && k.activate_at <= end)
        .count();
    assert!(
        rotations >= 3,
        "three rotations in {} s: {keys:#?}",
        end - t0
    );
    // One row per generation, all generated by the scheduler; one HSM object per row.
    assert_eq!(count_events(&db, "key_generated").await, keys.len() as i64);
    assert!(keys.iter().all(|k| k.origin == "generated"));
    assert_eq!(private_objects(&token), keys.len(), "{keys:#?}");
    // Exactly one next key whenever a key was created, and at the end.
    for (i, k) in keys.iter().enumerate() {
        let others: Vec<&str> = keys[..i]
            .iter()
            .filter(|j| j.activate_at > k.created_at)
            .map(|j| j.kid.as_str())
            .collect();
        assert!(
            others.is_empty(),
            "{} created while {others:?} were next: {keys:#?}",
            k.kid
        );
    }
    assert_eq!(next_keys(&keys, end).len(), 1, "{keys:#?}");
    // And every activation was recorded once.
    assert_eq!(
        count_events(&db, "activated").await as usize,
        rotations + 1,
        "{}",
        r.logs()
    );
    let survivors: Vec<&Signet> = r.all.iter().collect();
    same_jwks(&survivors, REFRESH * 2).await;
    let kid = sign(survivors[0]).await;
    assert_eq!(sign(survivors[1]).await, kid);
    audit_verify(survivors[0]);
    drop(dead);
}

/// Rotations, revocations, imports and audited signatures through two replicas at once: every
/// call gets a documented answer, the audit trail stays one valid chain, and one next key remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admin_calls_leave_one_chain_and_one_next_key() {
    let token = Token::new("replicas-admin");
    for (id, label) in [("c0ffee01", "ceremony-1"), ("c0ffee02", "ceremony-2")] {
        token.keypair(id, label, "EC:prime256v1", true);
    }
    let pg = Postgres::start();
    let r = Replicas::start(2, &token, &pg, |c| {
        c.replace(
            "max_lifetime = \"1h\"",
            "max_lifetime = \"1h\"\naudit_signatures = true",
        )
    })
    .await;
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let [r1, r2] = [&r.all[0], &r.all[1]];

    let call = |s: &Signet, path: String, body: Value| {
        let req = s
            .http
            .post(s.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let sign_on = |s: &Signet| {
        let now = now();
        let req = s
            .http
            .post(s.url("/v1/key-sets/id/sign/jwt"))
            .bearer_auth(SIGNER_TOKEN)
            .json(&json!({"claims": {"iss": ISSUER, "sub": "a", "aud": "c", "iat": now, "exp": now + 60}}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for round in 0..3 {
        let next = next_kid(r1).await.unwrap();
        let revoke = |s| {
            call(
                s,
                format!("/v1/key-sets/id/keys/{next}/revoke"),
                json!({"reason": format!("round {round}")}),
            )
        };
        let rotate = |s| call(s, "/v1/key-sets/id/rotate".into(), json!({"force": true}));
        let import = |s, label: &str| {
            call(
                s,
                "/v1/key-sets/id/keys/import".into(),
                json!({ "label": label }),
            )
        };
        let results = match round {
            0 => {
                let (a, b, c, d) = tokio::join!(rotate(r1), rotate(r2), sign_on(r1), sign_on(r2));
                assert_eq!((c, d), (200, 200));
                vec![a, b]
            }
            1 => {
                let (a, b, c, d) = tokio::join!(revoke(r1), revoke(r2), sign_on(r1), sign_on(r2));
                assert_eq!((c, d), (200, 200));
                vec![a, b]
            }
            _ => {
                let (a, b, c, d) = tokio::join!(
                    import(r1, "ceremony-1"),
                    import(r2, "ceremony-2"),
                    sign_on(r1),
                    sign_on(r2)
                );
                assert_eq!((c, d), (200, 200));
                vec![a, b]
            }
        };
        let ok = results
            .iter()
            .filter(|(s, _)| *s == 200 || *s == 201)
            .count();
        for (status, body) in &results {
            assert!(
                matches!(status, 200 | 201 | 409),
                "round {round}: {status} {body}\n{}",
                r.logs()
            );
        }
        assert!(ok >= 1, "round {round}: {results:?}");
        println!(
            "round {round}: {:?}",
            results
                .iter()
                .map(|(s, b)| (s, b["code"].clone()))
                .collect::<Vec<_>>()
        );
        // Before the next round: the store holds one next key and both replicas serve it.
        settled(&[r1, r2], &db, REFRESH * 3).await;
    }
    let mut signs = Vec::new();
    for i in 0..20 {
        signs.push(sign_on(if i % 2 == 0 { r1 } else { r2 }));
    }
    for s in signs {
        assert_eq!(s.await, 200);
    }
    let events = audit_verify(r1);
    assert_eq!(audit_verify(r2), events);
    assert_eq!(count_events(&db, "signed").await, 26);
    let keys = rows(&db).await;
    let generated = count_events(&db, "key_generated").await;
    let imported = count_events(&db, "imported").await;
    assert_eq!(generated + imported, keys.len() as i64, "{keys:#?}");
    // One HSM object per row (losing generations were destroyed), plus ceremony keys not imported.
    assert_eq!(
        private_objects(&token),
        keys.len() + 2 - imported as usize,
        "{keys:#?}"
    );
    same_jwks(&[r1, r2], REFRESH * 2).await;
}

/// Start-up reconciliation: an unreferenced `signet/` key is reported (log, `/readyz`, one
/// `orphan_found` event), a stale pending object is destroyed and audited, a stored key whose
/// private object is gone is reported as missing. Nothing else is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_and_missing_keys_are_reported() {
    let token = Token::new("replicas-orphans");
    let keygen = |id: &str, label: &str| token.keypair(id, label, "EC:prime256v1", true);
    keygen("6f727068616e", "signet/id/orphan-kid");
    // `signet-pending-1000-1-0`: a generation of 1970 that never got a kid.
    keygen(&hex::encode("signet-pending-1000-1-0"), "signet/id/pending");
    keygen("0a0b", "operator-key");
    let pg = Postgres::start();
    let mut r = Replicas::start(1, &token, &pg, |c| c).await;
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let ready = readyz(&r.all[0]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["scheduler"]["leader"], true, "{ready}");
    let rec = &ready["reconciliation"];
    assert_eq!(rec["orphans"].as_array().unwrap().len(), 1, "{rec}");
    assert_eq!(rec["orphans"][0]["label"], "signet/id/orphan-kid");
    assert_eq!(rec["orphans"][0]["hsm_id"], "6f727068616e");
    assert_eq!(
        rec["pending_destroyed"][0]["label"], "signet/id/pending",
        "{rec}"
    );
    assert_eq!(rec["missing"], json!([]));
    assert!(r.all[0].log().contains("orphan key in the token"));
    // Orphan and operator key kept; pending destroyed; plus the two keys of the key set.
    assert_eq!(private_objects(&token), 4);
    assert_eq!(count_events(&db, "orphan_found").await, 1);
    assert_eq!(count_events(&db, "pending_destroyed").await, 1);

    // A second replica (not the leader) reports the same, and writes nothing.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut second = Signet::start(
        &token,
        dir.path(),
        port,
        &pg_config(&token, dir.path(), port, &pg),
    )
    .await;
    let rec = readyz(&second).await["reconciliation"].clone();
    assert_eq!(rec["orphans"].as_array().unwrap().len(), 1, "{rec}");
    assert_eq!(count_events(&db, "orphan_found").await, 1);

    // The next key's private object disappears from the token: reported as missing at start-up.
    let next = rows(&db).await.into_iter().last().unwrap().kid;
    let out = token.pkcs11_tool(&[
        "--delete-object",
        "--type",
        "privkey",
        "--id",
        &hex::encode(&next),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    second.restart().await;
    let rec = readyz(&second).await["reconciliation"].clone();
    assert_eq!(
        rec["missing"],
        json!([{"hsm": "primary", "key_set": "id", "kid": next}]),
        "{rec}"
    );
    // A restarted leader (or the replica that takes its lease over) does not record the same
    // orphans twice.
    r.all[0].restart().await;
    one_scheduler_round(&[&r.all[0], &second], REFRESH * 6).await;
    assert_eq!(count_events(&db, "orphan_found").await, 1);
    audit_verify(&second);
}

/// `POST sign/jwt` on `s`: status, problem code (if any) and how long it took.
async fn try_sign(s: &Signet) -> (u16, Value, Duration) {
    let now = now();
    let body =
        json!({"claims": {"iss": ISSUER, "sub": "a", "aud": "c", "iat": now, "exp": now + 1}});
    let started = Instant::now();
    let (status, out) = s
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;
    (status, out, started.elapsed())
}

/// Unauthenticated `/readyz`: status and body.
async fn probe(s: &Signet) -> (u16, Value) {
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls `$get` (with `$s` each replica of `$all` in turn) until `$done` holds of what it
/// returned (bound to the pattern `$got`, by reference), within `$within` overall.
macro_rules! until_all {
    ($all:expr, $within:expr, $what:expr, |$s:ident| $get:expr, |$got:pat_param| $done:expr) => {{
        let deadline = Instant::now() + $within;
        for $s in $all.iter() {
            loop {
                let got = $get;
                let $got = &got;
                if $done {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not reached within {:?}: {:?}",
                    $what,
                    $within,
                    got
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }};
}

/// DESIGN.md `[store] grace`: PostgreSQL stopped under two replicas. Within grace they sign from
/// their cached key views and `/readyz` says `degraded` with 200; admin changes fail at once with
/// `store_unavailable`; past grace signing stops with 503 `key_view_stale`; once the server is
/// back, everything resumes without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgres_degrades_then_stops_signing_and_recovers() {
    const GRACE: u64 = 6;
    let token = Token::new("replicas-grace");
    let pg = Postgres::start();
    let url = format!("url = \"{}\"", pg.url());
    let r = Replicas::start(2, &token, &pg, |c| {
        c.replace(&url, &format!("{url}\ngrace = \"{GRACE}s\""))
            .replace(
                "key_refresh = \"1s\"",
                "key_refresh = \"1s\"\nhealth_interval = \"300ms\"",
            )
    })
    .await;
    for s in &r.all {
        sign(s).await;
        assert_eq!(
            probe(s).await,
            (
                200,
                json!({"status": "ready", "store": "up",
            "backends": {"primary": "up"}, "key_sets": {"id": "up"}})
            )
        );
    }

    pg.stop();
    let stopped = Instant::now();
    until_all!(
        r.all,
        Duration::from_secs(3),
        "degraded",
        |s| probe(s).await,
        |(status, body)| *status == 200 && body["status"] == "degraded" && body["store"] == "down"
    );
    for s in &r.all {
        let (status, out, _) = try_sign(s).await;
        assert_eq!(status, 200, "signing within grace: {out}\n{}", r.logs());
        let jwks = s.get_json("/v1/key-sets/id/jwks").await;
        verify_jwt(out["jwt"].as_str().unwrap(), &jwks);
        let started = Instant::now();
        let (status, out) = s
            .post("/v1/key-sets/id/rotate", Some(ADMIN_TOKEN), &json!({}))
            .await;
        let took = started.elapsed();
        assert_eq!(
            (status, out["code"].as_str()),
            (503, Some("store_unavailable")),
            "{out}"
        );
        assert!(
            took < Duration::from_secs(1),
            "an admin change waited {took:?}"
        );
        let (_, details) = s.readyz_details().await;
        assert!(details["store"]["reason"].is_string(), "{details}");
        assert!(details["store_down_since"].is_i64(), "{details}");
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(GRACE - 1),
        "the checks within grace took too long to mean anything"
    );

    // Past grace: no signing, and /readyz 503.
    until_all!(
        r.all,
        Duration::from_secs(GRACE + 4),
        "key_view_stale",
        |s| try_sign(s).await,
        |(status, out, _)| *status == 503 && out["code"] == "key_view_stale"
    );
    assert!(
        stopped.elapsed() >= Duration::from_secs(GRACE),
        "stale before grace ran out"
    );
    for s in &r.all {
        let (status, body) = probe(s).await;
        assert_eq!(
            (status, &body["status"]),
            (503, &json!("not_ready")),
            "{body}"
        );
    }

    // The server returns: everything resumes, no restart.
    pg.start_again();
    until_all!(
        r.all,
        Duration::from_secs(15),
        "recovery",
        |s| probe(s).await,
        |(status, body)| *status == 200 && body["status"] == "ready"
    );
    for s in &r.all {
        sign(s).await;
    }
    let (status, out) = r.all[0]
        .post("/v1/key-sets/id/rotate", Some(ADMIN_TOKEN), &json!({}))
        .await;
    assert_eq!(status, 200, "{out}\n{}", r.logs());
    let rotated = out["rotated_to"].as_str().unwrap().to_string();
    until_all!(
        r.all,
        Duration::from_secs(5),
        "the rotation served",
        |s| try_sign(s).await,
        |(status, out, _)| *status == 200 && out["kid"] == rotated.as_str()
    );
}
