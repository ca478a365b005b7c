//! The signing API end to end: the real binary, a fresh SoftHSM2 token, and verification of every
//! result with libraries independent of josekit against the served JWKS.

mod common;

use common::*;
use serde_json::{Value, json};

fn claims(profile: &str) -> Value {
    claims_for(profile, now())
}

fn typ(profile: &str) -> Option<&'static str> {
    match profile {
        "access_token" => Some("at+jwt"),
        "introspection" => Some("token-introspection+jwt"),
        "logout_token" => Some("logout+jwt"),
        "generic" => None,
        _ => Some("JWT"),
    }
}

/// Every profile and every algorithm, verified independently against the per-set and the global
/// JWKS.
#[tokio::test]
async fn every_profile_and_algorithm_verifies_against_the_jwks() {
    let sets = [
        set("id", "id_token", "PS256"),
        set("at", "access_token", "ES256"),
        set("jarm", "jarm", "EdDSA"),
        set("intro", "introspection", "Ed25519"),
        set("logout", "logout_token", "ES256"),
        set("generic", "generic", "PS256"),
        Set {
            name: "legacy-rs",
            profile: "id_token",
            alg: "RS256",
            extra: "fapi = false",
        },
        Set {
            name: "legacy-es",
            profile: "access_token",
            alg: "ES384",
            extra: "fapi = false",
        },
        Set {
            name: "legacy-ps",
            profile: "jarm",
            alg: "PS384",
            extra: "fapi = false",
        },
    ];
    let (_token, _dir, signet) = serve("api-all", &sets).await;
    let global = signet.get_json("/.well-known/jwks.json").await;
    for s in &sets {
        let sent = claims(s.profile);
        let body = json!({"claims": sent});
        let (status, out) = signet
            .post(
                &format!("/v1/key-sets/{}/sign/jwt", s.name),
                Some(SIGNER_TOKEN),
                &body,
            )
            .await;
        assert_eq!(status, 200, "{}: {out}", s.name);
        assert_eq!(out["alg"], s.alg);
        let jwks = signet
            .get_json(&format!("/v1/key-sets/{}/jwks", s.name))
            .await;
        let jwt = out["jwt"].as_str().unwrap();
        let (header, payload) = verify_jwt(jwt, &jwks);
        verify_jwt(jwt, &global);
        assert_eq!(header["kid"], out["kid"]);
        assert_eq!(header["alg"], s.alg);
        assert_eq!(
            header.get("typ").and_then(Value::as_str),
            typ(s.profile),
            "{}",
            s.name
        );
        assert_eq!(payload, sent, "the claims are signed as sent");
        // Two keys per set are published: the active one that signed, and the next one.
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            2,
            "{}: {jwks}",
            s.name
        );
        assert_eq!(
            jwks["keys"][0]["kid"], out["kid"],
            "active key listed first"
        );
    }
    // The generic profile also signs arbitrary payloads, attached and detached.
    let payload = "eyJoZWxsbyI6IndvcmxkIn0"; // {"hello":"world"}
    for detached in [false, true] {
        let body = json!({"payload": payload, "header": {"cty": "json"}, "detached": detached});
        let (status, out) = signet
            .post("/v1/key-sets/generic/sign/jws", Some(SIGNER_TOKEN), &body)
            .await;
        assert_eq!(status, 200, "{out}");
        let jws = out["jws"].as_str().unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts[1].is_empty(), detached, "{jws}");
        let attached = format!("{}.{}.{}", parts[0], payload, parts[2]);
        let jwks = signet.get_json("/v1/key-sets/generic/jwks").await;
        let (header, body) = verify_jwt(&attached, &jwks);
        assert_eq!(header["cty"], "json");
        assert_eq!(body, json!({"hello": "world"}));
    }
}

