//! Certificates of HSM keys, in process (common/local.rs: real SoftHSM, real SQLite, a manual
//! clock): a CSR per algorithm verified by `openssl req -verify` and carrying the key's public
//! key; a chain issued by a test CA made with the `openssl` CLI accepted and served as `x5c` /
//! `x5t#S256` (matched to the key by `openssl x509`); the refusals; `header_x5c`;
//! `require_certificate` with a moved clock.

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::local::Local;
use common::*;
use serde_json::{Value, json};
use sha2::Digest;

/// A test CA (root + intermediate, P-256) made with the openssl CLI in `dir`.
fn make_ca(dir: &Path) {
    ec_key(dir, "root.key");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/CN=Test Root",
            "-days",
            "400",
            "-out",
            "root.pem",
        ],
    );
    ec_key(dir, "int.key");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/CN=Test Intermediate",
            "-out",
            "int.csr",
        ],
    );
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "300",
            "-extfile",
            "ca.ext",
            "-out",
            "int.pem",
        ],
    );
}

/// A P-256 private key in `dir/out`.
fn ec_key(dir: &Path, out: &str) {
    let args = [
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        out,
    ];
    openssl(dir, &args);
}

/// Issues a leaf for the CSR `csr` (PEM) from the intermediate; returns leaf + int + root.
fn issue(dir: &Path, csr: &str, name: &str, days: &str) -> String {
    std::fs::write(dir.join(format!("{name}.csr")), csr).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-days",
            days,
            "-copy_extensions",
            "copy",
            "-out",
            &format!("{name}.pem"),
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    format!(
        "{}{}{}",
        read(&format!("{name}.pem")),
        read("int.pem"),
        read("root.pem")
    )
}

fn keys_of(local: &Local, set: &str) -> Vec<signet::keys::KeyRecord> {
    local.service.records(set)
}

async fn csr(local: &Local, set: &str, kid: &str) -> String {
    let path = format!("/v1/key-sets/{set}/keys/{kid}/csr");
    let body = json!({"subject": "CN=signet test,O=Example", "dns": ["signer.example.test"],
        "uri": ["https://as.example.test"]});
    let (status, out) = local.post(&path, Some(ADMIN_TOKEN), &body).await;
    assert_eq!(status, 200, "{out}");
    out["csr"].as_str().unwrap().to_string()
}

async fn attach(local: &Local, set: &str, kid: &str, chain: &str) -> (u16, Value) {
    let path = format!("/v1/key-sets/{set}/keys/{kid}/certificate");
    local
        .call(
            axum::http::Method::PUT,
            &path,
            Some(ADMIN_TOKEN),
            Some(&json!({"chain": chain})),
        )
        .await
}

/// The SubjectPublicKeyInfo DER of a PEM public key, CSR or certificate, as openssl prints it.
fn spki_of(dir: &Path, kind: &str, file: &str) -> String {
    let pem = match kind {
        "req" => openssl(dir, &["req", "-in", file, "-pubkey", "-noout"]),
        _ => openssl(dir, &["x509", "-in", file, "-pubkey", "-noout"]),
    };
    std::fs::write(dir.join("pub.pem"), &pem).unwrap();
    openssl(
        dir,
        &["pkey", "-pubin", "-in", "pub.pem", "-outform", "PEM"],
    )
}

