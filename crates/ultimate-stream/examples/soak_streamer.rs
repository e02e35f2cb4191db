//! The two processes of `cargo xtask soak` (docs/soak.md), one binary:
//!
//! - `soak_streamer write URL --rate R --seconds N [--writers W] [--keys K]`: W connections
//!   commit R single-row transactions per second in total (paced in 10 ms steps) over a key
//!   space of K ids, each writer on its own ids: an insert where the id is absent, else an
//!   update (70%) or a delete (30%), so the table stays near 77% of K rows. Each row carries
//!   its writer, the writer's sequence number and the writer's wall clock in µs just before
//!   the statement (`ts_us`). Prints one JSON line a second and a last one with `"done"`.
//! - `soak_streamer stream URL STATE_DIR [--subscribers S] [--reads R] [--keys K]`: a
//!   `Streamer` on table `soak.items` with the cache on, a file checkpoint store in STATE_DIR,
//!   S subscriptions that each rebuild the table from the events and check every change
//!   against it (an insert of an absent id, an update or delete whose before-image is the
//!   row they hold, sequence numbers rising per writer, positions strictly rising), and R
//!   cached reads a second. Prints `{"ready":true}`, then one JSON line a second: events
//!   per subscriber, errors, the lag histogram of that second (commit to delivery: now minus
//!   `ts_us`, inserts and updates; a delete's row is the old one), cache and streamer
//!   metrics. A line `expect N` on stdin ends it: once every subscriber has N events it
//!   compares each one's table with the server's and prints a line with `"final"`.
//!
//! `URL` names the database: `mysql://user:pass@127.0.0.1:3306/soak`.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use mysql_async::prelude::*;
use serde_json::json;
use ultimate_stream::prelude::*;

type Error = Box<dyn std::error::Error + Send + Sync>;

const TABLE: &str = "soak.items";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("write") => write(&args[1..]).await,
        Some("stream") => stream(&args[1..]).await,
        _ => Err(
            "usage: soak_streamer write URL --rate R --seconds N [--writers W] [--keys K] \
                  | stream URL STATE_DIR [--subscribers S] [--reads R] [--keys K]"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("soak_streamer: {e}");
        std::process::exit(1);
    }
}

/// The value of `--name N` in `args`, or `default`.
fn flag(args: &[String], name: &str, default: u64) -> Result<u64, Error> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            Ok(v.parse()
                .map_err(|_| format!("{name}: `{v}` is not a number"))?)
        }
        None => Ok(default),
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// xorshift64*: enough randomness for picking ids, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// The writer.

#[derive(Default)]
struct WriterCounts {
    inserts: u64,
    updates: u64,
    deletes: u64,
}

async fn write(args: &[String]) -> Result<(), Error> {
    let url = args.first().ok_or("write: URL missing")?.clone();
    let rate = flag(args, "--rate", 5_000)?.max(1);
    let seconds = flag(args, "--seconds", 60)?;
    let writers = flag(args, "--writers", 4)?.clamp(1, 64);
    let keys = flag(args, "--keys", 20_000)?.max(writers);
    let pool = mysql_async::Pool::new(url.as_str());
    let counts: Arc<Vec<Mutex<WriterCounts>>> = Arc::new(
        (0..writers)
            .map(|_| Mutex::new(WriterCounts::default()))
            .collect(),
    );
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let conn = pool.get_conn().await?;
        let counts = counts.clone();
        let per_second = rate as f64 / writers as f64;
        tasks.push(tokio::spawn(writer(
            conn, w, writers, keys, per_second, started, end, counts,
        )));
    }
    let total = |counts: &[Mutex<WriterCounts>]| {
        counts.iter().fold((0, 0, 0), |acc, c| {
            let c = c.lock().unwrap_or_else(|p| p.into_inner());
            (acc.0 + c.inserts, acc.1 + c.updates, acc.2 + c.deletes)
        })
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while Instant::now() < end {
        tick.tick().await;
        if tasks.iter().any(tokio::task::JoinHandle::is_finished) {
            break;
        }
        let (i, u, d) = total(&counts);
        println!(
            "{}",
            json!({"t": started.elapsed().as_secs_f64(), "commits": i + u + d})
        );
    }
    for task in tasks {
        task.await??;
    }
    let (i, u, d) = total(&counts);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"done": true, "t": secs, "commits": i + u + d, "inserts": i, "updates": u,
               "deletes": d, "rate": (i + u + d) as f64 / secs})
    );
    pool.disconnect().await?;
    Ok(())
}

