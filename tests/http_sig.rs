//! RFC 9421 HTTP message signatures against real SoftHSM tokens: `sign/http` on the real
//! `signet` binary for the FAPI 2.0 request and response shapes, verified with an independent
//! implementation (Python `http-message-signatures`, installed by `scripts/setup`) and with
//! `verify_with_jwks`, using only the published JWKS; the RFC 9421 B.2.6 signature reproduced
//! with the RFC's key imported into a token. The error cases as the caller sees them are in
//! `tests/errors.rs` (in process).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};

use common::{SIGNER_TOKEN, Signet, Token, free_port, set};
use signet::signing::http_sig::{HttpMessage, verify_with_jwks};

/// The three RFC 9421 algorithms, by key set: (set, config alg, JOSE alg in the JWKS).
const SETS: [(&str, &str, &str); 3] = [
    ("http-ed25519", "ed25519", "EdDSA"),
    ("http-p256", "ecdsa-p256-sha256", "ES256"),
    ("http-rsa", "rsa-pss-sha512", "PS512"),
];

const REQUEST_BODY: &[u8] = br#"{"amount": "10.00", "currency": "EUR"}"#;
const RESPONSE_BODY: &[u8] = br#"{"status": "accepted"}"#;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/standards.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("shared vectors")).expect("JSON")
}

fn message(v: &Value) -> HttpMessage {
    serde_json::from_value(v.clone()).expect("message shape")
}

/// `message` with `name: value` appended.
fn with_header(mut m: Value, name: &str, value: &str) -> Value {
    m["headers"]
        .as_array_mut()
        .expect("headers")
        .push(json!([name, value]));
    m
}

/// `@method;req` as a serialized sf-string item, `"@method";req`: the form in which the
/// Python verifier takes an identifier with parameters.
fn sf_identifier(covered: &str) -> String {
    let (name, params) = covered.split_once(';').unwrap_or((covered, ""));
    let params = if params.is_empty() {
        String::new()
    } else {
        format!(";{params}")
    };
    format!("\"{name}\"{params}")
}

/// The Python interpreter that has `http-message-signatures` (see `scripts/setup`).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SIGNET_TEST_PYTHON") {
        return p.into();
    }
    let venv = common::repo().join("var/python/bin/python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Verifies with the independent implementation; `Err(reason)` when it refuses.
fn python_verify(doc: &Value) -> Result<Value, String> {
    use std::io::Write as _;
    let script = common::repo().join("tests/py/verify_http_sig.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (scripts/setup installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("python exits");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the independent verifier is not installed; run scripts/setup: {stderr}"
    );
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("verifier prints JSON"))
    } else {
        Err(stderr)
    }
}

async fn sign(signet: &Signet, set: &str, body: &Value) -> Value {
    let (status, out) = signet
        .post(
            &format!("/v1/key-sets/{set}/sign/http"),
            Some(SIGNER_TOKEN),
            body,
        )
        .await;
    assert_eq!(status, 200, "sign/http on {set}: {out}");
    out
}

