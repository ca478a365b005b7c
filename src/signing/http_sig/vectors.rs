//! Test-only: the RFC 9421 Appendix B / section 2.4 vectors reproduced byte for byte and checked
//! with independent signature libraries (ed25519-dalek, p256), and the FAPI 2.0 message shapes
//! signed and verified end to end.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey};
use p256::ecdsa::signature::Verifier as _;
use serde_json::Value;

use super::*;

fn vectors() -> Value {
    let text = std::fs::read_to_string(VECTORS).expect("read the shared vectors");
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn vector(all: &Value, prefix: &str) -> Value {
    all["rfc9421"]
        .as_array()
        .expect("rfc9421 list")
        .iter()
        .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .cloned()
        .expect("vector present")
}

fn jwk_bytes(all: &Value, key: &str, member: &str) -> Vec<u8> {
    let b64 = all["keys"][key]["jwk"][member]
        .as_str()
        .expect("jwk member");
    URL_SAFE_NO_PAD.decode(b64).expect("base64url")
}

fn ed25519_key(all: &Value) -> SigningKey {
    let d: [u8; 32] = jwk_bytes(all, "test-key-ed25519", "d")
        .try_into()
        .expect("32 bytes");
    let key = SigningKey::from_bytes(&d);
    assert_eq!(
        key.verifying_key().as_bytes().to_vec(),
        jwk_bytes(all, "test-key-ed25519", "x")
    );
    key
}

fn p256_key(all: &Value) -> p256::ecdsa::VerifyingKey {
    let mut sec1 = vec![4u8];
    sec1.extend(jwk_bytes(all, "test-key-ecc-p256", "x"));
    sec1.extend(jwk_bytes(all, "test-key-ecc-p256", "y"));
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).expect("P-256 point")
}

/// ecdsa-p256-sha256 (RFC 9421 section 3.3.4): SHA-256 then r||s.
fn p256_verifies(key: &p256::ecdsa::VerifyingKey, base: &[u8], sig: &[u8]) -> bool {
    p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| key.verify(base, &s).is_ok())
}

fn ed25519_verifies(key: &SigningKey, base: &[u8], sig: &[u8]) -> bool {
    ed25519_dalek::Signature::from_slice(sig)
        .is_ok_and(|s| key.verifying_key().verify_strict(base, &s).is_ok())
}

fn message(v: &Value) -> HttpMessage {
    HttpMessage {
        method: v["method"].as_str().map(str::to_owned),
        target_uri: v["target_uri"].as_str().map(str::to_owned),
        status: v["status"]
            .as_u64()
            .map(|s| u16::try_from(s).expect("status")),
        headers: serde_json::from_value(v["headers"].clone()).expect("headers"),
        body: v["body"].as_str().map(|b| b.as_bytes().to_vec()),
    }
}

fn sign_request(v: &Value, msg: HttpMessage, request: Option<HttpMessage>) -> SignHttpRequest {
    SignHttpRequest {
        message: msg,
        request,
        covered: serde_json::from_value(v["covered"].clone()).expect("covered"),
        label: v["label"].as_str().expect("label").to_owned(),
        tag: None,
        created: v["params"]["created"].as_i64(),
        expires: None,
        nonce: None,
        content_digest: None,
    }
}

/// The value of one dictionary member line `label=value` from the vectors.
fn member_value<'a>(line: &'a str, label: &str) -> &'a str {
    line.strip_prefix(label)
        .and_then(|rest| rest.strip_prefix('='))
        .expect("label=value")
}

