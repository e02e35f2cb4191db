//! The consumers a source waits for before it checkpoints: callbacks (`on`, `on_batch`) and
//! sinks. Each runs in its own task behind a bounded queue; every piece of work it is handed
//! is answered with an acknowledgement or a refusal. No answer (the task ended) is a refusal.
//! Callbacks get the row changes of their pattern; sinks get every batch of the sources that
//! feed them (possibly without an event of theirs: the position still moves), with the
//! definition changes in place, the position and the source's state.

use std::sync::{Arc, Mutex};

use stream_core::{
    ChangeEvent, CowList, Durable, NamespacePattern, Position, SchemaChange, SchemaChangeKind,
    SinkBatch, SinkEvent,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Work items a callback may have queued before the source waits for it.
pub(crate) const QUEUE: usize = 64;

/// Events handed to one consumer, and where its answer goes.
pub(crate) struct Work {
    /// The row changes (what callbacks get).
    pub(crate) events: Vec<Arc<ChangeEvent>>,
    /// For sinks: the whole batch.
    pub(crate) batch: Option<SinkBatch>,
    answer: oneshot::Sender<Result<Durable, String>>,
    /// The sink's room for queued events this work takes, given back when it is answered.
    _room: Option<OwnedSemaphorePermit>,
}

impl Work {
    /// `Ok`: the events are delivered, dead-lettered or deliberately skipped, so the source
    /// may checkpoint past them. `Err`: they were not, and the source must stop before them.
    pub(crate) fn answer(self, outcome: Result<(), String>) {
        self.answer_durable(outcome.map(|()| Durable::All));
    }

    /// As [`Work::answer`], saying how much is durable (a sink holding the end of an open
    /// source transaction).
    pub(crate) fn answer_durable(self, outcome: Result<Durable, String>) {
        let _ = self.answer.send(outcome);
    }
}

/// One source batch (or one pushed event) as the consumers are handed it.
pub(crate) struct Delivery<'a> {
    /// The source's name; `None` for pushed events.
    pub(crate) source: Option<&'a Arc<str>>,
    /// Row and definition changes in commit order.
    pub(crate) items: &'a [SinkEvent],
    /// The row changes alone.
    pub(crate) changes: &'a [Arc<ChangeEvent>],
    pub(crate) position: &'a Position,
    pub(crate) state: Option<&'a Arc<serde_json::Value>>,
}

