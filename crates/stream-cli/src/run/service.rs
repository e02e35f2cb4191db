//! The running process: sinks, the streamer with every source, HTTP, and a clean stop on
//! SIGTERM or SIGINT (the batches in flight finish and are committed, then exit 0). A source
//! or sink that stops for good stops the process with exit code 1.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use stream_core::Backoff;
use stream_core::{CancellationToken, CheckpointStore, ErrorClass};
use stream_edge::{Decision, RetryPolicy};
use ultimate_stream::heartbeat::Health;
use ultimate_stream::{SourceHealth, Streamer, StreamerError};

use super::RunError;
use super::deliver::SinkStats;
use super::http::{self, ComponentHealth, Observe, Status};
use super::plan::Plan;
use super::progress::{self, Progress};
use super::sinks::{BuiltSink, build_sinks, checkpoint_store};
use super::sources::build_source;

/// Runs `plan` until a signal, then stops cleanly; or until a source or sink fails for good.
pub(crate) async fn run(plan: Plan) -> Result<(), RunError> {
    // First: a SIGTERM while the logins are checked stops the start cleanly (exit 0) instead
    // of killing the process by the signal's default action.
    let shutdown = CancellationToken::new();
    crate::signals::stop_on_signals(&shutdown);
    super::login::check_sink_logins(&plan).await?;
    let mut sinks = build_sinks(&plan)?;
    let progress = Arc::new(Progress::default());
    let mut reporting = BTreeSet::new();
    for sink in &mut sinks {
        if reporting.insert(sink.source.clone()) {
            sink.sink.report_progress(progress.clone());
        }
    }
    let checkpoints = if plan.sinks.is_empty() {
        say!(
            "ustream: no sinks: events are read and counted, written nowhere, and no checkpoint is saved"
        );
        None
    } else {
        checkpoint_store(&plan).await?
    };

    let state = Arc::new(RunState::new(&plan, &sinks, progress.clone()));
    let server = match &plan.listen {
        Some(listen) => Some(start_http(listen, state.clone(), shutdown.clone()).await?),
        None => None,
    };
    {
        let (progress, sources) = (progress.clone(), plan.sources.clone());
        tokio::spawn(async move { progress::estimate(&progress, &sources).await });
    }
    let printing = CancellationToken::new();
    progress::spawn_printer(progress, printing.clone());

    let started = tokio::select! {
        started = start_streamer(&plan, sinks, checkpoints) => started,
        () = shutdown.cancelled() => {
            say!("ustream: stopped while starting");
            printing.cancel();
            return stop_http(server).await;
        }
    };
    let streamer = match started {
        Ok(streamer) => streamer,
        Err(e) => {
            shutdown.cancel();
            printing.cancel();
            let _ = stop_http(server).await;
            return Err(e);
        }
    };
    let _ = state.streamer.set(streamer.clone());
    say!("ustream: running {}", plan.summary());

    let failed = tokio::select! {
        () = shutdown.cancelled() => None,
        failure = streamer.failure() => Some(failure),
    };
    match &failed {
        None => say!("ustream: stopping: finishing the batches in flight"),
        Some(_) => say!("ustream: stopping: a source stopped for good"),
    }
    let stopped = match tokio::time::timeout(STOP_GRACE, streamer.stop()).await {
        Ok(stopped) => stopped.map_err(|e| RunError::Runtime(format!("stopping: {e}"))),
        Err(_) => {
            // A sink write held by a server that stopped answering (the connection still
            // open) would hold the stop for ever, and a service manager would SIGKILL us.
            say!(
                "ustream: a batch in flight was not finished within {} s of the stop (a server \
                 that stopped answering?); exiting without it: the checkpoint stays before it \
                 and a restart delivers it again",
                STOP_GRACE.as_secs()
            );
            std::process::exit(1);
        }
    };
    printing.cancel();
    shutdown.cancel();
    stop_http(server).await?;
    stopped?;
    if let Some((source, reason)) = failed {
        return Err(RunError::Runtime(failure_line(&plan, &source, &reason)));
    }
    let late: Vec<String> = streamer
        .health()
        .into_iter()
        .filter_map(|(name, health)| match health {
            SourceHealth::Failed { reason } => Some(format!("{name}: {reason}")),
            _ => None,
        })
        .collect();
    for line in late {
        say!("ustream: while stopping, {line}");
    }
    say!("ustream: stopped");
    Ok(())
}

