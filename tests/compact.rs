//! `POST /v1/key-sets/{set}/sign/compact` (a JWS the caller built) and `GET .../signing-key`, in
//! process over a real SoftHSM2 token (see common/local.rs, a manual clock): what it signs (the
//! exact bytes, verified by an independent library against the JWKS), the profile it picks for a
//! key set with several, every refusal of the issue's list with its code, and the activation
//! grace after a rotation (never after a revocation).

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use common::local::Local;
use common::*;
use serde_json::{Value, json};

const PROFILES: &str =
    r#"profiles = ["id_token", "access_token", "jarm", "introspection", "logout_token"]"#;

fn sets() -> Vec<Set<'static>> {
    vec![
        set("idt", "id_token", "PS256"),
        set("multi", "id_token", "ES256"),
        set("gen", "generic", "ES256"),
        set("http", "http_message", "ed25519"),
        Set {
            name: "short",
            profile: "jarm",
            alg: "ES256",
            extra: "activation_grace = \"5s\"",
        },
    ]
}

/// `multi` names every JWT profile.
fn edit(c: String) -> String {
    c.replacen(
        "name = \"multi\"\nprofile = \"id_token\"",
        &format!("name = \"multi\"\n{PROFILES}"),
        1,
    )
}

fn b64(s: &str) -> String {
    B64URL.encode(s.as_bytes())
}

fn input(header: &Value, payload: &Value) -> String {
    format!("{}.{}", b64(&header.to_string()), b64(&payload.to_string()))
}

