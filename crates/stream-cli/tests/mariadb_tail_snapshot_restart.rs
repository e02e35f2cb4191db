//! `ustream tail --from snapshot --checkpoint DIR` killed inside its snapshot, against the
//! shared MariaDB: a restart with the same command resumes that snapshot, so a row the first
//! run printed and that was deleted in between gets its delete.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::support::{USTREAM, json_lines};
use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

/// Rows in the table: their JSON (about 200 bytes a row) is far more than a pipe holds, so a
/// run whose stdout nobody reads blocks inside its first batch, before that batch's
/// checkpoint.
const ROWS: u64 = 2000;

/// The rows a consumer holds after applying `lines` in order, by `id`.
fn apply(held: &mut BTreeSet<i64>, lines: &[serde_json::Value]) {
    for line in lines {
        let id = line["key"]["id"].as_i64().expect("an integer key");
        match line["op"].as_str().expect("op") {
            "insert" | "update" => held.insert(id),
            "delete" => held.remove(&id),
            other => panic!("unexpected op {other}"),
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_snapshot_killed_before_its_first_batch_was_saved_still_prints_a_later_delete()
{
    let mut c =
        mysql_async::Conn::new(mysql_async::Opts::from_url(&Server::MySql.url()).expect("url"))
            .await
            .expect("connect");
    let db = unique_name("snaprestart");
    c.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO `{db}`.t SELECT seq, REPEAT('x', 150) FROM `{db}`.seq_1_to_{ROWS}"
    ))
    .await
    .expect("schema and rows");
    let url = format!("{}/{db}", Server::MySql.url());
    let dir = std::env::temp_dir().join(format!("{db}-checkpoint"));
    let command = || {
        let mut cmd = Command::new(USTREAM);
        cmd.args(["tail", &url, "--from", "snapshot", "--checkpoint"])
            .arg(&dir);
        cmd
    };

    // Run 1: stdout is a pipe read only for its first lines, so the run blocks in writing its
    // first batch and never gets to save that batch's checkpoint; then it is killed.
    let mut first = command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ustream");
    let mut reader = BufReader::new(first.stdout.take().expect("stdout"));
    let mut received = Vec::new();
    while received.len() < 10 {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read stdout");
        assert!(n > 0, "ustream ended after {} lines", received.len());
        received.push(serde_json::from_str::<serde_json::Value>(&line).expect("json"));
    }
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    drop(reader);
    assert_eq!(received[0]["key"]["id"], 1, "the snapshot starts at id 1");

    // Meanwhile: a row the consumer holds is deleted, and a new one arrives.
    c.query_drop(format!(
        "DELETE FROM `{db}`.t WHERE id = 1; INSERT INTO `{db}`.t VALUES ({}, 'new')",
        ROWS + 1
    ))
    .await
    .expect("delete and insert");

    // Run 2: the same command.
    let second = command()
        .args(["--idle-exit-ms", "5000"])
        .output()
        .expect("run ustream again");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming from checkpoint mysql-snapshot:"),
        "the first run saved where its snapshot starts: {stderr}"
    );
    let lines = json_lines(&second.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l["op"] == "delete" && l["key"]["id"] == 1),
        "the delete of id 1 is printed"
    );
    let mut held = BTreeSet::new();
    apply(&mut held, &received);
    apply(&mut held, &lines);
    let expected: BTreeSet<i64> = (2..=ROWS as i64 + 1).collect();
    assert_eq!(
        held, expected,
        "the consumer holds the table's rows, and only those"
    );
    let _ = std::fs::remove_dir_all(&dir);
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}
