//! The polling fallback, for MongoDB servers without change streams (a standalone server has
//! no oplog): documents whose change field (an `updatedAt`-style date, a BSON timestamp or a
//! version number) moved past the last value read.
//!
//! **What polling cannot do.** It sees the latest state of each changed document, not each
//! change: several updates between two polls arrive as one, and **deletes are never seen**.
//! Every event is an `update` with `before: null` and `update: null` (the previous state and
//! the changed fields are unknown), even for new documents. Prefer [`crate::MongoSource`]
//! (change streams) wherever the deployment is a replica set or a sharded cluster.
//!
//! **What the field must be.** Writers must set the field on every insert and move it forward
//! on every update. Documents without the field (or with `null` in it) are never seen. It must
//! hold one value, not an array; a dotted path (`meta.updatedAt`) reads an embedded document.
//! Values are compared the MongoDB way: any BSON type works, dates and timestamps are the
//! usual choice; when a collection holds several types, later types in MongoDB's sort order
//! (numbers, strings, ..., dates, timestamps) count as newer.
//!
//! **How it reads.** Every [`interval`](MongoPollingSource::interval) (or at the times of a
//! cron [`schedule`](MongoPollingSource::schedule)), each wanted collection
//! (re-listed every round, so collections created later are picked up and read from their
//! first document) is read in (field, `_id`) order after the last (field, `_id`) delivered, in
//! chunks of [`chunk`](MongoPollingSource::chunk) documents, one batch per chunk; a quiet
//! round sends nothing. Documents whose date (or timestamp) field is newer than the server
//! clock minus the [`safety_lag`](MongoPollingSource::safety_lag) wait for a later round, so a
//! writer that saves a slightly older value late is still seen, unless it is later than the
//! lag. Numbers have no clock: a counter must only ever be assigned in increasing order. An
//! index on `{field: 1, _id: 1}` keeps each round from scanning whole collections.
//!
//! Positions are `mongodb-poll:` positions: per `db.collection`, the field value and `_id` of
//! the last document delivered, as canonical Extended JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use mongodb::bson::{Bson, DateTime, Document, RawDocumentBuf, Timestamp, doc};
use mongodb::error::Error as DriverError;
use mongodb::{Client, Collection};
use stream_core::{
    Backoff, Batch, CancellationToken, ChangeEvent, Cron, ErrorClass, MongoPosition, Namespace, Op,
    Opened, PollCursor, PollProgress, PollSchedule, Position, Reconnect, Retry, Row, Source,
    SourceError, SourceEvent, SourceKind, StartFrom,
};
use tokio::sync::mpsc;

use crate::bson_value::{decode_checked, document_to_row, raw_path, value_from_bson};
use crate::config::MongoConfig;
use crate::connect::{
    SELECTION_TIMEOUT, close, connect, selection_timeout, spawn_reader, wanted_collections,
    warn_if_empty_database,
};
use crate::errors::undecodable;
use crate::errors::{Purpose, classify, describe};
use crate::order::{after, single};

/// Documents per query unless [`MongoPollingSource::chunk`] says otherwise.
const DEFAULT_CHUNK: u32 = 1000;

/// Polls collections for documents whose change field moved (see the module docs for its
/// limits: **deletes are never seen**, every event is an `update`).
#[derive(Debug, Clone)]
pub struct MongoPollingSource {
    config: MongoConfig,
    field: String,
    schedule: PollSchedule,
    safety_lag: Duration,
    chunk: u32,
}

impl MongoPollingSource {
    /// Polls the collections [`MongoConfig::filter`] selects by `field` (e.g. `updatedAt`),
    /// every second, reading documents whose date is older than one second.
    pub fn new(config: MongoConfig, field: impl Into<String>) -> Self {
        Self {
            config,
            field: field.into(),
            schedule: PollSchedule::Every(Duration::from_secs(1)),
            safety_lag: Duration::from_secs(1),
            chunk: DEFAULT_CHUNK,
        }
    }

