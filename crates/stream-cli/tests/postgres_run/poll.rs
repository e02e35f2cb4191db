//! `mode: poll` (batch mode, where the binlog is not available) into PostgreSQL through
//! `ustream run`: rows found by their change column land in the same sink tables, and a
//! restart goes on from the polling position saved with them.

use std::time::Duration;

use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

use super::support::{
    Running, drop_all, mariadb, mariadb_checksum, mariadb_url, postgres, postgres_checksum,
    wait_for, write_config,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_polled_into_postgres_copies_new_and_changed_rows_and_resumes_after_a_restart() {
    let mut my = mariadb().await;
    let pg = postgres().await;
    let db = unique_name("pgpoll");
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; \
         CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(20), \
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)); \
         INSERT INTO `{db}`.t (id, v) SELECT seq, CONCAT('v', seq) FROM `{db}`.seq_1_to_50"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n    mode: poll\n\
             \x20   column: updated_at\n    interval: 200ms\n    safety_lag: 0s\n\
             sinks:\n  replica:\n    url: '{}'\n    schema: {db}\n\
             checkpoints: postgres\n",
            mariadb_url(),
            Server::Postgres.url(),
        ),
    );
    let columns = ["id", "v"];
    let table = format!("\"{db}\".t");
    let converge = async |my: &mut mysql_async::Conn, running: &Running| {
        let source = mariadb_checksum(my, &format!("`{db}`.t"), &columns, "id").await;
        let same = wait_for(Duration::from_secs(60), || async {
            let got = postgres_checksum(&pg, &table, &columns, "id", false).await?;
            (got == source).then_some(())
        })
        .await;
        assert!(
            same.is_some(),
            "the replica never matched the source; stderr: {:#?}",
            running.seen
        );
    };

    let mut running = Running::start(&config);
    converge(&mut my, &running).await;
    // The types come from the source's definitions, not from the values seen.
    let id_type: String = pg
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 't' AND column_name = 'id'",
            &[&db],
        )
        .await
        .expect("type")
        .get(0);
    assert_eq!(id_type, "integer");
    my.query_drop(format!(
        "UPDATE `{db}`.t SET v = 'changed' WHERE id <= 5; \
         INSERT INTO `{db}`.t (id, v) VALUES (51, 'new')"
    ))
    .await
    .expect("changes");
    converge(&mut my, &running).await;
    let (status, stderr) = running.terminate();
    assert!(status.success(), "{stderr}");

    // Written while no pipeline runs: the restart reads on from its saved polling position.
    my.query_drop(format!(
        "UPDATE `{db}`.t SET v = 'later' WHERE id = 50; \
         INSERT INTO `{db}`.t (id, v) VALUES (52, 'newer')"
    ))
    .await
    .expect("changes while stopped");
    let running = Running::start(&config);
    converge(&mut my, &running).await;
    drop(running);
    drop_all(&mut my, &pg, &db, std::slice::from_ref(&db), &["replica"]).await;
}