#[test]
fn b_2_6_ed25519_is_reproduced_exactly_and_verifies() {
    let all = vectors();
    let v = vector(&all, "B.2.6");
    let req = sign_request(&v, message(&v["message"]), None);
    let prepared = prepare(&req, "test-key-ed25519", None, 0).expect("prepare");
    assert_eq!(
        prepared.signature_base,
        v["signature_base"].as_str().expect("base")
    );

    let key = ed25519_key(&all);
    let sig = key.sign(prepared.signature_base.as_bytes()).to_bytes();
    let signed = finish(prepared, &sig);
    assert_eq!(
        signed.signature_input,
        v["signature_input"].as_str().expect("input")
    );
    assert_eq!(
        signed.signature,
        v["signature"].as_str().expect("signature")
    );

    let msg = message(&v["message"]);
    let check = |m: &HttpMessage| {
        verify_message(
            m,
            None,
            &signed.signature_input,
            &signed.signature,
            Some("sig-b26"),
            |kid, alg, base, sig| {
                kid == Some("test-key-ed25519")
                    && alg.is_none()
                    && ed25519_verifies(&key, base, sig)
            },
        )
    };
    let verified = check(&msg).expect("verifies");
    assert_eq!(verified.created, Some(1_618_884_473));
    assert_eq!(verified.covered.len(), 6);

    let mut tampered = msg.clone();
    tampered.headers[1].1 = "Tue, 20 Apr 2021 02:07:56 GMT".into();
    assert_eq!(
        check(&tampered).expect_err("tampered").code(),
        "signature_invalid"
    );
}

#[test]
fn b_2_4_ecdsa_response_is_reproduced_and_verifies() {
    let all = vectors();
    let v = vector(&all, "B.2.4");
    let msg = message(&v["message"]);
    let req = sign_request(&v, msg.clone(), None);
    let prepared = prepare(&req, "test-key-ecc-p256", None, 0).expect("prepare");
    assert_eq!(
        prepared.signature_base,
        v["signature_base"].as_str().expect("base")
    );
    let signed = finish(prepared, b"unused");
    assert_eq!(
        signed.signature_input,
        v["signature_input"].as_str().expect("input")
    );

    let key = p256_key(&all);
    let verified = verify_message(
        &msg,
        None,
        v["signature_input"].as_str().expect("input"),
        v["signature"].as_str().expect("signature"),
        None,
        |kid, _, base, sig| kid == Some("test-key-ecc-p256") && p256_verifies(&key, base, sig),
    )
    .expect("RFC signature verifies");
    assert_eq!(verified.label, "sig-b24");
}

