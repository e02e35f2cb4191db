//! Helpers shared by the PostgreSQL sink tests: servers, fresh databases, driving a source
//! into the sink until the target shows what a test waits for.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{
    BatchStream, CancellationToken, ChangeEvent, Namespace, NamespaceFilter, Op, Position, Row,
    Source, SourceKind, StartFrom, Value,
};
use stream_mysql::{MySqlConfig, MySqlSource};
use stream_postgres::{Applied, PostgresSink, PostgresSinkConfig};
use stream_testkit::{Server, unique_name};

/// A connection to the test PostgreSQL.
pub async fn pg() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&Server::Postgres.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// Sink settings for the test PostgreSQL.
pub fn sink_config() -> PostgresSinkConfig {
    PostgresSinkConfig::new(Server::Postgres.url())
}

/// A pipeline name unique to this test run.
pub fn pipeline(prefix: &str) -> String {
    unique_name(prefix)
}

/// A value of the target as text (`NULL` for null), by a query that returns one text column.
pub async fn texts(pg: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    pg.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, Option<String>>(0))
        .collect()
}

/// One count.
pub async fn count(pg: &tokio_postgres::Client, sql: &str) -> i64 {
    pg.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

pub async fn mysql() -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(&Server::MySql.url()).expect("MySQL URL");
    mysql_async::Conn::new(opts)
        .await
        .expect("connect to MariaDB")
}

/// A fresh MariaDB database (its name is also the target schema).
pub async fn fresh_db(c: &mut mysql_async::Conn, prefix: &str) -> String {
    let db = unique_name(prefix);
    c.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .expect("create database");
    db
}

/// The binlog position right now.
pub async fn binlog_now(c: &mut mysql_async::Conn) -> Position {
    let row: mysql_async::Row = c
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("status")
        .expect("binlog on");
    let file: String = row.get(0).expect("file");
    let pos: u64 = row.get(1).expect("position");
    Position::binlog(file, pos, 0)
}

/// Opens a MySQL source on `db.*` from `from`.
pub async fn mysql_stream(
    db: &str,
    from: StartFrom,
    state: Option<serde_json::Value>,
) -> (BatchStream, CancellationToken) {
    let mut config = MySqlConfig::from_url(&Server::MySql.url()).expect("config");
    config.filter = NamespaceFilter::parse(&format!("{db}.*"), "").expect("filter");
    config.schema_state = state;
    let shutdown = CancellationToken::new();
    let opened = MySqlSource::new(config)
        .open(from, shutdown.clone())
        .await
        .expect("open source");
    (opened.batches, shutdown)
}

/// The next batch of the stream, within 20 s.
pub async fn next_batch(batches: &mut BatchStream) -> stream_core::Batch {
    tokio::time::timeout(Duration::from_secs(20), batches.next())
        .await
        .expect("a batch within 20 s")
        .expect("the stream is open")
        .expect("a batch, not an error")
}

/// Applies batches from `batches` until `done` holds for the target (checked after each
/// batch), or fails after 30 s. Returns every `Applied`.
pub async fn pump<F>(
    batches: &mut BatchStream,
    sink: &mut PostgresSink,
    mut done: F,
) -> Vec<Applied>
where
    F: AsyncFnMut() -> bool,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    loop {
        if done().await {
            return out;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let batch = match tokio::time::timeout(left, batches.next()).await {
            Err(_) => panic!("the target did not reach the expected state within 30 s"),
            Ok(None) => panic!("the source ended"),
            Ok(Some(b)) => b.expect("source batch"),
        };
        out.push(sink.apply(&batch).await.expect("apply"));
    }
}

/// A hand-made change of `db.t` with key `id`.
pub fn change(db: &str, op: Op, id: i64, after: Option<Row>, position: &str) -> Arc<ChangeEvent> {
    let key: Row = [("id", Value::Int(id))].into_iter().collect();
    let before = (op != Op::Insert).then(|| {
        after
            .clone()
            .unwrap_or_else(|| [("id", Value::Int(id))].into_iter().collect())
    });
    Arc::new(ChangeEvent {
        source: SourceKind::MySql,
        namespace: Namespace::new(db, "t"),
        op,
        key: Some(key),
        before,
        after,
        update: None,
        position: position.parse().expect(position),
        ts_ms: 0,
        txn: None,
    })
}

pub fn row(id: i64, name: &str) -> Row {
    [("id", Value::Int(id)), ("name", Value::from(name))]
        .into_iter()
        .collect()
}

/// A connection to the test PostgreSQL whose transactions the test controls.
pub async fn pg_raw() -> tokio_postgres::Client {
    pg().await
}
