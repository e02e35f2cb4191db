//! Saves each batch's position once every consumer acknowledged it, in order. A refusal, a
//! consumer that ended without answering, or a checkpoint that cannot be saved (after the
//! retry policy's attempts) stops the source: nothing after that batch is checkpointed, so a
//! restart delivers it again.
//!
//! Two tasks: one takes the consumers' answers batch by batch and keeps the newest position
//! they all made durable; the other saves that position, the newest one each time a save ends.
//! A slow store (a file's fsyncs on a busy disk, a remote database) then costs fewer saves and
//! never holds the pipeline: the source waits only for its consumers. What a crash repeats is
//! what was acknowledged after the last save that ended.
//!
//! A sink may hold the end of a batch (a source transaction still open) and say it made
//! durable only up to an earlier position, or nothing new: the checkpoint is then the
//! earliest position every consumer made durable, and does not move while one holds
//! everything.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Instant;

use stream_core::{
    CancellationToken, Checkpoint, CheckpointError, CheckpointStore, Durable, ErrorClass, Position,
};
use stream_edge::{RetryPolicy, retry};
use tokio::sync::{mpsc, watch};

use super::Inner;
use super::consumers::Ack;

/// A batch handed to the consumers, waiting for their answers.
pub(crate) struct Pending {
    pub(crate) position: Position,
    /// The source state when it changed with this batch.
    pub(crate) state: Option<serde_json::Value>,
    pub(crate) acks: Vec<Ack>,
    /// When the pipeline got the batch from the source.
    pub(crate) read_at: Instant,
    pub(crate) events: usize,
    /// Its place in the source's window, given back once every consumer answered.
    pub(crate) in_window: tokio::sync::OwnedSemaphorePermit,
}

pub(crate) struct Checkpointer {
    pub(crate) name: String,
    pub(crate) store: Option<Arc<dyn CheckpointStore>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) inner: Arc<Inner>,
    /// Stops this source's pipeline.
    pub(crate) stop_source: CancellationToken,
}

fn class_of(error: &CheckpointError) -> ErrorClass {
    match error {
        CheckpointError::Io { .. } => ErrorClass::Transient,
        _ => ErrorClass::Definite,
    }
}

/// The newest position every consumer made durable, with the source state at it (shared: a
/// state is cloned once per save, not once per batch).
#[derive(Clone)]
struct Durably {
    position: Position,
    state: Option<Arc<serde_json::Value>>,
}

impl Checkpointer {
    /// Runs until the pipeline drops its sender and every batch it sent is answered, then
    /// saves the newest durable position once more, or until the source is stopped.
    pub(crate) async fn run(self, pending: mpsc::Receiver<Pending>) {
        let this = Arc::new(self);
        let Some(store) = this.store.clone() else {
            this.answers(pending, None).await;
            return;
        };
        let (newest_tx, newest_rx) = watch::channel(None);
        let mut saver = tokio::spawn(this.clone().saves(store, newest_rx));
        tokio::select! {
            () = this.answers(pending, Some(newest_tx)) => {
                if let Err(e) = saver.await {
                    this.stop(format!("the checkpoint saver ended: {e}"));
                }
            }
            // Early: a save failed (the source is stopped already) or the saver panicked.
            // Returning drops the batches' queue, which stops the source if it still runs.
            ended = &mut saver => {
                if !this.stop_source.is_cancelled() {
                    let why = ended.err().map_or_else(|| "no reason".to_owned(), |e| e.to_string());
                    this.stop(format!("the checkpoint saver ended early: {why}; a restart delivers what followed the last saved checkpoint again"));
                }
            }
        }
    }

    /// Takes each batch's answers in order; publishes the newest durable position.
    async fn answers(
        &self,
        mut pending: mpsc::Receiver<Pending>,
        newest: Option<watch::Sender<Option<Durably>>>,
    ) {
        let mut state: Option<Arc<serde_json::Value>> = None;
        while let Some(batch) = pending.recv().await {
            let Some(durable) = self.settle(batch, &mut state).await else {
                return;
            };
            let (Some(newest), Some(position)) = (&newest, durable) else {
                continue;
            };
            newest.send_replace(Some(Durably {
                position,
                state: state.clone(),
            }));
        }
    }

