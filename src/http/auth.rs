//! Caller authentication (bearer tokens, matched by their SHA-256 against `[[client]]`) and the
//! role and key-set checks of each route.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::problem::Problem;
use crate::config::{ClientAuth, ClientConfig, Role};

/// Bearer-token clients by the SHA-256 of their token.
#[derive(Debug, Default)]
pub struct Clients {
    by_token: HashMap<[u8; 32], Arc<ClientConfig>>,
}

impl Clients {
    pub fn new(clients: &[ClientConfig]) -> Self {
        let by_token = clients
            .iter()
            .filter_map(|c| match c.auth {
                ClientAuth::TokenSha256(h) => Some((h, Arc::new(c.clone()))),
                _ => None,
            })
            .collect();
        Self { by_token }
    }

    fn by_bearer(&self, token: &str) -> Option<Arc<ClientConfig>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_token.get(&digest).cloned()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<ClientConfig>);

impl Caller {
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("client `{}` may not call this route", self.0.name),
            ))
        }
    }

    /// 403 unless the caller is a signer allowed to use key set `set`.
    pub fn may_sign(&self, set: &str) -> Result<(), Problem> {
        self.require(&[Role::Signer])?;
        let allowed = match &self.0.key_sets {
            None => true,
            Some(sets) => sets.iter().any(|s| s == set),
        };
        if allowed {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("client `{}` may not sign with key set `{set}`", self.0.name),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a bearer token is required",
                )
            })?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "use Authorization: Bearer <token>",
                )
            })?;
        let client = state.clients.by_bearer(token).ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not known",
            )
        })?;
        Ok(Caller(client))
    }
}
