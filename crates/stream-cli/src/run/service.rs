//! The running process: sinks, the streamer with every source, HTTP, and a clean stop on
//! SIGTERM or SIGINT (the batches in flight finish and are checkpointed, then exit 0).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use stream_core::{CancellationToken, CheckpointStore, ErrorClass, Sink};
use ultimate_stream::heartbeat::Health;
use ultimate_stream::{SourceHealth, Streamer, StreamerError};

use super::RunError;
use super::http::{self, ComponentHealth, Observe, Status};
use super::plan::Plan;
use super::sinks::{build_sink, checkpoint_store};
use super::sources::build_source;

/// Runs `plan` until a signal, then stops cleanly.
pub(crate) async fn run(plan: Plan) -> Result<(), RunError> {
    let mut sinks: Vec<(String, Box<dyn Sink>)> = Vec::with_capacity(plan.sinks.len());
    for sink in &plan.sinks {
        sinks.push((sink.name.clone(), build_sink(sink).await?));
    }
    let checkpoints = if plan.sinks.is_empty() {
        eprintln!(
            "ustream: no sinks: events are read and counted, written nowhere, and no checkpoint is saved"
        );
        None
    } else {
        checkpoint_store(&plan.checkpoints).await?
    };

    let shutdown = CancellationToken::new();
    stop_on_signals(&shutdown);
    let state = Arc::new(RunState::new(&plan));
    let server = match &plan.listen {
        Some(listen) => Some(start_http(listen, state.clone(), shutdown.clone()).await?),
        None => None,
    };

    let started = tokio::select! {
        started = start_streamer(&plan, sinks, checkpoints) => started,
        () = shutdown.cancelled() => {
            eprintln!("ustream: stopped while starting");
            return stop_http(server).await;
        }
    };
    let streamer = match started {
        Ok(streamer) => streamer,
        Err(e) => {
            shutdown.cancel();
            let _ = stop_http(server).await;
            return Err(e);
        }
    };
    let _ = state.streamer.set(streamer.clone());
    eprintln!("ustream: running {}", plan.summary());

    shutdown.cancelled().await;
    eprintln!("ustream: stopping: finishing the batches in flight");
    let stopped = streamer
        .stop()
        .await
        .map_err(|e| RunError::Runtime(format!("stopping: {e}")));
    stop_http(server).await?;
    stopped?;
    eprintln!("ustream: stopped");
    Ok(())
}

/// The streamer with every source, and (see [`super::sinks`]) every sink.
async fn start_streamer(
    plan: &Plan,
    sinks: Vec<(String, Box<dyn Sink>)>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
) -> Result<Streamer, RunError> {
    let mut builder = Streamer::builder();
    for source in &plan.sources {
        let source = Arc::new(source.clone());
        let name = source.name.clone();
        builder = builder.source(&name, move || build_source(&source));
    }
    // The seam: `builder = builder.sink(&name, sink, &sinks::sink_patterns(...))` once the
    // facade has `Streamer::sink`; `build_sink` refuses every sink until then.
    if let Some((name, _)) = sinks.first() {
        return Err(RunError::NotWired {
            key: format!("sinks.{name}"),
            what: "sinks (`Streamer::sink` in the facade)".into(),
        });
    }
    if let Some(store) = checkpoints {
        builder = builder.checkpoints(SharedStore(store));
    }
    builder.start().await.map_err(|e| match e {
        StreamerError::Source { source_name, error } => {
            let key = format!("sources.{source_name}");
            if error.class() == ErrorClass::Definite {
                RunError::Input {
                    key,
                    reason: error.to_string(),
                }
            } else {
                RunError::Runtime(format!("{key}: {error}"))
            }
        }
        other => RunError::Runtime(other.to_string()),
    })
}

/// The builder takes a store by value; ours is shared with the sinks' seam.
struct SharedStore(Arc<dyn CheckpointStore>);

#[async_trait::async_trait]
impl CheckpointStore for SharedStore {
    async fn load(
        &self,
        pipeline: &str,
    ) -> Result<Option<stream_core::Checkpoint>, stream_core::CheckpointError> {
        self.0.load(pipeline).await
    }

    async fn save(
        &self,
        pipeline: &str,
        checkpoint: &stream_core::Checkpoint,
    ) -> Result<(), stream_core::CheckpointError> {
        self.0.save(pipeline, checkpoint).await
    }
}

