//! [`StreamerBuilder`]: sources, sinks, checkpoints, cache, heartbeat, retry policy, dead
//! letters; `start()` checks them all, opens every source and starts streaming.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stream_core::{
    BatchConfig, CancellationToken, ChangeEvent, CheckpointStore, Hub, NamespacePattern, Opened,
    Sink, Source, StartFrom, Store,
};
use stream_edge::{DeadLetterQueue, DedupWindow, RetryPolicy};
use stream_heartbeat::{HeartbeatConfig, Monitor};

use super::callbacks::{self, Callback};
use super::catalog::{Catalog, parse_pattern};
use super::consumers::{Consumers, Shared};
use super::sinks::SinkSpec;
use super::sources::SourceSpec;
use super::{HandlerError, Inner, Streamer, StreamerError, metrics, pipeline, store};

/// Builds a [`Streamer`]: sources, sinks, checkpoints, cache, heartbeat, retry policy, dead
/// letters.
#[must_use]
pub struct StreamerBuilder {
    sources: Vec<SourceSpec>,
    sinks: Vec<SinkSpec>,
    callbacks: Vec<(NamespacePattern, Callback)>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
    start_from: StartFrom,
    #[cfg(feature = "cache")]
    cache: Option<stream_cache::CacheConfig>,
    heartbeat: HeartbeatConfig,
    retry: RetryPolicy,
    dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    dedup: (usize, Duration),
    in_flight: usize,
    errors: Vec<StreamerError>,
}

impl std::fmt::Debug for StreamerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamerBuilder")
            .field(
                "sources",
                &self.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for StreamerBuilder {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            sinks: Vec::new(),
            callbacks: Vec::new(),
            checkpoints: None,
            start_from: StartFrom::Latest,
            #[cfg(feature = "cache")]
            cache: None,
            heartbeat: HeartbeatConfig::default(),
            retry: RetryPolicy::default(),
            dead_letters: None,
            dedup: (100_000, Duration::from_secs(600)),
            in_flight: pipeline::DEFAULT_IN_FLIGHT,
            errors: Vec::new(),
        }
    }
}

/// A source opened by `start`, not yet streaming.
struct Started {
    spec: SourceSpec,
    monitor: Arc<Monitor>,
    opened: Opened,
    state: Option<serde_json::Value>,
}

impl StreamerBuilder {
    /// Streams a MySQL/MariaDB binlog (`mysql://user:pass@host:port/db`); reads and writes of
    /// its namespaces go to the same server.
    #[cfg(feature = "mysql")]
    pub fn mysql(mut self, url: &str) -> Self {
        match stream_mysql::MySqlConfig::from_url(url) {
            Ok(config) => self.sources.push(SourceSpec::mysql(config)),
            Err(e) => self.errors.push(StreamerError::config("mysql", e)),
        }
        self
    }

    /// Streams a MySQL/MariaDB binlog with full control of its settings.
    #[cfg(feature = "mysql")]
    pub fn mysql_config(mut self, config: stream_mysql::MySqlConfig) -> Self {
        self.sources.push(SourceSpec::mysql(config));
        self
    }

    /// Streams MongoDB change streams (`mongodb://...`); reads and writes of its namespaces go
    /// to the same deployment.
    #[cfg(feature = "mongo")]
    pub fn mongo(mut self, uri: &str) -> Self {
        match stream_mongo::MongoConfig::from_url(uri) {
            Ok(config) => self.sources.push(SourceSpec::mongo(config)),
            Err(e) => self.errors.push(StreamerError::config("mongo", e)),
        }
        self
    }

    /// Streams MongoDB with full control of its settings.
    #[cfg(feature = "mongo")]
    pub fn mongo_config(mut self, config: stream_mongo::MongoConfig) -> Self {
        self.sources.push(SourceSpec::mongo(config));
        self
    }

    /// Any other [`Source`] (no reads or writes through the streamer for it). `make` builds a
    /// fresh source for each (re)connection.
    pub fn source<F>(mut self, name: &str, make: F) -> Self
    where
        F: Fn() -> Box<dyn Source> + Send + Sync + 'static,
    {
        self.sources
            .push(SourceSpec::custom(name, move |_state| make()));
        self
    }

