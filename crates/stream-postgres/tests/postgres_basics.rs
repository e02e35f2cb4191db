//! The sink with hand-made events: upserts, collapsing, deletes, the `Sink` trait path.

use stream_core::{Op, Sink, SinkError};
use stream_postgres::{Deletes, OnError, PostgresError, PostgresSink, PostgresSinkConfig};
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

fn batch(events: &[std::sync::Arc<stream_core::ChangeEvent>], end: &str) -> stream_core::Batch {
    stream_core::Batch {
        events: events
            .iter()
            .map(|e| stream_core::SourceEvent::Change((**e).clone()))
            .collect(),
        position: end.parse().expect(end),
        state: None,
    }
}

#[tokio::test]
async fn postgres_refused_change_is_named_or_dead_lettered_while_the_rest_applies() {
    let db = unique_name("pgrefuse");
    let pg = pg().await;
    let mut setup = PostgresSink::new("refuse-setup", sink_config());
    let first = change(
        &db,
        Op::Insert,
        1,
        Some(row(1, "ok")),
        "binlog:b.000001:10+1",
    );
    setup.write(&[first]).await.expect("table");
    pg.batch_execute(&format!(
        "ALTER TABLE \"{db}\".t ADD CONSTRAINT no_bad CHECK (name <> 'bad')"
    ))
    .await
    .expect("a constraint of the target's owner");
    let events = [
        change(
            &db,
            Op::Insert,
            2,
            Some(row(2, "fine")),
            "binlog:b.000001:20+1",
        ),
        change(
            &db,
            Op::Insert,
            3,
            Some(row(3, "bad")),
            "binlog:b.000001:20+2",
        ),
        change(
            &db,
            Op::Update,
            1,
            Some(row(1, "changed")),
            "binlog:b.000001:20+3",
        ),
    ];
    let b = batch(&events, "binlog:b.000001:30+0");

    let mut stop = PostgresSink::new("refuse-stop", sink_config());
    let err = stop.apply(&b).await.expect_err("refused");
    assert!(matches!(err, PostgresError::Rejected { .. }), "{err}");
    let text = err.to_string();
    for part in [
        &format!("{db}.t"),
        "{\"id\":3}",
        "binlog:b.000001:20+2",
        "no_bad",
    ] {
        assert!(text.contains(part), "`{part}` missing: {text}");
    }
    let names = format!("SELECT string_agg(name, ',' ORDER BY id) FROM \"{db}\".t");
    assert_eq!(
        texts(&pg, &names).await,
        [Some("ok".to_owned())],
        "nothing applied"
    );

    let mut config = sink_config();
    config.on_error = OnError::DeadLetter;
    let mut divert = PostgresSink::new("refuse-divert", config);
    let applied = divert
        .apply(&b)
        .await
        .expect("applied without the refused change");
    assert_eq!(applied.rejected.len(), 1);
    assert_eq!(applied.rejected[0].event.position, events[1].position);
    assert_eq!(applied.changes, 2);
    assert_eq!(texts(&pg, &names).await, [Some("changed,fine".to_owned())]);
}

#[tokio::test]
async fn postgres_unreachable_server_is_a_transient_error_without_the_password() {
    let mut sink = PostgresSink::new(
        "down",
        PostgresSinkConfig::new("postgres://writer:hunter2@127.0.0.1:1/replica"),
    );
    let events = [change(
        "db",
        Op::Insert,
        1,
        Some(row(1, "a")),
        "binlog:b.000001:10+1",
    )];
    let err = sink.write(&events).await.expect_err("down");
    let SinkError::Write { class, .. } = &err else {
        panic!("expected a write error, got {err}");
    };
    assert_eq!(*class, stream_core::ErrorClass::Transient);
    let text = err.to_string();
    assert!(
        !text.contains("hunter2") && text.contains("writer:***@127.0.0.1:1"),
        "{text}"
    );
}

#[tokio::test]
async fn postgres_new_rows_are_copied_straight_into_the_table_and_keys_it_holds_still_upsert() {
    let db = unique_name("pgdirect");
    let pg = pg().await;
    // The target as the sink makes it, with a trigger that logs the statement that wrote each
    // row: `COPY` straight into the table, or the merge's `INSERT ... ON CONFLICT`.
    pg.batch_execute(&format!(
        "CREATE SCHEMA \"{db}\"; \
         CREATE TABLE \"{db}\".t (id bigint NOT NULL, name text, \"_position\" text NOT NULL, \
             \"_synced_at\" timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id)); \
         CREATE TABLE \"{db}\".log (id bigint, statement text); \
         CREATE FUNCTION \"{db}\".log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO \"{db}\".log VALUES (NEW.id, split_part(current_query(), ' ', 1)); \
             RETURN NEW; END $$; \
         CREATE TRIGGER log BEFORE INSERT ON \"{db}\".t FOR EACH ROW EXECUTE FUNCTION \"{db}\".log()"
    ))
    .await
    .expect("target table");
    let insert =
        |id: i64, name: &str, at: &str| change(&db, Op::Insert, id, Some(row(id, name)), at);
    let mut sink = PostgresSink::new("direct", sink_config());
    sink.write(&[
        insert(1, "a", "binlog:b.000001:10+1"),
        insert(2, "b", "binlog:b.000001:10+2"),
    ])
    .await
    .expect("new rows");
    // Key 2 is there already (an insert the target holds, read again): the copy fails and the
    // rows take the merge, the whole batch or nothing.
    sink.write(&[
        insert(2, "b2", "binlog:b.000001:20+1"),
        insert(3, "c", "binlog:b.000001:20+2"),
    ])
    .await
    .expect("a key the target holds");
    let rows = texts(
        &pg,
        &format!("SELECT id || ':' || name || ':' || _position FROM \"{db}\".t ORDER BY id"),
    )
    .await;
    assert_eq!(
        rows,
        [
            Some("1:a:binlog:b.000001:10+1".to_owned()),
            Some("2:b2:binlog:b.000001:20+1".to_owned()),
            Some("3:c:binlog:b.000001:20+2".to_owned()),
        ]
    );
    let log = texts(
        &pg,
        &format!("SELECT id || ':' || statement FROM \"{db}\".log ORDER BY id, statement"),
    )
    .await;
    assert_eq!(
        log,
        [
            Some("1:COPY".to_owned()),
            Some("2:COPY".to_owned()),
            Some("2:INSERT".to_owned()),
            Some("3:INSERT".to_owned()),
        ],
        "new rows copied straight in; the batch with a held key merged (its failed copy rolled back)"
    );
}
