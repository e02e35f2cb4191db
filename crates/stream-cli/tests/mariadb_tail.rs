//! `ustream tail` against the shared MariaDB: the stdout/stderr contract, flags, errors, and a
//! kill -9 in mid-stream followed by a restart from the last delivered position.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{USTREAM, json_lines, kill_mid_stream_and_resume};
use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

async fn conn() -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(&Server::MySql.url()).expect("url"))
        .await
        .expect("connect")
}

async fn setup(prefix: &str) -> (mysql_async::Conn, String, String) {
    let mut c = conn().await;
    let db = unique_name(prefix);
    c.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10))"
    ))
    .await
    .expect("schema");
    let row: mysql_async::Row = c
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("status")
        .expect("binlog");
    let (file, pos): (String, u64) = (row.get(0).expect("file"), row.get(1).expect("pos"));
    (c, db, format!("binlog:{file}:{pos}+0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_prints_only_contract_json_on_stdout_and_honours_limit() {
    let (mut c, db, start) = setup("cli").await;
    c.query_drop(format!(
        "INSERT INTO `{db}`.t VALUES (1,'a'),(2,'b'),(3,'c')"
    ))
    .await
    .expect("insert");
    let out = Command::new(USTREAM)
        .args(["tail", &format!("{}/{db}", Server::MySql.url())])
        .args(["--from", &start, "--limit", "2"])
        .output()
        .expect("run ustream");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["after"], serde_json::json!({"id": 1, "v": "a"}));
    assert_eq!(lines[1]["db"], serde_json::json!(db));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .is_some_and(|l| l == format!("streaming from {start}")),
        "{stderr}"
    );
    let resume = format!(
        "ustream: stopped at --limit after 2 events; resume with `--from {}`",
        lines[1]["position"].as_str().expect("position")
    );
    assert!(
        stderr.lines().any(|l| l == resume),
        "no `{resume}` in: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_exits_zero_when_idle_and_excludes_tables() {
    let (mut c, db, start) = setup("idle").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.secret (id INT PRIMARY KEY); INSERT INTO `{db}`.secret VALUES (1); \
         INSERT INTO `{db}`.t VALUES (5,'x')"
    ))
    .await
    .expect("writes");
    let began = Instant::now();
    let out = Command::new(USTREAM)
        .args(["tail", &Server::MySql.url(), "--from", &start])
        .args([
            "--include",
            &format!("{db}.*"),
            "--exclude",
            &format!("{db}.secret"),
        ])
        .args(["--idle-exit-ms", "5000"])
        .output()
        .expect("run ustream");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(began.elapsed() < Duration::from_secs(30));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["table"], "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_errors_are_one_line_and_never_show_the_password() {
    let url = Server::MySql
        .url()
        .replacen(":ustream@", ":Sup3r-Secret@", 1);
    let out = Command::new(USTREAM)
        .args(["tail", &url])
        .output()
        .expect("run ustream");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ustream: error: cannot connect to 127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("Access denied"), "{stderr}");
    assert!(!stderr.contains("Sup3r-Secret"), "{stderr}");

    let out = Command::new(USTREAM)
        .args(["tail", &Server::MySql.url(), "--from", "binlog:nope"])
        .output()
        .expect("run ustream");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid position `binlog:nope`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_killed_mid_stream_resumes_from_its_last_line_without_loss_or_repeat() {
    let (mut c, db, start) = setup("kill9").await;
    const TXNS: i32 = 400;
    const ROWS: i32 = 5;
    let writer = {
        let db = db.clone();
        move |killed: std::sync::Arc<tokio::sync::Notify>| async move {
            let mut c = conn().await;
            for t in 0..TXNS {
                if t == TXNS / 4 {
                    killed.notified().await;
                }
                let values: Vec<String> = (0..ROWS)
                    .map(|r| format!("({}, 'v')", t * ROWS + r))
                    .collect();
                c.query_drop(format!("INSERT INTO `{db}`.t VALUES {}", values.join(",")))
                    .await
                    .expect("insert");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    };
    let url = format!("{}/{db}", Server::MySql.url());
    let out_path = std::env::temp_dir().join(format!("{db}.jsonl"));
    let lines = kill_mid_stream_and_resume(
        &[&url],
        &start,
        &out_path,
        20_000,
        (TXNS * ROWS) as usize,
        writer,
    )
    .await;
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["key"]["id"].as_i64().expect("id"))
        .collect();
    let expected: Vec<i64> = (0..i64::from(TXNS * ROWS)).collect();
    assert_eq!(ids, expected, "every row exactly once, in commit order");
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_checkpoint_resumes_where_the_last_run_stopped() {
    let (mut c, db, start) = setup("ckpt").await;
    c.query_drop(format!(
        "INSERT INTO `{db}`.t VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e')"
    ))
    .await
    .expect("insert");
    let dir = std::env::temp_dir().join(format!("{db}-checkpoint"));
    let url = format!("{}/{db}", Server::MySql.url());
    let run = |extra: &[&str]| {
        Command::new(USTREAM)
            .args(["tail", &url, "--from", &start, "--checkpoint"])
            .arg(&dir)
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
    assert!(dir.join("tail.checkpoint.json").is_file());
    let second = run(&["--idle-exit-ms", "5000"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let ids: Vec<i64> = json_lines(&second.stdout)
        .iter()
        .map(|l| l["key"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [4, 5], "the second run continues after the third row");
    assert!(String::from_utf8_lossy(&second.stderr).contains("resuming from checkpoint"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_never_shows_a_password_holding_a_question_mark_slash_or_at_sign() {
    for password in ["abc?Hunter2", "abc/Hunter2#x", "abc@Hunter2"] {
        let url = Server::MySql
            .url()
            .replacen(":ustream@", &format!(":{password}@"), 1);
        let out = Command::new(USTREAM)
            .args(["tail", &url])
            .output()
            .expect("run ustream");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            !stderr.to_ascii_lowercase().contains("hunter2"),
            "{password}: {stderr}"
        );
        assert!(stderr.contains("Access denied"), "{password}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_escapes_a_table_named_with_a_terminal_escape_in_pretty_and_on_stderr() {
    let (mut c, db, start) = setup("esc").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.`t\x1b[2J` (id INT PRIMARY KEY, `c\x1b[31m` VARCHAR(10)); \
         INSERT INTO `{db}`.`t\x1b[2J` VALUES (1, 'v\u{9b}2J\u{202e}')"
    ))
    .await
    .expect("writes");
    let out = Command::new(USTREAM)
        .args(["tail", &format!("{}/{db}", Server::MySql.url())])
        .args(["--from", &start, "--format", "pretty", "--limit", "1"])
        .output()
        .expect("run ustream");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{name}: {text:?}"
        );
        assert!(!text.contains('\u{202e}'), "{name}: {text:?}");
    }
    assert!(
        stdout.contains(&format!(
            "INSERT  {db}.t\\u{{1b}}[2J {{\"id\":1}}  id=1 c\\u{{1b}}[31m=\"v\\u009b2J\\u202e\""
        )),
        "{stdout:?}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l == format!("schema change: table {db}.t\\u{{1b}}[2J created")),
        "{stderr:?}"
    );
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_tells_renames_and_dropped_databases_in_words_on_stderr_only() {
    let (mut c, db, start) = setup("ddl").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.torename (id INT PRIMARY KEY); \
         INSERT INTO `{db}`.torename VALUES (1); \
         RENAME TABLE `{db}`.torename TO `{db}`.renamed; \
         DROP DATABASE `{db}`; \
         CREATE DATABASE `{db}_end`; CREATE TABLE `{db}_end`.t (id INT PRIMARY KEY); \
         INSERT INTO `{db}_end`.t VALUES (2)"
    ))
    .await
    .expect("writes");
    // Tables created after `start` are decoded with the definitions their CREATE gave (the
    // database is gone when ustream starts). The row in `{db}_end` comes after every schema
    // change: the second line ends the run.
    let out = Command::new(USTREAM)
        .args([
            "tail",
            &Server::MySql.url(),
            "--from",
            &start,
            "--limit",
            "2",
        ])
        .args(["--include", &format!("{db}.*,{db}_end.*")])
        .output()
        .expect("run ustream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&out.stdout);
    let tables: Vec<_> = lines.iter().map(|l| l["table"].clone()).collect();
    assert_eq!(tables, ["torename", "t"], "only row changes on stdout");
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("schema change"))
        .collect();
    assert_eq!(
        notes,
        [
            format!("schema change: table {db}.torename created"),
            format!("schema change: table {db}.torename renamed to {db}.renamed"),
            format!("schema change: database {db} dropped"),
            format!("schema change: table {db}_end.t created"),
        ],
        "{stderr}"
    );
    c.query_drop(format!("DROP DATABASE `{db}_end`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_warns_of_an_include_pattern_that_matches_no_table() {
    let db = stream_testkit::unique_name("nomatch");
    let out = Command::new(USTREAM)
        .args([
            "tail",
            &Server::MySql.url(),
            "--include",
            &format!("{db}.*"),
            "--idle-exit-ms",
            "200",
        ])
        .output()
        .expect("run ustream");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("matches no table this user can see"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(&format!("pattern=\"{db}.*\"")),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a piped log: {stderr}"
    );
}
