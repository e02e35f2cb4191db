//! Measurement helpers for `cargo xtask bench`, run as their own processes so wall time and
//! peak RSS are theirs alone.
//!
//! - `stream-count count <url> <position> <rows>`: the library's `Stream` of `ChangeEvent`s,
//!   counting events (no output) until `rows` arrived; prints `rows seconds` on stdout.
//! - `stream-count latency <url> <rate> <seconds> <writers>`: writers commit one-row
//!   transactions at `rate` per second in total while a subscriber measures commit-to-delivery
//!   lag; prints a JSON line with the rate held and the lag percentiles.

/// Events are allocated on the reader thread and freed on the writer thread: mimalloc keeps
/// that cheap where glibc's allocator contends on its arena locks. Set up as `ustream`'s.
#[global_allocator]
static GLOBAL: stream_alloc::MiMalloc = stream_alloc::MiMalloc;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{CancellationToken, Source, SourceEvent, StartFrom, Value};
use stream_mysql::{MySqlConfig, MySqlSource};

fn main() -> Result<()> {
    stream_alloc::return_freed_memory_promptly();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["count", url, position, rows] => runtime.block_on(count(url, position, rows.parse()?)),
        ["latency", url, rate, seconds, writers] => runtime.block_on(latency(
            url,
            rate.parse()?,
            seconds.parse()?,
            writers.parse()?,
        )),
        _ => bail!(
            "usage: stream-count count <url> <position> <rows> | latency <url> <rate> <seconds> <writers>"
        ),
    }
}

async fn count(url: &str, position: &str, rows: u64) -> Result<()> {
    let config = MySqlConfig::from_url(url)?;
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let opened = MySqlSource::new(config)
        .open(StartFrom::Position(position.parse()?), shutdown.clone())
        .await?;
    let mut batches = opened.batches;
    let mut seen = 0u64;
    while seen < rows {
        let Some(batch) = batches.next().await else {
            bail!("the stream ended after {seen} of {rows} rows")
        };
        seen += batch?
            .events
            .iter()
            .filter(|e| matches!(e, SourceEvent::Change(_)))
            .count() as u64;
    }
    shutdown.cancel();
    println!("{seen} {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

async fn latency(url: &str, rate: u64, seconds: u64, writers: u64) -> Result<()> {
    let opts = mysql_async::Opts::from_url(url)?;
    let mut admin = mysql_async::Conn::new(opts.clone()).await?;
    admin
        .query_drop(
            "DROP DATABASE IF EXISTS lat; CREATE DATABASE lat; \
             CREATE TABLE lat.t (id BIGINT PRIMARY KEY, sent BIGINT NOT NULL)",
        )
        .await?;
    let mut config = MySqlConfig::from_url(url)?;
    config.filter = stream_core::NamespaceFilter::parse("lat.t", "")?;
    let shutdown = CancellationToken::new();
    let opened = MySqlSource::new(config)
        .open(StartFrom::Latest, shutdown.clone())
        .await?;
    let mut batches = opened.batches;
    let total = rate * seconds;
    let per_writer = total / writers.max(1);
    let interval = Duration::from_secs_f64(writers as f64 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = mysql_async::Conn::new(opts).await?;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..per_writer {
                tick.tick().await;
                // `sent` is the client clock just before the commit: lag includes the commit.
                c.query_drop(format!(
                    "INSERT INTO lat.t VALUES ({}, {})",
                    w * per_writer + i,
                    now_micros()
                ))
                .await?;
            }
            Ok::<_, mysql_async::Error>(())
        }));
    }
    let expected = per_writer * writers;
    let mut lags: Vec<i64> = Vec::with_capacity(expected as usize);
    while (lags.len() as u64) < expected {
        let batch = tokio::time::timeout(Duration::from_secs(30), batches.next())
            .await
            .context("no event for 30 s")?
            .context("stream ended")??;
        let received = now_micros();
        for ev in batch.events {
            if let SourceEvent::Change(c) = ev
                && let Some(Value::Int(sent)) = c.after.as_ref().and_then(|r| r.get("sent"))
            {
                lags.push(received - sent);
            }
        }
    }
    let writing = started.elapsed();
    for t in tasks {
        t.await??;
    }
    shutdown.cancel();
    lags.sort_unstable();
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    let achieved = expected as f64 / writing.as_secs_f64();
    println!(
        "{{\"target_rate\":{rate},\"achieved_rate\":{achieved:.0},\"commits\":{expected},\"p50_ms\":{:.3},\"p95_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    admin.query_drop("DROP DATABASE lat").await?;
    Ok(())
}
