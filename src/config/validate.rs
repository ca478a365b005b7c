//! Turns a [`RawConfig`] into a [`Config`]: defaults, cross-references and the policy rules of
//! DESIGN.md. Every error is `(key, reason)`; the caller adds the file name.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::client::client;
use super::key_set::key_set;
use super::raw::{RawConfig, RawHsm, RawServer, RawTls};
use super::*;

pub(super) type Result<T> = std::result::Result<T, (String, String)>;

const DEFAULT_JWKS_MAX_AGE: &str = "1h";
const DEFAULT_MAX_BODY: usize = 64 * 1024;
const DEFAULT_REQUEST_TIMEOUT: &str = "10s";
const DEFAULT_KEY_REFRESH: &str = "5s";
const DEFAULT_HEALTH_INTERVAL: &str = "2s";
const DEFAULT_STORE_GRACE: &str = "60s";
const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
const DEFAULT_IDLE_TIMEOUT: &str = "60s";
const DEFAULT_DRAIN: &str = "5s";
const DEFAULT_SESSIONS: usize = 4;
const DEFAULT_OP_TIMEOUT: &str = "2s";
const DEFAULT_MAX_QUEUE_PER_SESSION: usize = 64;
pub(super) const DEFAULT_MAX_LIFETIME: &str = "1h";
pub(super) const DEFAULT_CLOCK_SKEW: &str = "60s";
pub(super) const DEFAULT_RSA_BITS: u32 = 2048;
pub(super) const DEFAULT_ACTIVATION_GRACE: &str = "30s";
/// DESIGN.md "HTTP API v1": destruction waits this long unless the key set says otherwise.
pub(super) const DEFAULT_DESTROY_DELAY: &str = "7d";

/// Parses a humantime duration ("90d", "2h", "10m", "30s", "1h 30m").
pub fn parse_duration(value: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("`{value}` is not a duration like \"90d\", \"2h\", \"30s\" ({e})"))
}

pub(super) fn duration(key: &str, value: Option<&str>, default: &str) -> Result<Duration> {
    parse_duration(value.unwrap_or(default)).map_err(|r| (key.to_string(), r))
}

pub fn validate(raw: RawConfig) -> Result<Config> {
    let server = server(&raw.server)?;
    let hsms = raw
        .hsm
        .iter()
        .enumerate()
        .map(|(i, h)| hsm(i, h))
        .collect::<Result<Vec<_>>>()?;
    unique("hsm", raw.hsm.iter().map(|h| h.name.as_str()))?;
    let key_sets = raw
        .key_set
        .iter()
        .enumerate()
        .map(|(i, k)| key_set(i, k, &raw.server, &server, &hsms))
        .collect::<Result<Vec<_>>>()?;
    unique("key_set", raw.key_set.iter().map(|k| k.name.as_str()))?;
    let clients = raw
        .client
        .iter()
        .enumerate()
        .map(|(i, c)| client(i, c, &key_sets, server.tls.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    unique("client", raw.client.iter().map(|c| c.name.as_str()))?;
    let mut identities = HashSet::new();
    for (i, c) in clients.iter().enumerate() {
        let (field, what) = match &c.auth {
            ClientAuth::TokenSha256(_) => ("token_sha256", "token"),
            ClientAuth::CertSubject(_) => ("cert_subject", "certificate subject"),
            ClientAuth::CertSan(_) => ("cert_san", "certificate SAN"),
        };
        if !identities.insert(c.auth.clone()) {
            return Err((
                format!("client[{i}].{field}"),
                format!("client `{}` shares its {what} with another client", c.name),
            ));
        }
    }
    if raw.store.url.trim().is_empty() {
        return Err(("store.url".into(), "must not be empty".into()));
    }
    if !(raw.store.url.starts_with("sqlite:") || raw.store.url.starts_with("postgres")) {
        return Err((
            "store.url".into(),
            format!(
                "`{}` is neither sqlite://... nor postgres://...",
                raw.store.url
            ),
        ));
    }
    Ok(Config {
        server,
        store: StoreConfig {
            grace: duration(
                "store.grace",
                raw.store.grace.as_deref(),
                DEFAULT_STORE_GRACE,
            )?,
            url: raw.store.url,
        },
        hsms,
        key_sets,
        clients,
        audit_sink: super::audit::audit_sink(raw.audit.as_ref().and_then(|a| a.sink.as_deref()))?,
        approvals: super::approvals::approvals(raw.approvals.as_ref())?,
    })
}

fn unique<'a>(array: &str, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if !seen.insert(name) {
            return Err((
                format!("{array}[{i}].name"),
                format!("`{name}` is declared twice"),
            ));
        }
    }
    Ok(())
}

