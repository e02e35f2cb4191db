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
pub(crate) const MAX_BATCH: usize = 16 * 1024;

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