    /// Like [`source`](Self::source), for a source that keeps state with its positions (a
    /// binlog reader's table definitions, [`Batch::state`](stream_core::Batch::state)):
    /// `make` gets the state saved with the checkpoint it resumes from (`None` without one).
    pub fn source_with_state<F>(mut self, name: &str, make: F) -> Self
    where
        F: Fn(Option<serde_json::Value>) -> Box<dyn Source> + Send + Sync + 'static,
    {
        self.sources.push(SourceSpec::custom(name, make));
        self
    }

    /// Drives a [`Sink`]: it is handed the change events of namespaces matching any of
    /// `patterns` (`db.table`, `db.*`, `*`), from every source and pushed, in commit order,
    /// with [`Sink::write_batch`]: the source batches that queued up while its last write ran,
    /// joined when they come from the same source, with the definition changes in place, the
    /// position and the source's state. A source checkpoints only what every sink made
    /// durable ([`Durable`](stream_core::Durable)) and every callback acknowledged, so a sink
    /// gets everything at least once; one that stores the position with its data gets
    /// exactly-once in effect.
    ///
    /// `start()` calls [`Sink::health_check`] first; [`Streamer::stop`] lets the sink finish
    /// and calls [`Sink::shutdown`]. A [`SinkError::Write`](stream_core::SinkError::Write) is
    /// retried as the [retry policy](Self::retry_policy) says for its class; when the policy
    /// gives up, every source feeding the sink stops (see
    /// [`Streamer::health`]) and a restart delivers the events again. A
    /// [`SinkError::Rejected`](stream_core::SinkError::Rejected) event goes to the
    /// dead-letter queue if you configured one with [`dead_letters`](Self::dead_letters);
    /// otherwise it stops the sources too.
    pub fn sink<I, S>(self, name: &str, sink: impl Sink + 'static, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.add_sink(name, Box::new(sink), None, patterns)
    }

    /// Like [`sink`](Self::sink), fed by the named sources only (their batches; no pushed
    /// events): two sources that stream databases of the same name do not mix. Each batch of
    /// these sources is handed over with [`Sink::write_batch`], even one without an event of
    /// `patterns` (its position still moves), so a sink that stores positions keeps up with
    /// a source whose changes it filters out. A name that is not a source is the error of
    /// `start()`.
    pub fn sink_from<I, S>(
        self,
        name: &str,
        sink: impl Sink + 'static,
        sources: &[&str],
        patterns: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let sources = sources.iter().map(|s| Arc::from(*s)).collect();
        self.add_sink(name, Box::new(sink), Some(sources), patterns)
    }