fn server(raw: &RawServer) -> Result<ServerConfig> {
    let listen = if let Some(path) = raw.listen.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(("server.listen".into(), "`unix:` needs a socket path".into()));
        }
        Listen::Unix(PathBuf::from(path))
    } else {
        let addr: SocketAddr = raw.listen.parse().map_err(|_| {
            (
                "server.listen".to_string(),
                format!("`{}` is neither host:port nor unix:/path", raw.listen),
            )
        })?;
        Listen::Tcp(addr)
    };
    let tls = raw.tls.as_ref().map(tls_files).transpose()?;
    match (&listen, &tls) {
        (Listen::Tcp(addr), None) if !addr.ip().is_loopback() => {
            return Err((
                "server.listen".into(),
                format!(
                    "plain HTTP on {addr} would expose the signer; plain HTTP is allowed only on \
                     loopback (127.0.0.1, [::1]) or a Unix socket; set [server.tls] to listen \
                     elsewhere"
                ),
            ));
        }
        (Listen::Unix(_), Some(_)) => {
            return Err((
                "server.tls".into(),
                "TLS is for TCP listeners; a Unix socket is guarded by its file mode (0660), so \
                 remove [server.tls] or listen on host:port"
                    .into(),
            ));
        }
        _ => {}
    }
    let max_body = raw.max_body.unwrap_or(DEFAULT_MAX_BODY);
    if max_body < 1024 {
        return Err((
            "server.max_body".into(),
            "must be at least 1024 bytes".into(),
        ));
    }
    Ok(ServerConfig {
        listen,
        jwks_max_age: duration(
            "server.jwks_max_age",
            raw.jwks_max_age.as_deref(),
            DEFAULT_JWKS_MAX_AGE,
        )?,
        max_body,
        request_timeout: nonzero(
            "server.request_timeout",
            raw.request_timeout.as_deref(),
            DEFAULT_REQUEST_TIMEOUT,
        )?,
        key_refresh: nonzero(
            "server.key_refresh",
            raw.key_refresh.as_deref(),
            DEFAULT_KEY_REFRESH,
        )?,
        health_interval: nonzero(
            "server.health_interval",
            raw.health_interval.as_deref(),
            DEFAULT_HEALTH_INTERVAL,
        )?,
        tls,
        connections: connections(raw)?,
    })
}

/// `header_read_timeout`, `idle_timeout`, `max_connections`, `drain` of `[server]`.
fn connections(raw: &RawServer) -> Result<ConnectionLimits> {
    let max_connections = match raw.max_connections {
        None => None,
        Some(n) if n > 1_000_000 => {
            return Err(("server.max_connections".into(), "at most 1000000".into()));
        }
        Some(n) => Some(std::num::NonZeroUsize::new(n).ok_or_else(|| {
            (
                "server.max_connections".to_string(),
                "must be at least 1 (leave it out to derive it from the file limit)".to_string(),
            )
        })?),
    };
    Ok(ConnectionLimits {
        header_read_timeout: nonzero(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            DEFAULT_HEADER_READ_TIMEOUT,
        )?,
        idle_timeout: nonzero(
            "server.idle_timeout",
            raw.idle_timeout.as_deref(),
            DEFAULT_IDLE_TIMEOUT,
        )?,
        max_connections,
        drain: duration("server.drain", raw.drain.as_deref(), DEFAULT_DRAIN)?,
    })
}

