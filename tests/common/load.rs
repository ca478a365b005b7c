//! A signing load on a `signet` process: workers signing JWTs in a loop until stopped, each
//! request's outcome kept (`resilience` and `failover` break an HSM under it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{ISSUER, SIGNER_TOKEN, Signet, now, post_json};

/// One request of the load: when it started, how long it took, the answer.
pub struct Outcome {
    pub at: Instant,
    pub took: Duration,
    pub status: u16,
    pub body: Value,
}

/// Workers signing until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
}

impl Load {
    /// Starts `workers` workers; worker `w`'s `i`-th request (from 1) signs with the key set
    /// `set(w, i)`, whose profile is `access_token` if it is named `at` (its claims then carry
    /// `jti` and `client_id`). A worker waits 20 ms after a failed request.
    pub fn start(signet: &Signet, workers: usize, set: fn(usize, usize) -> &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| {
                let (http, base, stop) = (signet.http.clone(), signet.base.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let outcome = sign(&http, &base, set(w, i), format!("{w}-{i}")).await;
                        if outcome.status != 200 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        outcomes.push(outcome);
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the workers; every request they made.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for w in self.workers {
            outcomes.extend(w.await.expect("a load worker"));
        }
        outcomes
    }
}

/// Signs one JWT with key set `set` (`jti` for an `at` key set).
pub async fn sign(http: &reqwest::Client, base: &str, set: &str, jti: String) -> Outcome {
    let now = now();
    let mut claims = json!({"iss": ISSUER, "sub": "a", "aud": "c", "iat": now, "exp": now + 60});
    if set == "at" {
        claims["jti"] = json!(jti);
        claims["client_id"] = json!("c");
    }
    let started = Instant::now();
    let url = format!("{base}/v1/key-sets/{set}/sign/jwt");
    let (status, body) =
        post_json(http, &url, Some(SIGNER_TOKEN), &json!({"claims": claims})).await;
    Outcome {
        at: started,
        took: started.elapsed(),
        status,
        body,
    }
}
