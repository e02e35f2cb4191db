//! Documents nested deeper than `MAX_DEPTH` (written to the MongoDB of
//! `STREAM_TEST_MONGO_URL`, which accepts 150 levels) are errors naming the collection and the
//! position in the change stream, the snapshot and the polling fallback, and the store's
//! reads: never a stack overflow. Resuming from the position named skips the document.

use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::RawDocumentBuf;
use stream_core::{
    BatchStream, CancellationToken, Namespace, NamespaceFilter, Query, Row, Source, SourceError,
    SourceEvent, StartFrom, Store, Value,
};
use stream_mongo::{MAX_DEPTH, MongoConfig, MongoPollingSource, MongoSource, MongoStore};
use stream_testkit::{Server, unique_name};

const WAIT: Duration = Duration::from_secs(20);
/// Deeper than `MAX_DEPTH` and the change document's envelope, within what the stand-in takes.
const LEVELS: usize = 150;

/// `{_id: id, a: {a: ... {leaf: 1}}}`, `levels` documents inside the top-level one.
fn deep(id: i32, levels: usize) -> RawDocumentBuf {
    let mut inner = RawDocumentBuf::new();
    inner.append("leaf", 1);
    for _ in 0..levels {
        let mut outer = RawDocumentBuf::new();
        outer.append("a", inner);
        inner = outer;
    }
    let mut top = RawDocumentBuf::new();
    top.append("_id", id);
    for (name, value) in inner.iter().map(|e| e.expect("element")) {
        top.append_ref(name, value);
    }
    top.append("updatedAt", 1);
    top
}

async fn collection(db: &str) -> mongodb::Collection<RawDocumentBuf> {
    mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client")
        .database(db)
        .collection("t")
}

fn config(db: &str) -> MongoConfig {
    let mut c = MongoConfig::from_url(&Server::Mongo.url()).expect("url");
    c.filter = NamespaceFilter::parse(&format!("{db}.t"), "").expect("filter");
    c
}

/// The first error of the stream, after any events.
async fn first_error(batches: &mut BatchStream) -> (SourceError, Vec<SourceEvent>) {
    let mut events = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match batches
                .next()
                .await
                .expect("the stream ended without an error")
            {
                Ok(batch) => events.extend(batch.events),
                Err(e) => return (e, events),
            }
        }
    })
    .await
    .expect("no error arrived")
}

/// The error names the collection, the field and a position; returns the position.
fn position_of(err: &SourceError, ns: &str) -> String {
    let SourceError::Decode {
        table,
        column,
        position,
        reason,
    } = err
    else {
        panic!("expected a decode error, got {err:?}");
    };
    assert_eq!(table, ns, "{err}");
    assert!(column.contains("a.a.a"), "{err}");
    assert!(
        reason.contains(&format!("deeper than {MAX_DEPTH} levels")),
        "{err}"
    );
    assert!(reason.contains("resume from this position"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
    position.clone()
}

fn keys(events: &[SourceEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Change(c) => c.key.as_ref().and_then(|k| k.get("_id")).cloned(),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_deep_document_in_the_change_stream_is_an_error_naming_collection_and_position() {
    let db = unique_name("deep");
    let coll = collection(&db).await;
    coll.insert_one(deep(0, 1)).await.expect("create");
    let opened = MongoSource::new(config(&db))
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("open");
    let mut batches = opened.batches;
    coll.insert_one(deep(1, 3)).await.expect("shallow insert");
    coll.insert_one(deep(2, LEVELS)).await.expect("deep insert");
    coll.insert_one(deep(3, 3)).await.expect("shallow insert");
    let (err, before) = first_error(&mut batches).await;
    assert_eq!(keys(&before), [Value::Int(1)]);
    let position = position_of(&err, &format!("{db}.t"));
    assert!(position.starts_with("mongodb:"), "{err}");
    // Resuming from the position named skips the deep document.
    let opened = MongoSource::new(config(&db))
        .open(
            StartFrom::Position(position.parse().expect("position")),
            CancellationToken::new(),
        )
        .await
        .expect("resume");
    let mut batches = opened.batches;
    let next = tokio::time::timeout(WAIT, async {
        loop {
            let batch = batches.next().await.expect("stream").expect("batch");
            if !batch.events.is_empty() {
                return batch.events;
            }
        }
    })
    .await
    .expect("the event after the deep document");
    assert_eq!(keys(&next), [Value::Int(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_deep_document_in_a_snapshot_and_in_polling_is_an_error_naming_collection_and_position()
 {
    let db = unique_name("deepscan");
    let coll = collection(&db).await;
    coll.insert_many([deep(1, 3), deep(2, LEVELS), deep(3, 3)])
        .await
        .expect("seed");
    let ns = format!("{db}.t");

    let opened = MongoSource::new(config(&db))
        .open(StartFrom::Snapshot, CancellationToken::new())
        .await
        .expect("snapshot");
    let mut batches = opened.batches;
    let (err, before) = first_error(&mut batches).await;
    assert_eq!(keys(&before), [Value::Int(1)]);
    let position = position_of(&err, &ns);
    assert!(position.starts_with("mongodb-snapshot:"), "{err}");
    let opened = MongoSource::new(config(&db))
        .open(
            StartFrom::Position(position.parse().expect("position")),
            CancellationToken::new(),
        )
        .await
        .expect("resume the snapshot");
    let mut batches = opened.batches;
    let next = batches.next().await.expect("stream").expect("batch");
    assert_eq!(keys(&next.events), [Value::Int(3)]);

    let opened = MongoPollingSource::new(config(&db), "updatedAt")
        .interval(Duration::from_millis(50))
        .safety_lag(Duration::ZERO)
        .open(StartFrom::Earliest, CancellationToken::new())
        .await
        .expect("poll");
    let mut batches = opened.batches;
    let (err, _) = first_error(&mut batches).await;
    assert!(position_of(&err, &ns).starts_with("mongodb-poll:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_deep_document_read_through_the_store_is_an_error_naming_collection_and_id() {
    let db = unique_name("deepstore");
    let coll = collection(&db).await;
    coll.insert_one(deep(7, LEVELS)).await.expect("insert");
    let store = MongoStore::connect(&Server::Mongo.url())
        .await
        .expect("store");
    let ns = Namespace::new(db.as_str(), "t");
    let key: Row = [("_id", Value::Int(7))].into_iter().collect();
    for err in [
        store.read(&ns, &key).await.expect_err("read"),
        store
            .query(&ns, &Query::filter(stream_core::Filter::All))
            .await
            .expect_err("query"),
    ] {
        let text = err.to_string();
        assert!(text.contains(&format!("`{db}.t`")), "{text}");
        assert!(text.contains("_id 7") && text.contains("a.a.a"), "{text}");
        assert!(
            text.contains(&format!("deeper than {MAX_DEPTH} levels")),
            "{text}"
        );
    }
    // Writing one is refused before it reaches the server.
    let mut value = Value::Int(1);
    for _ in 0..LEVELS {
        value = Value::Document([("a", value)].into_iter().collect());
    }
    let row: Row = [("_id", Value::Int(8)), ("a", value)].into_iter().collect();
    let key: Row = [("_id", Value::Int(8))].into_iter().collect();
    let err = store.write(&ns, &key, &row).await.expect_err("write");
    assert!(err.to_string().contains("deeper than"), "{err}");
}
