//! MariaDB JSON columns (LONGTEXT with a `json_valid` CHECK) print as embedded JSON on every
//! path: from the start, from a position, from a checkpoint, across a reconnect, in a snapshot,
//! by polling and in `Store` reads; in both metadata modes; for the `JSON` type, a column-level
//! CHECK, a named table-level CHECK, and a JSON column added by a later ALTER.
//!
//! It runs on a MariaDB of its own: the binlog starts empty (so "from the start" is literal),
//! the binlog dump thread can be killed to force a reconnect, and the global
//! `binlog_row_metadata` can be switched without disturbing other tests.

use std::time::Duration;

use crate::support::*;
use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{
    CancellationToken, ChangeEvent, Namespace, Position, Row, Source, SourceEvent, StartFrom,
    Store, Value,
};
use stream_mysql::{MySqlPollingSource, MySqlSource, MySqlStore};
use stream_testkit::mariadb::MariaDb;

const CREATE: &str = "CREATE TABLE `{db}`.j (id INT PRIMARY KEY, doc JSON, \
    col_check LONGTEXT CHECK (json_valid(col_check)), named LONGTEXT, note LONGTEXT, \
    own JSON CHECK (own IS NULL OR json_length(own) < 9), \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
    CONSTRAINT named_is_json CHECK (JSON_VALID(`named`)))";
const ROW_1: &str = r#"INSERT INTO `{db}`.j (id, doc, col_check, named, note, own)
    VALUES (1, '{"k": [1, 2]}', '{"c": 1}', '{"n": true}', '{"not": "json"}', '[7]')"#;
const ALTERS: [&str; 2] = [
    "ALTER TABLE `{db}`.j ADD COLUMN added JSON AFTER doc",
    "ALTER TABLE `{db}`.j ADD COLUMN table_level LONGTEXT, ADD CHECK (json_valid(table_level))",
];
const ROW_2: &str = r#"INSERT INTO `{db}`.j (id, doc, added, col_check, named, note, own, table_level)
    VALUES (2, '{"k": [1, 2]}', '{"a": null}', '{"c": 1}', '{"n": true}', '{"not": "json"}', '[7]', '[1, "x"]')"#;

/// Row 1 as the binlog has it (before the ALTERs), and row 2. `own` was declared JSON, but its
/// own CHECK replaced MariaDB's `json_valid` one: the server keeps any text in it, and so do we.
const SHAPE_1: &str = r#"id=1 doc={"k":[1,2]} col_check={"c":1} named={"n":true} note="{\"not\": \"json\"}" own="[7]""#;
const SHAPE_2: &str = r#"id=2 doc={"k":[1,2]} added={"a":null} col_check={"c":1} named={"n":true} note="{\"not\": \"json\"}" own="[7]" table_level=[1,"x"]"#;

