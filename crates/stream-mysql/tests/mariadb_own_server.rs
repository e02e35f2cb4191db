//! Tests that need a MariaDB of their own: restarts, crashes, purged binlogs, bad settings.
//! Each starts a throwaway server (MariaDB binaries from `cargo xtask`'s install).

use std::time::Duration;

use crate::support::*;
use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{CancellationToken, Position, Source, SourceError, SourceEvent, StartFrom};
use stream_mysql::MySqlSource;
use stream_testkit::mariadb::MariaDb;
use stream_testkit::tls::TestCerts;

fn own_server(what: &str, args: &[&str]) -> MariaDb {
    MariaDb::start(&MariaDb::temp_dir(what), args)
        .unwrap_or_else(|e| panic!("cannot start a MariaDB for this test: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_without_binlog_is_refused_naming_log_bin() {
    let server = own_server("nobinlog", &["--skip-log-bin"]);
    let got = collect(
        config(&server.url(), ""),
        StartFrom::Latest,
        1,
        Duration::from_secs(10),
    )
    .await;
    let err = got.error.expect("must refuse");
    assert!(matches!(err, SourceError::Prerequisite { .. }), "{err}");
    assert!(err.to_string().contains("`log_bin` must be ON"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_minimal_row_images_are_refused_with_expected_and_actual() {
    let server = own_server("minimal", &["--binlog-row-image=MINIMAL"]);
    let got = collect(
        config(&server.url(), ""),
        StartFrom::Latest,
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        got.error.expect("must refuse").to_string(),
        "server setting `binlog_row_image` must be FULL, but is MINIMAL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_purged_position_names_the_oldest_available() {
    let server = own_server("purged", &[]);
    let mut c = conn_to(&server.url()).await;
    c.query_drop(
        "CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY); INSERT INTO p.t VALUES (1)",
    )
    .await
    .expect("writes");
    let old = now(&mut c).await;
    c.query_drop("FLUSH BINARY LOGS; FLUSH BINARY LOGS")
        .await
        .expect("rotate");
    let Position::MySql(p) = now(&mut c).await else {
        panic!("binlog position")
    };
    let stream_core::TxnStart::File { file: newest, .. } = p.start else {
        panic!("file position")
    };
    // MariaDB purges a file only once InnoDB's binlog checkpoint has moved past it.
    for _ in 0..100 {
        c.query_drop(format!("PURGE BINARY LOGS TO '{newest}'"))
            .await
            .expect("purge");
        let first: Option<(String, u64)> = c.query_first("SHOW BINARY LOGS").await.expect("logs");
        if first.is_some_and(|(f, _)| *f == *newest) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = collect(
        config(&server.url(), "p.*"),
        StartFrom::Position(old.clone()),
        1,
        Duration::from_secs(10),
    )
    .await;
    let err = got.error.expect("must fail");
    assert!(matches!(err, SourceError::PositionPurged { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&old.to_string()), "{text}");
    assert!(
        text.contains(&format!("oldest available is binlog:{newest}:4+0")),
        "{text}"
    );
}

/// Streams from `start` in the background, returning every change as JSON through a channel.
fn spawn_reader(
    url: String,
    include: &str,
    start: Position,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
    CancellationToken,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let mut cfg = config(&url, include);
    cfg.reconnect_for = Duration::from_secs(60);
    let token = shutdown.clone();
    tokio::spawn(async move {
        let mut source = MySqlSource::new(cfg);
        let opened = match source.open(StartFrom::Position(start), token).await {
            Ok(o) => o,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        let mut batches = opened.batches;
        while let Some(batch) = batches.next().await {
            match batch {
                Ok(b) => {
                    for ev in b.events {
                        if let SourceEvent::Change(c) = ev {
                            let _ = tx.send(Ok(c.to_json()));
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    (rx, shutdown)
}

async fn expect_ids(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
    ids: std::ops::Range<i64>,
) {
    for id in ids {
        let got = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("row {id} did not arrive"))
            .expect("reader alive")
            .unwrap_or_else(|e| panic!("reader failed before row {id}: {e}"));
        assert!(
            got.contains(&format!("\"key\":{{\"id\":{id}}}")),
            "expected row {id}, got {got}"
        );
    }
}

async fn restart_mid_stream(crash: bool) {
    let mut server = own_server(if crash { "crash" } else { "restart" }, &[]);
    let mut c = conn_to(&server.url()).await;
    c.query_drop("CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY)")
        .await
        .expect("table");
    let start = now(&mut c).await;
    let (mut rx, shutdown) = spawn_reader(server.url(), "r.*", start);
    for id in 0..50 {
        c.query_drop(format!("INSERT INTO r.t VALUES ({id})"))
            .await
            .expect("insert");
    }
    expect_ids(&mut rx, 0..50).await;
    drop(c);
    if crash {
        server.kill();
        server.restart().expect("start again after the crash");
    } else {
        server.restart().expect("restart");
    }
    let mut c = conn_to(&server.url()).await;
    for id in 50..100 {
        c.query_drop(format!("INSERT INTO r.t VALUES ({id})"))
            .await
            .expect("insert after restart");
    }
    expect_ids(&mut rx, 50..100).await;
    // Nothing repeated: no further row arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err(),
        "a row was delivered twice"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_server_restart_mid_stream_loses_and_repeats_nothing() {
    restart_mid_stream(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_server_crash_mid_stream_loses_and_repeats_nothing() {
    restart_mid_stream(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streams_over_tls_and_verifies_the_server_certificate() {
    let certs = TestCerts::make(&MariaDb::temp_dir("certs")).expect("test certificates");
    let args = certs.mariadb_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = own_server("tls", &args);
    server
        .sql("CREATE USER 'tls_only'@'%' IDENTIFIED BY 'pw' REQUIRE SSL; GRANT ALL ON *.* TO 'tls_only'@'%'")
        .expect("user");
    let base = server.url().replacen("ustream:ustream", "tls_only:pw", 1);
    let ca_param = certs.ca().display().to_string();
    let other_ca = certs.other_ca().display().to_string();

    let plain = collect(
        config(&base, ""),
        StartFrom::Latest,
        1,
        Duration::from_secs(10),
    )
    .await;
    let err = plain
        .error
        .expect("REQUIRE SSL refuses plain connections")
        .to_string();
    assert!(err.contains("Access denied"), "{err}");

    for params in [
        "ssl-mode=required".to_owned(),
        format!("ssl-mode=verify-identity&ssl-ca={ca_param}"),
    ] {
        let url = format!("{base}/?{params}");
        let (mut rx, shutdown) = spawn_reader(url.clone(), "tls.*", {
            let mut c = conn_to(&server.url()).await;
            c.query_drop("CREATE DATABASE IF NOT EXISTS tls; CREATE TABLE IF NOT EXISTS tls.t (id INT PRIMARY KEY)").await.expect("table");
            now(&mut c).await
        });
        let mut c = conn_to(&server.url()).await;
        let id: i64 = c
            .query_first("SELECT COUNT(*) FROM tls.t")
            .await
            .expect("count")
            .expect("row");
        c.query_drop(format!("INSERT INTO tls.t VALUES ({id})"))
            .await
            .expect("insert");
        expect_ids(&mut rx, id..id + 1).await;
        shutdown.cancel();
    }

    let wrong = format!("{base}/?ssl-mode=verify-ca&ssl-ca={other_ca}");
    let got = collect(
        config(&wrong, ""),
        StartFrom::Latest,
        1,
        Duration::from_secs(10),
    )
    .await;
    let err = got
        .error
        .expect("a certificate from an unknown CA must be refused")
        .to_string();
    assert!(err.contains("cannot connect"), "{err}");
}
