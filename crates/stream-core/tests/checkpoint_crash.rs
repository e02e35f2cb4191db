//! A process killed with SIGKILL while saving checkpoints in a loop leaves a checkpoint that
//! loads: the last one saved, or the one before, never a torn file.

use std::process::Command;
use std::time::Duration;

use stream_core::{Checkpoint, CheckpointStore, FileCheckpointStore, Position};

const CHILD_DIR: &str = "STREAM_CORE_CRASH_TEST_DIR";

/// In the child: save ever-increasing positions until killed.
async fn save_forever(dir: &str) {
    let store = FileCheckpointStore::new(dir);
    let state = serde_json::json!({ "padding": "x".repeat(64 * 1024) });
    // Continue after what an earlier (killed) child saved: positions only move forward.
    let first = match store.load("crash").await.expect("load") {
        Some(Checkpoint {
            position: Position::MySql(p),
            ..
        }) => match p.start {
            stream_core::TxnStart::File { offset, .. } => offset + 1,
            _ => 4,
        },
        _ => 4,
    };
    for offset in first.. {
        let mut cp = Checkpoint::at(Position::binlog("mysql-bin.000001", offset, 0));
        cp.state = Some(state.clone());
        store.save("crash", &cp).await.expect("save");
    }
}

#[tokio::test]
async fn checkpoint_file_survives_kill_9_mid_write() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        save_forever(&dir).await;
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "checkpoint_crash::checkpoint_file_survives_kill_9_mid_write",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir.path())
            .spawn()
            .expect("child");
        // The child's first save can take long on a loaded machine (start-up, fsyncs): the
        // kill waits for it, then lands at a point that varies by round, mid-write or not.
        let saved = FileCheckpointStore::new(dir.path()).path_of("crash");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !saved.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the child saved no checkpoint in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20 + 70 * round)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let store = FileCheckpointStore::new(dir.path());
        let loaded = store
            .load("crash")
            .await
            .expect("a killed writer never leaves a torn checkpoint");
        let cp = loaded.expect("some checkpoint was saved before the kill");
        assert!(cp.state.is_some(), "position and state are saved together");
    }
}
