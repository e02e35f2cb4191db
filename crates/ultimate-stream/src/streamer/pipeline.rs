//! One source's task: read, refresh the cache, publish, hand to callbacks, checkpoint what
//! every callback acknowledged, reconnect with backoff after a lost connection.

use std::sync::Arc;

use futures::StreamExt as _;
use stream_core::{
    BatchStream, ChangeEvent, Checkpoint, CheckpointStore, ErrorClass, Opened, Position, Source,
    SourceError, SourceEvent, StartFrom,
};
use stream_heartbeat::{HeartbeatConfig, Monitor, Probe};
use tokio::sync::{mpsc, oneshot};

use super::Inner;
use super::probes;

/// How to (re)build one source, and what it can read and write.
pub(crate) enum SourceSpec {
    #[cfg(feature = "mysql")]
    MySql(stream_mysql::MySqlConfig),
    #[cfg(feature = "mongo")]
    Mongo(stream_mongo::MongoConfig),
    Custom {
        name: String,
        make: Arc<dyn Fn() -> Box<dyn Source> + Send + Sync>,
    },
}

impl SourceSpec {
    #[cfg(feature = "mysql")]
    pub(crate) fn mysql(mut config: stream_mysql::MySqlConfig) -> Self {
        // The streamer reconnects itself, with the heartbeat's backoff and health events.
        config.reconnect_for = std::time::Duration::ZERO;
        SourceSpec::MySql(config)
    }

    #[cfg(feature = "mongo")]
    pub(crate) fn mongo(mut config: stream_mongo::MongoConfig) -> Self {
        config.reconnect_for = std::time::Duration::ZERO;
        SourceSpec::Mongo(config)
    }

    pub(crate) fn custom<F>(name: &str, make: F) -> Self
    where
        F: Fn() -> Box<dyn Source> + Send + Sync + 'static,
    {
        SourceSpec::Custom {
            name: name.to_owned(),
            make: Arc::new(make),
        }
    }

    /// The pipeline name: the checkpoint key and the health entry.
    pub(crate) fn name(&self) -> &str {
        match self {
            #[cfg(feature = "mysql")]
            SourceSpec::MySql(_) => "mysql",
            #[cfg(feature = "mongo")]
            SourceSpec::Mongo(_) => "mongodb",
            SourceSpec::Custom { name, .. } => name,
        }
    }

    fn build(&self, state: Option<serde_json::Value>) -> Box<dyn Source> {
        match self {
            #[cfg(feature = "mysql")]
            SourceSpec::MySql(config) => {
                let mut config = config.clone();
                config.schema_state = state;
                Box::new(stream_mysql::MySqlSource::new(config))
            }
            #[cfg(feature = "mongo")]
            SourceSpec::Mongo(config) => {
                let _ = state;
                Box::new(stream_mongo::MongoSource::new(config.clone()))
            }
            SourceSpec::Custom { make, .. } => {
                let _ = state;
                make()
            }
        }
    }

    pub(crate) async fn open(
        &self,
        from: StartFrom,
        state: Option<serde_json::Value>,
        shutdown: stream_core::CancellationToken,
    ) -> Result<Opened, SourceError> {
        self.build(state).open(from, shutdown).await
    }

    pub(crate) fn probe(&self) -> Arc<dyn Probe> {
        match self {
            #[cfg(feature = "mysql")]
            SourceSpec::MySql(config) => Arc::new(probes::MySqlProbe::new(config)),
            #[cfg(feature = "mongo")]
            SourceSpec::Mongo(config) => Arc::new(probes::MongoProbe::new(config.clone())),
            SourceSpec::Custom { .. } => Arc::new(probes::NoProbe),
        }
    }
}

/// A batch waiting for its acknowledgements before its position is saved.
struct Pending {
    position: Position,
    state: Option<serde_json::Value>,
    acks: Vec<oneshot::Receiver<()>>,
}

/// Batches handed over but not yet checkpointed, at most.
const IN_FLIGHT: usize = 64;

pub(crate) struct Pipeline {
    pub(crate) inner: Arc<Inner>,
    pub(crate) spec: super::SourceSpec,
    pub(crate) monitor: Arc<Monitor>,
    pub(crate) checkpoints: Option<Arc<dyn CheckpointStore>>,
    pub(crate) heartbeat: HeartbeatConfig,
}

enum Ended {
    Shutdown,
    Lost(SourceError),
    Failed(SourceError),
}

