//! The store suite: the same test functions against SQLite and PostgreSQL (a throwaway server, see
//! `common::postgres`), through the `Store` trait as the service uses it. Each test gets a database
//! of its own; opening it twice gives two stores on the same data, as two replicas (or a restart)
//! would have.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};
use signet::keys::audit::{GENESIS, verify};
use signet::keys::{
    Approval, KeyChange, KeyRecord, Lease, NewEvent, Origin, Provenance, Store, StoreError,
};

use common::store::*;

/// Runs each listed test function once on SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Db::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Db::postgres(stringify!($case))).await
                }
            )*
        }
    };
}

on_both!(
    keys_round_trip_every_column,
    a_duplicate_kid_conflicts_and_leaves_nothing_behind,
    updates_need_a_live_key,
    one_next_key_guard,
    audit_chain_and_head,
    audit_after_pages_and_last_event,
    lease_take_renew_expire_release,
    concurrent_writers_leave_one_chain_and_one_next_key,
    reopening_migrates_again_harmlessly,
    destruction_schedule_and_cancel,
    approvals_lapse_and_are_expired_once,
);

async fn keys_round_trip_every_column(db: Db) {
    let store = db.open().await;
    store.ping().await.unwrap();
    assert_eq!(store.keys().await.unwrap(), vec![]);
    // Every Option set, bytes that are not UTF-8, a JWK with members.
    let mut full = key("b-set", "full", 200, 300);
    full.alg = "PS256".into();
    full.hsm = "backup".into();
    full.hsm_id = vec![0, 0xff, 0x80, 7];
    full.public_jwk = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})
        .as_object()
        .cloned()
        .unwrap();
    full.origin = Origin::Imported;
    full.revoked_at = Some(250);
    full.revoke_reason = Some("compromised: ü".into());
    full.destroyed_at = Some(260);
    full.destroy_at = Some(255);
    full.destroy_cancelled_at = Some(252);
    // Every Option unset; keys() orders by key set, activation, then kid, in byte order.
    let plain = [
        key("b-set", "a", 5, 5),
        key("b-set", "Z", 5, 5),
        key("B-set", "x", 1, 1),
    ];
    let mut changes = vec![insert(&full)];
    changes.extend(plain.iter().map(insert));
    store.apply(&changes, &[]).await.unwrap();
    let expected = vec![
        plain[2].clone(),
        plain[1].clone(),
        plain[0].clone(),
        full.clone(),
    ];
    assert_eq!(store.keys().await.unwrap(), expected);
    // Another store on the same database reads the same records.
    assert_eq!(db.open().await.keys().await.unwrap(), expected);
}

async fn a_duplicate_kid_conflicts_and_leaves_nothing_behind(db: Db) {
    let store = db.open().await;
    let k = key("set", "kid-1", 10, 10);
    let ev = event(10, "key_generated", "set", "kid-1");
    store
        .apply(&[insert(&k)], std::slice::from_ref(&ev))
        .await
        .unwrap();
    let mut again = k.clone();
    again.alg = "EdDSA".into();
    assert_conflict(
        store
            .apply(&[insert(&again)], std::slice::from_ref(&ev))
            .await,
        "already exists",
    );
    // The same kid in another key set is another key.
    add(&store, key("other", "kid-1", 10, 10)).await.unwrap();
    // A transaction whose last change fails leaves none of its changes and events behind.
    let fresh = key("set", "kid-2", 20, 20);
    let result = store
        .apply(&[insert(&fresh), revoke("set", "unknown", 20)], &[ev])
        .await;
    assert_conflict(result, "unknown");
    let kids: Vec<_> = store.keys().await.unwrap();
    assert_eq!(kids, vec![key("other", "kid-1", 10, 10), k]);
    let (events, head) = store.audit_all().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(verify(&events, head), Ok(1));
}

