//! `ustream run` killed with SIGKILL at random points of a MariaDB → PostgreSQL run and
//! restarted each time: at the end every target row equals its source row, and no reader of
//! the target ever saw part of a source transaction.
//!
//! Sizes: `STREAM_TEST_CRASH_KILLS` (3), `STREAM_TEST_CRASH_CHANGES` (20,000),
//! `STREAM_TEST_SEED` (the clock); `cargo xtask chaos` runs it with 10 kills of 200,000.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::*;
use stream_testkit::{Server, unique_name};

use super::support::{
    Running, drop_all, mariadb, mariadb_checksum, mariadb_url, postgres, postgres_checksum,
    wait_for, write_config,
};

const ACCOUNTS: u64 = 100;
const BALANCE: i64 = 1000;

fn param(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small seeded generator (xorshift), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Transfers between accounts (up to 31 statements in one transaction: the balances always
/// sum to the same total) and inserts, updates and deletes of items, until `target` row changes.
async fn write_workload(db: String, target: u64, seed: u64, written: Arc<AtomicU64>) {
    let mut my = mariadb().await;
    let mut rng = Rng(seed | 1);
    let mut next_item = 1_001;
    while written.load(Ordering::Relaxed) < target {
        let sql = match rng.below(4) {
            0 | 1 => {
                // One account takes `x` from each of up to 30 others, one statement (one
                // binlog rows event) per account: a source batch of 1,024 events often ends
                // between two statements of one transaction.
                let givers = 1 + rng.below(30);
                let taker = 1 + rng.below(ACCOUNTS);
                let x = 1 + rng.below(5);
                let mut sql = String::from("START TRANSACTION;");
                for i in 0..givers {
                    let giver = 1 + (taker + i) % ACCOUNTS;
                    sql.push_str(&format!(
                        "UPDATE `{db}`.accounts SET balance = balance - {x} WHERE id = {giver};"
                    ));
                }
                sql.push_str(&format!(
                    "UPDATE `{db}`.accounts SET balance = balance + {} WHERE id = {taker}; COMMIT",
                    x * givers
                ));
                sql
            }
            2 => {
                let n = 1 + rng.below(20);
                let values: Vec<String> = (0..n)
                    .map(|i| format!("({}, 'v{}', {})", next_item + i, rng.below(1000), i))
                    .collect();
                next_item += n;
                format!("INSERT INTO `{db}`.items VALUES {}", values.join(", "))
            }
            _ => {
                let at = 1 + rng.below(next_item);
                if rng.below(3) == 0 {
                    format!(
                        "DELETE FROM `{db}`.items WHERE id BETWEEN {at} AND {}",
                        at + 3
                    )
                } else {
                    format!(
                        "UPDATE `{db}`.items SET n = n + 1, v = 'u{}' WHERE id BETWEEN {at} AND {}",
                        rng.below(1000),
                        at + 10
                    )
                }
            }
        };
        let mut result = my.query_iter(sql).await.expect("workload");
        let mut changed = 0;
        loop {
            changed += result.affected_rows();
            if result.is_empty() {
                break;
            }
            let _: Vec<mysql_async::Row> = result.collect().await.expect("results");
        }
        written.fetch_add(changed.max(1), Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_survives_sigkill_at_random_points_with_every_row_equal_and_no_half_transaction()
 {
    let kills = param("STREAM_TEST_CRASH_KILLS", 3);
    let target = param("STREAM_TEST_CRASH_CHANGES", 20_000);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seed = param("STREAM_TEST_SEED", clock);
    eprintln!("crash test: {kills} kills, {target} changes, STREAM_TEST_SEED={seed}");

    let mut my = mariadb().await;
    let pg = Arc::new(postgres().await);
    let db = unique_name("pgcrash");
    my.query_drop(format!(
        "CREATE DATABASE `{db}`; USE `{db}`; \
         CREATE TABLE `{db}`.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL); \
         CREATE TABLE `{db}`.items (id INT PRIMARY KEY, v VARCHAR(20), n INT); \
         INSERT INTO `{db}`.accounts SELECT seq, {BALANCE} FROM seq_1_to_{ACCOUNTS}; \
         INSERT INTO `{db}`.items SELECT seq, CONCAT('i', seq), 0 FROM seq_1_to_1000"
    ))
    .await
    .expect("schema");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "sources:\n  {db}:\n    url: {}/\n    include: ['{db}.*']\n    from: snapshot\n\
             sinks:\n  replica:\n    url: '{}'\n    schema: {db}\ncheckpoints: postgres\n",
            mariadb_url(),
            Server::Postgres.url(),
        ),
    );

    // Samples the target's balances while the pipeline runs: once every account is there,
    // they must always sum to the total (a commit never holds half a transfer).
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pg, sampling) = (pg.clone(), sampling.clone());
        let sql =
            format!("SELECT count(*), coalesce(sum(balance), 0)::int8 FROM \"{db}\".accounts");
        tokio::spawn(async move {
            let (mut samples, mut torn) = (0u64, Vec::new());
            while sampling.load(Ordering::Relaxed) {
                if let Ok(row) = pg.query_one(&sql, &[]).await {
                    let (count, sum): (i64, i64) = (row.get(0), row.get(1));
                    if count == ACCOUNTS as i64 {
                        samples += 1;
                        if sum != ACCOUNTS as i64 * BALANCE {
                            torn.push(sum);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, torn)
        })
    };

    let written = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_workload(db.clone(), target, seed, written.clone()));
    let mut rng = Rng(seed.rotate_left(17) | 1);
    let mut points: Vec<u64> = (0..kills).map(|_| rng.below(target)).collect();
    points.sort_unstable();
    for point in points {
        let mut running = Running::start(&config);
        // Kill at a random point of the workload, and at a random moment after it.
        let reached = wait_for(Duration::from_secs(300), || async {
            (written.load(Ordering::Relaxed) >= point).then_some(())
        })
        .await;
        assert!(reached.is_some(), "the workload stalled before {point}");
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        running.kill();
        // Down for a while: the restart catches up on a backlog, read in full batches that
        // end inside transactions.
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1300))).await;
    }
    let mut running = Running::start(&config);
    writer.await.expect("writer");
    let accounts = mariadb_checksum(
        &mut my,
        &format!("`{db}`.accounts"),
        &["id", "balance"],
        "id",
    )
    .await;
    let items = mariadb_checksum(&mut my, &format!("`{db}`.items"), &["id", "v", "n"], "id").await;
    let caught_up = wait_for(Duration::from_secs(600), || async {
        let got = (
            postgres_checksum(
                &pg,
                &format!("\"{db}\".accounts"),
                &["id", "balance"],
                "id",
                false,
            )
            .await?,
            postgres_checksum(
                &pg,
                &format!("\"{db}\".items"),
                &["id", "v", "n"],
                "id",
                false,
            )
            .await?,
        );
        (got == (accounts.clone(), items.clone())).then_some(())
    })
    .await;
    sampling.store(false, Ordering::Relaxed);
    let (samples, torn) = sampler.await.expect("sampler");
    assert!(
        caught_up.is_some(),
        "the target never matched the source (seed {seed}); stderr: {:#?}",
        running.seen
    );
    // The target may match before the last run even started (the killed ones caught up):
    // a clean stop is asked of a running process, not of one still starting.
    running.line_starting("ustream: running", Duration::from_secs(120));
    let (status, stderr) = running.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}; stderr: {stderr}");
    eprintln!(
        "crash test: {samples} samples of the balances, {} torn",
        torn.len()
    );
    assert!(
        torn.is_empty(),
        "{} of {samples} samples saw half a transaction (seed {seed}): sums {:?}",
        torn.len(),
        &torn[..torn.len().min(10)]
    );
    assert!(samples > 0, "the balances were never sampled");

    drop_all(&mut my, &pg, &db, std::slice::from_ref(&db), &["replica"]).await;
}
