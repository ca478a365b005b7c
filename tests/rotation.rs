//! Scheduled rotation with a moved clock: the service core over a real SoftHSM2 token, stepped
//! through three rotation periods. One test: SoftHSM is initialised once per process.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::*;
use serde_json::{Map, Value, json};
use signet::config::Config;
use signet::keys::open_store;
use signet::service::{Clock, Refusal, Service, ServiceError, SignJwt, Signed};

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const PERIOD: i64 = 100;
const MIN_PUBLISH: i64 = 20;
const RETAIN: i64 = 30;

fn claims(now: i64) -> Map<String, Value> {
    json!({"iss": ISSUER, "sub": "alice", "aud": "c", "iat": now, "exp": now + 10})
        .as_object()
        .unwrap()
        .clone()
}

/// Signs `claims(now)` as the configured signer.
async fn sign(service: &Service, now: i64) -> Signed {
    let op = SignJwt::new(claims(now), Map::new());
    service
        .sign(&service.config.clients[0], "id", op)
        .await
        .unwrap()
}

fn jwks_kids(service: &Service) -> BTreeSet<String> {
    let doc = service.jwks(Some("id")).unwrap();
    let v: Value = serde_json::from_str(&doc.body).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_rotation_periods_with_a_moved_clock() {
    let token = Token::new("rotation");
    // SAFETY of the test: set before this process loads SoftHSM, in its only test.
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", token.conf());
        std::env::set_var("SIGNET_HSM_PIN", PIN);
    }
    let dir = tempfile::tempdir().unwrap();
    let text = config(&token, dir.path(), 1, &[set("id", "id_token", "ES256")])
        .replace("jwks_max_age = \"60s\"", "jwks_max_age = \"10s\"")
        .replace(
            "rotation_period = \"90d\"",
            &format!("rotation_period = \"{PERIOD}s\""),
        )
        .replace(
            "min_publish = \"2m\"",
            &format!("min_publish = \"{MIN_PUBLISH}s\""),
        )
        .replace("retain = \"1h2m\"", &format!("retain = \"{RETAIN}s\""))
        .replace(
            "max_lifetime = \"1h\"",
            "max_lifetime = \"10s\"\ndestroy_after = \"20s\"",
        );
    let config = Config::from_toml(&text, "rotation.toml", std::iter::empty()).unwrap();
    let store = open_store(&config.store.url).await.unwrap();
    let t0 = 1_900_000_000;
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let service = Service::start(config, store, clock.clone()).await.unwrap();

    let records = service.records("id");
    assert_eq!(records.len(), 2, "bootstrap: an active and a next key");
    let (a, b) = (records[0].kid.clone(), records[1].kid.clone());
    assert_eq!(records[0].activate_at, t0);
    assert_eq!(records[1].activate_at, t0 + PERIOD);

    // (time offset, expected signer, expected JWKS). The kids of later keys are learned as they
    // are generated: `None` means "the key generated at this rotation".
    let mut kids = vec![a.clone(), b.clone()];
    let mut signed_by = Vec::new();
    for step in 0..=(3 * PERIOD + RETAIN + 10) / 10 {
        let t = t0 + step * 10;
        clock.0.store(t, Ordering::SeqCst);
        service.tick().await;
        let records = service.records("id");
        for r in &records {
            if !kids.contains(&r.kid) {
                kids.push(r.kid.clone());
            }
        }
        // Key n (0-based) activates at t0 + n * PERIOD.
        let n = ((t - t0) / PERIOD) as usize;
        let signed = sign(&service, t).await;
        assert_eq!(signed.kid, kids[n], "at +{}s key {n} signs", t - t0);
        let signer = records.iter().find(|r| r.kid == signed.kid).unwrap();
        if n > 0 {
            assert!(
                t - signer.created_at >= MIN_PUBLISH,
                "signed before min_publish at +{}",
                t - t0
            );
        }
        signed_by.push(signed.kid);

        let mut expected = BTreeSet::from([kids[n].clone(), kids[n + 1].clone()]);
        let since_rotation = (t - t0) % PERIOD;
        if n > 0 && since_rotation < RETAIN {
            expected.insert(kids[n - 1].clone());
        }
        assert_eq!(jwks_kids(&service), expected, "JWKS at +{}s", t - t0);
        let next: Vec<_> = records.iter().filter(|r| r.activate_at > t).collect();
        assert_eq!(next.len(), 1, "exactly one next key at +{}s", t - t0);
    }
    assert_eq!(
        kids.len(),
        5,
        "three rotations: keys 0..=3 signed, key 4 is next"
    );
    // destroy_after: a key expires `RETAIN` after it is superseded and its private object goes
    // 20 s later; the public key stays in the store.
    let records = service.records("id");
    let destroyed: Vec<bool> = kids
        .iter()
        .map(|k| {
            records
                .iter()
                .find(|r| &r.kid == k)
                .unwrap()
                .destroyed_at
                .is_some()
        })
        .collect();
    assert_eq!(destroyed, [true, true, false, false, false]);
    let distinct: BTreeSet<_> = signed_by.iter().collect();
    assert_eq!(distinct.len(), 4);

    // An early rotation by an operator: allowed once the next key has been published for
    // min_publish; refused before that unless forced.
    let t = clock.now() + 1;
    clock.0.store(t, Ordering::SeqCst);
    let next = service
        .records("id")
        .into_iter()
        .find(|r| r.activate_at > t)
        .unwrap();
    assert!(t - next.created_at >= MIN_PUBLISH);
    assert_eq!(
        service.rotate("id", None, false, "test").await.unwrap().kid,
        next.kid
    );
    let fresh = service
        .records("id")
        .into_iter()
        .find(|r| r.activate_at > t)
        .unwrap();
    assert_eq!(
        fresh.created_at, t,
        "a new next key right after the rotation"
    );
    let err = service.rotate("id", None, false, "test").await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Refused(Refusal::MinPublishNotMet { .. })),
        "{err:?}"
    );
    let signed = sign(&service, t).await;
    assert_eq!(signed.kid, next.kid, "a refused rotation changes nothing");
    assert_eq!(
        service.rotate("id", None, true, "test").await.unwrap().kid,
        fresh.kid
    );
    // Same second as the last activation: it takes effect one second later.
    let t = t + 1;
    clock.0.store(t, Ordering::SeqCst);
    service.tick().await;
    let signed = sign(&service, t).await;
    assert_eq!(
        signed.kid, fresh.kid,
        "a forced rotation takes effect at once"
    );
    assert_eq!(
        service
            .records("id")
            .iter()
            .filter(|r| r.activate_at > t)
            .count(),
        1
    );

    // Every change is in the audit trail, and the chain holds.
    let events = service.audit_after(0, 1000).await.unwrap();
    let count = |action: &str| events.iter().filter(|e| e.action == action).count();
    assert_eq!(count("key_generated"), 7);
    assert_eq!(count("rotated"), 2);
    assert_eq!(count("destroyed"), 2);
    // destroy_after goes through the schedule: keys 0 and 1 destroyed, key 2 (expired at +330)
    // pending for +350.
    assert_eq!(count("destruction_scheduled"), 3);
    assert!(count("activated") >= 4);
    assert_eq!(service.audit_verify().await.unwrap(), Ok(events.len()));
}
