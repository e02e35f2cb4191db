//! The `Sink` trait, the source batches a sink can be handed ([`SinkBatch`]), and a JSON-lines
//! sink.

use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::event::{ChangeEvent, SchemaChange};
use crate::position::Position;
use crate::source::ErrorClass;

/// What can go wrong while writing to a sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing failed; `class` says whether retrying may help.
    #[error("sink `{sink}` failed: {reason}")]
    Write {
        /// The sink's name.
        sink: String,
        /// What happened.
        reason: String,
        /// Whether retrying may help.
        class: ErrorClass,
    },
    /// The sink refused an event for good (bad data); it belongs in a dead-letter queue.
    #[error("sink `{sink}` rejected the event at {position}: {reason}")]
    Rejected {
        /// The sink's name.
        sink: String,
        /// The event's position.
        position: String,
        /// Why.
        reason: String,
    },
}

/// One event of a [`SinkBatch`]: a row change or a change of a table's definition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SinkEvent {
    /// A row or document change.
    Change(Arc<ChangeEvent>),
    /// A definition change (DDL), in its place between the row changes.
    Schema(Arc<SchemaChange>),
}

impl SinkEvent {
    /// The position after this event.
    pub fn position(&self) -> &Position {
        match self {
            SinkEvent::Change(c) => &c.position,
            SinkEvent::Schema(s) => &s.position,
        }
    }
}

/// Consecutive events of one source as a pipeline read them: what a sink needs to commit
/// whole source transactions and to store the source's position with its data.
///
/// ```
/// use std::sync::Arc;
/// use stream_core::{Position, SinkBatch};
///
/// let at: Position = "binlog:mysql-bin.000001:4+0".parse()?;
/// let batch = SinkBatch::new("shop", Vec::new(), at.clone());
/// assert_eq!((batch.source.as_ref(), batch.changes().count()), ("shop", 0));
/// assert_eq!(batch.position, at);
/// # Ok::<(), stream_core::PositionParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SinkBatch {
    /// The source's name: the pipeline whose position this batch moves.
    pub source: Arc<str>,
    /// The events of the namespaces the sink asked for, in commit order; possibly none (the
    /// position still moves).
    pub events: Vec<SinkEvent>,
    /// Where the source resumes once everything of the batch is durable. Like
    /// [`crate::Batch::position`], it may sit inside a source transaction (a MySQL position
    /// with `skip` > 0): the events of that transaction after the last commit are then only
    /// part of it.
    pub position: Position,
    /// The source's state as of `position` (a binlog reader's table definitions), when it
    /// changed with this batch or the pipeline (re)started; `None`: unchanged.
    pub state: Option<Arc<serde_json::Value>>,
}

impl SinkBatch {
    /// A batch of `events` of `source`, ending at `position`, without state.
    pub fn new(source: impl Into<Arc<str>>, events: Vec<SinkEvent>, position: Position) -> Self {
        Self {
            source: source.into(),
            events,
            position,
            state: None,
        }
    }

    /// The same batch with the source's state.
    pub fn with_state(mut self, state: Option<Arc<serde_json::Value>>) -> Self {
        self.state = state;
        self
    }

    /// The row changes, in order.
    pub fn changes(&self) -> impl Iterator<Item = &Arc<ChangeEvent>> {
        self.events.iter().filter_map(|e| match e {
            SinkEvent::Change(c) => Some(c),
            SinkEvent::Schema(_) => None,
        })
    }
}

/// How much of a [`SinkBatch`] a sink made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durable {
    /// Everything, up to the batch's position.
    All,
    /// Up to this position; the events after it (a source transaction still open at the
    /// batch's end) are held and written with a later batch.
    Upto(Position),
    /// Nothing new: every event of the batch is held.
    Held,
}

