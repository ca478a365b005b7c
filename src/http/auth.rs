//! Caller authentication and the role and key-set checks of each route.
//!
//! A caller is a `[[client]]`, recognised by a verified TLS client certificate (subject CN or a
//! SAN URI/DNS name; the identity comes from `tls` as `ConnectInfo<TlsPeer>`) or by a bearer
//! token (matched by its SHA-256). Then its quota is charged (`quota`). Admin routes check the
//! role; whether a client may sign with a key set is the service's decision.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::problem::Problem;
use super::quota::Limiter;
use super::tls::{CertIdentity, TlsPeer};
use crate::config::{ClientAuth, ClientConfig, Role};

/// The configured clients by what identifies them, and their quota buckets.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    by_token: HashMap<[u8; 32], Arc<ClientConfig>>,
    by_subject: HashMap<String, Arc<ClientConfig>>,
    /// SAN URIs as written, SAN DNS names lower-cased.
    by_san: HashMap<String, Arc<ClientConfig>>,
    limiter: Limiter,
}

impl Clients {
    pub(crate) fn new(clients: &[ClientConfig]) -> Self {
        let mut c = Clients {
            limiter: Limiter::new(clients, Instant::now()),
            ..Clients::default()
        };
        for client in clients {
            let shared = Arc::new(client.clone());
            match &client.auth {
                ClientAuth::TokenSha256(h) => {
                    c.by_token.insert(*h, shared);
                }
                ClientAuth::CertSubject(cn) => {
                    c.by_subject.insert(cn.clone(), shared);
                }
                ClientAuth::CertSan(san) => {
                    c.by_san.insert(san.clone(), shared);
                }
            }
        }
        c
    }

    fn by_bearer(&self, token: &str) -> Option<Arc<ClientConfig>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_token.get(&digest).cloned()
    }

    /// The one client a verified certificate names: 401 if none, or if it names several (a CN
    /// of one client and a SAN of another), since picking one would be a guess.
    fn by_cert(&self, id: &CertIdentity) -> Result<Arc<ClientConfig>, Problem> {
        let mut found: Vec<&Arc<ClientConfig>> = id
            .common_names
            .iter()
            .filter_map(|cn| self.by_subject.get(cn))
            .chain(id.uris.iter().filter_map(|u| self.by_san.get(u)))
            .chain(id.dns_names.iter().filter_map(|d| self.by_san.get(d)))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        match found.as_slice() {
            [one] => Ok(Arc::clone(one)),
            [] => Err(Problem::new(
                "unknown_client_certificate",
                "the client certificate verified but names no configured client",
            )),
            several => Err(Problem::new(
                "ambiguous_client_certificate",
                format!(
                    "the client certificate names {} clients; give each client its own \
                     certificate identity",
                    several.len()
                ),
            )),
        }
    }

    /// Charges one request to `client`'s quota: 429 `rate_limited` with `Retry-After` when over.
    fn charge(&self, client: &ClientConfig) -> Result<(), Problem> {
        self.limiter
            .check(&client.name, Instant::now())
            .map_err(|seconds| {
                Problem::new(
                    "rate_limited",
                    format!("client `{}` is over its request quota", client.name),
                )
                .with_retry_after(seconds)
            })
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub Arc<ClientConfig>);

impl Caller {
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// 403 unless the caller has one of `roles`.
    pub(crate) fn require(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(Problem::new(
                "forbidden",
                format!("client `{}` may not call this route", self.0.name),
            ))
        }
    }

    /// The client's configuration, for the service to decide what it may do.
    pub(crate) fn client(&self) -> &ClientConfig {
        &self.0
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        authenticate(parts, state, false)
    }
}

impl Caller {
    /// As the extractor, with `X-Vault-Token: <token>` taken as a bearer token when no
    /// `Authorization` header is sent (the Vault Transit routes).
    pub(crate) fn vault(parts: &Parts, state: &AppState) -> Result<Self, Problem> {
        authenticate(parts, state, true)
    }
}

fn authenticate(parts: &Parts, state: &AppState, vault: bool) -> Result<Caller, Problem> {
    let clients = &state.clients;
    let by_cert = parts
        .extensions
        .get::<ConnectInfo<TlsPeer>>()
        .and_then(|ConnectInfo(peer)| peer.cert.as_deref())
        .map(|id| clients.by_cert(id))
        .transpose()?;
    let by_token = match parts.headers.get(axum::http::header::AUTHORIZATION) {
        Some(header) => Some(bearer(header, clients)?),
        None => None,
    };
    // Every credential presented must be valid and name the same client.
    let by_vault = match parts.headers.get("x-vault-token").filter(|_| vault) {
        Some(token) => Some(by_vault_token(token, clients)?),
        None => None,
    };
    let mut found = [by_cert, by_token, by_vault].into_iter().flatten();
    let Some(client) = found.next() else {
        return Err(Problem::new(
            "unauthorized",
            "a bearer token or a client certificate is required",
        ));
    };
    if found.any(|other| other.name != client.name) {
        return Err(Problem::new(
            "conflicting_credentials",
            "the credentials presented (client certificate, bearer token, X-Vault-Token) name \
             different clients",
        ));
    }
    clients.charge(&client)?;
    Ok(Caller(client))
}

fn by_vault_token(
    header: &axum::http::HeaderValue,
    clients: &Clients,
) -> Result<Arc<ClientConfig>, Problem> {
    header
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .and_then(|t| clients.by_bearer(t))
        .ok_or_else(|| Problem::new("invalid_token", "the X-Vault-Token is not known"))
}

fn bearer(
    header: &axum::http::HeaderValue,
    clients: &Clients,
) -> Result<Arc<ClientConfig>, Problem> {
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::new("unauthorized", "use Authorization: Bearer <token>"))?;
    clients
        .by_bearer(token)
        .ok_or_else(|| Problem::new("invalid_token", "the bearer token is not known"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, auth: ClientAuth) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            role: Role::Signer,
            key_sets: None,
            auth,
            quota: None,
        }
    }

    #[test]
    fn a_certificate_names_exactly_one_client() {
        let clients = Clients::new(&[
            client("by-cn", ClientAuth::CertSubject("as.example.org".into())),
            client(
                "by-uri",
                ClientAuth::CertSan("spiffe://example.org/as".into()),
            ),
            client("by-dns", ClientAuth::CertSan("worker.example.org".into())),
        ]);
        let id = |cn: &[&str], uris: &[&str], dns: &[&str]| CertIdentity {
            common_names: cn.iter().map(|s| s.to_string()).collect(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
        };
        let name = |i: CertIdentity| clients.by_cert(&i).map(|c| c.name.clone());
        let code = |i: CertIdentity| clients.by_cert(&i).unwrap_err().code;
        assert_eq!(name(id(&["as.example.org"], &[], &[])).unwrap(), "by-cn");
        assert_eq!(
            name(id(&["x"], &["spiffe://example.org/as"], &[])).unwrap(),
            "by-uri"
        );
        assert_eq!(
            name(id(&[], &[], &["a.example.org", "worker.example.org"])).unwrap(),
            "by-dns"
        );
        // A CN is not a SAN and a URI must match exactly.
        assert_eq!(
            code(id(
                &["worker.example.org"],
                &["spiffe://example.org/as/x"],
                &[]
            )),
            "unknown_client_certificate"
        );
        assert_eq!(code(CertIdentity::default()), "unknown_client_certificate");
        assert_eq!(
            code(id(&["as.example.org"], &["spiffe://example.org/as"], &[])),
            "ambiguous_client_certificate"
        );
    }
}
