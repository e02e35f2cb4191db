//! The initial snapshot: every wanted collection read in `_id` order, then the change stream
//! from the cluster time taken before the scan, without repeating what the scan delivered.
//!
//! A scan that is not one point-in-time read (chunks, no snapshot read concern: the stand-in
//! and long scans on real servers cannot promise one) still hands over without gap: the stream
//! starts at the cluster time `T0` taken before the first read. Changes between `T0` and a
//! document's read are dropped only when the scan provably saw them: each chunk is a majority
//! read that starts after the previous read's operation time, and every change to a scanned
//! document up to that time is already in what the scan delivered. Later changes are delivered,
//! so a document changed *while its chunk was being read* may be delivered once more
//! (at-least-once for that instant, never a gap).

use mongodb::bson::{Bson, Document, RawDocumentBuf, Timestamp, doc};
use mongodb::options::{CollectionOptions, ReadConcern};
use mongodb::{ClientSession, Collection};
use stream_core::{
    ChangeEvent, ErrorClass, MongoPosition, MongoSnapshotProgress, Namespace, Op, Opened, Position,
    Row, SourceError, SourceEvent, SourceKind,
};
use tokio::sync::mpsc;

use crate::bson_value::{decode_checked, document_to_row, raw_path, value_from_bson};
use crate::config::MongoConfig;
use crate::connect::{SELECTION_TIMEOUT, selection_timeout, spawn_reader, wanted_collections};
use crate::errors::{Purpose, classify, describe, undecodable};
use crate::hand_over::HandOver;
use crate::source::{Item, Resume, Watcher, batches, time_position};

/// Opens a snapshot (or continues one from `progress`), then the change stream.
pub(crate) async fn start(
    watcher: Watcher,
    progress: Option<MongoSnapshotProgress>,
    rx: mpsc::Receiver<Result<Item, SourceError>>,
) -> Result<Opened, SourceError> {
    let collections = wanted(&watcher).await?;
    let mut session = watcher
        .client
        .start_session()
        .await
        .map_err(|e| failed(&watcher.config, "starting a session", &e))?;
    let fresh = progress.is_none();
    let (progress, earlier_attempt) = match progress {
        Some(p) => {
            // After every read of the attempt this one resumes (that process has ended).
            let first = Some(&p.collection).filter(|c| !c.is_empty());
            let started = start_time(&watcher, &mut session, first).await?;
            (p, Some(started))
        }
        None => {
            let t0 = start_time(&watcher, &mut session, collections.first()).await?;
            let progress = MongoSnapshotProgress {
                t: t0.time,
                i: t0.increment,
                collection: collections.first().cloned().unwrap_or_default(),
                after: None,
            };
            (progress, None)
        }
    };
    let start = Position::MongoDb(MongoPosition::Snapshot(progress.clone()));
    let clients = vec![watcher.client.clone(), watcher.stream_client.clone()];
    let keep_open = watcher.tx.clone();
    let shutdown = watcher.shutdown.clone();
    if fresh {
        // Its start, alone in a batch before any document: a stop before the first
        // document's checkpoint resumes this snapshot (and its change stream from `t0`)
        // instead of taking a new one that never tells of documents deleted in between.
        let _ = watcher.tx.send(Ok(Item::Mark(start.clone()))).await;
    }
    let work = scan_then_stream(watcher, session, collections, progress, earlier_attempt);
    spawn_reader(clients, keep_open, shutdown, work);
    Ok(Opened {
        start,
        batches: batches(rx),
    })
}

fn failed(config: &MongoConfig, what: &str, e: &mongodb::error::Error) -> SourceError {
    let selection = Some(selection_timeout(config, SELECTION_TIMEOUT));
    let described = describe(
        e,
        config.uri_parts(),
        selection,
        Purpose::ChangeStream,
        false,
    );
    SourceError::Other {
        reason: format!("snapshot: {what}: {described}"),
        class: classify(e),
    }
}

/// `db.collection` names the filter wants, in name order.
async fn wanted(watcher: &Watcher) -> Result<Vec<String>, SourceError> {
    let pairs = wanted_collections(&watcher.client, &watcher.config)
        .await
        .map_err(|(what, e)| failed(&watcher.config, &what, &e))?;
    let mut names: Vec<String> = pairs
        .into_iter()
        .map(|(db, coll)| format!("{db}.{coll}"))
        .collect();
    // In the order of the names as text: a resumed snapshot compares them so.
    names.sort();
    Ok(names)
}

/// Raw documents: the nesting is checked before anything recurses through a document.
fn majority(watcher: &Watcher, ns: &str) -> Collection<RawDocumentBuf> {
    let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
    watcher.client.database(db).collection_with_options(
        coll,
        CollectionOptions::builder()
            .read_concern(ReadConcern::majority())
            .build(),
    )
}

/// The cluster time the change stream will start at: that of a majority read made before the
/// scan, so that it is not later than any chunk's read point.
async fn start_time(
    watcher: &Watcher,
    session: &mut ClientSession,
    first: Option<&String>,
) -> Result<Timestamp, SourceError> {
    if let Some(ns) = first {
        majority(watcher, ns)
            .find_one(doc! {})
            .session(&mut *session)
            .await
            .map_err(|e| failed(&watcher.config, &format!("reading {ns}"), &e))?;
        if let Some(t) = session.operation_time() {
            return Ok(t);
        }
    }
    watcher.cluster_time().await
}

/// Documents after `_id` `after` in index order (all of them before the first).
fn after_filter(after: Option<&Bson>) -> Document {
    after.map_or_else(Document::new, |id| crate::order::after("_id", id))
}

