//! Shared by the `ustream run` pipeline tests: the running process, the servers' clients,
//! waiting for conditions, and row checksums comparable across MariaDB and PostgreSQL.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use stream_testkit::Server;

use crate::support::USTREAM;

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ustream.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running `ustream run`, its stderr lines arriving on a channel.
pub struct Running {
    pub child: Child,
    stderr: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(config: &Path) -> Self {
        let mut child = Command::new(USTREAM)
            .args(["run", config.to_str().expect("path")])
            .env("USTREAM_LOG", "warn")
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

    fn drain(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.seen.push(line);
        }
    }

    /// The first stderr line starting with `prefix`, waiting up to `within`.
    pub fn line_starting(&mut self, prefix: &str, within: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        let deadline = Instant::now() + within;
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

    /// Waits for the process to end by itself; its status and every stderr line.
    pub fn wait_exit(&mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            self.drain();
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The reader thread ends with the pipe.
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(line);
                }
                return (status, self.seen.join("\n"));
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}; stderr: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn terminate(&mut self) -> (ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        self.wait_exit(Duration::from_secs(60))
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn mariadb() -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(&Server::MySql.url()).expect("url");
    mysql_async::Conn::new(opts)
        .await
        .expect("connect to MariaDB")
}

pub async fn postgres() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&Server::Postgres.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// The MariaDB URL without a database path.
pub fn mariadb_url() -> String {
    Server::MySql.url().trim_end_matches('/').to_owned()
}

/// Polls `check` every 100 ms until it returns `Some`, for up to `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `md5` of every row of a MariaDB table, the columns as text joined by `|` (NULL as `\N`),
/// rows ordered by `key`, joined by newlines; with the row count.
pub async fn mariadb_checksum(
    conn: &mut mysql_async::Conn,
    table: &str,
    columns: &[&str],
    key: &str,
) -> (i64, String) {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("IFNULL(CAST(`{c}` AS CHAR), '\\\\N')"))
        .collect();
    conn.query_drop("SET SESSION group_concat_max_len = 1073741824")
        .await
        .expect("group_concat_max_len");
    let sql = format!(
        "SELECT COUNT(*), IFNULL(MD5(GROUP_CONCAT(CONCAT_WS('|', {}) ORDER BY `{key}` SEPARATOR '\\n')), '') FROM {table}",
        cols.join(", ")
    );
    let row: Option<(i64, String)> = conn.query_first(sql).await.expect("checksum");
    row.expect("a row")
}

/// The same checksum of a PostgreSQL table (soft-deleted rows left out when `live_only`).
pub async fn postgres_checksum(
    pg: &tokio_postgres::Client,
    table: &str,
    columns: &[&str],
    key: &str,
    live_only: bool,
) -> Option<(i64, String)> {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce(\"{c}\"::text, '\\N')"))
        .collect();
    let filter = if live_only {
        "WHERE NOT \"_deleted\""
    } else {
        ""
    };
    let sql = format!(
        "SELECT count(*), coalesce(md5(string_agg(concat_ws('|', {}), E'\\n' ORDER BY \"{key}\")), '') FROM {table} {filter}",
        cols.join(", ")
    );
    let row = pg.query_one(&sql, &[]).await.ok()?;
    Some((row.get(0), row.get(1)))
}

/// `SELECT count(*) ...` on PostgreSQL; `None` while the table is missing.
pub async fn pg_count(pg: &tokio_postgres::Client, sql: &str) -> Option<i64> {
    Some(pg.query_one(sql, &[]).await.ok()?.get(0))
}

/// Drops a test's MariaDB database, its PostgreSQL schemas and the checkpoints of its source
/// `db` in the sinks named.
pub async fn drop_all(
    my: &mut mysql_async::Conn,
    pg: &tokio_postgres::Client,
    db: &str,
    schemas: &[String],
    sinks: &[&str],
) {
    my.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop database");
    let mut sql: String = schemas
        .iter()
        .map(|s| format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE;"))
        .collect();
    for sink in sinks {
        sql.push_str(&format!(
            "DELETE FROM ustream.checkpoints WHERE pipeline = '{db}.{sink}';"
        ));
    }
    pg.batch_execute(&sql).await.expect("drop schemas");
}
