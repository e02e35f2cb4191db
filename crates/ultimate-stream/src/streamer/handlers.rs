//! Callbacks (`on`, `on_batch`): each runs in its own task with a bounded queue, retries
//! failures by the retry policy, sends what it finally rejects to the dead-letter queue, and
//! acknowledges every batch it was given, in order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use stream_core::{BatchConfig, ChangeEvent, ErrorClass, NamespacePattern};
use stream_edge::{Action, DeadLetter, DeadLetterQueue, RetryPolicy};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::Metrics;

/// Work items a callback may have queued before the source waits for it.
const QUEUE: usize = 64;

/// A callback's failure: retried when transient, sent to the dead-letter queue at once when
/// definite. Any error converts into a transient one with `?`.
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

pub(crate) struct Work {
    events: Vec<Arc<ChangeEvent>>,
    done: oneshot::Sender<()>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
type EachFn = Arc<dyn Fn(Arc<ChangeEvent>) -> BoxFuture + Send + Sync>;
type BatchFn = Arc<dyn Fn(Vec<Arc<ChangeEvent>>) -> BoxFuture + Send + Sync>;

struct Slot {
    id: u64,
    pattern: NamespacePattern,
    tx: mpsc::Sender<Work>,
}

/// The registered callbacks.
pub(crate) struct Handlers {
    slots: std::sync::RwLock<Arc<Vec<Arc<Slot>>>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

struct Shared {
    retry: RetryPolicy,
    dead_letters: Arc<dyn DeadLetterQueue>,
    metrics: Arc<Metrics>,
}

impl Handlers {
    pub(crate) fn new(
        retry: RetryPolicy,
        dead_letters: Arc<dyn DeadLetterQueue>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            slots: std::sync::RwLock::new(Arc::new(Vec::new())),
            tasks: std::sync::Mutex::new(Vec::new()),
            shared: Arc::new(Shared {
                retry,
                dead_letters,
                metrics,
            }),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Slot>>> {
        match self.slots.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Arc<Slot>>)) {
        let mut guard = match self.slots.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }

    fn add(
        &self,
        id: u64,
        pattern: NamespacePattern,
        task: impl FnOnce(mpsc::Receiver<Work>) -> JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = task(rx);
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
        drop(tasks);
        self.update(|slots| slots.push(Arc::new(Slot { id, pattern, tx })));
    }

    pub(crate) fn add_each<F, Fut>(&self, id: u64, pattern: NamespacePattern, callback: F)
    where
        F: Fn(Arc<ChangeEvent>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let callback: EachFn = Arc::new(move |e| Box::pin(callback(e)));
        let shared = self.shared.clone();
        let name = format!("on#{id}:{pattern}");
        self.add(id, pattern, move |rx| {
            tokio::spawn(run_each(shared, name, callback, rx))
        });
    }

    pub(crate) fn add_batch<F, Fut>(
        &self,
        id: u64,
        pattern: NamespacePattern,
        config: BatchConfig,
        callback: F,
    ) where
        F: Fn(Vec<Arc<ChangeEvent>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let callback: BatchFn = Arc::new(move |e| Box::pin(callback(e)));
        let shared = self.shared.clone();
        let name = format!("on_batch#{id}:{pattern}");
        self.add(id, pattern, move |rx| {
            tokio::spawn(run_batch(shared, name, config, callback, rx))
        });
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut found = false;
        self.update(|slots| {
            let before = slots.len();
            slots.retain(|s| s.id != id);
            found = slots.len() != before;
        });
        found
    }

    /// Hands the matching events to each callback; the receivers resolve once each has
    /// acknowledged them. Waits while a callback's queue is full (backpressure).
    pub(crate) async fn dispatch(&self, events: &[Arc<ChangeEvent>]) -> Vec<oneshot::Receiver<()>> {
        let mut acks = Vec::new();
        for slot in self.snapshot().iter() {
            let mine: Vec<Arc<ChangeEvent>> = events
                .iter()
                .filter(|e| slot.pattern.matches(&e.namespace))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            let (done, ack) = oneshot::channel();
            if slot.tx.send(Work { events: mine, done }).await.is_ok() {
                acks.push(ack);
            }
        }
        acks
    }

    /// Stops taking work and waits until every callback has finished what it was given.
    pub(crate) async fn close(&self) {
        self.update(Vec::clear);
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Runs a callback to its end, turning a panic into a definite error.
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

/// Calls `attempt` until it succeeds or the retry policy gives up; `Err((reason, attempts))`
/// when the events must go to the dead-letter queue.
async fn with_retries<F>(retry: &RetryPolicy, mut attempt: F) -> Result<(), (String, u32)>
where
    F: FnMut() -> BoxFuture,
{
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let Err(e) = guarded(attempt()).await else {
            return Ok(());
        };
        match retry.next(e.class, attempts) {
            Action::RetryAfter(delay) => {
                tokio::time::sleep(delay.min(Duration::from_secs(60))).await
            }
            Action::Skip => return Ok(()),
            _ => return Err((e.message, attempts)),
        }
    }
}

async fn dead_letter(
    shared: &Shared,
    subscriber: &str,
    event: &ChangeEvent,
    reason: &str,
    attempts: u32,
) {
    shared.metrics.dead_lettered();
    let letter = DeadLetter::new(subscriber, reason, attempts, event);
    if let Err(e) = shared.dead_letters.put(letter).await {
        tracing::error!(subscriber, error = %e, position = %event.position, "dead-letter queue refused an event");
    } else {
        tracing::warn!(subscriber, reason, position = %event.position, "event sent to the dead-letter queue");
    }
}

async fn run_each(
    shared: Arc<Shared>,
    name: String,
    callback: EachFn,
    mut rx: mpsc::Receiver<Work>,
) {
    while let Some(work) = rx.recv().await {
        for event in &work.events {
            let outcome = with_retries(&shared.retry, || callback(event.clone())).await;
            match outcome {
                Ok(()) => shared.metrics.delivered(event),
                Err((reason, attempts)) => {
                    dead_letter(&shared, &name, event, &reason, attempts).await
                }
            }
        }
        let _ = work.done.send(());
    }
}

async fn run_batch(
    shared: Arc<Shared>,
    name: String,
    config: BatchConfig,
    callback: BatchFn,
    mut rx: mpsc::Receiver<Work>,
) {
    let max = config.max_items.max(1);
    let mut events: Vec<Arc<ChangeEvent>> = Vec::new();
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut open = true;
    while open || !events.is_empty() {
        let flush_now = tokio::select! {
            work = rx.recv(), if open => match work {
                Some(work) => {
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + config.max_wait);
                    events.extend(work.events);
                    acks.push(work.done);
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
        for chunk in events.chunks(max) {
            let chunk = chunk.to_vec();
            match with_retries(&shared.retry, || callback(chunk.clone())).await {
                Ok(()) => chunk.iter().for_each(|e| shared.metrics.delivered(e)),
                Err((reason, attempts)) => {
                    for event in &chunk {
                        dead_letter(&shared, &name, event, &reason, attempts).await;
                    }
                }
            }
        }
        events.clear();
        deadline = None;
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
