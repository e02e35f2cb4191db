//! The programs in `examples/` (shown verbatim in README.md, docs/streamer.md and the crate's
//! README, see `docs_examples`) run against a MariaDB of their own with a `shop` database.
//! The quickstart also resumes from its checkpoint: a change written while it was down is
//! printed after its restart.

use std::path::PathBuf;
use std::process::Stdio;

use stream_testkit::mariadb::MariaDb;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::support::{WAIT, own_mariadb};

/// The example's binary, which `cargo test` builds beside the test binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir.join("examples").join(name);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    assert!(
        binary.exists() && modified(&binary) >= modified(&source),
        "{} is missing or older than its source: `cargo test -p ultimate-stream --all-features` builds the examples (`--test main` alone does not)",
        binary.display()
    );
    binary
}

/// A MariaDB of its own with `shop.users` and `shop.orders`, as the examples expect.
fn shop(what: &str) -> (MariaDb, String) {
    let server = own_mariadb(what);
    server
        .sql(
            "CREATE DATABASE shop; \
             CREATE TABLE shop.users (id INT PRIMARY KEY, name VARCHAR(50)); \
             CREATE TABLE shop.orders (id INT PRIMARY KEY, status VARCHAR(20));",
        )
        .expect("schema");
    let url = format!("{}/shop", server.url());
    (server, url)
}

/// The quickstart, running in `state_dir` against `url`, once it says it streams.
async fn start_quickstart(
    url: &str,
    state_dir: &std::path::Path,
) -> (tokio::process::Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(example("quickstart"))
        .arg(url)
        .current_dir(state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the example");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let ready = tokio::time::timeout(WAIT, stderr.next_line())
        .await
        .expect("the example starts")
        .expect("stderr");
    assert!(
        ready.as_deref().is_some_and(|l| l.starts_with("streaming")),
        "{ready:?}"
    );
    let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, stdout)
}

async fn next_lines(stdout: &mut Lines<BufReader<ChildStdout>>, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < n {
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .expect("a line per change")
            .expect("stdout")
            .expect("the example runs on");
        lines.push(line);
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_examples_quickstart_prints_every_change_and_resumes_after_a_restart() {
    let (server, url) = shop("example-quickstart");
    let state = tempfile::tempdir().expect("temp dir");
    let (mut child, mut stdout) = start_quickstart(&url, state.path()).await;
    server
        .sql("INSERT INTO shop.users VALUES (1, 'ann'); INSERT INTO shop.orders VALUES (7, 'new');")
        .expect("rows");
    let mut lines = next_lines(&mut stdout, 2).await;
    lines.sort();
    assert!(lines[0].contains(r#""table":"orders""#), "{lines:?}");
    assert!(
        lines[0].contains(r#""after":{"id":7,"status":"new"}"#),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(r#""after":{"id":1,"name":"ann"}"#),
        "{lines:?}"
    );

    // Ctrl-C: it stops and checkpoints; a row written meanwhile is printed after a restart.
    let pid = child.id().expect("pid").to_string();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("it stops on Ctrl-C")
        .expect("exit status");
    assert!(status.success(), "{status}");
    server
        .sql("INSERT INTO shop.users VALUES (2, 'bob');")
        .expect("a row while it is down");
    let (mut child, mut stdout) = start_quickstart(&url, state.path()).await;
    let lines = next_lines(&mut stdout, 1).await;
    assert!(
        lines[0].contains(r#""after":{"id":2,"name":"bob"}"#),
        "{lines:?}"
    );
    child.kill().await.expect("stop the example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_examples_tour_runs_to_its_end() {
    let (_server, url) = shop("example-tour");
    let state = tempfile::tempdir().expect("temp dir");
    let run = Command::new(example("tour"))
        .arg(&url)
        .current_dir(state.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run)
        .await
        .expect("the tour ends")
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("read back: Some("), "{stdout}");
    assert!(stdout.contains("1 paid orders"), "{stdout}");
    assert!(
        stdout.contains(r#""table":"orders","op":"insert""#),
        "{stdout}"
    );
    assert!(stdout.contains("mysql: healthy"), "{stdout}");
    assert!(state.path().join("state").is_dir(), "checkpoints in state/");
}
