//! Hostile peers at the transport, against the real binary: one peer holding 20,000 half-open
//! connections, the same with a file limit small enough that `accept` fails with `EMFILE`, and
//! SIGTERM under signing load (the graceful drain). The three run one at a time: each needs the
//! machine's sockets and cores to itself.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SIGN: &str = "/v1/key-sets/id/sign/jwt";
/// A request line and headers, never finished.
const HALF_REQUEST: &[u8] =
    b"POST /v1/key-sets/id/sign/jwt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";

fn claims() -> Value {
    let now = now();
    json!({"claims": {"iss": ISSUER, "sub": "alice", "aud": "rp", "iat": now, "exp": now + 300}})
}

/// The standard test config with one ES256 key set `id` and `server_lines` added to `[server]`.
fn config_with(token: &Token, dir: &std::path::Path, port: u16, server_lines: &str) -> String {
    config(token, dir, port, &[set("id", "id_token", "ES256")]).replacen(
        "[store]",
        &format!("{server_lines}\n[store]"),
        1,
    )
}

/// A fresh token and the service with `server_lines` in `[server]`, and the port it listens on.
async fn start_with(label: &str, server_lines: &str) -> (Token, tempfile::TempDir, Signet, u16) {
    let token = Token::new(label);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config_with(&token, dir.path(), port, server_lines);
    let signet = Signet::start(&token, dir.path(), port, &text).await;
    (token, dir, signet, port)
}

/// Opens `n` connections to `port` and sends each half a request. Connections the service has
/// not accepted yet still complete their handshake while the listen backlog has room.
async fn half_open(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(HALF_REQUEST).await.expect("half a request");
        held.push(s);
    }
    held
}

/// Signs once on a new connection; the status, and whether the reply was complete JSON.
async fn sign(port: u16) -> Result<u16, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let r = http
        .post(format!("http://127.0.0.1:{port}{SIGN}"))
        .bearer_auth(SIGNER_TOKEN)
        .json(&claims())
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.map_err(|e| format!("{e:?}"))?;
    assert!(status != 200 || body["jwt"].is_string(), "{body}");
    Ok(status)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// User + system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from `state` (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

