//! Saves each batch's position once every consumer acknowledged it, in order. A refusal, a
//! consumer that ended without answering, or a checkpoint that cannot be saved (after the
//! retry policy's attempts) stops the source: nothing after that batch is checkpointed, so a
//! restart delivers it again.

use std::sync::Arc;
use std::time::Instant;

use stream_core::{
    CancellationToken, Checkpoint, CheckpointError, CheckpointStore, ErrorClass, Position,
};
use stream_edge::{RetryPolicy, retry};
use tokio::sync::mpsc;

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

impl Checkpointer {
    /// The last saved state travels with later positions until it changes.
    pub(crate) async fn run(self, mut pending: mpsc::Receiver<Pending>) {
        let mut state: Option<serde_json::Value> = None;
        while let Some(batch) = pending.recv().await {
            for ack in batch.acks {
                if let Err(refused) = ack.wait().await {
                    return self.stop(format!(
                        "{refused}; the checkpoint stays before them and a restart delivers them again"
                    ));
                }
            }
            self.inner
                .metrics
                .acknowledged(batch.events, batch.read_at.elapsed());
            if batch.state.is_some() {
                state = batch.state;
            }
            let Some(store) = &self.store else { continue };
            let checkpoint = Checkpoint {
                position: batch.position,
                state: state.clone(),
            };
            let saved = retry(&self.retry, class_of, || {
                store.save(&self.name, &checkpoint)
            })
            .await;
            if let Err(gave_up) = saved {
                let s = if gave_up.attempts == 1 { "" } else { "s" };
                return self.stop(format!(
                    "checkpoint at {} not saved after {} attempt{s}: {}; a restart delivers what followed the last saved one again",
                    checkpoint.position, gave_up.attempts, gave_up.error
                ));
            }
        }
    }

    fn stop(&self, reason: String) {
        tracing::error!(source = %self.name, reason, "source stopped");
        self.inner.source_failed(&self.name, reason);
        self.stop_source.cancel();
    }
}