fn id_text(id: &Bson) -> String {
    id.clone().into_canonical_extjson().to_string()
}

fn id_from_text(ns: &str, text: &str) -> Result<Bson, SourceError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad_progress(ns, text, &e.to_string()))?;
    Bson::try_from(json).map_err(|e| bad_progress(ns, text, &e.to_string()))
}

fn bad_progress(ns: &str, text: &str, reason: &str) -> SourceError {
    SourceError::Other {
        reason: format!("snapshot position for {ns} holds an unreadable _id `{text}`: {reason}"),
        class: ErrorClass::Definite,
    }
}

async fn scan_then_stream(
    mut watcher: Watcher,
    mut session: ClientSession,
    collections: Vec<String>,
    progress: MongoSnapshotProgress,
    earlier_attempt: Option<Timestamp>,
) {
    let t0 = Timestamp {
        time: progress.t,
        increment: progress.i,
    };
    let resumed_after = match &progress.after {
        Some(text) => match id_from_text(&progress.collection, text) {
            Ok(id) => Some((namespace_of(&progress.collection), id)),
            Err(e) => {
                let _ = watcher.tx.send(Err(e)).await;
                return;
            }
        },
        None => None,
    };
    let mut hand_over = HandOver::new(earlier_attempt, resumed_after.clone());
    for ns in collections
        .iter()
        .filter(|ns| ns.as_str() >= progress.collection.as_str())
    {
        let resume_after = resumed_after
            .as_ref()
            .filter(|_| *ns == progress.collection)
            .map(|(_, id)| id.clone());
        let scanned =
            scan_collection(&watcher, &mut session, ns, resume_after, t0, &mut hand_over).await;
        match scanned {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = watcher.tx.send(Err(e)).await;
                return;
            }
        }
    }
    if let Some(last_read) = session.operation_time() {
        hand_over.finish(last_read);
        watcher.hand_over = Some(hand_over);
    }
    let handover = time_position(t0);
    if watcher.tx.send(Ok(Item::Moved(handover))).await.is_err() {
        return;
    }
    let from = Resume::At(t0);
    if let Some(stream) = watcher.reopen(None, &from).await {
        watcher.run(stream, from).await;
    }
}

fn namespace_of(ns_text: &str) -> Namespace {
    let (db, coll) = ns_text.split_once('.').unwrap_or((ns_text, ""));
    Namespace::new(db, coll)
}

/// Reads one collection in chunks; `Ok(false)` when the consumer is gone.
async fn scan_collection(
    watcher: &Watcher,
    session: &mut ClientSession,
    ns_text: &str,
    mut after: Option<Bson>,
    t0: Timestamp,
    hand_over: &mut HandOver,
) -> Result<bool, SourceError> {
    let collection = majority(watcher, ns_text);
    let namespace = namespace_of(ns_text);
    let chunk = watcher.config.snapshot_chunk.max(1);
    loop {
        // Every change up to the previous majority read is visible to this one.
        let seen_until = session.operation_time().unwrap_or(t0);
        hand_over.reading(&namespace, seen_until);
        let mut cursor = collection
            .find(after_filter(after.as_ref()))
            .sort(doc! {"_id": 1})
            .limit(i64::from(chunk))
            .batch_size(chunk)
            .session(&mut *session)
            .await
            .map_err(|e| failed(&watcher.config, &format!("reading {ns_text}"), &e))?;
        let mut docs = Vec::new();
        while let Some(doc) = cursor.next(&mut *session).await {
            docs.push(doc.map_err(|e| failed(&watcher.config, &format!("reading {ns_text}"), &e))?);
        }
        let full = docs.len() >= chunk as usize;
        for raw in docs {
            let Some(id) = raw_path(&raw, "_id") else {
                // An `_id` too deep to read (a document without one cannot be stored).
                if let Err(e) = decode_checked(&raw) {
                    return Err(undecodable(&namespace, None, &e));
                }
                continue;
            };
            let position = Position::MongoDb(MongoPosition::Snapshot(MongoSnapshotProgress {
                t: t0.time,
                i: t0.increment,
                collection: ns_text.to_owned(),
                after: Some(id_text(&id)),
            }));
            let converted = decode_checked(&raw).and_then(|doc| {
                let key: Row = [("_id", value_from_bson(&id)?)].into_iter().collect();
                Ok((key, document_to_row(&doc)?))
            });
            let (key, row) = converted.map_err(|e| undecodable(&namespace, Some(&position), &e))?;
            hand_over.read(&namespace, &id, seen_until);
            let event = ChangeEvent {
                source: SourceKind::MongoDb,
                namespace: namespace.clone(),
                op: Op::Insert,
                key: Some(key),
                before: None,
                after: Some(row),
                update: None,
                position,
                ts_ms: i64::from(t0.time) * 1000,
                txn: None,
            };
            if watcher
                .tx
                .send(Ok(Item::Event(Box::new(SourceEvent::Change(event)))))
                .await
                .is_err()
            {
                return Ok(false);
            }
            after = Some(id);
        }
        if !full {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;

    #[test]
    fn ids_survive_their_text_form() {
        for id in [
            Bson::Int32(7),
            Bson::Int64(1 << 40),
            Bson::String("a\"b".into()),
            Bson::ObjectId(ObjectId::new()),
            Bson::Document(doc! {"a": 1, "b": "x"}),
        ] {
            assert_eq!(id_from_text("d.c", &id_text(&id)).expect("parse"), id);
        }
    }
}
