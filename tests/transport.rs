//! Transport security and caller authorisation against the real binary: TLS with client
//! certificates from a CA made here (rcgen), bearer tokens over TLS, roles and key-set scope,
//! quotas, SIGHUP certificate reload, the Unix-socket listener, and start-up refusals.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A CA made for one test, and the certificates it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate with its key, as PEM files would hold them.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// The server's certificate for 127.0.0.1 and localhost, with a chosen serial.
    fn server(&self, serial: u64) -> Leaf {
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "signet.test");
        p.serial_number = Some(serial.into());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(p)
    }

    /// A client certificate with subject CN `cn` and `sans`; `expired` puts its validity in 2020.
    fn client(&self, cn: &str, sans: Vec<SanType>, expired: bool) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        self.sign(p)
    }

    fn sign(&self, p: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &*self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

impl Leaf {
    fn write(&self, cert: &Path, key: &Path) {
        std::fs::write(cert, &self.cert_pem).unwrap();
        std::fs::write(key, &self.key_pem).unwrap();
    }
}

fn uri(u: &str) -> SanType {
    SanType::URI(u.try_into().unwrap())
}

fn dns(d: &str) -> SanType {
    SanType::DnsName(d.try_into().unwrap())
}

/// A rustls client config trusting `ca`, presenting `who` if given.
fn tls_client_config(ca: &Ca, who: Option<&Leaf>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match who {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(leaf.der.clone())],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// What one request got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }
}

/// One HTTP/1.1 request over `io` (a TLS stream or a Unix socket).
async fn exchange<T>(
    io: T,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Reply, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "signet.test");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(b).unwrap())
        }
        None => Bytes::new(),
    };
    let r = send
        .send_request(req.body(Full::new(bytes)).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = r
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// An HTTPS client of the test server on 127.0.0.1: trusts `ca`, presents a client certificate if
/// given, and opens a new connection for every request.
struct Https {
    config: Arc<rustls::ClientConfig>,
    port: u16,
}

impl Https {
    fn new(ca: &Ca, who: Option<&Leaf>, port: u16) -> Https {
        Https {
            config: Arc::new(tls_client_config(ca, who)),
            port,
        }
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>, String> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        exchange(self.connect().await?, method, path, token, body).await
    }

    /// POSTs fresh ID token claims to `path`; `Err` when the connection or handshake fails.
    async fn sign(&self, path: &str, token: Option<&str>) -> Result<Reply, String> {
        self.send("POST", path, token, Some(&claims())).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, None).await.unwrap()
    }

    /// The server certificate a new connection sees.
    async fn server_cert(&self) -> Vec<u8> {
        let tls = self.connect().await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }
}

fn claims() -> Value {
    let now = now();
    json!({"claims": {"iss": ISSUER, "sub": "alice", "aud": "rp", "iat": now, "exp": now + 60}})
}

