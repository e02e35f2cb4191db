//! `ustream tail` reading the shared MariaDB through a fault proxy (stream-testkit's
//! `FaultProxy`) while a writer commits transactions: after each network fault the source
//! reconnects and resumes with nothing lost, repeated or misread. Every printed line is compared
//! with what was written (content) and with an uninterrupted run straight to the server (every
//! field, positions included). [`tail_through`] takes any MariaDB ([`Target`]): the TLS tests
//! (`mariadb_tail_tls_faults.rs`) run the same faults over TLS.

use std::process::Command;
use std::time::Duration;

use crate::support::{USTREAM, json_lines};
use crate::tail_process::{
    FaultGate, NetFault, Tail, out_path, proxy_in_front_of, proxy_to, tail_through_fault, wait_for,
};
use mysql_async::prelude::*;
use serde_json::{Value, json};
use stream_testkit::proxy::Fault;
use stream_testkit::{Server, unique_name};

const TXNS: usize = 240;
const INSERTS_PER_TXN: usize = 4;
/// Four inserts and one update of an earlier row per transaction.
const CHANGES: usize = TXNS * (INSERTS_PER_TXN + 1);
/// How long a tail may take to see the end of the writes once the fault is lifted.
const FINISH_WITHIN: Duration = Duration::from_secs(12);

/// The MariaDB a test tails through the proxy.
pub(crate) struct Target {
    /// `mysql://user:pass@host:port`, straight to the server: the writer and the reference run.
    pub(crate) direct: String,
    /// The tail's `mysql://user:pass@host:port` (the proxy takes the host and port's place).
    pub(crate) tail: String,
    /// What the tail's URL adds after `/db`: `?ssl-mode=...`, or nothing.
    pub(crate) params: String,
}

impl Target {
    /// The shared test server, the same user and no parameters for the tail.
    fn shared() -> Self {
        let url = Server::MySql.url();
        Self {
            tail: url.clone(),
            direct: url,
            params: String::new(),
        }
    }
}

async fn conn(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(url).expect("url"))
        .await
        .expect("connect")
}

