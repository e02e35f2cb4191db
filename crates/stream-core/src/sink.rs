//! The `Sink` trait and a JSON-lines sink.

use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::event::ChangeEvent;
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

    /// Checks that the destination is reachable; called before the pipeline starts.
    async fn health_check(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flushes and releases resources; called once at shutdown.
    async fn shutdown(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

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
            buf: Vec::with_capacity(64 * 1024),
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
        self.buf.clear();
        for ev in events {
            ev.write_json(&mut self.buf);
            self.buf.push(b'\n');
        }
        let io = |e: std::io::Error| SinkError::Write {
            sink: self.name.clone(),
            reason: e.to_string(),
            class: ErrorClass::Transient,
        };
        self.out.write_all(&self.buf).await.map_err(io)?;
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
