//! Sinks ([`stream_core::Sink`]) driven by the streamer: each in its own task, handed source
//! batches with [`Sink::write_batch`] in commit order. Batches that queued up while the
//! previous write ran are joined when they come from the same source (up to [`MAX_BATCH`]
//! events), so a busy sink commits fewer, larger transactions. A write is acknowledged with
//! what the sink made durable; the sources checkpoint no further than that.
//!
//! Errors: a [`SinkError::Write`] is retried as the retry policy says for its class (while
//! the streamer stops, a failed attempt is not retried: what it held is read again after a
//! restart); when the policy gives up, the sink is broken: the work is refused and every
//! source feeding it stops (a restart resumes from the last checkpoint). A
//! [`SinkError::Rejected`] event goes to the dead-letter queue when the application
//! configured one (and the rest of the batch is written again); without one, it stops the
//! sources too.

use std::sync::Arc;

use stream_core::{
    CancellationToken, Durable, ErrorClass, NamespacePattern, Sink, SinkBatch, SinkError, SinkEvent,
};
use stream_edge::Action;
use tokio::sync::mpsc;

use super::consumers::{Shared, Work};

/// The most events one `write_batch` call gets when batches have queued up (a single source
/// batch may be larger: it is never split).
pub(crate) const MAX_BATCH: usize = 8 * 1024;

/// Source batches a sink may have queued before the sources wait for it. A live source cuts
/// a batch whenever the server has nothing more ready, often one small transaction each: a
/// sink that is still writing joins what queued meanwhile into its next target transaction,
/// so this many batches (the streamer keeps as many unacknowledged) are what keeps up with
/// thousands of commits per second. Memory is bounded by [`QUEUE_EVENTS`].
pub(crate) const QUEUE: usize = 64;

/// Events a sink may hold, queued or being written, before the sources wait for it (a batch
/// larger than this takes all of it): memory stays bounded whatever the source's batch size
/// (a snapshot's chunks are five times a binlog batch).
pub(crate) const QUEUE_EVENTS: usize = 2 * MAX_BATCH;

/// A sink as the builder was given it.
pub(crate) struct SinkSpec {
    pub(crate) name: String,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) patterns: Vec<NamespacePattern>,
    /// The sources that feed it; `None`: every source, and pushed events.
    pub(crate) sources: Option<Vec<Arc<str>>>,
}

fn class_of(error: &SinkError) -> ErrorClass {
    match error {
        SinkError::Write { class, .. } => *class,
        _ => ErrorClass::Definite,
    }
}

/// One sink's task.
pub(crate) struct SinkTask {
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: Arc<str>,
    /// The streamer is stopping: no more retries.
    pub(crate) stopping: CancellationToken,
}

