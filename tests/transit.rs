//! The Vault Transit-compatible routes, driven by a real Transit client (`vaultrs`) over HTTP
//! against an in-process service on SoftHSM2 (common/local.rs): `jws` signatures of ES256, PS256
//! and EdDSA key sets assembled into JWTs that verify against the JWKS with an independent library
//! (jsonwebtoken, ed25519-dalek), `verify` agreeing, the key listing's versions and PEMs matching
//! the JWKS, `asn1` ECDSA signatures that are DER, batches, and every refusal in Vault's error
//! envelope.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use common::local::Local;
use common::*;
use serde_json::{Value, json};
use vaultrs::api::transit::MarshalingAlgorithm;
use vaultrs::api::transit::requests::{SignDataRequestBuilder, VerifySignedDataRequestBuilder};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::transit;

const MOUNT: &str = "transit";

fn sets() -> Vec<Set<'static>> {
    vec![
        Set {
            name: "gen",
            profile: "generic",
            alg: "ES256",
            extra: "audit_signatures = true",
        },
        set("es", "id_token", "ES256"),
        set("ps", "id_token", "PS256"),
        set("ed", "id_token", "EdDSA"),
    ]
}

fn vault(base: &str, token: &str) -> VaultClient {
    let settings = VaultClientSettingsBuilder::default()
        .address(base)
        .token(token)
        .build()
        .unwrap();
    VaultClient::new(settings).unwrap()
}

/// Status and body of a raw Transit call with `X-Vault-Token`.
async fn raw(method: &str, url: &str, token: Option<&str>, body: &Value) -> (u16, String, Value) {
    let http = reqwest::Client::new();
    let mut req = match method {
        "GET" => http.get(url),
        _ => http.post(url).json(body),
    };
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.json().await.unwrap_or(Value::Null))
}

/// The key listing of `set` (raw, for the members vaultrs does not model).
async fn listing(base: &str, set: &str) -> Value {
    let url = format!("{base}/v1/transit/keys/{set}");
    let (status, _, body) = raw("GET", &url, Some(SIGNER_TOKEN), &Value::Null).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// `BASE64URL(header).BASE64URL(claims)` of an id_token for `kid`.
fn signing_input(alg: &str, kid: &str, now: i64) -> String {
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let claims = claims_for("id_token", now);
    format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    )
}

fn jws_opts() -> SignDataRequestBuilder {
    let mut opts = SignDataRequestBuilder::default();
    opts.marshaling_algorithm(MarshalingAlgorithm::Jws);
    opts
}

async fn verify(client: &VaultClient, set: &str, input: &[u8], sig: &str, jws: bool) -> bool {
    let mut opts = VerifySignedDataRequestBuilder::default();
    opts.signature(sig);
    if jws {
        opts.marshaling_algorithm(MarshalingAlgorithm::Jws);
    }
    transit::data::verify(client, MOUNT, set, &B64.encode(input), Some(&mut opts))
        .await
        .unwrap()
        .valid
}

fn api_error(e: ClientError) -> (u16, Vec<String>) {
    match e {
        ClientError::APIError { code, errors } => (code, errors),
        other => panic!("not a Vault API error: {other:?}"),
    }
}

#[tokio::test]
async fn vaultrs_jws_signatures_assemble_into_jwts_the_jwks_verifies() {
    let local = Local::start(&sets(), |c| c).await;
    let base = local.serve().await;
    let client = vault(&base, SIGNER_TOKEN);
    let now = local.service.now();
    let jwks = local.get("/.well-known/jwks.json", None).await.1;
    for (set, alg) in [("es", "ES256"), ("ps", "PS256"), ("ed", "EdDSA")] {
        let keys = listing(&base, set).await;
        let latest = keys["latest_version"].as_u64().unwrap();
        let kid = keys["keys"][latest.to_string()]["kid"].as_str().unwrap();
        let input = signing_input(alg, kid, now);
        let signed = transit::data::sign(
            &client,
            MOUNT,
            set,
            &B64.encode(&input),
            Some(&mut jws_opts()),
        )
        .await
        .unwrap_or_else(|e| panic!("{set}: {e:?}"));
        let prefix = format!("vault:v{latest}:");
        let sig = signed.signature.strip_prefix(&prefix).expect("vault:v<N>:");
        assert!(!sig.contains(['=', '+', '/']), "{set}: base64url: {sig}");
        let jwt = format!("{input}.{sig}");
        let (header, claims) = verify_jwt(&jwt, &jwks);
        assert_eq!(
            (header["kid"].as_str(), claims["sub"].as_str()),
            (Some(kid), Some("alice"))
        );
        // verify agrees: true on the signed input, false on a tampered one.
        assert!(verify(&client, set, input.as_bytes(), &signed.signature, true).await);
        let tampered = signing_input(alg, kid, now + 1);
        assert!(!verify(&client, set, tampered.as_bytes(), &signed.signature, true).await);
    }
}

