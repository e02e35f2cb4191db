//! Change capture against the shared MariaDB: operations, transactions, keys, filters, DDL in
//! mid-stream, large rows, and resume from every position of a transaction.

use std::time::Duration;

use crate::support::*;
use mysql_async::prelude::*;
use stream_core::{Op, Position, SchemaChangeKind, StartFrom};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_updates_carry_full_before_and_after_and_deletes_the_old_row() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "ops").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.o (id INT PRIMARY KEY, status VARCHAR(10), total DECIMAL(6,2))"
    ))
    .await
    .expect("table");
    let start = now(&mut c).await;
    c.query_drop(format!("INSERT INTO `{db}`.o VALUES (7, 'new', 19.90)"))
        .await
        .expect("insert");
    c.query_drop(format!("UPDATE `{db}`.o SET status = 'paid' WHERE id = 7"))
        .await
        .expect("update");
    c.query_drop(format!("DELETE FROM `{db}`.o WHERE id = 7"))
        .await
        .expect("delete");
    let ev = changes(config(&url(), &format!("{db}.*")), start, 3).await;
    assert_eq!(
        ev.iter().map(|e| e.op).collect::<Vec<_>>(),
        [Op::Insert, Op::Update, Op::Delete]
    );
    let update = &ev[1];
    assert_eq!(update.before.as_ref().map(|r| r.len()), Some(3));
    assert_eq!(field(update, "status"), "\"paid\"");
    let before = update.before.as_ref().expect("before");
    assert_eq!(
        before.get("status"),
        Some(&stream_core::Value::String("new".into()))
    );
    assert_eq!(ev[2].after, None);
    assert_eq!(field(&ev[2], "total"), "\"19.90\"");
    assert!(
        ev[2].to_json().contains(r#""key":{"id":7}"#),
        "{}",
        ev[2].to_json()
    );
    assert!(
        ev.iter().all(|e| e.txn.is_some()),
        "MariaDB GTIDs name every transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_multi_row_transaction_shares_one_txn_and_orders_its_rows() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "txn").await;
    c.query_drop(format!("CREATE TABLE `{db}`.a (id INT PRIMARY KEY); CREATE TABLE `{db}`.b (id INT PRIMARY KEY, v INT)"))
        .await
        .expect("tables");
    let start = now(&mut c).await;
    c.query_drop(format!(
        "START TRANSACTION; INSERT INTO `{db}`.a VALUES (1),(2),(3); INSERT INTO `{db}`.b VALUES (1, 10); \
         UPDATE `{db}`.b SET v = 11; DELETE FROM `{db}`.a WHERE id = 2; COMMIT"
    ))
    .await
    .expect("transaction");
    let ev = changes(config(&url(), &format!("{db}.*")), start, 6).await;
    let txn = ev[0].txn.clone().expect("txn");
    assert!(ev.iter().all(|e| e.txn.as_ref() == Some(&txn)));
    let tables: Vec<&str> = ev.iter().map(|e| &*e.namespace.table).collect();
    assert_eq!(tables, ["a", "a", "a", "b", "b", "a"]);
    let positions: Vec<String> = ev.iter().map(|e| e.position.to_string()).collect();
    for (i, p) in positions.iter().enumerate() {
        assert!(p.ends_with(&format!("+{}", i + 1)), "{positions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tables_without_primary_key_have_a_null_key() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "nopk").await;
    c.query_drop(format!("CREATE TABLE `{db}`.log (msg VARCHAR(20))"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    c.query_drop(format!("INSERT INTO `{db}`.log VALUES ('a'), ('a')"))
        .await
        .expect("insert");
    let ev = changes(config(&url(), &format!("{db}.*")), start, 2).await;
    assert!(ev.iter().all(|e| e.key.is_none()));
    assert!(ev[0].to_json().contains(r#""key":null"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_include_and_exclude_patterns_select_tables() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "filter").await;
    for t in ["orders", "order_audit", "users"] {
        c.query_drop(format!("CREATE TABLE `{db}`.{t} (id INT PRIMARY KEY)"))
            .await
            .expect("table");
    }
    let start = now(&mut c).await;
    for t in ["users", "order_audit", "orders"] {
        c.query_drop(format!("INSERT INTO `{db}`.{t} VALUES (1)"))
            .await
            .expect("insert");
    }
    let mut cfg = config(&url(), "");
    cfg.filter = stream_core::NamespaceFilter::parse(
        &format!("{db}.order*,{db}.users"),
        &format!("{db}.*audit"),
    )
    .expect("filter");
    let ev = changes(cfg, start, 2).await;
    let tables: Vec<&str> = ev.iter().map(|e| &*e.namespace.table).collect();
    assert_eq!(tables, ["users", "orders"]);
}

async fn ddl_mid_stream(mode: &str) {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "ddl").await;
    let start = now(&mut c).await;
    with_metadata(mode, || async {
        for sql in [
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a VARCHAR(5), b INT)",
            "INSERT INTO `{db}`.t VALUES (1, 'x', 10)",
            "ALTER TABLE `{db}`.t ADD COLUMN c DATE AFTER id",
            "INSERT INTO `{db}`.t VALUES (2, '2024-01-02', 'y', 20)",
            "ALTER TABLE `{db}`.t RENAME COLUMN a TO label",
            "INSERT INTO `{db}`.t VALUES (3, '2024-01-03', 'z', 30)",
            "ALTER TABLE `{db}`.t DROP COLUMN b",
            "INSERT INTO `{db}`.t VALUES (4, '2024-01-04', 'w')",
        ] {
            c.query_drop(sql.replace("{db}", &db)).await.expect(sql);
        }
    })
    .await;
    let got = collect(
        config(&url(), &format!("{db}.*")),
        StartFrom::Position(start),
        4,
        Duration::from_secs(20),
    )
    .await;
    assert!(got.error.is_none(), "{mode}: {:?}", got.error);
    let shapes: Vec<Vec<String>> = got.changes.iter().map(names).collect();
    assert_eq!(
        shapes,
        [
            vec!["id", "a", "b"],
            vec!["id", "c", "a", "b"],
            vec!["id", "c", "label", "b"],
            vec!["id", "c", "label"],
        ],
        "binlog_row_metadata={mode}: columns must be those in force when each row was written"
    );
    assert_eq!(field(&got.changes[1], "c"), "\"2024-01-02\"");
    assert_eq!(field(&got.changes[2], "label"), "\"z\"");
    let kinds: Vec<&SchemaChangeKind> = got.schema.iter().map(|s| &s.kind).collect();
    assert_eq!(
        kinds,
        [
            &SchemaChangeKind::Create,
            &SchemaChangeKind::Alter,
            &SchemaChangeKind::Alter,
            &SchemaChangeKind::Alter
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_ddl_mid_stream_keeps_historic_column_names_without_metadata() {
    ddl_mid_stream("NO_LOG").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_ddl_mid_stream_keeps_historic_column_names_with_full_metadata() {
    ddl_mid_stream("FULL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_unknowable_history_fails_the_table_instead_of_misnaming_columns() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "hist").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a INT)"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    with_metadata("NO_LOG", || async {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 1)"))
            .await
            .expect("insert");
    })
    .await;
    // The schema changes before the reader starts: the snapshot it takes is newer than the row.
    c.query_drop(format!("ALTER TABLE `{db}`.t ADD COLUMN b INT"))
        .await
        .expect("alter");
    let got = collect(
        config(&url(), &format!("{db}.*")),
        StartFrom::Position(start),
        1,
        Duration::from_secs(20),
    )
    .await;
    let err = got
        .error
        .expect("a schema error, not misnamed columns")
        .to_string();
    assert!(got.changes.is_empty());
    assert!(
        err.contains(&format!("{db}.t")) && err.contains("2 columns"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_17_mb_row_arrives_whole() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "big").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.big (id INT PRIMARY KEY, payload LONGBLOB)"
    ))
    .await
    .expect("table");
    let payload: Vec<u8> = (0..17 * 1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let start = now(&mut c).await;
    c.exec_drop(
        format!("INSERT INTO `{db}`.big VALUES (1, ?)"),
        (payload.clone(),),
    )
    .await
    .expect("insert 17 MB");
    c.query_drop(format!("UPDATE `{db}`.big SET id = 2"))
        .await
        .expect("update 17 MB");
    let ev = changes(config(&url(), &format!("{db}.*")), start, 2).await;
    for e in &ev {
        let row = e.after.as_ref().expect("after");
        assert_eq!(
            row.get("payload"),
            Some(&stream_core::Value::Bytes(payload.clone()))
        );
    }
    assert_eq!(
        ev[1].before.as_ref().and_then(|r| r.get("payload")),
        Some(&stream_core::Value::Bytes(payload))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_resuming_from_any_event_yields_exactly_the_following_events() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "resume").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.r (id INT PRIMARY KEY, v INT); CREATE TABLE `{db}`.skip (id INT)"
    ))
    .await
    .expect("tables");
    let start = now(&mut c).await;
    c.query_drop(format!(
        "START TRANSACTION; INSERT INTO `{db}`.r VALUES (1,1),(2,2); INSERT INTO `{db}`.skip VALUES (9); \
         UPDATE `{db}`.r SET v = v + 10; DELETE FROM `{db}`.r WHERE id = 1; COMMIT; \
         INSERT INTO `{db}`.r VALUES (3,3); \
         START TRANSACTION; INSERT INTO `{db}`.r VALUES (4,4),(5,5); COMMIT"
    ))
    .await
    .expect("writes");
    let cfg = || config(&url(), &format!("{db}.r"));
    let all = changes(cfg(), start, 8).await;
    resuming_after_each_event_yields_the_rest(&all, cfg).await;
}

/// From every event's position, a new stream yields exactly the events after it.
async fn resuming_after_each_event_yields_the_rest(
    all: &[stream_core::ChangeEvent],
    cfg: impl Fn() -> stream_mysql::MySqlConfig,
) {
    let json: Vec<String> = all.iter().map(|e| e.to_json()).collect();
    for (i, ev) in all.iter().enumerate() {
        let rest = collect(
            cfg(),
            StartFrom::Position(ev.position.clone()),
            all.len() - i - 1,
            // Only waited out when rows are missing: requesting the stream by GTID state makes
            // the server scan its binlog file, which takes seconds on a busy shared server.
            Duration::from_secs(20),
        )
        .await;
        assert!(rest.error.is_none(), "{:?}", rest.error);
        let rest: Vec<String> = rest.changes.iter().map(|e| e.to_json()).collect();
        assert_eq!(
            rest,
            json[i + 1..],
            "resuming after event {i} ({})",
            ev.position
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_wrong_password_is_a_definite_error_without_the_password() {
    let good = url();
    let bad = good.replacen(":ustream@", ":not-the-password@", 1);
    assert_ne!(good, bad, "the test URL has the expected user");
    let got = collect(
        config(&bad, ""),
        StartFrom::Latest,
        1,
        Duration::from_secs(10),
    )
    .await;
    let err = got.error.expect("login must fail");
    assert_eq!(err.class(), stream_core::ErrorClass::Definite);
    let text = err.to_string();
    assert!(text.contains("Access denied"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_position_of_another_kind_is_refused_clearly() {
    let from: Position = "mongodb:AAAA".parse().expect("position");
    let got = collect(
        config(&url(), ""),
        StartFrom::Position(from),
        1,
        Duration::from_secs(10),
    )
    .await;
    let text = got.error.expect("refused").to_string();
    assert!(text.contains("mongodb:AAAA"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_gtid_positions_resume_exactly_from_every_event() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "gtid").await;
    c.query_drop(format!("CREATE TABLE `{db}`.g (id INT PRIMARY KEY, v INT)"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    c.query_drop(format!(
        "START TRANSACTION; INSERT INTO `{db}`.g VALUES (1,1),(2,2); UPDATE `{db}`.g SET v = 9 WHERE id = 1; COMMIT; \
         INSERT INTO `{db}`.g VALUES (3,3); DELETE FROM `{db}`.g WHERE id = 2"
    ))
    .await
    .expect("writes");
    let cfg = || {
        let mut cfg = config(&url(), &format!("{db}.g"));
        cfg.gtid_positions = true;
        cfg
    };
    let all = changes(cfg(), start, 5).await;
    for ev in &all {
        let p = ev.position.to_string();
        assert!(p.starts_with("mariadb-gtid:"), "{p}");
        let txn = ev.txn.as_deref().expect("txn");
        // The position names the state before this transaction, never the transaction itself.
        assert!(!p.contains(txn), "{p} must not already contain {txn}");
    }
    // Resuming from a GTID position switches to GTID mode even if not configured.
    resuming_after_each_event_yields_the_rest(&all, || config(&url(), &format!("{db}.g"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_fully_filtered_stream_still_advances_its_position() {
    use futures::StreamExt;
    use stream_core::Source;
    let mut c = conn().await;
    let db = fresh_db(&mut c, "idlepos").await;
    c.query_drop(format!("CREATE TABLE `{db}`.watched (id INT PRIMARY KEY); CREATE TABLE `{db}`.busy (id INT PRIMARY KEY)"))
        .await
        .expect("tables");
    let start = now(&mut c).await;
    let mut source = stream_mysql::MySqlSource::new(config(&url(), &format!("{db}.watched")));
    let shutdown = stream_core::CancellationToken::new();
    let opened = source
        .open(StartFrom::Position(start.clone()), shutdown.clone())
        .await
        .expect("open");
    let mut batches = opened.batches;
    c.query_drop(format!("INSERT INTO `{db}`.busy VALUES (1),(2),(3)"))
        .await
        .expect("writes elsewhere");
    let end = now(&mut c).await;
    let mut last = start.clone();
    // Generous: the reader goes through every other test's writes on the shared binlog.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reached = |p: &Position| p.compare(&end).is_some_and(|o| o.is_ge());
    while !reached(&last) && tokio::time::Instant::now() < deadline {
        let batch = tokio::time::timeout(Duration::from_secs(20), batches.next())
            .await
            .expect("a batch while idle")
            .expect("stream open")
            .expect("no error");
        assert!(
            batch.events.is_empty(),
            "nothing of the watched table was written"
        );
        last = batch.position;
    }
    assert!(
        reached(&last),
        "the position moved past the filtered writes: {last} < {end}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_concurrent_readers_get_distinct_server_ids_and_both_see_everything() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "twoids").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    let a = tokio::spawn(collect(
        config(&url(), &format!("{db}.*")),
        StartFrom::Position(start.clone()),
        20,
        Duration::from_secs(20),
    ));
    let b = tokio::spawn(collect(
        config(&url(), &format!("{db}.*")),
        StartFrom::Position(start),
        20,
        Duration::from_secs(20),
    ));
    for i in 0..20 {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({i})"))
            .await
            .expect("insert");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (a, b) = (a.await.expect("reader a"), b.await.expect("reader b"));
    assert!(
        a.error.is_none() && b.error.is_none(),
        "{:?} {:?}",
        a.error,
        b.error
    );
    assert_eq!(a.changes.len(), 20);
    assert_eq!(b.changes.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_schema_state_saved_with_a_position_decodes_old_rows_after_ddl() {
    use futures::StreamExt;
    use stream_core::Source;
    let mut c = conn().await;
    let db = fresh_db(&mut c, "state").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a INT)"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    // What a pipeline would have saved with its checkpoint at `start`.
    let state = {
        let mut source = stream_mysql::MySqlSource::new(config(&url(), &format!("{db}.*")));
        let shutdown = stream_core::CancellationToken::new();
        let mut batches = source
            .open(StartFrom::Position(start.clone()), shutdown.clone())
            .await
            .expect("open")
            .batches;
        let first = tokio::time::timeout(Duration::from_secs(10), batches.next())
            .await
            .expect("first batch")
            .expect("open")
            .expect("ok");
        shutdown.cancel();
        first
            .state
            .expect("the first batch carries the table definitions")
    };
    with_metadata("NO_LOG", || async {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 1)"))
            .await
            .expect("insert");
        c.query_drop(format!("ALTER TABLE `{db}`.t ADD COLUMN b INT"))
            .await
            .expect("alter");
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES (2, 2, 2)"))
            .await
            .expect("insert");
    })
    .await;
    let mut cfg = config(&url(), &format!("{db}.*"));
    cfg.schema_state = Some(state);
    let got = collect(cfg, StartFrom::Position(start), 2, Duration::from_secs(20)).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    let shapes: Vec<Vec<String>> = got.changes.iter().map(names).collect();
    assert_eq!(shapes, [vec!["id", "a"], vec!["id", "a", "b"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_missing_replication_privileges_are_named() {
    let mut c = conn().await;
    let user = stream_testkit::unique_name("norepl");
    c.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO '{user}'@'%'"
    ))
    .await
    .expect("user");
    let url = url().replacen("ustream:ustream", &format!("{user}:pw"), 1);
    let got = collect(
        config(&url, ""),
        StartFrom::Latest,
        1,
        Duration::from_secs(10),
    )
    .await;
    let err = got.error.expect("must be refused");
    assert!(
        matches!(err, stream_core::SourceError::Prerequisite { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("REPLICATION SLAVE"), "{text}");
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .expect("drop user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_binlog_reader_gives_up_after_reconnect_for_once_the_server_is_gone() {
    use futures::StreamExt;
    use stream_core::Source;
    let mut c = conn().await;
    let db = fresh_db(&mut c, "gone").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1)"))
        .await
        .expect("insert");
    let upstream = stream_mysql::MySqlConfig::from_url(&url())
        .expect("url")
        .endpoint();
    let proxy = Proxy::start(upstream).await;
    let mut cfg = config(&proxy.url(&url()), &format!("{db}.*"));
    let window = Duration::from_millis(500);
    cfg.reconnect_for = window;
    let shutdown = stream_core::CancellationToken::new();
    let mut batches = stream_mysql::MySqlSource::new(cfg)
        .open(StartFrom::Position(start), shutdown.clone())
        .await
        .expect("open through the proxy")
        .batches;
    let row = loop {
        let batch = tokio::time::timeout(Duration::from_secs(10), batches.next())
            .await
            .expect("the row")
            .expect("open")
            .expect("no error");
        if !batch.events.is_empty() {
            break batch;
        }
    };
    assert_eq!(row.events.len(), 1);
    let err = error_once_gone(&proxy, &mut batches, window).await;
    assert_eq!(err.to_string(), refused_text(proxy.port));
    shutdown.cancel();
}

/// Waits until `done` holds, or fails naming `what`.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_second_outage_long_after_a_recovered_one_gets_a_whole_reconnect_window() {
    // On an idle database nothing is delivered after a reconnect; the window of the first
    // outage must still end there, or a loss of connection long after gives up at once.
    use futures::StreamExt;
    use stream_core::Source;
    use stream_testkit::proxy::{Fault, FaultProxy};
    let mut c = conn().await;
    let db = fresh_db(&mut c, "second_outage").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await
        .expect("table");
    let start = now(&mut c).await;
    let endpoint = stream_mysql::MySqlConfig::from_url(&url())
        .expect("url")
        .endpoint();
    let upstream = tokio::net::lookup_host(&endpoint)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = FaultProxy::start(upstream).await.expect("proxy");
    let through = url().replacen(&endpoint, &proxy.addr().to_string(), 1);
    let mut cfg = config(&through, &format!("{db}.*"));
    let window = Duration::from_secs(5);
    cfg.reconnect_for = window;
    let shutdown = stream_core::CancellationToken::new();
    let mut batches = stream_mysql::MySqlSource::new(cfg)
        .open(StartFrom::Position(start), shutdown.clone())
        .await
        .expect("open through the proxy")
        .batches;
    // Read on in the background: a stream that is not read does not reconnect.
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let changes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let changes = changes.clone();
        tokio::spawn(async move {
            while let Some(item) = batches.next().await {
                match item {
                    Ok(batch) => {
                        changes.fetch_add(batch.events.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(e) => {
                        let _ = tx.send((tokio::time::Instant::now(), e));
                        return;
                    }
                }
            }
        })
    };
    // A change delivered: the stream's position is its own from here on.
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1)"))
        .await
        .expect("insert");
    wait_until("the change", || {
        changes.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    // A short first outage: the open connection and one reconnect attempt are reset.
    proxy.set(Fault::Reset);
    wait_until("two resets", || proxy.resets() >= 2).await;
    let before = proxy.accepted();
    proxy.set(Fault::Pass);
    wait_until("a reconnect", || proxy.accepted() > before).await;
    // Idle, well past the first outage's window, and long enough for the connection to
    // count as back (5 s of streaming).
    tokio::time::sleep(window + Duration::from_secs(8)).await;
    assert!(
        errors.try_recv().is_err(),
        "gave up during the first outage"
    );
    let second = tokio::time::Instant::now();
    proxy.set(Fault::Reset);
    let (at, err) = tokio::time::timeout(Duration::from_secs(30), errors.recv())
        .await
        .expect("still reconnecting 30 s into the second outage")
        .expect("an error");
    assert!(
        at - second >= window,
        "gave up {:?} into the second outage, before its {window:?} window: {err}",
        at - second
    );
    shutdown.cancel();
    let _ = reader.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_url_database_that_does_not_exist_is_refused_naming_it_and_the_existing_ones() {
    use stream_core::Source;
    let mut c = conn().await;
    let db = fresh_db(&mut c, "typo").await;
    let typo = format!("{db}x");
    let url = format!("{}/{typo}", url());
    let check = |err: stream_core::SourceError| {
        let text = err.to_string();
        assert_eq!(err.class(), stream_core::ErrorClass::Definite, "{text}");
        assert!(
            text.starts_with(&format!("database `{typo}` in the URL does not exist on ")),
            "{text}"
        );
        // The closest name comes first.
        assert!(text.contains(&format!("; it has {db}, ")), "{text}");
    };
    let binlog =
        stream_mysql::MySqlSource::new(stream_mysql::MySqlConfig::from_url(&url).expect("url"))
            .open(StartFrom::Latest, stream_core::CancellationToken::new())
            .await
            .expect_err("the binlog source refuses it");
    check(binlog);
    let polling = stream_mysql::MySqlPollingSource::new(
        stream_mysql::MySqlConfig::from_url(&url).expect("url"),
        "updated_at",
    )
    .open(StartFrom::Latest, stream_core::CancellationToken::new())
    .await
    .expect_err("the polling source refuses it");
    check(polling);
    let fine = format!("{}/{db}", crate::support::url());
    let opened =
        stream_mysql::MySqlSource::new(stream_mysql::MySqlConfig::from_url(&fine).expect("url"))
            .open(StartFrom::Latest, stream_core::CancellationToken::new())
            .await;
    assert!(opened.is_ok(), "{:?}", opened.err());
}
