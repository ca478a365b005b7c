//! Signet: JWS and HTTP message signatures for an OAuth 2.0 / OpenID Connect authorization server,
//! with every private key inside a PKCS#11 HSM.
//!
//! Layers (none reaches sideways): `http` (axum) -> `service` (wiring) -> `signing` (JOSE, profiles),
//! `keys` (lifecycle, store) and `hsm` (PKCS#11). `config` parses the TOML file once.

pub mod cli;
pub mod config;
pub mod hsm;
pub mod http;
pub mod keys;
pub mod service;
pub mod signing;
