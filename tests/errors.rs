//! Every problem code of `signet::http::CODES` reached through the API, with its documented
//! status, as RFC 9457 problem JSON: the table and the codes the API answers with cannot drift
//! apart. In process (`router(state).oneshot`, see common/local.rs): the service core over a real
//! SoftHSM2 token and a real SQLite store, no `signet` process and no network.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request};
use common::local::{Local, process_token};
use common::*;
use serde_json::{Value, json};
use signet::hsm::KeySpec;
use signet::http::CODES;
use signet::http::tls::{CertIdentity, TlsPeer};
use signet::service::BackendState;

const SLOW_TOKEN: &str = "test-slow-token";
const SECOND_ADMIN: &str = "test-second-admin-token";

/// The codes reached so far, each checked against the table.
#[derive(Default)]
struct Reached(BTreeSet<String>);

impl Reached {
    /// Checks one answer: the code's status from the table, problem JSON, Retry-After on a 503.
    fn check(&mut self, what: &str, answer: (u16, HeaderMap, Value), code: &str) {
        let (status, headers, problem) = answer;
        let entry = CODES
            .iter()
            .find(|c| c.code == code)
            .unwrap_or_else(|| panic!("{what}: `{code}` is not in http::CODES"));
        assert_eq!(
            (status, problem["code"].as_str()),
            (entry.status.as_u16(), Some(code)),
            "{what}: {problem}"
        );
        assert_eq!(problem["status"], status, "{what}");
        assert!(
            problem["title"].is_string() && problem["type"].is_string(),
            "{what}: {problem}"
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
        if status == 503 || status == 429 {
            assert!(headers.contains_key("retry-after"), "{what}: Retry-After");
        }
        self.0.insert(code.to_string());
    }
}

fn request(method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap()
}

fn post(path: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    request(Method::POST, path, token, Some(body))
}

/// A request over a TLS connection whose verified client certificate names `cn`, `uris`.
fn with_cert(mut req: Request<Body>, cn: &[&str], uris: &[&str]) -> Request<Body> {
    let cert = CertIdentity {
        common_names: cn.iter().map(|s| s.to_string()).collect(),
        uris: uris.iter().map(|s| s.to_string()).collect(),
        dns_names: Vec::new(),
    };
    let remote: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(TlsPeer {
        remote,
        cert: Some(Arc::new(cert)),
    }));
    req
}

/// The key sets of the main service: one per JWT profile, `generic`, `http_message`, and some to
/// break on purpose.
fn sets() -> Vec<Set<'static>> {
    vec![
        set("id", "id_token", "ES256"),
        // Destroyed within the request (the default `destroy_delay` of 7d schedules it).
        Set {
            name: "at",
            profile: "access_token",
            alg: "ES256",
            extra: "destroy_delay = \"0s\"",
        },
        set("intro", "introspection", "ES256"),
        set("logout", "logout_token", "ES256"),
        set("generic", "generic", "ES256"),
        set("http", "http_message", "ed25519"),
        set("spare", "id_token", "ES256"),
        set("race", "id_token", "ES256"),
        set("doomed", "id_token", "ES256"),
        set("faulty", "id_token", "ES256"),
        set("broken", "id_token", "ES256"),
        set("multi", "id_token", "ES256"),
        set("held", "id_token", "ES256"),
        Set {
            name: "certified",
            profile: "id_token",
            alg: "ES256",
            extra: "require_certificate = true",
        },
    ]
}

