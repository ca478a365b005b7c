//! `signet serve`: store, service, upkeep loop, listener (plain, Unix socket or TLS), SIGHUP
//! reload of the TLS files, graceful shutdown (the drain itself is `http::server`'s).

use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::http::server::{self, Listener};
use crate::http::tls::Tls;
use crate::http::{AppState, router};
use crate::keys::open_store;
use crate::service::{Service, SystemClock};

pub fn run(config: Config) -> ExitCode {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,cryptoki=off"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // SIGNET_LOG_FORMAT=json for one JSON object per line (log shippers); text otherwise.
    if std::env::var("SIGNET_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let refresh = config.server.key_refresh;
    // Read the TLS files before anything else starts: a bad file stops start-up at once.
    let tls = match &config.server.tls {
        Some(files) => Some(Arc::new(Tls::load(files)?)),
        None => None,
    };
    reload_on_sighup(tls.clone())?;
    let store = open_store(&config.store.url)
        .await
        .with_context(|| format!("store.url {}", config.store.url))?;
    let service = Service::start(config, store, Arc::new(SystemClock)).await?;
    if !service.elector.state().leader {
        // The leader reconciled when it took the lease; the others report what they see.
        service.reconcile().await;
    }

    let upkeep = service.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(refresh);
        interval.tick().await;
        loop {
            interval.tick().await;
            upkeep.tick().await;
        }
    });

    let server_config = &service.config.server;
    let listener = Listener::bind(&server_config.listen, tls)
        .with_context(|| format!("server.listen: cannot bind {}", server_config.listen))?;
    tracing::info!(listen = %listener.describe(), "signet listening");
    let metrics = crate::http::observe::install_recorder();
    let state = AppState::new(service.clone()).with_metrics(metrics);
    let drain = state.drain.clone();
    server::serve(listener, router(state), drain, server_config, shutdown).await;
    // No tick may take the lease again after it is handed over.
    upkeep_task.abort();
    service.elector.step_down(&*service.store).await;
    tracing::info!("signet stopped");
    Ok(())
}

/// SIGHUP reads the TLS certificate, key and client CA again for new connections; open
/// connections keep what they negotiated. A file that does not load leaves the previous ones.
fn reload_on_sighup(tls: Option<Arc<Tls>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match &tls {
                Some(tls) => match tls.reload() {
                    Ok(summary) => tracing::info!(%summary, "SIGHUP: TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: TLS files not reloaded; keeping the previous certificate"
                    ),
                },
                None => tracing::info!("SIGHUP: nothing to reload (no [server.tls])"),
            }
        }
    });
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal");
}