#[tokio::test]
async fn fapi_request_and_response_signatures_verify_independently() {
    let token = Token::new("http-sig");
    let port = free_port();
    let sets: Vec<_> = SETS
        .iter()
        .map(|(name, alg, _)| set(name, "http_message", alg))
        .collect();
    let config = common::config(&token, token.dir.path(), port, &sets);
    let signet = Signet::start(&token, token.dir.path(), port, &config).await;

    for (set, http_alg, jose_alg) in SETS {
        let jwks = signet.get_json(&format!("/v1/key-sets/{set}/jwks")).await;
        let active_kid = signet.readyz_details().await.1["key_sets"][set]["active_kid"].clone();

        // FAPI 2.0 request: @method, @target-uri, authorization, content-digest; tag; created.
        let request = json!({
            "method": "POST",
            "target_uri": "https://rs.example.com/payments?consent=abc",
            "headers": [
                ["Authorization", "DPoP eyJhbGciOiJFUzI1NiJ9.e30.sig"],
                ["DPoP", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"],
                ["Content-Type", "application/json"]
            ],
            "body": B64.encode(REQUEST_BODY),
        });
        let before = common::now();
        let out = sign(
            &signet,
            set,
            &json!({
                "message": request,
                "covered": ["@method", "@target-uri", "authorization", "content-digest"],
                "tag": "fapi-2-request",
                "content_digest": "sha-256",
            }),
        )
        .await;
        let mut members: Vec<_> = out.as_object().expect("object").keys().cloned().collect();
        members.sort();
        assert_eq!(
            members,
            [
                "alg",
                "content_digest",
                "kid",
                "signature",
                "signature_input"
            ],
            "{out}"
        );
        assert_eq!(out["alg"], http_alg);
        assert_eq!(out["kid"], active_kid, "signed with the active key");
        let kid = out["kid"].as_str().expect("kid");
        let jwk = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid)
            .expect("the kid is published");
        assert_eq!(jwk["alg"], jose_alg);
        let input = out["signature_input"].as_str().expect("signature_input");
        let prefix = r#"sig=("@method" "@target-uri" "authorization" "content-digest");created="#;
        assert!(input.starts_with(prefix), "{input}");
        assert!(
            input.ends_with(&format!(r#";keyid="{kid}";tag="fapi-2-request""#)),
            "{input}"
        );
        let created: i64 = input[prefix.len()..]
            .split(';')
            .next()
            .and_then(|c| c.parse().ok())
            .expect("created");
        assert!(
            (before - 1..=common::now() + 1).contains(&created),
            "created defaults to now"
        );
        let digest = out["content_digest"].as_str().expect("content_digest");
        assert_eq!(
            digest,
            format!(
                "sha-256=:{}:",
                B64.encode(<sha2::Sha256 as sha2::Digest>::digest(REQUEST_BODY))
            )
        );
        let sent = with_header(request.clone(), "Content-Digest", digest);

        let doc = json!({
            "message": sent,
            "signature_input": input,
            "signature": out["signature"],
            "jwks": jwks,
            "tag": "fapi-2-request",
            "require": ["@method", "@target-uri", "authorization", "content-digest"],
        });
        let verified = python_verify(&doc)
            .unwrap_or_else(|e| panic!("{set}: independent verifier refused the request: {e}"));
        assert_eq!(verified["parameters"]["keyid"], kid);
        assert_eq!(verified["parameters"]["created"], created);
        assert_eq!(verified["body_verified"], true, "Content-Digest checked");
        // The harness can fail: a changed Authorization field must not verify.
        let mut tampered = doc.clone();
        tampered["message"]["headers"][0][1] = json!("DPoP eyJhbGciOiJFUzI1NiJ9.e30.sih");
        assert!(
            python_verify(&tampered).is_err(),
            "{set}: tampered request verified"
        );
        let ours = verify_with_jwks(
            &message(&sent),
            None,
            input,
            out["signature"].as_str().expect("signature"),
            Some("sig"),
            &jwks,
        )
        .expect("verify_with_jwks accepts the request signature");
        assert_eq!(ours.tag.as_deref(), Some("fapi-2-request"));

        // FAPI 2.0 response: @status, content-digest, and the request's @method, @target-uri and
        // content-digest with ;req; tag; created.
        let response = json!({
            "status": 201,
            "headers": [["Content-Type", "application/json"], ["Cache-Control", "no-store"]],
            "body": B64.encode(RESPONSE_BODY),
        });
        let covered = [
            "@status",
            "content-digest",
            "@method;req",
            "@target-uri;req",
            "content-digest;req",
        ];
        let out = sign(
            &signet,
            set,
            &json!({
                "message": response,
                "request": sent,
                "covered": covered,
                "tag": "fapi-2-response",
                "content_digest": "sha-512",
                "label": "res",
            }),
        )
        .await;
        assert_eq!(out["alg"], http_alg);
        let input = out["signature_input"].as_str().expect("signature_input");
        assert!(
            input.starts_with(
                r#"res=("@status" "content-digest" "@method";req "@target-uri";req "content-digest";req);created="#
            ),
            "{input}"
        );
        let digest = out["content_digest"].as_str().expect("content_digest");
        assert!(digest.starts_with("sha-512=:"), "{digest}");
        let sent_response = with_header(response.clone(), "Content-Digest", digest);
        let doc = json!({
            "message": sent_response,
            "request": sent,
            "signature_input": input,
            "signature": out["signature"],
            "jwks": jwks,
            "tag": "fapi-2-response",
            "require": covered.map(sf_identifier),
        });
        let verified = python_verify(&doc)
            .unwrap_or_else(|e| panic!("{set}: independent verifier refused the response: {e}"));
        assert_eq!(verified["label"], "res");
        assert_eq!(verified["body_verified"], true);
        // Bound to its request: another target URI does not verify.
        let mut other = doc.clone();
        other["request"]["target_uri"] = json!("https://rs.example.com/payments?consent=abd");
        assert!(
            python_verify(&other).is_err(),
            "{set}: response verified for another request"
        );
        verify_with_jwks(
            &message(&sent_response),
            Some(&message(&sent)),
            input,
            out["signature"].as_str().expect("signature"),
            None,
            &jwks,
        )
        .expect("verify_with_jwks accepts the response signature");
    }
}

#[test]
fn rfc_9421_ecdsa_vectors_verify_against_a_jwks() {
    let all = vectors();
    let mut jwk = all["keys"]["test-key-ecc-p256"]["jwk"].clone();
    jwk.as_object_mut().expect("jwk").remove("d");
    jwk["alg"] = json!("ES256");
    let jwks = json!({ "keys": [jwk] });
    let b24 = all["rfc9421"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with("B.2.4")))
        .expect("B.2.4");
    let mut m = b24["message"].clone();
    m.as_object_mut().expect("message").remove("kind");
    m["body"] = json!(B64.encode(m["body"].as_str().expect("body")));
    let verified = verify_with_jwks(
        &message(&m),
        None,
        b24["signature_input"].as_str().expect("input"),
        b24["signature"].as_str().expect("signature"),
        None,
        &jwks,
    )
    .expect("B.2.4 verifies");
    assert_eq!(verified.keyid.as_deref(), Some("test-key-ecc-p256"));
}

/// The B.2.6 test key imported into a SoftHSM token signs the B.2.6 base to exactly the RFC's
/// signature. SoftHSM reads `SOFTHSM2_CONF` once per process, so the work runs in a child test
/// process pointed at the temporary token.
#[test]
fn b_2_6_ed25519_signature_is_reproduced_by_an_imported_softhsm_key() {
    const CHILD: &str = "SIGNET_B26_TOKEN_LABEL";
    if let Ok(label) = std::env::var(CHILD) {
        b26_in_token(&label);
        println!("B.2.6 reproduced through SoftHSM");
        return;
    }
    let token = Token::new("b26");
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "b_2_6_ed25519_signature_is_reproduced_by_an_imported_softhsm_key",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &token.label)
        .env("SOFTHSM2_CONF", token.conf())
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("B.2.6 reproduced through SoftHSM"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Imports the RFC 9421 `test-key-ed25519` into the token `label` (as a sensitive,
/// non-extractable, sign-only token object), then signs the B.2.6 base through the PKCS#11
/// backend and the self-verifying `SigningKey`.
fn b26_in_token(label: &str) {
    use std::sync::Arc;
    use std::time::Duration;

    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use signet::hsm::{Backend, BackendConfig, SignScheme};
    use signet::service::hsm_signer::{HsmSigner, public_key};
    use signet::signing::http_sig::{finish, parse_sign_request, prepare};
    use signet::signing::{Algorithm, SigningKey};

    let all = vectors();
    let jwk = &all["keys"]["test-key-ed25519"]["jwk"];
    let seed = B64URL.decode(jwk["d"].as_str().expect("d")).expect("d");
    let a = B64URL.decode(jwk["x"].as_str().expect("x")).expect("x");
    let v = all["rfc9421"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with("B.2.6")))
        .expect("B.2.6")
        .clone();

    let backend = Backend::open(
        BackendConfig {
            name: "b26".into(),
            module: common::SOFTHSM.into(),
            token_label: Some(label.into()),
            token_serial: None,
            sessions: 1,
            checkout_timeout: Duration::from_secs(5),
        },
        secrecy::SecretString::from(common::PIN),
    )
    .expect("open the token");
    let id = b"test-key-ed25519".to_vec();
    let ed25519_oid = vec![0x06, 0x03, 0x2b, 0x65, 0x70];
    let mut point = vec![0x04, 0x20];
    point.extend(&a);
    {
        let pkcs11 = backend.pkcs11();
        let slot = pkcs11
            .get_slots_with_token()
            .expect("slots")
            .into_iter()
            .find(|s| {
                pkcs11
                    .get_token_info(*s)
                    .is_ok_and(|i| i.label().trim() == label)
            })
            .expect("the token's slot");
        // The backend's pool is logged in, and login is per application.
        let session = pkcs11.open_rw_session(slot).expect("R/W session");
        let common_attrs = |class| {
            vec![
                Attribute::Class(class),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Token(true),
                Attribute::Id(id.clone()),
                Attribute::Label(b"rfc9421/test-key-ed25519".to_vec()),
                Attribute::EcParams(ed25519_oid.clone()),
            ]
        };
        let mut private = common_attrs(ObjectClass::PRIVATE_KEY);
        private.extend([
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Value(seed),
        ]);
        let mut public = common_attrs(ObjectClass::PUBLIC_KEY);
        public.extend([Attribute::Verify(true), Attribute::EcPoint(point)]);
        session
            .create_object(&private)
            .expect("import the private key");
        session
            .create_object(&public)
            .expect("import the public key");
    }

    let public = public_key(backend.public_key(&id).expect("public key read back"));
    assert_eq!(
        public,
        signet::signing::PublicKey::Ed25519 { x: a },
        "the token holds the RFC's public key"
    );
    let attrs = backend.private_attributes(&id).expect("attributes");
    assert!(
        attrs.token && attrs.sensitive && !attrs.extractable && attrs.sign && !attrs.decrypt,
        "{attrs:?}"
    );
    let backend = Arc::new(backend);
    let key = SigningKey::new(
        public.thumbprint(),
        Algorithm::EdDsa,
        public.clone(),
        Arc::new(HsmSigner::new(
            backend.clone(),
            id.clone(),
            Algorithm::EdDsa,
        )),
    )
    .expect("signing key");

    let mut m = v["message"].clone();
    m.as_object_mut().expect("message").remove("kind");
    m["body"] = json!(B64.encode(m["body"].as_str().expect("body")));
    let request = json!({
        "message": m,
        "covered": v["covered"],
        "label": v["label"],
        "created": v["params"]["created"],
    });
    let request = parse_sign_request(request.to_string().as_bytes()).expect("B.2.6 request");
    let prepared = prepare(&request, "test-key-ed25519", None, 0).expect("prepare");
    assert_eq!(prepared.signature_base, v["signature_base"]);

    // Through the backend directly, and through the self-verifying SigningKey.
    let raw = backend
        .sign(&id, SignScheme::Ed25519, prepared.signature_base.as_bytes())
        .expect("C_Sign");
    let sig = key
        .sign(prepared.signature_base.as_bytes())
        .expect("HSM signature, self-verified");
    assert_eq!(raw, sig, "Ed25519 is deterministic");
    let signed = finish(prepared, &sig);
    assert_eq!(signed.signature_input, v["signature_input"]);
    assert_eq!(signed.signature, v["signature"], "byte for byte");

    let mut published = public.to_jwk("test-key-ed25519", "EdDSA");
    published.remove("d");
    let jwks = json!({ "keys": [published] });
    verify_with_jwks(
        &message(&m),
        None,
        &signed.signature_input,
        &signed.signature,
        Some("sig-b26"),
        &jwks,
    )
    .expect("B.2.6 verifies against the token's public key");
}
