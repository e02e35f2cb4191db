//! PostgreSQL goes away under a running `ustream run` (every connection reset, new ones
//! refused, through `FaultProxy`) while the source keeps writing: the pipeline retries instead
//! of exiting, and once PostgreSQL is back every change lands exactly once.

use std::time::Duration;

use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

use super::support::{
    Running, drop_all, mariadb, mariadb_checksum, mariadb_url, pg_count, postgres,
    postgres_checksum, wait_for, write_config,
};
use crate::tail_process::proxy_to;

/// A MariaDB database with table `t` of `rows` rows, and a config replicating it (from a
/// snapshot) into PostgreSQL through a fault proxy.
struct Replica {
    my: mysql_async::Conn,
    pg: tokio_postgres::Client,
    db: String,
    proxy: stream_testkit::proxy::FaultProxy,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

async fn replica_behind_proxy(prefix: &str, rows: u32) -> Replica {
    let mut my = mariadb().await;
    let pg = postgres().await;
    let db = unique_name(prefix);
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; \
         CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT); \
         INSERT INTO `{db}`.t SELECT seq, seq FROM `{db}`.seq_1_to_{rows}"
    ))
    .await
    .expect("schema");
    let (proxy, pg_via_proxy) = proxy_to(Server::Postgres).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n    from: snapshot\n\
             sinks:\n  replica:\n    url: '{pg_via_proxy}'\n    schema: {db}\n\
             checkpoints: postgres\n",
            mariadb_url(),
        ),
    );
    Replica {
        my,
        pg,
        db,
        proxy,
        dir,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_rides_out_a_postgres_outage_and_applies_every_change_once() {
    let Replica {
        mut my,
        pg,
        db,
        proxy,
        dir: _dir,
        config,
    } = replica_behind_proxy("pgdown", 100).await;
    let mut running = Running::start(&config);
    let count_sql = format!("SELECT count(*) FROM \"{db}\".t");
    let copied = wait_for(Duration::from_secs(60), || async {
        (pg_count(&pg, &count_sql).await? == 100).then_some(())
    })
    .await;
    assert!(copied.is_some(), "snapshot: {:#?}", running.seen);

    // PostgreSQL is gone: open connections get an RST, new ones too.
    proxy.set(stream_testkit::proxy::Fault::Reset);
    for sql in [
        "INSERT INTO t SELECT seq, seq FROM seq_101_to_300",
        "UPDATE t SET v = v * 2 WHERE id % 3 = 0",
        "DELETE FROM t WHERE id % 7 = 0",
    ] {
        my.query_drop(format!("USE `{db}`; {sql}"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // The sink must have tried (and failed) at least once while PostgreSQL was away.
    let refused = wait_for(Duration::from_secs(30), || async {
        (proxy.resets() >= 2).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the sink never tried PostgreSQL");
    assert!(
        running.child.try_wait().expect("wait").is_none(),
        "ustream run exited while PostgreSQL was down: {:#?}",
        running.seen
    );
    proxy.set(stream_testkit::proxy::Fault::Pass);

    let source = mariadb_checksum(&mut my, &format!("`{db}`.t"), &["id", "v"], "id").await;
    let table = format!("\"{db}\".t");
    let same = wait_for(Duration::from_secs(60), || async {
        let got = postgres_checksum(&pg, &table, &["id", "v"], "id", false).await?;
        (got == source).then_some(())
    })
    .await;
    assert!(
        same.is_some(),
        "the replica never matched the source after PostgreSQL came back; stderr: {:#?}",
        running.seen
    );
    let (status, stderr) = running.terminate();
    assert!(status.success(), "{stderr}");
    drop_all(&mut my, &pg, &db, std::slice::from_ref(&db), &["replica"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_stop_gives_up_on_a_write_postgres_stopped_answering_and_a_restart_delivers_it()
 {
    let Replica {
        mut my,
        pg,
        db,
        proxy,
        dir: _dir,
        config,
    } = replica_behind_proxy("pgsilent", 10).await;
    let count_sql = format!("SELECT count(*) FROM \"{db}\".t");
    let mut running = Running::start(&config);
    let copied = wait_for(Duration::from_secs(60), || async {
        (pg_count(&pg, &count_sql).await? == 10).then_some(())
    })
    .await;
    assert!(copied.is_some(), "snapshot: {:#?}", running.seen);

    // PostgreSQL keeps the connection open and says nothing: the next write waits.
    proxy.set(stream_testkit::proxy::Fault::Blackhole);
    my.query_drop(format!(
        "INSERT INTO `{db}`.t SELECT seq, seq FROM `{db}`.seq_11_to_20"
    ))
    .await
    .expect("insert");
    let writing = wait_for(Duration::from_secs(30), || async {
        (proxy.dropped_bytes() > 0).then_some(())
    })
    .await;
    assert!(
        writing.is_some(),
        "the sink never wrote: {:#?}",
        running.seen
    );
    let (status, stderr) = running.terminate();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was not finished within 30 s of the stop"),
        "{stderr}"
    );

    proxy.set(stream_testkit::proxy::Fault::Pass);
    let mut again = Running::start(&config);
    let delivered = wait_for(Duration::from_secs(60), || async {
        (pg_count(&pg, &count_sql).await? == 20).then_some(())
    })
    .await;
    assert!(delivered.is_some(), "after the restart: {:#?}", again.seen);
    let (status, stderr) = again.terminate();
    assert!(status.success(), "{stderr}");
    drop_all(&mut my, &pg, &db, std::slice::from_ref(&db), &["replica"]).await;
}
