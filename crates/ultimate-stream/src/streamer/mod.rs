//! The [`Streamer`]: one API for subscriptions, callbacks, sinks, CRUD with a cache the change
//! stream keeps fresh, health and recovery.
//!
//! Each source runs in a task: it reads batches, refreshes the cache, publishes the events to
//! the [`Hub`] (stream subscribers) and hands them to the consumers: callbacks registered with
//! [`Streamer::on`] and [`Streamer::on_batch`], and sinks added with
//! [`StreamerBuilder::sink`]. A batch's position is checkpointed only once every consumer has
//! acknowledged its events (delivered, or sent to the dead-letter queue after the retry policy
//! gave up), in order, so a restart resumes after the last acknowledged batch: at-least-once.
//! When an event can be neither delivered nor dead-lettered, or a checkpoint cannot be saved,
//! that source stops (see [`Streamer::health`]) and a restart delivers the event again. Stream
//! subscribers ([`Streamer::subscribe`]) are not waited for beyond their channel: without lag
//! mode a full channel slows the source down (backpressure); with lag mode they are told how
//! many events they missed.

mod builder;
mod callbacks;
mod catalog;
mod checkpointer;
mod consumers;
mod error;
mod handles;
mod health;
mod metrics;
mod pipeline;
mod probes;
mod sinks;
mod sources;
mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::Stream;
use stream_core::{
    BatchConfig, CancellationToken, ChangeEvent, Hub, NamespacePattern, Op, Position, Query, Row,
    SourceKind, Store, SubscribeOptions,
};
use stream_edge::{DeadLetterQueue, DedupWindow};
use stream_heartbeat::{HealthEvent, Monitor};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub use builder::StreamerBuilder;
pub use callbacks::HandlerError;
pub use error::StreamerError;
pub use handles::{Handler, HandlerId, Subscription};
pub use health::SourceHealth;
pub use metrics::MetricsSnapshot;

use callbacks::Callback;
use catalog::{Catalog, parse_pattern};
use consumers::{Consumers, Shared};

pub(crate) struct Inner {
    pub(crate) hub: Hub,
    pub(crate) consumers: Consumers,
    pub(crate) shared: Arc<Shared>,
    next_consumer: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    monitors: std::sync::Mutex<BTreeMap<String, Arc<Monitor>>>,
    /// Sources that stopped on a final error, with the first reason.
    failures: std::sync::Mutex<BTreeMap<String, String>>,
    /// How many sources failed: wakes [`Streamer::failure`].
    failed: tokio::sync::watch::Sender<usize>,
    store: Arc<dyn Store>,
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<stream_cache::Cache>,
    pub(crate) catalog: Catalog,
    dedup: DedupWindow,
    /// Events pushed so far: the ordinal in their positions.
    pushed: AtomicU64,
    pub(crate) metrics: Arc<metrics::Metrics>,
    stopped: AtomicBool,
}

impl Inner {
    /// Records why a source stopped (the first reason stays).
    pub(crate) fn source_failed(&self, name: &str, reason: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.entry(name.to_owned()).or_insert(reason);
        let failed = failures.len();
        drop(failures);
        self.failed.send_replace(failed);
    }

    fn next_id(&self) -> u64 {
        self.next_consumer.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a callback; its id.
    pub(crate) fn add_callback(&self, pattern: NamespacePattern, callback: Callback) -> u64 {
        let id = self.next_id();
        let name = callback.name(id, &pattern);
        let shared = self.shared.clone();
        let task_name = name.clone();
        self.consumers.add(
            id,
            name,
            vec![pattern],
            consumers::Kind::Callback,
            move |rx| callback.spawn(shared, task_name, rx),
        );
        id
    }

    pub(crate) fn add_sink(&self, spec: sinks::SinkSpec) {
        if self.catalog.matches_nothing(&spec.patterns) {
            tracing::warn!(sink = %spec.name, "no pattern of this sink matches a table or collection of the sources yet");
        }
        let task = sinks::SinkTask {
            shared: self.shared.clone(),
            name: spec.name.into(),
            stopping: self.shutdown.clone(),
        };
        let kind = consumers::Kind::Sink {
            sources: spec.sources,
        };
        self.consumers.add(
            self.next_id(),
            task.name.clone(),
            spec.patterns,
            kind,
            move |rx| tokio::spawn(task.run(spec.sink, rx)),
        );
    }
}

/// Streams changes from its sources to subscribers, callbacks and sinks; reads and writes
/// through a cache the change stream keeps fresh. Cheap to clone. When the last clone is
/// dropped without [`Streamer::stop`], its tasks are cancelled (acknowledged work is still
/// checkpointed, but nothing waits for it: call `stop` to be sure).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use ultimate_stream::prelude::*;
///
/// // No source here, only pushed events; `.mysql(url)` or `.mongo(uri)` add database changes.
/// let streamer = Streamer::builder().start().await?;
/// // State a callback keeps: an `Arc`, cloned into the closure and again into each call.
/// let handled = Arc::new(AtomicU64::new(0));
/// let counter = handled.clone();
/// streamer.on("app.notifications", move |event| {
///     let counter = counter.clone();
///     async move {
///         counter.fetch_add(1, Ordering::Relaxed);
///         println!("{}", event.to_json());
///         Ok(())
///     }
/// })?;
/// let notice: Row = [("text", Value::from("hello"))].into_iter().collect();
/// streamer.push("app.notifications", "evt-1", notice).await?; // returns once handled
/// assert_eq!(handled.load(Ordering::Relaxed), 1);
/// streamer.stop().await?;
/// # Ok(()) }
/// ```
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

