//! `signet hsm bench`: raw signing speed of a configured token through the PKCS#11 layer alone
//! (session pool, local hashing, C_Sign), the baseline `scripts/bench` compares the service with.
//! It generates a throw-away key pair labelled `signet-bench/...` and destroys it afterwards.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::hsm::Backend;
use crate::service::{BackendSlot, BackendState, hsm_signer, resolve_pin};
use crate::signing::{Algorithm, SigningKey};
use crate::support::Chain;

pub(crate) fn run(
    config: &Config,
    hsm: Option<&str>,
    alg: &str,
    threads: Option<usize>,
    seconds: u64,
    self_check: bool,
) -> ExitCode {
    let Some(alg) = Algorithm::from_jose(alg).or_else(|| Algorithm::from_http(alg)) else {
        eprintln!("error: --alg {alg}: not an algorithm Signet signs with");
        return ExitCode::from(2);
    };
    let Some(h) = config.hsms.iter().find(|h| hsm.is_none_or(|n| n == h.name)) else {
        eprintln!("error: --hsm: no such [[hsm]] in the config");
        return ExitCode::from(2);
    };
    let pin = match resolve_pin(h) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let slot = Arc::new(BackendSlot::new(h.clone(), pin));
    slot.open_if_down();
    let contexts = slot.live();
    let backend = match (slot.state(), contexts.first()) {
        (BackendState::Up(_), Some(b)) => b.clone(),
        (BackendState::Down(reason), _) => {
            eprintln!("error: hsm `{}`: {reason}", h.name);
            return ExitCode::FAILURE;
        }
        (BackendState::Up(_), None) => {
            eprintln!("error: hsm `{}`: no context is up", h.name);
            return ExitCode::FAILURE;
        }
    };
    let threads = threads.unwrap_or(h.sessions * contexts.len()).max(1);
    let id = format!("signet-bench-{}", std::process::id()).into_bytes();
    let spec = hsm_signer::key_spec(alg, 2048);
    if let Err(e) = backend.generate(spec, &id, "signet-bench/pending") {
        eprintln!("error: cannot generate a {alg} key pair: {e}");
        return ExitCode::FAILURE;
    }
    let result = measure(
        &contexts,
        &id,
        alg,
        threads,
        Duration::from_secs(seconds),
        self_check,
    );
    if let Err(e) = backend.destroy(&id) {
        eprintln!(
            "warning: bench key {} not destroyed: {e}",
            String::from_utf8_lossy(&id)
        );
    }
    match result {
        Ok((signs, took)) => {
            println!(
                "{{\"alg\": \"{alg}\", \"threads\": {threads}, \"contexts\": {}, \"sessions\": {}, \
                 \"self_check\": {self_check}, \"signs\": {signs}, \"seconds\": {:.3}, \"per_second\": {:.1}}}",
                contexts.len(),
                h.sessions,
                took.as_secs_f64(),
                signs as f64 / took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `threads` workers signing in a loop for `duration`, worker `w` on context `w % contexts`.
fn measure(
    contexts: &[Arc<Backend>],
    id: &[u8],
    alg: Algorithm,
    threads: usize,
    duration: Duration,
    self_check: bool,
) -> Result<(u64, Duration), String> {
    let scheme = hsm_signer::scheme(alg);
    // With `self_check`, each signature also goes through the service's fault-attack check
    // (verification with the public key), exactly as `SigningKey::sign` does for every request.
    let first = contexts.first().ok_or("no context is up")?;
    let public = hsm_signer::public_key(first.public_key(id).map_err(|e| e.to_string())?);
    let mut keys = Vec::new();
    for backend in contexts {
        let signer = Arc::new(hsm_signer::HsmSigner::new(
            backend.clone(),
            id.to_vec(),
            alg,
        ));
        let key =
            SigningKey::new("bench", alg, public.clone(), signer).map_err(|e| e.to_string())?;
        keys.push(self_check.then_some(key));
    }
    // About the size of a JWS signing input (protected header + claims, base64url).
    let input = vec![b'e'; 320];
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let (b, id, input, stop, count) = (
                contexts[w % contexts.len()].clone(),
                id.to_vec(),
                input.clone(),
                stop.clone(),
                count.clone(),
            );
            let key = keys[w % keys.len()].clone();
            std::thread::spawn(move || -> Result<(), String> {
                while !stop.load(Ordering::Relaxed) {
                    match &key {
                        Some(k) => k.sign(&input).map(|_| ()),
                        None => b
                            .sign(&id, scheme, &input)
                            .map(|_| ())
                            .map_err(hsm_signer::sign_error),
                    }
                    .map_err(|e| Chain(&e).to_string())?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join()
            .map_err(|_| "a bench thread panicked".to_string())??;
    }
    Ok((count.load(Ordering::Relaxed), started.elapsed()))
}