impl SinkTask {
    pub(crate) async fn run(self, mut sink: Box<dyn Sink>, mut rx: mpsc::Receiver<Work>) {
        let mut broken: Option<String> = None;
        // A work of another source that ended the previous join.
        let mut next: Option<Work> = None;
        loop {
            let first = match next.take() {
                Some(work) => work,
                None => match rx.recv().await {
                    Some(work) => work,
                    None => break,
                },
            };
            let mut works = vec![first];
            let mut queued = events_of(&works[0]);
            while queued < MAX_BATCH {
                match rx.try_recv() {
                    Ok(work) if same_source(&works[0], &work) => {
                        queued += events_of(&work);
                        works.push(work);
                    }
                    Ok(work) => {
                        next = Some(work);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let outcome = match (&broken, join(&mut works)) {
                (Some(reason), _) => Err(format!("it failed earlier: {reason}")),
                (None, Some(batch)) => self.write(sink.as_mut(), batch).await,
                (None, None) => Ok(Durable::All),
            };
            if let (Err(reason), None) = (&outcome, &broken) {
                tracing::error!(sink = %self.name, error = %reason, "sink failed; the sources feeding it stop");
                broken = Some(reason.clone());
            }
            for work in works {
                work.answer_durable(outcome.clone());
            }
        }
        if let Err(e) = sink.shutdown().await {
            tracing::error!(sink = %self.name, error = %e, "sink did not shut down cleanly");
        }
    }

    /// Writes `batch` until the sink took it (rejected events dead-lettered), or says why not.
    async fn write(&self, sink: &mut dyn Sink, mut batch: SinkBatch) -> Result<Durable, String> {
        loop {
            let (error, attempts) = match self.attempts(sink, &batch).await {
                Ok(durable) => {
                    self.shared.metrics.delivered(batch.changes().count());
                    return Ok(durable);
                }
                Err(failed) => failed,
            };
            let s = if attempts == 1 { "" } else { "s" };
            let failure = format!("{error} (after {attempts} attempt{s})");
            let SinkError::Rejected { position, .. } = &error else {
                return Err(failure);
            };
            if !self.shared.dead_letters_chosen {
                return Err(format!(
                    "{failure}; configure a dead-letter queue to set rejected events aside"
                ));
            }
            let at = batch.events.iter().position(
                |e| matches!(e, SinkEvent::Change(c) if c.position.to_string() == *position),
            );
            let Some(SinkEvent::Change(rejected)) = at.map(|at| batch.events.remove(at)) else {
                return Err(format!(
                    "{failure}; no event of the batch is at that position"
                ));
            };
            let reason = error.to_string();
            self.shared
                .dead_letter(&self.name, &[rejected], &reason, attempts)
                .await?;
        }
    }

    /// Tries `batch` as the retry policy says; the last error and the attempts made.
    async fn attempts(
        &self,
        sink: &mut dyn Sink,
        batch: &SinkBatch,
    ) -> Result<Durable, (SinkError, u32)> {
        let mut attempt = 1;
        loop {
            let error = match sink.write_batch(batch).await {
                Ok(durable) => return Ok(durable),
                Err(error) => error,
            };
            let Action::RetryAfter(delay) = self.shared.retry.next(class_of(&error), attempt)
            else {
                return Err((error, attempt));
            };
            if self.stopping.is_cancelled() {
                return Err((error, attempt));
            }
            tracing::warn!(sink = %self.name, attempt, error = %error, ?delay, "sink write failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stopping.cancelled() => return Err((error, attempt)),
            }
            attempt += 1;
        }
    }
}

fn events_of(work: &Work) -> usize {
    work.batch.as_ref().map_or(0, |b| b.events.len())
}

fn same_source(a: &Work, b: &Work) -> bool {
    match (&a.batch, &b.batch) {
        (Some(a), Some(b)) => a.source == b.source,
        _ => false,
    }
}

/// The works' batches as one: their events in order, the last position, the last state.
fn join(works: &mut [Work]) -> Option<SinkBatch> {
    let mut batches = works.iter_mut().filter_map(|w| w.batch.take());
    let mut joined = batches.next()?;
    for batch in batches {
        joined.events.extend(batch.events);
        joined.position = batch.position;
        if batch.state.is_some() {
            joined.state = batch.state;
        }
    }
    Some(joined)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures::StreamExt as _;
    use stream_core::{
        Batch, ChangeEvent, CheckpointStore as _, MemoryCheckpointStore, Namespace, Op, Opened,
        Position, SchemaChange, SchemaChangeKind, Source, SourceError, SourceEvent, SourceKind,
        StartFrom,
    };

    use super::*;
    use crate::Streamer;

    fn at(offset: u64, skip: u64) -> Position {
        Position::binlog("b.000001", offset, skip)
    }

    fn change(db: &str, offset: u64, skip: u64) -> SourceEvent {
        SourceEvent::Change(ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new(db, "t"),
            op: Op::Insert,
            key: None,
            before: None,
            after: None,
            update: None,
            position: at(offset, skip),
            ts_ms: 0,
            txn: None,
        })
    }

    /// Yields its batches, then waits.
    struct Scripted(Vec<Batch>);

    #[async_trait::async_trait]
    impl Source for Scripted {
        fn kind(&self) -> SourceKind {
            SourceKind::MySql
        }
        async fn open(
            &mut self,
            _from: StartFrom,
            _shutdown: CancellationToken,
        ) -> Result<Opened, SourceError> {
            let batches = std::mem::take(&mut self.0);
            Ok(Opened {
                start: at(4, 0),
                batches: futures::stream::iter(batches.into_iter().map(Ok))
                    .chain(futures::stream::pending())
                    .boxed(),
            })
        }
    }

    /// Records the batches it is handed; holds the end of an open transaction.
    struct Holding(Arc<Mutex<Vec<SinkBatch>>>);

    #[async_trait::async_trait]
    impl Sink for Holding {
        fn name(&self) -> &str {
            "holding"
        }
        async fn write(
            &mut self,
            _events: &[Arc<stream_core::ChangeEvent>],
        ) -> Result<(), SinkError> {
            Ok(())
        }
        async fn write_batch(&mut self, batch: &SinkBatch) -> Result<Durable, SinkError> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(batch.clone());
            // A batch ending inside the transaction at 200: its events from there are held.
            Ok(if batch.position == at(200, 1) {
                Durable::Upto(at(100, 1))
            } else {
                Durable::All
            })
        }
    }

    #[tokio::test]
    async fn a_sink_gets_only_its_sources_batches_whole_and_the_checkpoint_stops_where_it_holds() {
        let batches = |db: &'static str| {
            move || -> Box<dyn Source> {
                let ddl = SourceEvent::Schema(SchemaChange {
                    source: SourceKind::MySql,
                    namespace: Namespace::new(db, "t"),
                    kind: SchemaChangeKind::Alter,
                    statement: None,
                    position: at(100, 0),
                    ts_ms: 0,
                });
                Box::new(Scripted(vec![
                    Batch {
                        events: vec![ddl, change(db, 100, 1), change(db, 200, 1)],
                        position: at(200, 1),
                        state: Some(serde_json::json!({"tables": []})),
                    },
                    Batch {
                        events: Vec::new(),
                        position: at(300, 0),
                        state: None,
                    },
                ]))
            }
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::new(MemoryCheckpointStore::new());
        let streamer = Streamer::builder()
            .source("a", batches("shop"))
            .source("b", batches("shop"))
            .sink_from("replica", Holding(seen.clone()), &["a"], ["shop.*"])
            .checkpoints(store.clone())
            .start()
            .await
            .expect("start");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let last = |s: &Mutex<Vec<SinkBatch>>| {
            s.lock()
                .ok()
                .and_then(|s| s.last().map(|b| b.position.clone()))
        };
        while last(&seen) != Some(at(300, 0)) {
            assert!(tokio::time::Instant::now() < deadline, "both batches");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        streamer.stop().await.expect("stop");
        let seen = seen.lock().expect("lock").clone();
        assert!(seen.iter().all(|b| &*b.source == "a"), "{seen:?}");
        let joined: Vec<Position> = seen
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.position().clone()))
            .collect();
        assert_eq!(
            joined,
            [at(100, 0), at(100, 1), at(200, 1)],
            "schema change in place"
        );
        assert!(
            seen[0].state.is_some(),
            "the state comes with the first batch"
        );
        let saved = store.load("a").await.expect("load").expect("saved");
        assert_eq!(saved.position, at(300, 0));
        assert!(
            store.load("b").await.expect("load b").is_some(),
            "b goes on alone"
        );
    }

