//! A PostgreSQL sink whose login the server refuses (here: a database that does not exist)
//! stops `ustream run` at start with exit 2, naming the setting and quoting PostgreSQL.

use std::time::Duration;

use stream_testkit::{Server, unique_name};

use super::support::{Running, mariadb_url, write_config};

#[test]
fn postgres_sink_with_a_missing_database_stops_ustream_run_with_exit_2_naming_its_url() {
    let missing = unique_name("nodb");
    let pg = Server::Postgres.url();
    let (base, _) = pg.rsplit_once('/').expect("URL has a database");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  shop:\n    url: {}/\n    include: ['{missing}.*']\n\
             sinks:\n  warehouse:\n    url: '{base}/{missing}'\n\
             checkpoints: postgres\n",
            mariadb_url(),
        ),
    );
    let mut running = Running::start(&config);
    let (status, stderr) = running.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ustream: error: sinks.warehouse.url: PostgreSQL at"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("database \"{missing}\" does not exist")),
        "{stderr}"
    );
    assert!(!stderr.contains("db error"), "{stderr}");
}
