//! The sink with hand-made events: upserts, collapsing, deletes, the `Sink` trait path.

use stream_core::{Op, Sink};
use stream_postgres::{Deletes, PostgresSink};
use stream_testkit::unique_name;

use crate::support::*;

#[tokio::test]
async fn postgres_sink_upserts_collapses_changes_of_one_key_and_deletes() {
    let db = unique_name("pgbasic");
    let pg = pg().await;
    let mut sink = PostgresSink::new("basic", sink_config());
    let events = vec![
        change(
            &db,
            Op::Insert,
            1,
            Some(row(1, "a")),
            "binlog:b.000001:10+1",
        ),
        change(
            &db,
            Op::Insert,
            2,
            Some(row(2, "b")),
            "binlog:b.000001:10+2",
        ),
        change(
            &db,
            Op::Update,
            1,
            Some(row(1, "a2")),
            "binlog:b.000001:10+3",
        ),
        change(&db, Op::Delete, 2, None, "binlog:b.000001:10+4"),
        change(
            &db,
            Op::Insert,
            3,
            Some(row(3, "c")),
            "binlog:b.000001:10+5",
        ),
    ];
    sink.write(&events).await.expect("write");
    let rows = texts(
        &pg,
        &format!("SELECT id || ':' || name || ':' || _position FROM \"{db}\".t ORDER BY id"),
    )
    .await;
    assert_eq!(
        rows,
        [
            Some("1:a2:binlog:b.000001:10+3".to_owned()),
            Some("3:c:binlog:b.000001:10+5".to_owned())
        ]
    );
    let ty = texts(&pg, &format!("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '\"{db}\".t'::regclass AND attname = 'id'")).await;
    assert_eq!(
        ty,
        [Some("bigint".to_owned())],
        "inferred from the values when no schema is known"
    );
}

#[tokio::test]
async fn postgres_soft_deletes_keep_the_row_and_a_later_insert_revives_it() {
    let db = unique_name("pgsoft");
    let pg = pg().await;
    let mut config = sink_config();
    config.deletes = Deletes::Soft;
    let mut sink = PostgresSink::new("soft", config);
    let insert = change(
        &db,
        Op::Insert,
        1,
        Some(row(1, "kept")),
        "binlog:b.000001:10+1",
    );
    sink.write(&[insert]).await.expect("insert");
    sink.write(&[change(&db, Op::Delete, 1, None, "binlog:b.000001:20+1")])
        .await
        .expect("delete");
    let q = format!(
        "SELECT name || ':' || _deleted || ':' || (_deleted_at IS NOT NULL) FROM \"{db}\".t"
    );
    assert_eq!(texts(&pg, &q).await, [Some("kept:true:true".to_owned())]);
    sink.write(&[change(
        &db,
        Op::Insert,
        1,
        Some(row(1, "back")),
        "binlog:b.000001:30+1",
    )])
    .await
    .expect("reinsert");
    assert_eq!(
        texts(&pg, &q).await,
        [Some("back:false:false".to_owned())],
        "alive again"
    );
}
