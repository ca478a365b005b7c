//! Every policy violation and bad request gets its documented status and stable code, as RFC 9457
//! problem JSON.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn policy_violations_and_bad_requests_get_their_status_and_code() {
    let sets = [
        set("id", "id_token", "ES256"),
        set("at", "access_token", "ES256"),
        set("intro", "introspection", "ES256"),
        set("logout", "logout_token", "ES256"),
        set("generic", "generic", "ES256"),
    ];
    let (_token, _dir, signet) = serve("errors", &sets).await;
    let now = now();
    let id = json!({"iss": ISSUER, "sub": "alice", "aud": "c", "iat": now, "exp": now + 60});
    let with = |k: &str, v: Value| {
        let mut c = id.clone();
        c[k] = v;
        json!({"claims": c})
    };
    let without = |k: &str| {
        let mut c = id.clone();
        c.as_object_mut().unwrap().remove(k);
        json!({"claims": c})
    };
    let header = |h: Value| json!({"claims": id, "header": h});
    let jwt = "/v1/key-sets/id/sign/jwt";
    let s = Some(SIGNER_TOKEN);
    // (what, path, bearer token, body, status, code)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Value, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no token",
            jwt,
            None,
            json!({"claims": id}),
            401,
            "unauthorized",
        ),
        (
            "unknown token",
            jwt,
            Some("nope"),
            json!({"claims": id}),
            401,
            "invalid_token",
        ),
        (
            "admin cannot sign",
            jwt,
            Some(ADMIN_TOKEN),
            json!({"claims": id}),
            403,
            "forbidden",
        ),
        (
            "signer outside its key sets",
            "/v1/key-sets/at/sign/jwt",
            Some(LIMITED_TOKEN),
            json!({"claims": id}),
            403,
            "forbidden",
        ),
        (
            "unknown key set",
            "/v1/key-sets/nope/sign/jwt",
            s,
            json!({"claims": id}),
            404,
            "key_set_not_found",
        ),
        ("unknown route", "/v1/nope", s, json!({}), 404, "not_found"),
        (
            "shape",
            jwt,
            s,
            json!({"claim": id}),
            400,
            "invalid_request",
        ),
        (
            "unknown member",
            jwt,
            s,
            json!({"claims": id, "extra": 1}),
            400,
            "invalid_request",
        ),
        ("missing sub", jwt, s, without("sub"), 400, "claim_missing"),
        ("missing exp", jwt, s, without("exp"), 400, "claim_missing"),
        (
            "wrong issuer",
            jwt,
            s,
            with("iss", json!("https://evil.example")),
            400,
            "issuer_mismatch",
        ),
        (
            "too long",
            jwt,
            s,
            with("exp", json!(now + 7200)),
            400,
            "lifetime_exceeded",
        ),
        (
            "exp before iat",
            jwt,
            s,
            with("exp", json!(now - 10)),
            400,
            "claim_invalid",
        ),
        (
            "iat in the future",
            jwt,
            s,
            with("iat", json!(now + 3600)),
            400,
            "iat_out_of_range",
        ),
        (
            "iat not a number",
            jwt,
            s,
            with("iat", json!("now")),
            400,
            "claim_invalid",
        ),
        (
            "aud empty",
            jwt,
            s,
            with("aud", json!([])),
            400,
            "claim_invalid",
        ),
        (
            "alg in header",
            jwt,
            s,
            header(json!({"alg": "none"})),
            400,
            "header_forbidden",
        ),
        (
            "kid in header",
            jwt,
            s,
            header(json!({"kid": "x"})),
            400,
            "header_forbidden",
        ),
        (
            "jku in header",
            jwt,
            s,
            header(json!({"jku": "https://evil"})),
            400,
            "header_forbidden",
        ),
        (
            "jwk in header",
            jwt,
            s,
            header(json!({"jwk": {}})),
            400,
            "header_forbidden",
        ),
        (
            "crit in header",
            jwt,
            s,
            header(json!({"crit": ["exp"]})),
            400,
            "header_forbidden",
        ),
        (
            "x5u in header",
            jwt,
            s,
            header(json!({"x5u": "https://evil"})),
            400,
            "header_forbidden",
        ),
        (
            "other typ",
            jwt,
            s,
            header(json!({"typ": "at+jwt"})),
            400,
            "typ_mismatch",
        ),
        (
            "other member",
            jwt,
            s,
            header(json!({"foo": 1})),
            400,
            "header_not_allowed",
        ),
        (
            "jws on a JWT profile",
            "/v1/key-sets/id/sign/jws",
            s,
            json!({"payload": "e30"}),
            400,
            "wrong_profile",
        ),
        (
            "payload not base64url",
            "/v1/key-sets/generic/sign/jws",
            s,
            json!({"payload": "!!"}),
            400,
            "payload_not_base64url",
        ),
        (
            "access token without client_id",
            "/v1/key-sets/at/sign/jwt",
            s,
            json!({"claims": {"iss": ISSUER, "sub": "a", "aud": "r", "iat": now, "exp": now + 60, "jti": "j"}}),
            400,
            "claim_missing",
        ),
        (
            "introspection not an object",
            "/v1/key-sets/intro/sign/jwt",
            s,
            json!({"claims": {"iss": ISSUER, "aud": "r", "iat": now, "token_introspection": true}}),
            400,
            "claim_invalid",
        ),
        (
            "introspection inactive with members",
            "/v1/key-sets/intro/sign/jwt",
            s,
            json!({"claims": {"iss": ISSUER, "aud": "r", "iat": now,
                "token_introspection": {"active": false, "sub": "a"}}}),
            400,
            "claim_invalid",
        ),
        (
            "logout with nonce",
            "/v1/key-sets/logout/sign/jwt",
            s,
            json!({"claims": {"iss": ISSUER, "aud": "c", "iat": now, "jti": "j", "sub": "a", "nonce": "n",
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}}),
            400,
            "claim_forbidden",
        ),
        (
            "logout without event",
            "/v1/key-sets/logout/sign/jwt",
            s,
            json!({"claims": {"iss": ISSUER, "aud": "c", "iat": now, "jti": "j", "sub": "a", "events": {}}}),
            400,
            "claim_invalid",
        ),
    ];
    for (what, path, token, body, status, code) in cases {
        let (got, problem) = signet.post(path, token, &body).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{what}: {problem}"
        );
        assert_eq!(problem["status"], status, "{what}");
        assert!(
            problem["title"].is_string() && problem["type"].is_string(),
            "{what}: {problem}"
        );
    }

    // Raw-body cases: malformed JSON, wrong media type, too large, wrong method.
    let raw = |body: &'static str, content_type: &'static str| {
        signet
            .http
            .post(signet.url(jwt))
            .bearer_auth(SIGNER_TOKEN)
            .header("content-type", content_type)
            .body(body)
    };
    let check = |r: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], code, "{p}");
    };
    check(
        raw("{\"claims\": ", "application/json")
            .send()
            .await
            .unwrap(),
        400,
        "malformed_json",
    )
    .await;
    check(
        raw("{}", "text/plain").send().await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let big = format!("{{\"claims\": {{\"x\": \"{}\"}}}}", "a".repeat(70_000));
    let r = signet
        .http
        .post(signet.url(jwt))
        .bearer_auth(SIGNER_TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    check(r, 413, "payload_too_large").await;
    let r = signet
        .http
        .get(signet.url(jwt))
        .bearer_auth(SIGNER_TOKEN)
        .send()
        .await
        .unwrap();
    check(r, 405, "method_not_allowed").await;
    let r = signet
        .http
        .get(signet.url("/v1/key-sets"))
        .bearer_auth(SIGNER_TOKEN)
        .send()
        .await
        .unwrap();
    check(r, 403, "forbidden").await;
    let r = signet
        .http
        .post(signet.url(jwt))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    // The admin lists the key sets.
    let r = signet
        .http
        .get(signet.url("/v1/key-sets"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let first = &list["key_sets"][0];
    assert_eq!(first["name"], "id");
    assert!(
        first["active_kid"].is_string() && first["next_kid"].is_string(),
        "{first}"
    );
}