/// The standard config plus a rate-limited admin and two mTLS signers (the TLS files are only
/// read by `signet serve`, never in process).
fn edit(c: String) -> String {
    let tls = "\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n\
               client_ca = \"/nonexistent/ca.pem\"\n\n[store]";
    c.replacen("\n[store]", tls, 1).replacen(
        "name = \"multi\"\nprofile = \"id_token\"",
        "name = \"multi\"\nprofiles = [\"id_token\", \"jarm\"]",
        1,
    ) + &format!(
        r#"
[[client]]
name = "slow"
role = "admin"
token_sha256 = "{}"
rate = "1/m"

[[client]]
name = "second"
role = "admin"
token_sha256 = "{}"

[[client]]
name = "by-cn"
role = "signer"
key_sets = ["*"]
cert_subject = "as.example.org"

[[client]]
name = "by-uri"
role = "signer"
key_sets = ["*"]
cert_san = "spiffe://example.org/as"

[approvals]
require = ["force"]
expire = "1h"
"#,
        sha256_hex(SLOW_TOKEN),
        sha256_hex(SECOND_ADMIN),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_problem_code_is_reachable_through_the_api() {
    let main = Local::start(&sets(), edit).await;
    let mut reached = Reached::default();
    callers(&main, &mut reached).await;
    bodies(&main, &mut reached).await;
    profiles(&main, &mut reached).await;
    compact(&main, &mut reached).await;
    http_message(&main, &mut reached).await;
    admin(&main, &mut reached).await;
    approvals(&main, &mut reached).await;
    certificates(&main, &mut reached).await;
    broken_keys(&main, &mut reached).await;
    replicas(&main, &mut reached).await;
    deadlines(&main, &mut reached).await;
    audit_and_store(&mut reached).await;
    let listed: BTreeSet<String> = CODES.iter().map(|c| c.code.to_string()).collect();
    let unreached: Vec<_> = listed.difference(&reached.0).collect();
    assert!(
        unreached.is_empty(),
        "listed but never reached: {unreached:?}"
    );
    assert_eq!(reached.0, listed);
}

fn id_claims(local: &Local) -> Value {
    let now = local.service.now();
    json!({"iss": ISSUER, "sub": "alice", "aud": "c", "iat": now, "exp": now + 60})
}

/// Authentication, quotas, permission.
async fn callers(main: &Local, reached: &mut Reached) {
    let jwt = "/v1/key-sets/id/sign/jwt";
    let body = json!({"claims": id_claims(main)});
    let cases = [
        ("no token", None, "unauthorized"),
        ("unknown token", Some("nope"), "invalid_token"),
        ("admin cannot sign", Some(ADMIN_TOKEN), "forbidden"),
    ];
    for (what, token, code) in cases {
        let answer = main.send(post(jwt, token, &body)).await;
        if code == "unauthorized" {
            assert_eq!(answer.1["www-authenticate"], "Bearer");
        }
        reached.check(what, answer, code);
    }
    let limited = post("/v1/key-sets/at/sign/jwt", Some(LIMITED_TOKEN), &body);
    reached.check(
        "signer outside its key sets",
        main.send(limited).await,
        "forbidden",
    );
    let (status, out) = main.post(jwt, Some(LIMITED_TOKEN), &body).await;
    assert_eq!(
        status, 200,
        "the limited signer signs with its own key set: {out}"
    );
    let list = request(Method::GET, "/v1/key-sets", Some(SIGNER_TOKEN), None);
    reached.check("a signer may not list", main.send(list).await, "forbidden");

    // Quotas: the slow admin may make one request a minute.
    let (status, _) = main.get("/v1/key-sets", Some(SLOW_TOKEN)).await;
    assert_eq!(status, 200);
    let again = request(Method::GET, "/v1/key-sets", Some(SLOW_TOKEN), None);
    reached.check("over the quota", main.send(again).await, "rate_limited");

    // mTLS identities.
    let sign = || post(jwt, None, &body);
    let (status, _, out) = main.send(with_cert(sign(), &["as.example.org"], &[])).await;
    assert_eq!(status, 200, "a certificate signer: {out}");
    let unknown = with_cert(sign(), &["other.example.org"], &[]);
    reached.check(
        "unknown certificate",
        main.send(unknown).await,
        "unknown_client_certificate",
    );
    let both = with_cert(sign(), &["as.example.org"], &["spiffe://example.org/as"]);
    reached.check(
        "two clients",
        main.send(both).await,
        "ambiguous_client_certificate",
    );
    let conflicting = with_cert(
        post(jwt, Some(SIGNER_TOKEN), &body),
        &["as.example.org"],
        &[],
    );
    reached.check(
        "certificate and token disagree",
        main.send(conflicting).await,
        "conflicting_credentials",
    );
}

/// `sign/compact`: a caller-built JWS (the profile codes are shared with `sign/jwt`).
async fn compact(main: &Local, reached: &mut Reached) {
    use base64::Engine as _;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let (_, keys) = main
        .get("/v1/key-sets/id/signing-key", Some(SIGNER_TOKEN))
        .await;
    let kid = keys["active"]["kid"].as_str().unwrap().to_string();
    let claims = id_claims(main).to_string();
    let header = |h: Value| format!("{}.{}", b64(&h.to_string()), b64(&claims));
    let cases = [
        (
            "id",
            header(json!({"alg": "ES256", "kid": "other"})),
            "kid_not_active",
        ),
        (
            "id",
            header(json!({"alg": "PS256", "kid": kid})),
            "alg_mismatch",
        ),
        ("id", "no-dot".to_string(), "malformed_signing_input"),
        (
            "id",
            format!(
                "{}.{}",
                b64(&json!({"alg": "ES256", "kid": kid}).to_string()),
                b64("[]")
            ),
            "payload_not_object",
        ),
        (
            "id",
            format!(
                "{}.{}",
                b64(&json!({"alg": "ES256", "kid": kid}).to_string()),
                b64(r#"{"a":1,"a":2}"#)
            ),
            "duplicate_member",
        ),
        (
            "multi",
            header(json!({"alg": "ES256", "typ": "at+jwt"})),
            "profile_unmatched",
        ),
    ];
    for (set, input, code) in cases {
        let path = format!("/v1/key-sets/{set}/sign/compact");
        let answer = main
            .send(post(
                &path,
                Some(SIGNER_TOKEN),
                &json!({ "signing_input": input }),
            ))
            .await;
        if code == "kid_not_active" {
            assert_eq!(answer.2["active_kid"], kid.as_str(), "{}", answer.2);
            assert!(answer.2["next_kid"].is_string(), "{}", answer.2);
        }
        reached.check(code, answer, code);
    }
}

/// Routes, methods, bodies and query strings.
async fn bodies(main: &Local, reached: &mut Reached) {
    let jwt = "/v1/key-sets/id/sign/jwt";
    let s = Some(SIGNER_TOKEN);
    let claims = id_claims(main);
    let cases = [
        (
            "unknown key set",
            "/v1/key-sets/nope/sign/jwt",
            json!({"claims": claims}),
            "key_set_not_found",
        ),
        ("unknown route", "/v1/nope", json!({}), "not_found"),
        ("shape", jwt, json!({"claim": claims}), "invalid_request"),
        (
            "unknown member",
            jwt,
            json!({"claims": claims, "extra": 1}),
            "invalid_request",
        ),
    ];
    for (what, path, body, code) in cases {
        reached.check(what, main.send(post(path, s, &body)).await, code);
    }
    let raw = |body: String, content_type: &str| {
        Request::post(jwt)
            .header("authorization", format!("Bearer {SIGNER_TOKEN}"))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let malformed = raw("{\"claims\": ".into(), "application/json");
    reached.check(
        "malformed JSON",
        main.send(malformed).await,
        "malformed_json",
    );
    let text = raw("{}".into(), "text/plain");
    reached.check("not JSON", main.send(text).await, "unsupported_media_type");
    let big = format!("{{\"claims\": {{\"x\": \"{}\"}}}}", "a".repeat(70_000));
    reached.check(
        "too large",
        main.send(raw(big, "application/json")).await,
        "payload_too_large",
    );
    let get = request(Method::GET, jwt, s, None);
    reached.check("wrong method", main.send(get).await, "method_not_allowed");
    for query in ["limit=9223372036854775808", "after=x", "limit=-"] {
        let req = request(
            Method::GET,
            &format!("/v1/audit?{query}"),
            Some(ADMIN_TOKEN),
            None,
        );
        reached.check(query, main.send(req).await, "invalid_request");
    }
    let (status, out) = main
        .get("/v1/audit?after=0&limit=5", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(out["events"].as_array().unwrap().len() <= 5);
}

/// Claims and headers that break their profile; routes that do not fit the profile.
async fn profiles(main: &Local, reached: &mut Reached) {
    let now = main.service.now();
    let id = id_claims(main);
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
    let logout_event = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("missing sub", jwt, without("sub"), "claim_missing"),
        ("missing exp", jwt, without("exp"), "claim_missing"),
        (
            "wrong issuer",
            jwt,
            with("iss", json!("https://evil.example")),
            "issuer_mismatch",
        ),
        (
            "too long",
            jwt,
            with("exp", json!(now + 7200)),
            "lifetime_exceeded",
        ),
        (
            "exp before iat",
            jwt,
            with("exp", json!(now - 10)),
            "claim_invalid",
        ),
        (
            "iat in the future",
            jwt,
            with("iat", json!(now + 3600)),
            "iat_out_of_range",
        ),
        (
            "iat not a number",
            jwt,
            with("iat", json!("now")),
            "claim_invalid",
        ),
        ("aud empty", jwt, with("aud", json!([])), "claim_invalid"),
        (
            "alg in header",
            jwt,
            header(json!({"alg": "none"})),
            "header_forbidden",
        ),
        (
            "kid in header",
            jwt,
            header(json!({"kid": "x"})),
            "header_forbidden",
        ),
        (
            "jku in header",
            jwt,
            header(json!({"jku": "https://evil"})),
            "header_forbidden",
        ),
        (
            "jwk in header",
            jwt,
            header(json!({"jwk": {}})),
            "header_forbidden",
        ),
        (
            "crit in header",
            jwt,
            header(json!({"crit": ["exp"]})),
            "header_forbidden",
        ),
        (
            "x5u in header",
            jwt,
            header(json!({"x5u": "https://evil"})),
            "header_forbidden",
        ),
        (
            "other typ",
            jwt,
            header(json!({"typ": "at+jwt"})),
            "typ_mismatch",
        ),
        (
            "other member",
            jwt,
            header(json!({"foo": 1})),
            "header_not_allowed",
        ),
        (
            "jws on a JWT profile",
            "/v1/key-sets/id/sign/jws",
            json!({"payload": "e30"}),
            "wrong_profile",
        ),
        (
            "jwt on http_message",
            "/v1/key-sets/http/sign/jwt",
            json!({"claims": id}),
            "wrong_profile",
        ),
        (
            "payload not base64url",
            "/v1/key-sets/generic/sign/jws",
            json!({"payload": "!!"}),
            "payload_not_base64url",
        ),
        (
            "access token without client_id",
            "/v1/key-sets/at/sign/jwt",
            json!({"claims": {"iss": ISSUER, "sub": "a", "aud": "r", "iat": now, "exp": now + 60, "jti": "j"}}),
            "claim_missing",
        ),
        (
            "introspection not an object",
            "/v1/key-sets/intro/sign/jwt",
            json!({"claims": {"iss": ISSUER, "aud": "r", "iat": now, "token_introspection": true}}),
            "claim_invalid",
        ),
        (
            "introspection inactive with members",
            "/v1/key-sets/intro/sign/jwt",
            json!({"claims": {"iss": ISSUER, "aud": "r", "iat": now,
                "token_introspection": {"active": false, "sub": "a"}}}),
            "claim_invalid",
        ),
        (
            "logout with nonce",
            "/v1/key-sets/logout/sign/jwt",
            json!({"claims": {"iss": ISSUER, "aud": "c", "iat": now, "jti": "j", "sub": "a",
                "nonce": "n", "events": logout_event}}),
            "claim_forbidden",
        ),
        (
            "logout without event",
            "/v1/key-sets/logout/sign/jwt",
            json!({"claims": {"iss": ISSUER, "aud": "c", "iat": now, "jti": "j", "sub": "a", "events": {}}}),
            "claim_invalid",
        ),
    ];
    for (what, path, body, code) in cases {
        reached.check(
            what,
            main.send(post(path, Some(SIGNER_TOKEN), &body)).await,
            code,
        );
    }
}

/// `sign/http`: every RFC 9421 code of the signing side, and the key set's time rules.
async fn http_message(main: &Local, reached: &mut Reached) {
    let now = main.service.now();
    let req = json!({"method": "POST", "target_uri": "https://example.com/a?q=1",
        "headers": [["Authorization", "DPoP x"]], "body": "eyJoZWxsbyI6ICJ3b3JsZCJ9"});
    let with_header = |name: &str, value: &str| {
        let mut m = req.clone();
        m["headers"]
            .as_array_mut()
            .unwrap()
            .push(json!([name, value]));
        m
    };
    let other_digest = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";
    // The request with one covered component.
    let on_req = |covered: &str, code| (json!({"message": req, "covered": [covered]}), code);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"message": req}), "invalid_request"),
        (
            json!({"message": {"body": "not base64!"}, "covered": []}),
            "bad_body_base64",
        ),
        (
            json!({"message": req, "covered": [], "label": "Sig"}),
            "bad_label",
        ),
        (
            json!({"message": req, "covered": [], "nonce": "n\u{e9}"}),
            "bad_signature_parameter",
        ),
        (
            json!({"message": req, "covered": [], "created": now, "expires": now}),
            "expires_not_after_created",
        ),
        on_req("@method;;", "bad_component"),
        (
            json!({"message": req, "covered": ["@method", "\"@method\""]}),
            "duplicate_component",
        ),
        on_req("@body", "unknown_derived_component"),
        on_req("@signature-params", "signature_params_covered"),
        on_req("@method;foo", "unknown_component_parameter"),
        on_req("date;bs;sf", "invalid_component_parameter"),
        on_req("expires;tr", "trailers_unsupported"),
        on_req("@status", "component_not_applicable"),
        (
            json!({"message": {"status": 200}, "covered": ["@status", "@method;req"]}),
            "request_required",
        ),
        on_req("dpop", "missing_field"),
        (
            json!({"message": {"target_uri": "https://e.com/"}, "covered": ["@method"]}),
            "missing_message_part",
        ),
        (
            json!({"message": {"target_uri": "/a"}, "covered": ["@path"]}),
            "invalid_target_uri",
        ),
        (
            json!({"message": {"status": 42}, "covered": ["@status"]}),
            "invalid_status",
        ),
        (
            json!({"message": with_header("X-Name", "Zo\u{eb}"), "covered": ["x-name"]}),
            "non_ascii_value",
        ),
        on_req("@query-param;name=\"p\"", "missing_query_param"),
        (
            json!({"message": {"target_uri": "https://e.com/?p=1&p=2"}, "covered": ["@query-param;name=\"p\""]}),
            "ambiguous_query_param",
        ),
        (
            json!({"message": with_header("X-A", "(a"), "covered": ["x-a;key=\"a\""]}),
            "not_a_dictionary",
        ),
        (
            json!({"message": with_header("X-A", "b=1"), "covered": ["x-a;key=\"a\""]}),
            "missing_dictionary_key",
        ),
        (
            json!({"message": with_header("X-A", "(a"), "covered": ["x-a;sf"]}),
            "sf_parse_failed",
        ),
        (
            json!({"message": {"method": "GET"}, "covered": [], "content_digest": "sha-256"}),
            "content_digest_without_body",
        ),
        (
            json!({"message": with_header("Content-Digest", "sha-256=1"), "covered": ["content-digest"]}),
            "content_digest_invalid",
        ),
        (
            json!({"message": with_header("Content-Digest", other_digest), "covered": ["content-digest"]}),
            "content_digest_mismatch",
        ),
        (
            json!({"message": req, "covered": ["@method"], "expires": now + 3601}),
            "lifetime_exceeded",
        ),
        (
            json!({"message": req, "covered": ["@method"], "created": now - 3600}),
            "created_out_of_range",
        ),
    ];
    let path = "/v1/key-sets/http/sign/http";
    for (body, code) in cases {
        let answer = main.send(post(path, Some(SIGNER_TOKEN), &body)).await;
        reached.check(&body.to_string(), answer, code);
    }
    // The same request within the limits is signed.
    let ok = json!({"message": req, "covered": ["@method"], "expires": now + 3600});
    let (status, out) = main.post(path, Some(SIGNER_TOKEN), &ok).await;
    assert_eq!(status, 200, "{out}");
    // Malformed JSON keeps its usual code; who may sign, and where.
    let malformed = Request::post(path)
        .header("authorization", format!("Bearer {SIGNER_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"message\": "))
        .unwrap();
    reached.check(
        "malformed sign/http",
        main.send(malformed).await,
        "malformed_json",
    );
    let checks = [
        (path, Some(LIMITED_TOKEN), "forbidden"),
        (path, Some(ADMIN_TOKEN), "forbidden"),
        (path, None, "unauthorized"),
        (
            "/v1/key-sets/nope/sign/http",
            Some(SIGNER_TOKEN),
            "key_set_not_found",
        ),
        (
            "/v1/key-sets/id/sign/http",
            Some(SIGNER_TOKEN),
            "wrong_profile",
        ),
    ];
    for (path, token, code) in checks {
        reached.check(path, main.send(post(path, token, &ok)).await, code);
    }
}