/// The change events the writer's transactions make, in commit order, as
/// (op, id, before.v, after.v).
type Expected = Vec<(&'static str, i64, Option<String>, Option<String>)>;

/// Commits `TXNS` transactions into `db.t`, a few milliseconds apart so the tail reads them
/// live, the last 60% of them once `gate` opens; returns the events they make.
async fn write(url: String, db: String, gate: FaultGate) -> Expected {
    let mut c = conn(&url).await;
    let mut expected = Expected::new();
    let mut values: Vec<String> = Vec::new();
    for t in 0..TXNS {
        if t == TXNS * 2 / 5 {
            gate.wait().await;
        }
        let mut tx = c
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .expect("begin");
        let mut rows = Vec::new();
        for _ in 0..INSERTS_PER_TXN {
            let id = values.len();
            // Sizes vary so the proxy cuts packets at every kind of boundary.
            let v = format!("r{id}-{}", "é".repeat(id % 37));
            rows.push(format!("({id}, '{v}')"));
            expected.push(("insert", id as i64, None, Some(v.clone())));
            values.push(v);
        }
        tx.query_drop(format!("INSERT INTO `{db}`.t VALUES {}", rows.join(",")))
            .await
            .expect("insert");
        let id = (t * 7) % values.len();
        let before = values[id].clone();
        values[id].push('!');
        tx.query_drop(format!(
            "UPDATE `{db}`.t SET v = CONCAT(v, '!') WHERE id = {id}"
        ))
        .await
        .expect("update");
        expected.push(("update", id as i64, Some(before), Some(values[id].clone())));
        tx.commit().await.expect("commit");
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    expected
}

/// A database with table `t`, and the binlog position before it has rows.
async fn setup(url: &str, prefix: &str) -> (String, String) {
    let mut c = conn(url).await;
    let db = unique_name(prefix);
    c.query_drop(format!(
        "CREATE DATABASE `{db}`; \
         CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(200) CHARACTER SET utf8mb4)"
    ))
    .await
    .expect("schema");
    let row: mysql_async::Row = c
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("status")
        .expect("binlog");
    let (file, pos): (String, u64) = (row.get(0).expect("file"), row.get(1).expect("pos"));
    (db, format!("binlog:{file}:{pos}+0"))
}

/// Every printed line is the written change at its place (content), and the same line an
/// uninterrupted run straight to the server prints (every field: position, time, transaction).
async fn assert_nothing_lost_repeated_or_misread(
    server: &str,
    db: &str,
    start: &str,
    printed: &[Value],
    expected: &Expected,
) {
    assert_eq!(
        printed.len(),
        expected.len(),
        "as many lines as changes written"
    );
    for (i, (line, (op, id, before, after))) in printed.iter().zip(expected).enumerate() {
        let want_before = before.as_ref().map(|v| json!({"id": id, "v": v}));
        let want_after = after.as_ref().map(|v| json!({"id": id, "v": v}));
        assert_eq!(
            (
                &line["op"],
                &line["key"]["id"],
                &line["before"],
                &line["after"]
            ),
            (
                &json!(op),
                &json!(id),
                &want_before.unwrap_or(Value::Null),
                &want_after.unwrap_or(Value::Null)
            ),
            "line {i} is not the change written at that place"
        );
    }
    let direct = format!("{server}/{db}");
    let limit = CHANGES.to_string();
    let reference = Tail::start(
        &[&direct, "--from", start, "--limit", &limit],
        out_path(db, "reference"),
    )
    .finish(Duration::from_secs(30))
    .await
    .expect("the uninterrupted run finishes");
    for (i, (line, want)) in printed.iter().zip(&reference).enumerate() {
        assert_eq!(line, want, "line {i} differs from the uninterrupted run");
    }
    let mut c = conn(server).await;
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

/// A tail through the proxy while the writer commits, with `fault` injected once a quarter of
/// the changes are printed; every change must then arrive within `FINISH_WITHIN`.
pub(crate) async fn tail_through(
    target: &Target,
    prefix: &str,
    fault: NetFault,
) -> Result<(), String> {
    let (db, start) = setup(&target.direct, prefix).await;
    let (proxy, url) = proxy_in_front_of(&target.tail).await;
    let url = format!("{url}/{db}{}", target.params);
    let limit = CHANGES.to_string();
    let (printed, expected) = tail_through_fault(
        &proxy,
        &[&url, "--from", &start, "--limit", &limit],
        out_path(&db, "faulted"),
        CHANGES,
        |gate| write(target.direct.clone(), db.clone(), gate),
        fault,
        FINISH_WITHIN,
    )
    .await;
    assert_nothing_lost_repeated_or_misread(&target.direct, &db, &start, &printed?, &expected)
        .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_through_a_reset_connection_reconnects_without_loss_or_repeat() {
    tail_through(&Target::shared(), "net_reset", NetFault::Reset)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_through_a_paused_connection_resumes_without_loss_or_repeat() {
    tail_through(&Target::shared(), "net_pause", NetFault::Pause)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_notices_a_half_open_connection_and_reconnects_without_loss() {
    // The binlog connection goes silent (no FIN, no RST), as when a NAT or firewall forgets
    // it; new connections work. Only a read deadline (the server sends a heartbeat every
    // second when idle) can tell the source that its connection is dead.
    tail_through(&Target::shared(), "net_halfopen", NetFault::HalfOpen)
        .await
        .unwrap_or_else(|e| panic!("half-open binlog connection not noticed: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_resumed_inside_a_large_transaction_never_moves_its_checkpoint_backwards() {
    // Found by `cargo xtask chaos`: after a restart from a checkpoint inside a transaction, the
    // rows already delivered are skipped; when they arrive in several reads (a slow network,
    // here the proxy's slices) a batch is handed over in the middle of the skip, with a
    // position before the checkpoint.
    let (db, start) = setup(&Server::MySql.url(), "net_skip").await;
    let mut c = conn(&Server::MySql.url()).await;
    c.query_drop(format!(
        "INSERT INTO `{db}`.t SELECT seq, CONCAT('r', seq) FROM `{db}`.seq_1_to_3000"
    ))
    .await
    .expect("one transaction of 3,000 rows");
    let direct = format!("{}/{db}", Server::MySql.url());
    let dir = std::env::temp_dir().join(format!("{db}-checkpoint"));
    let first = Command::new(USTREAM)
        .args([
            "tail",
            &direct,
            "--from",
            &start,
            "--limit",
            "2000",
            "--checkpoint",
        ])
        .arg(&dir)
        .output()
        .expect("run ustream");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let (proxy, url) = proxy_to(Server::MySql).await;
    let url = format!("{url}/{db}");
    proxy.set(Fault::Slice(512));
    let second = Command::new(USTREAM)
        .args(["tail", &url, "--limit", "1000", "--checkpoint"])
        .arg(&dir)
        .output()
        .expect("run ustream");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    let ids: Vec<i64> = json_lines(&second.stdout)
        .iter()
        .map(|l| l["key"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, (2001..=3000).collect::<Vec<i64>>());
    let _ = std::fs::remove_dir_all(&dir);
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_reconnects_to_a_server_that_never_answers_time_out_and_a_signal_ends_the_wait()
 {
    // A server that accepts connections and never answers (a hung host, a proxy in front of a
    // dead one, a network dropping packets): each reconnect attempt must give up at
    // `connect_timeout` and try again, and a signal must end the tail at once, not after
    // the attempt.
    let (db, start) = setup(&Server::MySql.url(), "net_unanswered").await;
    let (proxy, url) = proxy_to(Server::MySql).await;
    let tail = |timeout: &str, what: &str| {
        Tail::start(
            &[
                &format!("{url}/{db}?connect_timeout={timeout}"),
                "--from",
                &start,
            ],
            out_path(&db, what),
        )
    };
    let retrying = tail("2", "retrying");
    let mut waiting = tail("600", "waiting");
    let mut c = conn(&Server::MySql.url()).await;
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 'before')"))
        .await
        .expect("insert");
    for run in [&retrying, &waiting] {
        run.wait_for_lines(1, Duration::from_secs(30)).await;
    }
    proxy.set(Fault::Blackhole);
    let timed_out = "no answer within 2 s (connect_timeout)";
    wait_for(
        "two reconnect attempts timed out",
        Duration::from_secs(60),
        || retrying.stderr_lines_with(timed_out) >= 2,
    )
    .await;
    // The other tail's silent connection was noticed too; its attempt now waits on the
    // server (600 s).
    wait_for(
        "the silent connection noticed",
        Duration::from_secs(30),
        || waiting.stderr_lines_with("reconnecting") >= 1,
    )
    .await;
    waiting.signal("-INT");
    let status = waiting.exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGINT during an unanswered connection attempt did not end the tail cleanly \
         within 20 s ({status:?}); stderr: {}",
        waiting.stderr()
    );
    let waited = json_lines(&std::fs::read(out_path(&db, "waiting")).expect("output"));
    let resume = format!(
        "ustream: stopped after 1 event; resume with `--from {}`",
        waited[0]["position"].as_str().expect("position")
    );
    assert!(
        waiting.stderr().contains(&resume),
        "no `{resume}` in: {}",
        waiting.stderr()
    );
    proxy.set(Fault::Pass);
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (2, 'after')"))
        .await
        .expect("insert");
    retrying.wait_for_lines(2, Duration::from_secs(60)).await;
    let lines = json_lines(&std::fs::read(out_path(&db, "retrying")).expect("output"));
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["key"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2], "nothing lost or repeated across the attempts");
    for what in ["retrying", "waiting"] {
        let _ = std::fs::remove_file(out_path(&db, what));
    }
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_idle_exit_waits_out_an_outage_and_says_where_to_resume() {
    // `--idle-exit-ms` ends a run that has read everything; an outage is not that: exit 0
    // during one would tell a batch job it had caught up.
    let (db, start) = setup(&Server::MySql.url(), "net_idle").await;
    let (proxy, url) = proxy_to(Server::MySql).await;
    let out = out_path(&db, "idle");
    let mut tail = Tail::start(
        &[
            &format!("{url}/{db}"),
            "--from",
            &start,
            "--idle-exit-ms",
            "5000",
        ],
        out.clone(),
    );
    let mut c = conn(&Server::MySql.url()).await;
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 'before')"))
        .await
        .expect("insert");
    tail.wait_for_lines(1, Duration::from_secs(30)).await;
    proxy.set(Fault::Reset);
    wait_for(
        "the idle tail to wait for the outage",
        Duration::from_secs(30),
        || tail.stderr_lines_with("but the source is reconnecting; waiting for it") >= 1,
    )
    .await;
    assert!(tail.stderr_lines_with("exiting") == 0, "{}", tail.stderr());
    proxy.set(Fault::Pass);
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (2, 'after')"))
        .await
        .expect("insert");
    let status = tail.exit(Duration::from_secs(60)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        tail.stderr()
    );
    let lines = json_lines(&std::fs::read(&out).expect("output"));
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["key"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2]);
    let last = lines[1]["position"].as_str().expect("position");
    let exiting = format!("idle for 5000 ms after 2 events; exiting; resume with `--from {last}`");
    assert!(
        tail.stderr().contains(&exiting),
        "no `{exiting}` in: {}",
        tail.stderr()
    );
    assert_eq!(
        tail.stderr_lines_with("reconnected; streaming again"),
        1,
        "the recovery is logged once: {}",
        tail.stderr()
    );
    let _ = std::fs::remove_file(&out);
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_gives_up_after_reconnect_for_naming_the_position_to_resume_from() {
    let (db, start) = setup(&Server::MySql.url(), "net_giveup").await;
    let (proxy, url) = proxy_to(Server::MySql).await;
    let out = out_path(&db, "giveup");
    let mut tail = Tail::start(
        &[
            &format!("{url}/{db}"),
            "--from",
            &start,
            "--reconnect-for",
            "2",
        ],
        out.clone(),
    );
    let mut c = conn(&Server::MySql.url()).await;
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 'only')"))
        .await
        .expect("insert");
    tail.wait_for_lines(1, Duration::from_secs(30)).await;
    // Before the fault: the source's window starts at its first failure, after it.
    let cut = std::time::Instant::now();
    proxy.set(Fault::Reset);
    let status = tail.exit(Duration::from_secs(30)).await;
    let stderr = tail.stderr();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(cut.elapsed() >= Duration::from_secs(2), "{stderr}");
    let printed = json_lines(&std::fs::read(&out).expect("output"));
    let resume = format!(
        "resume with `--from {}`",
        printed[0]["position"].as_str().expect("position")
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("ustream: error:"))
        .unwrap_or_default();
    assert!(
        error.contains("did not recover from") && error.contains(&resume),
        "no `{resume}` in the error: {stderr}"
    );
    let _ = std::fs::remove_file(&out);
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}
