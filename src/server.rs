//! Assembling the running server: the store, the desks, the outbox worker and the router,
//! with one shutdown signal for all of them.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::core::people::Platform;
use crate::desk::{Clock, Desks};
use crate::discord::DiscordApp;
use crate::http::{App, AppState, metrics_handle, router, run};
use crate::mail::MailApp;
use crate::outbox::Worker;
use crate::secret::Sealer;
use crate::slack::SlackApp;
use crate::store::SqliteStore;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Opens the store and builds the app state.
pub async fn state(settings: Settings) -> anyhow::Result<AppState> {
    use anyhow::Context;
    let store = SqliteStore::open(&settings.database_url)
        .await
        .with_context(|| "cannot open the database (DATABASE_URL)".to_owned())?;
    let mut desks = Desks::new(Arc::new(store), Clock::system()).with_limits(settings.limits);
    let mail = match (&settings.google, &settings.microsoft) {
        (None, None) => None,
        _ => {
            let sealer = Sealer::new(&settings.load_secret_key()?);
            MailApp::new(&settings, sealer).map(Arc::new)
        }
    };
    if let Some(app) = &mail {
        desks = desks.with_mail(app.clone());
        let _ = app.desks.set(desks.clone());
    }
    let slack = match &settings.slack {
        Some(s) => {
            // The secret key is needed only to seal and open the tokens of OAuth installs.
            let sealer = match s.client_id {
                Some(_) => Some(Sealer::new(&settings.load_secret_key()?)),
                None => None,
            };
            Some(Arc::new(SlackApp::new(s, sealer, desks.store.clone())))
        }
        None => None,
    };
    let discord = match &settings.discord {
        Some(d) => Some(Arc::new(DiscordApp::new(d).ok_or_else(|| {
            anyhow::anyhow!("invalid DISCORD_PUBLIC_KEY: not an Ed25519 public key")
        })?)),
        None => None,
    };
    Ok(AppState::from(App {
        desks,
        settings: Arc::new(settings),
        metrics: metrics_handle(),
        slack,
        discord,
        mail,
    }))
}

/// How often histograms are drained when nobody scrapes `/metrics`.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Drains the metrics' histograms every [`METRICS_UPKEEP`]. The Prometheus recorder keeps every
/// sample of a histogram (one a request) until it is drained, which a scrape of `/metrics` does;
/// `install_recorder`, unlike the exporter's own listener, runs no upkeep, so a server nobody
/// scrapes grew by eight bytes a request without end.
fn spawn_metrics_upkeep(
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tokio::select! {
                _ = every.tick() => metrics.run_upkeep(),
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
    })
}

/// Runs the HTTP server and the background jobs until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish (up to [`DRAIN`]) and lets the outbox worker
/// finish the message it is sending.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut worker = Worker::new(
        state.desks.store.clone(),
        state.desks.clock.clone(),
        state.desks.outbox_wake.clone(),
    );
    if let Some(slack) = &state.slack {
        worker = worker.with_sender(Platform::Slack, Arc::new(slack.sender()));
    }
    if let Some(discord) = &state.discord {
        let sender = discord.sender(state.desks.store.clone());
        worker = worker.with_sender(Platform::Discord, Arc::new(sender));
    }
    let worker = tokio::spawn(worker.run(stop_rx.clone()));
    let mail = state.mail.clone().map(|m| (m, state.settings.mail_poll));
    let mut jobs = crate::jobs::spawn_all(&state.desks, mail, &stop_rx);
    jobs.push(spawn_metrics_upkeep(state.metrics.clone(), stop_rx.clone()));
    let app = router(state.clone());
    let mut drain_rx = stop_rx.clone();
    let server = tokio::spawn(run(listener, app, async move {
        let _ = drain_rx.wait_for(|stop| *stop).await;
    }));
    shutdown.await;
    tracing::info!("Shutting down: no new requests; finishing those in flight.");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(DRAIN, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("Some requests did not finish within 10 seconds."),
    }
    let _ = worker.await;
    for job in jobs {
        let _ = job.await;
    }
    state.desks.store.close().await;
    tracing::info!("Stopped.");
    Ok(())
}
