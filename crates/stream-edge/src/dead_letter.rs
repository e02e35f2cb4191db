//! Dead letters: events a subscriber or sink rejected, kept with the reason, and replayed on
//! demand.
//!
//! A [`DeadLetter`] holds the event in the contract JSON of `docs/event-json.md`. Queues:
//!
//! | queue | where | notes |
//! | --- | --- | --- |
//! | [`FileDeadLetterQueue`] | one JSON object per line in a file | append + fsync per letter; survives a crash |
//! | [`TableDeadLetterQueue`] | a table or collection of any [`Store`] | MySQL/MariaDB, MongoDB, memory |
//! | [`MemoryDeadLetterQueue`] | memory | tests, or letters that need not survive a restart |
//!
//! [`replay`] hands each letter back to a delivery function and removes the ones delivered.
//!
//! ```
//! use stream_edge::dead_letter::{replay, DeadLetter, DeadLetterQueue, FileDeadLetterQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let queue = FileDeadLetterQueue::new(dir.path().join("dead-letters.jsonl"));
//! let event = serde_json::json!({"source": "mysql", "db": "shop", "table": "orders", "op": "insert"});
//! queue.put(DeadLetter::from_json("mailer", "SMTP said 550", 5, event)).await?;
//!
//! let report = replay(&queue, |letter| {
//!     let table = letter.event["table"].clone();
//!     async move { if table == "orders" { Ok(()) } else { Err("unknown table") } }
//! })
//! .await?;
//! assert_eq!((report.replayed, report.failed, report.remaining), (1, 0, 0));
//! assert!(queue.list().await?.is_empty());
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use serde::{Deserialize, Serialize};
use stream_core::{
    ChangeEvent, ErrorClass, Filter, Json, Namespace, Query, Row, Store, StoreError, Value,
};

/// An event a subscriber or sink could not take, with why and how often it was tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Unique id (time-ordered within a process): what [`DeadLetterQueue::remove`] takes.
    pub id: String,
    /// When it was dead-lettered, epoch milliseconds.
    pub at_ms: i64,
    /// The subscriber or sink that rejected it.
    pub subscriber: String,
    /// Why (the last error).
    pub reason: String,
    /// Delivery attempts made before giving up.
    pub attempts: u32,
    /// The event in the contract JSON of `docs/event-json.md` ([`ChangeEvent::to_json`]).
    pub event: serde_json::Value,
}

impl DeadLetter {
    /// A letter for `event`, with a new id and the current time.
    pub fn new(
        subscriber: impl Into<String>,
        reason: impl Into<String>,
        attempts: u32,
        event: &ChangeEvent,
    ) -> Self {
        let text = event.to_json();
        // The canonical encoder writes valid JSON; keep the text itself should that ever fail.
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Self::from_json(subscriber, reason, attempts, json)
    }

    /// A letter for an event already in its contract JSON, with a new id and the current time.
    pub fn from_json(
        subscriber: impl Into<String>,
        reason: impl Into<String>,
        attempts: u32,
        event: serde_json::Value,
    ) -> Self {
        let at_ms = stream_core::now_ms();
        Self {
            id: new_id(at_ms),
            at_ms,
            subscriber: subscriber.into(),
            reason: reason.into(),
            attempts,
            event,
        }
    }
}

/// `<ms, 12 hex>-<sequence, 6 hex>-<random, 16 hex>`: 36 characters, sorted by time within a
/// process, unique across processes with overwhelming probability.
fn new_id(at_ms: i64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) & 0xff_ffff;
    format!("{at_ms:012x}-{seq:06x}-{:016x}", fastrand::u64(..))
}