async fn updates_need_a_live_key(db: Db) {
    let store = db.open().await;
    let k = key("set", "k", 10, 10);
    add(&store, k.clone()).await.unwrap();
    for unknown in [
        activate("set", "nope", 1),
        revoke("set", "nope", 1),
        destroyed("set", "nope", 1),
    ] {
        assert_conflict(store.apply(&[unknown], &[]).await, "unknown");
    }
    // A known kid in another key set is unknown too.
    assert_conflict(
        store.apply(&[revoke("other", "k", 1)], &[]).await,
        "unknown",
    );

    store.apply(&[activate("set", "k", 20)], &[]).await.unwrap();
    store.apply(&[revoke("set", "k", 30)], &[]).await.unwrap();
    assert_conflict(
        store.apply(&[revoke("set", "k", 31)], &[]).await,
        "already revoked",
    );
    assert_conflict(
        store.apply(&[activate("set", "k", 40)], &[]).await,
        "revoked",
    );
    store
        .apply(&[destroyed("set", "k", 50)], &[])
        .await
        .unwrap();
    assert_conflict(
        store.apply(&[destroyed("set", "k", 51)], &[]).await,
        "already destroyed",
    );
    // Provenance recorded later (reconciliation, for a key stored before it was recorded).
    let exposed = Provenance {
        local: false,
        always_sensitive: false,
        never_extractable: true,
    };
    let record = KeyChange::Provenance {
        key_set: "set".into(),
        kid: "k".into(),
        provenance: exposed,
    };
    store.apply(&[record], &[]).await.unwrap();
    let expected = KeyRecord {
        activate_at: 20,
        revoked_at: Some(30),
        revoke_reason: Some("test".into()),
        destroyed_at: Some(50),
        destroy_at: None,
        destroy_cancelled_at: None,
        provenance: Some(exposed),
        ..k
    };
    assert_eq!(store.keys().await.unwrap(), vec![expected]);
}

