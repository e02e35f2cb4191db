//! Sinks ([`stream_core::Sink`]) driven by the streamer: each in its own task, fed the events
//! of its patterns in commit order, written in batches (whatever queued up while the previous
//! write ran, up to [`MAX_BATCH`] events). A write is acknowledged only once the sink returned
//! `Ok`; then, and only then, may the sources checkpoint past it.
//!
//! Errors: a [`SinkError::Write`] is retried as the retry policy says for its class; when the
//! policy gives up, the sink is broken: the work is refused and every source feeding it stops
//! (a restart resumes from the last checkpoint). A [`SinkError::Rejected`] event goes to the
//! dead-letter queue when the application configured one (and the rest of the batch is
//! written again); without one, it stops the sources too.

use std::sync::Arc;

use stream_core::{ChangeEvent, ErrorClass, NamespacePattern, Sink, SinkError};
use stream_edge::retry;
use tokio::sync::{Mutex, mpsc};

use super::consumers::{Shared, Work};

/// The most events one `write` call gets when work has queued up (a single source batch may
/// be larger: it is never split).
pub(crate) const MAX_BATCH: usize = 1024;

/// A sink as the builder was given it.
pub(crate) struct SinkSpec {
    pub(crate) name: String,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) patterns: Vec<NamespacePattern>,
}

fn class_of(error: &SinkError) -> ErrorClass {
    match error {
        SinkError::Write { class, .. } => *class,
        _ => ErrorClass::Definite,
    }
}

pub(crate) async fn run_sink(
    shared: Arc<Shared>,
    name: Arc<str>,
    sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<Work>,
) {
    // Owned by this task alone; the lock only lets each retried attempt hold it.
    let sink = Arc::new(Mutex::new(sink));
    let mut broken: Option<String> = None;
    while let Some(first) = rx.recv().await {
        let mut queued = first.events.len();
        let mut works = vec![first];
        while queued < MAX_BATCH {
            match rx.try_recv() {
                Ok(work) => {
                    queued += work.events.len();
                    works.push(work);
                }
                Err(_) => break,
            }
        }
        let outcome = match &broken {
            Some(reason) => Err(format!("it failed earlier: {reason}")),
            None => {
                let events = works
                    .iter()
                    .flat_map(|w| w.events.iter().cloned())
                    .collect();
                write(&shared, &name, &sink, events).await
            }
        };
        if let (Err(reason), None) = (&outcome, &broken) {
            tracing::error!(sink = %name, error = %reason, "sink failed; the sources feeding it stop");
            broken = Some(reason.clone());
        }
        for work in works {
            work.answer(outcome.clone());
        }
    }
    if let Err(e) = sink.lock().await.shutdown().await {
        tracing::error!(sink = %name, error = %e, "sink did not shut down cleanly");
    }
}

/// Writes `events` until the sink took them all (rejected ones dead-lettered), or says why not.
async fn write(
    shared: &Shared,
    name: &str,
    sink: &Arc<Mutex<Box<dyn Sink>>>,
    mut events: Vec<Arc<ChangeEvent>>,
) -> Result<(), String> {
    loop {
        let batch: Arc<[Arc<ChangeEvent>]> = events.iter().cloned().collect();
        let attempts = retry(&shared.retry, class_of, || {
            let (sink, batch) = (sink.clone(), batch.clone());
            async move { sink.lock().await.write(&batch).await }
        })
        .await;
        let gave_up = match attempts {
            Ok(()) => {
                shared.metrics.delivered(events.len());
                return Ok(());
            }
            Err(gave_up) => gave_up,
        };
        let s = if gave_up.attempts == 1 { "" } else { "s" };
        let failure = format!("{} (after {} attempt{s})", gave_up.error, gave_up.attempts);
        let SinkError::Rejected { position, .. } = &gave_up.error else {
            return Err(failure);
        };
        if !shared.dead_letters_chosen {
            return Err(format!(
                "{failure}; configure a dead-letter queue to set rejected events aside"
            ));
        }
        let Some(at) = events
            .iter()
            .position(|e| e.position.to_string() == *position)
        else {
            return Err(format!(
                "{failure}; no event of the batch is at that position"
            ));
        };
        let rejected = events.remove(at);
        let reason = gave_up.error.to_string();
        shared
            .dead_letter(name, &[rejected], &reason, gave_up.attempts)
            .await?;
        if events.is_empty() {
            return Ok(());
        }
    }
}
