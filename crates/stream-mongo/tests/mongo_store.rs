//! `MongoStore` against the test server: CRUD and upserts by key, portable filters checked
//! against `MemoryStore` (the reference semantics), every BSON type through a write and a read,
//! and errors that name the field at fault and never the password.

use mongodb::bson::{Bson, Document, doc};
use stream_core::{
    ErrorClass, Filter, MemoryStore, Namespace, Query, Row, Store, StoreError, Value,
};
use stream_mongo::MongoStore;
use stream_testkit::{Server, unique_name};

async fn setup() -> (MongoStore, Namespace) {
    let store = MongoStore::connect(&Server::Mongo.url())
        .await
        .expect("connect");
    (store, Namespace::new(unique_name("store"), "orders"))
}

async fn drop_db(store: &MongoStore, ns: &Namespace) {
    store
        .client()
        .database(&ns.db)
        .drop()
        .await
        .expect("drop database");
}

fn row<const N: usize>(fields: [(&str, Value); N]) -> Row {
    fields.into_iter().collect()
}

fn id_key(id: i64) -> Row {
    row([("_id", Value::Int(id))])
}

fn dec(text: &str) -> Value {
    Value::Decimal128(text.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_reads_upserts_and_deletes_by_key() {
    let (store, ns) = setup().await;
    assert_eq!(store.read(&ns, &id_key(1)).await.expect("read"), None);

    let first = row([
        ("_id", Value::Int(1)),
        ("status", Value::from("new")),
        ("total", dec("19.90")),
    ]);
    store.write(&ns, &id_key(1), &first).await.expect("insert");
    assert_eq!(
        store.read(&ns, &id_key(1)).await.expect("read"),
        Some(first)
    );

    // The replacement lacks the key field: the store adds it.
    let second = row([("status", Value::from("paid")), ("total", dec("21.00"))]);
    store.write(&ns, &id_key(1), &second).await.expect("upsert");
    let got = store.read(&ns, &id_key(1)).await.expect("read");
    assert_eq!(
        got,
        Some(row([
            ("_id", Value::Int(1)),
            ("status", Value::from("paid")),
            ("total", dec("21.00")),
        ]))
    );
    let all = store
        .query(&ns, &Query::filter(Filter::All))
        .await
        .expect("query");
    assert_eq!(all.len(), 1, "the upsert replaced, not inserted: {all:?}");

    assert!(store.delete(&ns, &id_key(1)).await.expect("delete"));
    assert!(!store.delete(&ns, &id_key(1)).await.expect("delete again"));
    assert_eq!(store.read(&ns, &id_key(1)).await.expect("read"), None);

    // A key of several fields matches all of them; the server adds an ObjectId `_id`.
    let key = row([("sku", Value::from("a-1")), ("region", Value::from("eu"))]);
    store
        .write(&ns, &key, &row([("qty", Value::Int(3))]))
        .await
        .expect("insert by compound key");
    let other = row([("sku", Value::from("a-1")), ("region", Value::from("us"))]);
    assert_eq!(store.read(&ns, &other).await.expect("read"), None);
    let got = store
        .read(&ns, &key)
        .await
        .expect("read")
        .expect("document");
    assert!(
        matches!(got.get("_id"), Some(Value::ObjectId(_))),
        "{got:?}"
    );
    assert_eq!(got.get("sku"), Some(&Value::from("a-1")));
    assert_eq!(got.get("region"), Some(&Value::from("eu")));
    assert_eq!(got.get("qty"), Some(&Value::Int(3)));
    assert!(!store.delete(&ns, &other).await.expect("delete other"));
    assert!(store.delete(&ns, &key).await.expect("delete"));
    drop_db(&store, &ns).await;
}

/// Documents with nulls, missing fields and nested paths, for the filter tests.
fn people() -> Vec<Row> {
    let meta = |rank: i64| Value::Document(row([("rank", Value::Int(rank))]));
    vec![
        row([
            ("_id", Value::Int(1)),
            ("status", Value::from("paid")),
            ("n", Value::Int(5)),
            ("meta", meta(3)),
        ]),
        row([
            ("_id", Value::Int(2)),
            ("status", Value::from("new")),
            ("n", Value::Int(20)),
            ("meta", meta(1)),
        ]),
        row([
            ("_id", Value::Int(3)),
            ("status", Value::from("paid")),
            ("n", Value::Null),
        ]),
        row([("_id", Value::Int(4)), ("status", Value::from("new"))]),
        row([
            ("_id", Value::Int(5)),
            ("status", Value::from("paid")),
            ("n", Value::Double(12.5)),
            ("meta", meta(2)),
        ]),
        row([("_id", Value::Int(6)), ("n", Value::Int(-1))]),
    ]
}

fn ids(rows: &[Row]) -> Vec<i64> {
    rows.iter()
        .map(|r| match r.get("_id") {
            Some(Value::Int(id)) => *id,
            other => panic!("unexpected _id {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_queries_mirror_filter_matches() {
    let (store, ns) = setup().await;
    let reference = MemoryStore::new();
    for r in people() {
        let key = row([("_id", r.get("_id").cloned().expect("id"))]);
        store.write(&ns, &key, &r).await.expect("write");
        reference.write(&ns, &key, &r).await.expect("write");
    }
    let f = |name: &str| name.to_owned();
    let by_id = |filter: Filter| Query::filter(filter).order_by("_id", true);
    let cases: Vec<(Query, Vec<i64>)> = vec![
        (by_id(Filter::All), vec![1, 2, 3, 4, 5, 6]),
        (by_id(Filter::Eq(f("status"), "paid".into())), vec![1, 3, 5]),
        (by_id(Filter::Eq(f("n"), Value::Null)), vec![]),
        (
            Query::filter(Filter::Gt(f("n"), Value::Int(5))).order_by("n", false),
            vec![2, 5],
        ),
        (by_id(Filter::Gte(f("n"), Value::Int(5))), vec![1, 2, 5]),
        (by_id(Filter::Lt(f("n"), Value::Double(12.5))), vec![1, 6]),
        (by_id(Filter::Lte(f("n"), Value::Int(-1))), vec![6]),
        (by_id(Filter::Ne(f("n"), Value::Int(5))), vec![2, 5, 6]),
        (
            by_id(Filter::Ne(f("status"), Value::Null)),
            vec![1, 2, 3, 4, 5],
        ),
        (
            by_id(Filter::In(
                f("_id"),
                vec![Value::Int(4), Value::UInt(2), Value::Int(99), Value::Null],
            )),
            vec![2, 4],
        ),
        (by_id(Filter::In(f("n"), vec![Value::Null])), vec![]),
        (
            by_id(Filter::And(vec![
                Filter::Eq(f("status"), "paid".into()),
                Filter::Gte(f("n"), Value::Int(5)),
            ])),
            vec![1, 5],
        ),
        (
            by_id(Filter::Or(vec![
                Filter::Eq(f("status"), "new".into()),
                Filter::IsNull(f("n")),
            ])),
            vec![2, 3, 4],
        ),
        (by_id(Filter::Or(vec![])), vec![]),
        (by_id(Filter::And(vec![])), vec![1, 2, 3, 4, 5, 6]),
        (
            by_id(Filter::Not(Box::new(Filter::Eq(
                f("status"),
                "paid".into(),
            )))),
            vec![2, 4, 6],
        ),
        (
            by_id(Filter::Not(Box::new(Filter::Gt(f("n"), Value::Int(0))))),
            vec![3, 4, 6],
        ),
        (by_id(Filter::IsNull(f("n"))), vec![3, 4]),
        (by_id(Filter::IsNull(f("meta.rank"))), vec![3, 4, 6]),
        (by_id(Filter::Gt(f("meta.rank"), Value::Int(1))), vec![1, 5]),
        (
            // Strings and numbers never compare.
            by_id(Filter::Gt(f("status"), Value::Int(0))),
            vec![],
        ),
        (
            Query::filter(Filter::All)
                .order_by("status", true)
                .order_by("n", false)
                .order_by("_id", true),
            // Missing status first, then "new" (20, missing n), then "paid" (12.5, 5, null).
            vec![6, 2, 4, 5, 1, 3],
        ),
        (
            Query::filter(Filter::Eq(f("status"), "paid".into()))
                .order_by("meta.rank", false)
                .limit(2),
            vec![1, 5],
        ),
        (by_id(Filter::All).limit(0), vec![]),
    ];
    for (query, expected) in cases {
        let got = store.query(&ns, &query).await.expect("query");
        assert_eq!(ids(&got), expected, "{query:?}");
        let want = reference.query(&ns, &query).await.expect("reference");
        assert_eq!(got, want, "MongoStore and MemoryStore differ on {query:?}");
    }
    drop_db(&store, &ns).await;
}

/// One field of every BSON type the store must keep exactly.
fn every_type() -> Row {
    let nested = row([
        ("inner", Value::from("x")),
        (
            "deeper",
            Value::Document(row([(
                "list",
                Value::Array(vec![Value::Int(1), Value::Null]),
            )])),
        ),
    ]);
    row([
        (
            "_id",
            Value::ObjectId([0x65, 0xe0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]),
        ),
        ("decimal", dec("1.10")),
        (
            "decimal_big",
            dec("-1.234567890123456789012345678901234E+6000"),
        ),
        ("date", Value::BsonDateTime(1_709_210_096_789)),
        ("date_before_1970", Value::BsonDateTime(-86_400_001)),
        (
            "uuid",
            Value::Binary {
                subtype: 4,
                bytes: (0..16).collect(),
            },
        ),
        (
            "generic",
            Value::Binary {
                subtype: 0,
                bytes: vec![0, 0xff],
            },
        ),
        (
            "regex",
            Value::Regex {
                pattern: "^a\\d+$".into(),
                options: "im".into(),
            },
        ),
        (
            "ts",
            Value::BsonTimestamp {
                t: 1_700_000_000,
                i: 7,
            },
        ),
        ("int32", Value::Int(-2_147_483_648)),
        ("int64", Value::Int(9_007_199_254_740_993)),
        ("double", Value::Double(0.1)),
        ("double_integral", Value::Double(3.0)),
        ("doc", Value::Document(nested)),
        (
            "array",
            Value::Array(vec![
                Value::Int(1),
                Value::from("two"),
                Value::Array(vec![Value::Bool(false)]),
                Value::Document(row([("k", Value::Double(-0.5))])),
            ]),
        ),
        ("null", Value::Null),
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("min", Value::MinKey),
        ("max", Value::MaxKey),
        ("string", Value::from("café ☕")),
        (
            "code",
            Value::JavaScript("function () { return 1; }".into()),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_round_trips_every_bson_type() {
    let (store, ns) = setup().await;
    let doc = every_type();
    let key = row([("_id", doc.get("_id").cloned().expect("id"))]);
    store.write(&ns, &key, &doc).await.expect("write");
    let got = store
        .read(&ns, &key)
        .await
        .expect("read")
        .expect("document");
    assert_eq!(got, doc);

    // On the server, int32 stays int32 and an int64 beyond i32 stays int64.
    let raw: Document = store
        .client()
        .database(&ns.db)
        .collection::<Document>(&ns.table)
        .find_one(doc! {})
        .await
        .expect("find")
        .expect("document");
    assert_eq!(raw.get("int32"), Some(&Bson::Int32(i32::MIN)));
    assert_eq!(raw.get("int64"), Some(&Bson::Int64(9_007_199_254_740_993)));
    assert!(matches!(raw.get("uuid"), Some(Bson::Binary(b)) if u8::from(b.subtype) == 4));

    // Queries find documents by BSON-only values too.
    let by_date = Query::filter(Filter::Gte(
        "date".into(),
        Value::BsonDateTime(1_709_210_096_789),
    ));
    assert_eq!(store.query(&ns, &by_date).await.expect("query").len(), 1);
    let by_decimal = Query::filter(Filter::Eq("decimal".into(), dec("1.1")));
    assert_eq!(store.query(&ns, &by_decimal).await.expect("query").len(), 1);
    let by_regex = Query::filter(Filter::In(
        "regex".into(),
        vec![Value::Regex {
            pattern: "^a\\d+$".into(),
            options: "im".into(),
        }],
    ));
    assert_eq!(store.query(&ns, &by_regex).await.expect("query").len(), 1);
    drop_db(&store, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_writes_mysql_values_as_their_nearest_bson_type() {
    use stream_core::{Date, DateTime, Decimal, Json, Timestamp};
    let (store, ns) = setup().await;
    let date = Date::new(2024, 2, 29).expect("date");
    let written = row([
        ("_id", Value::UInt(7)),
        ("total", Value::Decimal(Decimal::parse("19.90").expect("d"))),
        (
            "placed",
            Value::DateTime(DateTime::new(date, 12, 34, 56, 789_000, 3).expect("dt")),
        ),
        (
            "seen",
            Value::Timestamp(Timestamp::new(1_709_210_096, 789_000, 3).expect("ts")),
        ),
        ("day", Value::Date(date)),
        ("status", Value::Enum("paid".into())),
        ("tags", Value::Set(vec!["a".into(), "b".into()])),
        ("raw", Value::Bytes(vec![1, 2, 3])),
        (
            "doc",
            Value::Json(Json::parse(r#"{"b":[1,2.5],"a":null}"#).expect("json")),
        ),
        ("f", Value::Float(0.5)),
    ]);
    store
        .write(&ns, &row([("_id", Value::Int(7))]), &written)
        .await
        .expect("write");
    let got = store.read(&ns, &id_key(7)).await.expect("read");
    let expected = row([
        ("_id", Value::Int(7)),
        ("total", dec("19.90")),
        ("placed", Value::BsonDateTime(1_709_210_096_789)),
        ("seen", Value::BsonDateTime(1_709_210_096_789)),
        ("day", Value::BsonDateTime(1_709_164_800_000)),
        ("status", Value::from("paid")),
        (
            "tags",
            Value::Array(vec![Value::from("a"), Value::from("b")]),
        ),
        (
            "raw",
            Value::Binary {
                subtype: 0,
                bytes: vec![1, 2, 3],
            },
        ),
        (
            "doc",
            Value::Document(row([
                ("b", Value::Array(vec![Value::Int(1), Value::Double(2.5)])),
                ("a", Value::Null),
            ])),
        ),
        ("f", Value::Double(0.5)),
    ]);
    assert_eq!(got, Some(expected));
    drop_db(&store, &ns).await;
}

fn invalid_reason(err: StoreError, ns: &Namespace) -> String {
    let text = err.to_string();
    assert!(text.contains(&ns.to_string()), "{text}");
    match err {
        StoreError::Invalid { reason, .. } => reason,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_rejects_invalid_input_naming_the_field() {
    let (store, ns) = setup().await;

    let injected = row([
        ("_id", Value::Int(1)),
        ("$where", Value::from("sleep(1000)")),
    ]);
    let err = store
        .write(&ns, &id_key(1), &injected)
        .await
        .expect_err("$where");
    assert!(invalid_reason(err, &ns).contains("`$where`"));

    let nested = row([
        ("_id", Value::Int(1)),
        ("a", Value::Document(row([("$set", Value::Int(1))]))),
    ]);
    let err = store
        .write(&ns, &id_key(1), &nested)
        .await
        .expect_err("nested $");
    assert!(invalid_reason(err, &ns).contains("`a.$set`"));

    let where_filter = Query::filter(Filter::Eq("$where".into(), Value::from("1 == 1")));
    let err = store
        .query(&ns, &where_filter)
        .await
        .expect_err("$where filter");
    assert!(invalid_reason(err, &ns).contains("`$where`"));

    let err = store
        .read(&ns, &row([("$gt", Value::Int(1))]))
        .await
        .expect_err("$ key");
    assert!(invalid_reason(err, &ns).contains("`$gt`"));

    let huge = row([("_id", Value::Int(1)), ("big", Value::UInt(u64::MAX))]);
    let err = store.write(&ns, &id_key(1), &huge).await.expect_err("u64");
    let reason = invalid_reason(err, &ns);
    assert!(
        reason.contains("`big`") && reason.contains("18446744073709551615"),
        "{reason}"
    );

    let mismatch = row([("_id", Value::Int(2)), ("x", Value::Int(0))]);
    let err = store
        .write(&ns, &id_key(1), &mismatch)
        .await
        .expect_err("key mismatch");
    assert!(invalid_reason(err, &ns).contains("`_id`"));

    let err = store.read(&ns, &Row::new()).await.expect_err("empty key");
    assert!(invalid_reason(err, &ns).contains("no fields"));

    // Nothing reached the collection.
    let all = store
        .query(&ns, &Query::filter(Filter::All))
        .await
        .expect("query");
    assert!(all.is_empty(), "{all:?}");
}

/// The test server's URL with `user:password@` in it.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    let sep = if rest.contains('?') { '&' } else { '?' };
    format!("{scheme}://{user}:{password}@{rest}{sep}serverSelectionTimeoutMS=10000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_wrong_password_error_hides_the_password() {
    let password = "Wr0ngPassw0rd-7f3a";
    let uri = with_credentials(&Server::Mongo.url(), "ustream_nobody", password);
    let err = MongoStore::connect(&uri)
        .await
        .expect_err("wrong password must fail");
    let text = err.to_string();
    let debug = format!("{err:?}");
    assert!(!text.contains(password), "{text}");
    assert!(!debug.contains(password), "{debug}");
    assert!(
        matches!(
            err,
            StoreError::Backend {
                class: ErrorClass::Definite,
                ..
            }
        ),
        "{debug}"
    );

    // A malformed connection string is reported without echoing it either.
    let bad = format!("mongodb://u:{password}@");
    let err = MongoStore::connect(&bad).await.expect_err("no host");
    assert!(!format!("{err} {err:?}").contains(password), "{err:?}");
}

/// MongoDB's own namespaces, each with an operation that would reach it.
fn system_namespaces() -> Vec<Namespace> {
    vec![
        Namespace::new("local", "oplog.rs"),
        Namespace::new("local", "startup_log"),
        Namespace::new("config", "transactions"),
        Namespace::new("admin", "system.users"),
        Namespace::new("admin", "system.version"),
        Namespace::new(unique_name("store"), "system.views"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_refuses_system_namespaces_naming_them() {
    // The URL names no database: every database is in reach.
    let store = MongoStore::connect(&Server::Mongo.url())
        .await
        .expect("connect");
    let key = id_key(1);
    let row = row([("_id", Value::Int(1)), ("x", Value::Int(1))]);
    for ns in system_namespaces() {
        let errors = [
            store.read(&ns, &key).await.err(),
            store.query(&ns, &Query::filter(Filter::All)).await.err(),
            store.write(&ns, &key, &row).await.err(),
            store.delete(&ns, &key).await.err(),
        ];
        for err in errors {
            let err = err.unwrap_or_else(|| panic!("{ns} was reached"));
            let text = err.to_string();
            assert!(matches!(err, StoreError::Invalid { .. }), "{text}");
            assert!(text.contains(&format!("`{ns}`")), "{text}");
            assert!(text.contains("system namespace"), "{text}");
        }
    }
    // Ordinary namespaces whose names merely look alike are not refused.
    let ns = Namespace::new(unique_name("store"), "systems");
    store.write(&ns, &key, &row).await.expect("write");
    drop_db(&store, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_reads_system_namespaces_when_the_config_allows_them() {
    let mut config = stream_mongo::MongoConfig::from_url(&Server::Mongo.url()).expect("url");
    config.system_namespaces = true;
    let store = MongoStore::connect_with(&config).await.expect("connect");
    let oplog = Namespace::new("local", "oplog.rs");
    let mut query = Query::filter(Filter::All);
    query.limit = Some(1);
    let entries = store.query(&oplog, &query).await.expect("read the oplog");
    assert_eq!(entries.len(), 1, "the oplog of a replica set has entries");
    // The same for a store over a client of the caller's.
    let store = MongoStore::new(store.client().clone()).with_system_namespaces(true);
    assert_eq!(store.query(&oplog, &query).await.expect("oplog").len(), 1);
}
