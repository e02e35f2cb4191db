//! The change-stream source: opening, batching, automatic resume, invalidate and history loss.

use futures::StreamExt as _;
use mongodb::bson::{Bson, Document, RawDocument, RawDocumentBuf, Timestamp, doc};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::ResumeToken;
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
use mongodb::{Client, action::Watch};
use stream_core::{
    Batch, CancellationToken, ErrorClass, MongoPosition, Namespace, Opened, Position, Reconnect,
    Retry, Source, SourceError, SourceEvent, SourceKind, StartFrom,
};
use tokio::sync::mpsc;

use crate::bson_value::check_depth;
use crate::config::{FullDocument, MongoConfig, PreImages, Scope, glob_regex};
use crate::connect::{
    SELECTION_TIMEOUT, close_all, connect_error, connect_for_change_stream, oldest_oplog_time,
    require_change_streams, require_recorded_images, selection_timeout, spawn_reader,
    warn_if_empty_database,
};
pub(crate) use crate::errors::classify;
use crate::errors::{POSITION_KINDS, Purpose, bad_position, describe, undecodable};
use crate::event::{self, Converted, Reassembly};
use crate::hand_over::HandOver;
use crate::snapshot;

/// Events handed over per batch at most.
const MAX_BATCH: usize = 1024;

/// How much deeper than the document it carries a change document nests:
/// `updateDescription.updatedFields.<field>`.
const EVENT_ENVELOPE: usize = 2;

/// A MongoDB change-stream source: a collection, a database or the whole deployment, as the
/// narrowest scope that covers [`MongoConfig::filter`].
#[derive(Debug, Clone)]
pub struct MongoSource {
    config: MongoConfig,
}

impl MongoSource {
    /// A source with these settings.
    pub fn new(config: MongoConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &MongoConfig {
        &self.config
    }
}

/// Where a change stream (re)starts.
#[derive(Debug, Clone)]
pub(crate) enum Resume {
    Now,
    At(Timestamp),
    After(Vec<u8>),
}

impl Resume {
    /// Where to resume to continue after `position` (a token or a cluster time).
    pub(crate) fn from_position(position: &Position) -> Self {
        match position {
            Position::MongoDb(MongoPosition::ResumeToken(token)) => Resume::After(token.clone()),
            Position::MongoDb(MongoPosition::ClusterTime { t, i }) => Resume::At(Timestamp {
                time: *t,
                increment: *i,
            }),
            _ => Resume::Now,
        }
    }

    fn shown(&self) -> String {
        match self {
            Resume::Now => "end".to_owned(),
            Resume::At(ts) => time_position(*ts).to_string(),
            Resume::After(token) => event::token_position(token.clone()).to_string(),
        }
    }
}

pub(crate) fn time_position(ts: Timestamp) -> Position {
    Position::MongoDb(MongoPosition::ClusterTime {
        t: ts.time,
        i: ts.increment,
    })
}

/// What the reader task hands to the batcher.
#[derive(Debug)]
pub(crate) enum Item {
    Event(Box<SourceEvent>),
    /// The position moved without an event (post-batch resume token, filtered events).
    Moved(Position),
    /// The position moved, and the batch ends here: what follows comes in a later batch, so
    /// this position can be checkpointed before it (a snapshot's start).
    Mark(Position),
}

pub(crate) type ItemSender = mpsc::Sender<Result<Item, SourceError>>;

#[async_trait::async_trait]
impl Source for MongoSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MongoDb
    }

    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        let (client, streaming) = connect_for_change_stream(&self.config).await?;
        let opened = self
            .open_with(client.clone(), streaming.clone(), from, shutdown)
            .await;
        if opened.is_err() {
            close_all(vec![client, streaming]).await;
        }
        opened
    }
}

