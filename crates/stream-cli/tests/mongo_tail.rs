//! `ustream tail mongodb://...` against the MongoDB of STREAM_TEST_MONGO_URL: the stdout/stderr
//! contract, flags, errors, and a kill -9 in mid-stream followed by a restart from the last
//! delivered position.

use std::process::Command;
use std::time::Duration;

use crate::support::{USTREAM, json_lines, kill_mid_stream_and_resume};
use mongodb::bson::{Document, doc};
use stream_testkit::{Server, unique_name};

async fn client() -> mongodb::Client {
    mongodb::Client::with_uri_str(Server::Mongo.url())
        .await
        .expect("client")
}

/// `mongodb-time:<t>.<i>` of the deployment now: a position before the writes that follow.
async fn now(client: &mongodb::Client) -> String {
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .expect("hello");
    let ts = hello
        .get_timestamp("operationTime")
        .or_else(|_| {
            hello
                .get_document("$clusterTime")
                .and_then(|c| c.get_timestamp("clusterTime"))
        })
        .expect("cluster time");
    format!("mongodb-time:{}.{}", ts.time, ts.increment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_prints_only_contract_json_on_stdout_and_honours_limit() {
    let client = client().await;
    let db = unique_name("cli");
    let start = now(&client).await;
    let coll = client.database(&db).collection::<Document>("t");
    for id in 1..=3 {
        coll.insert_one(doc! {"_id": id, "v": "a"})
            .await
            .expect("insert");
    }
    let out = Command::new(USTREAM)
        .args(["tail", &Server::Mongo.url()])
        .args([
            "--include",
            &format!("{db}.t"),
            "--from",
            &start,
            "--limit",
            "2",
        ])
        .output()
        .expect("run ustream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "--limit 2");
    assert_eq!(lines[0]["source"], "mongodb");
    assert_eq!(lines[0]["db"], db.as_str());
    assert_eq!(lines[0]["op"], "insert");
    assert_eq!(lines[1]["key"], serde_json::json!({"_id": 2}));
    assert!(
        stderr.contains(&format!("streaming from {start}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_updates_carry_the_whole_document_by_default() {
    let client = client().await;
    let db = unique_name("lookup");
    let start = now(&client).await;
    let coll = client.database(&db).collection::<Document>("t");
    coll.insert_one(doc! {"_id": 1, "v": "a", "n": 1})
        .await
        .expect("insert");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"v": "b"}})
        .await
        .expect("update");
    let out = Command::new(USTREAM)
        .args([
            "tail",
            &Server::Mongo.url(),
            "--include",
            &format!("{db}.t"),
        ])
        .args(["--from", &start, "--limit", "2"])
        .output()
        .expect("run ustream");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[1]["op"], "update");
    assert_eq!(
        lines[1]["after"],
        serde_json::json!({"_id": 1, "v": "b", "n": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_errors_are_one_line_and_never_show_the_password() {
    let url = Server::Mongo
        .url()
        .replacen("mongodb://", "mongodb://app:Hunter2Secret@", 1);
    let out = Command::new(USTREAM)
        .args(["tail", &url, "--from", "end"])
        .output()
        .expect("run ustream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("Hunter2Secret"), "{stderr}");
    let out = Command::new(USTREAM)
        .args(["tail", &Server::Mongo.url(), "--from", "mongodb:!!"])
        .output()
        .expect("run ustream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid position `mongodb:!!`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_killed_mid_stream_resumes_from_its_last_line_without_loss_or_repeat() {
    let client = client().await;
    let db = unique_name("kill9");
    let start = now(&client).await;
    const BATCHES: i32 = 300;
    const DOCS: i32 = 5;
    let writer = {
        let coll = client.database(&db).collection::<Document>("t");
        tokio::spawn(async move {
            for b in 0..BATCHES {
                let docs: Vec<Document> = (0..DOCS).map(|d| doc! {"_id": b * DOCS + d}).collect();
                coll.insert_many(docs).await.expect("insert");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let include = format!("{db}.t");
    let url = Server::Mongo.url();
    let out_path = std::env::temp_dir().join(format!("{db}.jsonl"));
    let lines = kill_mid_stream_and_resume(
        &[&url, "--include", &include],
        &start,
        &out_path,
        40_000,
        (BATCHES * DOCS) as usize,
        writer,
    )
    .await;
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["key"]["_id"].as_i64().expect("id"))
        .collect();
    let expected: Vec<i64> = (0..i64::from(BATCHES * DOCS)).collect();
    assert_eq!(
        ids, expected,
        "every document exactly once, in commit order"
    );
    let _ = std::fs::remove_file(&out_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_tail_checkpoint_resumes_where_the_last_run_stopped() {
    let client = client().await;
    let db = unique_name("ckpt");
    let start = now(&client).await;
    let coll = client.database(&db).collection::<Document>("t");
    for id in 1..=5 {
        coll.insert_one(doc! {"_id": id}).await.expect("insert");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let include = format!("{db}.t");
    let run = |extra: &[&str]| {
        Command::new(USTREAM)
            .args(["tail", &Server::Mongo.url(), "--include", &include])
            .args(["--from", &start, "--checkpoint"])
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("run ustream")
    };
    let first = run(&["--limit", "3"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(json_lines(&first.stdout).len(), 3);
    let saved = std::fs::read_to_string(dir.path().join("tail.checkpoint.json")).expect("saved");
    assert!(
        saved.contains("mongodb:"),
        "the resume token is saved: {saved}"
    );
    let second = run(&["--idle-exit-ms", "1500"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let ids: Vec<i64> = json_lines(&second.stdout)
        .iter()
        .map(|l| l["key"]["_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [4, 5],
        "the second run continues after the third document"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("resuming from checkpoint"));
}
