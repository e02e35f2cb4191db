//! `MongoPollingSource` against the MongoDB of `STREAM_TEST_MONGO_URL`: inserts and updates
//! arrive once each in field order, ties on the field are broken by `_id` across chunks, every
//! delivered position resumes exactly after its event, deletes are invisible (as documented),
//! `end` skips what exists, the safety lag holds back recent dates, filters apply, and other
//! position kinds are refused by name.

use std::time::Duration;

use crate::support::assert_no_more;
use futures::StreamExt;
use mongodb::bson::{Bson, DateTime, Document, doc};
use stream_core::{
    Batch, BatchStream, CancellationToken, ChangeEvent, MongoPosition, NamespaceFilter, Op,
    PollCursor, PollProgress, Position, Source, SourceError, SourceEvent, StartFrom, Value,
};
use stream_mongo::{MongoConfig, MongoPollingSource};
use stream_testkit::{Server, unique_name};

const WAIT: Duration = Duration::from_secs(20);
/// Ten polling intervals without an event count as "nothing more comes".
const QUIET: Duration = Duration::from_millis(500);

async fn client() -> mongodb::Client {
    mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client")
}

fn config(include: &str, exclude: &str) -> MongoConfig {
    let mut c = MongoConfig::from_url(&Server::Mongo.url()).expect("STREAM_TEST_MONGO_URL");
    c.filter = NamespaceFilter::parse(include, exclude).expect("filter");
    c
}

fn poller(config: MongoConfig, field: &str) -> MongoPollingSource {
    MongoPollingSource::new(config, field)
        .interval(Duration::from_millis(50))
        .safety_lag(Duration::ZERO)
}

async fn open(
    mut source: MongoPollingSource,
    from: StartFrom,
) -> (BatchStream, Position, CancellationToken) {
    let shutdown = CancellationToken::new();
    let opened = source.open(from, shutdown.clone()).await.expect("open");
    (opened.batches, opened.start, shutdown)
}

/// Batches until `n` changes arrived (exactly `n`).
async fn next_batches(batches: &mut BatchStream, n: usize) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    let count = |out: &[Batch]| out.iter().map(|b| b.events.len()).sum::<usize>();
    tokio::time::timeout(WAIT, async {
        while count(&out) < n {
            let batch = batches.next().await.expect("stream ended").expect("batch");
            out.push(batch);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} changes arrived: {out:?}", count(&out)));
    assert_eq!(count(&out), n, "more changes than expected: {out:?}");
    out
}

fn changes(batches: Vec<Batch>) -> Vec<ChangeEvent> {
    batches
        .into_iter()
        .flat_map(|b| b.events)
        .map(|e| match e {
            SourceEvent::Change(c) => c,
            other => panic!("expected a document change, got {other:?}"),
        })
        .collect()
}

async fn next_changes(batches: &mut BatchStream, n: usize) -> Vec<ChangeEvent> {
    changes(next_batches(batches, n).await)
}

fn id(c: &ChangeEvent) -> i64 {
    match c.key.as_ref().and_then(|k| k.get("_id")) {
        Some(Value::Int(i)) => *i,
        other => panic!("expected an integer _id key, got {other:?}"),
    }
}

fn ids(changes: &[ChangeEvent]) -> Vec<i64> {
    changes.iter().map(id).collect()
}

fn after_field<'a>(c: &'a ChangeEvent, name: &str) -> &'a Value {
    c.after
        .as_ref()
        .and_then(|a| a.get(name))
        .unwrap_or_else(|| panic!("no `{name}` in {c:?}"))
}