    /// Time between polls.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.schedule = PollSchedule::Every(interval);
        self
    }

    /// Polls at the times a cron expression names (UTC) instead of every interval: once at
    /// start, then at each of those times.
    pub fn schedule(mut self, cron: Cron) -> Self {
        self.schedule = PollSchedule::Cron(cron);
        self
    }

    /// Documents are read only once their field is this much older than the server clock
    /// (for a date or timestamp field; numbers and other types are read at once), so writers
    /// that save an older value late are not skipped.
    pub fn safety_lag(mut self, lag: Duration) -> Self {
        self.safety_lag = lag;
        self
    }

    /// Documents per query, and so at most per batch (default 1000; 0 counts as 1).
    pub fn chunk(mut self, documents: u32) -> Self {
        self.chunk = documents.max(1);
        self
    }
}

/// Where polling of one collection continues, as BSON.
#[derive(Debug, Clone)]
struct Cursor {
    at: Bson,
    key: Option<Bson>,
}

fn position(cursors: &BTreeMap<String, PollCursor>) -> Position {
    Position::MongoDb(MongoPosition::Poll(PollProgress {
        cursors: cursors.clone(),
    }))
}

fn bson_text(value: &Bson) -> String {
    value.clone().into_canonical_extjson().to_string()
}

fn bson_from_text(ns: &str, what: &str, text: &str) -> Result<Bson, SourceError> {
    let bad = |reason: String| SourceError::Other {
        reason: format!("polling position for {ns} holds an unreadable {what} `{text}`: {reason}"),
        class: ErrorClass::Definite,
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    Bson::try_from(json).map_err(|e| bad(e.to_string()))
}

fn parse_cursor(ns: &str, cursor: &PollCursor) -> Result<Cursor, SourceError> {
    Ok(Cursor {
        at: bson_from_text(ns, "field value", &cursor.at)?,
        key: cursor
            .key
            .as_deref()
            .map(|key| bson_from_text(ns, "_id", key))
            .transpose()?,
    })
}

fn failed(config: &MongoConfig, what: &str, e: &DriverError) -> SourceError {
    let selection = Some(selection_timeout(config, SELECTION_TIMEOUT));
    let described = describe(e, config.uri_parts(), selection, Purpose::Other, false);
    let reason = format!("polling: {what}: {described}");
    match classify(e) {
        ErrorClass::Transient => SourceError::ConnectionLost { reason },
        ErrorClass::Definite => SourceError::Other {
            reason,
            class: ErrorClass::Definite,
        },
    }
}

/// The value at a dotted `path`, through embedded documents only.
fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut current = doc.get(parts.next()?)?;
    for part in parts {
        current = current.as_document()?.get(part)?;
    }
    Some(current)
}

#[async_trait::async_trait]
impl Source for MongoPollingSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MongoDb
    }

    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        let latest_start = from == StartFrom::Latest;
        let progress = match from {
            StartFrom::Earliest | StartFrom::Snapshot | StartFrom::Latest => BTreeMap::new(),
            StartFrom::Position(Position::MongoDb(MongoPosition::Poll(p))) => p.cursors,
            StartFrom::Position(other) => {
                return Err(SourceError::Unsupported {
                    what: format!(
                        "polling MongoDB from position {other} (only mongodb-poll positions)"
                    ),
                });
            }
        };
        let mut cursors = BTreeMap::new();
        for (ns, cursor) in &progress {
            cursors.insert(ns.clone(), parse_cursor(ns, cursor)?);
        }
        let client = connect(&self.config, Purpose::Other).await?;
        let opened = self
            .open_with(client.clone(), latest_start, cursors, progress, shutdown)
            .await;
        if opened.is_err() {
            close(client).await;
        }
        opened
    }
}