/// The public key of a PEM SubjectPublicKeyInfo in JWK members (parsed by x509-parser).
fn pem_as_jwk(pem: &str) -> Value {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    assert_eq!(block.label, "PUBLIC KEY");
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents).unwrap();
    let strip = |b: &[u8]| {
        B64URL.encode(
            b.iter()
                .skip_while(|x| **x == 0)
                .copied()
                .collect::<Vec<u8>>(),
        )
    };
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let d = point.data();
            let n = (d.len() - 1) / 2;
            json!({"x": B64URL.encode(&d[1..1 + n]), "y": B64URL.encode(&d[1 + n..])})
        }
        Ok(PublicKey::RSA(rsa)) => json!({"n": strip(rsa.modulus), "e": strip(rsa.exponent)}),
        _ => json!({"x": B64URL.encode(&spki.subject_public_key.data)}),
    }
}

#[tokio::test]
async fn the_key_listing_shows_versions_and_pems_that_match_the_jwks() {
    let local = Local::start(&sets(), |c| c).await;
    let base = local.serve().await;
    let client = vault(&base, SIGNER_TOKEN);
    let jwks = local.get("/.well-known/jwks.json", None).await.1;
    for (set, key_type) in [("es", "ecdsa-p256"), ("ps", "rsa-"), ("ed", "ed25519")] {
        // vaultrs reads Vault's shape.
        let read = transit::key::read(&client, MOUNT, set).await.unwrap();
        assert!(read.supports_signing && !read.supports_encryption);
        assert_eq!(read.name, set);
        let keys = listing(&base, set).await;
        assert!(
            keys["type"].as_str().unwrap().starts_with(key_type),
            "{keys}"
        );
        // The active key (version 1) and the pre-published next key (version 2).
        assert_eq!(keys["latest_version"], 1, "{keys}");
        let versions = keys["keys"].as_object().unwrap();
        assert_eq!(versions.len(), 2, "{keys}");
        assert_eq!(keys["keys"]["1"]["state"], "active");
        assert_eq!(keys["keys"]["2"]["state"], "next");
        let (_, signing) = local
            .get(
                &format!("/v1/key-sets/{set}/signing-key"),
                Some(SIGNER_TOKEN),
            )
            .await;
        assert_eq!(keys["keys"]["1"]["kid"], signing["active"]["kid"]);
        assert_eq!(keys["keys"]["2"]["kid"], signing["next"]["kid"]);
        for (version, entry) in versions {
            let jwk = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == entry["kid"])
                .unwrap_or_else(|| panic!("{set} v{version} not in the JWKS"));
            let from_pem = pem_as_jwk(entry["public_key"].as_str().unwrap());
            for (member, value) in from_pem.as_object().unwrap() {
                assert_eq!(&jwk[member], value, "{set} v{version} {member}");
            }
            assert!(entry["creation_time"].as_str().unwrap().ends_with('Z'));
        }
    }
}

