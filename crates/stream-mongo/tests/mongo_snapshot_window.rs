//! The snapshot's hand-over window against the MongoDB of `STREAM_TEST_MONGO_URL`: changes
//! made between the snapshot's start `T0` and the read of a document's range are in what the
//! scan delivered (or, for a delete, correctly absent from it), so the stream that follows
//! does not print them; a resumed snapshot still prints every change a consumer may need,
//! those of documents the interrupted attempt printed included.
//!
//! The scan is held back without a sleep: the source hands over at most a bounded number of
//! events ahead of its consumer, so while the test reads nothing, a scan of a large first
//! collection cannot reach the second one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{Document, doc};
use stream_core::{
    BatchStream, CancellationToken, ChangeEvent, NamespaceFilter, Op, Position, Source,
    SourceEvent, StartFrom,
};
use stream_mongo::{FullDocument, MongoConfig, MongoSource};
use stream_testkit::{Server, unique_name};

const WAIT: Duration = Duration::from_secs(60);
/// Far more documents than the source hands over ahead of its consumer.
const LARGE: i32 = 3_000;

async fn client() -> mongodb::Client {
    mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client")
}

fn config(db: &str) -> MongoConfig {
    let mut c = MongoConfig::from_url(&Server::Mongo.url()).expect("STREAM_TEST_MONGO_URL");
    c.filter = NamespaceFilter::parse(&format!("{db}.*"), "").expect("filter");
    c.full_document = FullDocument::Off;
    c.snapshot_chunk = 100;
    c
}

async fn open(config: MongoConfig, from: StartFrom) -> BatchStream {
    MongoSource::new(config)
        .open(from, CancellationToken::new())
        .await
        .expect("open")
        .batches
}

/// `a` with [`LARGE`] documents, `b` with `_id`s 1 to 10.
async fn seed(db: &str) -> (mongodb::Collection<Document>, mongodb::Collection<Document>) {
    let client = client().await;
    let a = client.database(db).collection::<Document>("a");
    let b = client.database(db).collection::<Document>("b");
    let docs: Vec<Document> = (1..=LARGE).map(|i| doc! {"_id": i, "v": 0}).collect();
    a.insert_many(docs).await.expect("seed a");
    let docs: Vec<Document> = (1..=10).map(|i| doc! {"_id": i, "v": 0}).collect();
    b.insert_many(docs).await.expect("seed b");
    (a, b)
}

/// A printed event as `(collection/_id, op, from the snapshot)`.
fn line(c: &ChangeEvent) -> (String, Op, bool) {
    let json: serde_json::Value = serde_json::from_str(&c.to_json()).expect("contract JSON");
    (
        format!("{}/{}", c.namespace.table, json["key"]["_id"]),
        c.op,
        c.position.to_string().starts_with("mongodb-snapshot:"),
    )
}

/// Inserts `c/"end"`, the mark [`until_end`] reads up to.
async fn mark_end(db: &str) {
    client()
        .await
        .database(db)
        .collection::<Document>("c")
        .insert_one(doc! {"_id": "end"})
        .await
        .expect("marker");
}