fn active_and_next(local: &Local, set: &str) -> (String, String) {
    let records = local.service.records(set);
    let now = local.service.now();
    let active = records.iter().rfind(|r| r.activate_at <= now).unwrap();
    let next = records.iter().find(|r| r.activate_at > now).unwrap();
    (active.kid.clone(), next.kid.clone())
}

/// Operator calls the lifecycle rule or the request refuses.
async fn admin(main: &Local, reached: &mut Reached) {
    let a = Some(ADMIN_TOKEN);
    let (id_active, _) = active_and_next(main, "id");
    let (_, at_next) = active_and_next(main, "at");
    process_token().keypair("c0ffee02", "careless", "EC:prime256v1", false);
    process_token().keypair("c0ffee03", "wrong-type", "rsa:2048", true);
    process_token().pem_keypair("c0ffee04", "from-pem");
    process_token().keypair("c0ffee05", "twin", "EC:prime256v1", true);
    process_token().keypair("c0ffee06", "twin", "EC:prime256v1", true);
    main.wait_for_keys(&["careless", "wrong-type", "from-pem", "twin"])
        .await;
    let revoke = |set: &str, kid: &str| format!("/v1/key-sets/{set}/keys/{kid}/revoke");
    let checks = [
        (
            "unknown kid",
            revoke("id", "nope"),
            json!({"reason": "x"}),
            "key_not_found",
        ),
        (
            "no reason",
            revoke("id", &id_active),
            json!({"reason": " "}),
            "reason_required",
        ),
    ];
    for (what, path, body, code) in checks {
        reached.check(what, main.send(post(&path, a, &body)).await, code);
    }
    let rotate = "/v1/key-sets/id/rotate";
    let past = json!({"activate_at": "2000-01-01T00:00:00Z"});
    reached.check(
        "in the past",
        main.send(post(rotate, a, &past)).await,
        "activate_at_in_past",
    );
    let soon = json!({"activate_at": "soon"});
    reached.check(
        "not a time",
        main.send(post(rotate, a, &soon)).await,
        "invalid_time",
    );
    let now = request(Method::POST, rotate, a, None);
    reached.check(
        "next key too young",
        main.send(now).await,
        "min_publish_not_met",
    );
    let imports = [
        ("bad id", json!({"id": "zz"}), "invalid_id"),
        (
            "no such pair",
            json!({"id": "deadbeef"}),
            "hsm_key_not_found",
        ),
        (
            "extractable",
            json!({"id": "c0ffee02"}),
            "key_not_protected",
        ),
        (
            "RSA for ES256",
            json!({"label": "wrong-type"}),
            "key_type_mismatch",
        ),
        (
            "written from a PEM file",
            json!({"id": "c0ffee04", "accept_exposed_material": true}),
            "key_material_exposed",
        ),
        (
            "a label two objects carry",
            json!({"label": "twin"}),
            "hsm_key_ambiguous",
        ),
        (
            "already managed",
            json!({"id": hex::encode(&id_active)}),
            "key_exists",
        ),
    ];
    for (what, body, code) in imports {
        let import = post("/v1/key-sets/id/keys/import", a, &body);
        reached.check(what, main.send(import).await, code);
    }
    let destroy = request(
        Method::DELETE,
        &format!("/v1/key-sets/id/keys/{id_active}"),
        a,
        None,
    );
    reached.check(
        "destroy the active key",
        main.send(destroy).await,
        "key_in_use",
    );
    let cancel = post(
        &format!("/v1/key-sets/id/keys/{id_active}/cancel-destruction"),
        a,
        &json!({}),
    );
    reached.check(
        "cancel a destruction never scheduled",
        main.send(cancel).await,
        "no_pending_destruction",
    );
    // Revoke and destroy twice.
    let (status, out) = main
        .post(&revoke("at", &at_next), a, &json!({"reason": "test"}))
        .await;
    assert_eq!(status, 200, "{out}");
    let again = post(&revoke("at", &at_next), a, &json!({"reason": "test"}));
    reached.check("revoked twice", main.send(again).await, "already_revoked");
    let destroy = format!("/v1/key-sets/at/keys/{at_next}");
    let (status, out) = main.call(Method::DELETE, &destroy, a, None).await;
    assert_eq!(
        (status, &out["destroyed_at"].is_string()),
        (200, &true),
        "{out}"
    );
    let again = request(Method::DELETE, &destroy, a, None);
    reached.check(
        "destroyed twice",
        main.send(again).await,
        "already_destroyed",
    );
}