impl MongoPollingSource {
    /// `open` once connected; the caller closes `client` on an error.
    async fn open_with(
        &self,
        client: Client,
        latest_start: bool,
        cursors: BTreeMap<String, Cursor>,
        progress: BTreeMap<String, PollCursor>,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        warn_if_empty_database(&client, &self.config).await;
        let (tx, rx) = mpsc::channel(4);
        let mut poller = Poller {
            client: client.clone(),
            config: self.config.clone(),
            field: self.field.clone(),
            schedule: self.schedule.clone(),
            lag: self.safety_lag,
            chunk: self.chunk,
            cursors,
            progress,
            tx,
        };
        let collections = poller.collections().await?;
        if collections.is_empty() {
            tracing::warn!(
                uri = %self.config.shown(),
                "no collection matches the include/exclude patterns yet; polling picks them up as they appear"
            );
        }
        for (db, coll) in &collections {
            let ns = format!("{db}.{coll}");
            let latest = poller.latest(db, coll).await?;
            if latest.is_none() && poller.has_documents(db, coll).await? {
                tracing::warn!(
                    collection = %ns,
                    field = %self.field,
                    "no document of the collection has the polling field; none of them is seen until it is set"
                );
            }
            if latest_start && let Some((at, id)) = latest {
                poller.advance(&ns, at, id);
            }
        }
        let start = position(&poller.progress);
        let keep_open = poller.tx.clone();
        let stop = shutdown.clone();
        let work = async move { poller.run(&stop).await };
        spawn_reader(vec![client], keep_open, shutdown, work);
        let batches = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Opened {
            start,
            // Polling after the end is harmless (callers drain the stream at exit).
            batches: Box::pin(batches.fuse()),
        })
    }
}

struct Poller {
    client: Client,
    config: MongoConfig,
    field: String,
    schedule: PollSchedule,
    lag: Duration,
    chunk: u32,
    cursors: BTreeMap<String, Cursor>,
    /// The same cursors as text, for positions.
    progress: BTreeMap<String, PollCursor>,
    tx: mpsc::Sender<Result<Batch, SourceError>>,
}

impl Poller {
    /// Polls until a final error (sent) or the consumer leaving; failed rounds are retried
    /// every interval (every second on a cron schedule) as [`Reconnect`] decides (for
    /// `reconnect_for` without a good round).
    async fn run(mut self, shutdown: &CancellationToken) {
        let retry_every = match &self.schedule {
            PollSchedule::Every(interval) => *interval,
            PollSchedule::Cron(_) => Duration::from_secs(1),
        };
        let mut reconnect =
            Reconnect::new(self.config.reconnect_for).delays(Backoff::constant(retry_every));
        loop {
            match self.poll_once().await {
                Ok(true) => reconnect.progressed(),
                Ok(false) => return,
                Err(e) => match reconnect.failed(e, shutdown, "MongoDB polling").await {
                    // The delay was the interval: poll again at once.
                    Retry::Again => continue,
                    Retry::GiveUp(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                    Retry::Shutdown => return,
                },
            }
            tokio::time::sleep(self.schedule.delay_from(std::time::SystemTime::now())).await;
        }
    }

    /// Raw documents: the nesting is checked before anything recurses through a document.
    fn collection(&self, db: &str, coll: &str) -> Collection<RawDocumentBuf> {
        self.client.database(db).collection(coll)
    }

    /// Wanted `(db, collection)` pairs in name order.
    async fn collections(&self) -> Result<Vec<(String, String)>, SourceError> {
        wanted_collections(&self.client, &self.config)
            .await
            .map_err(|(what, e)| failed(&self.config, &what, &e))
    }

    /// The greatest (field, `_id`) of a collection, if any document has the field.
    async fn latest(&self, db: &str, coll: &str) -> Result<Option<(Bson, Bson)>, SourceError> {
        let ns = format!("{db}.{coll}");
        let mut sort = single(&self.field, Bson::Int32(-1));
        sort.insert("_id", -1);
        let mut projection = single(&self.field, Bson::Int32(1));
        projection.insert("_id", 1);
        let found = self
            .collection(db, coll)
            .find_one(single(
                &self.field,
                Bson::Document(doc! {"$ne": Bson::Null}),
            ))
            .sort(sort)
            .projection(projection)
            .await
            .map_err(|e| failed(&self.config, &format!("reading {ns}"), &e))?;
        let Some(raw) = found else {
            return Ok(None);
        };
        let doc =
            decode_checked(&raw).map_err(|e| undecodable(&Namespace::new(db, coll), None, &e))?;
        self.field_and_id(&ns, &doc).map(Some)
    }

    async fn has_documents(&self, db: &str, coll: &str) -> Result<bool, SourceError> {
        let found = self
            .collection(db, coll)
            .find_one(doc! {})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| failed(&self.config, &format!("reading {db}.{coll}"), &e))?;
        Ok(found.is_some())
    }