/// What can go wrong in a dead-letter queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// Reading or writing the file failed.
    #[error("dead-letter file {}: {source}", .path.display())]
    Io {
        /// The queue's file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A line other than the last is not a dead letter (the last one may be torn by a crash
    /// and is skipped instead). Fix or delete the line to continue.
    #[error("dead-letter file {}, line {line}: not a dead letter ({reason}); fix or delete that line", .path.display())]
    Corrupt {
        /// The queue's file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// The store failed.
    #[error("dead-letter table `{namespace}`: {source}")]
    Store {
        /// `db.table`.
        namespace: String,
        /// The store's error.
        source: StoreError,
    },
    /// A row of the table is not a dead letter.
    #[error("dead-letter table `{namespace}`, row `{id}`: {reason}")]
    BadRow {
        /// `db.table`.
        namespace: String,
        /// The row's id, as far as it could be read.
        id: String,
        /// Which field is missing or of the wrong type.
        reason: String,
    },
}

impl DeadLetterError {
    /// Whether retrying may help: I/O errors and transient store errors.
    pub fn class(&self) -> ErrorClass {
        match self {
            DeadLetterError::Io { .. } => ErrorClass::Transient,
            DeadLetterError::Store {
                source: StoreError::Backend { class, .. },
                ..
            } => *class,
            _ => ErrorClass::Definite,
        }
    }
}

/// Where dead letters are kept.
///
/// Contract: `put` returns only once the letter is durable (as durable as the backend makes
/// it); `list` returns letters in the order they were put (tables: by `at_ms`, then `id`);
/// `remove` ignores unknown ids and says how many letters it removed.
#[async_trait::async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Stores a letter.
    async fn put(&self, letter: DeadLetter) -> Result<(), DeadLetterError>;
    /// Every letter, oldest first.
    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError>;
    /// Removes the letters with these ids; returns how many there were.
    async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError>;
}

#[async_trait::async_trait]
impl<Q: DeadLetterQueue + ?Sized> DeadLetterQueue for Arc<Q> {
    async fn put(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        (**self).put(letter).await
    }
    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        (**self).list().await
    }
    async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        (**self).remove(ids).await
    }
}

/// Dead letters in memory, lost on restart.
#[derive(Debug, Default)]
pub struct MemoryDeadLetterQueue {
    letters: StdMutex<Vec<DeadLetter>>,
}

impl MemoryDeadLetterQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl DeadLetterQueue for MemoryDeadLetterQueue {
    async fn put(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        let mut letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        letters.retain(|l| l.id != letter.id);
        letters.push(letter);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        Ok(self
            .letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        let before = letters.len();
        letters.retain(|l| !ids.contains(l.id.as_str()));
        Ok(before - letters.len())
    }
}

mod file;

pub use file::FileDeadLetterQueue;

/// How a [`TableDeadLetterQueue`] stores the event column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EventColumn {
    /// As a JSON value ([`Value::Json`]): a MySQL `JSON` column; MongoDB stores a document.
    #[default]
    Json,
    /// As JSON text ([`Value::String`]): a `TEXT` column, or MongoDB when events hold
    /// Extended JSON keys such as `$oid` that the server would read as operators.
    Text,
}

/// Dead letters as rows of a table or collection, through any [`Store`].
///
/// Each letter is one row `{id, at_ms, subscriber, reason, attempts, event}` keyed by `id`
/// (the key field's name can be changed, e.g. to `_id` for MongoDB). For MySQL/MariaDB:
///
/// ```sql
/// CREATE TABLE dead_letters (
///   id VARCHAR(64) PRIMARY KEY,
///   at_ms BIGINT,
///   subscriber VARCHAR(255),
///   reason TEXT,
///   attempts INT,
///   event JSON
/// );
/// ```
///
/// Reading accepts the event as a JSON value, JSON text or an embedded document, so a table
/// written with either [`EventColumn`] reads back.
#[derive(Debug)]
pub struct TableDeadLetterQueue<S: ?Sized> {
    store: Arc<S>,
    ns: Namespace,
    key_field: String,
    event_column: EventColumn,
}

impl<S: Store> TableDeadLetterQueue<S> {
    /// A queue in table `ns` of `store`.
    pub fn new(store: S, ns: Namespace) -> Self {
        Self::shared(Arc::new(store), ns)
    }
}

impl<S: Store + ?Sized> TableDeadLetterQueue<S> {
    /// A queue in table `ns` of a store shared with other users (also `Arc<dyn Store>`).
    pub fn shared(store: Arc<S>, ns: Namespace) -> Self {
        Self {
            store,
            ns,
            key_field: "id".to_owned(),
            event_column: EventColumn::default(),
        }
    }

    /// Names the id field differently (`_id` to make it MongoDB's document id).
    pub fn with_key_field(mut self, name: impl Into<String>) -> Self {
        self.key_field = name.into();
        self
    }

