//! A tour of the `Streamer`: every builder option, a stream, a callback that keeps state, a
//! batch callback, reads and writes through the cache, a pushed event, health and metrics.
//! Expects tables `shop.users (id INT PRIMARY KEY, name VARCHAR(50))` and
//! `shop.orders (id INT PRIMARY KEY, status VARCHAR(20))`.
//!
//! cargo run -p ultimate-stream --example tour --features full -- mysql://app:secret@127.0.0.1:3306/shop

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use ultimate_stream::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mysql://app:secret@127.0.0.1:3306/shop".to_owned());
    let streamer = Streamer::builder()
        .mysql(&url) // or .mongo(uri); several sources allowed
        .checkpoints(FileCheckpointStore::new("state/"))
        .cache(CacheConfig::default()) // in process; a Redis tier with feature `redis`
        .heartbeat(HeartbeatConfig::default())
        .retry_policy(RetryPolicy::default()) // transient=retry:5, definite=dead-letter
        .dead_letters(FileDeadLetterQueue::new("state/dead-letters.jsonl"))
        .in_flight_batches(64) // batches handed over before the oldest is acknowledged
        .dedup_window(100_000, Duration::from_secs(600)) // for `push` ids
        // Callbacks on the builder get every change at least once, across restarts too.
        .on_batch(
            "shop.*",
            BatchConfig::max(500).within(Duration::from_millis(50)),
            |batch| async move {
                println!("a batch of {} changes", batch.len());
                Ok(())
            },
        )
        .start()
        .await?; // opens every source: a bad URL or a missing database fails here

    // A stream of one table's changes (backpressure: the source waits for a full stream).
    let mut orders = streamer.subscribe("shop.orders")?;

    // A callback that keeps state: an Arc cloned into the closure, and again into each call.
    // Registered after the start, it gets the changes read from now on.
    let order_changes = Arc::new(AtomicU64::new(0));
    let counter = order_changes.clone();
    let counting = streamer.on("shop.orders", move |event| {
        let counter = counter.clone();
        async move {
            let seen = counter.fetch_add(1, Ordering::Relaxed) + 1;
            println!("order change #{seen}: {:?} at {}", event.op, event.position);
            Ok(()) // an Err is retried, then dead-lettered (HandlerError::definite: at once)
        }
    })?;

    // Reads and writes go to the source's database, through the cache.
    let key: Row = [("id", Value::Int(7))].into_iter().collect();
    let order: Row = [("id", Value::Int(7)), ("status", Value::from("paid"))]
        .into_iter()
        .collect();
    streamer.write("shop.orders", &key, &order).await?;
    let read_back = streamer.read("shop.orders", &key).await?; // sees the write at once
    println!("read back: {read_back:?}");
    let paid = Query::filter(Filter::Eq("status".into(), Value::from("paid"))).limit(10);
    println!(
        "{} paid orders",
        streamer.query("shop.orders", &paid).await?.len()
    );

    // The write comes back through the binlog, as every change does.
    if let Some(Delivery::Event(event)) = orders.next().await {
        println!("{}", event.to_json());
    }

    // Application events go through the same hub and callbacks; a repeated id is dropped.
    let notice: Row = [("text", Value::from("order 7 paid"))]
        .into_iter()
        .collect();
    assert!(
        streamer
            .push("app.notifications", "evt-1", notice.clone())
            .await?
    );
    assert!(!streamer.push("app.notifications", "evt-1", notice).await?);

    streamer.off(counting);
    for (source, health) in streamer.health() {
        println!("{source}: {health}");
    }
    let metrics = streamer.metrics();
    println!(
        "{} events, delivery p99 {:?}",
        metrics.events_received, metrics.delivery.2
    );
    for letter in streamer.dead_letters().list().await? {
        println!("dead letter: {}", letter.reason);
    }
    streamer.stop().await?; // everything acknowledged is checkpointed
    println!(
        "order changes seen: {}",
        order_changes.load(Ordering::Relaxed)
    );
    Ok(())
}
