//! `ustream init`, `validate` and `run`: config errors are one line each with exit code 2,
//! and `run` against the shared MariaDB serves HTTP and stops cleanly on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

use crate::support::{USTREAM, http_get};

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ustream.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn ustream(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(USTREAM)
        .args(args)
        .env_remove("SHOP_PASSWORD")
        .env_remove("PG_PASSWORD")
        .envs(vars.iter().copied())
        .output()
        .expect("run ustream")
}

/// Asserts exit code 2 and returns stderr's lines.
fn refused(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    stderr.lines().map(str::to_owned).collect()
}

const PASSWORDS: [(&str, &str); 2] = [
    ("SHOP_PASSWORD", "shop-s3cret"),
    ("PG_PASSWORD", "pg-s3cret"),
];

#[test]
fn init_prints_an_example_that_validate_accepts() {
    let init = ustream(&["init"], &[]);
    assert!(init.status.success());
    let example = String::from_utf8(init.stdout).expect("utf8");
    assert!(example.contains("# ustream run CONFIG.yaml"), "commented");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &example);
    let path_arg = path.to_str().expect("path");

    let ok = ustream(&["validate", path_arg], &PASSWORDS);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let summary = String::from_utf8(ok.stdout).expect("utf8");
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(
        summary.starts_with(&format!(
            "{path_arg}: ok: 1 source: shop (mysql stream from snapshot)"
        )),
        "{summary}"
    );

    // Without its variables, each missing one is its own line.
    let lines = refused(&ustream(&["validate", path_arg], &[]));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "ustream: error: sources.shop.url: environment variable SHOP_PASSWORD is not set"
        ),
        "{lines:?}"
    );
    assert!(lines[1].contains("PG_PASSWORD is not set"), "{lines:?}");
}

#[test]
fn validate_refuses_an_unknown_key_in_one_line_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "sources:\n  shop:\n    url: mysql://repl@127.0.0.1:3306/\n    incldue: [shop.*]\n",
    );
    for command in ["validate", "run"] {
        let lines = refused(&ustream(&[command, path.to_str().expect("path")], &[]));
        assert_eq!(
            lines,
            ["ustream: error: sources.shop.incldue: unknown key; did you mean `include`? (line 4)"],
            "{command}"
        );
    }
}

#[test]
fn validate_names_a_missing_variable_and_run_refuses_it_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "sources:\n  shop:\n    url: mysql://repl:${SHOP_PASSWORD}@127.0.0.1:3306/\n",
    );
    for command in ["validate", "run"] {
        let lines = refused(&ustream(&[command, path.to_str().expect("path")], &[]));
        assert_eq!(
            lines,
            [
                "ustream: error: sources.shop.url: environment variable SHOP_PASSWORD is not set; \
              export it, or write ${SHOP_PASSWORD:-default} (line 3)"
            ],
            "{command}"
        );
    }
}

#[test]
fn validate_refuses_a_bad_url_without_echoing_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "sources:\n  shop:\n    url: mysql://repl:${SHOP_PASSWORD}@127.0.0.1:port/\n\
         sinks:\n  warehouse:\n    url: postgres://etl:${PG_PASSWORD}@127.0.0.1:5432/analytics?sslmode=sometimes\n",
    );
    let out = ustream(&["validate", path.to_str().expect("path")], &PASSWORDS);
    let lines = refused(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "ustream: error: sources.shop.url: invalid MySQL URL (mysql://repl:***@127.0.0.1:port/): \
         port `port` is not a number from 1 to 65535 (line 3)"
    );
    assert!(
        lines[1].starts_with("ustream: error: sinks.warehouse.url: not a valid PostgreSQL URL"),
        "{lines:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("s3cret"), "a password in: {stderr}");
}

#[test]
fn an_environment_override_is_named_instead_of_a_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let init = ustream(&["init"], &[]);
    let path = write_config(dir.path(), &String::from_utf8(init.stdout).expect("utf8"));
    let mut vars = PASSWORDS.to_vec();
    vars.push(("USTREAM__SINKS__WAREHOUSE__DELETES", "sometimes"));
    let lines = refused(&ustream(&["validate", path.to_str().expect("path")], &vars));
    assert_eq!(
        lines,
        [
            "ustream: error: sinks.warehouse.deletes: expected soft or hard, found `sometimes` \
          (from USTREAM__SINKS__WAREHOUSE__DELETES)"
        ]
    );
}

/// `mysql://user:WRONG@host:port/` for the shared MariaDB.
fn mariadb_url_with_password(password_reference: &str) -> String {
    let url = Server::MySql.url();
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (creds, host) = rest.rsplit_once('@').expect("credentials");
    let user = creds.split_once(':').map_or(creds, |(u, _)| u);
    format!("{scheme}://{user}:{password_reference}@{host}/")
}