impl MongoSource {
    /// `open` once connected; the caller closes the clients on an error.
    async fn open_with(
        &self,
        client: Client,
        streaming: Client,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        require_change_streams(&client, &self.config).await?;
        require_recorded_images(&client, &self.config).await?;
        warn_if_empty_database(&client, &self.config).await;
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        let watcher = Watcher::new(
            client.clone(),
            streaming.clone(),
            self.config.clone(),
            tx,
            shutdown,
        );
        let start = match from {
            StartFrom::Snapshot => return snapshot::start(watcher, None, rx).await,
            StartFrom::Position(Position::MongoDb(MongoPosition::Snapshot(progress))) => {
                return snapshot::start(watcher, Some(progress), rx).await;
            }
            StartFrom::Latest => Resume::Now,
            StartFrom::Earliest => Resume::At(
                oldest_oplog_time(&watcher.client, &self.config)
                    .await
                    .map_err(|reason| SourceError::Unsupported {
                        what: format!(
                            "starting at the oldest change needs read access to local.oplog.rs \
                         ({reason}); start from `end` or a saved position instead"
                        ),
                    })?,
            ),
            StartFrom::Position(Position::MongoDb(MongoPosition::ResumeToken(token))) => {
                Resume::After(token)
            }
            StartFrom::Position(Position::MongoDb(MongoPosition::ClusterTime { t, i })) => {
                Resume::At(Timestamp {
                    time: t,
                    increment: i,
                })
            }
            StartFrom::Position(other) => {
                return Err(SourceError::Unsupported {
                    what: format!(
                        "position {other} is not a MongoDB change-stream position: {POSITION_KINDS}"
                    ),
                });
            }
        };
        let (stream, start) = watcher.open_first(start).await?;
        let keep_open = watcher.tx.clone();
        let shutdown = watcher.shutdown.clone();
        let resume = Resume::from_position(&start);
        spawn_reader(
            vec![client, streaming],
            keep_open,
            shutdown,
            watcher.run(stream, resume),
        );
        Ok(Opened {
            start,
            batches: batches(rx),
        })
    }
}

fn command_code(e: &DriverError) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// ChangeStreamHistoryLost: the oplog no longer holds the resume point.
const HISTORY_LOST: i32 = 286;