    /// Saves the newest durable position whenever it moved; once the answers end, the last
    /// one too. A save that fails after the retry policy's attempts stops the source.
    async fn saves(
        self: Arc<Self>,
        store: Arc<dyn CheckpointStore>,
        mut newest: watch::Receiver<Option<Durably>>,
    ) {
        let mut saved: Option<Position> = None;
        loop {
            // Err: the answers ended; what they published last is still to be saved.
            let ended = newest.changed().await.is_err();
            let Some(durably) = newest.borrow_and_update().clone() else {
                if ended {
                    return;
                }
                continue;
            };
            let newer = saved
                .as_ref()
                .and_then(|s| durably.position.compare(s))
                .is_none_or(Ordering::is_gt);
            if newer {
                let checkpoint = Checkpoint {
                    position: durably.position,
                    state: durably.state.map(|state| state.as_ref().clone()),
                };
                let outcome = retry(&self.retry, class_of, || {
                    store.save(&self.name, &checkpoint)
                })
                .await;
                if let Err(gave_up) = outcome {
                    let s = if gave_up.attempts == 1 { "" } else { "s" };
                    return self.stop(format!(
                        "checkpoint at {} not saved after {} attempt{s}: {}; a restart delivers what followed the last saved one again",
                        checkpoint.position, gave_up.attempts, gave_up.error
                    ));
                }
                saved = Some(checkpoint.position);
            }
            if ended {
                return;
            }
        }
    }

    /// Waits for the answers of a batch's consumers, in order; once all are in, counts the
    /// batch and takes up its state. `None`: a consumer refused and the source is stopped;
    /// `Some(None)`: nothing of this batch may be saved (a consumer holds it).
    async fn settle(
        &self,
        batch: Pending,
        state: &mut Option<Arc<serde_json::Value>>,
    ) -> Option<Option<Position>> {
        let mut durable = Some(batch.position.clone());
        for ack in batch.acks {
            match ack.wait().await {
                Ok(said) => durable = durable.and_then(|at| earliest(at, said)),
                Err(refused) => {
                    self.stop(format!(
                        "{refused}; the checkpoint stays before them and a restart delivers them again"
                    ));
                    return None;
                }
            }
        }
        self.inner
            .metrics
            .acknowledged(batch.events, batch.read_at.elapsed());
        // A definition change ends a source transaction, so what a sink holds comes after the
        // last one: the state at the batch's end is the state at its durable position.
        if let Some(changed) = batch.state {
            *state = Some(Arc::new(changed));
        }
        // The source may read one batch more.
        drop(batch.in_window);
        Some(durable)
    }
}

/// The earlier of `at` and what a consumer said is durable; `None`: nothing may be saved for
/// this batch (the consumer holds all of it, or its position cannot be ordered against the
/// batch's).
fn earliest(at: Position, said: Durable) -> Option<Position> {
    match said {
        Durable::Upto(upto) => match upto.compare(&at) {
            Some(Ordering::Less) => Some(upto),
            Some(_) => Some(at),
            None => None,
        },
        Durable::Held => None,
        _ => Some(at),
    }
}

