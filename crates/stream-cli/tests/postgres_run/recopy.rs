//! After an incompatible schema change (VARCHAR → INT) the pipeline stops with a procedure:
//! following it to the letter (the two statements the error quotes, then a start with
//! `from: snapshot`) copies the table again with its new type, every row present.

use std::time::Duration;

use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

use super::support::{
    Running, drop_all, mariadb, mariadb_url, pg_count, postgres, wait_for, write_config,
};

/// The text between the backticks after `before` in `line`.
fn quoted_after<'a>(line: &'a str, before: &str) -> &'a str {
    let rest = &line[line
        .find(before)
        .unwrap_or_else(|| panic!("no `{before}` in {line}"))
        + before.len()..];
    let start = rest.find('`').expect("opening backtick") + 1;
    let end = start + rest[start..].find('`').expect("closing backtick");
    &rest[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_incompatible_change_is_overcome_by_the_procedure_its_error_gives() {
    let mut my = mariadb().await;
    let pg = postgres().await;
    let db = unique_name("pgrecopy");
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, code VARCHAR(10)); \
         INSERT INTO `{db}`.t VALUES (1, '1'), (2, '2'), (3, '3'), (4, '4'), (5, '5')"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n    from: snapshot\n\
             sinks:\n  replica:\n    url: '{}'\n    schema: {db}\n\
             checkpoints: postgres\n",
            mariadb_url(),
            Server::Postgres.url(),
        ),
    );
    let count_sql = format!("SELECT count(*) FROM \"{db}\".t");
    let mut running = Running::start(&config);
    let copied = wait_for(Duration::from_secs(60), || async {
        (pg_count(&pg, &count_sql).await? == 5).then_some(())
    })
    .await;
    assert!(copied.is_some(), "snapshot: {:#?}", running.seen);

    my.query_drop(format!("ALTER TABLE `{db}`.t MODIFY code INT"))
        .await
        .expect("alter");
    let (status, stderr) = running.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("incompatible schema change"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let drop_table = quoted_after(line, "run ");
    let forget = quoted_after(line, &format!("{drop_table}` and "));
    assert!(drop_table.starts_with("DROP TABLE"), "{line}");
    assert!(forget.contains(&format!("'{db}.replica'")), "{line}");
    assert!(line.contains("`from: snapshot`"), "{line}");

    pg.batch_execute(&format!("{drop_table}; {forget}"))
        .await
        .unwrap_or_else(|e| panic!("the procedure's SQL: {e}"));
    let mut restarted = Running::start(&config);
    let type_sql = format!(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_schema = '{db}' AND table_name = 't' AND column_name = 'code' AND data_type = 'integer'"
    );
    let recopied = wait_for(Duration::from_secs(60), || async {
        (pg_count(&pg, &count_sql).await? == 5 && pg_count(&pg, &type_sql).await? == 1)
            .then_some(())
    })
    .await;
    assert!(
        recopied.is_some(),
        "after the procedure: {:#?}",
        restarted.seen
    );
    let (status, stderr) = restarted.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    drop_all(&mut my, &pg, &db, std::slice::from_ref(&db), &["replica"]).await;
}
