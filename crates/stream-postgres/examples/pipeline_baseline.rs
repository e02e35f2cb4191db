//! The baseline of `cargo xtask bench pipeline`: the same binlog changes applied the plain
//! way, each with its own autocommitted `INSERT ... ON CONFLICT` or `DELETE`
//! ([`PostgresStore`]), into a copy of the target table.
//!
//! `cargo run --release -p stream-postgres --example pipeline_baseline -- MYSQL_URL POSITION
//! PG_URL SCHEMA CHANGES` prints `<changes> <seconds>`.

use futures::StreamExt as _;
use stream_core::{CancellationToken, Op, Source as _, SourceEvent, StartFrom, Store as _};
use stream_mysql::{MySqlConfig, MySqlSource};
use stream_postgres::PostgresStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mysql, position, pg, schema, changes] = args.as_slice() else {
        return Err("usage: pipeline_baseline MYSQL_URL POSITION PG_URL SCHEMA CHANGES".into());
    };
    let limit: u64 = changes.parse()?;
    let mut source = MySqlSource::new(MySqlConfig::from_url(mysql)?);
    let shutdown = CancellationToken::new();
    let from: StartFrom = position.parse()?;
    let mut batches = source.open(from, shutdown.clone()).await?.batches;
    let store = PostgresStore::new(pg.clone()).with_schema(schema.clone());
    let started = std::time::Instant::now();
    let mut applied = 0u64;
    'read: while let Some(batch) = batches.next().await {
        for event in batch?.events {
            let SourceEvent::Change(change) = event else {
                continue;
            };
            let Some(key) = &change.key else { continue };
            match (change.op, &change.after) {
                (Op::Delete, _) => {
                    store.delete(&change.namespace, key).await?;
                }
                (_, Some(row)) => store.write(&change.namespace, key, row).await?,
                (_, None) => continue,
            }
            applied += 1;
            if applied >= limit {
                break 'read;
            }
        }
    }
    shutdown.cancel();
    println!("{applied} {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