/// Every change event until (and with) the stream's insert of `c/"end"`.
async fn until_end(batches: &mut BatchStream) -> Vec<(String, Op, bool)> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let batch = batches.next().await.expect("stream ended").expect("batch");
            for event in batch.events {
                if let SourceEvent::Change(c) = event {
                    out.push(line(&c));
                    if out.last().is_some_and(|l| l.0 == "c/\"end\"") {
                        return;
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the end marker never came; {} events", out.len()));
    out
}

/// The consumer's view: deletes and updates of documents it never received, by key.
fn unknown_targets(lines: &[(String, Op, bool)]) -> Vec<String> {
    let mut held = BTreeSet::new();
    let mut unknown = Vec::new();
    for (key, op, _) in lines {
        match op {
            Op::Delete if !held.remove(key) => unknown.push(format!("delete {key}")),
            Op::Update if !held.contains(key) => unknown.push(format!("update {key}")),
            Op::Delete | Op::Update => {}
            _ => {
                held.insert(key.clone());
            }
        }
    }
    unknown
}

fn stream_lines(lines: &[(String, Op, bool)], collection: &str) -> Vec<(String, Op)> {
    lines
        .iter()
        .filter(|(key, _, snapshot)| !snapshot && key.starts_with(&format!("{collection}/")))
        .map(|(key, op, _)| (key.clone(), *op))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_snapshot_prints_no_change_of_a_document_gone_before_its_collection_was_read() {
    let db = unique_name("snapwin");
    let (_a, b) = seed(&db).await;
    let mut batches = open(config(&db), StartFrom::Snapshot).await;
    // `T0` is taken; the scan is held in `a` while nothing is read.
    b.delete_one(doc! {"_id": 3}).await.expect("delete");
    b.update_one(doc! {"_id": 4}, doc! {"$set": {"v": 1}})
        .await
        .expect("update");
    b.delete_one(doc! {"_id": 4}).await.expect("delete");
    b.insert_one(doc! {"_id": 100}).await.expect("insert");
    b.update_one(doc! {"_id": 100}, doc! {"$set": {"v": 1}})
        .await
        .expect("update");
    b.delete_one(doc! {"_id": 100}).await.expect("delete");
    b.update_one(doc! {"_id": 5}, doc! {"$set": {"v": 1}})
        .await
        .expect("update");
    b.insert_one(doc! {"_id": 101}).await.expect("insert");
    mark_end(&db).await;
    let lines = until_end(&mut batches).await;
    assert_eq!(
        unknown_targets(&lines),
        Vec::<String>::new(),
        "changes of documents the scan never delivered"
    );
    assert_eq!(
        stream_lines(&lines, "b"),
        Vec::<(String, Op)>::new(),
        "every change of `b` is in what its scan read"
    );
    let scanned: BTreeSet<String> = lines
        .iter()
        .filter(|(key, _, snapshot)| *snapshot && key.starts_with("b/"))
        .map(|(key, _, _)| key.clone())
        .collect();
    let want: BTreeSet<String> = [1, 2, 5, 6, 7, 8, 9, 10, 101]
        .iter()
        .map(|i| format!("b/{i}"))
        .collect();
    assert_eq!(scanned, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_resumed_snapshot_prints_the_updates_and_deletes_of_documents_its_first_attempt_may_have_printed()
 {
    let db = unique_name("snapwinresume");
    let (a, b) = seed(&db).await;
    let cfg = config(&db);
    // The first attempt: its start, then a batch of documents; "killed" with its checkpoint at
    // `a/10` while it had printed more (at-least-once: a kill can come before the save).
    let mut first = open(cfg.clone(), StartFrom::Snapshot).await;
    let mut printed = Vec::new();
    let mut checkpoint: Option<Position> = None;
    tokio::time::timeout(WAIT, async {
        while printed.len() < 20 {
            let batch = first.next().await.expect("stream").expect("batch");
            for event in batch.events {
                if let SourceEvent::Change(c) = event {
                    if line(&c).0 == "a/10" {
                        checkpoint = Some(c.position.clone());
                    }
                    printed.push(line(&c));
                }
            }
        }
    })
    .await
    .expect("the first attempt's documents");
    drop(first);
    let checkpoint = checkpoint.expect("a/10 was printed");
    assert!(printed.iter().any(|l| l.0 == "a/12"), "{printed:?}");

    // Between the attempts: a document before the checkpoint and one the first attempt
    // printed after it are deleted; one of `b` it never reached is updated, then deleted.
    for id in [5, 12] {
        a.delete_one(doc! {"_id": id}).await.expect("delete");
    }
    b.update_one(doc! {"_id": 3}, doc! {"$set": {"v": 2}})
        .await
        .expect("update");
    b.delete_one(doc! {"_id": 3}).await.expect("delete");
    let mut resumed = open(cfg, StartFrom::Position(checkpoint)).await;
    // The resumed scan is held in `a`: a document born and gone before `b` is read, one born
    // and kept, and an update of one that stays.
    b.insert_one(doc! {"_id": 100}).await.expect("insert");
    b.delete_one(doc! {"_id": 100}).await.expect("delete");
    b.insert_one(doc! {"_id": 101}).await.expect("insert");
    b.update_one(doc! {"_id": 4}, doc! {"$set": {"v": 1}})
        .await
        .expect("update");
    mark_end(&db).await;
    let lines = until_end(&mut resumed).await;
    let mut all = printed.clone();
    all.extend(lines.iter().cloned());
    let stream: BTreeMap<String, Vec<Op>> = stream_lines(&lines, "a")
        .into_iter()
        .chain(stream_lines(&lines, "b"))
        .fold(BTreeMap::new(), |mut m, (key, op)| {
            m.entry(key).or_default().push(op);
            m
        });
    assert_eq!(stream.get("a/5"), Some(&vec![Op::Delete]), "{stream:?}");
    assert_eq!(
        stream.get("a/12"),
        Some(&vec![Op::Delete]),
        "printed by the first attempt after its checkpoint: {stream:?}"
    );
    assert_eq!(
        stream.get("b/3"),
        Some(&vec![Op::Update, Op::Delete]),
        "the first attempt may have got this far before its kill, so the consumer may hold \
         it: {stream:?}"
    );
    for gone_or_read in ["b/100", "b/101", "b/4"] {
        assert_eq!(stream.get(gone_or_read), None, "{stream:?}");
    }
    // Whatever the consumer holds, it ends with the collections' documents.
    let mut held = BTreeSet::new();
    for (key, op, _) in &all {
        match op {
            Op::Delete => {
                held.remove(key);
            }
            Op::Update => {}
            _ => {
                held.insert(key.clone());
            }
        }
    }
    for key in ["a/5", "a/12", "b/3", "b/100"] {
        assert!(!held.contains(key), "{key} is held after its delete");
    }
    for key in ["a/11", "a/13", "b/4", "b/101"] {
        assert!(held.contains(key), "{key} is missing");
    }
}
