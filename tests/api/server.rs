//! The HTTP server over real TCP: health, metrics, the body limit, panics, graceful shutdown.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use piraja::config::Settings;
use piraja::http::with_layers;

/// Starts the real server on port 0 over a fresh database; returns its base URL, a stop
/// handle and the server task.
async fn spawn_server(
    dir: &tempfile::TempDir,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut settings = Settings::load_from(std::path::Path::new("/nonexistent.toml")).unwrap();
    settings.database_url = format!("sqlite://{}", dir.path().join("s.db").display());
    let state = piraja::server::state(settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(piraja::server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (base, stop, task)
}

#[tokio::test]
async fn healthz_and_metrics_answer_and_sigterm_style_shutdown_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (base, stop, task) = spawn_server(&dir).await;
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let body = metrics.text().await.unwrap();
    assert!(
        body.contains("piraja_http_requests_total{route=\"/healthz\",status=\"200\"}"),
        "{body}"
    );
    let missing = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the server stops within the drain time")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "it no longer accepts"
    );
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

fn test_router() -> Router {
    let routes = Router::new()
        .route("/boom", get(boom))
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route("/ok", get(|| async { "fine" }));
    with_layers(routes)
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(piraja::http::run(
        listener,
        test_router(),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let r = client.get(format!("{base}/boom")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.text().await.unwrap(), "internal error\n");
    assert_eq!(
        client
            .get(format!("{base}/ok"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_body_over_one_mebibyte_answers_413() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(piraja::http::run(
        listener,
        test_router(),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let fits = client
        .post(format!("{base}/echo"))
        .body(vec![b'a'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
    let over = client
        .post(format!("{base}/echo"))
        .body(vec![b'a'; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 413);
}