async fn active_kid(local: &Local, set: &str) -> String {
    let (status, keys) = local
        .get(
            &format!("/v1/key-sets/{set}/signing-key"),
            Some(SIGNER_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{keys}");
    keys["active"]["kid"].as_str().unwrap().to_string()
}

async fn sign(local: &Local, set: &str, signing_input: &str) -> (u16, Value) {
    local
        .post(
            &format!("/v1/key-sets/{set}/sign/compact"),
            Some(SIGNER_TOKEN),
            &json!({ "signing_input": signing_input }),
        )
        .await
}

async fn jwks(local: &Local) -> Value {
    local.get("/.well-known/jwks.json", None).await.1
}

#[tokio::test]
async fn signs_the_exact_caller_built_input() {
    let local = Local::start(&sets(), edit).await;
    let now = local.service.now();
    let kid = active_kid(&local, "idt").await;
    // Non-canonical JSON (spacing, member order) is signed as given.
    let header = format!(r#"{{ "typ":"JWT", "kid": "{kid}",  "alg":"PS256" }}"#);
    let claims = claims_for("id_token", now)
        .to_string()
        .replace(',', " ,\n  ");
    let signing_input = format!("{}.{}", b64(&header), b64(&claims));
    let (status, out) = sign(&local, "idt", &signing_input).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["kid"].as_str(), out["alg"].as_str()),
        (Some(kid.as_str()), Some("PS256"))
    );
    assert_eq!(out["profile"], "id_token");
    let jws = out["jws"].as_str().unwrap();
    assert_eq!(
        jws,
        format!("{signing_input}.{}", out["signature"].as_str().unwrap())
    );
    let (h, p) = verify_jwt(jws, &jwks(&local).await);
    assert_eq!(h["kid"], kid.as_str());
    assert_eq!(p["sub"], "alice");
}

#[tokio::test]
async fn a_key_set_with_several_profiles_picks_one_per_token() {
    let local = Local::start(&sets(), edit).await;
    let now = local.service.now();
    let kid = active_kid(&local, "multi").await;
    let cases = [
        ("id_token", None),
        ("jarm", Some("JWT")),
        ("access_token", Some("at+jwt")),
        ("introspection", Some("token-introspection+jwt")),
        ("logout_token", Some("logout+jwt")),
    ];
    let keys = jwks(&local).await;
    for (profile, typ) in cases {
        let mut header = json!({"alg": "ES256", "kid": kid});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let (status, out) = sign(&local, "multi", &input(&header, &claims_for(profile, now))).await;
        assert_eq!(
            (status, out["profile"].as_str()),
            (200, Some(profile)),
            "{out}"
        );
        verify_jwt(out["jws"].as_str().unwrap(), &keys);
    }
    // sign/jwt picks by the same rule.
    let (status, out) = local
        .post(
            "/v1/key-sets/multi/sign/jwt",
            Some(SIGNER_TOKEN),
            &json!({"claims": claims_for("access_token", now), "header": {"typ": "at+jwt"}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    // Ambiguous or unknown shapes match no profile.
    for (typ, claims) in [
        (
            json!(null),
            json!({"iss": ISSUER, "sub": "a", "code": "c", "aud": "x", "exp": now + 60}),
        ),
        (
            json!("JWT"),
            json!({"iss": ISSUER, "aud": "x", "exp": now + 60}),
        ),
        (json!("secevent+jwt"), claims_for("id_token", now)),
    ] {
        let mut header = json!({"alg": "ES256", "kid": kid});
        if !typ.is_null() {
            header["typ"] = typ;
        }
        let (status, out) = sign(&local, "multi", &input(&header, &claims)).await;
        assert_eq!(
            (status, out["code"].as_str()),
            (400, Some("profile_unmatched")),
            "{out}"
        );
    }
}

#[tokio::test]
async fn refusals_have_their_documented_codes() {
    let local = Local::start(&sets(), edit).await;
    let now = local.service.now();
    let kid = active_kid(&local, "idt").await;
    let (_, keys) = local
        .get("/v1/key-sets/idt/signing-key", Some(SIGNER_TOKEN))
        .await;
    let next_kid = keys["next"]["kid"].as_str().unwrap().to_string();
    let header = json!({"alg": "PS256", "kid": kid, "typ": "JWT"});
    let claims = claims_for("id_token", now);
    let with = |name: &str, value: Value| {
        let mut h = header.clone();
        h[name] = value;
        h
    };
    let claim = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        c
    };
    let h = b64(&header.to_string());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "the next kid",
            input(&with("kid", json!(next_kid)), &claims),
            "kid_not_active",
        ),
        (
            "an unknown kid",
            input(&with("kid", json!("nope")), &claims),
            "kid_not_active",
        ),
        (
            "no kid",
            input(&json!({"alg": "PS256"}), &claims),
            "kid_not_active",
        ),
        (
            "another alg",
            input(&with("alg", json!("ES256")), &claims),
            "alg_mismatch",
        ),
        (
            "alg none",
            input(&with("alg", json!("none")), &claims),
            "alg_mismatch",
        ),
        (
            "jku",
            input(&with("jku", json!("https://evil.test/jwks")), &claims),
            "header_forbidden",
        ),
        (
            "x5u",
            input(&with("x5u", json!("https://evil.test/c")), &claims),
            "header_forbidden",
        ),
        (
            "jwk",
            input(&with("jwk", json!({"kty": "EC"})), &claims),
            "header_forbidden",
        ),
        (
            "crit",
            input(&with("crit", json!(["exp"])), &claims),
            "header_forbidden",
        ),
        (
            "another typ",
            input(&with("typ", json!("at+jwt")), &claims),
            "typ_mismatch",
        ),
        (
            "another issuer",
            input(&header, &claim("iss", json!("https://evil.test"))),
            "issuer_mismatch",
        ),
        (
            "a long lifetime",
            input(&header, &claim("exp", json!(now + 3601))),
            "lifetime_exceeded",
        ),
        (
            "a missing claim",
            input(&header, &json!({"iss": ISSUER, "sub": "a"})),
            "claim_missing",
        ),
        (
            "an array payload",
            format!("{h}.{}", b64("[1,2]")),
            "payload_not_object",
        ),
        (
            "a text payload",
            format!("{h}.{}", b64("hello")),
            "payload_not_object",
        ),
        (
            "a repeated claim",
            format!("{h}.{}", b64(r#"{"iss":"a","iss":"b"}"#)),
            "duplicate_member",
        ),
        (
            "a repeated header member",
            format!(
                "{}.{}",
                b64(&format!(r#"{{"alg":"PS256","kid":"{kid}","kid":"{kid}"}}"#)),
                b64(&claims.to_string())
            ),
            "duplicate_member",
        ),
        (
            "three parts",
            format!("{h}.{}.sig", b64("{}")),
            "malformed_signing_input",
        ),
        ("no dot", h.clone(), "malformed_signing_input"),
        (
            "padding",
            format!("{h}=.{}", b64("{}")),
            "malformed_signing_input",
        ),
    ];
    for (what, signing_input, code) in cases {
        let (status, out) = sign(&local, "idt", &signing_input).await;
        assert_eq!(out["code"], code, "{what}: {out}");
        assert_eq!(
            status,
            if code == "kid_not_active" { 409 } else { 400 },
            "{what}"
        );
    }
    let (_, out) = sign(
        &local,
        "idt",
        &input(&with("kid", json!(next_kid)), &claims),
    )
    .await;
    assert_eq!(
        (out["active_kid"].as_str(), out["next_kid"].as_str()),
        (Some(kid.as_str()), Some(next_kid.as_str()))
    );
    // The route needs a JWS profile, and the signer role for the key set.
    let (status, out) = sign(&local, "http", "e30.e30").await;
    assert_eq!((status, out["code"].as_str()), (400, Some("wrong_profile")));
    let (status, _) = local
        .post(
            "/v1/key-sets/idt/sign/compact",
            Some(ADMIN_TOKEN),
            &json!({"signing_input": "e30.e30"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = local
        .get("/v1/key-sets/gen/signing-key", Some(LIMITED_TOKEN))
        .await;
    assert_eq!(status, 403);
    // A generic key set signs any payload under its header rules.
    let gen_kid = active_kid(&local, "gen").await;
    let gh = b64(&json!({"alg": "ES256", "kid": gen_kid, "cty": "text/plain"}).to_string());
    let (status, out) = sign(&local, "gen", &format!("{gh}.{}", b64("any bytes"))).await;
    assert_eq!(status, 200, "{out}");
}

#[tokio::test]
async fn the_superseded_key_signs_for_the_activation_grace_after_a_rotation_only() {
    let local = Local::start(&sets(), edit).await;
    // A rotation in the second of the last activation would take effect one second later.
    local.clock.advance(2);
    let now = local.service.now();
    let old = active_kid(&local, "short").await;
    let (status, out) = local
        .post(
            "/v1/key-sets/short/rotate",
            Some(ADMIN_TOKEN),
            &json!({"force": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let new = active_kid(&local, "short").await;
    assert_ne!(old, new);
    let (_, keys) = local
        .get("/v1/key-sets/short/signing-key", Some(SIGNER_TOKEN))
        .await;
    assert_eq!(keys["retired"][0]["kid"], old.as_str(), "{keys}");
    assert!(keys["next"]["kid"].is_string(), "{keys}");
    assert!(keys["active"]["jwk"]["x"].is_string() && keys["active"]["jwk"].get("d").is_none());
    let jarm =
        |kid: &str, t: i64| input(&json!({"alg": "ES256", "kid": kid}), &claims_for("jarm", t));
    // Within activation_grace (5 s) the key the rotation superseded still signs...
    let (status, out) = sign(&local, "short", &jarm(&old, now)).await;
    assert_eq!(
        (status, out["kid"].as_str()),
        (200, Some(old.as_str())),
        "{out}"
    );
    verify_jwt(out["jws"].as_str().unwrap(), &jwks(&local).await);
    local.clock.advance(4);
    assert_eq!(sign(&local, "short", &jarm(&old, now + 4)).await.0, 200);
    // ...then no more.
    local.clock.advance(2);
    let (status, out) = sign(&local, "short", &jarm(&old, now + 6)).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (409, Some("kid_not_active")),
        "{out}"
    );
    assert_eq!(out["active_kid"], new.as_str());
    // A revoked key never signs, grace or not: its successor signs at once.
    let (status, out) = local
        .post(
            &format!("/v1/key-sets/short/keys/{new}/revoke"),
            Some(ADMIN_TOKEN),
            &json!({"reason": "test", "force": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = sign(&local, "short", &jarm(&new, now + 6)).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (409, Some("kid_not_active")),
        "{out}"
    );
    let newest = out["active_kid"].as_str().unwrap().to_string();
    assert_eq!(sign(&local, "short", &jarm(&newest, now + 6)).await.0, 200);
}
