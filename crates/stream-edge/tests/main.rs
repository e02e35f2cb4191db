//! End-to-end use of the public API: a sink that fails, retries by policy, dead letters in a
//! file that outlives the process, and a replay once the sink is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use stream_core::{
    Backoff, ChangeEvent, ErrorClass, MemoryStore, Namespace, Op, Position, Row, SourceKind, Value,
};
use stream_edge::{
    Action, DeadLetter, DeadLetterQueue, Decision, DedupWindow, FileDeadLetterQueue, RetryPolicy,
    TableDeadLetterQueue, replay, retry, validate,
};

#[derive(Debug)]
enum SinkError {
    Unavailable,
    Rejected(String),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Unavailable => f.write_str("sink unavailable"),
            SinkError::Rejected(why) => write!(f, "rejected: {why}"),
        }
    }
}

fn class(e: &SinkError) -> ErrorClass {
    match e {
        SinkError::Unavailable => ErrorClass::Transient,
        SinkError::Rejected(_) => ErrorClass::Definite,
    }
}

fn order(id: i64, skip: u64) -> ChangeEvent {
    let key: Row = [("id", Value::Int(id))].into_iter().collect();
    let after: Row = [("id", Value::Int(id)), ("status", Value::from("paid"))]
        .into_iter()
        .collect();
    ChangeEvent {
        source: SourceKind::MySql,
        namespace: Namespace::new("shop", "orders"),
        op: Op::Insert,
        key: Some(key),
        before: None,
        after: Some(after),
        update: None,
        position: format!("binlog:mysql-bin.000001:4+{skip}")
            .parse::<Position>()
            .expect("position"),
        ts_ms: 1_732_272_000_000,
        txn: None,
    }
}

#[tokio::test]
async fn failed_deliveries_are_dead_lettered_and_replayed_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dead-letters.jsonl");
    let policy = RetryPolicy::from_table([
        (ErrorClass::Transient, Decision::Retry { max_attempts: 3 }),
        (ErrorClass::Definite, Decision::DeadLetter),
    ])
    .with_backoff(Backoff::constant(Duration::from_millis(1)));
    let dedup = DedupWindow::new(100, Duration::from_secs(60));
    let down = AtomicBool::new(true);
    let calls = AtomicU32::new(0);

    {
        let queue = FileDeadLetterQueue::new(&path);
        // Event 2 is pushed twice; event 3 is rejected for good.
        for event in [order(1, 1), order(2, 2), order(2, 2), order(3, 3)] {
            if !dedup.check_event(&event) {
                continue;
            }
            let id = event.key.as_ref().and_then(|k| k.get("id").cloned());
            let result = retry(&policy, class, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                if id == Some(Value::Int(3)) {
                    Err(SinkError::Rejected("no such customer".into()))
                } else if down.load(Ordering::SeqCst) {
                    Err(SinkError::Unavailable)
                } else {
                    Ok(())
                }
            })
            .await;
            let gave_up = result.expect_err("the sink is down");
            assert_eq!(gave_up.action, Action::DeadLetter);
            let letter = DeadLetter::new(
                "orders-sink",
                gave_up.error.to_string(),
                gave_up.attempts,
                &event,
            );
            queue.put(letter).await.expect("put");
        }
    }
    assert_eq!(dedup.stats().duplicate, 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3 + 3 + 1,
        "3 tries, 3 tries, 1 try"
    );

    // After a restart, with the sink back.
    down.store(false, Ordering::SeqCst);
    let queue = FileDeadLetterQueue::new(&path);
    let letters = queue.list().await.expect("list");
    let summary: Vec<(i64, &str, u32)> = letters
        .iter()
        .map(|l| {
            (
                l.event["key"]["id"].as_i64().unwrap_or(0),
                l.reason.as_str(),
                l.attempts,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "sink unavailable", 3),
            (2, "sink unavailable", 3),
            (3, "rejected: no such customer", 1)
        ]
    );
    assert_eq!(letters[0].event["position"], "binlog:mysql-bin.000001:4+1");
    let report = replay(&queue, |letter| {
        let rejected = letter.event["key"]["id"] == 3;
        async move {
            if rejected {
                Err(SinkError::Rejected("no such customer".into()))
            } else {
                Ok(())
            }
        }
    })
    .await
    .expect("replay");
    assert_eq!(
        (report.replayed, report.failed, report.remaining),
        (2, 1, 1)
    );
    let left = FileDeadLetterQueue::new(&path).list().await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, letters[2].id);
}

#[tokio::test]
async fn a_table_queue_behind_a_shared_store_is_a_dyn_queue() {
    let ns = validate::namespace("ops.dead_letters").expect("namespace");
    let store = Arc::new(MemoryStore::new());
    let queue: Arc<dyn DeadLetterQueue> =
        Arc::new(TableDeadLetterQueue::shared(Arc::clone(&store), ns.clone()));
    let letter = DeadLetter::new("search", "mapping conflict", 1, &order(7, 1));
    queue.put(letter.clone()).await.expect("put");
    assert_eq!(queue.list().await.expect("list"), vec![letter.clone()]);
    let report = replay(&queue, |_| async { Ok::<(), SinkError>(()) })
        .await
        .expect("replay");
    assert_eq!(report.replayed, 1);
    assert!(queue.list().await.expect("list").is_empty());
    validate::key(
        &ns,
        &[("id", Value::from(letter.id.as_str()))]
            .into_iter()
            .collect(),
    )
    .expect("letter ids make valid keys");
}