/// `[server.tls]`: the paths only; the files are read and parsed by the HTTP layer at start-up
/// (`signet check-config` and `serve`) and on SIGHUP.
fn tls_files(raw: &RawTls) -> Result<TlsConfig> {
    let path = |key: &str, value: &str| {
        if value.trim().is_empty() {
            Err((format!("server.tls.{key}"), "must name a PEM file".into()))
        } else {
            Ok(PathBuf::from(value))
        }
    };
    Ok(TlsConfig {
        cert: path("cert", &raw.cert)?,
        key: path("key", &raw.key)?,
        client_ca: raw
            .client_ca
            .as_deref()
            .map(|c| path("client_ca", c))
            .transpose()?,
    })
}

pub(super) fn nonzero(key: &str, value: Option<&str>, default: &str) -> Result<Duration> {
    let d = duration(key, value, default)?;
    if d.is_zero() {
        return Err((key.to_string(), "must be greater than zero".into()));
    }
    Ok(d)
}

fn hsm(i: usize, raw: &RawHsm) -> Result<HsmConfig> {
    let key = |field: &str| format!("hsm[{i}].{field}");
    name_ok(&key("name"), &raw.name)?;
    if raw.module.trim().is_empty() {
        return Err((key("module"), "must name a PKCS#11 module (.so)".into()));
    }
    let token = match (&raw.token_label, &raw.token_serial) {
        (Some(l), None) if !l.is_empty() => TokenSelector::Label(l.clone()),
        (None, Some(s)) if !s.is_empty() => TokenSelector::Serial(s.clone()),
        (Some(_), Some(_)) => {
            return Err((
                key("token_label"),
                "set token_label or token_serial, not both".into(),
            ));
        }
        _ => {
            return Err((
                key("token_label"),
                "one of token_label or token_serial is required".into(),
            ));
        }
    };
    let pin = match (&raw.pin_env, &raw.pin_file) {
        (Some(e), None) if !e.is_empty() => PinSource::Env(e.clone()),
        (None, Some(f)) if !f.is_empty() => PinSource::File(PathBuf::from(f)),
        (Some(_), Some(_)) => {
            return Err((key("pin_env"), "set pin_env or pin_file, not both".into()));
        }
        _ => {
            return Err((
                key("pin_env"),
                "one of pin_env or pin_file is required (PINs are never written inline)".into(),
            ));
        }
    };
    let sessions = raw.sessions.unwrap_or(DEFAULT_SESSIONS);
    if !(1..=256).contains(&sessions) {
        return Err((key("sessions"), "must be between 1 and 256".into()));
    }
    let contexts = raw.contexts.unwrap_or(1);
    if !(1..=64).contains(&contexts) {
        return Err((key("contexts"), "must be between 1 and 64".into()));
    }
    Ok(HsmConfig {
        name: raw.name.clone(),
        module: PathBuf::from(&raw.module),
        token,
        pin,
        sessions,
        op_timeout: nonzero(
            &key("op_timeout"),
            raw.op_timeout.as_deref(),
            DEFAULT_OP_TIMEOUT,
        )?,
        max_queue: raw
            .max_queue
            .unwrap_or(DEFAULT_MAX_QUEUE_PER_SESSION * sessions),
        contexts,
    })
}

/// The backends a key set names: at least one, each a configured `[[hsm]]`, none twice.
pub(super) fn backends(key: &str, names: &[&str], hsms: &[HsmConfig]) -> Result<Vec<usize>> {
    if names.is_empty() {
        return Err((key.into(), "must name at least one [[hsm]]".into()));
    }
    let mut out: Vec<usize> = Vec::with_capacity(names.len());
    for name in names {
        let i = hsms
            .iter()
            .position(|h| h.name == *name)
            .ok_or_else(|| (key.to_string(), format!("no [[hsm]] named `{name}`")))?;
        if out.contains(&i) {
            return Err((key.into(), format!("names [[hsm]] `{name}` twice")));
        }
        out.push(i);
    }
    Ok(out)
}

pub(super) fn name_ok(key: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("`{name}` must be 1-64 of a-z, 0-9, '-', '_', starting with a letter or digit"),
        ))
    }
}

pub(super) fn human(d: Duration) -> String {
    format_duration(d)
}

/// Formats a duration in the config's own units, largest whole unit first ("90d", "1h5m", "30s").
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}
