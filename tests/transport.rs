//! Transport security and caller authorisation against the real binary: TLS with client
//! certificates from a CA made here (rcgen), bearer tokens over TLS, roles and key-set scope,
//! quotas, SIGHUP certificate reload, the Unix-socket listener, and start-up refusals.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A rustls client trusting `ca`, presenting `who` if given.
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

/// An HTTPS client (fresh connection pool) trusting `ca`, presenting `who` if given.
fn https(ca: &Ca, who: Option<&Leaf>) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_client_config(ca, who))
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn claims() -> Value {
    let now = now();
    json!({"claims": {"iss": ISSUER, "sub": "alice", "aud": "rp", "iat": now, "exp": now + 60}})
}

/// POSTs `body` to `path` with `client` (and a bearer token if given): status, `Retry-After`,
/// body.
async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, Option<String>, Value), reqwest::Error> {
    let mut req = client.post(format!("{base}{path}")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.json().await.unwrap_or(Value::Null);
    Ok((status, retry, body))
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
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

async fn start_tls(token: &Token, dir: &Path, ca: &Ca, client_ca: bool) -> Signet {
    let port = free_port();
    ca.server(1)
        .write(&dir.join("server.crt"), &dir.join("server.key"));
    ca.write(&dir.join("clients-ca.pem"));
    let text = tls_config(token, dir, port, client_ca);
    Signet::start_with(
        token,
        dir,
        format!("https://127.0.0.1:{port}"),
        https(ca, None),
        &text,
    )
    .await
}

#[tokio::test]
async fn mtls_clients_are_held_to_their_role_and_key_sets() {
    let token = Token::new("tls-roles");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Signet test CA");
    let signet = start_tls(&token, dir.path(), &ca, true).await;
    let base = signet.base.clone();
    let as_ = https(
        &ca,
        Some(&ca.client("as", vec![uri("spiffe://example.test/as")], false)),
    );

    // The right client signs, and the JWT verifies with the JWKS fetched over TLS.
    let (status, _, body) = post(&as_, &base, SIGN_ID, None, &claims()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, jwks) = get(&as_, &base, "/v1/key-sets/id/jwks").await;
    let (_, payload) = verify_jwt(body["jwt"].as_str().unwrap(), &jwks);
    assert_eq!(payload["sub"], "alice");

    // Outside its key sets, or on an admin route: 403.
    let (status, _, body) = post(&as_, &base, SIGN_OTHER, None, &claims())
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = get(&as_, &base, "/v1/key-sets").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));

    // A DNS SAN matches case-insensitively; a subject CN matches its own client only.
    let worker = https(
        &ca,
        Some(&ca.client("w", vec![dns("worker.example.test")], false)),
    );
    let (status, _, body) = post(&worker, &base, SIGN_ID, None, &claims())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let cn = https(
        &ca,
        Some(&ca.client("cn-signer.example.test", vec![], false)),
    );
    let (status, _, body) = post(&cn, &base, SIGN_OTHER, None, &claims()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = post(&cn, &base, SIGN_ID, None, &claims()).await.unwrap();
    assert_eq!(status, 403);

    // The auditor reads the key sets but may not sign.
    // TODO(after merge with key lifecycle): also 403 on POST /v1/key-sets/id/rotate.
    let auditor = https(&ca, Some(&ca.client("auditor.example.test", vec![], false)));
    let (status, body) = get(&auditor, &base, "/v1/key-sets").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key_sets"].as_array().unwrap().len(), 2);
    let (status, _, body) = post(&auditor, &base, SIGN_ID, None, &claims())
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));

    // No certificate: 401 without a token; a bearer token still works over TLS.
    let anonymous = https(&ca, None);
    let (status, _, body) = post(&anonymous, &base, SIGN_ID, None, &claims())
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _, body) = post(&anonymous, &base, SIGN_ID, Some(SIGNER_TOKEN), &claims())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    // A certificate of the right CA that names no client; one naming a client while the token
    // names another.
    let stranger = https(
        &ca,
        Some(&ca.client("stranger", vec![uri("spiffe://example.test/x")], false)),
    );
    let (status, _, body) = post(&stranger, &base, SIGN_ID, Some(SIGNER_TOKEN), &claims())
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unknown_client_certificate"))
    );
    let (status, _, body) = post(&as_, &base, SIGN_ID, Some(SIGNER_TOKEN), &claims())
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("conflicting_credentials"))
    );

    // A certificate from another CA, and an expired one: the handshake fails.
    let foreign = Ca::new("Somebody else's CA");
    let impostor = https(
        &ca,
        Some(&foreign.client("as", vec![uri("spiffe://example.test/as")], false)),
    );
    assert!(
        post(&impostor, &base, SIGN_ID, None, &claims())
            .await
            .is_err()
    );
    assert!(
        log_shows(&signet, "UnknownIssuer").await,
        "{}",
        signet.log()
    );
    let expired = https(
        &ca,
        Some(&ca.client("as", vec![uri("spiffe://example.test/as")], true)),
    );
    assert!(
        post(&expired, &base, SIGN_ID, None, &claims())
            .await
            .is_err()
    );
    assert!(log_shows(&signet, "expired").await, "{}", signet.log());

    // The right client still works after all that.
    let (status, _, _) = post(&as_, &base, SIGN_ID, None, &claims()).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_over_its_quota_gets_429_and_others_are_unaffected() {
    let token = Token::new("tls-quota");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Signet test CA");
    let signet = start_tls(&token, dir.path(), &ca, true).await;
    let base = signet.base.clone();
    let throttled = https(
        &ca,
        Some(&ca.client("throttled.example.test", vec![], false)),
    );
    let as_ = https(
        &ca,
        Some(&ca.client("as", vec![uri("spiffe://example.test/as")], false)),
    );
    // rate = "1/m", burst = 2.
    for _ in 0..2 {
        let (status, _, body) = post(&throttled, &base, SIGN_ID, None, &claims())
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = post(&throttled, &base, SIGN_ID, None, &claims())
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((50..=60).contains(&retry), "Retry-After {retry}");
    for _ in 0..5 {
        let (status, _, body) = post(&as_, &base, SIGN_ID, None, &claims()).await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = post(&throttled, &base, SIGN_ID, None, &claims())
        .await
        .unwrap();
    assert_eq!(status, 429);
}

/// Sends a request's headers and half its body on a connection of its own, so that it is in
/// flight while the test reloads the certificate; `finish` sends the rest and reads the answer.
struct InFlight {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    rest: Vec<u8>,
}

impl InFlight {
    async fn start(port: u16, config: rustls::ClientConfig, path: &str, body: &Value) -> InFlight {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let body = serde_json::to_vec(body).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
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
        let _ = self.stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The server certificate a new connection of `client` sees.
async fn served_cert(client: &reqwest::Client, base: &str) -> Vec<u8> {
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info")
        .to_vec()
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
    let signet = start_tls(&token, d, &ca, true).await;
    let port: u16 = signet.base.rsplit(':').next().unwrap().parse().unwrap();
    let first = std::fs::read(d.join("server.crt")).unwrap();
    let first_der = CertificateDer::from_pem_slice(&first).unwrap().to_vec();
    assert_eq!(
        served_cert(&https(&ca, None), &signet.base).await,
        first_der
    );

    let as_leaf = ca.client("as", vec![uri("spiffe://example.test/as")], false);
    let in_flight = InFlight::start(
        port,
        tls_client_config(&ca, Some(&as_leaf)),
        SIGN_ID,
        &claims(),
    )
    .await;
    assert_eq!(in_flight.server_cert(), first_der);

    // New files, SIGHUP: new connections see serial 2.
    let second = ca.server(2);
    second.write(&d.join("server.crt"), &d.join("server.key"));
    sighup(&signet);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if served_cert(&https(&ca, None), &signet.base).await == second.der {
            break;
        }
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
    assert_eq!(
        served_cert(&https(&ca, None), &signet.base).await,
        second.der
    );

    // The client CA is reloaded too: after switching to a new CA, the old CA's clients fail.
    let new_ca = Ca::new("Next test CA");
    second.write(&d.join("server.crt"), &d.join("server.key"));
    new_ca.write(&d.join("clients-ca.pem"));
    sighup(&signet);
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_as = new_ca.client("as", vec![uri("spiffe://example.test/as")], false);
    loop {
        let ok = post(
            &https(&ca, Some(&new_as)),
            &signet.base,
            SIGN_ID,
            None,
            &claims(),
        )
        .await
        .map(|(s, _, _)| s == 200)
        .unwrap_or(false);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "CA not reloaded:\n{}",
            signet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = https(&ca, Some(&as_leaf));
    assert!(
        post(&old, &signet.base, SIGN_ID, None, &claims())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_unix_socket_listener_serves_the_same_api() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

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
    // `Signet::start_with` polls readiness over HTTP; a reqwest client cannot reach a Unix
    // socket, so run the binary here and poll the socket.
    let path = dir.path().join("signet.toml");
    std::fs::write(&path, &text).unwrap();
    let log = std::fs::File::create(dir.path().join("signet.log")).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("SOFTHSM2_CONF", token.conf())
            .env("SIGNET_HSM_PIN", PIN)
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    async fn request(
        sock: &Path,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let stream = tokio::net::UnixStream::connect(sock).await.ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "signet");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(b).unwrap())
            }
            None => Bytes::new(),
        };
        let r = send
            .send_request(req.body(Full::new(body)).unwrap())
            .await
            .ok()?;
        let status = r.status().as_u16();
        let bytes = r.into_body().collect().await.ok()?.to_bytes();
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some((200, _)) = request(&sock, "GET", "/readyz", None, None).await {
            break;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "signet exited with {status}: {}",
                std::fs::read_to_string(dir.path().join("signet.log")).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "not ready on {}", sock.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    let (status, body) = request(&sock, "POST", SIGN_ID, Some(SIGNER_TOKEN), Some(&claims()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, jwks) = request(&sock, "GET", "/.well-known/jwks.json", None, None)
        .await
        .unwrap();
    verify_jwt(body["jwt"].as_str().unwrap(), &jwks);
    let (status, body) = request(&sock, "POST", SIGN_ID, None, Some(&claims()))
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = request(&sock, "GET", "/v1/key-sets", Some(SIGNER_TOKEN), None)
        .await
        .unwrap();
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
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
