//! MongoDB → PostgreSQL from a real `MongoSource` (full documents by update lookup): `_id` and
//! `doc`, extracted columns, inserts, nested updates with set and unset, replaces, deletes hard
//! and soft, and an extracted value that does not convert.

use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{Document, doc, oid::ObjectId};
use stream_core::{BatchStream, CancellationToken, NamespaceFilter, Source, StartFrom};
use stream_mongo::{FullDocument, MongoConfig, MongoSource};
use stream_postgres::{
    Deletes, ExtractedColumn, ExtractedType, OnError, PostgresError, PostgresSink,
    PostgresSinkConfig,
};
use stream_testkit::{Server, unique_name};

use crate::support::*;

async fn collection(db: &str) -> mongodb::Collection<Document> {
    let client = mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client");
    client.database(db).collection("orders")
}

async fn open(db: &str) -> (BatchStream, CancellationToken) {
    let mut config = MongoConfig::from_url(&Server::Mongo.url()).expect("STREAM_TEST_MONGO_URL");
    config.filter = NamespaceFilter::parse(&format!("{db}.*"), "").expect("filter");
    config.full_document = FullDocument::UpdateLookup;
    let shutdown = CancellationToken::new();
    let opened = MongoSource::new(config)
        .open(StartFrom::Latest, shutdown.clone())
        .await
        .expect("open");
    (opened.batches, shutdown)
}

fn config(schema: &str, deletes: Deletes, on_error: OnError) -> PostgresSinkConfig {
    let mut config = sink_config();
    config.schema = Some(schema.to_owned());
    config.deletes = deletes;
    config.on_error = on_error;
    config.columns.insert(
        "orders".into(),
        [
            (
                "total".to_owned(),
                ExtractedColumn {
                    path: "amount.total".into(),
                    column_type: ExtractedType::Numeric,
                },
            ),
            (
                "status".to_owned(),
                ExtractedColumn {
                    path: "status".into(),
                    column_type: ExtractedType::Text,
                },
            ),
        ]
        .into_iter()
        .collect(),
    );
    config
}

