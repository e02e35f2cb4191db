//! Callbacks (`on`, `on_batch`): each runs in its own task, retries failures by the retry
//! policy (stream-edge's [`retry`]), sends what the policy gives up on to the dead-letter
//! queue, and answers every piece of work in order. When an event can be neither delivered
//! nor dead-lettered (the queue refuses it, or the policy says `fail`), the work is refused
//! and the source stops before it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt as _;
use stream_core::{BatchConfig, ChangeEvent, ErrorClass, NamespacePattern};
use stream_edge::{Action, Exhausted, retry};
use tokio::sync::mpsc;

use super::consumers::{Shared, Work};

/// A callback's failure: retried when transient, sent to the dead-letter queue at once when
/// definite (as the default retry policy says). Any error converts into a transient one
/// with `?`.
#[derive(Debug)]
pub struct HandlerError {
    class: ErrorClass,
    message: String,
}

impl HandlerError {
    /// Worth retrying (a timeout, a busy downstream).
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.to_string(),
        }
    }

    /// Will fail again (the event is invalid for this callback): dead-lettered at once.
    pub fn definite(message: impl std::fmt::Display) -> Self {
        Self {
            class: ErrorClass::Definite,
            message: message.to_string(),
        }
    }

    fn class(&self) -> ErrorClass {
        self.class
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(e: E) -> Self {
        Self::transient(e)
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
type EachFn = Arc<dyn Fn(Arc<ChangeEvent>) -> BoxFuture + Send + Sync>;
type BatchFn = Arc<dyn Fn(Vec<Arc<ChangeEvent>>) -> BoxFuture + Send + Sync>;

/// A callback as registered, before its task runs.
pub(crate) enum Callback {
    Each(EachFn),
    Batch(BatchConfig, BatchFn),
}

impl Callback {
    fn kind(&self) -> &'static str {
        match self {
            Callback::Each(_) => "on",
            Callback::Batch(..) => "on_batch",
        }
    }

    /// The name it goes by in logs, dead letters and refusals: `on#3:shop.users`.
    pub(crate) fn name(&self, id: u64, pattern: &NamespacePattern) -> Arc<str> {
        format!("{}#{id}:{pattern}", self.kind()).into()
    }

    /// Starts its task on the receiving end of its queue.
    pub(crate) fn spawn(
        self,
        shared: Arc<Shared>,
        name: Arc<str>,
        rx: mpsc::Receiver<Work>,
    ) -> tokio::task::JoinHandle<()> {
        match self {
            Callback::Each(callback) => tokio::spawn(run_each(shared, name, callback, rx)),
            Callback::Batch(config, callback) => {
                tokio::spawn(run_batch(shared, name, config, callback, rx))
            }
        }
    }
}

pub(crate) fn each_fn<F, Fut>(callback: F) -> EachFn
where
    F: Fn(Arc<ChangeEvent>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(move |event| Box::pin(callback(event)))
}

pub(crate) fn batch_fn<F, Fut>(callback: F) -> BatchFn
where
    F: Fn(Vec<Arc<ChangeEvent>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(move |events| Box::pin(callback(events)))
}

/// Runs a callback to its end, turning a panic into a definite error (a panic is a bug in
/// the callback: retrying would panic again).
async fn guarded(fut: BoxFuture) -> Result<(), HandlerError> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(HandlerError::definite(format!("panicked: {what}")))
        }
    }
}

/// What happens to `events` after the retry policy's last word: delivered, skipped or
/// dead-lettered (`Ok`: acknowledge), or neither (`Err`: refuse, the source stops).
async fn settle(
    shared: &Shared,
    consumer: &str,
    events: &[Arc<ChangeEvent>],
    outcome: Result<(), Exhausted<HandlerError>>,
) -> Result<(), String> {
    let gave_up = match outcome {
        Ok(()) => {
            shared.metrics.delivered(events.len());
            return Ok(());
        }
        Err(gave_up) => gave_up,
    };
    match gave_up.action {
        Action::Skip => {
            tracing::warn!(consumer, error = %gave_up, "events skipped, as the retry policy says");
            Ok(())
        }
        Action::DeadLetter => {
            let reason = gave_up.error.to_string();
            shared
                .dead_letter(consumer, events, &reason, gave_up.attempts)
                .await
        }
        Action::Fail | Action::RetryAfter(_) => Err(gave_up.to_string()),
    }
}

async fn run_each(
    shared: Arc<Shared>,
    name: Arc<str>,
    callback: EachFn,
    mut rx: mpsc::Receiver<Work>,
) {
    while let Some(work) = rx.recv().await {
        let mut outcome = Ok(());
        for event in &work.events {
            let attempts = retry(&shared.retry, HandlerError::class, || {
                guarded(callback(event.clone()))
            })
            .await;
            outcome = settle(&shared, &name, std::slice::from_ref(event), attempts).await;
            if outcome.is_err() {
                break;
            }
        }
        work.answer(outcome);
    }
}

async fn run_batch(
    shared: Arc<Shared>,
    name: Arc<str>,
    config: BatchConfig,
    callback: BatchFn,
    mut rx: mpsc::Receiver<Work>,
) {
    let max = config.max_items.max(1);
    let mut events: Vec<Arc<ChangeEvent>> = Vec::new();
    let mut works: Vec<Work> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut open = true;
    while open || !works.is_empty() {
        let flush_now = tokio::select! {
            work = rx.recv(), if open => match work {
                Some(mut work) => {
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + config.max_wait);
                    events.append(&mut work.events);
                    works.push(work);
                    events.len() >= max
                }
                None => {
                    open = false;
                    true
                }
            },
            () = sleep_until(deadline) => true,
        };
        if !flush_now {
            continue;
        }
        let mut outcome = Ok(());
        for chunk in events.chunks(max) {
            let attempts = retry(&shared.retry, HandlerError::class, || {
                guarded(callback(chunk.to_vec()))
            })
            .await;
            outcome = settle(&shared, &name, chunk, attempts).await;
            if outcome.is_err() {
                break;
            }
        }
        events.clear();
        deadline = None;
        for work in works.drain(..) {
            work.answer(outcome.clone());
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