type Server = tokio::task::JoinHandle<std::io::Result<()>>;

async fn start_http(
    listen: &str,
    state: Arc<RunState>,
    shutdown: CancellationToken,
) -> Result<Server, RunError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| RunError::Input {
            key: "listen".into(),
            reason: format!("cannot listen on {listen}: {e}"),
        })?;
    match listener.local_addr() {
        Ok(addr) => eprintln!("ustream: listening on http://{addr}"),
        Err(e) => tracing::debug!(error = %e, "no local address"),
    }
    let router = http::router(state);
    Ok(tokio::spawn(http::serve(listener, router, shutdown)))
}

/// Waits for the HTTP server, which stops on the same token as the pipeline.
async fn stop_http(server: Option<Server>) -> Result<(), RunError> {
    let Some(server) = server else {
        return Ok(());
    };
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RunError::Runtime(format!("HTTP server: {e}"))),
        Err(e) => Err(RunError::Runtime(format!("HTTP server: {e}"))),
    }
}

fn stop_on_signals(shutdown: &CancellationToken) {
    let on_interrupt = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                let on_term = shutdown.clone();
                tokio::spawn(async move {
                    term.recv().await;
                    on_term.cancel();
                });
            }
            Err(e) => tracing::warn!(error = %e, "SIGTERM cannot be handled"),
        }
    }
}

/// What `/metrics`, `/health` and `/stats` report: the config's names until the streamer
/// runs, then the streamer's view.
struct RunState {
    started: Instant,
    sources: Vec<String>,
    sinks: Vec<String>,
    streamer: OnceLock<Streamer>,
}

impl RunState {
    fn new(plan: &Plan) -> Self {
        Self {
            started: Instant::now(),
            sources: plan.sources.iter().map(|s| s.name.clone()).collect(),
            sinks: plan.sinks.iter().map(|s| s.name.clone()).collect(),
            streamer: OnceLock::new(),
        }
    }
}

impl Observe for RunState {
    fn prometheus(&self) -> Option<String> {
        self.streamer.get()?.prometheus()
    }

    fn health(&self) -> Vec<(String, ComponentHealth)> {
        let Some(streamer) = self.streamer.get() else {
            let starting = ComponentHealth {
                status: Status::Starting,
                reason: None,
            };
            return self
                .sources
                .iter()
                .map(|name| (name.clone(), starting.clone()))
                .collect();
        };
        streamer
            .health()
            .into_iter()
            .map(|(name, health)| {
                let (status, reason) = match health {
                    SourceHealth::Running(Health::Healthy) => (Status::Healthy, None),
                    SourceHealth::Running(Health::Degraded { reason }) => {
                        (Status::Degraded, Some(reason))
                    }
                    SourceHealth::Running(Health::Unhealthy { reason })
                    | SourceHealth::Failed { reason } => (Status::Unhealthy, Some(reason)),
                    SourceHealth::Stopped => (Status::Unhealthy, Some("stopped".to_owned())),
                    other => (Status::Unhealthy, Some(other.as_str().to_owned())),
                };
                (name, ComponentHealth { status, reason })
            })
            .collect()
    }

    fn stats(&self) -> serde_json::Value {
        let mut stats = serde_json::json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "running": self.streamer.get().is_some(),
            "sources": self.sources,
            "sinks": self.sinks,
        });
        if let Some(metrics) = self.streamer.get().map(Streamer::metrics) {
            let (p50, p95, p99) = metrics.delivery;
            stats["events_received"] = metrics.events_received.into();
            stats["events_delivered"] = metrics.events_delivered.into();
            stats["dead_lettered"] = metrics.dead_lettered.into();
            stats["reconnects"] = metrics.reconnects.into();
            stats["events_per_second"] = metrics.events_per_second.into();
            stats["events_acknowledged"] = metrics.events_acknowledged.into();
            // From the pipeline reading a batch to every consumer acknowledging it.
            stats["delivery_ms"] = serde_json::json!({
                "p50": p50.as_secs_f64() * 1e3,
                "p95": p95.as_secs_f64() * 1e3,
                "p99": p99.as_secs_f64() * 1e3,
            });
        }
        stats
    }
}
