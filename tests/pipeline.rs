//! The one signing pipeline, in process over a real SoftHSM2 token (see common/local.rs): with
//! `audit_signatures = true` every signature of every profile (each JWT profile, generic JWS,
//! `http_message`) leaves one `signed` event with its kid, key set, profile, client and the
//! SHA-256 of exactly the bytes signed; a refused request leaves none.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::local::Local;
use common::*;
use serde_json::{Value, json};
use signet::signing::http_sig::{HttpMessage, parse_sign_request, prepare, verify_with_jwks};

fn audited<'a>(name: &'a str, profile: &'a str, alg: &'a str) -> Set<'a> {
    Set {
        name,
        profile,
        alg,
        extra: "audit_signatures = true",
    }
}

/// The `signed` events of the audit trail, in order.
async fn signed_events(local: &Local) -> Vec<Value> {
    let (status, out) = local.get("/v1/audit?limit=1000", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{out}");
    out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signed")
        .cloned()
        .collect()
}

fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_profile_records_one_audit_event_per_signature() {
    let sets = [
        audited("id", "id_token", "ES256"),
        audited("at", "access_token", "ES256"),
        audited("jarm", "jarm", "EdDSA"),
        audited("intro", "introspection", "ES256"),
        audited("logout", "logout_token", "ES256"),
        audited("generic", "generic", "ES256"),
        audited("http", "http_message", "ecdsa-p256-sha256"),
        set("quiet", "id_token", "ES256"),
    ];
    let local = Local::start(&sets, |c| c).await;
    let now = local.service.now();
    // (key set, profile, signed bytes, kid)
    let mut expected: Vec<(String, &str, String, String)> = Vec::new();

    for s in sets.iter().filter(|s| s.profile != "http_message") {
        let path = format!("/v1/key-sets/{}/sign/jwt", s.name);
        let body = json!({"claims": claims_for(s.profile, now)});
        let (status, out) = local.post(&path, Some(SIGNER_TOKEN), &body).await;
        assert_eq!(status, 200, "{}: {out}", s.name);
        let jwt = out["jwt"].as_str().unwrap();
        let jwks = local
            .get(&format!("/v1/key-sets/{}/jwks", s.name), None)
            .await
            .1;
        verify_jwt(jwt, &jwks);
        if s.name != "quiet" {
            let input = jwt.rsplit_once('.').unwrap().0.to_string();
            expected.push((
                s.name.into(),
                s.profile,
                input,
                out["kid"].as_str().unwrap().into(),
            ));
        }
    }
    // Generic JWS, detached: the event still digests the whole signing input.
    let body = json!({"payload": "eyJhIjoxfQ", "detached": true});
    let (status, out) = local
        .post("/v1/key-sets/generic/sign/jws", Some(SIGNER_TOKEN), &body)
        .await;
    assert_eq!(status, 200, "{out}");
    let parts: Vec<&str> = out["jws"].as_str().unwrap().split('.').collect();
    assert_eq!(parts[1], "", "detached");
    let input = format!("{}.eyJhIjoxfQ", parts[0]);
    expected.push((
        "generic".into(),
        "generic",
        input,
        out["kid"].as_str().unwrap().into(),
    ));

    // RFC 9421: the event digests the signature base.
    let request = json!({
        "message": {"method": "POST", "target_uri": "https://rs.example.com/pay",
            "headers": [["Authorization", "DPoP x"]], "body": B64.encode(b"{}")},
        "covered": ["@method", "@target-uri", "authorization", "content-digest"],
        "content_digest": "sha-256", "created": now,
    });
    let (status, out) = local
        .post("/v1/key-sets/http/sign/http", Some(SIGNER_TOKEN), &request)
        .await;
    assert_eq!(status, 200, "{out}");
    let kid = out["kid"].as_str().unwrap();
    let parsed = parse_sign_request(request.to_string().as_bytes()).unwrap();
    let base = prepare(&parsed, kid, None, now).unwrap().signature_base;
    let mut message: Value = request["message"].clone();
    message["headers"]
        .as_array_mut()
        .unwrap()
        .push(json!(["Content-Digest", out["content_digest"]]));
    let message: HttpMessage = serde_json::from_value(message).unwrap();
    let jwks = local.get("/v1/key-sets/http/jwks", None).await.1;
    verify_with_jwks(
        &message,
        None,
        out["signature_input"].as_str().unwrap(),
        out["signature"].as_str().unwrap(),
        None,
        &jwks,
    )
    .expect("the signature verifies against the JWKS");
    expected.push(("http".into(), "http_message", base, kid.into()));

    // Refused requests sign nothing and record nothing.
    let bad = json!({"claims": {"iss": "https://evil.example", "sub": "a", "aud": "c", "iat": now, "exp": now + 60}});
    let (status, _) = local
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &bad)
        .await;
    assert_eq!(status, 400);

    let events = signed_events(&local).await;
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event, (set, profile, input, kid)) in events.iter().zip(&expected) {
        assert_eq!(event["key_set"], set.as_str(), "{event}");
        assert_eq!(event["kid"], kid.as_str(), "{event}");
        assert_eq!(event["actor"], "signer", "{event}");
        assert_eq!(event["detail"]["profile"], *profile, "{event}");
        assert_eq!(
            event["detail"]["input_sha256"],
            sha256_of(input.as_bytes()),
            "{set}: the digest of exactly the signed bytes"
        );
        assert_eq!(
            event["detail"].as_object().unwrap().len(),
            2,
            "nothing else: {event}"
        );
    }
}

/// The service API directly, as the next routes will call it: the pipeline checks the caller's
/// permission itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_decides_who_may_sign() {
    use serde_json::Map;
    use signet::service::{ServiceError, SignJwt};
    let local = Local::start(
        &[
            set("id", "id_token", "ES256"),
            set("at", "access_token", "ES256"),
        ],
        |c| c,
    )
    .await;
    let now = local.service.now();
    let claims = claims_for("id_token", now).as_object().unwrap().clone();
    let sign = |client: &'static str, set: &'static str| {
        let op = SignJwt::new(claims.clone(), Map::new());
        local.service.sign(local.client(client), set, op)
    };
    let signed = sign("signer", "id").await.unwrap();
    assert_eq!(signed.alg, "ES256");
    let jwks = local.get("/v1/key-sets/id/jwks", None).await.1;
    verify_jwt(&signed.token, &jwks);
    assert!(matches!(
        sign("limited", "at").await,
        Err(ServiceError::Forbidden { .. })
    ));
    assert!(matches!(
        sign("admin", "id").await,
        Err(ServiceError::Forbidden { .. })
    ));
    assert!(matches!(
        sign("signer", "nope").await,
        Err(ServiceError::KeySetNotFound(_))
    ));
}
