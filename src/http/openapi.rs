//! The OpenAPI document, generated from the route annotations (utoipa): the same registration
//! builds the router and the document, so they cannot drift apart.

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An RFC 9457 problem as Signet sends it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProblemDoc {
    /// `https://signet.dev/problems/<code>`
    pub r#type: String,
    pub(crate) title: String,
    pub(crate) status: u16,
    pub(crate) detail: String,
    /// Stable, greppable error code, e.g. `claim_missing`, `hsm_unavailable`.
    pub(crate) code: String,
}

/// What a sign route returns (`jwt` for sign/jwt, `jws` for sign/jws).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignedDoc {
    pub(crate) jwt: String,
    /// RFC 7638 thumbprint of the signing key.
    pub(crate) kid: String,
    pub(crate) alg: String,
}

/// A JWK Set of public keys (`kid`, `kty`, `alg`, `use: "sig"` and public members only).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JwksDoc {
    #[schema(value_type = Vec<Object>)]
    pub(crate) keys: Vec<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The Vault Transit routes also take the bearer token as `X-Vault-Token`.
        components.add_security_scheme(
            "vault_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Vault-Token"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Signet", description = "JWS and HTTP message signatures with keys that never leave a PKCS#11 HSM"),
    components(schemas(ProblemDoc, SignedDoc, JwksDoc)),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;
