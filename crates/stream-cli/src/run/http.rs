//! `/metrics`, `/health` and `/stats` over HTTP (axum). [`router`] returns a plain
//! [`axum::Router`] so other components (the gateway's WebSocket routes, the ingest
//! endpoints) can `merge` theirs before [`serve`] runs it.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use stream_core::CancellationToken;
use tokio::net::TcpListener;

/// How one component (a source, a sink) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// Not running yet.
    Starting,
    Healthy,
    /// Running, but something is off (it still counts as up).
    Degraded,
    Unhealthy,
}

/// One component's health, as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ComponentHealth {
    pub(crate) status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// What the endpoints report; the running pipeline implements it.
pub(crate) trait Observe: Send + Sync + 'static {
    /// Prometheus text, or `None` while there is nothing to render.
    fn prometheus(&self) -> Option<String>;
    /// Every component by name.
    fn health(&self) -> Vec<(String, ComponentHealth)>;
    /// Counters and settings as JSON.
    fn stats(&self) -> serde_json::Value;
}

/// The three endpoints over `observed`.
pub(crate) fn router(observed: Arc<dyn Observe>) -> Router {
    let metrics = observed.clone();
    let health = observed.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics_response(&*metrics))),
        )
        .route(
            "/health",
            get(move || std::future::ready(health_response(&*health))),
        )
        .route(
            "/stats",
            get(move || std::future::ready(axum::Json(observed.stats()))),
        )
}

fn metrics_response(observed: &dyn Observe) -> Response {
    match observed.prometheus() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no metrics to show yet: the sources are starting\n",
        )
            .into_response(),
    }
}

#[derive(Serialize)]
struct HealthBody<'a> {
    status: Status,
    components: std::collections::BTreeMap<&'a str, &'a ComponentHealth>,
}

/// 200 while every component is healthy or degraded, 503 otherwise (or with none).
fn health_response(observed: &dyn Observe) -> Response {
    let components = observed.health();
    let up = !components.is_empty()
        && components
            .iter()
            .all(|(_, c)| matches!(c.status, Status::Healthy | Status::Degraded));
    let worst = components
        .iter()
        .map(|(_, c)| c.status)
        .max_by_key(|s| match s {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Starting => 2,
            Status::Unhealthy => 3,
        })
        .unwrap_or(Status::Starting);
    let body = HealthBody {
        status: worst,
        components: components.iter().map(|(n, c)| (n.as_str(), c)).collect(),
    };
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets requests in flight
/// finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An in-process stand-in for the pipeline.
    struct Fake {
        health: Mutex<Vec<(String, ComponentHealth)>>,
        metrics: Option<String>,
    }

    impl Observe for Fake {
        fn prometheus(&self) -> Option<String> {
            self.metrics.clone()
        }
        fn health(&self) -> Vec<(String, ComponentHealth)> {
            self.health.lock().map(|h| h.clone()).unwrap_or_default()
        }
        fn stats(&self) -> serde_json::Value {
            serde_json::json!({"events_received": 7})
        }
    }

    fn component(status: Status, reason: Option<&str>) -> ComponentHealth {
        ComponentHealth {
            status,
            reason: reason.map(str::to_owned),
        }
    }

    /// One HTTP/1.1 request over a plain socket: (status, content type, body).
    async fn request(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_owned();
        (status, content_type, body.to_owned())
    }

    async fn start(
        fake: Arc<Fake>,
    ) -> (
        std::net::SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, router(fake), shutdown.clone()));
        (addr, shutdown, server)
    }

    #[tokio::test]
    async fn the_endpoints_answer_over_http_and_stop_on_the_shutdown_token() {
        let fake = Arc::new(Fake {
            health: Mutex::new(vec![
                ("shop".into(), component(Status::Healthy, None)),
                (
                    "warehouse".into(),
                    component(Status::Degraded, Some("slow")),
                ),
            ]),
            metrics: Some("ustream_events_received_total 7\n".into()),
        });
        let (addr, shutdown, server) = start(fake.clone()).await;

        let (status, content_type, body) = request(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        assert_eq!(body, "ustream_events_received_total 7\n");

        let (status, _, body) = request(addr, "/health").await;
        assert_eq!(status, 200, "degraded still counts as up");
        let health: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(health["status"], "degraded");
        assert_eq!(health["components"]["warehouse"]["reason"], "slow");
        assert_eq!(
            health["components"]["shop"],
            serde_json::json!({"status": "healthy"})
        );

        let (status, content_type, body) = request(addr, "/stats").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json");
        assert_eq!(body, r#"{"events_received":7}"#);

        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops on the token");
        stopped.expect("joined").expect("served");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test]
    async fn health_is_503_while_a_component_is_unhealthy_or_starting() {
        let fake = Arc::new(Fake {
            health: Mutex::new(vec![(
                "shop".into(),
                component(Status::Unhealthy, Some("connection refused")),
            )]),
            metrics: None,
        });
        let (addr, shutdown, _server) = start(fake.clone()).await;
        let (status, _, body) = request(addr, "/health").await;
        assert_eq!(status, 503);
        assert!(body.contains(r#""status":"unhealthy""#), "{body}");

        if let Ok(mut health) = fake.health.lock() {
            *health = vec![("shop".into(), component(Status::Starting, None))];
        }
        let (status, _, body) = request(addr, "/health").await;
        assert_eq!(status, 503);
        assert!(body.contains(r#""status":"starting""#), "{body}");

        let (status, _, _) = request(addr, "/metrics").await;
        assert_eq!(status, 503, "no metrics to render yet");
        let (status, _, _) = request(addr, "/nope").await;
        assert_eq!(status, 404);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn other_components_can_merge_their_routes() {
        let fake = Arc::new(Fake {
            health: Mutex::new(Vec::new()),
            metrics: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let app = router(fake).merge(Router::new().route("/ingest", get(|| async { "ingest" })));
        tokio::spawn(serve(listener, app, shutdown.clone()));
        let (status, _, body) = request(addr, "/ingest").await;
        assert_eq!((status, body.as_str()), (200, "ingest"));
        let (status, _, _) = request(addr, "/health").await;
        assert_eq!(status, 503, "no component yet");
        shutdown.cancel();
    }
}
