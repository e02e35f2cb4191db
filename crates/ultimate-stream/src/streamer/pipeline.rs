//! One source's task: read, refresh the cache, publish, hand to the consumers (callbacks and
//! sinks), let the checkpointer save what they all acknowledged (in the background), reconnect with backoff after
//! a lost connection. The source stops on a final error, or when the checkpointer stops it.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use stream_core::{
    BatchStream, CancellationToken, ChangeEvent, CheckpointStore, ErrorClass, Namespace, Opened,
    Position, SinkEvent, SourceError, SourceEvent, StartFrom,
};
use stream_heartbeat::{HeartbeatConfig, Monitor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Inner;
use super::checkpointer::{Checkpointer, Pending};
use super::consumers::Delivery;
use super::sources::SourceSpec;

/// Batches handed to the consumers and not yet acknowledged by all of them, at most, unless
/// the builder says otherwise.
pub(crate) const DEFAULT_IN_FLIGHT: usize = 64;

pub(crate) struct Pipeline {
    pub(crate) inner: Arc<Inner>,
    pub(crate) spec: SourceSpec,
    pub(crate) monitor: Arc<Monitor>,
    pub(crate) checkpoints: Option<Arc<dyn CheckpointStore>>,
    pub(crate) heartbeat: HeartbeatConfig,
    /// Batches handed over and not yet acknowledged, at most.
    pub(crate) in_flight: usize,
    /// Stops this source only (the checkpointer cancels it); a child of the streamer's.
    pub(crate) stop: CancellationToken,
}

enum Ended {
    Stopped,
    Lost(SourceError),
    Failed(SourceError),
}

impl Pipeline {
    pub(crate) async fn run(self, opened: Opened, mut state: Option<serde_json::Value>) {
        let name = self.spec.name().to_owned();
        // The window: a batch is read only with a permit, which its answers give back.
        let window = Arc::new(Semaphore::new(self.in_flight));
        let (pending_tx, pending_rx) = mpsc::channel(self.in_flight);
        let checkpointer = Checkpointer {
            name: name.clone(),
            store: self.checkpoints.clone(),
            retry: self.inner.shared.retry.clone(),
            inner: self.inner.clone(),
            stop_source: self.stop.clone(),
        };
        let checkpointer = tokio::spawn(checkpointer.run(pending_rx));
        let mut position = opened.start.clone();
        self.monitor.delivered(&position);
        let mut batches = opened.batches;
        let source: Arc<str> = name.as_str().into();
        loop {
            let ended = self
                .pump(
                    &source,
                    &mut batches,
                    &mut position,
                    &mut state,
                    &window,
                    &pending_tx,
                )
                .await;
            let lost = match ended {
                Ended::Stopped => {
                    drain(&mut batches).await;
                    break;
                }
                Ended::Failed(e) => {
                    self.failed(&name, e.to_string());
                    break;
                }
                Ended::Lost(e) => e,
            };
            self.monitor.connection_lost(lost.to_string());
            self.inner.metrics.reconnecting();
            let from = position.clone();
            let spec = &self.spec;
            let reopened = stream_heartbeat::reconnect(
                &self.heartbeat,
                Some(&self.monitor),
                &self.stop,
                |_attempt| {
                    let from = StartFrom::Position(from.clone());
                    let state = state.clone();
                    let token = self.stop.child_token();
                    async move { spec.open(from, state, token).await }
                },
            )
            .await;
            match reopened {
                Ok(opened) => batches = opened.batches,
                Err(e) if self.stop.is_cancelled() => {
                    tracing::debug!(source = %name, error = %e, "reconnect abandoned: stopping");
                    break;
                }
                Err(e) => {
                    self.failed(&name, format!("gave up reconnecting: {e}"));
                    break;
                }
            }
        }
        drop(pending_tx);
        let _ = checkpointer.await;
    }

    fn failed(&self, name: &str, reason: String) {
        tracing::error!(source = %name, reason, "source stopped");
        self.inner.source_failed(name, reason);
    }

    async fn pump(
        &self,
        source: &Arc<str>,
        batches: &mut BatchStream,
        position: &mut Position,
        state: &mut Option<serde_json::Value>,
        window: &Arc<Semaphore>,
        pending: &mpsc::Sender<Pending>,
    ) -> Ended {
        let stop = &self.stop;
        // Sinks get the state with the first batch after (re)opening, then when it changes.
        let mut state_for_sinks = state.clone().map(Arc::new);
        loop {
            let in_window: OwnedSemaphorePermit = tokio::select! {
                biased;
                () = stop.cancelled() => return Ended::Stopped,
                permit = window.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ended::Stopped,
                },
            };
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => return Ended::Stopped,
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
            let read_at = Instant::now();
            let changed_state = batch.state.is_some();
            if changed_state {
                state.clone_from(&batch.state);
                state_for_sinks = state.clone().map(Arc::new);
            }
            let (items, events) = self.take_changes(batch.events).await;
            self.inner.metrics.received(events.len());
            let delivery = Delivery {
                source: Some(source),
                items: &items,
                changes: &events,
                position: &batch.position,
                state: state_for_sinks.as_ref(),
            };
            let handed = async {
                self.inner.hub.publish_all(events.iter().cloned()).await;
                self.inner.consumers.dispatch(&delivery).await
            };
            // A subscriber that holds the source back must not hold up stopping.
            let acks = tokio::select! {
                biased;
                acks = handed => acks,
                () = stop.cancelled() => return Ended::Stopped,
            };
            state_for_sinks = None;
            *position = batch.position.clone();
            self.monitor.delivered(position);
            let item = Pending {
                position: batch.position,
                state: if changed_state { state.clone() } else { None },
                acks,
                read_at,
                events: events.len(),
                in_window,
            };
            if pending.send(item).await.is_err() {
                return Ended::Stopped;
            }
        }
    }

    /// The events of a batch (row and schema changes, for sinks) and its row changes alone,
    /// with the cache and the catalog of namespaces updated by them.
    async fn take_changes(
        &self,
        batch: Vec<SourceEvent>,
    ) -> (Vec<SinkEvent>, Vec<Arc<ChangeEvent>>) {
        let mut items: Vec<SinkEvent> = Vec::with_capacity(batch.len());
        let mut events: Vec<Arc<ChangeEvent>> = Vec::with_capacity(batch.len());
        let mut learned: Option<Namespace> = None;
        for event in batch {
            match event {
                SourceEvent::Change(change) => {
                    if learned.as_ref() != Some(&change.namespace) {
                        self.inner.catalog.learn(&change.namespace);
                        learned = Some(change.namespace.clone());
                    }
                    let change = Arc::new(change);
                    items.push(SinkEvent::Change(change.clone()));
                    events.push(change);
                }
                SourceEvent::Schema(change) => {
                    self.inner.catalog.learn_schema_change(&change);
                    // TRUNCATE, DROP, RENAME: cached rows of that table are gone.
                    #[cfg(feature = "cache")]
                    if let Some(cache) = &self.inner.cache {
                        cache.apply_schema(&change).await;
                    }
                    items.push(SinkEvent::Schema(Arc::new(change)));
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
        (items, events)
    }
}

/// Reads a source's stream to its end after stop (5 s at most): a source closes its cursors
/// and connections before its stream ends, so `Streamer::stop` returns after that (the MongoDB
/// driver's tasks panic when the runtime ends under them).
async fn drain(batches: &mut BatchStream) {
    let drained = async { while batches.next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drained).await;
}