#[test]
fn section_2_4_req_binding_is_reproduced_and_verifies() {
    let all = vectors();
    let v = vector(&all, "2.4 ");
    let request = message(&vector(&all, "B.2.6")["message"]);
    let response = HttpMessage {
        status: Some(503),
        headers: vec![
            ("Content-Digest".into(), "sha-512=:0Y6iCBzGg5rZtoXS95Ijz03mslf6KAMCloESHObfwnHJDbkkWWQz6PhhU9kxsTbARtY2PTBOzq24uJFpHsMuAg==:".into()),
            ("Content-Type".into(), "application/json".into()),
        ],
        ..HttpMessage::default()
    };
    let base = v["signature_base"].as_str().expect("base");
    let covered = [
        "@status",
        "content-digest",
        "content-type",
        "@authority;req",
        "@method;req",
        "@path;req",
        "content-digest;req",
    ];
    let req = SignHttpRequest {
        message: response.clone(),
        request: Some(request.clone()),
        covered: covered.iter().map(|c| c.to_string()).collect(),
        label: "reqres".into(),
        tag: None,
        created: Some(1_618_884_479),
        expires: None,
        nonce: None,
        content_digest: None,
    };
    let prepared = prepare(&req, "test-key-ecc-p256", None, 0).expect("prepare");
    assert_eq!(prepared.signature_base, base);
    let params = base
        .rsplit_once("\"@signature-params\": ")
        .expect("params line")
        .1;
    let signed = finish(prepared, b"unused");
    assert_eq!(member_value(&signed.signature_input, "reqres"), params);

    let key = p256_key(&all);
    let verified = verify_message(
        &response,
        Some(&request),
        &signed.signature_input,
        v["signature"].as_str().expect("signature"),
        Some("reqres"),
        |_, _, base, sig| p256_verifies(&key, base, sig),
    )
    .expect("RFC signature verifies");
    assert_eq!(verified.covered[3], r#""@authority";req"#);
}

// Over 80 lines on purpose: one request and its response, signed and verified in order; split,
// the two halves would have to pass the request around.
#[test]
fn fapi_2_request_and_response_round_trip() {
    let all = vectors();
    let key = ed25519_key(&all);
    let body = STANDARD.encode(br#"{"amount": "10.00"}"#);
    let json = format!(
        r#"{{"message":{{"method":"POST","target_uri":"https://rs.example.com/payments?x=1",
            "headers":[["Authorization","DPoP abc"],["Content-Type","application/json"]],
            "body":"{body}"}},
            "covered":["@method","@target-uri","authorization","content-digest"],
            "tag":"fapi-2-request","content_digest":"sha-256","expires":1700000300}}"#
    );
    let req = parse_sign_request(json.as_bytes()).expect("request JSON");
    let prepared = prepare(&req, "kid-1", Some("ed25519"), 1_700_000_000).expect("prepare");
    let signed = finish(
        prepared.clone(),
        &key.sign(prepared.signature_base.as_bytes()).to_bytes(),
    );
    let mut sent = req.message.clone();
    let digest = signed.content_digest.clone().expect("digest computed");
    sent.headers.push(("Content-Digest".into(), digest.clone()));
    let verified = verify_message(
        &sent,
        None,
        &signed.signature_input,
        &signed.signature,
        None,
        |kid, alg, base, sig| {
            kid == Some("kid-1") && alg == Some("ed25519") && ed25519_verifies(&key, base, sig)
        },
    )
    .expect("FAPI request verifies");
    assert_eq!(verified.tag.as_deref(), Some("fapi-2-request"));
    assert_eq!(verified.expires, Some(1_700_000_300));

    let resp_json = format!(
        r#"{{"message":{{"status":201,"body":"{body}"}},
            "request":{},
            "covered":["@status","content-digest","@method;req","@target-uri;req","content-digest;req"],
            "label":"sig2","tag":"fapi-2-response","content_digest":"sha-512"}}"#,
        serde_json::to_string(&sent).expect("request JSON")
    );
    let resp = parse_sign_request(resp_json.as_bytes()).expect("response JSON");
    let prepared = prepare(&resp, "kid-1", Some("ed25519"), 1_700_000_001).expect("prepare");
    assert!(
        prepared
            .signature_base
            .contains(&format!("\"content-digest\";req: {digest}\n"))
    );
    let signed = finish(
        prepared.clone(),
        &key.sign(prepared.signature_base.as_bytes()).to_bytes(),
    );
    let mut response = resp.message.clone();
    let resp_digest = signed.content_digest.clone().expect("digest");
    response
        .headers
        .push(("content-digest".into(), resp_digest));
    let verified = verify_message(
        &response,
        Some(&sent),
        &signed.signature_input,
        &signed.signature,
        Some("sig2"),
        |_, _, base, sig| ed25519_verifies(&key, base, sig),
    )
    .expect("FAPI response verifies");
    assert_eq!(verified.tag.as_deref(), Some("fapi-2-response"));

    // The response is bound to the request: another request target breaks it.
    let mut other = sent.clone();
    other.target_uri = Some("https://rs.example.com/payments?x=2".into());
    let err = verify_message(
        &response,
        Some(&other),
        &signed.signature_input,
        &signed.signature,
        Some("sig2"),
        |_, _, base, sig| ed25519_verifies(&key, base, sig),
    )
    .expect_err("bound to the original request");
    assert_eq!(err.code(), "signature_invalid");

    // A body changed after signing is caught by the digest before the signature.
    response.body = Some(b"{}".to_vec());
    let err = verify_message(
        &response,
        Some(&sent),
        &signed.signature_input,
        &signed.signature,
        Some("sig2"),
        |_, _, _, _| true,
    )
    .expect_err("body changed");
    assert_eq!(err.code(), "content_digest_mismatch");
}