/// One writer connection: ids `w, w + writers, ...` below `keys`, `per_second` commits a
/// second until `end`. Falling behind, it runs flat out to catch up on at most 1 s of debt.
#[allow(clippy::too_many_arguments)]
async fn writer(
    mut conn: mysql_async::Conn,
    w: u64,
    writers: u64,
    keys: u64,
    per_second: f64,
    started: Instant,
    end: Instant,
    counts: Arc<Vec<Mutex<WriterCounts>>>,
) -> Result<(), Error> {
    let ids = keys / writers;
    let mut present = vec![false; usize::try_from(ids)?];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1));
    let mut seq: i64 = 0;
    let mut done: f64 = 0.0;
    let w_val = i64::try_from(w)?;
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        let due = (now - started).as_secs_f64() * per_second;
        if done >= due {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        done = done.max(due - per_second); // forget debt beyond one second
        done += 1.0;
        let slot = rng.below(ids);
        let id = i64::try_from(slot * writers + w)?;
        let slot = usize::try_from(slot)?;
        seq += 1;
        let payload = format!("writer {w} seq {seq}");
        let kind = if !present[slot] {
            0
        } else if rng.below(10) < 7 {
            1
        } else {
            2
        };
        match kind {
            0 => {
                conn.exec_drop(
                    "INSERT INTO soak.items (id, writer, seq, ts_us, payload) VALUES (?, ?, ?, ?, ?)",
                    (id, w_val, seq, now_us(), payload),
                )
                .await?
            }
            1 => {
                conn.exec_drop(
                    "UPDATE soak.items SET seq = ?, ts_us = ?, payload = ? WHERE id = ?",
                    (seq, now_us(), payload, id),
                )
                .await?
            }
            _ => {
                conn.exec_drop("DELETE FROM soak.items WHERE id = ?", (id,))
                    .await?
            }
        }
        if conn.affected_rows() != 1 {
            return Err(format!(
                "writer {w}: statement {kind} on id {id} changed {} rows",
                conn.affected_rows()
            )
            .into());
        }
        present[slot] = kind != 2;
        let mut c = counts[usize::try_from(w)?]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match kind {
            0 => c.inserts += 1,
            1 => c.updates += 1,
            _ => c.deletes += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The streamer.

/// Lag histogram: exact below 16 µs, then 16 buckets per power of two (≤ 6.25% wide).
const SUB_BUCKETS: u64 = 16;
const BUCKETS: usize = 16 + 60 * 16;

fn bucket_of(us: u64) -> usize {
    if us < SUB_BUCKETS {
        return us as usize;
    }
    let exp = 63 - u64::from(us.leading_zeros()); // ≥ 4
    let sub = (us >> (exp - 4)) - SUB_BUCKETS;
    (16 + (exp - 4) * SUB_BUCKETS + sub) as usize
}

/// The largest value of bucket `i`, in µs.
fn bucket_upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB_BUCKETS {
        return i;
    }
    let exp = (i - 16) / SUB_BUCKETS + 4;
    let sub = (i - 16) % SUB_BUCKETS;
    ((SUB_BUCKETS + sub + 1) << (exp - 4)) - 1
}

/// What a subscriber shares with the reporting task.
struct SubStats {
    events: u64,
    lag: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    /// Rows, sum of `seq`, sum of `id * seq` of the table as this subscriber rebuilt it.
    digest: (i128, i128, i128),
}

impl SubStats {
    fn fail(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

type Shared = Arc<Vec<Mutex<SubStats>>>;

fn int(row: Option<&Row>, column: &str) -> Option<i64> {
    match row?.get(column)? {
        Value::Int(v) => Some(*v),
        Value::UInt(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// Reads one subscription to its end, checking each event against the table it rebuilt.
async fn subscriber(mut subscription: Subscription, me: usize, shared: Shared) {
    let mut table: HashMap<i64, i64> = HashMap::new();
    let mut last_seq: HashMap<i64, i64> = HashMap::new();
    let mut last_position: Option<stream_core::Position> = None;
    while let Some(delivery) = subscription.next().await {
        let received = now_us();
        let mut stats = shared[me].lock().unwrap_or_else(|p| p.into_inner());
        let event = match delivery {
            Delivery::Event(event) => event,
            Delivery::Lagged(n) => {
                stats.fail(format!("subscriber {me}: {n} events skipped (lagged)"));
                continue;
            }
        };
        stats.events += 1;
        if let Some(last) = &last_position
            && event.position.compare(last) != Some(std::cmp::Ordering::Greater)
        {
            stats.fail(format!(
                "subscriber {me}: position {} after {last}",
                event.position
            ));
        }
        last_position = Some(event.position.clone());
        let before = event.before.as_ref();
        let after = event.after.as_ref();
        let id = int(after.or(before), "id");
        let (Some(id), Some(writer)) = (id, int(after.or(before), "writer")) else {
            stats.fail(format!(
                "subscriber {me}: event without id/writer at {}",
                event.position
            ));
            continue;
        };
        let held = table.get(&id).copied();
        let before_seq = int(before, "seq");
        let after_seq = int(after, "seq");
        match event.op {
            Op::Insert if held.is_some() => stats.fail(format!(
                "subscriber {me}: insert of id {id}, held already, at {}",
                event.position
            )),
            Op::Update | Op::Delete if held.is_none() || held != before_seq => {
                stats.fail(format!(
                    "subscriber {me}: {:?} of id {id} with seq {before_seq:?} before, held {held:?}, at {}",
                    event.op, event.position
                ));
            }
            _ => {}
        }
        if let Some(old) = held {
            table.remove(&id);
            let (n, s, x) = &mut stats.digest;
            *n -= 1;
            *s -= i128::from(old);
            *x -= i128::from(id) * i128::from(old);
        }
        if let Some(seq) = after_seq {
            let last = last_seq.entry(writer).or_insert(0);
            if seq <= *last {
                stats.fail(format!(
                    "subscriber {me}: writer {writer} seq {seq} after {last} at {}",
                    event.position
                ));
            }
            *last = seq;
            table.insert(id, seq);
            let (n, s, x) = &mut stats.digest;
            *n += 1;
            *s += i128::from(seq);
            *x += i128::from(id) * i128::from(seq);
            if let Some(ts) = int(after, "ts_us") {
                let lag = u64::try_from(received.saturating_sub(ts)).unwrap_or(0);
                stats.lag[bucket_of(lag).min(BUCKETS - 1)] += 1;
            }
        }
    }
}

/// Reads `per_second` random ids a second through the streamer's cache.
async fn reader(streamer: Streamer, per_second: u64, keys: u64, reads: Arc<Mutex<(u64, u64)>>) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = per_second.div_ceil(100);
    loop {
        tick.tick().await;
        for _ in 0..per_tick {
            let id = i64::try_from(rng.below(keys)).unwrap_or(0);
            let key: Row = [("id", Value::Int(id))].into_iter().collect();
            let ok = streamer.read(TABLE, &key).await.is_ok();
            let mut r = reads.lock().unwrap_or_else(|p| p.into_inner());
            if ok { r.0 += 1 } else { r.1 += 1 }
        }
    }
}

async fn stream(args: &[String]) -> Result<(), Error> {
    let url = args.first().ok_or("stream: URL missing")?.clone();
    let state = args.get(1).ok_or("stream: STATE_DIR missing")?.clone();
    let subscribers = usize::try_from(flag(args, "--subscribers", 10)?.max(1))?;
    let reads_per_second = flag(args, "--reads", 200)?;
    let keys = flag(args, "--keys", 20_000)?;
    // `SOAK_CHECKPOINTS=memory`: the same run without the file store's fsyncs, to tell their
    // share of the lag.
    let builder = Streamer::builder().mysql(&url);
    let builder = if std::env::var("SOAK_CHECKPOINTS").is_ok_and(|v| v == "memory") {
        builder.checkpoints(MemoryCheckpointStore::new())
    } else {
        builder.checkpoints(FileCheckpointStore::new(&state))
    };
    let streamer = builder.cache(CacheConfig::default()).start().await?;
    let shared: Shared = Arc::new(
        (0..subscribers)
            .map(|_| {
                Mutex::new(SubStats {
                    events: 0,
                    lag: vec![0; BUCKETS],
                    errors: 0,
                    first_error: None,
                    digest: (0, 0, 0),
                })
            })
            .collect(),
    );
    let mut tasks = Vec::new();
    for me in 0..subscribers {
        let subscription = streamer.subscribe(TABLE)?;
        tasks.push(tokio::spawn(subscriber(subscription, me, shared.clone())));
    }
    let reads = Arc::new(Mutex::new((0u64, 0u64)));
    let reading = tokio::spawn(reader(
        streamer.clone(),
        reads_per_second,
        keys,
        reads.clone(),
    ));
    // `expect N` on stdin, from a thread: tokio's stdin is not among this crate's features.
    let (expect_tx, mut expect_rx) = tokio::sync::mpsc::channel::<u64>(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if let Some(n) = line
                .strip_prefix("expect ")
                .and_then(|n| n.trim().parse().ok())
            {
                let _ = expect_tx.blocking_send(n);
            }
        }
    });
    println!("{}", json!({"ready": true}));
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut expected: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(n) = expect_rx.recv() => expected = Some((n, Instant::now())),
        }
        let line = stats_line(&streamer, &shared, &reads, started);
        println!("{line}");
        if let Some((n, since)) = expected {
            let min = line["events_min"].as_u64().unwrap_or(0);
            if min >= n || since.elapsed() > Duration::from_secs(300) {
                break;
            }
        }
    }
    let Some((expected, _)) = expected else {
        return Err("the stats loop ended without an expected count".into());
    };
    reading.abort();
    let verdict = verify(&url, &shared, expected).await;
    streamer.stop().await?;
    for task in tasks {
        task.await?;
    }
    println!("{verdict}");
    Ok(())
}

fn stats_line(
    streamer: &Streamer,
    shared: &Shared,
    reads: &Mutex<(u64, u64)>,
    started: Instant,
) -> serde_json::Value {
    let mut lag = vec![0u64; BUCKETS];
    let (mut min, mut max, mut errors, mut first_error) = (u64::MAX, 0, 0, None);
    for s in shared.iter() {
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        for (total, n) in lag.iter_mut().zip(s.lag.iter_mut()) {
            *total += std::mem::take(n);
        }
        min = min.min(s.events);
        max = max.max(s.events);
        errors += s.errors;
        if first_error.is_none() {
            first_error.clone_from(&s.first_error);
        }
    }
    let lag: serde_json::Map<String, serde_json::Value> = lag
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (bucket_upper(i).to_string(), json!(n)))
        .collect();
    let metrics = streamer.metrics();
    let cache = metrics.cache.unwrap_or_default();
    let (reads_ok, read_errors) = *reads.lock().unwrap_or_else(|p| p.into_inner());
    json!({
        "t": started.elapsed().as_secs_f64(),
        "events_min": min,
        "events_max": max,
        "errors": errors,
        "first_error": first_error,
        "lag_us": lag,
        "received": metrics.events_received,
        "delivery_p99_us": u64::try_from(metrics.delivery.2.as_micros()).unwrap_or(u64::MAX),
        "waiting_on_subscribers": metrics.waiting_on_subscribers,
        "cache_entries": cache.entries,
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "cache_evictions": cache.evictions,
        "cache_invalidations": cache.invalidations,
        "reads": reads_ok,
        "read_errors": read_errors,
    })
}

