//! The checkpoint never moves past an event that was neither delivered nor dead-lettered: a
//! dead-letter queue that refuses a letter, a callback task that dies with work in hand and a
//! checkpoint that cannot be saved each stop the source, and a restart delivers the event again.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use stream_core::{Checkpoint, CheckpointError, CheckpointStore, FileCheckpointStore};
use stream_testkit::Server;
use ultimate_stream::edge::{DeadLetter, DeadLetterError, DeadLetterQueue};
use ultimate_stream::{HandlerError, Streamer};

use crate::support::{Seen, WAIT, eventually, fresh, id_of, ids, insert, recorder};

/// A dead-letter queue whose disk is full.
struct RefusingQueue;

#[async_trait::async_trait]
impl DeadLetterQueue for RefusingQueue {
    async fn put(&self, _letter: DeadLetter) -> Result<(), DeadLetterError> {
        Err(DeadLetterError::Io {
            path: "dead-letters.jsonl".into(),
            source: std::io::Error::other("no space left on device"),
        })
    }
    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        Ok(Vec::new())
    }
    async fn remove(&self, _ids: &[String]) -> Result<usize, DeadLetterError> {
        Ok(0)
    }
}

/// A dead-letter queue with a bug: it panics, taking the callback's task down with it.
struct PanickingQueue;

#[async_trait::async_trait]
impl DeadLetterQueue for PanickingQueue {
    async fn put(&self, _letter: DeadLetter) -> Result<(), DeadLetterError> {
        panic!("dead-letter queue bug")
    }
    async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        Ok(Vec::new())
    }
    async fn remove(&self, _ids: &[String]) -> Result<usize, DeadLetterError> {
        Ok(0)
    }
}

/// File checkpoints whose saves fail while `failing` is set.
struct FlakyCheckpoints {
    inner: FileCheckpointStore,
    failing: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl CheckpointStore for FlakyCheckpoints {
    async fn load(&self, pipeline: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.inner.load(pipeline).await
    }
    async fn save(&self, pipeline: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(CheckpointError::Io {
                path: "checkpoints/mysql.json".into(),
                source: std::io::Error::other("read-only file system"),
            });
        }
        self.inner.save(pipeline, checkpoint).await
    }
}

/// Waits until the source `mysql` has a checkpoint in `dir`.
async fn checkpointed(dir: &Path) {
    let store = FileCheckpointStore::new(dir);
    tokio::time::timeout(WAIT, async {
        while store.load("mysql").await.expect("load").is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a checkpoint after the first row");
}

/// Why the source `mysql` stopped, once it has.
fn stopped_because(streamer: &Streamer) -> Option<String> {
    match streamer.health().get("mysql") {
        Some(ultimate_stream::SourceHealth::Failed { reason }) => Some(reason.clone()),
        _ => None,
    }
}

/// Streams a fresh database with a callback that rejects row 1 (`definite`) into `queue`:
/// row 0 is checkpointed, row 1 must stop the source. Returns why it stopped, and what a
/// restart from the checkpoint delivered.
async fn poison_row_1_into(
    prefix: &str,
    queue: impl DeadLetterQueue + 'static,
) -> (String, Vec<i64>) {
    let (mut c, db) = fresh(&Server::MySql.url(), prefix).await;
    let url = format!("{}/{db}", Server::MySql.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let streamer = Streamer::builder()
        .mysql(&url)
        .checkpoints(FileCheckpointStore::new(dir.path()))
        .dead_letters(queue)
        .on(&format!("{db}.t"), |event| async move {
            if id_of(&event) == 1 {
                return Err(HandlerError::definite("row 1 is poison"));
            }
            Ok(())
        })
        .start()
        .await
        .expect("start");
    insert(&mut c, &db, 0).await;
    checkpointed(dir.path()).await;
    insert(&mut c, &db, 1).await;
    eventually("the source to stop", || {
        stopped_because(&streamer).is_some()
    })
    .await;
    let reason = stopped_because(&streamer).expect("stopped");
    streamer.stop().await.expect("stop");
    let again = restart_and_collect(&url, FileCheckpointStore::new(dir.path()), &mut c).await;
    (reason, again)
}

/// Restarts from `checkpoints` with a callback that accepts everything, writes row
/// 2 and returns what the callback saw up to it.
async fn restart_and_collect(
    url: &str,
    checkpoints: impl CheckpointStore + 'static,
    c: &mut mysql_async::Conn,
) -> Vec<i64> {
    let db = url.rsplit('/').next().expect("db").to_owned();
    let again = Seen::default();
    let streamer = Streamer::builder()
        .mysql(url)
        .checkpoints(checkpoints)
        .on(&format!("{db}.t"), recorder(&again))
        .start()
        .await
        .expect("restart");
    insert(c, &db, 2).await;
    eventually("row 2 after the restart", || ids(&again).contains(&2)).await;
    streamer.stop().await.expect("stop");
    ids(&again)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_stops_when_the_dead_letter_queue_refuses_and_a_restart_redelivers() {
    let (reason, again) = poison_row_1_into("dlqfull", RefusingQueue).await;
    assert!(reason.contains("dead-letter"), "{reason}");
    assert!(reason.contains("no space left on device"), "{reason}");
    assert!(again.contains(&1), "row 1 delivered again: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_stops_when_a_callback_task_dies_with_work_in_hand_and_a_restart_redelivers()
 {
    let (reason, again) = poison_row_1_into("taskdies", PanickingQueue).await;
    assert!(reason.contains("acknowledge"), "{reason}");
    assert!(again.contains(&1), "row 1 delivered again: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_stops_when_a_checkpoint_cannot_be_saved_and_a_restart_redelivers() {
    let (mut c, db) = fresh(&Server::MySql.url(), "ckptfail").await;
    let url = format!("{}/{db}", Server::MySql.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let failing = Arc::new(AtomicBool::new(false));
    let streamer = Streamer::builder()
        .mysql(&url)
        .checkpoints(FlakyCheckpoints {
            inner: FileCheckpointStore::new(dir.path()),
            failing: failing.clone(),
        })
        .retry_policy(
            ultimate_stream::edge::RetryPolicy::default()
                .with_backoff(ultimate_stream::core::Backoff::none()),
        )
        .start()
        .await
        .expect("start");
    let seen = Seen::default();
    streamer
        .on(&format!("{db}.t"), recorder(&seen))
        .expect("recorder");
    insert(&mut c, &db, 0).await;
    checkpointed(dir.path()).await;
    failing.store(true, Ordering::SeqCst);
    insert(&mut c, &db, 1).await;
    eventually("the source to stop", || {
        stopped_because(&streamer).is_some()
    })
    .await;
    let reason = stopped_because(&streamer).expect("stopped");
    assert!(reason.contains("checkpoint"), "{reason}");
    assert!(reason.contains("read-only file system"), "{reason}");
    streamer.stop().await.expect("stop");
    let again = restart_and_collect(&url, FileCheckpointStore::new(dir.path()), &mut c).await;
    assert!(again.contains(&1), "row 1 delivered again: {again:?}");
}