/// Feeds every batch to each sink until `done` holds.
async fn feed<F: AsyncFnMut() -> bool>(
    batches: &mut BatchStream,
    sinks: &mut [&mut PostgresSink],
    mut done: F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let batch = tokio::time::timeout(left, batches.next())
            .await
            .expect("the target did not reach the expected state within 30 s")
            .expect("stream open")
            .expect("batch");
        for sink in sinks.iter_mut() {
            sink.apply(&batch).await.expect("apply");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replica_of_a_mongo_collection_follows_inserts_nested_updates_replaces_and_deletes()
 {
    let db = unique_name("pgmongo");
    let coll = collection(&db).await;
    let (mut batches, shutdown) = open(&db).await;
    let (hard_schema, soft_schema) = (format!("{db}_hard"), format!("{db}_soft"));
    let mut hard = PostgresSink::new(
        "mongo-hard",
        config(&hard_schema, Deletes::Hard, OnError::Stop),
    );
    let mut soft = PostgresSink::new(
        "mongo-soft",
        config(&soft_schema, Deletes::Soft, OnError::Stop),
    );
    let oid = ObjectId::new();
    coll.insert_one(doc! {"_id": oid, "status": "new", "amount": {"total": 10.5}, "items": [1, 2], "meta": {"by": "bob"}})
        .await
        .expect("insert");
    coll.insert_one(doc! {"_id": "str-id", "status": "x", "amount": {"total": 3}})
        .await
        .expect("insert");
    coll.insert_one(doc! {"_id": 7, "status": "int id"})
        .await
        .expect("insert");
    coll.update_one(
        doc! {"_id": oid},
        doc! {"$set": {"status": "paid", "meta.by": "ann", "amount.total": 12.25}, "$unset": {"items": ""}},
    )
    .await
    .expect("update");
    coll.replace_one(doc! {"_id": "str-id"}, doc! {"status": "replaced"})
        .await
        .expect("replace");
    coll.delete_one(doc! {"_id": 7}).await.expect("delete");

    let pg = pg().await;
    let gone = format!(
        "SELECT count(*) FROM \"{hard_schema}\".orders WHERE _id = '{{\"$numberInt\":\"7\"}}'"
    );
    let soft_gone = format!("SELECT count(*) FROM \"{soft_schema}\".orders WHERE _deleted");
    let replaced =
        format!("SELECT count(*) FROM \"{hard_schema}\".orders WHERE status = 'replaced'");
    feed(&mut batches, &mut [&mut hard, &mut soft], async || {
        let q = async |sql: &str| {
            pg.query_one(sql, &[])
                .await
                .map_or(-1, |r| r.get::<_, i64>(0))
        };
        q(&gone).await == 0 && q(&soft_gone).await == 1 && q(&replaced).await == 1
    })
    .await;
    shutdown.cancel();

    for schema in [&hard_schema, &soft_schema] {
        let row = texts(&pg, &format!(
            "SELECT concat_ws('|', doc->>'status', doc->'meta'->>'by', doc ? 'items', total, status) \
             FROM \"{schema}\".orders WHERE _id = '{}'",
            oid.to_hex()
        ))
        .await;
        assert_eq!(row, [Some("paid|ann|f|12.25|paid".to_owned())], "{schema}");
        let replaced = texts(&pg, &format!(
            "SELECT concat_ws('|', doc::text, coalesce(total::text, 'NULL')) FROM \"{schema}\".orders WHERE _id = 'str-id'"
        ))
        .await;
        assert_eq!(
            replaced,
            [Some(
                r#"{"_id": "str-id", "status": "replaced"}|NULL"#.to_owned()
            )],
            "{schema}"
        );
    }
    let kept = texts(&pg, &format!(
        "SELECT concat_ws('|', doc->>'status', _deleted, _deleted_at IS NOT NULL) FROM \"{soft_schema}\".orders \
         WHERE _id = '{{\"$numberInt\":\"7\"}}'"
    ))
    .await;
    assert_eq!(
        kept,
        [Some("int id|t|t".to_owned())],
        "a soft-deleted document keeps its last values"
    );
    assert_eq!(
        count(
            &pg,
            &format!("SELECT count(*) FROM \"{hard_schema}\".orders")
        )
        .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mongo_extracted_value_that_does_not_convert_is_rejected_with_the_reason() {
    let db = unique_name("pgmongobad");
    let coll = collection(&db).await;
    let (mut batches, shutdown) = open(&db).await;
    coll.insert_one(doc! {"_id": 1, "amount": {"total": "lots"}})
        .await
        .expect("insert");
    coll.insert_one(doc! {"_id": 2, "amount": {"total": 5}})
        .await
        .expect("insert");
    let mut got = Vec::new();
    while got.len() < 2 {
        let batch = next_batch(&mut batches).await;
        got.extend(
            batch
                .events
                .iter()
                .filter(|e| matches!(e, stream_core::SourceEvent::Change(_)))
                .cloned(),
        );
        if got.len() >= 2 {
            let batch = stream_core::Batch {
                events: got.clone(),
                position: batch.position,
                state: None,
            };
            let mut stop = PostgresSink::new(
                "stop",
                config(&format!("{db}_stop"), Deletes::Hard, OnError::Stop),
            );
            let err = stop.apply(&batch).await.expect_err("refused");
            assert!(matches!(err, PostgresError::Rejected { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("amount.total")
                    && text.contains("\"lots\"")
                    && text.contains("mongodb:"),
                "{text}"
            );
            let pg = pg().await;
            let none = pg
                .query_one(&format!("SELECT count(*) FROM \"{db}_stop\".orders"), &[])
                .await;
            assert!(
                none.is_err() || none.is_ok_and(|r| r.get::<_, i64>(0) == 0),
                "nothing applied"
            );

            let mut divert = PostgresSink::new(
                "divert",
                config(&format!("{db}_dl"), Deletes::Hard, OnError::DeadLetter),
            );
            let applied = divert
                .apply(&batch)
                .await
                .expect("applied without the refused change");
            assert_eq!(applied.rejected.len(), 1);
            assert!(
                applied.rejected[0].reason.contains("amount.total"),
                "{:?}",
                applied.rejected
            );
            let ids = texts(
                &pg,
                &format!("SELECT _id || ':' || total FROM \"{db}_dl\".orders"),
            )
            .await;
            assert_eq!(ids, [Some(r#"{"$numberInt":"2"}:5"#.to_owned())]);
        }
    }
    shutdown.cancel();
}
