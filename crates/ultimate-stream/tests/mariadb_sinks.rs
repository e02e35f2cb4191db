//! Sinks driven by the `Streamer` against MariaDB, with an in-process sink of our own: events
//! reach the sink in commit order and in batches; the checkpoint never passes an event a slow
//! or failing sink has not acknowledged, and a restart delivers it again; rejected events go
//! to the dead-letter queue when there is one, else stop the source.

use std::path::Path;
use std::sync::{Arc, Mutex};

use mysql_async::prelude::*;
use stream_core::{
    ChangeEvent, CheckpointStore, ErrorClass, FileCheckpointStore, Position, Sink, SinkError,
};
use stream_testkit::Server;
use tokio::sync::Notify;
use ultimate_stream::core::Backoff;
use ultimate_stream::edge::{DeadLetterQueue, Decision, MemoryDeadLetterQueue, RetryPolicy};
use ultimate_stream::{SourceHealth, Streamer};

use crate::support::{WAIT, eventually, fresh, id_of, insert};

/// What the sink was given and did.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Written>>);

#[derive(Default)]
struct Written {
    /// One entry per successful `write`: the ids and positions of its events.
    writes: Vec<Vec<(i64, Position)>>,
    checked: bool,
    shut_down: bool,
}

impl Log {
    fn ids(&self) -> Vec<i64> {
        let written = self.0.lock().expect("lock");
        written.writes.iter().flatten().map(|(id, _)| *id).collect()
    }

    fn position_of(&self, id: i64) -> Option<Position> {
        let written = self.0.lock().expect("lock");
        written
            .writes
            .iter()
            .flatten()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p.clone())
    }
}

enum Behaviour {
    Accept,
    /// Holds the write of this row until `release` is notified; says so in `holding`.
    Hold {
        id: i64,
        release: Arc<Notify>,
        holding: Arc<Mutex<Option<Position>>>,
    },
    /// A transient error for every write that holds this row.
    Fail(i64),
    /// Rejects this row for good.
    Reject(i64),
}

struct FakeSink {
    log: Log,
    behaviour: Behaviour,
}

impl FakeSink {
    fn new(log: &Log, behaviour: Behaviour) -> Self {
        Self {
            log: log.clone(),
            behaviour,
        }
    }
}

#[async_trait::async_trait]
impl Sink for FakeSink {
    fn name(&self) -> &str {
        "fake"
    }

    async fn write(&mut self, events: &[Arc<ChangeEvent>]) -> Result<(), SinkError> {
        for event in events {
            match &self.behaviour {
                Behaviour::Hold {
                    id,
                    release,
                    holding,
                } if id_of(event) == *id => {
                    *holding.lock().expect("lock") = Some(event.position.clone());
                    release.notified().await;
                }
                Behaviour::Fail(id) if id_of(event) == *id => {
                    return Err(SinkError::Write {
                        sink: "fake".into(),
                        reason: "connection reset by peer".into(),
                        class: ErrorClass::Transient,
                    });
                }
                Behaviour::Reject(id) if id_of(event) == *id => {
                    return Err(SinkError::Rejected {
                        sink: "fake".into(),
                        position: event.position.to_string(),
                        reason: "value out of range".into(),
                    });
                }
                _ => {}
            }
        }
        let write = events
            .iter()
            .map(|e| (id_of(e), e.position.clone()))
            .collect();
        self.log.0.lock().expect("lock").writes.push(write);
        Ok(())
    }

    async fn health_check(&mut self) -> Result<(), SinkError> {
        self.log.0.lock().expect("lock").checked = true;
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), SinkError> {
        self.log.0.lock().expect("lock").shut_down = true;
        Ok(())
    }
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::from_table([
        (
            ErrorClass::Transient,
            Decision::Retry {
                max_attempts: attempts,
            },
        ),
        (ErrorClass::Definite, Decision::DeadLetter),
    ])
    .with_backoff(Backoff::none())
}

async fn checkpoint(dir: &Path) -> Option<Position> {
    FileCheckpointStore::new(dir)
        .load("mysql")
        .await
        .expect("load")
        .map(|c| c.position)
}