impl Checkpointer {
    fn stop(&self, reason: String) {
        tracing::error!(source = %self.name, reason, "source stopped");
        self.inner.source_failed(&self.name, reason);
        self.stop_source.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_is_the_earliest_position_every_consumer_made_durable() {
        let at = |offset, skip| Position::binlog("b.000001", offset, skip);
        assert_eq!(earliest(at(300, 0), Durable::All), Some(at(300, 0)));
        assert_eq!(
            earliest(at(300, 2), Durable::Upto(at(200, 1))),
            Some(at(200, 1)),
            "a sink holding the open transaction's rows"
        );
        assert_eq!(
            earliest(at(300, 0), Durable::Upto(at(400, 0))),
            Some(at(300, 0)),
            "never past the batch"
        );
        assert_eq!(earliest(at(300, 0), Durable::Held), None);
        let token = Position::MongoDb(stream_core::MongoPosition::ResumeToken(vec![1]));
        assert_eq!(
            earliest(at(300, 0), Durable::Upto(token)),
            None,
            "positions that cannot be ordered save nothing"
        );
    }

    /// Yields one-event batches at offsets 1..=n, counting them, then waits.
    struct Numbered(u64, Arc<std::sync::atomic::AtomicU64>);

    #[async_trait::async_trait]
    impl stream_core::Source for Numbered {
        fn kind(&self) -> stream_core::SourceKind {
            stream_core::SourceKind::MySql
        }
        async fn open(
            &mut self,
            _from: stream_core::StartFrom,
            _shutdown: CancellationToken,
        ) -> Result<stream_core::Opened, stream_core::SourceError> {
            use futures::StreamExt as _;
            let at = |offset| Position::binlog("b.000001", offset, 0);
            let batches = (1..=self.0).map(move |offset| {
                Ok(stream_core::Batch {
                    events: vec![stream_core::SourceEvent::Change(stream_core::ChangeEvent {
                        source: stream_core::SourceKind::MySql,
                        namespace: stream_core::Namespace::new("shop", "t"),
                        op: stream_core::Op::Insert,
                        key: None,
                        before: None,
                        after: None,
                        update: None,
                        position: at(offset),
                        ts_ms: 0,
                        txn: None,
                    })],
                    position: at(offset),
                    state: None,
                })
            });
            let yielded = self.1.clone();
            Ok(stream_core::Opened {
                start: at(0),
                batches: futures::stream::iter(batches)
                    .inspect(move |_| {
                        yielded.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    })
                    .chain(futures::stream::pending())
                    .boxed(),
            })
        }
    }

    /// A store whose saves wait at a gate (a disk that stalls) until it closes, recording what
    /// they saved.
    struct Stalling {
        gate: tokio::sync::Semaphore,
        started: std::sync::atomic::AtomicUsize,
        saved: std::sync::Mutex<Vec<Position>>,
    }

    impl Default for Stalling {
        fn default() -> Self {
            Self {
                gate: tokio::sync::Semaphore::new(0),
                started: std::sync::atomic::AtomicUsize::new(0),
                saved: std::sync::Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait::async_trait]
    impl CheckpointStore for Stalling {
        async fn load(&self, _pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
            Ok(None)
        }
        async fn save(
            &self,
            _pipeline: &str,
            checkpoint: &Checkpoint,
        ) -> Result<(), CheckpointError> {
            self.started
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Closed: the stall is over (every wait ends with an error).
            let _ = self.gate.acquire().await;
            self.saved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(checkpoint.position.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_stalled_checkpoint_save_holds_back_neither_the_source_nor_its_callbacks_and_the_newest_position_is_saved_after_it()
     {
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        use std::time::Duration;
        const BATCHES: u64 = 1_000;
        let store = Arc::new(Stalling::default());
        let delivered = Arc::new(AtomicU64::new(0));
        let counter = delivered.clone();
        let streamer = crate::Streamer::builder()
            .source("numbered", || Box::new(Numbered(BATCHES, Arc::default())))
            .checkpoints(store.clone())
            .on("shop.*", move |_event| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, SeqCst);
                    Ok(())
                }
            })
            .start()
            .await
            .expect("start");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while delivered.load(SeqCst) < BATCHES {
            assert!(
                tokio::time::Instant::now() < deadline,
                "every batch delivered while the first save stalls: {} of {BATCHES} (the window is {})",
                delivered.load(SeqCst),
                super::super::pipeline::DEFAULT_IN_FLIGHT
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(store.started.load(SeqCst), 1, "one save, still stalled");
        assert!(store.saved.lock().expect("lock").is_empty());
        store.gate.close();
        let last = Position::binlog("b.000001", BATCHES, 0);
        while store.saved.lock().expect("lock").last() != Some(&last) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the newest position saved once the stall ends: {:?}",
                store.saved.lock().expect("lock")
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let saves = store.saved.lock().expect("lock").len();
        assert!(
            saves <= 3,
            "the positions acknowledged during the stall are saved together, once: {saves} saves"
        );
        streamer.stop().await.expect("stop");
    }

    #[tokio::test]
    async fn in_flight_batches_bounds_what_a_source_hands_over_before_its_consumers_acknowledge() {
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        use std::time::Duration;
        let yielded = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (source_counter, callback_gate) = (yielded.clone(), gate.clone());
        let delivered = Arc::new(AtomicU64::new(0));
        let counter = delivered.clone();
        let streamer = crate::Streamer::builder()
            .source("numbered", move || {
                Box::new(Numbered(50, source_counter.clone()))
            })
            .in_flight_batches(1)
            .on("shop.*", move |_event| {
                let (gate, counter) = (callback_gate.clone(), counter.clone());
                async move {
                    // Closed: the callback may go on.
                    let _ = gate.acquire().await;
                    counter.fetch_add(1, SeqCst);
                    Ok(())
                }
            })
            .start()
            .await
            .expect("start");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while yielded.load(SeqCst) < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the first batch read"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Time to read further, were it allowed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            yielded.load(SeqCst),
            1,
            "with a window of 1 and the first event unanswered, the source reads no further"
        );
        gate.close();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while delivered.load(SeqCst) < 50 {
            assert!(tokio::time::Instant::now() < deadline, "all 50 delivered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        streamer.stop().await.expect("stop");
    }

    #[tokio::test]
    async fn an_in_flight_window_of_0_is_refused_by_start_naming_the_option() {
        let Err(error) = crate::Streamer::builder()
            .source("numbered", || Box::new(Numbered(1, Arc::default())))
            .in_flight_batches(0)
            .start()
            .await
        else {
            panic!("a window of 0 would never read, and start() took it");
        };
        let text = error.to_string();
        assert!(
            text.contains("in_flight_batches") && text.contains("at least 1"),
            "{text}"
        );
    }
}