    /// The polling field and `_id` of a document the server returned for the field.
    fn field_and_id(&self, ns: &str, doc: &Document) -> Result<(Bson, Bson), SourceError> {
        let id = doc.get("_id").cloned().ok_or_else(|| SourceError::Other {
            reason: format!("polling {ns}: a document has no `_id`"),
            class: ErrorClass::Definite,
        })?;
        match lookup(doc, &self.field) {
            Some(Bson::Array(_)) | Some(Bson::Null) | None => Err(SourceError::Other {
                reason: format!(
                    "polling {ns}: field `{}` of the document with _id {} is not a single value \
                     (arrays, and paths through arrays, cannot be polled)",
                    self.field,
                    bson_text(&id)
                ),
                class: ErrorClass::Definite,
            }),
            Some(at) => Ok((at.clone(), id)),
        }
    }

    /// Moves the cursor of `ns` to (`at`, `id`).
    fn advance(&mut self, ns: &str, at: Bson, id: Bson) {
        self.progress.insert(
            ns.to_owned(),
            PollCursor {
                at: bson_text(&at),
                key: Some(bson_text(&id)),
            },
        );
        self.cursors
            .insert(ns.to_owned(), Cursor { at, key: Some(id) });
    }

    /// The server's clock minus the safety lag, in epoch milliseconds; `None` without a lag.
    async fn cutoff(&self) -> Option<i64> {
        if self.lag.is_zero() {
            return None;
        }
        let server = self
            .client
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await
            .ok()
            .and_then(|hello| hello.get_datetime("localTime").ok().copied())
            .map(|t| t.timestamp_millis());
        let lag = i64::try_from(self.lag.as_millis()).unwrap_or(i64::MAX);
        Some(
            server
                .unwrap_or_else(stream_core::now_ms)
                .saturating_sub(lag),
        )
    }