/// Waits until the service log contains `needle` (ignoring case).
async fn log_shows(signet: &Signet, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if signet.log().to_lowercase().contains(&needle.to_lowercase()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

const SIGN_ID: &str = "/v1/key-sets/id/sign/jwt";
const SIGN_OTHER: &str = "/v1/key-sets/other/sign/jwt";

/// The common test config (token clients `signer`, `limited`, `admin`) plus `[server.tls]` and
/// certificate clients.
fn tls_config(token: &Token, dir: &Path, port: u16, client_ca: bool) -> String {
    let sets = [
        set("id", "id_token", "ES256"),
        set("other", "id_token", "ES256"),
    ];
    let mut c = config(token, dir, port, &sets);
    c.push_str(&format!(
        "\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display()
    ));
    if client_ca {
        c.push_str(&format!(
            "client_ca = \"{}\"\n",
            dir.join("clients-ca.pem").display()
        ));
        c.push_str(
            r#"
[[client]]
name = "as"
role = "signer"
key_sets = ["id"]
cert_san = "spiffe://example.test/as"

[[client]]
name = "worker"
role = "signer"
key_sets = ["id"]
cert_san = "Worker.Example.Test"

[[client]]
name = "cn-signer"
role = "signer"
key_sets = ["other"]
cert_subject = "cn-signer.example.test"

[[client]]
name = "auditor"
role = "auditor"
cert_subject = "auditor.example.test"

[[client]]
name = "throttled"
role = "signer"
key_sets = ["id"]
cert_subject = "throttled.example.test"
rate = "1/m"
burst = 2
"#,
        );
    }
    c
}

/// Starts the service with `[server.tls]` on a free port; returns it with that port.
async fn start_tls(token: &Token, dir: &Path, ca: &Ca, client_ca: bool) -> (Signet, u16) {
    let port = free_port();
    ca.server(1)
        .write(&dir.join("server.crt"), &dir.join("server.key"));
    ca.write(&dir.join("clients-ca.pem"));
    let mut signet = Signet::launch(token, dir, &tls_config(token, dir, port, client_ca));
    let anonymous = Https::new(ca, None, port);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = anonymous.send("GET", "/readyz", None, None).await
            && r.status == 200
        {
            return (signet, port);
        }
        signet.check_running();
        assert!(Instant::now() < deadline, "not ready:\n{}", signet.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn as_leaf(ca: &Ca) -> Leaf {
    ca.client("as", vec![uri("spiffe://example.test/as")], false)
}

#[tokio::test]
async fn mtls_clients_are_held_to_their_role_and_key_sets() {
    let token = Token::new("tls-roles");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Signet test CA");
    let (signet, port) = start_tls(&token, dir.path(), &ca, true).await;
    let as_ = Https::new(&ca, Some(&as_leaf(&ca)), port);

    // The right client signs, and the JWT verifies with the JWKS fetched over TLS.
    let r = as_.sign(SIGN_ID, None).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let jwks = as_.get("/v1/key-sets/id/jwks").await.body;
    let (_, payload) = verify_jwt(r.body["jwt"].as_str().unwrap(), &jwks);
    assert_eq!(payload["sub"], "alice");

    // Outside its key sets, or on an admin route: 403.
    let r = as_.sign(SIGN_OTHER, None).await.unwrap();
    assert_eq!((r.status, r.code()), (403, Some("forbidden")));
    let r = as_.get("/v1/key-sets").await;
    assert_eq!((r.status, r.code()), (403, Some("forbidden")));

    // A DNS SAN matches case-insensitively; a subject CN matches its own client only.
    let worker = Https::new(
        &ca,
        Some(&ca.client("w", vec![dns("worker.example.test")], false)),
        port,
    );
    let r = worker.sign(SIGN_ID, None).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let cn = Https::new(
        &ca,
        Some(&ca.client("cn-signer.example.test", vec![], false)),
        port,
    );
    let r = cn.sign(SIGN_OTHER, None).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cn.sign(SIGN_ID, None).await.unwrap().status, 403);

    // The auditor reads the key sets, keys and audit trail, but may not sign or rotate.
    let auditor = Https::new(
        &ca,
        Some(&ca.client("auditor.example.test", vec![], false)),
        port,
    );
    let r = auditor.get("/v1/key-sets").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["key_sets"].as_array().unwrap().len(), 2);
    let r = auditor.sign(SIGN_ID, None).await.unwrap();
    assert_eq!((r.status, r.code()), (403, Some("forbidden")));
    for path in ["/v1/key-sets/id/keys", "/v1/audit", "/v1/audit/verify"] {
        assert_eq!(auditor.get(path).await.status, 200, "{path}");
    }
    let r = auditor
        .send(
            "POST",
            "/v1/key-sets/id/rotate",
            None,
            Some(&json!({"force": true})),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (403, Some("forbidden")));
    let r = auditor
        .send(
            "POST",
            "/v1/key-sets/id/keys/x/revoke",
            None,
            Some(&json!({"reason": "r"})),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (403, Some("forbidden")));

    // No certificate: 401 without a token; a bearer token still works over TLS.
    let anonymous = Https::new(&ca, None, port);
    let r = anonymous.sign(SIGN_ID, None).await.unwrap();
    assert_eq!((r.status, r.code()), (401, Some("unauthorized")));
    let r = anonymous.sign(SIGN_ID, Some(SIGNER_TOKEN)).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // A certificate of the right CA that names no client (a valid token does not help); one
    // naming a client while the token names another.
    let stranger = Https::new(
        &ca,
        Some(&ca.client("stranger", vec![uri("spiffe://example.test/x")], false)),
        port,
    );
    let r = stranger.sign(SIGN_ID, Some(SIGNER_TOKEN)).await.unwrap();
    assert_eq!(
        (r.status, r.code()),
        (401, Some("unknown_client_certificate"))
    );
    let r = as_.sign(SIGN_ID, Some(SIGNER_TOKEN)).await.unwrap();
    assert_eq!((r.status, r.code()), (401, Some("conflicting_credentials")));

    // A certificate from another CA, and an expired one: the handshake fails.
    let foreign = Ca::new("Somebody else's CA");
    let impostor = Https::new(&ca, Some(&as_leaf(&foreign)), port);
    let e = impostor.sign(SIGN_ID, None).await.unwrap_err();
    assert!(
        log_shows(&signet, "UnknownIssuer").await,
        "{e}\n{}",
        signet.log()
    );
    let expired = Https::new(
        &ca,
        Some(&ca.client("as", vec![uri("spiffe://example.test/as")], true)),
        port,
    );
    let e = expired.sign(SIGN_ID, None).await.unwrap_err();
    assert!(log_shows(&signet, "expired").await, "{e}\n{}", signet.log());

    // The right client still works after all that.
    assert_eq!(as_.sign(SIGN_ID, None).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_client_over_its_quota_gets_429_and_others_are_unaffected() {
    let token = Token::new("tls-quota");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Signet test CA");
    let (_signet, port) = start_tls(&token, dir.path(), &ca, true).await;
    let throttled = Https::new(
        &ca,
        Some(&ca.client("throttled.example.test", vec![], false)),
        port,
    );
    let as_ = Https::new(&ca, Some(&as_leaf(&ca)), port);
    // rate = "1/m", burst = 2.
    for _ in 0..2 {
        let r = throttled.sign(SIGN_ID, None).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = throttled.sign(SIGN_ID, None).await.unwrap();
    assert_eq!((r.status, r.code()), (429, Some("rate_limited")));
    let retry: u64 = r.retry_after.expect("Retry-After").parse().unwrap();
    assert!((50..=60).contains(&retry), "Retry-After {retry}");
    for _ in 0..5 {
        let r = as_.sign(SIGN_ID, None).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(throttled.sign(SIGN_ID, None).await.unwrap().status, 429);
}

/// Sends a request's headers and half its body on a connection of its own, so that it is in
/// flight while the test reloads the certificate; `finish` sends the rest and reads the answer.
struct InFlight {
    stream: TlsStream<TcpStream>,
    rest: Vec<u8>,
}

impl InFlight {
    async fn start(client: &Https, path: &str, body: &Value) -> InFlight {
        let mut stream = client.connect().await.unwrap();
        let body = serde_json::to_vec(body).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: signet.test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..half]).await.unwrap();
        stream.flush().await.unwrap();
        InFlight {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    fn server_cert(&self) -> Vec<u8> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut out = Vec::new();
        // The server closes without close_notify after `Connection: close`; keep what was read.
        let _ = self.stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn sighup(signet: &Signet) {
    let ok = Command::new("kill")
        .args(["-HUP", &signet.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_in_flight_requests() {
    let token = Token::new("tls-reload");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Signet test CA");
    let (signet, port) = start_tls(&token, d, &ca, true).await;
    let anonymous = Https::new(&ca, None, port);
    let first = std::fs::read(d.join("server.crt")).unwrap();
    let first_der = CertificateDer::from_pem_slice(&first).unwrap().to_vec();
    assert_eq!(anonymous.server_cert().await, first_der);

    let as_ = Https::new(&ca, Some(&as_leaf(&ca)), port);
    let in_flight = InFlight::start(&as_, SIGN_ID, &claims()).await;
    assert_eq!(in_flight.server_cert(), first_der);

    // New files, SIGHUP: new connections see the certificate with serial 2.
    let second = ca.server(2);
    second.write(&d.join("server.crt"), &d.join("server.key"));
    sighup(&signet);
    let deadline = Instant::now() + Duration::from_secs(10);
    while anonymous.server_cert().await != second.der {
        assert!(Instant::now() < deadline, "not reloaded:\n{}", signet.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, cert) = x509_parser::parse_x509_certificate(&second.der).unwrap();
    assert_eq!(cert.raw_serial(), [2]);

    // The request that was in flight across the reload completes on its old connection.
    let answer = in_flight.finish().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"jwt\""), "{answer}");

    // A broken file on reload: logged, and the previous certificate stays.
    std::fs::write(d.join("server.crt"), "not a certificate").unwrap();
    sighup(&signet);
    assert!(
        log_shows(&signet, "TLS files not reloaded").await,
        "{}",
        signet.log()
    );
    assert_eq!(anonymous.server_cert().await, second.der);

    // The client CA is reloaded too: after switching to a new CA, its clients get in and the old
    // CA's clients fail the handshake.
    let new_ca = Ca::new("Next test CA");
    second.write(&d.join("server.crt"), &d.join("server.key"));
    new_ca.write(&d.join("clients-ca.pem"));
    sighup(&signet);
    let new_as = Https::new(&ca, Some(&as_leaf(&new_ca)), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(
        new_as.sign(SIGN_ID, None).await,
        Ok(Reply { status: 200, .. })
    ) {
        assert!(
            Instant::now() < deadline,
            "CA not reloaded:\n{}",
            signet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(as_.sign(SIGN_ID, None).await.is_err());
}

#[tokio::test]
async fn the_unix_socket_listener_serves_the_same_api() {
    let token = Token::new("unix");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("signet.sock");
    let text = config(
        &token,
        dir.path(),
        free_port(),
        &[set("id", "id_token", "ES256")],
    )
    .replacen(
        "listen = \"127.0.0.1:",
        &format!("listen = \"unix:{}\"\n# was: \"127.0.0.1:", sock.display()),
        1,
    );
    let mut signet = Signet::launch(&token, dir.path(), &text);
    let request = |method: &'static str, path: &'static str, token, body: Option<Value>| {
        let sock = sock.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(&sock)
                .await
                .map_err(|e| e.to_string())?;
            exchange(stream, method, path, token, body.as_ref()).await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = request("GET", "/readyz", None, None).await
            && r.status == 200
        {
            break;
        }
        signet.check_running();
        assert!(Instant::now() < deadline, "not ready on {}", sock.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    let r = request("POST", SIGN_ID, Some(SIGNER_TOKEN), Some(claims()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let jwks = request("GET", "/.well-known/jwks.json", None, None)
        .await
        .unwrap()
        .body;
    verify_jwt(r.body["jwt"].as_str().unwrap(), &jwks);
    let r = request("POST", SIGN_ID, None, Some(claims()))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (401, Some("unauthorized")));
    let r = request("GET", "/v1/key-sets", Some(SIGNER_TOKEN), None)
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (403, Some("forbidden")));
}

fn check_config(dir: &Path, text: &str) -> (i32, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_checks_the_listener_and_the_tls_files() {
    let token = Token::new("tls-check");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Signet test CA");
    ca.server(1)
        .write(&d.join("server.crt"), &d.join("server.key"));
    ca.write(&d.join("clients-ca.pem"));
    let tls = tls_config(&token, d, 8443, true);
    let plain = config(&token, d, 8443, &[set("id", "id_token", "ES256")]);

    // Any address with TLS; only loopback without.
    let open = tls.replace("listen = \"127.0.0.1:8443\"", "listen = \"0.0.0.0:8443\"");
    let (code, err) = check_config(d, &open);
    assert_eq!(code, 0, "{err}");
    let (code, err) = check_config(
        d,
        &plain.replace("listen = \"127.0.0.1:8443\"", "listen = \"0.0.0.0:8443\""),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("server.listen") && err.contains("loopback"),
        "{err}"
    );

    // Files that are missing, not PEM, or do not belong together.
    std::fs::write(d.join("garbage.pem"), "hello").unwrap();
    let other = ca.server(9);
    other.write(&d.join("other.crt"), &d.join("other.key"));
    let cases = [
        ("server.crt", "missing.crt", "server.tls.cert"),
        ("server.crt", "garbage.pem", "server.tls.cert"),
        ("server.key", "missing.key", "server.tls.key"),
        ("server.key", "other.key", "server.tls.key"),
        ("clients-ca.pem", "garbage.pem", "server.tls.client_ca"),
    ];
    for (file, instead, key) in cases {
        let text = tls.replace(file, instead);
        let (code, err) = check_config(d, &text);
        assert_eq!(code, 2, "{instead}: {err}");
        assert!(err.contains(&format!("check.toml: {key}:")), "{key}: {err}");
    }

    // Certificate clients need a client CA.
    let no_ca = tls.replace(
        &format!("client_ca = \"{}\"\n", d.join("clients-ca.pem").display()),
        "",
    );
    let (code, err) = check_config(d, &no_ca);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cert_san") && err.contains("client_ca"),
        "{err}"
    );
}
