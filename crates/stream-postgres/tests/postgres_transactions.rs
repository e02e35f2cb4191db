//! Transactions: the checkpoint commits with the data (a batch killed mid-way changes nothing
//! and a retry applies it exactly once), and a source transaction lands in one target commit.

use std::time::Duration;

use mysql_async::prelude::*;
use stream_core::{Batch, BatchStream, CheckpointStore, Position, SourceEvent, StartFrom};
use stream_postgres::{PostgresCheckpointStore, PostgresSink};
use stream_testkit::Server;

use crate::support::*;

/// The next batches that carry row changes, joined up to the end of their last transaction:
/// the source gives a batch the position of its last event (inside its transaction, `skip` >
/// 0) and follows it with a position-only batch once the transaction commits. The state of
/// batches passed on the way is kept (the first batch of a stream carries the table
/// definitions).
async fn next_with_changes(batches: &mut BatchStream) -> Batch {
    let mut joined: Option<Batch> = None;
    let mut state = None;
    loop {
        let batch = next_batch(batches).await;
        state = batch.state.clone().or(state);
        let has_changes = batch
            .events
            .iter()
            .any(|e| matches!(e, SourceEvent::Change(_)));
        let joined = match (joined.as_mut(), has_changes) {
            (Some(j), _) => {
                j.events.extend(batch.events);
                j.position = batch.position;
                j
            }
            (None, true) => joined.insert(batch),
            (None, false) => continue,
        };
        let committed = matches!(&joined.position, Position::MySql(p) if p.skip == 0);
        if committed {
            joined.state = joined.state.take().or(state);
            return joined.clone();
        }
    }
}

#[tokio::test]
async fn postgres_batch_killed_mid_transaction_leaves_data_and_checkpoint_unchanged_and_a_retry_applies_it_once()
 {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgcrash").await;
    my.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"))
        .await
        .expect("create");
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    let pipeline = pipeline("crash");
    let name = format!("crash-{pipeline}");
    let mut sink = PostgresSink::new(name.clone(), sink_config())
        .checkpoint_as(&pipeline)
        .expect("pipeline");
    let store = PostgresCheckpointStore::new(Server::Postgres.url());
    let pg = pg().await;

    my.query_drop(format!(
        "INSERT INTO `{db}`.t VALUES (1, 1), (2, 2), (3, 3)"
    ))
    .await
    .expect("rows");
    let first = next_with_changes(&mut batches).await;
    sink.apply(&first).await.expect("first batch");
    let stored = async || {
        store
            .load(&pipeline)
            .await
            .expect("load")
            .expect("a checkpoint")
    };
    let saved = stored().await;
    assert_eq!(saved.position, first.position);
    assert!(
        saved.state.is_some(),
        "the source's table definitions are saved with the position"
    );

    my.query_drop(format!("UPDATE `{db}`.t SET v = v + 10"))
        .await
        .expect("update");
    my.query_drop(format!("INSERT INTO `{db}`.t VALUES (4, 4)"))
        .await
        .expect("insert");
    let mut second = next_with_changes(&mut batches).await;
    while second.events.len() < 4 {
        let more = next_with_changes(&mut batches).await;
        second.events.extend(more.events);
        second.position = more.position;
    }
    shutdown.cancel();

    // Hold the target table so the sink's merge waits inside its transaction, then kill it.
    let mut locker = pg_raw().await;
    let lock = locker.transaction().await.expect("begin");
    lock.batch_execute(&format!("LOCK TABLE \"{db}\".t IN ACCESS EXCLUSIVE MODE"))
        .await
        .expect("lock");
    let task = tokio::spawn(async move {
        let result = sink.apply(&second).await.map(|_| ());
        (sink, second, result)
    });
    let app = format!("ustream-{name}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting = count(&pg, &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' AND wait_event_type = 'Lock'"
        )).await;
        if waiting == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sink never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.execute(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"), &[])
        .await
        .expect("terminate");
    lock.rollback().await.expect("unlock");
    let (mut sink, second, result) = task.await.expect("task");
    let err = result.expect_err("the killed transaction fails");
    assert_eq!(err.class(), stream_core::ErrorClass::Transient, "{err}");

    let sum = format!("SELECT sum(v)::int8 FROM \"{db}\".t");
    assert_eq!(
        count(&pg, &sum).await,
        6,
        "no update of the killed batch is visible"
    );
    assert_eq!(
        count(&pg, &format!("SELECT count(*) FROM \"{db}\".t")).await,
        3
    );
    assert_eq!(
        stored().await.position,
        first.position,
        "checkpoint unchanged"
    );

    let applied = sink.apply(&second).await.expect("retry");
    assert_eq!(
        applied.checkpoint.map(|c| c.position),
        Some(second.position.clone())
    );
    assert_eq!(count(&pg, &sum).await, 6 + 30 + 4, "applied once");
    assert_eq!(stored().await.position, second.position);

    // A restarted writer handed the same batch again (its commit acknowledgement was lost)
    // sees the stored checkpoint and applies nothing.
    let mut restarted = PostgresSink::new(name, sink_config())
        .checkpoint_as(&pipeline)
        .expect("pipeline");
    let again = restarted.apply(&second).await.expect("replay");
    assert_eq!(again.changes, 0);
    assert_eq!(count(&pg, &sum).await, 40);
}

#[tokio::test]
async fn postgres_target_commit_holds_whole_source_transactions_only() {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgtxn").await;
    my.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"))
        .await
        .expect("create");
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    // 3,000 rows in one transaction: the source hands them over in batches of 1,024.
    my.query_drop(format!(
        "INSERT INTO `{db}`.t SELECT seq, seq FROM `{db}`.seq_1_to_3000"
    ))
    .await
    .expect("rows");
    let pg = pg().await;
    let mut sink = PostgresSink::new("txn", sink_config());
    let count_sql = format!("SELECT count(*) FROM \"{db}\".t");
    let mut seen = Vec::new();
    let applied = pump(&mut batches, &mut sink, async || {
        let n = pg
            .query_one(&count_sql, &[])
            .await
            .map_or(0, |r| r.get::<_, i64>(0));
        seen.push(n);
        n == 3000
    })
    .await;
    shutdown.cancel();
    assert!(
        seen.iter().all(|n| *n == 0 || *n == 3000),
        "a reader saw part of the transaction: {seen:?}"
    );
    assert!(
        applied.iter().any(|a| a.held > 0),
        "the source cut the transaction: {applied:?}"
    );
}