/// The two-person rule (`[approvals] require = ["force"]`): deciding an approval.
async fn approvals(main: &Local, reached: &mut Reached) {
    let (a, b) = (Some(ADMIN_TOKEN), Some(SECOND_ADMIN));
    let unknown = post("/v1/approvals/0123/approve", b, &json!({}));
    reached.check(
        "an unknown approval",
        main.send(unknown).await,
        "approval_not_found",
    );
    let held = |path: &str| post(path, a, &json!({"force": true}));
    let (status, _, out) = main.send(held("/v1/key-sets/spare/rotate")).await;
    assert_eq!(status, 202, "{out}");
    let id = out["approval"]["id"].as_str().unwrap().to_string();
    let approve = format!("/v1/approvals/{id}/approve");
    let own = post(&approve, a, &json!({}));
    reached.check(
        "approving one's own request",
        main.send(own).await,
        "self_approval",
    );
    let (status, _, out) = main
        .send(post(&format!("/v1/approvals/{id}/reject"), b, &json!({})))
        .await;
    assert_eq!(status, 200, "{out}");
    let again = post(&approve, b, &json!({}));
    reached.check(
        "approving a rejected request",
        main.send(again).await,
        "approval_decided",
    );
    let (status, _, out) = main.send(held("/v1/key-sets/spare/rotate")).await;
    assert_eq!(status, 202, "{out}");
    let approve = format!(
        "/v1/approvals/{}/approve",
        out["approval"]["id"].as_str().unwrap()
    );
    let now = main.service.now();
    main.clock.advance(3600);
    let late = post(&approve, b, &json!({}));
    reached.check(
        "approving too late",
        main.send(late).await,
        "approval_expired",
    );
    main.clock.set(now);
    // Two forced rotations held at once (on a key set of their own): once the first is
    // approved, the key set is not what the second's requester saw, so it is not carried out.
    let (first, second) = (
        main.send(held("/v1/key-sets/held/rotate")).await,
        main.send(held("/v1/key-sets/held/rotate")).await,
    );
    assert_eq!((first.0, second.0), (202, 202), "{} {}", first.2, second.2);
    let approve = |out: &Value| {
        let id = out["approval"]["id"].as_str().unwrap();
        post(&format!("/v1/approvals/{id}/approve"), b, &json!({}))
    };
    let (status, _, out) = main.send(approve(&first.2)).await;
    assert_eq!(status, 200, "{out}");
    reached.check(
        "approving a rotation the key set has moved past",
        main.send(approve(&second.2)).await,
        "approval_stale",
    );
}

