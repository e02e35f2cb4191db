//! Helpers shared by the MySQL/MariaDB integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{
    CancellationToken, ChangeEvent, NamespaceFilter, Position, SchemaChange, Source, SourceError,
    SourceEvent, StartFrom,
};
use stream_mysql::{MySqlConfig, MySqlSource};
use stream_testkit::{Server, unique_name};

/// The shared test server's URL.
pub fn url() -> String {
    Server::MySql.url()
}

pub async fn conn_to(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(url).expect("test URL");
    let opts = mysql_async::OptsBuilder::from_opts(opts).max_allowed_packet(Some(64 << 20));
    mysql_async::Conn::new(opts).await.expect("connect")
}

pub async fn conn() -> mysql_async::Conn {
    conn_to(&url()).await
}

/// A fresh database for one test.
pub async fn fresh_db(c: &mut mysql_async::Conn, prefix: &str) -> String {
    let db = unique_name(prefix);
    c.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .expect("create database");
    db
}

/// The binlog position right now (`SHOW MASTER STATUS`).
pub async fn now(c: &mut mysql_async::Conn) -> Position {
    let row: mysql_async::Row = c
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("status")
        .expect("binlog on");
    let file: String = row.get(0).expect("file");
    let pos: u64 = row.get(1).expect("position");
    Position::binlog(file, pos, 0)
}

/// binlog_row_metadata is global: tests that depend on it write under this lock.
pub static METADATA_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `writes` with `binlog_row_metadata` set to `mode` (FULL, MINIMAL or NO_LOG).
pub async fn with_metadata<F, Fut, T>(mode: &str, writes: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let _guard = METADATA_LOCK.lock().await;
    let mut c = conn().await;
    c.query_drop(format!("SET GLOBAL binlog_row_metadata = {mode}"))
        .await
        .expect("set metadata mode");
    let out = writes().await;
    c.query_drop("SET GLOBAL binlog_row_metadata = NO_LOG")
        .await
        .expect("reset metadata mode");
    out
}

pub fn config(url: &str, include: &str) -> MySqlConfig {
    let mut config = MySqlConfig::from_url(url).expect("config");
    config.filter = NamespaceFilter::parse(include, "").expect("filter");
    config
}

/// What a stream delivered until `want` row changes arrived (or `idle` passed without one).
#[derive(Debug, Default)]
pub struct Collected {
    pub changes: Vec<ChangeEvent>,
    pub schema: Vec<SchemaChange>,
    pub error: Option<SourceError>,
}

pub async fn collect(
    config: MySqlConfig,
    from: StartFrom,
    want: usize,
    idle: Duration,
) -> Collected {
    let mut source = MySqlSource::new(config);
    let shutdown = CancellationToken::new();
    let mut out = Collected::default();
    let opened = match source.open(from, shutdown.clone()).await {
        Ok(o) => o,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let mut batches = opened.batches;
    while out.changes.len() < want {
        match tokio::time::timeout(idle, batches.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                out.error = Some(e);
                break;
            }
            Ok(Some(Ok(batch))) => {
                for ev in batch.events {
                    match ev {
                        SourceEvent::Change(c) => out.changes.push(c),
                        SourceEvent::Schema(s) => out.schema.push(s),
                        _ => {}
                    }
                }
            }
        }
    }
    shutdown.cancel();
    out
}

/// `collect` that expects exactly `want` changes and no error.
pub async fn changes(config: MySqlConfig, from: Position, want: usize) -> Vec<ChangeEvent> {
    let got = collect(
        config,
        StartFrom::Position(from),
        want,
        Duration::from_secs(20),
    )
    .await;
    if let Some(e) = got.error {
        panic!("stream failed: {e}");
    }
    assert_eq!(
        got.changes.len(),
        want,
        "expected {want} changes, got {:#?}",
        got.changes
    );
    got.changes
}

/// The JSON of one field of an event's `after` (or `before`) row.
pub fn field(ev: &ChangeEvent, name: &str) -> String {
    let row = ev.after.as_ref().or(ev.before.as_ref()).expect("row");
    let v = row
        .get(name)
        .unwrap_or_else(|| panic!("no field {name} in {}", ev.to_json()));
    let mut buf = Vec::new();
    stream_core::json::write_value(&mut buf, v);
    String::from_utf8(buf).expect("utf8")
}

pub fn names(ev: &ChangeEvent) -> Vec<String> {
    let row = ev.after.as_ref().or(ev.before.as_ref()).expect("row");
    row.iter().map(|(n, _)| n.to_string()).collect()
}

/// A TCP proxy in front of a server, to take the server away from a client: `stop` cuts the
/// connections through it and closes its port, so reconnects are refused.
pub struct Proxy {
    pub port: u16,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on a free local port and forwards every connection to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let port = listener.local_addr().expect("local address").port();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    return;
                };
                let (upstream, token) = (upstream.clone(), token.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self { port, stop }
    }

    /// `url` with its host and port replaced by this proxy's.
    pub fn url(&self, url: &str) -> String {
        let endpoint = MySqlConfig::from_url(url).expect("url").endpoint();
        url.replacen(&endpoint, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Cuts every connection and closes the port.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Stops `proxy` and waits for `batches` to end with an error (reconnects refused for
/// `window`); returns it after checking it came no sooner than the window allows.
pub async fn error_once_gone(
    proxy: &Proxy,
    batches: &mut stream_core::BatchStream,
    window: Duration,
) -> SourceError {
    // Before the stop: the source's window starts at its first failure, after it.
    let gone = tokio::time::Instant::now();
    proxy.stop();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(20), batches.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => break e,
            Ok(None) => panic!("the stream ended without an error"),
            Err(_) => panic!("still reconnecting 20 s after the server went away"),
        }
    };
    assert!(
        gone.elapsed() >= window,
        "gave up after {:?}",
        gone.elapsed()
    );
    err
}

/// What connecting to `port` on this machine says when nothing listens there.
pub fn refused_text(port: u16) -> String {
    format!(
        "cannot connect to 127.0.0.1:{port}: connection refused; check that the server is \
         running and that the URL's host and port are right"
    )
}