    /// Stores the event column this way.
    pub fn with_event_column(mut self, column: EventColumn) -> Self {
        self.event_column = column;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The table.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    fn key(&self, id: &str) -> Row {
        [(self.key_field.as_str(), Value::from(id))]
            .into_iter()
            .collect()
    }

    fn store_err(&self, source: StoreError) -> DeadLetterError {
        DeadLetterError::Store {
            namespace: self.ns.to_string(),
            source,
        }
    }

    fn row_of(&self, letter: &DeadLetter) -> Row {
        let text = letter.event.to_string();
        let event = match self.event_column {
            // serde_json writes compact, valid JSON.
            EventColumn::Json => Value::Json(Json::from_compact_unchecked(text)),
            EventColumn::Text => Value::String(text),
        };
        [
            (self.key_field.as_str(), Value::from(letter.id.as_str())),
            ("at_ms", Value::Int(letter.at_ms)),
            ("subscriber", Value::from(letter.subscriber.as_str())),
            ("reason", Value::from(letter.reason.as_str())),
            ("attempts", Value::from(letter.attempts)),
            ("event", event),
        ]
        .into_iter()
        .collect()
    }

    fn letter_of(&self, row: &Row) -> Result<DeadLetter, DeadLetterError> {
        let id = match row.get(&self.key_field) {
            Some(Value::String(s)) => s.clone(),
            other => {
                return Err(self.bad_row(
                    "?",
                    format!("`{}` is not a string: {other:?}", self.key_field),
                ));
            }
        };
        let int = |name: &str| match row.get(name) {
            Some(Value::Int(i)) => Some(*i),
            Some(Value::UInt(u)) => i64::try_from(*u).ok(),
            _ => None,
        };
        let text = |name: &str| match row.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => Some(String::new()),
            _ => None,
        };
        let at_ms = int("at_ms").ok_or_else(|| self.bad_row(&id, "`at_ms` is not an integer"))?;
        let attempts = int("attempts")
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(|| self.bad_row(&id, "`attempts` is not a 32-bit unsigned integer"))?;
        let subscriber =
            text("subscriber").ok_or_else(|| self.bad_row(&id, "`subscriber` is not text"))?;
        let reason = text("reason").ok_or_else(|| self.bad_row(&id, "`reason` is not text"))?;
        let event = match row.get("event") {
            Some(Value::Json(j)) => serde_json::from_str(j.as_str()),
            Some(Value::String(s)) => serde_json::from_str(s),
            Some(v @ (Value::Document(_) | Value::Array(_))) => {
                let mut buf = Vec::new();
                stream_core::json::write_value(&mut buf, v);
                serde_json::from_slice(&buf)
            }
            other => {
                return Err(self.bad_row(&id, format!("`event` is not JSON: {other:?}")));
            }
        }
        .map_err(|e| self.bad_row(&id, format!("`event` is not JSON: {e}")))?;
        Ok(DeadLetter {
            id,
            at_ms,
            subscriber,
            reason,
            attempts,
            event,
        })
    }

    fn bad_row(&self, id: &str, reason: impl Into<String>) -> DeadLetterError {
        DeadLetterError::BadRow {
            namespace: self.ns.to_string(),
            id: id.to_owned(),
            reason: reason.into(),
        }
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> DeadLetterQueue for TableDeadLetterQueue<S> {
    async fn put(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        self.store
            .write(&self.ns, &self.key(&letter.id), &self.row_of(&letter))
            .await
            .map_err(|e| self.store_err(e))
    }

    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let query = Query::filter(Filter::All)
            .order_by("at_ms", true)
            .order_by(self.key_field.as_str(), true);
        self.store
            .query(&self.ns, &query)
            .await
            .map_err(|e| self.store_err(e))?
            .iter()
            .map(|row| self.letter_of(row))
            .collect()
    }

    async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        let mut removed = 0;
        let mut seen = HashSet::new();
        for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
            if self
                .store
                .delete(&self.ns, &self.key(id))
                .await
                .map_err(|e| self.store_err(e))?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Letters delivered and removed from the queue.
    pub replayed: usize,
    /// Letters whose delivery failed again; they stay in the queue.
    pub failed: usize,
    /// Letters left in the queue of those it held when the replay started (failed ones and
    /// those not selected).
    pub remaining: usize,
    /// Why each failed delivery failed, in order.
    pub failures: Vec<ReplayFailure>,
}

/// One failed redelivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFailure {
    /// The letter's id.
    pub id: String,
    /// The delivery error.
    pub reason: String,
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {}, failed {}, remaining {}",
            self.replayed, self.failed, self.remaining
        )
    }
}

