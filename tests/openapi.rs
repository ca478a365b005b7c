//! `/openapi.json` is generated from the code and covers every route the service answers.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// Every route of DESIGN.md's HTTP API v1 (and the operations routes).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/key-sets/{set}/sign/jwt"),
    ("post", "/v1/key-sets/{set}/sign/jws"),
    ("post", "/v1/key-sets/{set}/sign/http"),
    ("post", "/v1/key-sets/{set}/sign/compact"),
    ("get", "/v1/key-sets/{set}/signing-key"),
    ("post", "/v1/transit/sign/{set}"),
    ("post", "/v1/transit/sign/{set}/{hash}"),
    ("post", "/v1/transit/verify/{set}"),
    ("post", "/v1/transit/verify/{set}/{hash}"),
    ("get", "/v1/transit/keys/{set}"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/v1/key-sets/{set}/jwks"),
    ("get", "/v1/key-sets"),
    ("get", "/v1/key-sets/{set}/keys"),
    ("post", "/v1/key-sets/{set}/rotate"),
    ("post", "/v1/key-sets/{set}/keys/{kid}/revoke"),
    ("post", "/v1/key-sets/{set}/keys/import"),
    ("delete", "/v1/key-sets/{set}/keys/{kid}"),
    ("post", "/v1/key-sets/{set}/keys/{kid}/cancel-destruction"),
    ("get", "/v1/approvals"),
    ("post", "/v1/approvals/{id}/approve"),
    ("post", "/v1/approvals/{id}/reject"),
    ("post", "/v1/key-sets/{set}/keys/{kid}/csr"),
    ("put", "/v1/key-sets/{set}/keys/{kid}/certificate"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/verify"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

#[tokio::test]
async fn openapi_documents_exactly_the_routes_the_service_answers() {
    let (_token, _dir, signet) = serve("openapi", &[set("id", "id_token", "ES256")]).await;
    let doc = signet.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
    }
    let expected: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["SignJwtRequest"].is_object());
    assert!(doc["components"]["schemas"]["SignCompactRequest"].is_object());
    assert!(doc["components"]["schemas"]["SigningKeysDoc"].is_object());

    // Each documented operation is served: no route-level 404 or 405.
    for (method, path) in &documented {
        let url = signet.url(&path.replace("{set}", "id").replace("{kid}", "nope"));
        let req = match method.as_str() {
            "get" => signet.http.get(url),
            "post" => signet
                .http
                .post(url)
                .header("content-type", "application/json")
                .body("{}"),
            "put" => signet
                .http
                .put(url)
                .header("content-type", "application/json")
                .body("{}"),
            "delete" => signet.http.delete(url),
            other => panic!("{other}"),
        };
        let r = req.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let vault_unsupported = body["errors"][0] == "unsupported path";
        assert!(
            status != 405 && body["code"] != "not_found" && !vault_unsupported,
            "{method} {path}: {status} {body}"
        );
    }
}
