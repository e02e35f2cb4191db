//! `PostgresStore` on a replica the sink made: read, write, delete and query by key, with the
//! filter semantics of `stream_core::Filter::matches`.

use stream_core::{Filter, Namespace, Op, Query, Row, Sink, Store, StoreError, Value};
use stream_postgres::{Deletes, PostgresSink, PostgresStore};
use stream_testkit::{Server, unique_name};

use crate::support::*;

fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

#[tokio::test]
async fn postgres_store_reads_writes_deletes_and_queries_a_replica() {
    let db = unique_name("pgstore");
    let mut config = sink_config();
    config.deletes = Deletes::Soft;
    let mut sink = PostgresSink::new("store", config);
    sink.write(&[
        change(
            &db,
            Op::Insert,
            1,
            Some(row(1, "ann")),
            "binlog:b.000001:10+1",
        ),
        change(
            &db,
            Op::Insert,
            2,
            Some(row(2, "bob")),
            "binlog:b.000001:10+2",
        ),
        change(
            &db,
            Op::Insert,
            3,
            Some(row(3, "cy")),
            "binlog:b.000001:10+3",
        ),
    ])
    .await
    .expect("replica");
    let store = PostgresStore::new(Server::Postgres.url());
    let ns = Namespace::new(db.as_str(), "t");

    assert_eq!(
        store.read(&ns, &key(2)).await.expect("read"),
        Some(row(2, "bob"))
    );
    assert_eq!(store.read(&ns, &key(9)).await.expect("read"), None);
    store
        .write(&ns, &key(4), &row(4, "dee"))
        .await
        .expect("write");
    store
        .write(&ns, &key(2), &row(2, "bobby"))
        .await
        .expect("overwrite");
    assert_eq!(
        store.read(&ns, &key(2)).await.expect("read"),
        Some(row(2, "bobby"))
    );

    let q = Query::filter(Filter::Or(vec![
        Filter::Gte("id".into(), Value::Int(3)),
        Filter::Eq("name".into(), "ann".into()),
    ]))
    .order_by("id", false)
    .limit(2);
    let ids: Vec<Option<Value>> = store
        .query(&ns, &q)
        .await
        .expect("query")
        .iter()
        .map(|r| r.get("id").cloned())
        .collect();
    assert_eq!(ids, [Some(Value::Int(4)), Some(Value::Int(3))]);
    let none = Query::filter(Filter::Eq("id".into(), "not a number".into()));
    assert!(
        store.query(&ns, &none).await.expect("query").is_empty(),
        "unrelated kinds never match"
    );

    assert!(store.delete(&ns, &key(1)).await.expect("delete"));
    assert_eq!(
        store.read(&ns, &key(1)).await.expect("read"),
        None,
        "soft-deleted rows read as absent"
    );
    assert!(!store.delete(&ns, &key(1)).await.expect("delete again"));
    let all = store
        .query(&ns, &Query::filter(Filter::All))
        .await
        .expect("all");
    assert_eq!(all.len(), 3);

    let err = store
        .write(&ns, &key(5), &row(6, "x"))
        .await
        .expect_err("key mismatch");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let err = store
        .read(&Namespace::new(db.as_str(), "nope"), &key(1))
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::UnknownNamespace { .. }), "{err}");
}

#[tokio::test]
async fn postgres_checkpoint_store_saves_loads_and_never_moves_back() {
    use stream_core::{Checkpoint, CheckpointError, CheckpointStore};
    let store = stream_postgres::PostgresCheckpointStore::new(Server::Postgres.url());
    let pipeline = unique_name("cp");
    assert_eq!(store.load(&pipeline).await.expect("load"), None);
    let mut first = Checkpoint::at("binlog:mysql-bin.000002:400+3".parse().expect("pos"));
    first.state = Some(serde_json::json!({"version": 1, "tables": []}));
    store.save(&pipeline, &first).await.expect("save");
    assert_eq!(
        store.load(&pipeline).await.expect("load"),
        Some(first.clone())
    );
    let back = Checkpoint::at("binlog:mysql-bin.000002:400+2".parse().expect("pos"));
    let err = store.save(&pipeline, &back).await.expect_err("backwards");
    assert!(matches!(err, CheckpointError::Backwards { .. }), "{err}");
    let next = Checkpoint::at("binlog:mysql-bin.000003:4+0".parse().expect("pos"));
    store.save(&pipeline, &next).await.expect("forward");
    let loaded = store.load(&pipeline).await.expect("load").expect("saved");
    assert_eq!(loaded.position, next.position);
    assert_eq!(
        loaded.state, first.state,
        "a save without state keeps the stored state"
    );
    assert!(matches!(
        store.load("../x").await,
        Err(CheckpointError::InvalidName { .. })
    ));
}
