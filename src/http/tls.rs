//! TLS on the listener: the rustls server config built from `[server.tls]` (rebuilt on SIGHUP),
//! the handshake that `server` runs off its accept path, and the verified client-certificate
//! identity that reaches the `Caller` extractor as `ConnectInfo<TlsPeer>`.
//!
//! Owns PEM loading, client-certificate verification (rustls `WebPkiClientVerifier` over
//! `client_ca`) and reading a certificate's CN and SANs. Knows nothing of clients, roles or routes:
//! matching an identity to a `[[client]]` is `auth`'s job.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

/// Handshakes in progress at once; further connections wait in the kernel's backlog.
pub(super) const MAX_HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS file that cannot be used: which config key, and why.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsError {
    pub key: &'static str,
    pub reason: String,
}

fn tls_err(key: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        key,
        reason: reason.into(),
    }
}

/// The current rustls config. New connections use the config current when they are accepted;
/// connections already open keep theirs, so a reload never drops an in-flight request.
#[derive(Debug)]
pub struct Tls {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads and checks the files of `[server.tls]`.
    pub fn load(files: &TlsConfig) -> Result<Tls, TlsError> {
        let (config, summary) = server_config(files)?;
        tracing::info!(%summary, "TLS certificate loaded");
        Ok(Tls {
            files: files.clone(),
            current: RwLock::new(config),
        })
    }

    /// Reads the files again (certificate, key, client CA). On error the previous config stays.
    /// Returns a one-line description of the new certificate.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (config, summary) = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(summary)
    }

    fn current(&self) -> Arc<ServerConfig> {
        // The lock only guards an Arc swap; a poisoned lock still holds a valid config.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn read_certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(
            key,
            format!("{}: no PEM CERTIFICATE found", path.display()),
        ));
    }
    Ok(certs)
}

/// Builds the rustls config (TLS 1.2 and 1.3, rustls' safe defaults, aws-lc-rs) and describes
/// the leaf certificate for the log.
fn server_config(files: &TlsConfig) -> Result<(Arc<ServerConfig>, String), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = read_certs(&files.cert, "server.tls.cert")?;
    let summary = describe(&certs[0]).map_err(|r| tls_err("server.tls.cert", r))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_err("server.tls.key", format!("{}: {e}", files.key.display())))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("server.tls", e.to_string()))?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in read_certs(path, "server.tls.client_ca")? {
                roots.add(ca).map_err(|e| {
                    tls_err("server.tls.client_ca", format!("{}: {e}", path.display()))
                })?;
            }
            // Callers without a certificate may still use a bearer token.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| tls_err("server.tls.client_ca", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        tls_err(
            "server.tls.key",
            format!("does not fit server.tls.cert: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), summary))
}

/// "subject ..., serial ..., valid until ..." of a certificate; an error if it does not parse.
fn describe(der: &CertificateDer<'_>) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let not_after = cert.validity().not_after;
    if !cert.validity().is_valid() {
        tracing::warn!(%not_after, "the TLS certificate is outside its validity period");
    }
    Ok(format!(
        "subject {}, serial {}, valid until {not_after}",
        cert.subject(),
        cert.raw_serial_as_string()
    ))
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// Subject common names.
    pub common_names: Vec<String>,
    /// SAN URIs (e.g. SPIFFE ids).
    pub uris: Vec<String>,
    /// SAN DNS names, lower-cased.
    pub dns_names: Vec<String>,
}

impl CertIdentity {
    /// Reads the subject CN and the SANs. A certificate rustls verified but x509-parser cannot
    /// read yields an empty identity, which matches no client.
    pub fn from_der(der: &[u8]) -> CertIdentity {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            tracing::warn!("a verified client certificate could not be parsed");
            return CertIdentity::default();
        };
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        let mut id = CertIdentity {
            common_names,
            ..CertIdentity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::URI(u) => id.uris.push(u.to_string()),
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        id.dns_names.push(d.to_ascii_lowercase())
                    }
                    _ => {}
                }
            }
        }
        id
    }
}

/// The connection a request came on: its peer address and, when the client presented one that
/// verified against `client_ca`, its certificate identity.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub remote: SocketAddr,
    pub cert: Option<Arc<CertIdentity>>,
}

/// Runs the server side of a TLS handshake on an accepted TCP connection, within
/// [`HANDSHAKE_TIMEOUT`], with the config current at that moment. `None` (logged) when the
/// handshake fails or times out.
pub(super) async fn handshake(
    tls: &Tls,
    stream: TcpStream,
    remote: SocketAddr,
) -> Option<(TlsStream<TcpStream>, TlsPeer)> {
    let acceptor = TlsAcceptor::from(tls.current());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| Arc::new(CertIdentity::from_der(leaf.as_ref())));
            Some((stream, TlsPeer { remote, cert }))
        }
        Ok(Err(e)) => {
            tracing::info!(peer = %remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(peer = %remote, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: &str, sans: Vec<SanType>) -> (String, String, Vec<u8>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        (c.pem(), key.serialize_pem(), c.der().to_vec())
    }

    #[test]
    fn identity_has_the_common_name_and_the_sans() {
        let (_, _, der) = cert(
            "as.example.org",
            vec![
                SanType::URI("spiffe://example.org/as".try_into().unwrap()),
                SanType::DnsName("AS.Example.Org".try_into().unwrap()),
                SanType::IpAddress("10.0.0.1".parse().unwrap()),
            ],
        );
        let id = CertIdentity::from_der(&der);
        assert_eq!(id.common_names, ["as.example.org"]);
        assert_eq!(id.uris, ["spiffe://example.org/as"]);
        assert_eq!(id.dns_names, ["as.example.org"]);
        assert_eq!(CertIdentity::from_der(b"junk"), CertIdentity::default());
    }

    #[test]
    fn load_names_the_bad_file_and_reload_keeps_the_old_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n);
        let (cert_pem, key_pem, _) = cert("signet.test", vec![]);
        std::fs::write(path("c.pem"), &cert_pem).unwrap();
        std::fs::write(path("k.pem"), &key_pem).unwrap();
        let files = TlsConfig {
            cert: path("c.pem"),
            key: path("k.pem"),
            client_ca: Some(path("c.pem")),
        };
        let tls = Tls::load(&files).unwrap();
        let before = tls.current();

        let broken = |f: TlsConfig| Tls::load(&f).unwrap_err().key;
        assert_eq!(
            broken(TlsConfig {
                cert: path("missing.pem"),
                ..files.clone()
            }),
            "server.tls.cert"
        );
        assert_eq!(
            broken(TlsConfig {
                key: path("c.pem"),
                ..files.clone()
            }),
            "server.tls.key"
        );
        assert_eq!(
            broken(TlsConfig {
                client_ca: Some(path("k.pem")),
                ..files.clone()
            }),
            "server.tls.client_ca"
        );
        let (_, other_key, _) = cert("other", vec![]);
        std::fs::write(path("k.pem"), other_key).unwrap();
        assert_eq!(tls.reload().unwrap_err().key, "server.tls.key");
        assert!(Arc::ptr_eq(&before, &tls.current()));
        std::fs::write(path("k.pem"), &key_pem).unwrap();
        assert!(tls.reload().unwrap().contains("signet.test"));
        assert!(!Arc::ptr_eq(&before, &tls.current()));
    }
}