    /// Blocks its first write until released; records the size of every write.
    struct Slow {
        sizes: Arc<Mutex<Vec<usize>>>,
        started: Arc<tokio::sync::Notify>,
        release: Arc<tokio::sync::Notify>,
    }

    #[async_trait::async_trait]
    impl Sink for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn write(
            &mut self,
            _events: &[Arc<stream_core::ChangeEvent>],
        ) -> Result<(), SinkError> {
            Ok(())
        }
        async fn write_batch(&mut self, batch: &SinkBatch) -> Result<Durable, SinkError> {
            let first = {
                let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
                sizes.push(batch.events.len());
                sizes.len() == 1
            };
            if first {
                self.started.notify_one();
                self.release.notified().await;
            }
            Ok(Durable::All)
        }
    }

    #[tokio::test]
    async fn a_busy_sink_joins_the_many_small_batches_of_a_live_source_into_one_write() {
        const BATCHES: u64 = 40;
        // One one-row transaction per batch, as a live source cuts them.
        let batches: Vec<Batch> = (1..=BATCHES)
            .map(|i| Batch {
                events: vec![change("shop", i * 100, 0)],
                position: at(i * 100 + 50, 0),
                state: None,
            })
            .collect();
        let pulled = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = pulled.clone();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        let started = Arc::new(tokio::sync::Notify::new());
        let gate = started.clone();
        let streamer = Streamer::builder()
            .source("a", move || -> Box<dyn Source> {
                Box::new(Counted(batches.clone(), counter.clone(), gate.clone()))
            })
            .sink(
                "slow",
                Slow {
                    sizes: sizes.clone(),
                    started,
                    release: release.clone(),
                },
                ["shop.*"],
            )
            .start()
            .await
            .expect("start");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pulled.load(std::sync::atomic::Ordering::SeqCst) < BATCHES {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the source stalled after {} batches while the sink wrote the first",
                pulled.load(std::sync::atomic::Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let written =
            |s: &Mutex<Vec<usize>>| s.lock().map(|s| s.iter().sum::<usize>()).unwrap_or(0);
        release.notify_one();
        while written(&sizes) < BATCHES as usize {
            assert!(
                tokio::time::Instant::now() < deadline,
                "every event written"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        streamer.stop().await.expect("stop");
        let sizes = sizes.lock().expect("lock").clone();
        assert_eq!(
            sizes,
            [1, BATCHES as usize - 1],
            "one write for all that queued"
        );
    }

    /// Yields its first batch, the others once the gate opens, counting them, then waits.
    struct Counted(
        Vec<Batch>,
        Arc<std::sync::atomic::AtomicU64>,
        Arc<tokio::sync::Notify>,
    );

    #[async_trait::async_trait]
    impl Source for Counted {
        fn kind(&self) -> SourceKind {
            SourceKind::MySql
        }
        async fn open(
            &mut self,
            _from: StartFrom,
            _shutdown: CancellationToken,
        ) -> Result<Opened, SourceError> {
            let mut rest = std::mem::take(&mut self.0);
            let first = rest.remove(0);
            let (counter, gate) = (self.1.clone(), self.2.clone());
            let opened = futures::stream::once(async move { gate.notified().await })
                .filter_map(|()| async { None });
            Ok(Opened {
                start: at(4, 0),
                batches: futures::stream::iter([first])
                    .chain(opened)
                    .chain(futures::stream::iter(rest))
                    .map(Ok)
                    .inspect(move |_| {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    })
                    .chain(futures::stream::pending())
                    .boxed(),
            })
        }
    }
}
