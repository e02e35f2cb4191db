//! A Streamer reading a snapshot checkpoints where the snapshot starts before its first row is
//! acknowledged: a stop inside the first batch restarts that snapshot (and replays the binlog
//! from its position) instead of taking a new one that never tells of rows deleted meanwhile.

use std::sync::Arc;

use stream_core::{
    CheckpointStore, FileCheckpointStore, MySqlPosition, Position, StartFrom, TxnStart,
};
use stream_testkit::Server;
use ultimate_stream::Streamer;

use crate::support::{WAIT, fresh, insert};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_checkpoints_a_snapshot_start_before_its_first_row_is_acknowledged() {
    let (mut c, db) = fresh(&Server::MySql.url(), "snapstart").await;
    insert(&mut c, &db, 1).await;
    let url = format!("{}/{db}", Server::MySql.url());
    let dir = tempfile::tempdir().expect("temp dir");
    // The callback holds the only row until released: nothing after it can be checkpointed.
    let release = Arc::new(tokio::sync::Notify::new());
    let hold = release.clone();
    let streamer = Streamer::builder()
        .mysql(&url)
        .start_from(StartFrom::Snapshot)
        .checkpoints(FileCheckpointStore::new(dir.path()))
        .on(&format!("{db}.t"), move |_event| {
            let hold = hold.clone();
            async move {
                hold.notified().await;
                Ok(())
            }
        })
        .start()
        .await
        .expect("start");
    let store = FileCheckpointStore::new(dir.path());
    let saved = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(saved) = store.load("mysql").await.expect("load") {
                break saved;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a checkpoint while the first row is held");
    match &saved.position {
        Position::MySql(MySqlPosition {
            start: TxnStart::Snapshot(progress),
            ..
        }) => assert!(
            progress.table.is_empty() && progress.after.is_none(),
            "the snapshot's start, nothing copied yet: {progress:?}"
        ),
        other => panic!("not a snapshot position: {other}"),
    }
    release.notify_one();
    streamer.stop().await.expect("stop");
}
