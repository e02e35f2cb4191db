//! Saves each batch's position once every consumer acknowledged it, in order. A refusal, a
//! consumer that ended without answering, or a checkpoint that cannot be saved (after the
//! retry policy's attempts) stops the source: nothing after that batch is checkpointed, so a
//! restart delivers it again.
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

/// A batch some of whose consumers have answered: the durable position so far (`None`: one
/// holds it all) and the answers still to come.
struct Answering {
    batch: Pending,
    durable: Option<Position>,
}

/// What became of a batch's answers.
enum Settled {
    /// All in: the position every consumer made durable, if any.
    Done(Option<Position>),
    /// Some still out (only when not waiting for them).
    Waiting(Box<Answering>),
    /// A consumer refused: the source is stopped.
    Stopped,
}

impl Checkpointer {
    /// The last saved state travels with later positions until it changes. Batches whose
    /// consumers have all answered by the time a save starts are saved together, once, at the
    /// newest durable position: a slow store (a file's fsyncs, a remote database) then costs
    /// fewer saves instead of holding the pipeline and widening what a crash repeats.
    pub(crate) async fn run(self, mut pending: mpsc::Receiver<Pending>) {
        let mut state: Option<serde_json::Value> = None;
        let mut saved: Option<Position> = None;
        let mut carried: Option<Answering> = None;
        loop {
            let first = match carried.take() {
                Some(answering) => answering,
                None => match pending.recv().await {
                    Some(batch) => Answering {
                        durable: Some(batch.position.clone()),
                        batch,
                    },
                    None => return,
                },
            };
            let mut newest = match self.settle(first, &mut state, true).await {
                Settled::Done(durable) => durable,
                Settled::Waiting(_) | Settled::Stopped => return,
            }
            .map(|position| Checkpoint {
                position,
                state: state.clone(),
            });
            while let Ok(batch) = pending.try_recv() {
                let answering = Answering {
                    durable: Some(batch.position.clone()),
                    batch,
                };
                match self.settle(answering, &mut state, false).await {
                    Settled::Done(Some(position)) => {
                        newest = Some(Checkpoint {
                            position,
                            state: state.clone(),
                        });
                    }
                    Settled::Done(None) => {}
                    Settled::Waiting(answering) => {
                        carried = Some(*answering);
                        break;
                    }
                    Settled::Stopped => return,
                }
            }
            let Some(store) = &self.store else { continue };
            let Some(checkpoint) = newest else { continue };
            if saved
                .as_ref()
                .and_then(|s| checkpoint.position.compare(s))
                .is_some_and(Ordering::is_le)
            {
                continue;
            }
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
    }

    /// Takes the answers of a batch's consumers, in order (waiting for them, or only those
    /// already in); once all are in, counts the batch and takes up its state.
    async fn settle(
        &self,
        mut answering: Answering,
        state: &mut Option<serde_json::Value>,
        wait: bool,
    ) -> Settled {
        while !answering.batch.acks.is_empty() {
            let ack = answering.batch.acks.remove(0);
            let answer = if wait {
                ack.wait().await
            } else {
                match ack.try_wait() {
                    Ok(answer) => answer,
                    Err(ack) => {
                        answering.batch.acks.insert(0, ack);
                        return Settled::Waiting(Box::new(answering));
                    }
                }
            };
            match answer {
                Ok(said) => answering.durable = answering.durable.and_then(|at| earliest(at, said)),
                Err(refused) => {
                    self.stop(format!(
                        "{refused}; the checkpoint stays before them and a restart delivers them again"
                    ));
                    return Settled::Stopped;
                }
            }
        }
        let batch = answering.batch;
        self.inner
            .metrics
            .acknowledged(batch.events, batch.read_at.elapsed());
        // A definition change ends a source transaction, so what a sink holds comes after the
        // last one: the state at the batch's end is the state at its durable position.
        if batch.state.is_some() {
            *state = batch.state;
        }
        Settled::Done(answering.durable)
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
}
