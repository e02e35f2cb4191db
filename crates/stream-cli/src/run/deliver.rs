//! The sink `ustream run` hands the streamer: a [`PostgresSink`] with the file's dead-letter
//! file, counters for `/stats`, and the snapshot's progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stream_core::{
    ChangeEvent, Durable, ErrorClass, MongoPosition, Position, Sink, SinkBatch, SinkError, TxnStart,
};
use stream_edge::{DeadLetter, DeadLetterQueue, FileDeadLetterQueue};
use stream_postgres::PostgresSink;

use super::progress::Progress;

/// What one sink did, for `/stats`.
#[derive(Debug, Default)]
pub(crate) struct SinkStats {
    /// Row changes written (in committed transactions, or held for one).
    pub(crate) changes: AtomicU64,
    /// Calls that wrote something or moved the position.
    pub(crate) batches: AtomicU64,
    /// Changes the target refused, now in the dead-letter file.
    pub(crate) dead_lettered: AtomicU64,
}

impl SinkStats {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "changes": self.changes.load(Ordering::Relaxed),
            "batches": self.batches.load(Ordering::Relaxed),
            "dead_lettered": self.dead_lettered.load(Ordering::Relaxed),
        })
    }
}

/// A PostgreSQL sink as `ustream run` drives it.
pub(crate) struct RunSink {
    inner: PostgresSink,
    dead_letters: Option<FileDeadLetterQueue>,
    stats: Arc<SinkStats>,
    /// Set on one sink per source: it reports the snapshot's progress.
    progress: Option<Arc<Progress>>,
}

impl RunSink {
    pub(crate) fn new(
        inner: PostgresSink,
        dead_letters: Option<FileDeadLetterQueue>,
        stats: Arc<SinkStats>,
    ) -> Self {
        Self {
            inner,
            dead_letters,
            stats,
            progress: None,
        }
    }

    /// This sink reports the snapshot's progress of its source.
    pub(crate) fn report_progress(&mut self, progress: Arc<Progress>) {
        self.progress = Some(progress);
    }

    /// Puts the changes the target refused in the dead-letter file. They are committed
    /// without them already, so a file that cannot be written stops the pipeline with every
    /// refused position named.
    async fn set_aside_rejected(&mut self) -> Result<(), SinkError> {
        let rejected = self.inner.take_rejected();
        if rejected.is_empty() {
            return Ok(());
        }
        let name = self.inner.name().to_owned();
        let Some(queue) = &self.dead_letters else {
            // `on_error: stop` refuses instead of handing changes back.
            return Ok(());
        };
        for (i, rejection) in rejected.iter().enumerate() {
            let letter = DeadLetter::new(&name, &rejection.reason, 1, &rejection.event);
            if let Err(e) = queue.put(letter).await {
                let lost: Vec<String> = rejected[i..]
                    .iter()
                    .map(|r| r.event.position.to_string())
                    .collect();
                return Err(SinkError::Write {
                    sink: name,
                    reason: format!(
                        "the dead-letter file {} refused the changes refused by PostgreSQL at {}: {e}",
                        queue.path().display(),
                        lost.join(", ")
                    ),
                    class: ErrorClass::Definite,
                });
            }
            self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            // The streamer's own counter (its recorder's `/metrics`) sees only what its
            // retry policy dead-letters, not what this sink sets aside itself.
            metrics::counter!("ustream_dead_letters_total").increment(1);
            tracing::warn!(sink = %name, table = %rejection.table, position = %rejection.event.position,
                reason = %rejection.reason, "change refused by PostgreSQL; in the dead-letter file");
        }
        Ok(())
    }

    fn count(&self, batch: &SinkBatch) {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let changes = batch.changes().count() as u64;
        self.stats.changes.fetch_add(changes, Ordering::Relaxed);
        let Some(progress) = &self.progress else {
            return;
        };
        let mut table: Option<(&ChangeEvent, u64)> = None;
        for change in batch.changes().filter(|c| in_snapshot(&c.position)) {
            match &mut table {
                Some((first, n)) if first.namespace == change.namespace => *n += 1,
                _ => {
                    if let Some((first, n)) = table {
                        progress.copied(&batch.source, &first.namespace.to_string(), n);
                    }
                    table = Some((change, 1));
                }
            }
        }
        if let Some((first, n)) = table {
            progress.copied(&batch.source, &first.namespace.to_string(), n);
        }
        if !in_snapshot(&batch.position) {
            progress.streaming(&batch.source);
        }
    }
}

/// Whether a position is inside an initial snapshot.
fn in_snapshot(position: &Position) -> bool {
    match position {
        Position::MySql(p) => matches!(p.start, TxnStart::Snapshot(_)),
        Position::MongoDb(p) => matches!(p, MongoPosition::Snapshot(_)),
        _ => false,
    }
}

#[async_trait::async_trait]
impl Sink for RunSink {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn write(&mut self, events: &[Arc<ChangeEvent>]) -> Result<(), SinkError> {
        self.inner.write(events).await?;
        self.set_aside_rejected().await
    }

    async fn write_batch(&mut self, batch: &SinkBatch) -> Result<Durable, SinkError> {
        let durable = self.inner.write_batch(batch).await?;
        self.set_aside_rejected().await?;
        self.count(batch);
        Ok(durable)
    }

    async fn health_check(&mut self) -> Result<(), SinkError> {
        self.inner.health_check().await
    }

    async fn shutdown(&mut self) -> Result<(), SinkError> {
        self.inner.shutdown().await
    }
}
