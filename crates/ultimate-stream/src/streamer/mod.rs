//! The [`Streamer`]: one API for subscriptions, callbacks, CRUD with a cache the change stream
//! keeps fresh, health and recovery.
//!
//! Each source runs in a task: it reads batches, refreshes the cache, publishes the events to
//! the [`Hub`] (stream subscribers) and hands them to the callbacks registered with
//! [`Streamer::on`] and [`Streamer::on_batch`]. A batch's position is checkpointed only once
//! every callback has acknowledged its events (handled, or sent to the dead-letter queue after
//! the retry policy gave up), in order, so a restart resumes after the last acknowledged batch:
//! at-least-once for callbacks. Stream subscribers ([`Streamer::subscribe`]) are not waited
//! for beyond their channel: without lag mode a full channel slows the source down
//! (backpressure); with lag mode they are told how many events they missed.

mod handlers;
mod metrics;
mod pipeline;
mod probes;
mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use stream_core::CancellationToken;
use stream_core::{
    BatchConfig, ChangeEvent, CheckpointStore, Hub, NamespacePattern, Op, Position, Query, Row,
    Source, SourceKind, StartFrom, Store, SubscribeOptions, Subscription,
};
use stream_edge::{DeadLetterQueue, DedupWindow, RetryPolicy};
use stream_heartbeat::{Health, HealthEvent, HeartbeatConfig, Monitor};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub use handlers::HandlerError;
pub use metrics::MetricsSnapshot;

use handlers::Handlers;
use pipeline::SourceSpec;

/// Why the streamer could not be built or could not serve a call. Never contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamerError {
    /// An option is invalid; names the option.
    #[error("invalid option `{field}`: {reason}")]
    Config {
        /// The option, e.g. `cache.max_entries`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A source could not be opened.
    #[error("source `{source_name}`: {error}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        #[source]
        error: stream_core::SourceError,
    },
    /// Reading or writing data failed.
    #[error(transparent)]
    Store(#[from] stream_core::StoreError),
    /// Input was rejected before it reached a database.
    #[error(transparent)]
    Invalid(#[from] stream_edge::ValidationError),
    /// A checkpoint could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] stream_core::CheckpointError),
    /// The streamer was stopped.
    #[error("the streamer is stopped")]
    Stopped,
}

/// Identifies a callback registered with [`Streamer::on`] or [`Streamer::on_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(u64);

/// Builds a [`Streamer`]: sources, checkpoints, cache, heartbeat, retry policy, dead letters.
#[must_use]
pub struct StreamerBuilder {
    sources: Vec<SourceSpec>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
    start_from: StartFrom,
    #[cfg(feature = "cache")]
    cache: Option<stream_cache::CacheConfig>,
    heartbeat: HeartbeatConfig,
    retry: RetryPolicy,
    dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    dedup: (usize, Duration),
    errors: Vec<StreamerError>,
}

impl std::fmt::Debug for StreamerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamerBuilder")
            .field(
                "sources",
                &self.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for StreamerBuilder {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            checkpoints: None,
            start_from: StartFrom::Latest,
            #[cfg(feature = "cache")]
            cache: None,
            heartbeat: HeartbeatConfig::default(),
            retry: RetryPolicy::default(),
            dead_letters: None,
            dedup: (100_000, Duration::from_secs(600)),
            errors: Vec::new(),
        }
    }
}