/// Compares each subscriber's count with `expected` and its rebuilt table with the server's.
async fn verify(url: &str, shared: &Shared, expected: u64) -> serde_json::Value {
    let server = match server_digest(url).await {
        Ok(d) => d,
        Err(e) => {
            return json!({"final": true, "ok": false, "errors": [format!("reading the table: {e}")]});
        }
    };
    let mut problems = Vec::new();
    let mut counts = Vec::new();
    for (i, s) in shared.iter().enumerate() {
        let s = s.lock().unwrap_or_else(|p| p.into_inner());
        counts.push(s.events);
        if s.events != expected {
            problems.push(format!(
                "subscriber {i}: {} events, the writer committed {expected}",
                s.events
            ));
        }
        if s.digest != server {
            problems.push(format!(
                "subscriber {i}: rebuilt table (rows, Σseq, Σid·seq) {:?}, the server's {server:?}",
                s.digest
            ));
        }
        if let Some(e) = &s.first_error {
            problems.push(format!("{e} ({} errors in all)", s.errors));
        }
    }
    json!({"final": true, "ok": problems.is_empty(), "errors": problems, "counts": counts,
           "rows": server.0.to_string()})
}

async fn server_digest(url: &str) -> Result<(i128, i128, i128), Error> {
    let mut conn = mysql_async::Conn::from_url(url).await?;
    let row: Option<(String, String, String)> = conn
        .query_first(
            "SELECT COUNT(*), COALESCE(SUM(seq), 0), COALESCE(SUM(CAST(id AS DECIMAL(40)) * seq), 0) FROM soak.items",
        )
        .await?;
    conn.disconnect().await?;
    let (n, s, x) = row.ok_or("no result")?;
    Ok((n.parse()?, s.parse()?, x.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_buckets_hold_their_values() {
        for us in [
            0,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1_000,
            65_535,
            1_000_000,
            1 << 40,
        ] {
            let b = bucket_of(us);
            assert!(bucket_upper(b) >= us, "{us} in bucket {b}");
            assert!(b == 0 || bucket_upper(b - 1) < us, "{us} in bucket {b}");
        }
    }
}