async fn sign_req(local: &Local) -> (u16, Value) {
    let body = json!({"claims": claims_for("id_token", local.service.now())});
    local
        .post("/v1/key-sets/req/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn csr_chain_x5c_refusals_and_require_certificate() {
    let sets = [
        set("es", "id_token", "ES256"),
        Set {
            name: "ps",
            profile: "id_token",
            alg: "PS256",
            extra: "header_x5c = true",
        },
        Set {
            name: "rs",
            profile: "id_token",
            alg: "RS256",
            extra: "fapi = false",
        },
        set("ed", "id_token", "EdDSA"),
        Set {
            name: "req",
            profile: "id_token",
            alg: "ES256",
            extra: "require_certificate = true",
        },
    ];
    let local = Local::start(&sets, |c| c).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);

    // A CSR per algorithm: openssl verifies its signature, and its public key is the key's (the
    // same SPKI openssl derives from the certificate the CA issues for it, checked below).
    for s in ["es", "ps", "rs", "ed"] {
        let kid = keys_of(&local, s)[0].kid.clone();
        let pem = csr(&local, s, &kid).await;
        std::fs::write(d.join(format!("{s}.req.pem")), &pem).unwrap();
        let text = openssl(
            d,
            &[
                "req",
                "-in",
                &format!("{s}.req.pem"),
                "-verify",
                "-noout",
                "-text",
            ],
        );
        assert!(text.contains("signer.example.test"), "{s}: {text}");
        if s == "ps" {
            assert!(
                text.contains("rsassaPss") && text.contains("0x20"),
                "{text}"
            );
        }
        // A chain for it is accepted; JWKS x5c/x5t#S256 match what openssl sees.
        let chain = issue(d, &pem, s, "10");
        let (status, out) = attach(&local, s, &kid, &chain).await;
        assert_eq!(status, 200, "{s}: {out}");
        assert_eq!(
            spki_of(d, "req", &format!("{s}.req.pem")),
            spki_of(d, "x509", &format!("{s}.pem")),
            "{s}"
        );
        let (_, jwks) = local.get(&format!("/v1/key-sets/{s}/jwks"), None).await;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone();
        let x5c: Vec<String> = serde_json::from_value(jwk["x5c"].clone()).unwrap();
        assert_eq!(x5c.len(), 3, "{s}");
        let leaf_der = openssl(
            d,
            &[
                "x509",
                "-in",
                &format!("{s}.pem"),
                "-outform",
                "DER",
                "-out",
                "leaf.der",
            ],
        );
        let _ = leaf_der;
        let der = std::fs::read(d.join("leaf.der")).unwrap();
        assert_eq!(STANDARD.decode(&x5c[0]).unwrap(), der, "{s}");
        assert_eq!(
            jwk["x5t#S256"],
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der)),
            "{s}"
        );
        // The leaf's key, by openssl, is the JWK's: its modulus / point in the JWK members.
        let text = openssl(d, &["x509", "-in", &format!("{s}.pem"), "-noout", "-text"]);
        if s == "rs" || s == "ps" {
            let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
            let modulus = openssl(
                d,
                &["x509", "-in", &format!("{s}.pem"), "-noout", "-modulus"],
            );
            assert_eq!(
                modulus.trim().trim_start_matches("Modulus="),
                hex::encode_upper(n),
                "{s}"
            );
        } else {
            let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
            let flat: String = text.split_whitespace().collect::<Vec<_>>().join("");
            assert!(
                flat.contains(
                    &hex::encode(&x)
                        .as_bytes()
                        .chunks(2)
                        .map(|c| std::str::from_utf8(c).unwrap())
                        .collect::<Vec<_>>()
                        .join(":")
                ),
                "{s}: {text}"
            );
        }
    }

    // header_x5c: the JWS header carries the chain.
    let now = local.service.now();
    let (status, out) = local
        .post(
            "/v1/key-sets/ps/sign/jwt",
            Some(SIGNER_TOKEN),
            &json!({"claims": claims_for("id_token", now)}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(out["jwt"].as_str().unwrap().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (_, jwks) = local.get("/v1/key-sets/ps/jwks", None).await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap()
        .clone();
    assert_eq!(header["x5c"], jwk["x5c"]);
    // Without header_x5c, no x5c in the header.
    let (_, out) = local
        .post(
            "/v1/key-sets/es/sign/jwt",
            Some(SIGNER_TOKEN),
            &json!({"claims": claims_for("id_token", now)}),
        )
        .await;
    let h = out["jwt"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    assert!(h.get("x5c").is_none(), "{h}");

    // Refusals: a leaf for another key, a malformed or disordered chain, an expired leaf.
    let es_kid = keys_of(&local, "es")[0].kid.clone();
    let ed_kid = keys_of(&local, "ed")[0].kid.clone();
    let ed_chain = issue(d, &csr(&local, "ed", &ed_kid).await, "ed2", "1");
    let (status, out) = attach(&local, "es", &es_kid, &ed_chain).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (400, Some("certificate_key_mismatch")),
        "{out}"
    );
    let (status, out) = attach(&local, "es", &es_kid, "not a chain").await;
    assert_eq!(
        (status, out["code"].as_str()),
        (400, Some("certificate_invalid")),
        "{out}"
    );
    let es_leaf = std::fs::read_to_string(d.join("es.pem")).unwrap();
    let root = std::fs::read_to_string(d.join("root.pem")).unwrap();
    let (status, out) = attach(&local, "es", &es_kid, &format!("{es_leaf}{root}")).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (400, Some("certificate_invalid")),
        "{out}"
    );
    local.clock.advance(3 * 86400);
    let (status, out) = attach(&local, "ed", &ed_kid, &ed_chain).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (400, Some("certificate_expired")),
        "{out}"
    );
    local.clock.advance(-3 * 86400);

    // require_certificate: the next key does not activate at its time without a chain.
    let records = keys_of(&local, "req");
    let (a, b) = (records[0].clone(), records[1].clone());
    assert!(b.certificate_required && !a.certificate_required);
    // `/readyz` answers from the background health check; its details need credentials.
    local.service.check_health().await;
    let (_, ready) = local.get("/readyz", Some(ADMIN_TOKEN)).await;
    assert!(
        ready["key_sets"]["req"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains(&b.kid),
        "{ready}"
    );
    local.clock.set(b.activate_at + 10);
    local.service.tick().await;
    let (status, out) = sign_req(&local).await;
    assert_eq!(
        (status, out["kid"].as_str()),
        (200, Some(a.kid.as_str())),
        "{out}"
    );
    let (status, out) = local
        .post("/v1/key-sets/req/rotate", Some(ADMIN_TOKEN), &json!({}))
        .await;
    assert_eq!(
        (status, out["code"].as_str()),
        (409, Some("certificate_required")),
        "{out}"
    );
    // Its chain attached (the CA's validity covers the moved clock): it signs from then on.
    let chain = issue(d, &csr(&local, "req", &b.kid).await, "req", "200");
    let (status, out) = attach(&local, "req", &b.kid, &chain).await;
    assert_eq!(
        (status, out["state"].as_str()),
        (200, Some("active")),
        "{out}"
    );
    let (status, out) = sign_req(&local).await;
    assert_eq!(
        (status, out["kid"].as_str()),
        (200, Some(b.kid.as_str())),
        "{out}"
    );
}