/// `name=json` of every field but the change timestamp.
fn shape(row: &Row) -> String {
    row.iter()
        .filter(|(name, _)| &***name != "updated_at")
        .map(|(name, v)| {
            let mut buf = Vec::new();
            stream_core::json::write_value(&mut buf, v);
            format!("{name}={}", String::from_utf8_lossy(&buf))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn after(ev: &ChangeEvent) -> &Row {
    ev.after.as_ref().expect("an after image")
}

/// The row with this id, among changes.
fn with_id(changes: &[ChangeEvent], id: i64) -> String {
    let found: Vec<&ChangeEvent> = changes
        .iter()
        .filter(|e| after(e).get("id") == Some(&Value::Int(id)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one change of row {id} in {:#?}",
        changes.iter().map(|e| e.to_json()).collect::<Vec<_>>()
    );
    shape(after(found[0]))
}

/// One batch as a live reader hands it over.
struct Seen {
    changes: Vec<ChangeEvent>,
    position: Position,
    state: Option<serde_json::Value>,
}

/// Streams in the background; every batch (or the error) arrives through the channel.
fn spawn_reader(
    cfg: stream_mysql::MySqlConfig,
    from: StartFrom,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<Result<Seen, String>>,
    CancellationToken,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let opened = match MySqlSource::new(cfg).open(from, token).await {
            Ok(o) => o,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        let mut batches = opened.batches;
        while let Some(batch) = batches.next().await {
            let seen = batch.map_err(|e| e.to_string()).map(|b| Seen {
                changes: b
                    .events
                    .into_iter()
                    .filter_map(|e| match e {
                        SourceEvent::Change(c) => Some(c),
                        _ => None,
                    })
                    .collect(),
                position: b.position,
                state: b.state,
            });
            let failed = seen.is_err();
            if tx.send(seen).is_err() || failed {
                return;
            }
        }
    });
    (rx, shutdown)
}

/// Batches until `done` says so; returns them all.
async fn read_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<Seen, String>>,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) -> Vec<Seen> {
    let mut all = Vec::new();
    loop {
        let seen = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("reader alive")
            .unwrap_or_else(|e| panic!("reader failed waiting for {what}: {e}"));
        let finished = done(&seen);
        all.push(seen);
        if finished {
            return all;
        }
    }
}

/// Kills the server's binlog dump thread (there is one reader), so the reader reconnects.
async fn kill_dump_thread(c: &mut mysql_async::Conn) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids: Vec<u64> = c
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
            .await
            .expect("processlist");
        if let [id] = ids.as_slice() {
            c.query_drop(format!("KILL {id}")).await.expect("kill");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected one binlog dump thread, found {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_path_prints_the_same_json(server: &MariaDb, mode: &str) {
    let url = server.url();
    let mut c = conn_to(&url).await;
    c.query_drop(format!("SET GLOBAL binlog_row_metadata = {mode}"))
        .await
        .expect("metadata mode");
    let db = fresh_db(&mut c, "json").await;
    let sql = |s: &str| s.replace("{db}", &db);
    let cfg = || {
        let mut cfg = config(&url, &format!("{db}.*"));
        cfg.reconnect_for = Duration::from_secs(60);
        cfg
    };
    let ctx = format!("binlog_row_metadata={mode}");
    let mut wrong = Mismatches::default();

    c.query_drop(sql(CREATE)).await.expect("create");
    c.query_drop(sql(ROW_1)).await.expect("row 1");
    let checkpoint_at = now(&mut c).await;

    // A live reader from the start; its batch at `checkpoint_at` is the checkpoint.
    let (mut live, stop_live) = spawn_reader(cfg(), StartFrom::Earliest);
    let first = read_until(&mut live, "row 1 and the checkpoint position", |s| {
        s.position == checkpoint_at
    })
    .await;
    let state = first
        .iter()
        .rev()
        .find_map(|s| s.state.clone())
        .expect("the definitions travel with the batches");
    let live_1: Vec<ChangeEvent> = first.into_iter().flat_map(|s| s.changes).collect();
    wrong.check(with_id(&live_1, 1), SHAPE_1, "a live reader");

    kill_dump_thread(&mut c).await;
    for alter in ALTERS {
        c.query_drop(sql(alter)).await.expect(alter);
    }
    let before_row_2 = now(&mut c).await;
    c.query_drop(sql(ROW_2)).await.expect("row 2");

    let live_2: Vec<ChangeEvent> = read_until(&mut live, "row 2 after the reconnect", |s| {
        !s.changes.is_empty()
    })
    .await
    .into_iter()
    .flat_map(|s| s.changes)
    .collect();
    stop_live.cancel();
    wrong.check(with_id(&live_2, 2), SHAPE_2, "after a reconnect");

    let from_start = collect(cfg(), StartFrom::Earliest, 2, Duration::from_secs(20)).await;
    assert!(from_start.error.is_none(), "{ctx}: {:?}", from_start.error);
    wrong.check(with_id(&from_start.changes, 1), SHAPE_1, "from the start");
    wrong.check(with_id(&from_start.changes, 2), SHAPE_2, "from the start");

    let from_position = changes(cfg(), before_row_2, 1).await;
    wrong.check(
        with_id(&from_position, 2),
        SHAPE_2,
        "from a position (definitions from information_schema)",
    );

    let mut restored = cfg();
    restored.schema_state = Some(state);
    let from_checkpoint = changes(restored, checkpoint_at, 1).await;
    wrong.check(
        with_id(&from_checkpoint, 2),
        SHAPE_2,
        "from a checkpoint (saved definitions, then the ALTERs)",
    );

    // The query paths see the current table: row 1 has NULL in the added columns.
    let shape_1_now = SHAPE_1.replace(" col_check", " added=null col_check") + " table_level=null";
    let snapshot = collect(cfg(), StartFrom::Snapshot, 2, Duration::from_secs(20)).await;
    assert!(snapshot.error.is_none(), "{ctx}: {:?}", snapshot.error);
    wrong.check(with_id(&snapshot.changes, 1), &shape_1_now, "snapshot");
    wrong.check(with_id(&snapshot.changes, 2), SHAPE_2, "snapshot");

    let shutdown = CancellationToken::new();
    let mut poller = MySqlPollingSource::new(cfg(), "updated_at").safety_lag(Duration::ZERO);
    let mut polled = poller
        .open(StartFrom::Earliest, shutdown.clone())
        .await
        .expect("polling")
        .batches;
    let mut by_polling = Vec::new();
    while by_polling.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(20), polled.next())
            .await
            .expect("polled rows")
            .expect("polling open")
            .expect("no polling error");
        by_polling.extend(batch.events.into_iter().filter_map(|e| match e {
            SourceEvent::Change(c) => Some(c),
            _ => None,
        }));
    }
    shutdown.cancel();
    wrong.check(with_id(&by_polling, 1), &shape_1_now, "polling");
    wrong.check(with_id(&by_polling, 2), SHAPE_2, "polling");

    let store = MySqlStore::new(&cfg());
    let ns = Namespace::new(db.as_str(), "j");
    for (id, want) in [(1, shape_1_now.as_str()), (2, SHAPE_2)] {
        let key: Row = [("id", Value::Int(id))].into_iter().collect();
        let row = store.read(&ns, &key).await.expect("read").expect("row");
        wrong.check(shape(&row), want, "Store::read");
    }
    store.close().await.expect("close");

    // A JSON column converted to another character set holds its text in that set.
    c.query_drop(sql(
        "CREATE TABLE `{db}`.l (id INT PRIMARY KEY, doc JSON); \
         ALTER TABLE `{db}`.l CONVERT TO CHARACTER SET latin1",
    ))
    .await
    .expect("latin1 table");
    let at = now(&mut c).await;
    c.query_drop(sql(r#"INSERT INTO `{db}`.l VALUES (1, '{"é": "ü"}')"#))
        .await
        .expect("latin1 row");
    let latin1 = changes(config(&url, &format!("{db}.l")), at, 1).await;
    wrong.check(
        with_id(&latin1, 1),
        r#"id=1 doc={"é":"ü"}"#,
        "a JSON column converted to latin1",
    );
    assert!(wrong.0.is_empty(), "{ctx}: {}", wrong.0.join("\n"));
}

/// Every path whose row differs from the expected one, reported together.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn check(&mut self, got: String, want: &str, path: &str) {
        if got != want {
            self.0.push(format!("{path}:\n  got  {got}\n  want {want}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_json_columns_print_the_same_json_on_every_path_in_both_metadata_modes() {
    let server = MariaDb::start(&MariaDb::temp_dir("json"), &[])
        .unwrap_or_else(|e| panic!("cannot start a MariaDB for this test: {e}"));
    every_path_prints_the_same_json(&server, "NO_LOG").await;
    every_path_prints_the_same_json(&server, "FULL").await;
}