impl Pipeline {
    pub(crate) async fn run(self, opened: Opened, mut state: Option<serde_json::Value>) {
        let name = self.spec.name().to_owned();
        let (pending_tx, pending_rx) = mpsc::channel(IN_FLIGHT);
        let checkpointer = tokio::spawn(checkpoint_in_order(
            name.clone(),
            self.checkpoints.clone(),
            pending_rx,
        ));
        let mut position = opened.start.clone();
        self.monitor.delivered(&position);
        let mut batches = opened.batches;
        loop {
            let ended = self
                .pump(&mut batches, &mut position, &mut state, &pending_tx)
                .await;
            match ended {
                Ended::Shutdown => {
                    drain(&mut batches).await;
                    break;
                }
                Ended::Failed(e) => {
                    tracing::error!(source = %name, error = %e, "source stopped");
                    if let Ok(mut failures) = self.inner.failures.lock() {
                        failures.insert(name.clone(), e.to_string());
                    }
                    break;
                }
                Ended::Lost(e) => {
                    self.monitor.connection_lost(e.to_string());
                    self.inner.metrics.reconnecting();
                    let from = position.clone();
                    let spec = &self.spec;
                    let reopened = stream_heartbeat::reconnect(
                        &self.heartbeat,
                        Some(&self.monitor),
                        &self.inner.shutdown,
                        |_attempt| {
                            let from = StartFrom::Position(from.clone());
                            let state = state.clone();
                            let token = self.inner.shutdown.child_token();
                            async move { spec.open(from, state, token).await }
                        },
                    )
                    .await;
                    match reopened {
                        Ok(opened) => batches = opened.batches,
                        Err(e) if self.inner.shutdown.is_cancelled() => {
                            tracing::debug!(source = %name, error = %e, "reconnect abandoned at shutdown");
                            break;
                        }
                        Err(e) => {
                            tracing::error!(source = %name, error = %e, "gave up reconnecting");
                            if let Ok(mut failures) = self.inner.failures.lock() {
                                failures.insert(name.clone(), e.to_string());
                            }
                            break;
                        }
                    }
                }
            }
        }
        drop(pending_tx);
        let _ = checkpointer.await;
    }

    async fn pump(
        &self,
        batches: &mut BatchStream,
        position: &mut Position,
        state: &mut Option<serde_json::Value>,
        pending: &mpsc::Sender<Pending>,
    ) -> Ended {
        let shutdown = &self.inner.shutdown;
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ended::Shutdown,
                next = batches.next() => next,
            };
            let batch = match next {
                Some(Ok(batch)) => batch,
                Some(Err(e)) if e.class() == ErrorClass::Transient => return Ended::Lost(e),
                Some(Err(e)) => return Ended::Failed(e),
                None => {
                    return Ended::Lost(SourceError::ConnectionLost {
                        reason: "the source's stream ended".into(),
                    });
                }
            };
            let changed_state = batch.state.is_some();
            if changed_state {
                state.clone_from(&batch.state);
            }
            let mut events: Vec<Arc<ChangeEvent>> = Vec::with_capacity(batch.events.len());
            for event in batch.events {
                match event {
                    SourceEvent::Change(change) => events.push(Arc::new(change)),
                    // TRUNCATE, DROP, RENAME: cached rows of that table are gone.
                    #[cfg(feature = "cache")]
                    SourceEvent::Schema(change) => {
                        if let Some(cache) = &self.inner.cache {
                            cache.apply_schema(&change).await;
                        }
                    }
                    _ => {}
                }
            }
            #[cfg(feature = "cache")]
            if let Some(cache) = &self.inner.cache {
                for event in &events {
                    cache.apply(event).await;
                }
            }
            self.inner.metrics.received(&events);
            let handed = async {
                self.inner.hub.publish_all(events.iter().cloned()).await;
                self.inner.handlers.dispatch(&events).await
            };
            // A subscriber that holds the source back must not hold up shutdown.
            let acks = tokio::select! {
                biased;
                acks = handed => acks,
                () = shutdown.cancelled() => return Ended::Shutdown,
            };
            *position = batch.position.clone();
            self.monitor.delivered(position);
            let item = Pending {
                position: batch.position,
                state: if changed_state { state.clone() } else { None },
                acks,
            };
            if pending.send(item).await.is_err() {
                return Ended::Shutdown;
            }
        }
    }
}

/// Reads a source's stream to its end after shutdown (5 s at most): a source closes its
/// cursors and connections before its stream ends, so `Streamer::stop` returns after that
/// (the MongoDB driver's tasks panic when the runtime ends under them).
async fn drain(batches: &mut BatchStream) {
    let drained = async { while batches.next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drained).await;
}

/// Saves each batch's position once all its acknowledgements came, in order. The last saved
/// state travels with later positions until it changes.
async fn checkpoint_in_order(
    name: String,
    store: Option<Arc<dyn CheckpointStore>>,
    mut pending: mpsc::Receiver<Pending>,
) {
    let mut state: Option<serde_json::Value> = None;
    while let Some(item) = pending.recv().await {
        for ack in item.acks {
            // A dropped sender means the callback task ended; nothing more will come.
            let _ = ack.await;
        }
        if item.state.is_some() {
            state = item.state;
        }
        let Some(store) = &store else { continue };
        let checkpoint = Checkpoint {
            position: item.position,
            state: state.clone(),
        };
        if let Err(e) = store.save(&name, &checkpoint).await {
            tracing::error!(source = %name, error = %e, "checkpoint not saved");
        }
    }
}