async fn one_next_key_guard(db: Db) {
    let store = db.open().await;
    add(&store, key("set", "active", 10, 10)).await.unwrap();
    add(&store, key("set", "next", 10, 100)).await.unwrap();
    // A second next key, in this key set only.
    let second = add(&store, key("set", "other", 20, 110)).await;
    assert_conflict(second, "already has a next key (next)");
    add(&store, key("elsewhere", "other", 20, 110))
        .await
        .unwrap();
    // Import: a key that replaces the next key, revoked in the same transaction, passes.
    let import = [
        insert(&key("set", "imported", 20, 100)),
        revoke("set", "next", 20),
    ];
    store.apply(&import, &[]).await.unwrap();
    // The same import again conflicts (on the kid, and the next key is already revoked).
    assert!(matches!(
        store.apply(&import, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    // A destroyed key is not live either.
    let destroy = [destroyed("set", "imported", 30)];
    store.apply(&destroy, &[]).await.unwrap();
    add(&store, key("set", "after-destroy", 30, 120))
        .await
        .unwrap();
    // Once the next key is active, the following one may be added.
    add(&store, key("set", "following", 120, 200))
        .await
        .unwrap();
    let kids: Vec<_> = store.keys().await.unwrap();
    let kids: Vec<_> = kids
        .iter()
        .map(|k| (k.key_set.as_str(), k.kid.as_str()))
        .collect();
    assert_eq!(
        kids,
        [
            ("elsewhere", "other"),
            ("set", "active"),
            ("set", "imported"),
            ("set", "next"),
            ("set", "after-destroy"),
            ("set", "following"),
        ]
    );
}

async fn audit_chain_and_head(db: Db) {
    let store = db.open().await;
    assert_eq!(store.audit_all().await.unwrap(), (vec![], None));
    let first = [
        event(1, "key_generated", "set", "a"),
        NewEvent::new(2, "signet", "started").detail(json!({"replicas": 2})),
    ];
    store.apply(&[], &first).await.unwrap();
    let second = [
        event(3, "rotated", "set", "a").detail(json!({"by": "ü"})),
        NewEvent::new(4, "admin", "orphan_found").set("set"),
    ];
    store.apply(&[], &second).await.unwrap();
    let (events, head) = store.audit_all().await.unwrap();
    assert_eq!(verify(&events, head.clone()), Ok(4));
    let last = events.last().unwrap();
    assert_eq!(head, Some((4, last.hash.clone())));
    assert_eq!(events[0].prev_hash, GENESIS);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // Every field of an event comes back as sealed.
    let e = &events[2];
    assert_eq!(
        (e.at, e.actor.as_str(), e.action.as_str()),
        (3, "test", "rotated")
    );
    assert_eq!(
        (e.key_set.as_deref(), e.kid.as_deref()),
        (Some("set"), Some("a"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&e.detail).unwrap(),
        json!({"by": "ü"})
    );
    let e = &events[3];
    assert_eq!(
        (e.key_set.as_deref(), e.kid.as_deref()),
        (Some("set"), None)
    );
    let e = &events[1];
    assert_eq!((e.key_set.as_ref(), e.kid.as_ref()), (None, None));
    // An apply without events leaves the chain as it is.
    add(&store, key("set", "a", 1, 1)).await.unwrap();
    assert_eq!(store.audit_all().await.unwrap(), (events, head));
}

async fn audit_after_pages_and_last_event(db: Db) {
    let store = db.open().await;
    assert_eq!(store.last_event("set", "rotated").await.unwrap(), None);
    let events: Vec<_> = (1..=7)
        .map(|i| {
            let (action, set) = match i % 3 {
                0 => ("rotated", "set"),
                1 => ("revoked", "set"),
                _ => ("rotated", "other"),
            };
            event(i * 10, action, set, &format!("k{i}"))
        })
        .collect();
    store.apply(&[], &events).await.unwrap();
    let (all, _) = store.audit_all().await.unwrap();
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_after(after, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(store.audit_after(7, 3).await.unwrap(), vec![]);
    assert_eq!(store.audit_after(5, 100).await.unwrap(), all[5..].to_vec());

    let last = store.last_event("set", "rotated").await.unwrap().unwrap();
    assert_eq!((last.seq, last.kid.as_deref()), (6, Some("k6")));
    let last = store.last_event("other", "rotated").await.unwrap().unwrap();
    assert_eq!(last.seq, 5);
    assert_eq!(store.last_event("other", "revoked").await.unwrap(), None);
}

/// Asks for lease `name` for `holder` at `now`, for 3 seconds; returns who holds it, until when.
async fn lease(store: &Arc<dyn Store>, name: &str, holder: &str, now: i64) -> (String, i64) {
    let Lease { holder, expires_at } = store.lease(name, holder, now, 3).await.unwrap();
    (holder, expires_at)
}

async fn lease_take_renew_expire_release(db: Db) {
    let (a, b) = (db.open().await, db.open().await);
    let held = |holder: &str, expires_at| (holder.to_string(), expires_at);
    // Free: taken. Held and unexpired: refused, the holder is reported.
    assert_eq!(lease(&a, "scheduler", "a", 100).await, held("a", 103));
    assert_eq!(lease(&b, "scheduler", "b", 102).await, held("a", 103));
    // Renewed by its holder, even through another store.
    assert_eq!(lease(&b, "scheduler", "a", 102).await, held("a", 105));
    // Another name is another lease.
    assert_eq!(lease(&b, "other", "b", 102).await, held("b", 105));
    // Expired (at its expiry time): taken over.
    assert_eq!(lease(&b, "scheduler", "b", 105).await, held("b", 108));
    assert_eq!(lease(&a, "scheduler", "a", 106).await, held("b", 108));
    // Released only by its holder.
    b.release("scheduler", "a").await.unwrap();
    assert_eq!(lease(&a, "scheduler", "a", 106).await, held("b", 108));
    b.release("scheduler", "b").await.unwrap();
    assert_eq!(lease(&a, "scheduler", "a", 106).await, held("a", 109));
    // Releasing a lease nobody holds is harmless.
    a.release("nobody", "a").await.unwrap();
}

async fn concurrent_writers_leave_one_chain_and_one_next_key(db: Db) {
    let stores = [db.open().await, db.open().await];
    let mut tasks = Vec::new();
    for i in 0..40usize {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let ev = event(i as i64, "signed", "set", "k");
            store.apply(&[], &[ev.clone(), ev]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (events, head) = stores[1].audit_all().await.unwrap();
    assert_eq!(verify(&events, head), Ok(80));

    // Eight writers race to add a next key: one wins, the others conflict and leave neither a
    // row nor an event.
    add(&stores[0], key("set", "active", 900, 900))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8usize {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let kid = format!("next-{i}");
            let ev = event(1000, "key_generated", "set", &kid);
            let next = key("set", &kid, 1000, 1100 + i as i64);
            store.apply(&[insert(&next)], &[ev]).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            result => assert_conflict(result, "already has a next key"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(stores[0].keys().await.unwrap().len(), 2);
    let (events, head) = stores[0].audit_all().await.unwrap();
    assert_eq!(verify(&events, head), Ok(81));
}

async fn reopening_migrates_again_harmlessly(db: Db) {
    let store = db.open().await;
    let k = key("set", "k", 1, 1);
    store
        .apply(&[insert(&k)], &[event(1, "key_generated", "set", "k")])
        .await
        .unwrap();
    drop(store);
    // Two at once, as replicas starting together.
    let (a, b) = tokio::join!(db.open(), db.open());
    assert_eq!(a.keys().await.unwrap(), vec![k.clone()]);
    assert_eq!(b.keys().await.unwrap(), vec![k]);
    b.apply(&[], &[event(2, "started", "set", "k")])
        .await
        .unwrap();
    let (events, head) = a.audit_all().await.unwrap();
    assert_eq!(verify(&events, head), Ok(2));
}

fn schedule(kid: &str, at: i64) -> KeyChange {
    KeyChange::ScheduleDestruction {
        key_set: "set".into(),
        kid: kid.into(),
        at,
    }
}

fn cancel(kid: &str, at: i64) -> KeyChange {
    KeyChange::CancelDestruction {
        key_set: "set".into(),
        kid: kid.into(),
        at,
    }
}

/// Delayed destruction's queries: one pending destruction at a time, a cancellation only of a
/// pending one, neither once the key is destroyed; the schedule is in the store (a second store
/// on the same database, as after a restart, sees it).
async fn destruction_schedule_and_cancel(db: Db) {
    let store = db.open().await;
    store
        .apply(&[insert(&key("set", "k", 1, 1))], &[])
        .await
        .unwrap();
    assert_conflict(store.apply(&[cancel("k", 5)], &[]).await, "pending");
    assert_conflict(store.apply(&[schedule("nope", 5)], &[]).await, "unknown");
    let scheduled = event(2, "destruction_scheduled", "set", "k");
    store
        .apply(&[schedule("k", 100)], &[scheduled])
        .await
        .unwrap();
    assert_conflict(store.apply(&[schedule("k", 200)], &[]).await, "pending");
    let k = &store.keys().await.unwrap()[0];
    assert_eq!((k.destroy_at, k.destroy_cancelled_at), (Some(100), None));
    store.apply(&[cancel("k", 10)], &[]).await.unwrap();
    assert_conflict(store.apply(&[cancel("k", 11)], &[]).await, "pending");
    let k = &store.keys().await.unwrap()[0];
    assert_eq!((k.destroy_at, k.destroy_cancelled_at), (None, Some(10)));
    store.apply(&[schedule("k", 300)], &[]).await.unwrap();
    let reopened = db.open().await;
    assert_eq!(reopened.keys().await.unwrap()[0].destroy_at, Some(300));
    reopened
        .apply(&[destroyed("set", "k", 300)], &[])
        .await
        .unwrap();
    assert_conflict(store.apply(&[cancel("k", 301)], &[]).await, "destroyed");
    assert_conflict(store.apply(&[schedule("k", 400)], &[]).await, "destroyed");
    // A failed change leaves the audit trail alone too.
    let (events, _) = store.audit_all().await.unwrap();
    assert_eq!(events.len(), 1);
}

/// Lapsed approvals: listed once their time ran out undecided, marked `expired` once (a second
/// replica's attempt conflicts), never one decided or not yet lapsed; the event lands with it.
async fn approvals_lapse_and_are_expired_once(db: Db) {
    let store = db.open().await;
    let held = |id: &str, expires_at: i64| Approval {
        id: id.into(),
        action: "rotate".into(),
        key_set: "set".into(),
        kid: None,
        request: "{}".into(),
        requested_by: "alice".into(),
        requested_at: 1,
        expires_at,
        status: "pending".into(),
        decided_by: None,
        decided_at: None,
    };
    let requested =
        |id: &str| NewEvent::new(1, "alice", "approval_requested").detail(json!({"approval": id}));
    for (id, at) in [("early", 10), ("late", 100), ("decided", 10)] {
        store
            .add_approval(&held(id, at), &requested(id))
            .await
            .unwrap();
    }
    let decided = NewEvent::new(5, "bob", "approval_rejected");
    store
        .decide_approval("decided", "rejected", "bob", 5, &decided)
        .await
        .unwrap();
    let lapsed = store.lapsed_approvals(50).await.unwrap();
    assert_eq!(
        lapsed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["early"]
    );
    let expired = NewEvent::new(50, "signet", "approval_expired");
    store.expire_approval("early", 50, &expired).await.unwrap();
    assert_conflict(
        store.expire_approval("early", 51, &expired).await,
        "not a lapsed",
    );
    assert_conflict(
        store.expire_approval("late", 51, &expired).await,
        "not a lapsed",
    );
    assert_conflict(
        store.expire_approval("decided", 51, &expired).await,
        "not a lapsed",
    );
    let early = store.approval("early").await.unwrap().unwrap();
    assert_eq!(
        (early.status.as_str(), early.decided_at),
        ("expired", Some(50))
    );
    assert_eq!(early.status_at(60), "expired");
    assert!(store.lapsed_approvals(60).await.unwrap().is_empty());
    let (events, _) = store.audit_all().await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "approval_requested",
            "approval_requested",
            "approval_requested",
            "approval_rejected",
            "approval_expired"
        ]
    );
}
