//! Configuration: the TOML file of DESIGN.md "Configuration", parsed once into validated types.
//!
//! Owns file reading, `SIGNET_...` overrides and every start-up check of a field. Knows nothing of
//! HTTP, PKCS#11 or the store; PINs are resolved later by the HSM wiring from [`PinSource`].

mod approvals;
mod audit;
mod client;
mod key_set;
mod key_set_profiles;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::signing::{Algorithm, Profile};

pub use approvals::{Approvable, ApprovalsConfig};
pub use validate::{format_duration, parse_duration};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub hsms: Vec<HsmConfig>,
    pub key_sets: Vec<KeySetConfig>,
    pub clients: Vec<ClientConfig>,
    /// Where every audit event is streamed for a SIEM (`[audit] sink`), if anywhere.
    pub audit_sink: Option<AuditSink>,
    /// `[approvals]`: the two-person rule.
    pub approvals: ApprovalsConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Listen,
    pub jwks_max_age: Duration,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// Deadline of every request.
    pub request_timeout: Duration,
    /// How often the key view is reloaded from the store and the scheduler runs.
    pub key_refresh: Duration,
    /// How often the background health check probes the store and every HSM (`/readyz` answers
    /// from what it found; a probe of `/readyz` never calls into the HSM).
    pub health_interval: Duration,
    /// TLS on the listener (`[server.tls]`); `None` means plain HTTP (loopback or Unix socket only).
    pub tls: Option<TlsConfig>,
    /// How long connections may stay open without a request, and how many at once.
    pub connections: ConnectionLimits,
}

/// The `[server]` keys about connections, as opposed to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection must have sent complete request headers this long after it was accepted, or
    /// after the first byte of a later request; otherwise it is closed.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long after its last response is closed.
    pub idle_timeout: Duration,
    /// Open connections at most (TLS handshakes included); `None`: derived at start-up from the
    /// file-descriptor limit. Past it, new connections wait in the listen backlog.
    pub max_connections: Option<std::num::NonZeroUsize>,
    /// After SIGTERM, how long the service keeps serving (with `Connection: close`, `/readyz` 503)
    /// before it stops accepting.
    pub drain: Duration,
}

/// `[server.tls]`: PEM files, read at start-up and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle that client certificates are verified against; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    /// As written in `server.listen`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `[audit] sink`: every event of the audit trail as a JSON line, in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    /// How long the store may be unreachable while this replica goes on signing from its cached
    /// key view (`/readyz` `degraded`); past it, signing stops with `key_view_stale`.
    pub grace: Duration,
}

#[derive(Debug, Clone)]
pub struct HsmConfig {
    pub name: String,
    pub module: PathBuf,
    pub token: TokenSelector,
    pub pin: PinSource,
    pub sessions: usize,
    pub op_timeout: Duration,
    /// Operations that may wait for a session; more get 503 at once.
    pub max_queue: usize,
    /// Independent module contexts (each its own connection, login and `sessions` sessions).
    pub contexts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    Label(String),
    Serial(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct KeySetConfig {
    pub name: String,
    /// The first of `profiles`: the key set's one profile for every route but `sign/compact` and
    /// `sign/jwt`, which pick among `profiles` (`signing::select_profile`).
    pub profile: Profile,
    /// Every profile of the key set (one, or several JWT profiles).
    pub profiles: Vec<Profile>,
    pub alg: Algorithm,
    /// Indexes into [`Config::hsms`], at least one, no repeats: the backends holding the key
    /// material. Keys are generated on the first; signing is spread over those that are up.
    pub hsms: Vec<usize>,
    pub issuer: String,
    pub fapi: bool,
    pub rsa_bits: u32,
    pub policy: Policy,
    /// Append an audit event for every signature (kid, profile, client, SHA-256 of the input).
    pub audit_signatures: bool,
    /// Import may adopt a key whose private bytes were once outside the HSM, when the request
    /// also says `accept_exposed_material` (DESIGN.md "Key provenance").
    pub allow_exposed_import: bool,
    /// Put the signing key's certificate chain (`x5c`) into every JWS header.
    pub header_x5c: bool,
    /// A next key may activate only once its certificate chain is attached (keys created while
    /// this is set record it; see `keys::lifecycle`).
    pub require_certificate: bool,
}

/// Rotation and token policy of a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub rotation_period: Duration,
    pub min_publish: Duration,
    pub retain: Duration,
    pub destroy_after: Option<Duration>,
    /// How long `DELETE .../keys/{kid}` waits before the private object is destroyed (0: at
    /// once, within the request); cancellable meanwhile.
    pub destroy_delay: Duration,
    pub max_lifetime: Duration,
    pub clock_skew: Duration,
    /// How long after a rotation the superseded key may still sign a caller-built JWS
    /// (`sign/compact`), for a signer whose clock switches a little late.
    pub activation_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Signer,
    Admin,
    Auditor,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub name: String,
    pub role: Role,
    /// Key sets a signer may use; `None` means every key set (`key_sets = ["*"]`).
    pub key_sets: Option<Vec<String>>,
    pub auth: ClientAuth,
    /// Request quota (`rate`, `burst`); `None`: unlimited.
    pub quota: Option<Quota>,
}

/// A token bucket: `burst` requests at once, refilled at `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub count: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Quota {
    /// Refill rate in requests per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// SHA-256 of the bearer token.
    TokenSha256([u8; 32]),
    /// Subject common name of a verified client certificate.
    CertSubject(String),
    /// A subject alternative name of a verified client certificate: a URI (such as a SPIFFE id)
    /// when the value contains "://", else a DNS name (compared case-insensitively).
    CertSan(String),
}

/// A configuration error: which file, which key, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl Config {
    /// Reads, overrides from the process environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            key: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses TOML text; `file` names it in errors and `env` supplies the overrides.
    pub fn from_toml(
        text: &str,
        file: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err("(syntax)", e.to_string().trim().to_string()))?;
        raw::apply_env_overrides(&mut doc, env).map_err(|r| err("(environment)", r))?;
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(doc))
            .map_err(|e| {
                let path = e.path().to_string();
                err(&path, e.into_inner().to_string())
            })?;
        validate::validate(raw).map_err(|(key, reason)| err(&key, reason))
    }

    pub fn key_set(&self, name: &str) -> Option<&KeySetConfig> {
        self.key_sets.iter().find(|k| k.name == name)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_connections;
#[cfg(test)]
mod tests_health;
#[cfg(test)]
mod tests_tls;