/// Certificate chains refused, and a rotation that waits for a certificate.
async fn certificates(main: &Local, reached: &mut Reached) {
    let a = Some(ADMIN_TOKEN);
    let (kid, _) = active_and_next(main, "spare");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A self-signed test CA (openssl), for another key than Signet's.
    openssl_ca(d);
    let (status, out) = main
        .post(
            &format!("/v1/key-sets/spare/keys/{kid}/csr"),
            a,
            &json!({"subject": "CN=x"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    openssl_issue(d, out["csr"].as_str().unwrap(), "1");
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let put = |chain: String| {
        request(
            Method::PUT,
            &format!("/v1/key-sets/spare/keys/{kid}/certificate"),
            a,
            Some(&json!({ "chain": chain })),
        )
    };
    reached.check(
        "another key's certificate",
        main.send(put(read("ca.pem"))).await,
        "certificate_key_mismatch",
    );
    reached.check(
        "not PEM",
        main.send(put("garbage".into())).await,
        "certificate_invalid",
    );
    main.clock.advance(3 * 86400);
    let expired = main.send(put(read("leaf.pem") + &read("ca.pem"))).await;
    main.clock.advance(-3 * 86400);
    reached.check("expired leaf", expired, "certificate_expired");
    let rotate = request(Method::POST, "/v1/key-sets/certified/rotate", a, None);
    reached.check(
        "next key without certificate",
        main.send(rotate).await,
        "certificate_required",
    );
}

/// The store behind `local`, for changes an operator could make by hand.
async fn db(local: &Local) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", local.dir.path().join("signet.db").display());
    sqlx::SqlitePool::connect(&url).await.unwrap()
}

/// Keys broken behind Signet's back: the HSM refuses (502), the HSM signs with another key than
/// the stored public key (500, withheld), the stored key does not parse (500).
async fn broken_keys(main: &Local, reached: &mut Reached) {
    let sign = |set: &str| {
        post(
            &format!("/v1/key-sets/{set}/sign/jwt"),
            Some(SIGNER_TOKEN),
            &json!({"claims": id_claims(main)}),
        )
    };
    let (doomed, _) = active_and_next(main, "doomed");
    let slot = &main.service.backends[0];
    let id = doomed.clone().into_bytes();
    slot.with_backend(Duration::from_secs(5), move |b| b.destroy(&id))
        .await
        .unwrap();
    reached.check(
        "private key gone from the token",
        main.send(sign("doomed")).await,
        "hsm_error",
    );

    let db = db(main).await;
    let (faulty, faulty_next) = active_and_next(main, "faulty");
    sqlx::query(
        "UPDATE keys SET public_jwk = (SELECT public_jwk FROM keys WHERE kid = ?) WHERE kid = ?",
    )
    .bind(&faulty_next)
    .bind(&faulty)
    .execute(&db)
    .await
    .unwrap();
    let (broken, _) = active_and_next(main, "broken");
    sqlx::query("UPDATE keys SET public_jwk = '{}' WHERE kid = ?")
        .bind(&broken)
        .execute(&db)
        .await
        .unwrap();
    main.service.reload().await.unwrap();
    reached.check(
        "public key of another key",
        main.send(sign("faulty")).await,
        "signature_self_check_failed",
    );
    reached.check(
        "corrupt stored key",
        main.send(sign("broken")).await,
        "internal",
    );
    // The others sign on.
    let (status, out) = main
        .call(
            Method::POST,
            "/v1/key-sets/id/sign/jwt",
            Some(SIGNER_TOKEN),
            Some(&json!({"claims": id_claims(main)})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
}

/// A second replica on the same store: one whose token is missing, one whose view is stale, one
/// that lets nobody wait for a session.
async fn replicas(main: &Local, reached: &mut Reached) {
    let a = Some(ADMIN_TOKEN);
    let sign = |set: &str| {
        let body = json!({"claims": id_claims(main)});
        post(
            &format!("/v1/key-sets/{set}/sign/jwt"),
            Some(SIGNER_TOKEN),
            &body,
        )
    };
    let mut down_sets = sets();
    down_sets.push(set("empty", "id_token", "ES256"));
    let down = main
        .replica(&down_sets, |c| {
            c.replace("token_label = \"in-process\"", "token_label = \"absent\"")
        })
        .await;
    reached.check(
        "backend down",
        down.send(sign("spare")).await,
        "hsm_unavailable",
    );
    reached.check(
        "a key set without keys",
        down.send(sign("empty")).await,
        "no_active_key",
    );
    // Revoking the next key through the replica that cannot generate one leaves none.
    let (_, spare_next) = active_and_next(&down, "spare");
    let path = format!("/v1/key-sets/spare/keys/{spare_next}/revoke");
    let (status, out) = down.post(&path, a, &json!({"reason": "test"})).await;
    assert_eq!(status, 200, "{out}");
    let rotate = request(Method::POST, "/v1/key-sets/spare/rotate", a, None);
    reached.check("no next key", down.send(rotate).await, "no_next_key");

    let stale = main.replica(&sets(), |c| c).await;
    let (_, race_next) = active_and_next(main, "race");
    let path = format!("/v1/key-sets/race/keys/{race_next}/revoke");
    let (status, out) = main.post(&path, a, &json!({"reason": "first"})).await;
    assert_eq!(status, 200, "{out}");
    let second = post(&path, a, &json!({"reason": "second"}));
    reached.check(
        "the other replica revoked first",
        stale.send(second).await,
        "concurrent_change",
    );

    // One session and no waiting: of four signatures asked for at once, at most one gets the
    // session; the others are busy at once.
    let no_queue = main
        .replica(&sets(), |c| {
            c.replace("sessions = 4", "sessions = 1")
                .replace("op_timeout = \"5s\"", "op_timeout = \"5s\"\nmax_queue = 0")
        })
        .await;
    wait_up(&no_queue).await;
    let (a, b, c, d) = tokio::join!(
        no_queue.send(sign("id")),
        no_queue.send(sign("id")),
        no_queue.send(sign("id")),
        no_queue.send(sign("id")),
    );
    let busy = [a, b, c, d].into_iter().find(|(status, ..)| *status != 200);
    reached.check(
        "no waiting allowed",
        busy.expect("one of four at once is busy"),
        "hsm_busy",
    );
}

/// Polls until `local`'s backend is up (its start-up open may outlast a short `op_timeout`).
async fn wait_up(local: &Local) -> Arc<signet::hsm::Backend> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let BackendState::Up(b) = local.service.backends[0].state() {
            return b;
        }
        assert!(Instant::now() < deadline, "backend not up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one session of `local`'s backend, taken by a long RSA-4096 generation on a thread of its
/// own (outside the service's permits): a request then waits for a session inside the HSM layer,
/// as it would behind a hung HSM. Returns once the generation has been started.
fn hold_session(backend: Arc<signet::hsm::Backend>) -> std::thread::JoinHandle<()> {
    let (started, wait) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let id = format!("hold-{}", common::now()).into_bytes();
        started.send(()).unwrap();
        if backend
            .generate(KeySpec::Rsa { bits: 4096 }, &id, "hold/pending")
            .is_ok()
        {
            let _ = backend.destroy(&id);
        }
    });
    wait.recv().unwrap();
    t
}

/// Tries `attempt` (which may, rarely, lose a race with the HSM) until it answers `code`.
async fn reach<F: std::future::Future<Output = (u16, HeaderMap, Value)>>(
    reached: &mut Reached,
    code: &str,
    mut attempt: impl FnMut() -> F,
) {
    let mut last = None;
    for _ in 0..5 {
        let answer = attempt().await;
        if answer.2["code"] == code {
            return reached.check(code, answer, code);
        }
        last = Some(answer.2);
    }
    panic!("{code} not reached: {last:?}");
}

/// Deadlines. The HSM call past `op_timeout`: an RSA-4096 signature (milliseconds) under a
/// 1 ms `op_timeout`. The request past `request_timeout`: its HSM session held by a long
/// generation (and `op_timeout` far off).
async fn deadlines(main: &Local, reached: &mut Reached) {
    let rsa = [Set {
        name: "rsa",
        profile: "id_token",
        alg: "PS256",
        extra: "rsa_bits = 4096",
    }];
    let slow = Local::start(&rsa, |c| c).await;
    let hsm = slow
        .replica(&rsa, |c| {
            c.replace("op_timeout = \"5s\"", "op_timeout = \"1ms\"")
        })
        .await;
    reach(reached, "hsm_timeout", || async {
        wait_up(&hsm).await;
        let body = json!({"claims": id_claims(&hsm)});
        hsm.send(post("/v1/key-sets/rsa/sign/jwt", Some(SIGNER_TOKEN), &body))
            .await
    })
    .await;

    let request = main
        .replica(&sets(), |c| {
            c.replace(
                "sessions = 4\nop_timeout = \"5s\"",
                "sessions = 1\nop_timeout = \"20s\"",
            )
            .replace(
                "key_refresh = \"1s\"",
                "key_refresh = \"1s\"\nrequest_timeout = \"300ms\"",
            )
        })
        .await;
    reach(reached, "request_timeout", || async {
        let holder = hold_session(wait_up(&request).await);
        let body = json!({"claims": id_claims(&request)});
        let answer = request
            .send(post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body))
            .await;
        let _ = tokio::task::spawn_blocking(move || holder.join()).await;
        answer
    })
    .await;
}

/// The audit chain edited behind Signet's back (409), then the store gone (503): on a service of
/// its own.
async fn audit_and_store(reached: &mut Reached) {
    let local = Local::start(&[set("id", "id_token", "ES256")], |c| c).await;
    let a = Some(ADMIN_TOKEN);
    let (status, out) = local.get("/v1/audit/verify", a).await;
    assert_eq!((status, out["ok"].clone()), (200, json!(true)), "{out}");
    let db = db(&local).await;
    sqlx::query("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
        .execute(&db)
        .await
        .unwrap();
    let verify = request(Method::GET, "/v1/audit/verify", a, None);
    let answer = local.send(verify).await;
    assert_eq!(answer.2["first_bad_seq"], 1, "{}", answer.2);
    reached.check("edited audit row", answer, "audit_chain_broken");
    sqlx::query("ALTER TABLE audit RENAME TO audit_gone")
        .execute(&db)
        .await
        .unwrap();
    let list = request(Method::GET, "/v1/audit", a, None);
    reached.check(
        "audit table gone",
        local.send(list).await,
        "store_unavailable",
    );

    // The key view cannot be reloaded: signing goes on for `[store] grace` (60 s), then stops.
    sqlx::query("ALTER TABLE keys RENAME TO keys_gone")
        .execute(&db)
        .await
        .unwrap();
    local.service.check_health().await;
    let sign = || {
        let body = json!({"claims": id_claims(&local)});
        post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
    };
    let (status, _, out) = local.send(sign()).await;
    assert_eq!(status, 200, "within grace: {out}");
    local.clock.advance(61);
    reached.check(
        "store gone past grace",
        local.send(sign()).await,
        "key_view_stale",
    );
    sqlx::query("ALTER TABLE keys_gone RENAME TO keys")
        .execute(&db)
        .await
        .unwrap();
    local.service.check_health().await;
    let (status, _, out) = local.send(sign()).await;
    assert_eq!(status, 200, "the store is back: {out}");
}
