//! `ustream dead-letters list|replay` on a dead-letter file: no server involved.

use std::process::Command;

use stream_edge::{DeadLetter, DeadLetterQueue, FileDeadLetterQueue};

const USTREAM: &str = env!("CARGO_BIN_EXE_ustream");

fn event(id: i64) -> serde_json::Value {
    serde_json::json!({"source":"mysql","db":"shop","table":"orders","op":"insert",
        "key":{"id":id},"before":null,"after":{"id":id},"position":format!("binlog:b.000001:4+{id}"),
        "ts_ms":1,"txn":null})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_then_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dlq.jsonl");
    let queue = FileDeadLetterQueue::new(&path);
    for (id, who) in [(1, "billing"), (2, "mailer"), (3, "billing")] {
        let letter = DeadLetter::from_json(who, format!("row {id} refused"), 2, event(id));
        queue.put(letter).await.expect("put");
    }
    let list = Command::new(USTREAM)
        .args(["dead-letters", "list"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let letters: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[1]["reason"], "row 2 refused");
    assert_eq!(letters[1]["subscriber"], "mailer");

    let replay = Command::new(USTREAM)
        .args(["dead-letters", "replay", "--subscriber", "billing"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        events,
        vec![event(1), event(3)],
        "the events themselves, in order"
    );
    assert!(String::from_utf8_lossy(&replay.stderr).contains("replayed 2 letters"));
    let left = FileDeadLetterQueue::new(&path).list().await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].subscriber, "mailer");
}