/// Waits until the checkpoint in `dir` is at or past `position`.
async fn checkpoint_reaches(dir: &Path, position: &Position) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(saved) = checkpoint(dir).await
                && saved.compare(position) != Some(std::cmp::Ordering::Less)
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the checkpoint never reached {position}"));
}

fn stopped_because(streamer: &Streamer) -> Option<String> {
    match streamer.health().get("mysql") {
        Some(SourceHealth::Failed { reason }) => Some(reason.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_sink_gets_the_events_of_its_patterns_in_commit_order_and_in_batches() {
    let (mut c, db) = fresh(&Server::MySql.url(), "sink").await;
    c.query_drop(format!("CREATE TABLE `{db}`.other (id INT PRIMARY KEY)"))
        .await
        .expect("other table");
    let log = Log::default();
    let streamer = Streamer::builder()
        .mysql(&format!("{}/{db}", Server::MySql.url()))
        .sink(
            "fake",
            FakeSink::new(&log, Behaviour::Accept),
            [format!("{db}.t")],
        )
        .start()
        .await
        .expect("start");
    assert!(
        log.0.lock().expect("lock").checked,
        "health-checked at start"
    );
    for id in 0..10 {
        insert(&mut c, &db, id).await;
    }
    c.query_drop(format!("INSERT INTO `{db}`.other VALUES (1000)"))
        .await
        .expect("other row");
    let rows: Vec<String> = (10..110).map(|id| format!("({id}, 'x')")).collect();
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES {}", rows.join(",")))
        .await
        .expect("100 rows at once");
    eventually("110 rows in the sink", || log.ids().len() >= 110).await;
    assert_eq!(
        log.ids(),
        (0..110).collect::<Vec<i64>>(),
        "commit order, only `t`"
    );
    let largest = log
        .0
        .lock()
        .expect("lock")
        .writes
        .iter()
        .map(Vec::len)
        .max();
    assert!(
        largest >= Some(100),
        "one transaction, one write: {largest:?}"
    );
    streamer.stop().await.expect("stop");
    assert!(log.0.lock().expect("lock").shut_down, "shut down at stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_checkpoint_waits_for_a_slow_sink_and_a_restart_redelivers() {
    let (mut c, db) = fresh(&Server::MySql.url(), "slowsink").await;
    let url = format!("{}/{db}", Server::MySql.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let release = Arc::new(Notify::new());
    let holding: Arc<Mutex<Option<Position>>> = Arc::default();
    let log = Log::default();
    let sink = FakeSink::new(
        &log,
        Behaviour::Hold {
            id: 1,
            release: release.clone(),
            holding: holding.clone(),
        },
    );
    let streamer = Streamer::builder()
        .mysql(&url)
        .checkpoints(FileCheckpointStore::new(dir.path()))
        .sink("slow", sink, [format!("{db}.t")])
        .start()
        .await
        .expect("start");
    insert(&mut c, &db, 0).await;
    eventually("row 0 written", || log.ids() == vec![0]).await;
    let row_0 = log.position_of(0).expect("row 0");
    checkpoint_reaches(dir.path(), &row_0).await;
    insert(&mut c, &db, 1).await;
    eventually("the sink holding row 1", || {
        holding.lock().expect("lock").is_some()
    })
    .await;
    let row_1 = holding.lock().expect("lock").clone().expect("position");
    // Everything else may go on; the checkpoint stays before row 1.
    insert(&mut c, &db, 2).await;
    let saved = checkpoint(dir.path())
        .await
        .expect("a checkpoint after row 0");
    assert_eq!(
        saved.compare(&row_1),
        Some(std::cmp::Ordering::Less),
        "checkpoint {saved} must stay before row 1 at {row_1}"
    );

    // A second streamer started from that checkpoint gets row 1 again.
    let copy = tempfile::tempdir().expect("temp dir");
    let checkpoint_now = FileCheckpointStore::new(dir.path())
        .load("mysql")
        .await
        .expect("load")
        .expect("checkpoint");
    FileCheckpointStore::new(copy.path())
        .save("mysql", &checkpoint_now)
        .await
        .expect("copy");
    let again = Log::default();
    let restarted = Streamer::builder()
        .mysql(&url)
        .checkpoints(FileCheckpointStore::new(copy.path()))
        .sink(
            "again",
            FakeSink::new(&again, Behaviour::Accept),
            [format!("{db}.t")],
        )
        .start()
        .await
        .expect("restart");
    eventually("rows 1 and 2 delivered again", || {
        let ids = again.ids();
        ids.contains(&1) && ids.contains(&2)
    })
    .await;
    restarted.stop().await.expect("stop");

    // Once the sink acknowledges, the checkpoint moves past row 1.
    release.notify_one();
    eventually("rows 1 and 2 written", || log.ids() == vec![0, 1, 2]).await;
    checkpoint_reaches(dir.path(), &row_1).await;
    assert!(log.position_of(1).is_some());
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_failing_sink_stops_the_source_and_a_restart_redelivers() {
    let (mut c, db) = fresh(&Server::MySql.url(), "failsink").await;
    let url = format!("{}/{db}", Server::MySql.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let streamer = Streamer::builder()
        .mysql(&url)
        .checkpoints(FileCheckpointStore::new(dir.path()))
        .retry_policy(quick_retries(3))
        .sink(
            "flaky",
            FakeSink::new(&log, Behaviour::Fail(1)),
            [format!("{db}.t")],
        )
        .start()
        .await
        .expect("start");
    insert(&mut c, &db, 0).await;
    eventually("row 0 written", || log.ids() == vec![0]).await;
    insert(&mut c, &db, 1).await;
    eventually("the source to stop", || {
        stopped_because(&streamer).is_some()
    })
    .await;
    let reason = stopped_because(&streamer).expect("stopped");
    assert!(reason.contains("`flaky`"), "{reason}");
    assert!(reason.contains("connection reset by peer"), "{reason}");
    assert!(reason.contains("after 3 attempts"), "{reason}");
    streamer.stop().await.expect("stop");

    let again = Log::default();
    let restarted = Streamer::builder()
        .mysql(&url)
        .checkpoints(FileCheckpointStore::new(dir.path()))
        .sink(
            "fixed",
            FakeSink::new(&again, Behaviour::Accept),
            [format!("{db}.t")],
        )
        .start()
        .await
        .expect("restart");
    insert(&mut c, &db, 2).await;
    eventually("row 2 after the restart", || again.ids().contains(&2)).await;
    assert!(
        again.ids().contains(&1),
        "row 1 delivered again: {:?}",
        again.ids()
    );
    restarted.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_rejected_events_go_to_the_dead_letter_queue_or_stop_the_source() {
    let (mut c, db) = fresh(&Server::MySql.url(), "rejectsink").await;
    let url = format!("{}/{db}", Server::MySql.url());
    let queue = Arc::new(MemoryDeadLetterQueue::new());
    let log = Log::default();
    let with_queue = Streamer::builder()
        .mysql(&url)
        .dead_letters(queue.clone())
        .sink(
            "picky",
            FakeSink::new(&log, Behaviour::Reject(1)),
            [format!("{db}.t")],
        )
        .start()
        .await
        .expect("start");
    let without_queue_log = Log::default();
    let without_queue = Streamer::builder()
        .mysql(&url)
        .sink(
            "picky",
            FakeSink::new(&without_queue_log, Behaviour::Reject(1)),
            [format!("{db}.t")],
        )
        .start()
        .await
        .expect("start");
    c.query_drop(format!(
        "INSERT INTO `{db}`.t VALUES (0, 'a'), (1, 'b'), (2, 'c')"
    ))
    .await
    .expect("three rows at once");
    eventually("rows 0 and 2 written around the rejected one", || {
        log.ids() == vec![0, 2]
    })
    .await;
    let letters = queue.list().await.expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].event["key"]["id"], 1);
    assert!(
        letters[0].reason.contains("value out of range"),
        "{}",
        letters[0].reason
    );

    eventually("the source without a dead-letter queue to stop", || {
        stopped_because(&without_queue).is_some()
    })
    .await;
    let reason = stopped_because(&without_queue).expect("stopped");
    assert!(reason.contains("dead-letter queue"), "{reason}");
    assert!(
        !without_queue_log.ids().contains(&1),
        "{:?}",
        without_queue_log.ids()
    );
    with_queue.stop().await.expect("stop");
    without_queue.stop().await.expect("stop");
}