/// Groups what the reader sent into batches: everything already waiting, up to [`MAX_BATCH`].
pub(crate) fn batches(rx: mpsc::Receiver<Result<Item, SourceError>>) -> stream_core::BatchStream {
    struct State {
        rx: mpsc::Receiver<Result<Item, SourceError>>,
        held_error: Option<SourceError>,
    }
    let state = State {
        rx,
        held_error: None,
    };
    futures::stream::unfold(state, |mut state| async move {
        if let Some(e) = state.held_error.take() {
            return Some((Err(e), state));
        }
        let first = match state.rx.recv().await? {
            Ok(item) => item,
            Err(e) => return Some((Err(e), state)),
        };
        let mut events = Vec::new();
        let mut ends = matches!(first, Item::Mark(_));
        let mut position = absorb(first, &mut events);
        while !ends && events.len() < MAX_BATCH {
            match state.rx.try_recv() {
                Ok(Ok(item)) => {
                    ends = matches!(item, Item::Mark(_));
                    position = absorb(item, &mut events);
                }
                Ok(Err(e)) => {
                    state.held_error = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
        Some((
            Ok(Batch {
                events,
                position,
                state: None,
            }),
            state,
        ))
    })
    // Polling after the end is harmless (callers drain the stream at exit).
    .fuse()
    .boxed()
}

fn absorb(item: Item, events: &mut Vec<SourceEvent>) -> Position {
    match item {
        Item::Event(e) => {
            let e = *e;
            let p = e.position().clone();
            events.push(e);
            p
        }
        Item::Moved(p) | Item::Mark(p) => p,
    }
}

pub(crate) fn id_key(id: &Bson) -> Vec<u8> {
    let mut out = Vec::new();
    // A one-field document is always serialisable.
    let _ = doc! {"_id": id.clone()}.to_writer(&mut out);
    out
}

/// Owns the change stream and feeds the batcher.
pub(crate) struct Watcher {
    /// Snapshot reads, lookups, checks.
    pub(crate) client: Client,
    /// The change stream's: without read retries (see [`crate::connect::connect_for_change_stream`]).
    pub(crate) stream_client: Client,
    pub(crate) config: MongoConfig,
    scope: Scope,
    watched: Namespace,
    pub(crate) tx: ItemSender,
    pub(crate) shutdown: CancellationToken,
    /// What the snapshot before this stream already delivered (its hand-over window).
    pub(crate) hand_over: Option<HandOver>,
    reconnect: Reconnect,
}

impl Watcher {
    pub(crate) fn new(
        client: Client,
        stream_client: Client,
        config: MongoConfig,
        tx: ItemSender,
        shutdown: CancellationToken,
    ) -> Self {
        let scope = config.scope();
        let watched = match &scope {
            Scope::Deployment => Namespace::new("", ""),
            Scope::Database(db) => Namespace::new(db.as_str(), ""),
            Scope::Collection(db, coll) => Namespace::new(db.as_str(), coll.as_str()),
        };
        let reconnect = Reconnect::new(config.reconnect_for);
        Self {
            client,
            stream_client,
            config,
            scope,
            watched,
            tx,
            shutdown,
            hand_over: None,
            reconnect,
        }
    }

    /// Opens the stream for `open`: errors are returned, not sent. Also says where it starts.
    pub(crate) async fn open_first(
        &self,
        from: Resume,
    ) -> Result<(ChangeStream<RawDocumentBuf>, Position), SourceError> {
        let stream = match self.open_stream(&from).await {
            Ok(s) => s,
            Err(e) => return Err(self.failure(&e, &from).await),
        };
        let start = match from {
            Resume::After(token) => event::token_position(token),
            Resume::At(ts) => time_position(ts),
            Resume::Now => match stream.resume_token().and_then(|t| token_to_bytes(&t)) {
                Some(bytes) => event::token_position(bytes),
                None => time_position(self.cluster_time().await?),
            },
        };
        Ok((stream, start))
    }

    /// The deployment's current cluster time.
    pub(crate) async fn cluster_time(&self) -> Result<Timestamp, SourceError> {
        let hello = self
            .client
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| connect_error(&self.config, &e, Purpose::ChangeStream))?;
        let from_cluster = hello
            .get_document("$clusterTime")
            .ok()
            .and_then(|c| c.get_timestamp("clusterTime").ok());
        hello
            .get_timestamp("operationTime")
            .ok()
            .or(from_cluster)
            .ok_or_else(|| SourceError::Other {
                reason: "the server reports no cluster time (change streams need a replica set)"
                    .into(),
                class: ErrorClass::Definite,
            })
    }

    fn pipeline(&self) -> Vec<Document> {
        let mut stages = Vec::new();
        let includes = self.config.filter.includes();
        let excludes = self.config.filter.excludes();
        let ns_doc = |p: &stream_core::NamespacePattern| {
            let (db, coll) = (p.db_part(), p.table_part());
            doc! {"ns.db": {"$regex": glob_regex(db)}, "ns.coll": {"$regex": glob_regex(coll)}}
        };
        // Events without a collection (invalidate, dropDatabase) always pass; the client-side
        // filter decides on those.
        let no_coll = doc! {"ns.coll": {"$exists": false}};
        if !includes.is_empty() {
            let mut any: Vec<Document> = includes.iter().map(ns_doc).collect();
            any.push(no_coll.clone());
            stages.push(doc! {"$match": {"$or": any}});
        }
        if !excludes.is_empty() {
            let none: Vec<Document> = excludes.iter().map(ns_doc).collect();
            stages.push(doc! {"$match": {"$nor": none}});
        }
        if self.config.split_large_events {
            stages.push(doc! {"$changeStreamSplitLargeEvent": {}});
        }
        stages
    }

    fn configure<'a>(&self, watch: Watch<'a>, from: &Resume) -> Result<Watch<'a>, DriverError> {
        let mut watch = watch
            .pipeline(self.pipeline())
            .max_await_time(self.config.max_await);
        watch = match self.config.full_document {
            FullDocument::Off => watch,
            FullDocument::UpdateLookup => watch.full_document(FullDocumentType::UpdateLookup),
            FullDocument::WhenAvailable => watch.full_document(FullDocumentType::WhenAvailable),
            FullDocument::Required => watch.full_document(FullDocumentType::Required),
        };
        watch = match self.config.pre_images {
            PreImages::Off => watch,
            PreImages::WhenAvailable => {
                watch.full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
            }
            PreImages::Required => {
                watch.full_document_before_change(FullDocumentBeforeChangeType::Required)
            }
        };
        Ok(match from {
            Resume::Now => watch,
            Resume::At(ts) => watch.start_at_operation_time(*ts),
            // startAfter, unlike resumeAfter, also accepts an invalidate event's token.
            Resume::After(token) => watch.start_after(token_from_bytes(token)?),
        })
    }

    async fn open_stream(
        &self,
        from: &Resume,
    ) -> Result<ChangeStream<RawDocumentBuf>, DriverError> {
        let stream = match &self.scope {
            Scope::Deployment => self.configure(self.stream_client.watch(), from)?.await?,
            Scope::Database(db) => {
                let db = self.stream_client.database(db);
                self.configure(db.watch(), from)?.await?
            }
            Scope::Collection(db, coll) => {
                let coll = self.stream_client.database(db).collection::<Document>(coll);
                self.configure(coll.watch(), from)?.await?
            }
        };
        // Raw, so that the nesting is checked before anything recurses through the document.
        Ok(stream.with_type::<RawDocumentBuf>())
    }

    /// The typed error for a failure at `from`: history loss names the oldest position left.
    async fn failure(&self, e: &DriverError, from: &Resume) -> SourceError {
        if command_code(e) == Some(HISTORY_LOST) {
            let oldest = match oldest_oplog_time(&self.client, &self.config).await {
                Ok(ts) => time_position(ts).to_string(),
                Err(_) => "unknown (local.oplog.rs is not readable)".to_owned(),
            };
            return SourceError::PositionPurged {
                requested: from.shown(),
                oldest,
            };
        }
        if !matches!(from, Resume::Now)
            && let Some(why) = bad_position(e)
        {
            return SourceError::Other {
                reason: format!(
                    "position {} cannot be resumed from: {why}; {POSITION_KINDS}",
                    from.shown()
                ),
                class: ErrorClass::Definite,
            };
        }
        let class = classify(e);
        let reason = describe(
            e,
            self.config.uri_parts(),
            Some(selection_timeout(&self.config, SELECTION_TIMEOUT)),
            Purpose::ChangeStream,
            false,
        );
        match e.kind.as_ref() {
            ErrorKind::Authentication { .. } | ErrorKind::ServerSelection { .. } => {
                connect_error(&self.config, e, Purpose::ChangeStream)
            }
            _ if class == ErrorClass::Transient => SourceError::ConnectionLost { reason },
            _ => SourceError::Other {
                reason: format!("change stream at {}: {reason}", from.shown()),
                class,
            },
        }
    }

    /// Hands an item to the batcher; `false` when the consumer is gone. A delivered item is
    /// progress: the next failure starts a new reconnect window.
    async fn send(&mut self, item: Result<Item, SourceError>) -> bool {
        let progress = item.is_ok();
        let sent = self.tx.send(item).await.is_ok();
        if sent && progress {
            self.reconnect.progressed();
        }
        sent
    }

    /// Reads until shutdown, the consumer leaving, or a final error.
    pub(crate) async fn run(mut self, mut stream: ChangeStream<RawDocumentBuf>, first: Resume) {
        let mut last: Option<Vec<u8>> = None;
        let resume_from = |last: &Option<Vec<u8>>, fallback: &Resume| match last {
            Some(token) => Resume::After(token.clone()),
            None => fallback.clone(),
        };
        let mut split = Reassembly::default();
        loop {
            let next = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                next = stream.next_if_any() => next,
            };
            match next {
                Ok(Some(raw)) => {
                    let doc = match self.decode(&raw) {
                        Ok(doc) => doc,
                        Err(e) => {
                            let _ = self.send(Err(e)).await;
                            return;
                        }
                    };
                    let Some(token) = event::token_bytes(&doc) else {
                        let _ = self
                            .send(Err(SourceError::Other {
                                reason: "a change-stream event has no resume token `_id`; \
                                         a pipeline must not remove or modify `_id`"
                                    .into(),
                                class: ErrorClass::Definite,
                            }))
                            .await;
                        return;
                    };
                    let whole = match split.feed(doc) {
                        Ok(Some(whole)) => whole,
                        Ok(None) => continue,
                        Err(reason) => {
                            let _ = self
                                .send(Err(SourceError::Other {
                                    reason: format!("reassembling a split event: {reason}"),
                                    class: ErrorClass::Definite,
                                }))
                                .await;
                            return;
                        }
                    };
                    let invalidated = match self.deliver(&whole, token.clone()).await {
                        Ok(Some(invalidated)) => invalidated,
                        Ok(None) => return,
                        Err(e) => {
                            let _ = self.send(Err(e)).await;
                            return;
                        }
                    };
                    last = Some(token.clone());
                    if invalidated {
                        let from = Resume::After(token);
                        match self.reopen(None, &from).await {
                            Some(s) => stream = s,
                            None => return,
                        }
                        continue;
                    }
                    if let Some(moved) = stream.resume_token().and_then(|t| token_to_bytes(&t))
                        && moved != token
                        && !split.pending()
                    {
                        if !self
                            .send(Ok(Item::Moved(event::token_position(moved.clone()))))
                            .await
                        {
                            return;
                        }
                        last = Some(moved);
                    }
                }
                Ok(None) => {
                    if !split.pending()
                        && let Some(moved) = stream.resume_token().and_then(|t| token_to_bytes(&t))
                        && last.as_ref() != Some(&moved)
                    {
                        if !self
                            .send(Ok(Item::Moved(event::token_position(moved.clone()))))
                            .await
                        {
                            return;
                        }
                        last = Some(moved);
                    }
                    if stream.is_alive() {
                        // The server answered: the connection is back, and the next failure
                        // starts a new reconnect window even on an idle deployment.
                        self.reconnect.progressed();
                    } else {
                        split.clear();
                        let from = resume_from(&last, &first);
                        match self.reopen(None, &from).await {
                            Some(s) => stream = s,
                            None => return,
                        }
                    }
                }
                Err(e) => {
                    // Fragments after the last whole event come again after the resume.
                    split.clear();
                    let from = resume_from(&last, &first);
                    match self.reopen(Some(e), &from).await {
                        Some(s) => stream = s,
                        None => return,
                    }
                }
            }
        }
    }

    /// The change document of a raw event, once its nesting is known to be safe to decode.
    fn decode(&self, raw: &RawDocument) -> Result<Document, SourceError> {
        let ns = || {
            let ns = raw.get_document("ns").ok();
            let part = |name| ns.and_then(|ns| ns.get_str(name).ok()).unwrap_or_default();
            Namespace::new(part("db"), part("coll"))
        };
        let position = || {
            raw.get_document("_id")
                .map(|id| event::token_position(id.as_bytes().to_vec()))
                .ok()
        };
        check_depth(raw, EVENT_ENVELOPE)
            .and_then(|()| crate::bson_value::decode(raw))
            .map_err(|e| undecodable(&ns(), position().as_ref(), &e))
    }

    /// Sends one whole event (unless filtered or already delivered by a snapshot). `None`:
    /// the consumer is gone; `Some(true)`: the event was an invalidate.
    async fn deliver(
        &mut self,
        doc: &Document,
        token: Vec<u8>,
    ) -> Result<Option<bool>, SourceError> {
        let skip = self.already_seen(doc);
        let position = event::token_position(token.clone());
        let converted = event::convert(doc, token, &self.watched).map_err(|e| {
            let ns = event::namespace_of(doc).unwrap_or_else(|| self.watched.clone());
            undecodable(&ns, Some(&position), &e)
        })?;
        let (item, invalidated) = match converted {
            Converted::Event(ev) if !skip && self.wanted(&ev) => (Item::Event(Box::new(ev)), false),
            Converted::Event(ev) => (Item::Moved(ev.position().clone()), false),
            Converted::Invalidate(ev) => (Item::Event(Box::new(ev)), true),
            Converted::Skip => (Item::Moved(position), false),
        };
        Ok(self.send(Ok(item)).await.then_some(invalidated))
    }

    fn wanted(&self, ev: &SourceEvent) -> bool {
        let ns = match ev {
            SourceEvent::Change(c) => &c.namespace,
            SourceEvent::Schema(s) => &s.namespace,
            _ => return true,
        };
        self.config.wants(&ns.db, &ns.table)
    }

    /// Whether the snapshot already delivered the effect of this change.
    fn already_seen(&mut self, doc: &Document) -> bool {
        let Some(hand_over) = &mut self.hand_over else {
            return false;
        };
        let Some((time, increment)) = event::cluster_time(doc) else {
            return false;
        };
        let at = Timestamp { time, increment };
        if hand_over.passed(at) {
            // Past the scan's last read: nothing more to leave out.
            self.hand_over = None;
            return false;
        }
        let (Some(ns), Some(id), Ok(op)) = (
            event::namespace_of(doc),
            doc.get_document("documentKey")
                .ok()
                .and_then(|k| k.get("_id")),
            doc.get_str("operationType"),
        ) else {
            return false;
        };
        hand_over.leaves_out(&ns, id, op, at)
    }

    /// Reopens after an error (or an invalidate/exhausted cursor when `error` is `None`),
    /// retrying transient failures as [`Reconnect`] decides. `None` when shutting down or
    /// after a final error was sent.
    pub(crate) async fn reopen(
        &mut self,
        error: Option<DriverError>,
        from: &Resume,
    ) -> Option<ChangeStream<RawDocumentBuf>> {
        let mut failure = match error {
            Some(e) => Some(self.failure(&e, from).await),
            None => None,
        };
        loop {
            if let Some(f) = failure.take() {
                match self
                    .reconnect
                    .failed(f, &self.shutdown, "MongoDB change stream")
                    .await
                {
                    Retry::Again => {}
                    Retry::GiveUp(e) => {
                        let _ = self.send(Err(e)).await;
                        return None;
                    }
                    Retry::Shutdown => return None,
                }
            }
            match self.open_stream(from).await {
                Ok(s) => {
                    if self.reconnect.failures() > 0 {
                        tracing::info!(from = %from.shown(), "change stream resumed");
                    }
                    return Some(s);
                }
                Err(e) => failure = Some(self.failure(&e, from).await),
            }
        }
    }
}