/// Successful deliveries are removed in groups of this many, so a crash in a long replay
/// repeats at most this many deliveries.
const REMOVE_EVERY: usize = 100;

/// Hands every letter, oldest first, to `deliver`, and removes the letters it delivered.
///
/// Delivery is at least once: letters are removed after they are delivered (in groups of 100),
/// so a crash during a replay delivers some letters again on the next one. A failed delivery
/// leaves its letter in the queue unchanged. The future `deliver` returns cannot borrow the
/// letter: clone what it needs.
pub async fn replay<Q, F, Fut, E>(queue: &Q, deliver: F) -> Result<ReplayReport, DeadLetterError>
where
    Q: DeadLetterQueue + ?Sized,
    F: FnMut(&DeadLetter) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    replay_matching(queue, |_| true, deliver).await
}

/// Like [`replay`], for the letters `select` picks (say, one subscriber's); the others stay.
pub async fn replay_matching<Q, F, Fut, E>(
    queue: &Q,
    select: impl Fn(&DeadLetter) -> bool,
    mut deliver: F,
) -> Result<ReplayReport, DeadLetterError>
where
    Q: DeadLetterQueue + ?Sized,
    F: FnMut(&DeadLetter) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let letters = queue.list().await?;
    let total = letters.len();
    let mut report = ReplayReport::default();
    let mut delivered = Vec::new();
    for letter in letters.iter().filter(|l| select(l)) {
        match deliver(letter).await {
            Ok(()) => {
                delivered.push(letter.id.clone());
                if delivered.len() >= REMOVE_EVERY {
                    report.replayed += queue.remove(&delivered).await?;
                    delivered.clear();
                }
            }
            Err(e) => {
                report.failed += 1;
                report.failures.push(ReplayFailure {
                    id: letter.id.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    if !delivered.is_empty() {
        report.replayed += queue.remove(&delivered).await?;
    }
    report.remaining = total.saturating_sub(report.replayed);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stream_core::{MemoryStore, Op, Position, SourceKind};

    pub(super) fn letter(n: i64) -> DeadLetter {
        let mut l = DeadLetter::from_json(
            "mailer",
            format!("SMTP 550 #{n}"),
            5,
            json!({"source": "mysql", "db": "shop", "table": "orders", "op": "insert", "key": {"id": n}}),
        );
        l.at_ms = 1_732_272_000_000 + n;
        l
    }

    fn ids(letters: &[DeadLetter]) -> Vec<String> {
        letters.iter().map(|l| l.id.clone()).collect()
    }

    #[test]
    fn letters_carry_the_event_contract_json_and_unique_ids() {
        let event = ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "orders"),
            op: Op::Insert,
            key: Some([("id", Value::Int(7))].into_iter().collect()),
            before: None,
            after: Some([("id", Value::Int(7))].into_iter().collect()),
            update: None,
            position: "binlog:mysql-bin.000001:4+1"
                .parse::<Position>()
                .expect("position"),
            ts_ms: 1,
            txn: None,
        };
        let l = DeadLetter::new("sink", "boom", 3, &event);
        assert_eq!(l.event["table"], "orders");
        assert_eq!(l.event["key"]["id"], 7);
        assert_eq!(l.event["position"], "binlog:mysql-bin.000001:4+1");
        let parsed: serde_json::Value =
            serde_json::from_str(&event.to_json()).expect("contract JSON");
        assert_eq!(l.event, parsed);
        let many: HashSet<String> = (0..1000).map(|_| letter(0).id).collect();
        assert_eq!(many.len(), 1000);
        assert!(l.id.len() <= 64, "fits VARCHAR(64)");
        assert!(l.at_ms > 1_700_000_000_000);
    }

    #[tokio::test]
    async fn table_queue_round_trips_letters_through_a_store() {
        let ns = Namespace::new("ops", "dead_letters");
        let queue = TableDeadLetterQueue::new(MemoryStore::new(), ns.clone());
        let letters: Vec<_> = [3, 1, 2].into_iter().map(letter).collect();
        for l in &letters {
            queue.put(l.clone()).await.expect("put");
        }
        let listed = queue.list().await.expect("list");
        assert_eq!(
            listed,
            vec![letters[1].clone(), letters[2].clone(), letters[0].clone()],
            "oldest first"
        );
        let row = queue
            .store()
            .read(&ns, &queue.key(&letters[0].id))
            .await
            .expect("read")
            .expect("row");
        assert!(matches!(row.get("event"), Some(Value::Json(_))), "{row:?}");
        assert_eq!(row.get("attempts"), Some(&Value::UInt(5)));

        let n = queue
            .remove(&[letters[0].id.clone(), letters[0].id.clone(), "nope".into()])
            .await
            .expect("remove");
        assert_eq!(n, 1);
        assert_eq!(queue.list().await.expect("list").len(), 2);

        // Text events and another key field read back the same.
        let text_queue = TableDeadLetterQueue::shared(Arc::new(MemoryStore::new()), ns)
            .with_key_field("_id")
            .with_event_column(EventColumn::Text);
        text_queue.put(letters[0].clone()).await.expect("put");
        assert_eq!(
            text_queue.list().await.expect("list"),
            vec![letters[0].clone()]
        );
    }

    #[tokio::test]
    async fn table_queue_reports_rows_that_are_not_letters() {
        let ns = Namespace::new("ops", "dead_letters");
        let store = Arc::new(MemoryStore::new());
        let key: Row = [("id", Value::from("x1"))].into_iter().collect();
        let row: Row = [
            ("id", Value::from("x1")),
            ("at_ms", Value::from("yesterday")),
        ]
        .into_iter()
        .collect();
        store.write(&ns, &key, &row).await.expect("write");
        let queue = TableDeadLetterQueue::shared(store, ns);
        let err = queue.list().await.expect_err("bad row");
        assert_eq!(
            err.to_string(),
            "dead-letter table `ops.dead_letters`, row `x1`: `at_ms` is not an integer"
        );
    }

    #[tokio::test]
    async fn replay_removes_only_the_letters_delivered() {
        let queue = MemoryDeadLetterQueue::new();
        let letters: Vec<_> = (1..=5).map(letter).collect();
        for l in &letters {
            queue.put(l.clone()).await.expect("put");
        }
        let mut seen = Vec::new();
        let report = replay(&queue, |l| {
            seen.push(l.id.clone());
            let even = l.event["key"]["id"].as_i64().unwrap_or(0) % 2 == 0;
            async move { if even { Err("still down") } else { Ok(()) } }
        })
        .await
        .expect("replay");
        assert_eq!(seen, ids(&letters), "in order");
        assert_eq!(
            (report.replayed, report.failed, report.remaining),
            (3, 2, 2)
        );
        assert_eq!(
            report.failures,
            vec![
                ReplayFailure {
                    id: letters[1].id.clone(),
                    reason: "still down".into()
                },
                ReplayFailure {
                    id: letters[3].id.clone(),
                    reason: "still down".into()
                },
            ]
        );
        assert_eq!(
            queue.list().await.expect("list"),
            vec![letters[1].clone(), letters[3].clone()]
        );
        assert_eq!(report.to_string(), "replayed 3, failed 2, remaining 2");
    }

    #[tokio::test]
    async fn replay_over_a_file_and_a_selection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue: Arc<dyn DeadLetterQueue> =
            Arc::new(FileDeadLetterQueue::new(dir.path().join("dlq.jsonl")));
        let mut other = letter(9);
        other.subscriber = "search".into();
        for l in (1..=250).map(letter).chain([other.clone()]) {
            queue.put(l).await.expect("put");
        }
        let report = replay_matching(
            &queue,
            |l| l.subscriber == "mailer",
            |_| async { Ok::<(), String>(()) },
        )
        .await
        .expect("replay");
        assert_eq!(
            (report.replayed, report.failed, report.remaining),
            (250, 0, 1)
        );
        assert_eq!(queue.list().await.expect("list"), vec![other]);
    }
}
