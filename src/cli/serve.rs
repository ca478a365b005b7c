//! `signet serve`: store, service, upkeep loop, listener, graceful shutdown.

use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, Listen};
use crate::http::{AppState, router};
use crate::keys::open_store;
use crate::service::{Service, SystemClock};

pub fn run(config: Config) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,cryptoki=off")),
        )
        .with_writer(std::io::stderr)
        .init();
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
    let listen = config.server.listen.clone();
    let refresh = config.server.key_refresh;
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

    let app = router(AppState::new(service.clone()));
    match listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("server.listen: cannot bind {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "signet listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
        }
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path)
                .with_context(|| format!("server.listen: cannot bind unix:{}", path.display()))?;
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
            tracing::info!(path = %path.display(), "signet listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
        }
    }
    // No tick may take the lease again after it is handed over.
    upkeep_task.abort();
    service.elector.step_down(&*service.store).await;
    tracing::info!("signet stopped");
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
    tracing::info!("shutting down");
}
