//! Applied changes per second: the sink's batches (binary COPY into staging + one merge per
//! table, one transaction per batch) against one autocommitted `INSERT ... ON CONFLICT` per
//! change, in the same run against the same server.
//!
//! ```text
//! STREAM_TEST_PG_URL=postgres://... cargo run --release -p stream-postgres --example postgres_merge_bench -- [changes] [batch] [baseline changes]
//! ```
//! Defaults: 100,000 upserts in batches of 5,000; the baseline runs 10,000 changes (one commit
//! each is slow; its rate does not depend on the count).

use std::sync::Arc;
use std::time::Instant;

use stream_core::{ChangeEvent, Decimal, Namespace, Op, Position, Row, Sink, SourceKind, Value};
use stream_postgres::{PostgresSink, PostgresSinkConfig};

fn event(db: &str, id: i64, round: i64) -> Arc<ChangeEvent> {
    let names: [&str; 5] = ["id", "name", "qty", "price", "note"];
    let row: Row = names
        .into_iter()
        .zip([
            Value::Int(id),
            Value::String(format!("customer {id}")),
            Value::Int(id % 1000 + round),
            Value::Decimal(Decimal::from_plain_unchecked(format!(
                "{}.{:02}",
                id % 10_000,
                id % 100
            ))),
            Value::String("a note of some length to make the row realistic".into()),
        ])
        .collect();
    Arc::new(ChangeEvent {
        source: SourceKind::App,
        namespace: Namespace::new(db, "orders"),
        op: Op::Insert,
        key: Some([("id", Value::Int(id))].into_iter().collect()),
        before: None,
        after: Some(row),
        update: None,
        position: Position::App {
            at_ms: 0,
            seq: id as u64,
        },
        ts_ms: 0,
        txn: None,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("STREAM_TEST_PG_URL")
        .map_err(|_| "set STREAM_TEST_PG_URL to a PostgreSQL URL (a scratch database)")?;
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let changes = args.next().transpose()?.unwrap_or(100_000);
    let batch = args.next().transpose()?.unwrap_or(5_000).max(1);
    let baseline_changes = args.next().transpose()?.unwrap_or(10_000);
    let db = format!("bench_{}", std::process::id());

    let events: Vec<Arc<ChangeEvent>> = (0..changes as i64).map(|id| event(&db, id, 0)).collect();
    let mut sink = PostgresSink::new("bench", PostgresSinkConfig::new(url.clone()));
    // Create the table outside the timing.
    sink.write(&events[..1]).await?;
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        sink.write(chunk).await?;
    }
    let merged = changes as f64 / started.elapsed().as_secs_f64();
    // Updates of existing rows, the other half of an upsert workload.
    let updates: Vec<Arc<ChangeEvent>> = (0..changes as i64).map(|id| event(&db, id, 1)).collect();
    let started = Instant::now();
    for chunk in updates.chunks(batch) {
        sink.write(chunk).await?;
    }
    let merged_updates = changes as f64 / started.elapsed().as_secs_f64();

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{db}\".baseline (id bigint PRIMARY KEY, name text, qty bigint, price numeric, note text, \
             _position text NOT NULL, _synced_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await?;
    let statement = client
        .prepare(&format!(
            "INSERT INTO \"{db}\".baseline (id, name, qty, price, note, _position, _synced_at) \
             VALUES ($1, $2, $3, $4::text::numeric, $5, $6, now()) ON CONFLICT (id) DO UPDATE SET \
             name = EXCLUDED.name, qty = EXCLUDED.qty, price = EXCLUDED.price, note = EXCLUDED.note, \
             _position = EXCLUDED._position, _synced_at = EXCLUDED._synced_at"
        ))
        .await?;
    let started = Instant::now();
    for e in events.iter().take(baseline_changes) {
        let Some(row) = &e.after else { continue };
        let text = |name: &str| match row.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Decimal(d)) => d.as_str().to_owned(),
            _ => String::new(),
        };
        let int = |name: &str| match row.get(name) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        };
        client
            .execute(
                &statement,
                &[
                    &int("id"),
                    &text("name"),
                    &int("qty"),
                    &text("price"),
                    &text("note"),
                    &e.position.to_string(),
                ],
            )
            .await?;
    }
    let baseline = baseline_changes as f64 / started.elapsed().as_secs_f64();
    client
        .batch_execute(&format!("DROP SCHEMA \"{db}\" CASCADE"))
        .await?;

    println!("changes: {changes}, batch: {batch}, baseline changes: {baseline_changes}");
    println!("COPY + merge, new rows:      {merged:>10.0} changes/s");
    println!("COPY + merge, updated rows:  {merged_updates:>10.0} changes/s");
    println!("autocommit INSERT ON CONFLICT: {baseline:>8.0} changes/s");
    println!("ratio (new rows / baseline):  {:>9.1}x", merged / baseline);
    Ok(())
}