fn at(base: i64, seconds: i64) -> DateTime {
    DateTime::from_millis(base + seconds * 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_sees_inserts_and_updates_once_in_field_order_but_never_deletes() {
    let db = unique_name("poll");
    let coll = client()
        .await
        .database(&db)
        .collection::<Document>("orders");
    let base = DateTime::now().timestamp_millis() - 3_600_000;
    coll.insert_many([
        doc! {"_id": 1, "v": "a", "updatedAt": at(base, 3)},
        doc! {"_id": 2, "v": "b", "updatedAt": at(base, 1)},
        doc! {"_id": 3, "v": "c", "updatedAt": at(base, 2)},
        doc! {"_id": 8, "v": "no field"},
        doc! {"_id": 9, "v": "null field", "updatedAt": Bson::Null},
    ])
    .await
    .expect("insert");

    let (mut batches, start, shutdown) = open(
        poller(config(&format!("{db}.*"), ""), "updatedAt"),
        StartFrom::Earliest,
    )
    .await;
    assert_eq!(
        start,
        Position::MongoDb(MongoPosition::Poll(PollProgress::default()))
    );
    let first = next_changes(&mut batches, 3).await;
    assert_eq!(ids(&first), [2, 3, 1], "in updatedAt order");
    for c in &first {
        assert_eq!(c.op, Op::Update, "polling cannot tell inserts from updates");
        assert!(c.before.is_none() && c.update.is_none() && c.txn.is_none());
        assert_eq!(
            (&*c.namespace.db, &*c.namespace.table),
            (db.as_str(), "orders")
        );
        assert_eq!(c.key.as_ref().map(|k| k.len()), Some(1), "the key is _id");
        assert!(
            c.position.to_string().starts_with("mongodb-poll:"),
            "{}",
            c.position
        );
    }
    assert_eq!(first[0].ts_ms, base + 1000, "ts_ms is the date field");
    assert_eq!(after_field(&first[0], "v"), &Value::String("b".into()));
    assert_no_more(&mut batches, QUIET).await;

    coll.update_one(
        doc! {"_id": 2},
        doc! {"$set": {"v": "z", "updatedAt": at(base, 10)}},
    )
    .await
    .expect("update");
    coll.insert_one(doc! {"_id": 4, "v": "d", "updatedAt": at(base, 11)})
        .await
        .expect("insert");
    coll.delete_one(doc! {"_id": 3}).await.expect("delete");
    let second = next_changes(&mut batches, 2).await;
    assert_eq!(ids(&second), [2, 4]);
    assert_eq!(after_field(&second[0], "v"), &Value::String("z".into()));

    // The documented limit: a delete leaves nothing to read.
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    assert_no_more(&mut batches, QUIET).await;

    shutdown.cancel();
    tokio::time::timeout(WAIT, async {
        while let Some(batch) = batches.next().await {
            batch.expect("batch");
        }
    })
    .await
    .expect("the stream ends after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_breaks_ties_by_id_across_chunks_and_resumes_from_every_event() {
    let db = unique_name("poll");
    let coll = client().await.database(&db).collection::<Document>("items");
    coll.insert_many([
        doc! {"_id": 10, "version": 1},
        doc! {"_id": 3, "version": 2},
        doc! {"_id": 1, "version": 2},
        doc! {"_id": 5, "version": 2},
        doc! {"_id": 2, "version": 2},
        doc! {"_id": 4, "version": 2},
        doc! {"_id": 0, "version": 3},
    ])
    .await
    .expect("insert");
    let source = || poller(config(&format!("{db}.items"), ""), "version").chunk(2);

    let (mut batches, _, shutdown) = open(source(), StartFrom::Earliest).await;
    let got = next_batches(&mut batches, 7).await;
    assert!(
        got.iter().all(|b| b.events.len() <= 2),
        "one batch per chunk of 2: {got:?}"
    );
    for b in &got {
        let last = b.events.last().map(|e| e.position().clone());
        assert_eq!(
            last.as_ref(),
            Some(&b.position),
            "a batch ends at its last event"
        );
    }
    let all = changes(got);
    let expected = [10, 1, 2, 3, 4, 5, 0];
    assert_eq!(ids(&all), expected, "version order, ties by _id");
    assert_no_more(&mut batches, QUIET).await;
    shutdown.cancel();

    for (i, change) in all.iter().enumerate() {
        let resume: Position = change
            .position
            .to_string()
            .parse()
            .expect("printed positions parse");
        let (mut batches, start, shutdown) =
            open(source(), StartFrom::Position(resume.clone())).await;
        assert_eq!(start, resume);
        let rest = next_changes(&mut batches, expected.len() - i - 1).await;
        assert_eq!(ids(&rest), expected[i + 1..], "resuming after event {i}");
        assert_no_more(&mut batches, QUIET).await;
        shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_from_end_skips_what_exists_and_reads_new_collections_whole() {
    let db = unique_name("poll");
    let database = client().await.database(&db);
    let a = database.collection::<Document>("a");
    let base = DateTime::now().timestamp_millis() - 3_600_000;
    a.insert_many([
        doc! {"_id": 1, "updatedAt": at(base, 5)},
        doc! {"_id": 2, "updatedAt": at(base, 5)},
        doc! {"_id": 0, "updatedAt": at(base, 1)},
    ])
    .await
    .expect("insert");
    let (mut batches, start, shutdown) = open(
        poller(config(&format!("{db}.*"), ""), "updatedAt"),
        StartFrom::Latest,
    )
    .await;
    let Position::MongoDb(MongoPosition::Poll(progress)) = &start else {
        panic!("expected a mongodb-poll start, got {start}");
    };
    assert!(
        progress.cursors.contains_key(&format!("{db}.a")),
        "{progress:?}"
    );
    assert_no_more(&mut batches, QUIET).await;

    // Same value with a later _id, and a later value: both new.
    a.insert_many([
        doc! {"_id": 3, "updatedAt": at(base, 5)},
        doc! {"_id": 4, "updatedAt": at(base, 6)},
    ])
    .await
    .expect("insert");
    // A collection created after opening is read from its first document.
    database
        .collection::<Document>("b")
        .insert_one(doc! {"_id": 7, "updatedAt": at(base, -100)})
        .await
        .expect("insert");
    let got = next_changes(&mut batches, 3).await;
    let of = |table: &str| -> Vec<i64> {
        got.iter()
            .filter(|c| &*c.namespace.table == table)
            .map(id)
            .collect()
    };
    assert_eq!(of("a"), [3, 4]);
    assert_eq!(of("b"), [7]);
    assert_no_more(&mut batches, QUIET).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_holds_back_dates_newer_than_the_safety_lag() {
    let db = unique_name("poll");
    let coll = client().await.database(&db).collection::<Document>("c");
    let now = DateTime::now().timestamp_millis();
    coll.insert_many([
        doc! {"_id": 1, "updatedAt": at(now, -7200)},
        doc! {"_id": 2, "updatedAt": at(now, 0)},
        doc! {"_id": 3, "updatedAt": at(now, -7100)},
    ])
    .await
    .expect("insert");
    let source =
        poller(config(&format!("{db}.*"), ""), "updatedAt").safety_lag(Duration::from_secs(3600));
    let (mut batches, _, shutdown) = open(source, StartFrom::Earliest).await;
    let got = next_changes(&mut batches, 2).await;
    assert_eq!(ids(&got), [1, 3], "the recent document waits for the lag");
    assert_no_more(&mut batches, QUIET).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_sees_a_value_of_a_later_bson_type() {
    let db = unique_name("poll");
    let coll = client().await.database(&db).collection::<Document>("m");
    coll.insert_one(doc! {"_id": 1, "updatedAt": 5})
        .await
        .expect("insert");
    let (mut batches, _, shutdown) = open(
        poller(config(&format!("{db}.*"), ""), "updatedAt"),
        StartFrom::Earliest,
    )
    .await;
    assert_eq!(ids(&next_changes(&mut batches, 1).await), [1]);
    // Dates sort after numbers in MongoDB's order, so a date counts as newer than 5.
    coll.update_one(
        doc! {"_id": 1},
        doc! {"$set": {"updatedAt": DateTime::from_millis(1_000)}},
    )
    .await
    .expect("update");
    let got = next_changes(&mut batches, 1).await;
    assert_eq!(ids(&got), [1]);
    assert_eq!(got[0].ts_ms, 1_000);
    assert_no_more(&mut batches, QUIET).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_follows_the_include_and_exclude_patterns() {
    let db = unique_name("poll");
    let other_db = unique_name("poll");
    let c = client().await;
    for (d, coll, n) in [
        (&db, "keep", 1),
        (&db, "secret", 2),
        (&db, "other", 3),
        (&other_db, "keep", 4),
        (&other_db, "skip", 5),
    ] {
        c.database(d)
            .collection::<Document>(coll)
            .insert_one(doc! {"_id": n, "updatedAt": n})
            .await
            .expect("insert");
    }
    let cfg = config(&format!("{db}.*,{other_db}.keep"), &format!("{db}.secret"));
    let (mut batches, _, shutdown) = open(poller(cfg, "updatedAt"), StartFrom::Earliest).await;
    let mut got: Vec<(String, i64)> = next_changes(&mut batches, 3)
        .await
        .iter()
        .map(|c| (c.namespace.to_string(), id(c)))
        .collect();
    got.sort();
    let mut expected = vec![
        (format!("{db}.keep"), 1),
        (format!("{db}.other"), 3),
        (format!("{other_db}.keep"), 4),
    ];
    expected.sort();
    assert_eq!(got, expected);
    assert_no_more(&mut batches, QUIET).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_polling_refuses_other_position_kinds_by_name() {
    let db = unique_name("poll");
    for text in [
        "mongodb-time:1700000000.3",
        "mongodb:gmVCb3Jn",
        "binlog:mysql-bin.000001:4+0",
        "mysql-poll:eyJjdXJzb3JzIjp7fX0+0",
    ] {
        let position: Position = text.parse().expect("position");
        let err = poller(config(&format!("{db}.*"), ""), "updatedAt")
            .open(StartFrom::Position(position), CancellationToken::new())
            .await
            .expect_err(text);
        assert!(matches!(err, SourceError::Unsupported { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains(text) && err.contains("mongodb-poll"),
            "{text}: {err}"
        );
    }

    let unreadable = Position::MongoDb(MongoPosition::Poll(PollProgress {
        cursors: [(
            format!("{db}.orders"),
            PollCursor {
                at: "{not json".into(),
                key: None,
            },
        )]
        .into_iter()
        .collect(),
    }));
    let err = poller(config(&format!("{db}.*"), ""), "updatedAt")
        .open(StartFrom::Position(unreadable), CancellationToken::new())
        .await
        .expect_err("unreadable cursor")
        .to_string();
    assert!(
        err.contains(&format!("{db}.orders")) && err.contains("{not json"),
        "{err}"
    );
}
