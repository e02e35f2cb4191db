//! `MongoSource` against the MongoDB of `STREAM_TEST_MONGO_URL` (the secantusdb stand-in under
//! `cargo xtask test`, or a real replica set): every op, every BSON type, pre-images,
//! transactions, filters, resume from every event, quiet streams, invalidate, resumable errors,
//! snapshot handover, bad URLs and credentials. Nothing here depends on the token format.

use std::time::Duration;

use crate::support::assert_no_more;
use futures::StreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use stream_core::{
    BatchStream, CancellationToken, ChangeEvent, NamespaceFilter, Op, Position, SchemaChangeKind,
    Source, SourceError, SourceEvent, StartFrom,
};
use stream_mongo::{FullDocument, MongoConfig, MongoSource, PreImages};
use stream_testkit::{Server, unique_name};

const WAIT: Duration = Duration::from_secs(20);

async fn client() -> mongodb::Client {
    mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client")
}

fn config(include: &str) -> MongoConfig {
    let mut c = MongoConfig::from_url(&Server::Mongo.url()).expect("STREAM_TEST_MONGO_URL");
    c.filter = NamespaceFilter::parse(include, "").expect("filter");
    c
}

async fn open(config: MongoConfig, from: StartFrom) -> (BatchStream, Position) {
    let opened = MongoSource::new(config)
        .open(from, CancellationToken::new())
        .await
        .expect("open");
    (opened.batches, opened.start)
}

/// The next `n` source events (changes and schema changes), in order.
async fn next_events(batches: &mut BatchStream, n: usize) -> Vec<SourceEvent> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while out.len() < n {
            let batch = batches.next().await.expect("stream ended").expect("batch");
            out.extend(batch.events);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} events arrived: {out:?}", out.len()));
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

async fn next_changes(batches: &mut BatchStream, n: usize) -> Vec<ChangeEvent> {
    next_events(batches, n)
        .await
        .into_iter()
        .map(|e| match e {
            SourceEvent::Change(c) => c,
            other => panic!("expected a row change, got {other:?}"),
        })
        .collect()
}