fn thumbprint(jwk: &Value) -> String {
    use base64::Engine;
    use sha2::Digest;
    let members: &[&str] = match jwk["kty"].as_str().unwrap() {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => panic!("kty {other}"),
    };
    // RFC 7638 3.2: required members, lexicographic order, no whitespace.
    let canonical = members
        .iter()
        .map(|m| format!("\"{m}\":\"{}\"", jwk[*m].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    let digest = sha2::Sha256::digest(format!("{{{canonical}}}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

#[tokio::test]
async fn jwks_is_public_cacheable_and_keys_stay_in_the_token() {
    let sets = [
        set("id", "id_token", "PS256"),
        set("at", "access_token", "ES256"),
        set("ed", "jarm", "EdDSA"),
    ];
    let (token, _dir, signet) = serve("api-jwks", &sets).await;

    let r = signet
        .http
        .get(signet.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 6);
    let allowed = ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"];
    for k in keys {
        for member in k.as_object().unwrap().keys() {
            assert!(
                allowed.contains(&member.as_str()),
                "private or unknown member {member} in {k}"
            );
        }
        assert_eq!(k["use"], "sig");
        assert!(k["alg"].is_string());
        assert_eq!(
            k["kid"].as_str().unwrap(),
            thumbprint(k),
            "kid is the RFC 7638 thumbprint"
        );
    }
    let r = signet
        .http
        .get(signet.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    let r = signet
        .http
        .get(signet.url("/v1/key-sets/nope/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Every private key object is a sensitive, never-extractable token object, found by the kid.
    let out = token.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let objects: Vec<&str> = listing.split("Private Key Object").skip(1).collect();
    assert_eq!(objects.len(), 6, "{listing}");
    for obj in &objects {
        let access = obj
            .lines()
            .find(|l| l.trim_start().starts_with("Access:"))
            .unwrap_or_default();
        assert!(access.contains("sensitive"), "{obj}");
        assert!(access.contains("never extractable"), "{obj}");
        assert!(access.contains("always sensitive"), "{obj}");
        let usage = obj
            .lines()
            .find(|l| l.trim_start().starts_with("Usage:"))
            .unwrap_or_default();
        assert!(
            usage.contains("sign") && !usage.contains("decrypt") && !usage.contains("unwrap"),
            "{obj}"
        );
    }
    for k in keys {
        let kid = k["kid"].as_str().unwrap();
        let found = objects.iter().any(|o| {
            o.contains("signet/") && o.contains(&format!("/{kid}")) && o.contains(&hex::encode(kid))
        });
        assert!(
            found,
            "CKA_LABEL signet/<set>/{kid} and CKA_ID = the kid's bytes in {listing}"
        );
    }
}

#[tokio::test]
async fn after_a_restart_the_same_kids_are_published_and_the_same_key_signs() {
    let sets = [set("id", "id_token", "ES256")];
    let (_token, _dir, mut signet) = serve("api-restart", &sets).await;
    let before = signet.get_json("/v1/key-sets/id/jwks").await;
    let body = json!({"claims": claims("id_token")});
    let (_, first) = signet
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;

    signet.restart().await;
    let after = signet.get_json("/v1/key-sets/id/jwks").await;
    assert_eq!(before, after);
    let (status, second) = signet
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(first["kid"], second["kid"]);
    verify_jwt(second["jwt"].as_str().unwrap(), &before);
    assert_eq!(
        signet.log().matches("key generated in the HSM").count(),
        2,
        "no key made on restart"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_signatures_all_succeed_and_verify() {
    let sets = [
        set("at", "access_token", "ES256"),
        set("id", "id_token", "PS256"),
    ];
    let (_token, _dir, signet) = serve("api-load", &sets).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (http, base) = (signet.http.clone(), signet.base.clone());
        tasks.spawn(async move {
            let (set, profile) = if i % 4 == 0 {
                ("id", "id_token")
            } else {
                ("at", "access_token")
            };
            let mut c = claims(profile);
            c["jti"] = json!(format!("jti-{i}"));
            let r = http
                .post(format!("{base}/v1/key-sets/{set}/sign/jwt"))
                .bearer_auth(SIGNER_TOKEN)
                .json(&json!({"claims": c}))
                .send()
                .await
                .unwrap();
            (set, r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    }
    let jwks = signet.get_json("/.well-known/jwks.json").await;
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        let (set, status, body) = done.unwrap();
        assert_eq!(status, 200, "{set}: {body}");
        verify_jwt(body["jwt"].as_str().unwrap(), &jwks);
        ok += 1;
    }
    assert_eq!(ok, 200);
}
