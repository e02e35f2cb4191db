//! The initial snapshot: consistent, chunked by key, resumable, handed over to the binlog with
//! no gap and no duplicate while writers write between its first rows and its end.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{
    CancellationToken, ChangeEvent, Op, Position, Source, SourceEvent, StartFrom, Value,
};
use stream_mysql::MySqlSource;

/// Applies events in order to a map id -> v, checking that no row is inserted twice.
fn apply(events: &[ChangeEvent], state: &mut BTreeMap<i64, i64>) {
    for e in events {
        let row = e.after.as_ref().or(e.before.as_ref()).expect("row");
        let Some(Value::Int(id)) = row.get("id") else {
            panic!("id in {}", e.to_json())
        };
        match e.op {
            Op::Insert => {
                let Some(Value::Int(v)) = row.get("v") else {
                    panic!("v")
                };
                assert!(
                    state.insert(*id, *v).is_none(),
                    "row {id} inserted twice: {}",
                    e.to_json()
                );
            }
            Op::Update => {
                let Some(Value::Int(v)) = row.get("v") else {
                    panic!("v")
                };
                assert!(
                    state.insert(*id, *v).is_some(),
                    "update of unknown row {id}"
                );
            }
            Op::Delete => {
                assert!(state.remove(id).is_some(), "delete of unknown row {id}");
            }
            _ => {}
        }
    }
}

async fn table_state(c: &mut mysql_async::Conn, db: &str) -> BTreeMap<i64, i64> {
    let rows: Vec<(i64, i64)> = c
        .query(format!("SELECT id, v FROM `{db}`.t"))
        .await
        .expect("select");
    rows.into_iter().collect()
}

async fn next_batch(batches: &mut stream_core::BatchStream) -> stream_core::Batch {
    tokio::time::timeout(Duration::from_secs(20), batches.next())
        .await
        .expect("a batch")
        .expect("open")
        .expect("no error")
}

fn is_snapshot(p: &Position) -> bool {
    p.to_string().starts_with("mysql-snapshot:")
}

fn changes_of(batch: stream_core::Batch) -> Vec<ChangeEvent> {
    batch
        .events
        .into_iter()
        .filter_map(|e| match e {
            SourceEvent::Change(c) => Some(c),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_snapshot_hands_over_to_the_binlog_without_gap_or_duplicate_under_writes() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "snap").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id BIGINT PRIMARY KEY, v BIGINT)"
    ))
    .await
    .expect("table");
    c.query_drop(format!(
        "INSERT INTO `{db}`.t SELECT seq, seq FROM `{db}`.seq_1_to_12000"
    ))
    .await
    .expect("seed rows");
    let shutdown = CancellationToken::new();
    let mut batches = MySqlSource::new(config(&url(), &format!("{db}.*")))
        .open(StartFrom::Snapshot, shutdown.clone())
        .await
        .expect("open")
        .batches;
    // The view is taken and its first rows are here; the reader cannot run ahead of us by more
    // than the two batches its channel holds, so the snapshot's end is not seen yet.
    let start = next_batch(&mut batches).await;
    assert!(
        is_snapshot(&start.position) && start.events.is_empty(),
        "the snapshot's start comes first, to be checkpointed before any row"
    );
    let first = next_batch(&mut batches).await;
    assert!(is_snapshot(&first.position) && !first.events.is_empty());
    let mut got = changes_of(first);
    let mut writer = conn().await;
    for i in 0..300i64 {
        let sql = match i % 3 {
            0 => format!("INSERT INTO `{db}`.t VALUES ({}, 0)", 20_000 + i),
            1 => format!(
                "UPDATE `{db}`.t SET v = v + 1 WHERE id = {}",
                1 + (i * 37) % 12_000
            ),
            _ => format!("DELETE FROM `{db}`.t WHERE id = {}", 1 + (i * 53) % 12_000),
        };
        writer.query_drop(sql).await.expect("write");
    }
    let end = now(&mut c).await;
    let mut snapshot_rows_after_the_writes = 0;
    loop {
        let batch = next_batch(&mut batches).await;
        let position = batch.position.clone();
        let changes = changes_of(batch);
        if is_snapshot(&position) {
            assert!(
                got.iter().all(|e| is_snapshot(&e.position)),
                "snapshot rows after the handover"
            );
            snapshot_rows_after_the_writes += changes.len();
        }
        got.extend(changes);
        if position.compare(&end).is_some_and(|o| o.is_ge()) {
            break;
        }
    }
    shutdown.cancel();
    assert!(
        snapshot_rows_after_the_writes > 0,
        "every write committed while the snapshot was still being read"
    );
    let inserts_from_the_binlog = got
        .iter()
        .filter(|e| !is_snapshot(&e.position) && e.op == Op::Insert)
        .count();
    assert_eq!(
        inserts_from_the_binlog, 100,
        "the writes came after the view, through the binlog"
    );
    let mut state = BTreeMap::new();
    apply(&got, &mut state);
    assert_eq!(
        state,
        table_state(&mut c, &db).await,
        "snapshot + binlog must rebuild the table exactly"
    );
    let snapshot_rows = got.iter().filter(|e| is_snapshot(&e.position)).count();
    assert_eq!(
        snapshot_rows, 12_000,
        "the snapshot read the table as of its view"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_snapshot_resumes_from_a_position_inside_a_table() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "snapresume").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.a (id BIGINT PRIMARY KEY, v BIGINT); CREATE TABLE `{db}`.t (id BIGINT PRIMARY KEY, v BIGINT); \
         INSERT INTO `{db}`.a VALUES (1, 1); INSERT INTO `{db}`.t SELECT seq, seq FROM `{db}`.seq_1_to_12000"
    ))
    .await
    .expect("rows");
    let cfg = || config(&url(), &format!("{db}.*"));
    let first = collect(cfg(), StartFrom::Snapshot, 7001, Duration::from_secs(10)).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    // Pretend the consumer durably handled the first 7001 rows, then crashed.
    let handled = &first.changes[..7001];
    let resume = handled.last().expect("rows").position.clone();
    assert!(
        resume.to_string().starts_with("mysql-snapshot:"),
        "{resume}"
    );
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (50000, 5)"))
        .await
        .expect("write after");
    let rest = collect(
        cfg(),
        StartFrom::Position(resume),
        usize::MAX,
        // The only end of this read: long enough for the hand-over on a loaded machine.
        Duration::from_secs(10),
    )
    .await;
    assert!(rest.error.is_none(), "{:?}", rest.error);
    let mut state = BTreeMap::new();
    let mut a_state = BTreeMap::new();
    let (t_events, a_events): (Vec<ChangeEvent>, Vec<ChangeEvent>) = handled
        .iter()
        .chain(&rest.changes)
        .cloned()
        .partition(|e| &*e.namespace.table == "t");
    apply(&t_events, &mut state);
    apply(&a_events, &mut a_state);
    assert_eq!(state, table_state(&mut c, &db).await);
    assert_eq!(a_state.len(), 1);
}
