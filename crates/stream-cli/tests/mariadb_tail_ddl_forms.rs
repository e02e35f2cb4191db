//! `ustream tail` on a MariaDB of its own (binlog_row_metadata NO_LOG, the default: column names
//! come from the DDL the source tracks) across ALTER TABLE forms only MariaDB has: `IF [NOT]
//! EXISTS` on columns and indexes. Found by `cargo xtask chaos`, whose workload first used them.
//! An own server, because DDL the source cannot read must not reach other tests' streams.

use std::process::Command;

use crate::support::{USTREAM, json_lines};
use stream_testkit::mariadb::MariaDb;

/// Runs `sql` on `server`, then `ustream tail` of `db` from before it, for `rows` rows.
fn tail_after(server: &MariaDb, db: &str, sql: &str, rows: usize) -> Vec<serde_json::Value> {
    let status = server.sql("SHOW MASTER STATUS").expect("status");
    let mut fields = status.split_whitespace();
    let start = format!(
        "binlog:{}:{}+0",
        fields.next().expect("file"),
        fields.next().expect("pos")
    );
    server.sql(sql).expect("statements");
    let out = Command::new(USTREAM)
        .args(["tail", &format!("{}/{db}", server.url())])
        .args(["--from", &start, "--limit", &rows.to_string()])
        .args(["--idle-exit-ms", "5000"])
        .output()
        .expect("run ustream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    json_lines(&out.stdout)
}

#[test]
fn mariadb_own_server_tail_follows_if_exists_alter_forms_and_other_databases_ddl() {
    let server = MariaDb::start(&MariaDb::temp_dir("ddl-forms"), &[]).expect("own MariaDB");
    // DDL on a database the stream does not select must not stop it.
    let ids: Vec<i64> = tail_after(
        &server,
        "mine",
        "CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY);
         CREATE DATABASE mine; CREATE TABLE mine.t (id INT PRIMARY KEY, v INT);
         INSERT INTO mine.t VALUES (1, 10);
         ALTER TABLE other.t ADD COLUMN IF NOT EXISTS x INT;
         ALTER TABLE other.t ADD SYSTEM VERSIONING;
         INSERT INTO mine.t VALUES (2, 20);",
        2,
    )
    .iter()
    .map(|l| l["key"]["id"].as_i64().expect("id"))
    .collect();
    assert_eq!(ids, [1, 2]);

    let afters: Vec<serde_json::Value> = tail_after(
        &server,
        "forms",
        "CREATE DATABASE forms; CREATE TABLE forms.t (id INT PRIMARY KEY, v INT);
         INSERT INTO forms.t VALUES (1, 10);
         ALTER TABLE forms.t ADD COLUMN IF NOT EXISTS a INT NULL;
         INSERT INTO forms.t VALUES (2, 20, 2);
         ALTER TABLE forms.t ADD INDEX IF NOT EXISTS by_v (v);
         INSERT INTO forms.t VALUES (3, 30, 3);
         ALTER TABLE forms.t MODIFY COLUMN IF EXISTS a VARCHAR(5);
         INSERT INTO forms.t VALUES (4, 40, 'four');
         ALTER TABLE forms.t CHANGE COLUMN IF EXISTS a b VARCHAR(5);
         INSERT INTO forms.t VALUES (5, 50, 'five');
         ALTER TABLE forms.t DROP COLUMN IF EXISTS b;
         INSERT INTO forms.t VALUES (6, 60);",
        6,
    )
    .into_iter()
    .map(|l| l["after"].clone())
    .collect();
    assert_eq!(
        afters,
        [
            serde_json::json!({"id": 1, "v": 10}),
            serde_json::json!({"id": 2, "v": 20, "a": 2}),
            serde_json::json!({"id": 3, "v": 30, "a": 3}),
            serde_json::json!({"id": 4, "v": 40, "a": "four"}),
            serde_json::json!({"id": 5, "v": 50, "b": "five"}),
            serde_json::json!({"id": 6, "v": 60}),
        ]
    );
}