fn token_from_bytes(bytes: &[u8]) -> Result<ResumeToken, DriverError> {
    Ok(mongodb::bson::from_slice::<ResumeToken>(bytes)?)
}

fn token_to_bytes(token: &ResumeToken) -> Option<Vec<u8>> {
    mongodb::bson::to_vec(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens_survive_the_byte_form() {
        let original = doc! {"_data": "8263A1B2C3000000012B"};
        let mut bytes = Vec::new();
        original.to_writer(&mut bytes).expect("bytes");
        let token = token_from_bytes(&bytes).expect("token");
        assert_eq!(token_to_bytes(&token), Some(bytes));
    }

    #[tokio::test]
    async fn a_mark_ends_its_batch_so_its_position_is_checkpointed_before_what_follows() {
        let at = |t| Position::MongoDb(MongoPosition::ClusterTime { t, i: 1 });
        let (tx, rx) = mpsc::channel(8);
        let mut batches = batches(rx);
        for item in [Item::Mark(at(1)), Item::Moved(at(2)), Item::Moved(at(3))] {
            tx.send(Ok(item)).await.expect("send");
        }
        drop(tx);
        let first = batches.next().await.expect("a batch").expect("no error");
        assert_eq!(
            first.position,
            at(1),
            "the mark alone, though more was waiting"
        );
        let second = batches.next().await.expect("a batch").expect("no error");
        assert_eq!(second.position, at(3));
        assert!(batches.next().await.is_none());
    }
}
