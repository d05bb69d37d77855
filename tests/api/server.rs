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

#[tokio::test]
async fn check_online_reaches_each_configured_api_and_reports_one_line_each() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth.test"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "team": "Acme"})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/users/@me"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": "1", "username": "piraja"})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/applications/@me"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"message": "401: Unauthorized", "code": 0})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
        )
        .mount(&mock)
        .await;
    let mut settings = Settings::load_from(std::path::Path::new("/nonexistent.toml")).unwrap();
    settings.slack = Some(piraja::config::SlackSettings {
        signing_secret: "s".to_owned().into(),
        bot_token: Some("xoxb-1".to_owned().into()),
        client_id: None,
        client_secret: None,
        api_url: mock.uri(),
    });
    settings.discord = Some(piraja::config::DiscordSettings {
        public_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
        application_id: Some("1".into()),
        bot_token: Some("bot".to_owned().into()),
        api_url: mock.uri(),
    });
    settings.google = Some(piraja::config::MailProviderSettings {
        client_id: "id".into(),
        client_secret: "secret".to_owned().into(),
        auth_url: format!("{}/auth", mock.uri()),
        token_url: format!("{}/token", mock.uri()),
        api_url: mock.uri(),
    });
    let lines = piraja::check::online(&settings).await;
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 4, "{text:?}");
    assert!(
        text[0].starts_with("ok") && text[0].contains("Acme"),
        "{text:?}"
    );
    assert!(
        text[1].starts_with("ok") && text[1].contains("piraja"),
        "{text:?}"
    );
    assert!(
        text[2].starts_with("FAIL") && text[2].contains("401"),
        "{text:?}"
    );
    assert!(
        text[3].starts_with("ok") && text[3].contains("Google"),
        "{text:?}"
    );
}
