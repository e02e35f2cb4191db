//! MariaDB → PostgreSQL through `ustream run`: the snapshot, then inserts, updates, hard and
//! soft deletes and schema changes; an incompatible change stops the process with exit 1.

use std::time::Duration;

use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

use super::support::{
    Running, drop_all, mariadb, mariadb_checksum, mariadb_url, pg_count, postgres,
    postgres_checksum, wait_for, write_config,
};
use crate::support::http_get;

const ORDERS: [&str; 5] = ["id", "remark", "qty", "code", "extra"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_copies_the_snapshot_then_applies_changes_and_schema_changes() {
    let mut my = mariadb().await;
    let pg = postgres().await;
    let db = unique_name("pgrun");
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; USE `{db}`; \
         CREATE TABLE `{db}`.orders (id INT PRIMARY KEY, note VARCHAR(20), qty INT, code VARCHAR(10)); \
         INSERT INTO `{db}`.orders SELECT seq, CONCAT('n', seq), seq, NULL FROM seq_1_to_200"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n    from: snapshot\n\
             sinks:\n  replica:\n    url: '{pg}'\n    sources: ['{db}']\n    schema: {db}\n\
             \x20 history:\n    url: '{pg}'\n    schema: {db}_soft\n    deletes: soft\n\
             checkpoints: postgres\n",
            mariadb_url(),
            pg = Server::Postgres.url(),
        ),
    );
    let mut running = Running::start(&config);
    running.line_starting("ustream: running 1 source", Duration::from_secs(60));
    for schema in [db.clone(), format!("{db}_soft")] {
        let sql = format!("SELECT count(*) FROM \"{schema}\".orders");
        let copied = wait_for(Duration::from_secs(60), || async {
            (pg_count(&pg, &sql).await? == 200).then_some(())
        })
        .await;
        assert!(
            copied.is_some(),
            "snapshot into {schema}: {:#?}",
            running.seen
        );
    }

    for sql in [
        "INSERT INTO orders SELECT seq, CONCAT('n', seq), seq, NULL FROM seq_201_to_210",
        "UPDATE orders SET qty = qty + 1 WHERE id <= 50",
        "DELETE FROM orders WHERE id > 195",
        "ALTER TABLE orders ADD COLUMN extra INT",
        "UPDATE orders SET extra = id WHERE id <= 10",
        "ALTER TABLE orders RENAME COLUMN note TO remark",
        "UPDATE orders SET remark = 'renamed' WHERE id = 1",
        "ALTER TABLE orders MODIFY qty BIGINT",
        "UPDATE orders SET qty = 5000000000 WHERE id = 2",
        "CREATE TABLE line_items (id INT PRIMARY KEY, v VARCHAR(5))",
        "INSERT INTO line_items VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        "TRUNCATE line_items",
        "INSERT INTO line_items VALUES (9, 'x')",
    ] {
        my.query_drop(format!("USE `{db}`; {sql}"))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let orders = mariadb_checksum(&mut my, &format!("`{db}`.orders"), &ORDERS, "id").await;
    let lines = mariadb_checksum(&mut my, &format!("`{db}`.line_items"), &["id", "v"], "id").await;
    assert_eq!(orders.0, 195);
    let hard = format!("\"{db}\"");
    let soft = format!("\"{db}_soft\"");
    let same = wait_for(Duration::from_secs(60), || async {
        let got = (
            postgres_checksum(&pg, &format!("{hard}.orders"), &ORDERS, "id", false).await?,
            postgres_checksum(
                &pg,
                &format!("{hard}.line_items"),
                &["id", "v"],
                "id",
                false,
            )
            .await?,
            postgres_checksum(&pg, &format!("{soft}.orders"), &ORDERS, "id", true).await?,
            postgres_checksum(&pg, &format!("{soft}.line_items"), &["id", "v"], "id", true).await?,
        );
        (got == (orders.clone(), lines.clone(), orders.clone(), lines.clone())).then_some(())
    })
    .await;
    assert!(
        same.is_some(),
        "the replicas never matched the source; stderr: {:#?}",
        running.seen
    );
    let kept: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM {soft}.orders WHERE \"_deleted\" AND \"_deleted_at\" IS NOT NULL"),
            &[],
        )
        .await
        .expect("soft deletes")
        .get(0);
    assert_eq!(kept, 15, "soft-deleted rows are kept and marked");
    let qty_type: String = pg
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'orders' AND column_name = 'qty'",
            &[&db],
        )
        .await
        .expect("type")
        .get(0);
    assert_eq!(qty_type, "bigint", "the column was widened");

    // VARCHAR → INT cannot be done without loss: the process stops with the named error.
    my.query_drop(format!(
        "UPDATE `{db}`.orders SET code = CAST(id AS CHAR); ALTER TABLE `{db}`.orders MODIFY code INT"
    ))
    .await
    .expect("incompatible change");
    let (status, stderr) = running.wait_exit(Duration::from_secs(90));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("ustream: error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        error.starts_with("ustream: error: sinks.")
            && error.contains("incompatible schema change at ")
            && error.contains(&format!(
                "column {db}.orders.code cannot change from varchar"
            )),
        "{error}"
    );

    let schemas = [db.clone(), format!("{db}_soft")];
    drop_all(&mut my, &pg, &db, &schemas, &["replica", "history"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dry_run_prints_the_postgres_ddl_and_first_events_and_writes_nothing() {
    let mut my = mariadb().await;
    let pg = postgres().await;
    let db = unique_name("pgdry");
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO `{db}`.t VALUES (1, 'a'), (2, 'b')"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n\
             sinks:\n  replica:\n    url: '{}'\n",
            mariadb_url(),
            Server::Postgres.url(),
        ),
    );
    let out = std::process::Command::new(crate::support::USTREAM)
        .args(["run", "--dry-run", config.to_str().expect("path")])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "-- sources.{db}: connected, prerequisites met; would start from a snapshot"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("CREATE SCHEMA IF NOT EXISTS ustream;"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "CREATE TABLE IF NOT EXISTS \"{db}\".\"t\" (\"id\" integer NOT NULL, \"v\" text"
        )),
        "{stdout}"
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(events.len(), 2, "{stdout}");
    assert_eq!(events[0]["after"]["v"], "a");
    assert!(
        stdout.ends_with("-- dry run: nothing was written\n"),
        "{stdout}"
    );
    let created: bool = pg
        .query_one("SELECT to_regnamespace($1) IS NOT NULL", &[&db])
        .await
        .expect("look")
        .get(0);
    assert!(!created, "the dry run created the schema");
    drop_all(&mut my, &pg, &db, &[], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_sets_refused_changes_aside_in_the_dead_letter_file() {
    let mut my = mariadb().await;
    let pg = postgres().await;
    let db = unique_name("pgdlq");
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, qty INT); \
         INSERT INTO `{db}`.t VALUES (1, 1), (2, 2)"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let letters = dir.path().join("refused.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n\
             sinks:\n  replica:\n    url: '{}'\n    on_error: dead-letter\n    dead_letters: {}\n\
             listen: 127.0.0.1:0\n",
            mariadb_url(),
            Server::Postgres.url(),
            letters.display(),
        ),
    );
    let mut running = Running::start(&config);
    let sql = format!("SELECT count(*) FROM \"{db}\".t");
    let copied = wait_for(Duration::from_secs(60), || async {
        (pg_count(&pg, &sql).await? == 2).then_some(())
    })
    .await;
    assert!(copied.is_some(), "{:#?}", running.seen);
    // A rule the target has and the source does not.
    pg.batch_execute(&format!(
        "ALTER TABLE \"{db}\".t ADD CONSTRAINT small CHECK (qty < 100)"
    ))
    .await
    .expect("constraint");
    my.query_drop(format!(
        "UPDATE `{db}`.t SET qty = 500 WHERE id = 1; INSERT INTO `{db}`.t VALUES (3, 3)"
    ))
    .await
    .expect("changes");
    let applied = wait_for(Duration::from_secs(60), || async {
        let n: i64 = pg
            .query_one(
                &format!("SELECT count(*) FROM \"{db}\".t WHERE id = 3"),
                &[],
            )
            .await
            .ok()?
            .get(0);
        let text = std::fs::read_to_string(&letters).ok()?;
        (n == 1 && !text.is_empty()).then_some(text)
    })
    .await;
    let Some(text) = applied else {
        panic!(
            "the rest was not applied or nothing was set aside: {:#?}",
            running.seen
        );
    };
    let letter: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a letter")).expect("json");
    assert_eq!(letter["event"]["after"]["qty"], 500, "{letter}");
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("small")),
        "{letter}"
    );
    let qty: i32 = pg
        .query_one(&format!("SELECT qty FROM \"{db}\".t WHERE id = 1"), &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(qty, 1, "the refused update left the row as it was");
    // Every surface counts the letter: the sink's, the process's, Prometheus.
    let listening = running.line_starting("ustream: listening on http://", Duration::from_secs(5));
    let addr = listening
        .trim_start_matches("ustream: listening on http://")
        .trim_end_matches('/')
        .to_owned();
    // The letter is in the file once it is written; the counters move once its fsync
    // returns, which on a busy disk can be a while later.
    let counted = wait_for(Duration::from_secs(30), || async {
        let stats: serde_json::Value =
            serde_json::from_str(&http_get(&addr, "/stats").1).expect("stats json");
        let metrics = http_get(&addr, "/metrics").1;
        (stats["written"]["replica"]["dead_lettered"] == 1
            && metrics.lines().any(|l| l == "ustream_dead_letters_total 1"))
        .then_some(())
    })
    .await;
    let stats: serde_json::Value =
        serde_json::from_str(&http_get(&addr, "/stats").1).expect("stats json");
    let metrics = http_get(&addr, "/metrics").1;
    assert!(
        counted.is_some(),
        "not counted within 30 s: {stats}\n{metrics}"
    );
    assert_eq!(stats["written"]["replica"]["dead_lettered"], 1, "{stats}");
    assert_eq!(stats["dead_lettered"], 1, "{stats}");
    assert!(
        metrics.lines().any(|l| l == "ustream_dead_letters_total 1"),
        "{metrics}"
    );
    let (status, stderr) = running.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    drop_all(&mut my, &pg, &db, std::slice::from_ref(&db), &["replica"]).await;
}