/// A destination for change events.
///
/// # Contract: at-least-once
/// - `write` returns `Ok` only once every event of the slice is durable in the destination.
///   Only then is the source's checkpoint moved past them.
/// - After a crash the same events may be written again (everything after the last
///   checkpoint is replayed), so a sink must tolerate duplicates: upsert by key, or
///   deduplicate by event position. A sink that stores the position in the same transaction
///   as the data gets effectively exactly-once.
/// - Events arrive in commit order; a sink must not reorder events of one key.
/// - An `Err` stops the pipeline at that batch (nothing after it is checkpointed), unless the
///   error is [`SinkError::Rejected`], which a dead-letter policy may divert.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// Writes the events durably, in order.
    async fn write(&mut self, events: &[Arc<ChangeEvent>]) -> Result<(), SinkError>;

    /// Writes a source batch: its row changes, definition changes, position and the source's
    /// state, and says how much of it is durable. A pipeline that knows batch boundaries
    /// calls this instead of [`Sink::write`], so a sink can commit whole source transactions
    /// only and store the position in the same transaction as the data (exactly-once in
    /// effect). The source checkpoints no further than what every sink made durable.
    ///
    /// On `Err` nothing of the batch may count as written: the caller retries the same
    /// batch. The default writes the row changes with [`Sink::write`] (definition changes are
    /// ignored) and answers [`Durable::All`].
    async fn write_batch(&mut self, batch: &SinkBatch) -> Result<Durable, SinkError> {
        let changes: Vec<Arc<ChangeEvent>> = batch.changes().cloned().collect();
        if !changes.is_empty() {
            self.write(&changes).await?;
        }
        Ok(Durable::All)
    }

    /// Checks that the destination is reachable; called before the pipeline starts.
    async fn health_check(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flushes and releases resources; called once at shutdown.
    async fn shutdown(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The write buffer of a [`JsonLinesSink`] as it starts.
const BUF_INITIAL: usize = 64 * 1024;

/// A write buffer grown past this is let go after the batch.
const BUF_KEPT: usize = 4 * 1024 * 1024;

/// Writes one contract JSON object per line to any async writer (stdout, a file, a socket).
#[derive(Debug)]
pub struct JsonLinesSink<W> {
    name: String,
    out: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send> JsonLinesSink<W> {
    /// A sink writing to `out`.
    pub fn new(name: impl Into<String>, out: W) -> Self {
        Self {
            name: name.into(),
            out,
            buf: Vec::with_capacity(BUF_INITIAL),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Unpin + Send> Sink for JsonLinesSink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&mut self, events: &[Arc<ChangeEvent>]) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError::Write {
            sink: self.name.clone(),
            reason: e.to_string(),
            class: ErrorClass::Transient,
        };
        // Large values go out in slices: a 64 MB cell never sits whole in the buffer.
        crate::json_stream::write_lines(&mut self.out, &mut self.buf, events)
            .await
            .map_err(io)?;
        if self.buf.capacity() > BUF_KEPT {
            // One batch of many rows grew it: give the memory back.
            self.buf = Vec::with_capacity(BUF_INITIAL);
        }
        self.out.flush().await.map_err(io)
    }

    async fn shutdown(&mut self) -> Result<(), SinkError> {
        self.out.flush().await.map_err(|e| SinkError::Write {
            sink: self.name.clone(),
            reason: e.to_string(),
            class: ErrorClass::Transient,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Namespace, Op, SchemaChangeKind, SourceKind};

    #[tokio::test]
    async fn write_batch_writes_the_row_changes_by_default_and_says_all_is_durable() {
        let at: Position = "binlog:b.000001:4+1".parse().expect("position");
        let change = ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "t"),
            op: Op::Insert,
            key: None,
            before: None,
            after: None,
            update: None,
            position: at.clone(),
            ts_ms: 0,
            txn: None,
        };
        let schema = SchemaChange {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "t"),
            kind: SchemaChangeKind::Truncate,
            statement: None,
            position: at.clone(),
            ts_ms: 0,
        };
        let batch = SinkBatch::new(
            "shop",
            vec![
                SinkEvent::Schema(Arc::new(schema)),
                SinkEvent::Change(Arc::new(change)),
            ],
            at,
        );
        let mut sink = JsonLinesSink::new("lines", Vec::new());
        assert_eq!(sink.write_batch(&batch).await.expect("write"), Durable::All);
        let empty = SinkBatch::new("shop", Vec::new(), batch.position.clone());
        assert_eq!(sink.write_batch(&empty).await.expect("write"), Durable::All);
        let out = String::from_utf8(sink.into_inner()).expect("utf8");
        assert_eq!(out.lines().count(), 1, "only the row change: {out}");
    }
}
