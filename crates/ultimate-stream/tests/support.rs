//! Helpers shared by the MariaDB tests: fresh databases, row ids, waiting for a condition.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::*;
use stream_core::{ChangeEvent, Row, Value};
use stream_testkit::unique_name;
use ultimate_stream::HandlerError;

pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn conn_to(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(url).expect("url"))
        .await
        .expect("connect")
}

/// A fresh database with table `t (id INT PRIMARY KEY, v VARCHAR(20))` on the server at `url`.
pub(crate) async fn fresh(url: &str, prefix: &str) -> (mysql_async::Conn, String) {
    let mut c = conn_to(url).await;
    let db = unique_name(prefix);
    c.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(20))"
    ))
    .await
    .expect("schema");
    (c, db)
}

/// A MariaDB server of this test's own. Its temporary files go to its own directory: a
/// starting server deletes every `#sql*` file in its tmpdir, which in the shared `/tmp` would
/// be the temporary tables of the shared test server.
pub(crate) fn own_mariadb(what: &str) -> stream_testkit::mariadb::MariaDb {
    let dir = stream_testkit::mariadb::MariaDb::temp_dir(what);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmpdir");
    stream_testkit::mariadb::MariaDb::start(&dir, &[&format!("--tmpdir={}", tmp.display())])
        .expect("own MariaDB")
}

/// Inserts row `id` into `db.t`.
pub(crate) async fn insert(c: &mut mysql_async::Conn, db: &str, id: i64) {
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'x')"))
        .await
        .expect("insert");
}

pub(crate) fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

pub(crate) fn id_of(event: &ChangeEvent) -> i64 {
    match event.key.as_ref().and_then(|k| k.get("id")) {
        Some(Value::Int(id)) => *id,
        other => panic!("no id in {other:?}"),
    }
}

/// Polls `check` until it holds; panics after [`WAIT`].
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Ids a callback saw, in order.
pub(crate) type Seen = Arc<Mutex<Vec<i64>>>;

pub(crate) fn ids(seen: &Seen) -> Vec<i64> {
    seen.lock().expect("lock").clone()
}

/// What a callback returns.
pub(crate) type Handled = std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// A callback that records the id of every event it gets.
pub(crate) fn recorder(
    seen: &Seen,
) -> impl Fn(Arc<ChangeEvent>) -> Handled + Send + Sync + 'static {
    let seen = seen.clone();
    move |event| {
        let seen = seen.clone();
        Box::pin(async move {
            seen.lock().expect("lock").push(id_of(&event));
            Ok(())
        })
    }
}