impl StreamerBuilder {
    /// Streams a MySQL/MariaDB binlog (`mysql://user:pass@host:port/db`); reads and writes of
    /// its namespaces go to the same server.
    #[cfg(feature = "mysql")]
    pub fn mysql(mut self, url: &str) -> Self {
        match stream_mysql::MySqlConfig::from_url(url) {
            Ok(config) => self.sources.push(SourceSpec::mysql(config)),
            Err(e) => self.errors.push(StreamerError::Config {
                field: "mysql".into(),
                reason: e.to_string(),
            }),
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
            Err(e) => self.errors.push(StreamerError::Config {
                field: "mongo".into(),
                reason: e.to_string(),
            }),
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
        self.sources.push(SourceSpec::custom(name, make));
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

    /// What a failing callback's error leads to (retry, dead letter, …).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Where events that callbacks rejected go (default: kept in memory, see
    /// [`Streamer::dead_letters`]).
    pub fn dead_letters(mut self, queue: impl DeadLetterQueue + 'static) -> Self {
        self.dead_letters = Some(Arc::new(queue));
        self
    }

    /// The window in which [`Streamer::push`] recognises a repeated event id.
    pub fn dedup_window(mut self, capacity: usize, ttl: Duration) -> Self {
        self.dedup = (capacity, ttl);
        self
    }

    /// Validates every option, opens every source (failing fast on bad URLs, credentials or
    /// server settings) and starts streaming.
    pub async fn start(mut self) -> Result<Streamer, StreamerError> {
        if let Some(first) = self.errors.drain(..).next() {
            return Err(first);
        }
        if let Err(e) = self.heartbeat.validate() {
            return Err(StreamerError::Config {
                field: "heartbeat".into(),
                reason: e.to_string(),
            });
        }
        if self.dedup.0 == 0 {
            return Err(StreamerError::Config {
                field: "dedup_window.capacity".into(),
                reason: "must be at least 1".into(),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for spec in &self.sources {
            if !names.insert(spec.name().to_owned()) {
                return Err(StreamerError::Config {
                    field: "sources".into(),
                    reason: format!("two sources are named `{}`", spec.name()),
                });
            }
        }
        let store = store::Router::new(&self.sources).await?;
        #[cfg(feature = "cache")]
        let (cache, store): (Option<stream_cache::Cache>, Option<Arc<dyn Store>>) =
            match self.cache.take() {
                Some(config) => {
                    config.validate().map_err(|e| StreamerError::Config {
                        field: "cache".into(),
                        reason: e.to_string(),
                    })?;
                    let cache = stream_cache::Cache::new(config).await.map_err(|e| {
                        StreamerError::Config {
                            field: "cache".into(),
                            reason: e.to_string(),
                        }
                    })?;
                    let cached = stream_cache::CachedStore::new(store, cache.clone());
                    (Some(cache), Some(Arc::new(cached) as Arc<dyn Store>))
                }
                None => (None, Some(Arc::new(store) as Arc<dyn Store>)),
            };
        #[cfg(not(feature = "cache"))]
        let store: Option<Arc<dyn Store>> = Some(Arc::new(store));
        let dead_letters: Arc<dyn DeadLetterQueue> = match self.dead_letters.take() {
            Some(q) => q,
            None => Arc::new(stream_edge::MemoryDeadLetterQueue::new()),
        };
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(metrics::Metrics::new());
        let inner = Arc::new(Inner {
            hub: Hub::new(),
            handlers: Handlers::new(self.retry.clone(), dead_letters.clone(), metrics.clone()),
            next_handler: AtomicU64::new(1),
            shutdown: shutdown.clone(),
            tasks: Mutex::new(Vec::new()),
            monitors: std::sync::Mutex::new(BTreeMap::new()),
            failures: std::sync::Mutex::new(BTreeMap::new()),
            store,
            #[cfg(feature = "cache")]
            cache,
            dedup: DedupWindow::new(self.dedup.0, self.dedup.1),
            pushed: AtomicU64::new(0),
            dead_letters,
            metrics,
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        let mut started = Vec::new();
        for spec in self.sources {
            let name = spec.name().to_owned();
            let saved = match &self.checkpoints {
                Some(store) => store.load(&name).await?,
                None => None,
            };
            let monitor = Arc::new(Monitor::new(
                name.clone(),
                self.heartbeat.clone(),
                spec.probe(),
            ));
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
            started.push((spec, monitor, opened, state));
        }
        for (spec, monitor, opened, state) in started {
            let name = spec.name().to_owned();
            if let Ok(mut monitors) = inner.monitors.lock() {
                monitors.insert(name.clone(), monitor.clone());
            }
            let probe_task = monitor.spawn(shutdown.child_token());
            let pipeline = pipeline::Pipeline {
                inner: inner.clone(),
                spec,
                monitor,
                checkpoints: self.checkpoints.clone(),
                heartbeat: self.heartbeat.clone(),
            };
            let task = tokio::spawn(pipeline.run(opened, state));
            let mut tasks = inner.tasks.lock().await;
            tasks.push(task);
            tasks.push(probe_task);
        }
        Ok(Streamer {
            _cancel_on_drop: Arc::new(CancelOnDrop(inner.shutdown.clone())),
            inner,
        })
    }
}

pub(crate) struct Inner {
    pub(crate) hub: Hub,
    pub(crate) handlers: Handlers,
    next_handler: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    monitors: std::sync::Mutex<BTreeMap<String, Arc<Monitor>>>,
    pub(crate) failures: std::sync::Mutex<BTreeMap<String, String>>,
    store: Option<Arc<dyn Store>>,
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<stream_cache::Cache>,
    dedup: DedupWindow,
    /// Events pushed so far: the ordinal in their positions.
    pushed: AtomicU64,
    dead_letters: Arc<dyn DeadLetterQueue>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    stopped: std::sync::atomic::AtomicBool,
}

/// Streams changes from its sources to subscribers and callbacks; reads and writes through a
/// cache the change stream keeps fresh. Cheap to clone. When the last clone is dropped without
/// [`Streamer::stop`], its tasks are cancelled (acknowledged work is still checkpointed, but
/// nothing waits for it: call `stop` to be sure).
#[derive(Clone)]
pub struct Streamer {
    inner: Arc<Inner>,
    _cancel_on_drop: Arc<CancelOnDrop>,
}

/// Cancels the streamer's tasks when the last [`Streamer`] handle goes away (the tasks hold
/// `Inner`, so its own drop would never come).
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamer")
            .field("subscribers", &self.inner.hub.subscriber_count())
            .finish_non_exhaustive()
    }
}

impl Streamer {
    /// A builder.
    pub fn builder() -> StreamerBuilder {
        StreamerBuilder::default()
    }

    /// A `futures::Stream` of the changes of namespaces matching `pattern` (`db.table`,
    /// `db.*`, `*`), with backpressure: while this subscriber's channel is full, the sources
    /// wait. Drop it to unsubscribe.
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription, StreamerError> {
        self.subscribe_with(pattern, SubscribeOptions::default())
    }

    /// Like [`Streamer::subscribe`], with options (e.g. lag mode: never slow the sources
    /// down, be told how many events were missed).
    pub fn subscribe_with(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, StreamerError> {
        self.check_running()?;
        self.inner
            .hub
            .subscribe(pattern, options)
            .map_err(|e| StreamerError::Config {
                field: "pattern".into(),
                reason: e.to_string(),
            })
    }

    /// Calls `callback` for every change of namespaces matching `pattern`, one at a time, in
    /// commit order. An `Err` or a panic is retried by the retry policy, then the event goes
    /// to the dead-letter queue; other callbacks keep going either way.
    pub fn on<F, Fut>(&self, pattern: &str, callback: F) -> Result<HandlerId, StreamerError>
    where
        F: Fn(Arc<ChangeEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let pattern = self.pattern(pattern)?;
        let id = self.inner.next_handler.fetch_add(1, Ordering::Relaxed);
        self.inner.handlers.add_each(id, pattern, callback);
        Ok(HandlerId(id))
    }

    /// Calls `callback` with batches of changes of namespaces matching `pattern`, of at most
    /// `config.max_items` events, after at most `config.max_wait`. A failing batch is retried
    /// as a whole, then each of its events goes to the dead-letter queue.
    pub fn on_batch<F, Fut>(
        &self,
        pattern: &str,
        config: BatchConfig,
        callback: F,
    ) -> Result<HandlerId, StreamerError>
    where
        F: Fn(Vec<Arc<ChangeEvent>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let pattern = self.pattern(pattern)?;
        let id = self.inner.next_handler.fetch_add(1, Ordering::Relaxed);
        self.inner.handlers.add_batch(id, pattern, config, callback);
        Ok(HandlerId(id))
    }

    /// Removes a callback; events already handed to it are still handled and acknowledged.
    /// Returns whether it existed.
    pub fn off(&self, id: HandlerId) -> bool {
        self.inner.handlers.remove(id.0)
    }

    fn pattern(&self, pattern: &str) -> Result<NamespacePattern, StreamerError> {
        self.check_running()?;
        pattern
            .parse()
            .map_err(|e: stream_core::PatternError| StreamerError::Config {
                field: "pattern".into(),
                reason: e.to_string(),
            })
    }

    fn check_running(&self) -> Result<(), StreamerError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            Err(StreamerError::Stopped)
        } else {
            Ok(())
        }
    }

    fn store(&self) -> Result<&Arc<dyn Store>, StreamerError> {
        self.check_running()?;
        self.inner.store.as_ref().ok_or(StreamerError::Stopped)
    }

    /// Reads one row or document by key: from the cache when it holds it, else from the
    /// database of the source that streams `namespace` (`db.table`).
    pub async fn read(&self, namespace: &str, key: &Row) -> Result<Option<Row>, StreamerError> {
        let ns = stream_edge::validate::namespace(namespace)?;
        stream_edge::validate::key(&ns, key)?;
        Ok(self.store()?.read(&ns, key).await?)
    }

    /// Inserts or replaces a row or document; a read through this streamer sees it at once.
    pub async fn write(&self, namespace: &str, key: &Row, row: &Row) -> Result<(), StreamerError> {
        let ns = stream_edge::validate::namespace(namespace)?;
        stream_edge::validate::key(&ns, key)?;
        Ok(self.store()?.write(&ns, key, row).await?)
    }

    /// Deletes by key; returns whether something was deleted.
    pub async fn delete(&self, namespace: &str, key: &Row) -> Result<bool, StreamerError> {
        let ns = stream_edge::validate::namespace(namespace)?;
        stream_edge::validate::key(&ns, key)?;
        Ok(self.store()?.delete(&ns, key).await?)
    }

    /// Rows matching a portable query (cached until a change of the namespace arrives).
    pub async fn query(&self, namespace: &str, query: &Query) -> Result<Vec<Row>, StreamerError> {
        let ns = stream_edge::validate::namespace(namespace)?;
        Ok(self.store()?.query(&ns, query).await?)
    }

    /// Publishes an application event through the same hub and callbacks (source `app`,
    /// op `insert`). An `id` seen within the dedup window is dropped: returns `false`.
    pub async fn push(
        &self,
        namespace: &str,
        id: &str,
        document: Row,
    ) -> Result<bool, StreamerError> {
        self.check_running()?;
        let ns = stream_edge::validate::namespace(namespace)?;
        if !self.inner.dedup.check(id) {
            return Ok(false);
        }
        let now = stream_core::now_ms();
        let key: Row = [("id", stream_core::Value::String(id.to_owned()))]
            .into_iter()
            .collect();
        let event = Arc::new(ChangeEvent {
            source: SourceKind::App,
            namespace: ns,
            op: Op::Insert,
            key: Some(key),
            before: None,
            after: Some(document),
            update: None,
            position: Position::App {
                at_ms: now,
                seq: self.inner.pushed.fetch_add(1, Ordering::Relaxed),
            },
            ts_ms: now,
            txn: None,
        });
        self.inner.hub.publish(event.clone()).await;
        for ack in self.inner.handlers.dispatch(&[event]).await {
            let _ = ack.await;
        }
        Ok(true)
    }

    /// Counters of the dedup window of [`Streamer::push`].
    pub fn dedup_stats(&self) -> stream_edge::DedupStats {
        self.inner.dedup.stats()
    }

    /// The dead-letter queue (events callbacks rejected, with the reason).
    pub fn dead_letters(&self) -> Arc<dyn DeadLetterQueue> {
        self.inner.dead_letters.clone()
    }

    /// Health per source; a source that stopped on a final error is unhealthy with its reason.
    pub fn health(&self) -> BTreeMap<String, Health> {
        let failures = self
            .inner
            .failures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        let monitors = self
            .inner
            .monitors
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        monitors
            .into_iter()
            .map(|(name, monitor)| {
                let health = match failures.get(&name) {
                    Some(reason) => Health::Unhealthy {
                        reason: reason.clone(),
                    },
                    None => monitor.health(),
                };
                (name, health)
            })
            .collect()
    }

    /// Health events of every source (healthy, degraded, unhealthy, connection lost,
    /// reconnected), from now on.
    pub fn health_events(&self) -> impl Stream<Item = HealthEvent> + Send + 'static {
        let monitors: Vec<Arc<Monitor>> = self
            .inner
            .monitors
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        futures::stream::select_all(monitors.iter().map(|m| Box::pin(m.events())))
    }

    /// Counters, lag percentiles and cache statistics.
    pub fn metrics(&self) -> MetricsSnapshot {
        #[cfg(feature = "cache")]
        let cache = self.inner.cache.as_ref().map(|c| c.stats());
        #[cfg(not(feature = "cache"))]
        let cache: Option<metrics::CacheStatsOrNothing> = None;
        self.inner.metrics.snapshot(cache)
    }

    /// The metrics in Prometheus' text format, when this process's `metrics` recorder is the
    /// one this crate installs (the first streamer installs it).
    pub fn prometheus(&self) -> Option<String> {
        metrics::render_prometheus()
    }

    /// Stops reading, lets every callback finish what it was given, saves the checkpoint of
    /// everything acknowledged, and ends every subscription. Idempotent.
    pub async fn stop(&self) -> Result<(), StreamerError> {
        self.inner.stopped.store(true, Ordering::Release);
        self.inner.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().await.drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        self.inner.handlers.close().await;
        self.inner.hub.close();
        Ok(())
    }
}