async fn until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A peer of `n` half-open connections to `port` in another process (`tests/py/half_open.py`):
/// a process may not hold 20,000 sockets under this machine's hard file limit of 20,000.
fn peer(port: u16, n: usize) -> Guard {
    Guard(
        Command::new("python3")
            .arg(repo().join("tests/py/half_open.py"))
            .args([port.to_string(), n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3"),
    )
}

/// Waits for a peer to report how many connections it opened.
async fn opened(mut p: Guard) -> (Guard, usize) {
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let out = p.0.stdout.as_mut().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        let n = line.trim().parse().unwrap_or(0);
        (p, n)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_half_open_connections_do_not_starve_a_signer() {
    let _one = ONE_AT_A_TIME.lock().await;
    // max_connections is left to its default, derived from the file limit.
    let (_token, _dir, mut signet, port) =
        start_with("slowloris", "header_read_timeout = \"2s\"").await;
    let pid = signet.pid();

    let began = Instant::now();
    let peers = [peer(port, 10_000), peer(port, 10_000)];
    until(
        "the peer holds connections",
        Duration::from_secs(60),
        || open_files(pid) > 2_000,
    )
    .await;
    let asked = Instant::now();
    assert_eq!(sign(port).await, Ok(200), "{}", signet.log());
    let answered = asked.elapsed();
    let held = open_files(pid);
    let [a, b] = peers;
    let ((a, na), (b, nb)) = (opened(a).await, opened(b).await);
    eprintln!(
        "signing took {answered:?} while the peer opened 20,000 half-open connections in {:?}; \
         the service held {held} descriptors at the answer",
        began.elapsed()
    );
    // Every one of the 20,000 was accepted in the end: the service never stopped accepting.
    assert_eq!(na + nb, 20_000);
    until(
        "the service closes the half-open connections",
        Duration::from_secs(120),
        || open_files(pid) < 200,
    )
    .await;
    drop((a, b));
    assert_eq!(sign(port).await, Ok(200));
    assert!(signet.is_running(), "{}", signet.log());
}

/// `signet serve` under `prlimit --nofile=<limit>`, logging to `dir/signet.log`.
fn launch_with_file_limit(token: &Token, dir: &std::path::Path, limit: u32) -> Child {
    let config = dir.join("signet.toml");
    let log = std::fs::File::create(dir.join("signet.log")).unwrap();
    Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(env!("CARGO_BIN_EXE_signet"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("SOFTHSM2_CONF", token.conf())
        .env("SIGNET_HSM_PIN", PIN)
        .env("RUST_LOG", "info,cryptoki=off")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run prlimit (util-linux)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_file_limit_the_accept_loop_backs_off_and_recovers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let token = Token::new("emfile");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A cap above the file limit, and a header-read timeout long enough that `EMFILE` lasts.
    let text = config_with(
        &token,
        dir.path(),
        port,
        "header_read_timeout = \"120s\"\nmax_connections = 10000",
    );
    std::fs::write(dir.path().join("signet.toml"), text).unwrap();
    let mut guard = Guard(launch_with_file_limit(&token, dir.path(), 256));
    let pid = guard.0.id();
    let log = || std::fs::read_to_string(dir.path().join("signet.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !matches!(sign(port).await, Ok(200)) {
        assert!(guard.running(), "signet exited:\n{}", log());
        assert!(Instant::now() < deadline, "not ready:\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let held = half_open(port, 600).await;
    until("accept fails", Duration::from_secs(60), || {
        log().contains("accept failed")
    })
    .await;
    let waiting = tokio::spawn(sign(port));
    // A window to measure CPU time in: the service must sleep, not spin, while it cannot accept.
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cpu_ticks(pid) - before;
    assert!(spent < 100, "{spent} ticks of CPU in 3 s while blocked");
    assert!(guard.running(), "{}", log());

    drop(held);
    assert_eq!(waiting.await.unwrap(), Ok(200), "{}", log());
    assert_eq!(sign(port).await, Ok(200));
    assert!(guard.running(), "{}", log());
    let text = log();
    let episodes = text.matches("accept failed").count();
    let recoveries = text.matches("accepting connections again").count();
    assert!(
        episodes >= 1 && episodes <= recoveries + 1,
        "one warning per episode:\n{text}"
    );
}

/// Kills the child when dropped.
struct Guard(Child);

impl Guard {
    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one keep-alive client saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    asked_to_close: usize,
    refused: bool,
    failures: Vec<String>,
}

/// Signs over keep-alive connections, opening a new one when the service asks to close, until a
/// connection is refused (the listener has closed) or `bound` passes.
async fn keep_alive_client(port: u16, done: Arc<AtomicUsize>, bound: Duration) -> Tally {
    let mut t = Tally::default();
    let body = Bytes::from(serde_json::to_vec(&claims()).unwrap());
    let deadline = Instant::now() + bound;
    'connections: while Instant::now() < deadline {
        let stream = match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                t.refused = true;
                break;
            }
            Err(e) => {
                t.failures.push(format!("connect: {e}"));
                break;
            }
        };
        let (mut send, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(c) => c,
                Err(e) => {
                    t.failures.push(format!("handshake: {e}"));
                    break;
                }
            };
        tokio::spawn(conn);
        while Instant::now() < deadline {
            let req = hyper::Request::post(SIGN)
                .header("host", "127.0.0.1")
                .header("authorization", format!("Bearer {SIGNER_TOKEN}"))
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .unwrap();
            let r = match send.send_request(req).await {
                Ok(r) => r,
                Err(e) => {
                    t.failures.push(format!("no response: {e:?}"));
                    break 'connections;
                }
            };
            let status = r.status();
            let close = r.headers().get("connection").is_some_and(|v| v == "close");
            match r.into_body().collect().await.map(|b| b.to_bytes()) {
                Ok(b) if status == 200 && serde_json::from_slice::<Value>(&b).is_ok() => {
                    t.ok += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(b) => t.failures.push(format!("{status}: {b:?}")),
                Err(e) => {
                    t.failures.push(format!("incomplete body: {e}"));
                    break 'connections;
                }
            }
            if close {
                t.asked_to_close += 1;
                continue 'connections;
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_request_or_refuses_the_connection() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_token, _dir, mut signet, port) = start_with("drain", "drain = \"3s\"").await;

    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(keep_alive_client(
                port,
                done.clone(),
                Duration::from_secs(120),
            ))
        })
        .collect();
    until("every client has signed", Duration::from_secs(60), || {
        done.load(Ordering::Relaxed) >= 40
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &signet.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signed_at_term = done.load(Ordering::Relaxed);

    // /readyz turns 503 while signing goes on.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = probe.get(signet.url("/readyz")).send().await.unwrap();
        if r.status() == 503 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["status"], "draining");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still {}", r.status());
    }

    let mut ok = 0;
    for c in clients {
        let t = c.await.unwrap();
        eprintln!("{t:?}");
        assert!(t.failures.is_empty(), "{t:?}\n{}", signet.log());
        assert!(t.refused, "the client ended without a refusal: {t:?}");
        assert!(t.asked_to_close > 0, "{t:?}");
        ok += t.ok;
    }
    assert!(ok > signed_at_term, "signing went on while draining");
    until("signet exits", Duration::from_secs(60), || {
        !signet.is_running()
    })
    .await;
    assert!(signet.log().contains("signet stopped"), "{}", signet.log());
}