#[tokio::test]
async fn asn1_ecdsa_signatures_are_der_and_generic_sets_sign_any_bytes() {
    use p256::ecdsa::signature::Verifier;
    let local = Local::start(&sets(), |c| c).await;
    let base = local.serve().await;
    let client = vault(&base, SIGNER_TOKEN);
    let jwks = local.get("/.well-known/jwks.json", None).await.1;
    let keys = listing(&base, "gen").await;
    let kid = keys["keys"]["1"]["kid"].as_str().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    let point = [
        &[4u8][..],
        &B64URL.decode(jwk["x"].as_str().unwrap()).unwrap(),
        &B64URL.decode(jwk["y"].as_str().unwrap()).unwrap(),
    ]
    .concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let message = b"\x00\xffany bytes at all";
    // Vault's default marshaling is asn1, and hash_algorithm in the path is accepted.
    let signed = transit::data::sign(&client, MOUNT, "gen", &B64.encode(message), None)
        .await
        .unwrap();
    let der = B64
        .decode(signed.signature.strip_prefix("vault:v1:").unwrap())
        .unwrap();
    let sig = p256::ecdsa::Signature::from_der(&der).expect("a DER Ecdsa-Sig-Value");
    key.verify(message, &sig)
        .expect("verifies with the JWKS key");
    assert!(verify(&client, "gen", message, &signed.signature, false).await);
    assert!(!verify(&client, "gen", b"other bytes", &signed.signature, false).await);

    // A batch: one pipeline call per item, errors per item.
    let url = format!("{base}/v1/transit/sign/gen/sha2-256");
    let body = json!({"batch_input": [
        {"input": B64.encode(b"one"), "reference": "a"},
        {"input": "%%% not base64", "reference": "b"},
        {"input": B64.encode(b"three")},
    ]});
    let (status, _, out) = raw("POST", &url, Some(SIGNER_TOKEN), &body).await;
    assert_eq!(status, 200, "{out}");
    let results = out["data"]["batch_results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["reference"], "a");
    assert!(
        results[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
    assert_eq!(results[0]["key_version"], 1);
    assert_eq!(results[1]["reference"], "b");
    assert!(
        results[1]["error"].as_str().unwrap().contains("base64"),
        "{out}"
    );
    let third = results[2]["signature"].as_str().unwrap();
    assert!(verify(&client, "gen", b"three", third, false).await);

    // Each signature (each batch item) has its own audit event; the refused item and verify none.
    let (status, out) = local.get("/v1/audit?limit=1000", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{out}");
    let digests: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signed" && e["key_set"] == "gen")
        .map(|e| e["detail"]["input_sha256"].as_str().unwrap())
        .collect();
    let sha = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    assert_eq!(digests, [sha(message), sha(b"one"), sha(b"three")]);
}

#[tokio::test]
async fn refusals_use_vaults_error_envelope() {
    let local = Local::start(&sets(), |c| c).await;
    let base = local.serve().await;
    let client = vault(&base, SIGNER_TOKEN);
    let now = local.service.now();
    let keys = listing(&base, "es").await;
    let (active, next) = (
        keys["keys"]["1"]["kid"].as_str().unwrap().to_string(),
        keys["keys"]["2"]["kid"].as_str().unwrap().to_string(),
    );
    let good = signing_input("ES256", &active, now);
    let sign = |set: &'static str, input: String, opts: Option<SignDataRequestBuilder>| {
        let client = &client;
        async move {
            let mut opts = opts.unwrap_or_default();
            let input = B64.encode(input);
            let r = transit::data::sign(client, MOUNT, set, &input, Some(&mut opts)).await;
            api_error(r.expect_err("refused"))
        }
    };
    let with = |f: &dyn Fn(&mut SignDataRequestBuilder)| {
        let mut o = SignDataRequestBuilder::default();
        f(&mut o);
        Some(o)
    };
    // Not a JWS signing input, for a JWT key set.
    let (code, errors) = sign("es", "hello".into(), None).await;
    assert_eq!(code, 400, "{errors:?}");
    assert!(errors[0].contains("signing_input"), "{errors:?}");
    // A JWS whose claims fail the id_token profile.
    let header = json!({"alg": "ES256", "kid": active, "typ": "JWT"}).to_string();
    let bad = format!(
        "{}.{}",
        B64URL.encode(header),
        B64URL.encode(r#"{"sub":"x"}"#)
    );
    assert_eq!(sign("es", bad, None).await.0, 400);
    // prehashed, a hash or salt that does not fit, an unknown marshaling.
    let cases = [
        with(&|o| {
            o.prehashed(true);
        }),
        with(&|o| {
            o.hash_algorithm(vaultrs::api::transit::HashAlgorithm::Sha2_384);
        }),
    ];
    for opts in cases {
        let (code, errors) = sign("es", good.clone(), opts).await;
        assert_eq!(code, 400, "{errors:?}");
    }
    // The next key's version refuses, with a clear message.
    let next_input = signing_input("ES256", &next, now);
    let (code, errors) = sign(
        "es",
        next_input,
        with(&|o| {
            o.key_version(2u64);
        }),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        errors[0].contains("version 2") && errors[0].contains("next key"),
        "{errors:?}"
    );
    // The header kid must be the requested version's.
    let (code, errors) = sign(
        "es",
        good.clone(),
        with(&|o| {
            o.key_version(2u64);
        }),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        errors[0].contains("not the kid of key version 2"),
        "{errors:?}"
    );

    // A signer without the key set, and no or an unknown token: Vault's 403.
    let limited = vault(&base, LIMITED_TOKEN);
    let r = transit::data::sign(&limited, MOUNT, "es", &B64.encode(&good), None).await;
    assert_eq!(
        api_error(r.unwrap_err()),
        (403, vec!["permission denied".to_string()])
    );
    let url = format!("{base}/v1/transit/sign/es");
    let body = json!({"input": B64.encode(&good)});
    for token in [None, Some("not-a-token")] {
        let (status, ctype, out) = raw("POST", &url, token, &body).await;
        assert_eq!(
            (status, out),
            (403, json!({"errors": ["permission denied"]}))
        );
        assert_eq!(ctype, "application/json");
    }
    // Every credential presented must be valid: an unknown X-Vault-Token next to a good bearer
    // token, or two tokens of different clients, are refused.
    for vault_token in ["not-a-token", LIMITED_TOKEN] {
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(SIGNER_TOKEN)
            .header("X-Vault-Token", vault_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{vault_token}");
    }
    // PSS salt other than the hash length; a raw call shows the envelope and content type.
    let ps = format!("{base}/v1/transit/sign/ps");
    let (status, ctype, out) = raw(
        "POST",
        &ps,
        Some(SIGNER_TOKEN),
        &json!({"input": B64.encode("x.y"), "salt_length": 20}),
    )
    .await;
    assert_eq!((status, ctype.as_str()), (400, "application/json"), "{out}");
    assert!(out["errors"][0].as_str().unwrap().contains("salt"), "{out}");
    // Unknown key set on read, unknown path, wrong method.
    let (status, _, out) = raw(
        "GET",
        &format!("{base}/v1/transit/keys/nope"),
        Some(SIGNER_TOKEN),
        &Value::Null,
    )
    .await;
    assert_eq!((status, out["errors"].is_array()), (404, true));
    let (status, _, out) = raw("GET", &url, Some(SIGNER_TOKEN), &Value::Null).await;
    assert_eq!((status, out["errors"].is_array()), (405, true), "{out}");
    // The good input signs (with X-Vault-Token), after all those refusals.
    let (status, _, out) = raw("POST", &url, Some(SIGNER_TOKEN), &body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["data"]["key_version"], 1);
}

#[tokio::test]
async fn after_a_rotation_the_old_version_signs_only_within_the_grace() {
    let local = Local::start(&sets(), |c| c).await;
    let base = local.serve().await;
    let client = vault(&base, SIGNER_TOKEN);
    let keys = listing(&base, "gen").await;
    let (v1, v2) = (&keys["keys"]["1"]["kid"], &keys["keys"]["2"]["kid"]);
    let (status, out) = local
        .post(
            "/v1/key-sets/gen/rotate",
            Some(ADMIN_TOKEN),
            &json!({"force": true}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    // A rotation in the second of the last activation takes effect a second later.
    local.clock.advance(1);
    let keys = listing(&base, "gen").await;
    assert_eq!(keys["latest_version"], 2, "{keys}");
    // Versions are stable: the same kids under the same numbers.
    assert_eq!(
        (&keys["keys"]["1"]["kid"], &keys["keys"]["2"]["kid"]),
        (v1, v2)
    );
    let sign_v1 = || async {
        let mut opts = SignDataRequestBuilder::default();
        opts.key_version(1u64);
        transit::data::sign(&client, MOUNT, "gen", &B64.encode("x"), Some(&mut opts)).await
    };
    // Within activation_grace (default 30s) the superseded version still signs...
    let signed = sign_v1().await.unwrap();
    assert!(signed.signature.starts_with("vault:v1:"));
    let latest = transit::data::sign(&client, MOUNT, "gen", &B64.encode("x"), None)
        .await
        .unwrap();
    assert!(latest.signature.starts_with("vault:v2:"));
    // ...past it, it is retired and refuses; its signatures still verify.
    local.clock.advance(31);
    let (code, errors) = api_error(sign_v1().await.unwrap_err());
    assert_eq!(code, 400);
    assert!(
        errors[0].contains("version 1") && errors[0].contains("retired"),
        "{errors:?}"
    );
    assert!(verify(&client, "gen", b"x", &signed.signature, false).await);
}