/// Why a source must stop: a consumer did not acknowledge its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) consumer: Arc<str>,
    pub(crate) reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` did not acknowledge its events: {}",
            self.consumer, self.reason
        )
    }
}

/// One consumer's answer for one batch, to await before checkpointing.
pub(crate) struct Ack {
    consumer: Arc<str>,
    answer: Result<oneshot::Receiver<Result<Durable, String>>, String>,
}

impl Ack {
    pub(crate) async fn wait(self) -> Result<Durable, Refused> {
        let refused = |reason| Refused {
            consumer: self.consumer.clone(),
            reason,
        };
        match self.answer {
            Ok(answer) => match answer.await {
                Ok(outcome) => outcome.map_err(refused),
                Err(_) => Err(refused("its task ended with them in hand".to_owned())),
            },
            Err(reason) => Err(refused(reason)),
        }
    }
}

/// What a consumer is.
#[derive(Clone)]
pub(crate) enum Kind {
    /// A callback: the row changes of its patterns.
    Callback,
    /// A sink: every batch of its sources (`None`: of every source, and pushed events).
    Sink { sources: Option<Vec<Arc<str>>> },
}

struct Slot {
    id: u64,
    name: Arc<str>,
    patterns: Vec<NamespacePattern>,
    kind: Kind,
    tx: mpsc::Sender<Work>,
    /// Sinks: room for [`super::sinks::QUEUE_EVENTS`] events handed over and not yet answered,
    /// so large source batches (a snapshot's) do not pile up in memory.
    room: Option<Arc<Semaphore>>,
}

impl Slot {
    fn wants(&self, event: &ChangeEvent) -> bool {
        self.patterns.iter().any(|p| p.matches(&event.namespace))
    }

    fn wants_schema(&self, change: &SchemaChange) -> bool {
        let ns = &change.namespace;
        self.patterns.iter().any(|p| match &change.kind {
            SchemaChangeKind::DropDatabase => p.matches_db(&ns.db),
            SchemaChangeKind::Rename { to } => p.matches(ns) || p.matches(to),
            _ => p.matches(ns),
        })
    }

    /// What this consumer gets of `delivery`; `None`: nothing, not even the position.
    fn work_of(
        &self,
        delivery: &Delivery<'_>,
    ) -> Option<(Vec<Arc<ChangeEvent>>, Option<SinkBatch>)> {
        match &self.kind {
            Kind::Callback => {
                let mine: Vec<Arc<ChangeEvent>> = delivery
                    .changes
                    .iter()
                    .filter(|e| self.wants(e))
                    .cloned()
                    .collect();
                (!mine.is_empty()).then_some((mine, None))
            }
            Kind::Sink { sources } => {
                let source = match (delivery.source, sources) {
                    (Some(source), Some(wanted)) if wanted.contains(source) => source.clone(),
                    (Some(source), None) => source.clone(),
                    (None, None) => Arc::from("app"),
                    _ => return None,
                };
                let items: Vec<SinkEvent> = delivery
                    .items
                    .iter()
                    .filter(|item| match item {
                        SinkEvent::Change(c) => self.wants(c),
                        SinkEvent::Schema(s) => self.wants_schema(s),
                        _ => false,
                    })
                    .cloned()
                    .collect();
                let batch = SinkBatch::new(source, items, delivery.position.clone())
                    .with_state(delivery.state.cloned());
                Some((Vec::new(), Some(batch)))
            }
        }
    }
}

/// The registered consumers.
#[derive(Default)]
pub(crate) struct Consumers {
    slots: CowList<Arc<Slot>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Consumers {
    /// Registers a consumer whose task `spawn` starts on the receiving end of its queue.
    pub(crate) fn add(
        &self,
        id: u64,
        name: Arc<str>,
        patterns: Vec<NamespacePattern>,
        kind: Kind,
        spawn: impl FnOnce(mpsc::Receiver<Work>) -> JoinHandle<()>,
    ) {
        let queue = match kind {
            Kind::Callback => QUEUE,
            Kind::Sink { .. } => super::sinks::QUEUE,
        };
        let room = matches!(kind, Kind::Sink { .. })
            .then(|| Arc::new(Semaphore::new(super::sinks::QUEUE_EVENTS)));
        let (tx, rx) = mpsc::channel(queue);
        let task = spawn(rx);
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        drop(tasks);
        self.slots.push(Arc::new(Slot {
            id,
            name,
            patterns,
            kind,
            tx,
            room,
        }));
    }

    /// Unregisters a consumer; it still finishes what it was handed. Whether it existed.
    pub(crate) fn remove(&self, id: u64) -> bool {
        self.slots.retain(|s| s.id != id) > 0
    }

    /// Hands each consumer what it wants of `delivery`, waiting while a queue is full
    /// (backpressure). One answer per consumer that was handed something; a consumer whose
    /// task has ended answers with a refusal at once.
    pub(crate) async fn dispatch(&self, delivery: &Delivery<'_>) -> Vec<Ack> {
        let mut acks = Vec::new();
        for slot in self.slots.snapshot().iter() {
            let Some((events, batch)) = slot.work_of(delivery) else {
                continue;
            };
            let room = match (&slot.room, &batch) {
                (Some(room), Some(b)) => {
                    let wanted = b.events.len().min(super::sinks::QUEUE_EVENTS) as u32;
                    // Closed only if the semaphore were dropped; it lives as long as the slot.
                    room.clone().acquire_many_owned(wanted).await.ok()
                }
                _ => None,
            };
            let (answer, answered) = oneshot::channel();
            let work = Work {
                events,
                batch,
                answer,
                _room: room,
            };
            let answer = match slot.tx.send(work).await {
                Ok(()) => Ok(answered),
                Err(_) => Err("its task has ended".to_owned()),
            };
            acks.push(Ack {
                consumer: slot.name.clone(),
                answer,
            });
        }
        acks
    }

    /// Stops handing out work and waits until every consumer has finished what it was given.
    pub(crate) async fn close(&self) {
        self.slots.clear();
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// What every consumer task shares: the retry policy, the dead-letter queue, the metrics.
pub(crate) struct Shared {
    pub(crate) retry: stream_edge::RetryPolicy,
    pub(crate) dead_letters: Arc<dyn stream_edge::DeadLetterQueue>,
    /// Whether the application chose the dead-letter queue: sinks set rejected events aside
    /// only then (an in-memory queue would lose them on restart).
    pub(crate) dead_letters_chosen: bool,
    pub(crate) metrics: Arc<super::metrics::Metrics>,
}

impl Shared {
    /// Puts each event in the dead-letter queue; a refusal says which event and why.
    pub(crate) async fn dead_letter(
        &self,
        consumer: &str,
        events: &[Arc<ChangeEvent>],
        reason: &str,
        attempts: u32,
    ) -> Result<(), String> {
        for event in events {
            let letter = stream_edge::DeadLetter::new(consumer, reason, attempts, event);
            if let Err(e) = self.dead_letters.put(letter).await {
                return Err(format!(
                    "the dead-letter queue refused the event at {}: {e}",
                    event.position
                ));
            }
            self.metrics.dead_lettered();
            tracing::warn!(consumer, reason, position = %event.position, "event sent to the dead-letter queue");
        }
        Ok(())
    }
}