    fn add_sink<I, S>(
        mut self,
        name: &str,
        sink: Box<dyn Sink>,
        sources: Option<Vec<Arc<str>>>,
        patterns: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parsed: Result<Vec<_>, _> = patterns
            .into_iter()
            .map(|p| parse_pattern(p.as_ref(), None))
            .collect();
        match parsed {
            Ok(patterns) if patterns.is_empty() => self.errors.push(StreamerError::config(
                "sinks",
                format!("sink `{name}` has no pattern: give at least one (`*` for everything)"),
            )),
            Ok(patterns) => self.sinks.push(SinkSpec {
                name: name.to_owned(),
                sink,
                patterns,
                sources,
            }),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Calls `callback` for every change of namespaces matching `pattern`, one at a time, in
    /// commit order, from the very first event: registered before the sources start, it gets
    /// every event at least once, the replay after a restart included (the sources
    /// checkpoint only what it acknowledged). Errors, retries and dead letters work as for
    /// [`Streamer::on`]; a bad pattern is the error of `start()`.
    pub fn on<F, Fut>(self, pattern: &str, callback: F) -> Self
    where
        F: Fn(Arc<ChangeEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.callback(pattern, Callback::Each(callbacks::each_fn(callback)))
    }

    /// Calls `callback` with batches of changes of namespaces matching `pattern`, from the
    /// very first event (see [`StreamerBuilder::on`] and [`Streamer::on_batch`]).
    pub fn on_batch<F, Fut>(self, pattern: &str, config: BatchConfig, callback: F) -> Self
    where
        F: Fn(Vec<Arc<ChangeEvent>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.callback(
            pattern,
            Callback::Batch(config, callbacks::batch_fn(callback)),
        )
    }

    fn callback(mut self, pattern: &str, callback: Callback) -> Self {
        match parse_pattern(pattern, None) {
            Ok(pattern) => self.callbacks.push((pattern, callback)),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Where each source's position is saved (after acknowledgement) and resumed from.
    pub fn checkpoints(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.checkpoints = Some(Arc::new(store));
        self
    }

    /// Where sources without a checkpoint start (default: [`StartFrom::Latest`]).
    pub fn start_from(mut self, from: StartFrom) -> Self {
        self.start_from = from;
        self
    }

    /// Caches reads and query results; change events keep it fresh.
    #[cfg(feature = "cache")]
    pub fn cache(mut self, config: stream_cache::CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Probes, circuit breaker and reconnect backoff.
    pub fn heartbeat(mut self, config: HeartbeatConfig) -> Self {
        self.heartbeat = config;
        self
    }

    /// What a failing callback's or sink's error leads to (retry, dead letter, …), and how
    /// often a checkpoint save is tried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Where events that callbacks (and sinks) rejected go. Without it, callbacks' rejects
    /// are kept in memory (see [`Streamer::dead_letters`]) and a sink's reject stops its
    /// sources, since memory would lose it on restart.
    pub fn dead_letters(mut self, queue: impl DeadLetterQueue + 'static) -> Self {
        self.dead_letters = Some(Arc::new(queue));
        self
    }

    /// How many batches a source may hand to its consumers before they have all acknowledged
    /// the oldest of them (default 64; a MariaDB batch holds up to 1,024 events): the
    /// backpressure a slow callback or sink puts on its source. Checkpoints are saved in the
    /// background and never hold a source back, so a crash repeats what was unacknowledged (at
    /// most this many batches) plus what was acknowledged while the last save ran, which grows
    /// with the store's save time. 1: each batch is acknowledged before the next is read.
    pub fn in_flight_batches(mut self, batches: usize) -> Self {
        if batches == 0 {
            self.errors.push(StreamerError::config(
                "in_flight_batches",
                "must be at least 1 (1: each batch is acknowledged before the next is read)",
            ));
        } else {
            self.in_flight = batches;
        }
        self
    }

    /// The window in which [`Streamer::push`] recognises a repeated (namespace, event id).
    pub fn dedup_window(mut self, capacity: usize, ttl: Duration) -> Self {
        self.dedup = (capacity, ttl);
        self
    }

    fn validate(&mut self) -> Result<(), StreamerError> {
        if let Some(first) = self.errors.drain(..).next() {
            return Err(first);
        }
        self.heartbeat
            .validate()
            .map_err(|e| StreamerError::config("heartbeat", e))?;
        if self.dedup.0 == 0 {
            return Err(StreamerError::config(
                "dedup_window.capacity",
                "must be at least 1",
            ));
        }
        let mut names = BTreeSet::new();
        for name in self.sources.iter().map(SourceSpec::name) {
            if !names.insert(name) {
                return Err(StreamerError::config(
                    "sources",
                    format!("two sources are named `{name}`"),
                ));
            }
        }
        let sources: BTreeSet<&str> = self.sources.iter().map(SourceSpec::name).collect();
        let mut names = BTreeSet::new();
        for sink in &self.sinks {
            if !names.insert(sink.name.as_str()) {
                return Err(StreamerError::config(
                    "sinks",
                    format!("two sinks are named `{}`", sink.name),
                ));
            }
            let unknown = sink
                .sources
                .iter()
                .flatten()
                .find(|s| !sources.contains(s.as_ref()));
            if let Some(unknown) = unknown {
                return Err(StreamerError::config(
                    "sinks",
                    format!(
                        "sink `{}` is fed by `{unknown}`, which is not a source; the sources are: {}",
                        sink.name,
                        sources.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Validates every option, opens every source (its first connection and prerequisite
    /// checks: bad URLs, credentials, missing databases and server settings fail here, with
    /// the source's error), checks every sink, and starts streaming.
    pub async fn start(mut self) -> Result<Streamer, StreamerError> {
        self.validate()?;
        let shutdown = CancellationToken::new();
        let started = match self.open_sources(&shutdown).await {
            Ok(started) => started,
            Err(e) => {
                shutdown.cancel();
                return Err(e);
            }
        };
        for spec in &mut self.sinks {
            if let Err(error) = spec.sink.health_check().await {
                shutdown.cancel();
                return Err(StreamerError::Sink {
                    sink: spec.name.clone(),
                    error,
                });
            }
        }
        let specs: Vec<&SourceSpec> = started.iter().map(|s| &s.spec).collect();
        let catalog = Catalog::load(&specs).await;
        let inner = match self.inner(&specs, catalog, shutdown.clone()).await {
            Ok(inner) => Arc::new(inner),
            Err(e) => {
                shutdown.cancel();
                return Err(e);
            }
        };
        for spec in self.sinks.drain(..) {
            inner.add_sink(spec);
        }
        for (pattern, callback) in self.callbacks.drain(..) {
            if inner
                .catalog
                .matches_nothing(std::slice::from_ref(&pattern))
            {
                tracing::warn!(%pattern, "the pattern matches no table or collection of the sources yet");
            }
            inner.add_callback(pattern, callback);
        }
        for source in started {
            let name = source.spec.name().to_owned();
            if let Ok(mut monitors) = inner.monitors.lock() {
                monitors.insert(name, source.monitor.clone());
            }
            let probe_task = source.monitor.spawn(shutdown.child_token());
            let pipeline = pipeline::Pipeline {
                inner: inner.clone(),
                spec: source.spec,
                monitor: source.monitor,
                checkpoints: self.checkpoints.clone(),
                heartbeat: self.heartbeat.clone(),
                in_flight: self.in_flight,
                stop: shutdown.child_token(),
            };
            let task = tokio::spawn(pipeline.run(source.opened, source.state));
            let mut tasks = inner.tasks.lock().await;
            tasks.push(task);
            tasks.push(probe_task);
        }
        Ok(Streamer::new(inner))
    }

    /// Opens every source from its checkpoint (or `start_from`), in order; the first error
    /// ends it.
    async fn open_sources(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Started>, StreamerError> {
        let mut started = Vec::new();
        for spec in self.sources.drain(..) {
            let name = spec.name().to_owned();
            let saved = match &self.checkpoints {
                Some(store) => store.load(&name).await?,
                None => None,
            };
            let from = match &saved {
                Some(checkpoint) => StartFrom::Position(checkpoint.position.clone()),
                None => self.start_from.clone(),
            };
            let state = saved.and_then(|c| c.state);
            let opened = spec
                .open(from, state.clone(), shutdown.child_token())
                .await
                .map_err(|error| StreamerError::Source {
                    source_name: name.clone(),
                    error,
                })?;
            let monitor = Arc::new(Monitor::new(name, self.heartbeat.clone(), spec.probe()));
            started.push(Started {
                spec,
                monitor,
                opened,
                state,
            });
        }
        Ok(started)
    }

    /// The shared state: store (through the cache), consumers, hub, metrics.
    async fn inner(
        &mut self,
        specs: &[&SourceSpec],
        catalog: Catalog,
        shutdown: CancellationToken,
    ) -> Result<Inner, StreamerError> {
        let store = store::Router::new(specs).await?;
        #[cfg(feature = "cache")]
        let (cache, store): (Option<stream_cache::Cache>, Arc<dyn Store>) = match self.cache.take()
        {
            Some(config) => {
                config
                    .validate()
                    .map_err(|e| StreamerError::config("cache", e))?;
                let cache = stream_cache::Cache::new(config)
                    .await
                    .map_err(|e| StreamerError::config("cache", e))?;
                let cached = stream_cache::CachedStore::new(store, cache.clone());
                (Some(cache), Arc::new(cached))
            }
            None => (None, Arc::new(store)),
        };
        #[cfg(not(feature = "cache"))]
        let store: Arc<dyn Store> = Arc::new(store);
        let metrics = Arc::new(metrics::Metrics::new());
        let shared = Arc::new(Shared {
            retry: self.retry.clone(),
            dead_letters_chosen: self.dead_letters.is_some(),
            dead_letters: self
                .dead_letters
                .take()
                .unwrap_or_else(|| Arc::new(stream_edge::MemoryDeadLetterQueue::new())),
            metrics: metrics.clone(),
        });
        Ok(Inner {
            hub: Hub::new(),
            consumers: Consumers::default(),
            shared,
            next_consumer: Default::default(),
            shutdown,
            tasks: Default::default(),
            monitors: Default::default(),
            failures: Default::default(),
            failed: tokio::sync::watch::Sender::new(0),
            store,
            #[cfg(feature = "cache")]
            cache,
            catalog,
            dedup: DedupWindow::new(self.dedup.0, self.dedup.1),
            pushed: Default::default(),
            metrics,
            stopped: Default::default(),
        })
    }
}
