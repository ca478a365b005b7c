//! Signet: JWS and HTTP message signatures for an OAuth 2.0 / OpenID Connect authorization server,
//! with every private key inside a PKCS#11 HSM.
//!
//! Layers (none reaches sideways): `http` (axum) -> `service` (wiring, the one signing pipeline,
//! read models) -> `signing` (JOSE, profiles, RFC 9421), `keys` (lifecycle, store) and `hsm`
//! (PKCS#11). `config` parses the TOML file once; `support` holds the lock and error-chain
//! policies every layer shares.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cli;
pub mod config;
pub mod hsm;
pub mod http;
pub mod keys;
pub mod service;
pub mod signing;
mod support;