#[test]
fn mariadb_run_with_a_wrong_password_exits_2_without_echoing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = "Wr0ng-Pa55word-9f3a";
    let path = write_config(
        dir.path(),
        &format!(
            "sources:\n  shop:\n    url: {}\n    from: end\n",
            mariadb_url_with_password("${SHOP_PASSWORD}")
        ),
    );
    let out = ustream(
        &["run", path.to_str().expect("path")],
        &[("SHOP_PASSWORD", wrong)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains(wrong), "the password echoed: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ustream: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("ustream: error: sources.shop: cannot connect to "),
        "{stderr}"
    );
    assert!(errors[0].contains("Access denied"), "{stderr}");
}

/// A running `ustream run`, its stderr lines arriving on a channel.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(USTREAM)
            .args(["run", config.to_str().expect("path")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ustream");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// The first stderr line starting with `prefix`, waiting up to 60 s.
    fn line_starting(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{prefix}` line; stderr so far: {:#?}", self.seen),
            }
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, for up to 60 s.
fn wait_for<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_run_serves_http_counts_events_and_exits_0_on_sigterm() {
    let db = unique_name("run");
    let mut conn =
        mysql_async::Conn::new(mysql_async::Opts::from_url(&Server::MySql.url()).expect("url"))
            .await
            .expect("connect");
    conn.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10))"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  shop:\n    url: {}\n    include: ['{db}.*']\n    from: end\nlisten: 127.0.0.1:0\n",
            Server::MySql.url().trim_end_matches('/')
        ),
    );
    let mut running = Running::start(&config);
    let listening = running.line_starting("ustream: listening on http://");
    let addr = listening
        .trim_start_matches("ustream: listening on http://")
        .to_owned();
    running.line_starting("ustream: running 1 source");

    let (status, body) = http_get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        health["components"]["shop"]["status"], "healthy",
        "{health}"
    );

    conn.query_drop(format!(
        "INSERT INTO `{db}`.t VALUES (1,'a'),(2,'b'),(3,'c')"
    ))
    .await
    .expect("insert");
    let counted = wait_for(|| {
        let (_, body) = http_get(&addr, "/stats");
        let stats: serde_json::Value = serde_json::from_str(&body).ok()?;
        (stats["events_received"].as_u64() >= Some(3)).then_some(stats)
    });
    let Some(stats) = counted else {
        let (_, stats) = http_get(&addr, "/stats");
        let (_, health) = http_get(&addr, "/health");
        running.terminate();
        while let Ok(line) = running.stderr.recv_timeout(Duration::from_secs(5)) {
            running.seen.push(line);
        }
        panic!(
            "three events not counted in 60 s; stats {stats}, health {health}, stderr {:#?}",
            running.seen
        );
    };
    assert_eq!(stats["running"], true);
    assert_eq!(stats["sources"], serde_json::json!(["shop"]));

    let (status, metrics) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ustream_events_received_total"),
        "{metrics}"
    );

    let status = running.terminate();
    assert_eq!(status.code(), Some(0), "stderr: {:#?}", running.seen);
    running.line_starting("ustream: stopped");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "HTTP stopped with the pipeline"
    );
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[test]
fn validate_refuses_two_sources_whose_tables_would_land_in_one_target_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A MySQL `shop.orders` and a MongoDB `app.orders` into `schema: combo`.
    let path = write_config(
        dir.path(),
        "sources:\n  shop:\n    url: mysql://repl@127.0.0.1:3306/\n    include: [shop.orders]\n\
         \x20 app:\n    url: mongodb://127.0.0.1:27017/\n    include: [app.orders]\n\
         sinks:\n  combo:\n    url: postgres://etl@127.0.0.1:5432/dw\n    schema: combo\n",
    );
    let lines = refused(&ustream(&["validate", path.to_str().expect("path")], &[]));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "ustream: error: sinks.combo: sources `shop` (shop.orders) and `app` (app.orders) would write the same tables into `schema: combo`"
        ),
        "{lines:?}"
    );
    // Two sources reading the same database into one sink (no schema: the database's name).
    let path = write_config(
        dir.path(),
        "sources:\n  a:\n    url: mysql://repl@10.0.0.1:3306/\n    include: ['shop.*']\n\
         \x20 b:\n    url: mysql://repl@10.0.0.2:3306/\n    include: ['shop.*']\n\
         sinks:\n  dw:\n    url: postgres://etl@127.0.0.1:5432/dw\n",
    );
    let lines = refused(&ustream(&["validate", path.to_str().expect("path")], &[]));
    assert!(
        lines[0].contains(
            "sources `a` (shop.*) and `b` (shop.*) would write the same tables into the same schema"
        ),
        "{lines:?}"
    );
}