    /// One pass over every collection; `Ok(false)` when nobody listens any more.
    async fn poll_once(&mut self) -> Result<bool, SourceError> {
        let cutoff = self.cutoff().await;
        for (db, coll) in self.collections().await? {
            loop {
                let (events, full) = self.chunk(&db, &coll, cutoff).await?;
                if events.is_empty() {
                    break;
                }
                let batch = Batch {
                    events,
                    position: position(&self.progress),
                    state: None,
                };
                if self.tx.send(Ok(batch)).await.is_err() {
                    return Ok(false);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(true)
    }

    fn filter(&self, ns: &str, cutoff: Option<i64>) -> Document {
        let field = self.field.as_str();
        let mut all = vec![single(field, Bson::Document(doc! {"$ne": Bson::Null}))];
        if let Some(cursor) = self.cursors.get(ns) {
            let mut any = vec![after(field, &cursor.at)];
            if let Some(key) = &cursor.key {
                let same = single(field, Bson::Document(doc! {"$eq": cursor.at.clone()}));
                any.push(doc! {"$and": [same, after("_id", key)]});
            }
            all.push(doc! {"$or": any});
        }
        if let Some(cutoff) = cutoff {
            let seconds = u32::try_from(cutoff.div_euclid(1000).max(0)).unwrap_or(u32::MAX);
            let newer_date = single(
                field,
                Bson::Document(doc! {"$gt": DateTime::from_millis(cutoff)}),
            );
            let newer_timestamp = single(
                field,
                Bson::Document(doc! {"$gt": Timestamp { time: seconds, increment: u32::MAX }}),
            );
            all.push(doc! {"$nor": [newer_date, newer_timestamp]});
        }
        doc! {"$and": all}
    }

    /// The next chunk of `db.coll`, moving its cursor; also whether the chunk was full.
    async fn chunk(
        &mut self,
        db: &str,
        coll: &str,
        cutoff: Option<i64>,
    ) -> Result<(Vec<SourceEvent>, bool), SourceError> {
        let ns = format!("{db}.{coll}");
        let mut sort = single(&self.field, Bson::Int32(1));
        sort.insert("_id", 1);
        let docs: Vec<RawDocumentBuf> = self
            .collection(db, coll)
            .find(self.filter(&ns, cutoff))
            .sort(sort)
            .limit(i64::from(self.chunk))
            .batch_size(self.chunk)
            .await
            .map_err(|e| failed(&self.config, &format!("reading {ns}"), &e))?
            .try_collect()
            .await
            .map_err(|e| failed(&self.config, &format!("reading {ns}"), &e))?;
        let full = docs.len() >= self.chunk as usize;
        let namespace = Namespace::new(db, coll);
        let now = stream_core::now_ms();
        let mut events = Vec::with_capacity(docs.len());
        for raw in docs {
            // Where resuming skips this document, for an error about it.
            let skip_to = || {
                let at = raw_path(&raw, &self.field)?;
                let id = raw_path(&raw, "_id")?;
                let mut cursors = self.progress.clone();
                let cursor = PollCursor {
                    at: bson_text(&at),
                    key: Some(bson_text(&id)),
                };
                cursors.insert(ns.clone(), cursor);
                Some(position(&cursors))
            };
            let doc = decode_checked(&raw)
                .map_err(|e| undecodable(&namespace, skip_to().as_ref(), &e))?;
            let (at, id) = self.field_and_id(&ns, &doc)?;
            let converted = value_from_bson(&id).and_then(|id| Ok((id, document_to_row(&doc)?)));
            let (id_value, row) =
                converted.map_err(|e| undecodable(&namespace, skip_to().as_ref(), &e))?;
            let ts_ms = match &at {
                Bson::DateTime(t) => t.timestamp_millis(),
                Bson::Timestamp(t) => i64::from(t.time) * 1000,
                _ => now,
            };
            let key: Row = [("_id", id_value)].into_iter().collect();
            self.advance(&ns, at, id);
            events.push(SourceEvent::Change(ChangeEvent {
                source: SourceKind::MongoDb,
                namespace: namespace.clone(),
                op: Op::Update,
                key: Some(key),
                before: None,
                after: Some(row),
                update: None,
                position: position(&self.progress),
                ts_ms,
                txn: None,
            }));
        }
        Ok((events, full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;

    #[test]
    fn cursor_values_survive_their_text_form() {
        for value in [
            Bson::Int32(7),
            Bson::Int64(1 << 40),
            Bson::Double(1.5),
            Bson::String("a\"b".into()),
            Bson::ObjectId(ObjectId::new()),
            Bson::DateTime(DateTime::from_millis(1_700_000_000_123)),
            Bson::Timestamp(Timestamp {
                time: 1_700_000_000,
                increment: 3,
            }),
        ] {
            let text = bson_text(&value);
            assert_eq!(bson_from_text("d.c", "_id", &text).expect("parse"), value);
        }
        let err = bson_from_text("d.c", "_id", "{nope").expect_err("bad");
        assert!(err.to_string().contains("d.c"), "{err}");
    }

    #[test]
    fn later_type_brackets_count_as_after() {
        let f = after("updatedAt", &Bson::Int32(5));
        let types = f.get_array("$or").expect("or")[1]
            .as_document()
            .and_then(|d| d.get_document("updatedAt").ok())
            .and_then(|d| d.get_array("$type").ok())
            .expect("types")
            .clone();
        assert!(types.contains(&Bson::String("date".into())));
        assert!(!types.contains(&Bson::String("int".into())));
        assert_eq!(after("v", &Bson::MaxKey), doc! {"v": {"$gt": Bson::MaxKey}});
    }

    #[test]
    fn dotted_paths_read_embedded_documents_only() {
        let d = doc! {"meta": {"at": 3}, "list": [{"at": 1}]};
        assert_eq!(lookup(&d, "meta.at"), Some(&Bson::Int32(3)));
        assert_eq!(lookup(&d, "list.at"), None);
        assert_eq!(lookup(&d, "missing"), None);
    }
}