/// How long a stop waits for the batches in flight before it exits without them.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// One line for a source that stopped for good, naming the sink when one refused its events.
fn failure_line(plan: &Plan, source: &str, reason: &str) -> String {
    for sink in &plan.sinks {
        for name in [format!("{}.{source}", sink.name), sink.name.clone()] {
            let refused = format!("`{name}` did not acknowledge its events: ");
            let Some(rest) = reason.strip_prefix(&refused) else {
                continue;
            };
            let rest = rest
                .strip_prefix(&format!("sink `{name}` failed: "))
                .unwrap_or(rest);
            return format!("sinks.{}: {rest} (source {source})", sink.name);
        }
    }
    format!("sources.{source}: {reason}")
}

/// Transient failures (a server that is down) are retried with backoff for as long as it
/// takes; definite ones stop.
fn retry_policy() -> RetryPolicy {
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    RetryPolicy::from_table([
        (
            ErrorClass::Transient,
            Decision::Retry {
                max_attempts: u32::MAX,
            },
        ),
        (ErrorClass::Definite, Decision::Fail),
    ])
    .with_backoff(backoff)
}

/// The streamer with every source, and every sink fed by the sources its config names.
async fn start_streamer(
    plan: &Plan,
    sinks: Vec<BuiltSink>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
) -> Result<Streamer, RunError> {
    let mut builder = Streamer::builder().retry_policy(retry_policy());
    for source in &plan.sources {
        let source = Arc::new(source.clone());
        let name = source.name.clone();
        builder = builder.source_with_state(&name, move |state| build_source(&source, state));
    }
    for built in sinks {
        builder = builder.sink_from(&built.name, built.sink, &[&built.source], &built.patterns);
    }
    if let Some(store) = checkpoints {
        builder = builder.checkpoints(store);
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
        StreamerError::Sink { sink, error } => {
            let name = sink.split('.').next().unwrap_or(&sink).to_owned();
            RunError::Runtime(format!("sinks.{name}: {error}"))
        }
        other => RunError::Runtime(other.to_string()),
    })
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
        Ok(addr) => say!("ustream: listening on http://{addr}"),
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

/// What `/metrics`, `/health` and `/stats` report: the config's names until the streamer
/// runs, then the streamer's view.
struct RunState {
    started: Instant,
    sources: Vec<String>,
    sinks: Vec<String>,
    sink_stats: Vec<(String, Arc<SinkStats>)>,
    progress: Arc<Progress>,
    streamer: OnceLock<Streamer>,
}

impl RunState {
    fn new(plan: &Plan, built: &[BuiltSink], progress: Arc<Progress>) -> Self {
        Self {
            started: Instant::now(),
            sources: plan.sources.iter().map(|s| s.name.clone()).collect(),
            sinks: plan.sinks.iter().map(|s| s.name.clone()).collect(),
            sink_stats: built
                .iter()
                .map(|b| (b.name.clone(), b.stats.clone()))
                .collect(),
            progress,
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
        let written: serde_json::Map<String, serde_json::Value> = self
            .sink_stats
            .iter()
            .map(|(name, s)| (name.clone(), s.json()))
            .collect();
        stats["written"] = serde_json::Value::Object(written);
        stats["snapshot"] = self.progress.json();
        if let Some(metrics) = self.streamer.get().map(Streamer::metrics) {
            let (p50, p95, p99) = metrics.delivery;
            stats["events_received"] = metrics.events_received.into();
            stats["events_delivered"] = metrics.events_delivered.into();
            // The sinks set refused changes aside themselves; the streamer counts its own.
            let by_sinks: u64 = self
                .sink_stats
                .iter()
                .map(|(_, s)| s.dead_lettered.load(std::sync::atomic::Ordering::Relaxed))
                .sum();
            stats["dead_lettered"] = (metrics.dead_lettered + by_sinks).into();
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