fn json(e: &ChangeEvent) -> serde_json::Value {
    serde_json::from_str(&e.to_json()).expect("contract JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_each_op_maps_to_the_contract() {
    let db = unique_name("ops");
    let coll = client()
        .await
        .database(&db)
        .collection::<Document>("orders");
    let mut cfg = config(&format!("{db}.*"));
    cfg.full_document = FullDocument::UpdateLookup;
    let (mut batches, _) = open(cfg, StartFrom::Latest).await;
    coll.insert_one(doc! {"_id": 1, "status": "new", "items": [1, 2], "meta": {"by": "bob"}})
        .await
        .expect("insert");
    coll.update_one(
        doc! {"_id": 1},
        doc! {"$set": {"status": "paid", "meta.by": "ann"}, "$unset": {"items": ""}},
    )
    .await
    .expect("update");
    // updateLookup reads the document when the event is read: let the update's event be read
    // before the document changes again.
    let mut got: Vec<serde_json::Value> = next_changes(&mut batches, 2)
        .await
        .iter()
        .map(json)
        .collect();
    coll.replace_one(doc! {"_id": 1}, doc! {"status": "replaced"})
        .await
        .expect("replace");
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    got.extend(next_changes(&mut batches, 2).await.iter().map(json));
    let strip = |mut v: serde_json::Value| {
        let o = v.as_object_mut().expect("object");
        assert!(
            o.remove("position")
                .is_some_and(|p| p.as_str().is_some_and(|p| p.starts_with("mongodb:")))
        );
        assert!(
            o.remove("ts_ms")
                .is_some_and(|t| t.as_i64().is_some_and(|t| t > 1_600_000_000_000))
        );
        v
    };
    let got: Vec<serde_json::Value> = got.into_iter().map(strip).collect();
    let expected = |text: &str| -> serde_json::Value {
        serde_json::from_str(&text.replace("DB", &db)).expect("expected JSON")
    };
    assert_eq!(
        got[0],
        expected(
            r#"{"source":"mongodb","db":"DB","table":"orders","op":"insert","key":{"_id":1},"before":null,"after":{"_id":1,"status":"new","items":[1,2],"meta":{"by":"bob"}},"txn":null}"#
        )
    );
    assert_eq!(
        got[1],
        expected(
            r#"{"source":"mongodb","db":"DB","table":"orders","op":"update","key":{"_id":1},"before":null,"after":{"_id":1,"status":"paid","meta":{"by":"ann"}},"update":{"set":{"status":"paid","meta.by":"ann"},"unset":["items"]},"txn":null}"#
        )
    );
    assert_eq!(
        got[2],
        expected(
            r#"{"source":"mongodb","db":"DB","table":"orders","op":"replace","key":{"_id":1},"before":null,"after":{"_id":1,"status":"replaced"},"txn":null}"#
        )
    );
    assert_eq!(
        got[3],
        expected(
            r#"{"source":"mongodb","db":"DB","table":"orders","op":"delete","key":{"_id":1},"before":null,"after":null,"txn":null}"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_updates_carry_the_whole_document_by_default() {
    let db = unique_name("lookup");
    let coll = client().await.database(&db).collection::<Document>("t");
    // Only the filter is set: everything else is as `MongoConfig::from_url` makes it.
    let (mut batches, _) = open(config(&format!("{db}.t")), StartFrom::Latest).await;
    coll.insert_one(doc! {"_id": 1, "status": "new", "total": 5})
        .await
        .expect("insert");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"status": "paid"}})
        .await
        .expect("update");
    let got = next_changes(&mut batches, 2).await;
    assert_eq!(got[1].op, Op::Update);
    assert_eq!(
        json(&got[1])["after"],
        serde_json::json!({"_id": 1, "status": "paid", "total": 5})
    );
    // `off` still gives the update description alone.
    let mut off = config(&format!("{db}.t"));
    off.full_document = FullDocument::Off;
    let (mut batches, _) = open(off, StartFrom::Latest).await;
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"status": "sent"}})
        .await
        .expect("update");
    let got = next_changes(&mut batches, 1).await;
    assert_eq!(json(&got[0])["after"], serde_json::Value::Null);
    assert_eq!(
        json(&got[0])["update"]["set"],
        serde_json::json!({"status": "sent"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_every_bson_type_prints_as_relaxed_extended_json() {
    let db = unique_name("types");
    let coll = client().await.database(&db).collection::<Document>("t");
    let (mut batches, _) = open(config(&format!("{db}.t")), StartFrom::Latest).await;
    let oid = bson::oid::ObjectId::parse_str("65f0a1b2c3d4e5f601234567").expect("oid");
    let document = doc! {
        "_id": oid,
        "i32": 7_i32, "i64": 9_007_199_254_740_993_i64, "dbl": 1.5, "neg0": -0.0,
        "nan": f64::NAN, "inf": f64::INFINITY,
        "dec": Bson::Decimal128("1.10".parse().expect("decimal")),
        "str": "café", "bool": true, "null": Bson::Null,
        "date": bson::DateTime::from_millis(1_709_210_096_789),
        "bin": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2] }),
        "uuid": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![0xab; 16] }),
        "re": Bson::RegularExpression(bson::Regex { pattern: "^a.c$".into(), options: "im".into() }),
        "ts": Bson::Timestamp(bson::Timestamp { time: 1_700_000_000, increment: 3 }),
        "min": Bson::MinKey, "max": Bson::MaxKey,
        "js": Bson::JavaScriptCode("x => x".into()),
        "nested": {"a": [1, {"b": "c"}], "empty": {}}, "arr": [],
    };
    coll.insert_one(document).await.expect("insert");
    let change = next_changes(&mut batches, 1).await.remove(0);
    let mut after = Vec::new();
    stream_core::json::write_row(&mut after, change.after.as_ref().expect("after"));
    assert_eq!(
        String::from_utf8(after).expect("utf8"),
        r#"{"_id":{"$oid":"65f0a1b2c3d4e5f601234567"},"i32":7,"i64":9007199254740993,"dbl":1.5,"neg0":-0.0,"nan":{"$numberDouble":"NaN"},"inf":{"$numberDouble":"Infinity"},"dec":{"$numberDecimal":"1.10"},"str":"café","bool":true,"null":null,"date":{"$date":"2024-02-29T12:34:56.789Z"},"bin":{"$binary":{"base64":"AQI=","subType":"00"}},"uuid":{"$binary":{"base64":"q6urq6urq6urq6urq6urqw==","subType":"04"}},"re":{"$regularExpression":{"pattern":"^a.c$","options":"im"}},"ts":{"$timestamp":{"t":1700000000,"i":3}},"min":{"$minKey":1},"max":{"$maxKey":1},"js":{"$code":"x => x"},"nested":{"a":[1,{"b":"c"}],"empty":{}},"arr":[]}"#
    );
    assert_eq!(
        change.key.as_ref().map(|k| k.len()),
        Some(1),
        "the key is the documentKey"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_pre_images_fill_before_of_updates_and_deletes() {
    let db = unique_name("pre");
    let database = client().await.database(&db);
    database
        .run_command(doc! {"create": "p", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create with pre-images");
    let coll = database.collection::<Document>("p");
    coll.insert_one(doc! {"_id": 1, "v": 1})
        .await
        .expect("insert");
    let mut cfg = config(&format!("{db}.p"));
    cfg.pre_images = PreImages::WhenAvailable;
    let (mut batches, _) = open(cfg, StartFrom::Latest).await;
    coll.update_one(doc! {"_id": 1}, doc! {"$inc": {"v": 1}})
        .await
        .expect("update");
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    let got = next_changes(&mut batches, 2).await;
    assert_eq!(
        json(&got[0])["before"],
        serde_json::json!({"_id": 1, "v": 1})
    );
    assert_eq!(json(&got[1])["op"], "delete");
    assert_eq!(
        json(&got[1])["before"],
        serde_json::json!({"_id": 1, "v": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_transaction_events_share_one_txn_and_resume_from_every_event() {
    let db = unique_name("txn");
    let client = client().await;
    let coll = client.database(&db).collection::<Document>("t");
    coll.insert_one(doc! {"_id": 0})
        .await
        .expect("create collection");
    let (mut batches, start) = open(config(&format!("{db}.t")), StartFrom::Latest).await;
    let mut session = client.start_session().await.expect("session");
    session.start_transaction().await.expect("begin");
    for id in 1..=3 {
        coll.insert_one(doc! {"_id": id})
            .session(&mut session)
            .await
            .expect("insert in txn");
    }
    session.commit_transaction().await.expect("commit");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"after": true}})
        .await
        .expect("update");
    coll.delete_one(doc! {"_id": 2}).await.expect("delete");
    let all = next_changes(&mut batches, 5).await;
    let txns: Vec<Option<&str>> = all.iter().map(|e| e.txn.as_deref()).collect();
    assert!(txns[0].is_some(), "{txns:?}");
    assert!(txns[0] == txns[1] && txns[1] == txns[2], "{txns:?}");
    assert!(
        txns[0].is_some_and(|t| t.contains(':')),
        "lsid:txnNumber, got {txns:?}"
    );
    assert_eq!((txns[3], txns[4]), (None, None));
    // Resuming from the stream's start and from each event's position yields exactly the rest.
    let mut points = vec![start];
    points.extend(all.iter().map(|e| e.position.clone()));
    for (i, point) in points.iter().enumerate() {
        let text = point.to_string();
        let (mut resumed, from) = open(
            config(&format!("{db}.t")),
            StartFrom::Position(text.parse().expect("position parses")),
        )
        .await;
        assert_eq!(from.to_string(), text);
        let rest = next_changes(&mut resumed, all.len() - i).await;
        let keys = |evs: &[ChangeEvent]| {
            evs.iter()
                .map(|e| (e.op, json(e)["key"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&rest), keys(&all[i..]), "resuming after event {i}");
        assert_no_more(&mut resumed, Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_filters_apply_to_the_namespace_so_deletes_are_never_lost() {
    let db = unique_name("filter");
    let client = client().await;
    let database = client.database(&db);
    let mut cfg = config(&format!("{db}.keep*"));
    cfg.filter = NamespaceFilter::parse(&format!("{db}.keep*"), &format!("{db}.keep_secret"))
        .expect("filter");
    let (mut batches, _) = open(cfg, StartFrom::Latest).await;
    for coll in ["keep", "keep_secret", "drop_me", "keep2"] {
        let c = database.collection::<Document>(coll);
        c.insert_one(doc! {"_id": 1}).await.expect("insert");
        c.delete_one(doc! {"_id": 1}).await.expect("delete");
    }
    let got = next_changes(&mut batches, 4).await;
    let seen: Vec<(String, Op)> = got
        .iter()
        .map(|e| (e.namespace.table.to_string(), e.op))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("keep".into(), Op::Insert),
            ("keep".into(), Op::Delete),
            ("keep2".into(), Op::Insert),
            ("keep2".into(), Op::Delete)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_quiet_stream_still_moves_its_position() {
    let db = unique_name("quiet");
    let client = client().await;
    client
        .database(&db)
        .collection::<Document>("t")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("insert");
    let (mut batches, start) = open(config(&format!("{db}.t")), StartFrom::Latest).await;
    // Writes elsewhere (and the server's no-op heartbeats) move the post-batch resume token.
    let other = client
        .database(&unique_name("noise"))
        .collection::<Document>("n");
    let moved = tokio::time::timeout(Duration::from_secs(30), async {
        let mut n = 0;
        loop {
            other.insert_one(doc! {"n": n}).await.expect("noise");
            n += 1;
            if let Ok(Some(batch)) =
                tokio::time::timeout(Duration::from_millis(500), batches.next()).await
            {
                let batch = batch.expect("batch");
                assert!(batch.events.is_empty(), "{:?}", batch.events);
                if batch.position != start {
                    return batch.position;
                }
            }
        }
    })
    .await
    .expect("the position of a quiet stream never moved");
    // Resuming from the moved position still yields the next change.
    let (mut resumed, _) = open(config(&format!("{db}.t")), StartFrom::Position(moved)).await;
    client
        .database(&db)
        .collection::<Document>("t")
        .insert_one(doc! {"_id": 2})
        .await
        .expect("insert");
    assert_eq!(
        json(&next_changes(&mut resumed, 1).await[0])["key"],
        serde_json::json!({"_id": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_drop_invalidates_and_the_stream_goes_on_after_it() {
    let db = unique_name("inval");
    let client = client().await;
    let coll = client.database(&db).collection::<Document>("t");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");
    let (mut batches, _) = open(config(&format!("{db}.t")), StartFrom::Latest).await;
    coll.insert_one(doc! {"_id": 2}).await.expect("insert");
    coll.drop().await.expect("drop");
    let events = next_events(&mut batches, 3).await;
    assert!(matches!(&events[0], SourceEvent::Change(c) if c.op == Op::Insert));
    let kinds: Vec<SchemaChangeKind> = events[1..]
        .iter()
        .map(|e| match e {
            SourceEvent::Schema(s) => s.kind.clone(),
            other => panic!("expected schema events, got {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![SchemaChangeKind::Drop, SchemaChangeKind::Invalidate]
    );
    // The source restarts after the invalidate: the recreated collection is streamed.
    coll.insert_one(doc! {"_id": 3})
        .await
        .expect("insert after drop");
    let again = next_changes(&mut batches, 1).await;
    assert_eq!(json(&again[0])["key"], serde_json::json!({"_id": 3}));
    // The invalidate's position is resumable too.
    let (mut resumed, _) = open(
        config(&format!("{db}.t")),
        StartFrom::Position(events[2].position().clone()),
    )
    .await;
    assert_eq!(
        json(&next_changes(&mut resumed, 1).await[0])["key"],
        serde_json::json!({"_id": 3})
    );
}

/// A stream of a fresh collection `t` (one document in it already) read from its latest
/// change by a client whose `appName` a `failCommand` fail point can single out.
struct FailPointStream {
    /// The server has one `failCommand` fail point, whatever the `appName`: a second test
    /// configuring it would wipe the first one's failures (and `off` clears all).
    one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
    client: mongodb::Client,
    coll: mongodb::Collection<Document>,
    app: String,
    batches: BatchStream,
}

async fn fail_point_stream(prefix: &str) -> FailPointStream {
    static FAIL_POINT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let one_at_a_time = FAIL_POINT.lock().await;
    let db = unique_name(prefix);
    let app = unique_name("app");
    let client = client().await;
    let coll = client.database(&db).collection::<Document>("t");
    coll.insert_one(doc! {"_id": 0}).await.expect("insert");
    let url = Server::Mongo.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut cfg = MongoConfig::from_url(&format!("{url}{sep}appName={app}")).expect("url");
    cfg.filter = NamespaceFilter::parse(&format!("{db}.t"), "").expect("filter");
    let (batches, _) = open(cfg, StartFrom::Latest).await;
    FailPointStream {
        one_at_a_time,
        client,
        coll,
        app,
        batches,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_resumable_errors_and_dropped_connections_are_resumed_without_loss() {
    let FailPointStream {
        one_at_a_time: _one_at_a_time,
        client,
        coll,
        app,
        mut batches,
    } = fail_point_stream("failpoint").await;
    let admin = client.database("admin");
    let mut expected = Vec::new();
    for (round, data) in [
        // More failures in a row than the driver's own single retry absorbs.
        doc! {"failCommands": ["getMore"], "errorCode": 6, "appName": app.as_str()},
        doc! {"failCommands": ["getMore"], "closeConnection": true, "appName": app.as_str()},
    ]
    .into_iter()
    .enumerate()
    {
        admin
            .run_command(
                doc! {"configureFailPoint": "failCommand", "mode": {"times": 3}, "data": data},
            )
            .await
            .expect("fail point (start the server with --enable-test-commands)");
        for i in 0..3 {
            let id = (round * 10 + i + 1) as i32;
            coll.insert_one(doc! {"_id": id}).await.expect("insert");
            expected.push(serde_json::json!({"_id": id}));
        }
        let got = next_changes(&mut batches, 3).await;
        let keys: Vec<serde_json::Value> = got.iter().map(|e| json(e)["key"].clone()).collect();
        assert_eq!(keys, expected[round * 3..], "round {round}");
    }
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .expect("fail point off");
    assert_no_more(&mut batches, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_driver_resume_whose_first_attempt_fails_goes_on_after_the_last_change_not_from_the_start()
 {
    // The driver resumes a change stream by itself after a resumable error, with the token
    // of the last change; if that attempt's aggregate fails and its read retry runs, the
    // retry has lost the token and starts where the stream first started (mongodb 3.9).
    let FailPointStream {
        one_at_a_time: _one_at_a_time,
        client,
        coll,
        app,
        mut batches,
    } = fail_point_stream("resumeretry").await;
    let key = |e: &ChangeEvent| json(e)["key"]["_id"].clone();
    for id in 1..=3 {
        coll.insert_one(doc! {"_id": id}).await.expect("insert");
    }
    let first: Vec<_> = next_changes(&mut batches, 3)
        .await
        .iter()
        .map(key)
        .collect();
    assert_eq!(first, [1, 2, 3]);
    let admin = client.database("admin");
    admin
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 2},
            "data": {
                "failCommands": ["getMore", "aggregate"],
                "closeConnection": true,
                "appName": app.as_str(),
            },
        })
        .await
        .expect("fail point (start the server with --enable-test-commands)");
    for id in 4..=6 {
        coll.insert_one(doc! {"_id": id}).await.expect("insert");
    }
    let then: Vec<_> = next_changes(&mut batches, 3)
        .await
        .iter()
        .map(key)
        .collect();
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .expect("fail point off");
    assert_eq!(
        then,
        [4, 5, 6],
        "after the last change delivered, nothing again"
    );
    assert_no_more(&mut batches, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_bad_urls_and_wrong_credentials_fail_clearly_without_the_password() {
    let bad = MongoConfig::from_url("mongo://x").expect_err("scheme");
    assert!(bad.to_string().contains("mongodb://"), "{bad}");
    let url = Server::Mongo
        .url()
        .replacen("mongodb://", "mongodb://nobody:Sup3rSecret@", 1);
    let err = MongoSource::new(MongoConfig::from_url(&url).expect("url"))
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect_err("wrong credentials");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Connect { .. }), "{err:?}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("Sup3rSecret") && !format!("{err:?}").contains("Sup3rSecret"),
        "{text}"
    );
    let mut unreachable =
        MongoConfig::from_url("mongodb://u:Sup3rSecret@127.0.0.1:1/?serverSelectionTimeoutMS=500")
            .expect("url");
    unreachable.reconnect_for = Duration::ZERO;
    let err = MongoSource::new(unreachable)
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(!err.to_string().contains("Sup3rSecret"), "{err}");
    let err = MongoSource::new(config("x.y"))
        .open(
            StartFrom::Position("binlog:f.000001:4+0".parse().expect("pos")),
            CancellationToken::new(),
        )
        .await
        .expect_err("a binlog position");
    assert!(
        err.to_string()
            .contains("not a MongoDB change-stream position"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_start_from_the_oldest_change_sees_earlier_writes() {
    let db = unique_name("oldest");
    let coll = client().await.database(&db).collection::<Document>("t");
    coll.insert_one(doc! {"_id": "before the stream"})
        .await
        .expect("insert");
    let (mut batches, start) = open(config(&format!("{db}.t")), StartFrom::Earliest).await;
    assert!(start.to_string().starts_with("mongodb-time:"), "{start}");
    let first = next_changes(&mut batches, 1).await;
    assert_eq!(
        json(&first[0])["key"],
        serde_json::json!({"_id": "before the stream"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_large_events_are_split_by_the_server_and_joined_again() {
    let db = unique_name("split");
    let database = client().await.database(&db);
    database
        .run_command(doc! {"create": "big", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create");
    let coll = database.collection::<Document>("big");
    let nine_mb = |c: char| c.to_string().repeat(9 << 20);
    coll.insert_one(doc! {"_id": 1, "a": nine_mb('x')})
        .await
        .expect("insert");
    let mut cfg = config(&format!("{db}.big"));
    cfg.split_large_events = true;
    cfg.full_document = FullDocument::UpdateLookup;
    cfg.pre_images = PreImages::Required;
    let (mut batches, _) = open(cfg, StartFrom::Latest).await;
    // before (9 MB) + after (9 MB) + update description (9 MB): over the 16 MB BSON limit.
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"a": nine_mb('y')}})
        .await
        .expect("update");
    coll.insert_one(doc! {"_id": 2})
        .await
        .expect("small insert");
    let got = next_changes(&mut batches, 2).await;
    let len = |row: &Option<stream_core::Row>| match row.as_ref().and_then(|r| r.get("a")) {
        Some(stream_core::Value::String(s)) => (s.len(), s.chars().next()),
        other => panic!("{other:?}"),
    };
    assert_eq!(got[0].op, Op::Update);
    assert_eq!(len(&got[0].before), (9 << 20, Some('x')));
    assert_eq!(len(&got[0].after), (9 << 20, Some('y')));
    assert_eq!(got[0].update.as_ref().map(|u| u.set.len()), Some(1));
    assert_eq!(json(&got[1])["key"], serde_json::json!({"_id": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_snapshot_hands_over_to_the_stream_without_gap_or_duplicate() {
    let db = unique_name("snap");
    let client = client().await;
    let coll = client.database(&db).collection::<Document>("t");
    let docs: Vec<Document> = (0..250).map(|i| doc! {"_id": i, "v": 0}).collect();
    coll.insert_many(docs).await.expect("seed");
    client
        .database(&db)
        .collection::<Document>("u")
        .insert_one(doc! {"_id": "only"})
        .await
        .expect("seed u");
    let mut cfg = config(&format!("{db}.*"));
    cfg.snapshot_chunk = 40;
    let (mut batches, start) = open(cfg, StartFrom::Snapshot).await;
    assert!(
        start.to_string().starts_with("mongodb-snapshot:"),
        "{start}"
    );
    // Writes while the scan runs: to documents already scanned, not yet scanned, and new ones.
    let writer = tokio::spawn(async move {
        for i in [0, 249, 120, 5] {
            coll.update_one(doc! {"_id": i}, doc! {"$set": {"v": 1}})
                .await
                .expect("update");
        }
        coll.insert_one(doc! {"_id": 1000, "v": 1})
            .await
            .expect("insert");
        coll.delete_one(doc! {"_id": 7}).await.expect("delete");
    });
    // Replay everything into a map: the end state must equal the collection's.
    let mut state: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    let mut snapshot_rows = 0;
    let mut last_position = start.clone();
    writer.await.expect("writer");
    let expected = {
        let mut cursor = client
            .database(&db)
            .collection::<Document>("t")
            .find(doc! {})
            .await
            .expect("find");
        let mut m = std::collections::BTreeMap::new();
        while let Some(d) = cursor.next().await {
            let d = d.expect("doc");
            m.insert(
                format!("t/{}", d.get("_id").expect("id")),
                serde_json::Value::from(d.get_i32("v").expect("v")),
            );
        }
        m.insert("u/\"only\"".into(), serde_json::Value::Null);
        m
    };
    let mut seen_keys = std::collections::BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while state != expected {
            let batch = batches.next().await.expect("stream").expect("batch");
            last_position = batch.position.clone();
            for event in batch.events {
                let SourceEvent::Change(c) = event else {
                    continue;
                };
                let j = json(&c);
                let key = format!("{}/{}", c.namespace.table, j["key"]["_id"]);
                if c.position.to_string().starts_with("mongodb-snapshot:") {
                    snapshot_rows += 1;
                    assert!(seen_keys.insert(key.clone()), "{key} scanned twice");
                }
                match c.op {
                    Op::Delete => {
                        state.remove(&key);
                    }
                    Op::Update => {
                        let v = j["update"]["set"]["v"].clone();
                        assert!(
                            state.insert(key.clone(), v).is_some(),
                            "update of unknown {key}"
                        );
                    }
                    _ => {
                        let v = j["after"]
                            .get("v")
                            .cloned()
                            .unwrap_or(serde_json::Value::Null);
                        state.insert(key, v);
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("state never converged; at {last_position}"));
    assert!(
        snapshot_rows >= 249,
        "the scan delivered {snapshot_rows} rows"
    );
    assert_no_more(&mut batches, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_snapshot_resumes_after_the_last_document_it_delivered() {
    let db = unique_name("snapresume");
    let client = client().await;
    for coll in ["a", "b"] {
        // Mixed _id types: numbers sort before strings, strings before ObjectIds.
        let docs = vec![
            doc! {"_id": 1},
            doc! {"_id": 2},
            doc! {"_id": "x"},
            doc! {"_id": bson::oid::ObjectId::new()},
        ];
        client
            .database(&db)
            .collection::<Document>(coll)
            .insert_many(docs)
            .await
            .expect("seed");
    }
    let mut cfg = config(&format!("{db}.*"));
    cfg.snapshot_chunk = 3;
    let (mut batches, _) = open(cfg.clone(), StartFrom::Snapshot).await;
    let all = next_changes(&mut batches, 8).await;
    let ids = |evs: &[ChangeEvent]| {
        evs.iter()
            .map(|e| format!("{}/{}", e.namespace.table, json(e)["key"]["_id"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&all).len(), 8);
    for cut in [1, 3, 4, 6] {
        let (mut resumed, _) = open(
            cfg.clone(),
            StartFrom::Position(all[cut - 1].position.clone()),
        )
        .await;
        let rest = next_changes(&mut resumed, 8 - cut).await;
        assert_eq!(ids(&rest), ids(&all[cut..]), "resumed after {cut}");
    }
}
