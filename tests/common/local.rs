//! The service in the test process: the real service core over a real SoftHSM2 token and a real
//! SQLite store, driven through `router(state).oneshot(...)` (no `signet` process, no network) and
//! a manual clock (no sleeps). For the `signet` CLI, the same router can be served on a loopback
//! port.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once per process, so every in-process service of one test binary
//! shares one token ([`process_token`]); each service has its own store, and kids are unique, so
//! they do not meet (a service may list another's keys as orphans in `/readyz`, which is
//! informative only).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use serde_json::Value;
use signet::config::{ClientConfig, Config};
use signet::http::{AppState, router};
use signet::keys::open_store;
use signet::service::{Clock, Service};
use tower::ServiceExt as _;

use super::{PIN, Set, Token, config};

/// A clock the test moves.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(t: i64) -> Self {
        Self(AtomicI64::new(t))
    }

    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The SoftHSM2 token of this test process (created, and `SOFTHSM2_CONF` and the PIN variable
/// set, on first use).
pub fn process_token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let token = Token::new("in-process");
        // SAFETY (of the test): set once, under the OnceLock, before this process loads SoftHSM;
        // every reader of these variables in this process comes after.
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", token.conf());
            std::env::set_var("SIGNET_HSM_PIN", PIN);
        }
        token
    })
}

/// An in-process service and its router.
pub struct Local {
    pub service: Arc<Service>,
    pub clock: Arc<ManualClock>,
    pub router: Router,
    /// The directory of the store (shared with [`Local::replica`]s).
    pub dir: Arc<tempfile::TempDir>,
}

impl Local {
    /// A service for `sets` with the standard test [`config`] (edited by `edit`), at the current
    /// wall-clock second.
    pub async fn start(sets: &[Set<'_>], edit: impl FnOnce(String) -> String) -> Local {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::on(dir, sets, edit).await
    }

    /// Another service on this one's store and token, as a second replica would be (its own key
    /// view, backends and clock).
    pub async fn replica(&self, sets: &[Set<'_>], edit: impl FnOnce(String) -> String) -> Local {
        Self::on(self.dir.clone(), sets, edit).await
    }

    async fn on(
        dir: Arc<tempfile::TempDir>,
        sets: &[Set<'_>],
        edit: impl FnOnce(String) -> String,
    ) -> Local {
        let token = process_token();
        let text = edit(config(token, dir.path(), 1, sets));
        let config = Config::from_toml(&text, "local.toml", std::iter::empty()).expect("config");
        let store = open_store(&config.store.url).await.expect("store");
        let clock = Arc::new(ManualClock::new(super::now()));
        // One start-up at a time: each opens the PKCS#11 module, and concurrent C_Initialize
        // calls in one process race (a service then starts with its backend down).
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let one_at_a_time = STARTING.lock().await;
        let service = Service::start(config, store, clock.clone())
            .await
            .expect("service");
        drop(one_at_a_time);
        let router = router(AppState::new(service.clone()));
        Local {
            service,
            clock,
            router,
            dir,
        }
    }

    /// The configured client named `name`.
    pub fn client(&self, name: &str) -> &ClientConfig {
        self.service
            .config
            .clients
            .iter()
            .find(|c| c.name == name)
            .expect("a configured client")
    }

    /// One request through the router: status, headers and the body as JSON (`null` if it is
    /// not JSON).
    pub async fn send(&self, req: Request<Body>) -> (u16, HeaderMap, Value) {
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// `method path` with an optional bearer token and JSON body: status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        let (status, _, body) = self.send(req.expect("request")).await;
        (status, body)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// Polls until this service's token shows private keys labelled `labels` (objects another
    /// process, e.g. `pkcs11-tool`, made: SoftHSM shows them to this process a moment later).
    pub async fn wait_for_keys(&self, labels: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let slot = &self.service.backends[0];
            let listed = slot
                .with_backend(std::time::Duration::from_secs(5), |b| b.list_ids(""))
                .await
                .unwrap_or_default();
            if labels
                .iter()
                .all(|l| listed.iter().any(|(_, label)| label == l))
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the token does not show {labels:?}: {listed:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Whether the token still holds a private object with `CKA_ID` = `kid`'s bytes.
    pub async fn in_token(&self, kid: &str) -> bool {
        let slot = &self.service.backends[0];
        let ids = slot
            .with_backend(std::time::Duration::from_secs(5), |b| b.list_ids(""))
            .await
            .expect("list the token's keys");
        ids.iter().any(|(id, _)| id.as_slice() == kid.as_bytes())
    }

    /// The kid of key set `set`'s next key (activating after this service's now).
    pub fn next_kid(&self, set: &str) -> String {
        let now = self.service.now();
        self.service
            .records(set)
            .into_iter()
            .find(|r| r.activate_at > now)
            .expect("a next key")
            .kid
    }

    /// Serves the router on a loopback port (for the `signet` CLI) until the test ends; returns
    /// its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }
}

/// Runs `signet <args>` against `base` with the bearer `token`: exit code, stdout, stderr.
pub async fn cli(base: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let (base, token) = (base.to_string(), token.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(&args)
            .env("SIGNET_URL", base)
            .env("SIGNET_TOKEN", token)
            .output()
            .expect("run signet")
    })
    .await
    .expect("join");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
