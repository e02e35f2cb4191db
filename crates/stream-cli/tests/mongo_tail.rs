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
        move |killed: std::sync::Arc<tokio::sync::Notify>| async move {
            for b in 0..BATCHES {
                if b == BATCHES / 4 {
                    killed.notified().await;
                }
                let docs: Vec<Document> = (0..DOCS).map(|d| doc! {"_id": b * DOCS + d}).collect();
                coll.insert_many(docs).await.expect("insert");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
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
    let second = run(&["--idle-exit-ms", "5000"]);
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

/// How one run of `ustream tail` is ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Interrupt,
    Terminate,
    Idle,
}

/// Runs `ustream tail <url> --from end`, ends it as `ending` says once it streams (`delay`
/// after it said so: exits then land in different phases of the source's reads), and returns
/// the exit status and everything it wrote to stderr.
fn tail_and_end(url: &str, ending: Ending, delay: Duration) -> (std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut command = Command::new(USTREAM);
    command.args(["tail", url, "--from", "end"]);
    if let Ending::Idle = ending {
        let idle = 100 + delay.as_millis();
        // Its own namespace: changes other tests make on the shared server would keep it
        // busy.
        let quiet = format!("{}.none", unique_name("idle"));
        command.args(["--idle-exit-ms", &idle.to_string(), "--include", &quiet]);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ustream");
    let pid = child.id().to_string();
    // A run that hangs is killed (and fails by its status); the watchdog only acts before
    // the child is reaped, so the pid cannot have been reused.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let pid = pid.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(Duration::from_secs(60))
            {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        })
    };
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut stderr = String::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        stderr.push_str(&line);
        stderr.push('\n');
        if line.starts_with("streaming from") {
            break;
        }
    }
    let signal = match ending {
        Ending::Interrupt => Some("-INT"),
        Ending::Terminate => Some("-TERM"),
        Ending::Idle => None,
    };
    if let Some(signal) = signal {
        std::thread::sleep(delay);
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
    }
    for line in lines {
        stderr.push_str(&line.expect("stderr line"));
        stderr.push('\n');
    }
    // stderr is closed: the run is ending; the watchdog stands down before it is reaped.
    drop(done);
    watchdog.join().expect("watchdog");
    (child.wait().expect("wait"), stderr)
}

#[test]
fn mongo_tail_ends_cleanly_a_hundred_times_on_sigint_sigterm_and_idle() {
    let url = Server::Mongo.url();
    let endings = [Ending::Interrupt, Ending::Terminate, Ending::Idle];
    let mut failures = Vec::new();
    for batch in 0..10 {
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..10)
                .map(|i| {
                    let run = batch * 10 + i;
                    let ending = endings[run % endings.len()];
                    let delay = Duration::from_millis(50 * (run as u64 % 10));
                    let url = &url;
                    scope.spawn(move || (run, ending, tail_and_end(url, ending, delay)))
                })
                .collect();
            for run in runs {
                let (run, ending, (status, stderr)) = run.join().expect("run");
                if !status.success() || stderr.contains("panicked") {
                    failures.push(format!("run {run} ({ending:?}): {status}\n{stderr}"));
                }
            }
        });
    }
    assert!(
        failures.is_empty(),
        "{} of 100 runs did not end cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
