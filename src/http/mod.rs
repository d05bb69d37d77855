//! The HTTP server: the router, its layers, and `/healthz` and `/metrics`.
//!
//! [`run`] takes a bound listener and a shutdown signal, so tests start the real server on
//! port 0 in a few lines. Every request passes, outermost first: a request id, a trace span,
//! panic catching (a panicking handler answers 500 and the server goes on), sensitive-header
//! masking, metrics, a 1 MiB body limit (413 past it) and a 10 s timeout.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub mod signature;

use crate::config::Settings;
use crate::desk::Desks;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach, behind one `Arc`: axum clones the state for every request,
/// and cloning one pointer is one atomic count where the parts' own were a dozen, each a cache
/// line both cores write (measured: 1.3% of a click's samples in `AppState::clone` and
/// dropping it).
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl From<App> for AppState {
    fn from(app: App) -> AppState {
        AppState(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct App {
    pub desks: Desks,
    pub settings: Arc<Settings>,
    pub metrics: PrometheusHandle,
    /// Present when `SLACK_SIGNING_SECRET` is set.
    pub slack: Option<Arc<crate::slack::SlackApp>>,
    /// Present when `DISCORD_PUBLIC_KEY` is set.
    pub discord: Option<Arc<crate::discord::DiscordApp>>,
    /// Present when a mail provider (Google, Microsoft) is configured.
    pub mail: Option<Arc<crate::mail::MailApp>>,
}

/// The process-wide Prometheus recorder (installed once, shared by every server in a process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .expect("static buckets are valid");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): render ours unattached.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The whole router with its layers.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .merge(crate::slack::routes())
        .merge(crate::discord::routes())
        .merge(crate::mail::routes())
        .fallback(not_found);
    with_layers(routes).with_state(state)
}

/// Wraps routes in the layers every request passes (see the module docs).
pub fn with_layers<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    let x_request_id = HeaderName::from_static("x-request-id");
    let sensitive = [
        header::AUTHORIZATION,
        header::COOKIE,
        header::SET_COOKIE,
        HeaderName::from_static("x-slack-signature"),
        HeaderName::from_static("x-signature-ed25519"),
    ];
    routes
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::from_fn(record_metrics))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request.id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.desks.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "The health check could not reach the database.");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("A request handler panicked; it was answered with 500.");
    metrics::counter!("piraja_panics_total").increment(1);
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("piraja_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("piraja_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A small HTML page for people who land on an OAuth callback in their browser.
pub fn html_page(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto\">\
         <h1>{title}</h1><p>{body}</p></body></html>\n",
        title = html_escape(title),
        body = html_escape(body),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The value of the cookie `name` in the request's `Cookie` headers. (Two lines of parsing do
/// not justify a cookie crate: we read one cookie we set ourselves.)
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
