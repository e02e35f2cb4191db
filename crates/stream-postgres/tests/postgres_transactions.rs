//! Transactions: the checkpoint commits with the data (a batch killed mid-way changes nothing
//! and a retry applies it exactly once), and a source transaction lands in one target commit.

use mysql_async::prelude::*;
use stream_core::StartFrom;
use stream_postgres::PostgresSink;

use crate::support::*;

#[tokio::test]
async fn postgres_target_commit_holds_whole_source_transactions_only() {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgtxn").await;
    my.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"))
        .await
        .expect("create");
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    // 3,000 rows in one transaction: the source hands them over in batches of 1,024.
    my.query_drop(format!(
        "INSERT INTO `{db}`.t SELECT seq, seq FROM `{db}`.seq_1_to_3000"
    ))
    .await
    .expect("rows");
    let pg = pg().await;
    let mut sink = PostgresSink::new("txn", sink_config());
    let count_sql = format!("SELECT count(*) FROM \"{db}\".t");
    let mut seen = Vec::new();
    let applied = pump(&mut batches, &mut sink, async || {
        let n = pg
            .query_one(&count_sql, &[])
            .await
            .map_or(0, |r| r.get::<_, i64>(0));
        seen.push(n);
        n == 3000
    })
    .await;
    shutdown.cancel();
    assert!(
        seen.iter().all(|n| *n == 0 || *n == 3000),
        "a reader saw part of the transaction: {seen:?}"
    );
    assert!(
        applied.iter().any(|a| a.held > 0),
        "the source cut the transaction: {applied:?}"
    );
}