    fn new(inner: Arc<Inner>) -> Self {
        Self {
            _cancel_on_drop: Arc::new(CancelOnDrop(inner.shutdown.clone())),
            inner,
        }
    }

    /// A `futures::Stream` of the changes of namespaces matching `pattern` (`db.table`,
    /// `db.*`, `*.audit`, `*` for everything; a bare name like `users` is refused: write
    /// `shop.users` or `users.*`), with backpressure: while this subscriber's channel is
    /// full, the sources wait. Drop it to unsubscribe. A pattern that matches no table or
    /// collection yet is accepted (the table may be created later), logged as a warning and
    /// flagged by [`Subscription::matches_nothing_yet`].
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
        let matches_nothing_yet = self.check_pattern(pattern)?.1;
        let inner = self
            .inner
            .hub
            .subscribe(pattern, options)
            .map_err(|e| StreamerError::config("pattern", e))?;
        Ok(Subscription {
            inner,
            matches_nothing_yet,
        })
    }

    /// Calls `callback` for every change of namespaces matching `pattern` (as in
    /// [`Streamer::subscribe`]), one at a time, in commit order, in its own task. An `Err`
    /// goes to the retry policy: by default a transient error
    /// ([`HandlerError::transient`], or any error with `?`) is retried with backoff, then the
    /// event goes to the dead-letter queue; a definite error
    /// ([`HandlerError::definite`]) goes there at once. A panic is a definite error: it is
    /// dead-lettered at once, not retried. Other callbacks keep going either way. The
    /// source checkpoints an event only once this callback returned `Ok` for it or it was
    /// dead-lettered.
    ///
    /// Registered here, after `start()`, a callback gets the events read from now on: after a
    /// restart, the events replayed from the checkpoint may pass before it is registered. A
    /// callback that must get every event at least once, across restarts too, belongs on the
    /// builder ([`StreamerBuilder::on`]).
    ///
    /// To keep state across calls, clone an `Arc` into the closure and again into each call
    /// (see the example on [`Streamer`]).
    pub fn on<F, Fut>(&self, pattern: &str, callback: F) -> Result<Handler, StreamerError>
    where
        F: Fn(Arc<ChangeEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let (pattern, matches_nothing_yet) = self.check_pattern(pattern)?;
        let id = self
            .inner
            .add_callback(pattern, Callback::Each(callbacks::each_fn(callback)));
        Ok(Handler {
            id: HandlerId(id),
            matches_nothing_yet,
        })
    }

    /// Calls `callback` with batches of changes of namespaces matching `pattern`, of at most
    /// `config.max_items` events, after at most `config.max_wait`. A failing batch is retried
    /// as a whole (a panic is not retried), then each of its events goes to the dead-letter
    /// queue. As with [`Streamer::on`], [`StreamerBuilder::on_batch`] registers it before the
    /// first event.
    pub fn on_batch<F, Fut>(
        &self,
        pattern: &str,
        config: BatchConfig,
        callback: F,
    ) -> Result<Handler, StreamerError>
    where
        F: Fn(Vec<Arc<ChangeEvent>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let (pattern, matches_nothing_yet) = self.check_pattern(pattern)?;
        let callback = Callback::Batch(config, callbacks::batch_fn(callback));
        let id = self.inner.add_callback(pattern, callback);
        Ok(Handler {
            id: HandlerId(id),
            matches_nothing_yet,
        })
    }

    /// Removes a callback (a [`Handler`] or its [`HandlerId`]); events already handed to it
    /// are still handled and acknowledged. Returns whether it existed.
    pub fn off(&self, handler: impl Into<HandlerId>) -> bool {
        self.inner.consumers.remove(handler.into().0)
    }

    /// Parses `pattern`, and says (and logs) whether it matches nothing the sources stream.
    fn check_pattern(&self, pattern: &str) -> Result<(NamespacePattern, bool), StreamerError> {
        self.check_running()?;
        let parsed = parse_pattern(pattern, Some(&self.inner.catalog))?;
        let matches_nothing_yet = self
            .inner
            .catalog
            .matches_nothing(std::slice::from_ref(&parsed));
        if matches_nothing_yet {
            tracing::warn!(
                pattern,
                "the pattern matches no table or collection of the sources yet; it gets events once one is created (check for a typo)"
            );
        }
        Ok((parsed, matches_nothing_yet))
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
        Ok(&self.inner.store)
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

    /// Publishes an application event through the same hub, callbacks and sinks (source
    /// `app`, op `insert`, key `{"id": id}`) and waits until every callback and sink has
    /// acknowledged it. `namespace` is `db.table`-shaped, e.g. `app.notifications`. An `id`
    /// already pushed to the same namespace within the dedup window is dropped: returns
    /// `false`. Pushed events are not checkpointed: if a consumer could neither deliver nor
    /// dead-letter one, this returns an error (push it again under a new id).
    pub async fn push(
        &self,
        namespace: &str,
        id: &str,
        document: Row,
    ) -> Result<bool, StreamerError> {
        self.check_running()?;
        let ns = stream_edge::validate::namespace(namespace)?;
        // Ids are unique per namespace; a namespace never contains NUL, so this is unambiguous.
        if !self.inner.dedup.check(&format!("{ns}\0{id}")) {
            return Ok(false);
        }
        self.inner.catalog.learn(&ns);
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
        let position = event.position.clone();
        let changes = [event.clone()];
        let items = [stream_core::SinkEvent::Change(event)];
        let delivery = consumers::Delivery {
            source: None,
            items: &items,
            changes: &changes,
            position: &position,
            state: None,
        };
        for ack in self.inner.consumers.dispatch(&delivery).await {
            ack.wait()
                .await
                .map_err(|refused| StreamerError::NotDelivered {
                    reason: refused.to_string(),
                })?;
        }
        Ok(true)
    }

    /// Counters of the dedup window of [`Streamer::push`].
    pub fn dedup_stats(&self) -> stream_edge::DedupStats {
        self.inner.dedup.stats()
    }

    /// The dead-letter queue (events callbacks and sinks rejected, with the reason).
    pub fn dead_letters(&self) -> Arc<dyn DeadLetterQueue> {
        self.inner.shared.dead_letters.clone()
    }

    /// Each source's state: running (with its connection's health), failed (with the
    /// reason: it stopped on a final error) or stopped (after [`Streamer::stop`]).
    pub fn health(&self) -> BTreeMap<String, SourceHealth> {
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
        let stopped = self.inner.stopped.load(Ordering::Acquire);
        monitors
            .into_iter()
            .map(|(name, monitor)| {
                let health = match failures.get(&name) {
                    Some(reason) => SourceHealth::Failed {
                        reason: reason.clone(),
                    },
                    None if stopped => SourceHealth::Stopped,
                    None => SourceHealth::Running(monitor.health()),
                };
                (name, health)
            })
            .collect()
    }

    /// Waits until a source stops on a final error (a lost connection it could not get back,
    /// or a callback or sink feeding from it that refused its events for good), and returns
    /// its name and the reason. Never returns while every source runs.
    pub async fn failure(&self) -> (String, String) {
        let mut failed = self.inner.failed.subscribe();
        let _ = failed.wait_for(|n| *n > 0).await;
        let failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match failures.iter().next() {
            Some((name, reason)) => (name.clone(), reason.clone()),
            None => (String::new(), "stopped".to_owned()),
        }
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

    /// Counters, delivery latency percentiles and cache statistics.
    pub fn metrics(&self) -> MetricsSnapshot {
        #[cfg(feature = "cache")]
        let cache = self.inner.cache.as_ref().map(|c| c.stats());
        #[cfg(not(feature = "cache"))]
        let cache: Option<metrics::CacheStatsOrNothing> = None;
        self.inner
            .metrics
            .snapshot(self.inner.hub.publishers_waiting(), cache)
    }

    /// The metrics in Prometheus' text format, when this process's `metrics` recorder is the
    /// one this crate installs (the first streamer installs it).
    pub fn prometheus(&self) -> Option<String> {
        metrics::render_prometheus()
    }

    /// Stops reading, lets every callback and sink finish what it was given (a sink that
    /// never returns holds this up), saves the checkpoint of everything acknowledged, shuts
    /// the sinks down and ends every subscription. Idempotent; [`Streamer::health`] says
    /// `Stopped` afterwards.
    pub async fn stop(&self) -> Result<(), StreamerError> {
        self.inner.stopped.store(true, Ordering::Release);
        self.inner.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().await.drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        self.inner.consumers.close().await;
        self.inner.hub.close();
        Ok(())
    }
}
