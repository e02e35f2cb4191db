//! `cargo xtask soak`: a `Streamer` with the cache and S subscribers under a steady write load
//! for N minutes (docs/soak.md). A MariaDB of its own; two processes of the release example
//! `soak_streamer` (crates/ultimate-stream/examples): the writer, committing R single-row
//! transactions a second, and the streamer, whose subscribers check every change, order
//! included, and print a stats line a second. The streamer's RSS, open fds and threads are
//! sampled every 5 s from /proc. Prints a report with a table per minute, saves it as
//! target/xtask/soak.md (the samples as soak-samples.csv) and fails on a lost or reordered
//! change, a stall, fd growth, or an RSS slope over the second half above the threshold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use stream_testkit::mariadb::MariaDb;

mod proc;

use proc::{Sample, fd_floors, fd_kinds, load, sample};

use crate::servers::unique_temp_dir;
use crate::util::{run_checked, state_dir, workspace_root};

const USAGE: &str = "usage: cargo xtask soak [--minutes N] [--rate R] [--subscribers S]";

/// RSS growth over the second half that still counts as flat, in MB per minute. One leaked
/// byte per change at 5,000 changes/s is 0.29 MB/min; anything a program can leak per change
/// (a pointer, a `Vec` slot, a histogram sample) is 8 bytes or more, 2.3 MB/min and more.
/// Allocator noise on a steady run stays well under this (docs/soak.md).
const RSS_SLOPE_LIMIT_MB_PER_MIN: f64 = 1.0;
/// Writer connections (each on its own ids).
const WRITERS: u64 = 4;
/// The key space: twice the cache's default 10,000 rows, so it evicts as well as invalidates.
const KEYS: u64 = 20_000;
/// Cached reads a second through the streamer, so the cache holds rows to invalidate.
const READS_PER_SECOND: u64 = 200;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The streamer opens its connections and threads in the first seconds of load.
const WARM_UP: Duration = Duration::from_secs(30);
/// Open fds are compared between the first and the last this many minutes (see `fd_floors`).
const FD_WINDOW_MINUTES: f64 = 5.0;
/// No delivery for this long while changes are pending is a stall.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Args {
    minutes: u64,
    rate: u64,
    subscribers: u64,
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        minutes: 30,
        rate: 5_000,
        subscribers: 10,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = |name: &str| crate::util::flag_number(&mut it, name, USAGE);
        match *arg {
            "--minutes" => a.minutes = num("--minutes")?.max(1),
            "--rate" => a.rate = num("--rate")?.max(1),
            "--subscribers" => a.subscribers = num("--subscribers")?.max(1),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(a)
}

/// One line of a child's stdout, as JSON, with when it arrived.
struct Line {
    from: &'static str,
    at: Instant,
    json: Value,
}

/// A child process whose JSON lines go to a channel; killed if still running when dropped.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    name: &'static str,
}

impl Proc {
    fn spawn(
        name: &'static str,
        cmd: &mut Command,
        log: &Path,
        tx: mpsc::Sender<Line>,
    ) -> Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str(&line) {
                    let _ = tx.send(Line {
                        from: name,
                        at: Instant::now(),
                        json,
                    });
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Self { child, stdin, name })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ended(&mut self, log: &Path) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the {} ended ({status}): {}",
                self.name,
                crate::util::tail(log, 15)
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Everything one run collected.
#[derive(Default)]
struct Series {
    /// (minute, commits so far).
    writer: Vec<(f64, u64)>,
    /// (minute, stats line of the streamer).
    stream: Vec<(f64, Value)>,
    samples: Vec<Sample>,
    writer_done: Option<Value>,
    verdict: Option<Value>,
    /// The longest time (s) no subscriber made progress while changes were pending.
    longest_stall_s: f64,
    /// What the fds pointed at after the warm-up and at the last sample.
    fds_after_warm_up: Option<BTreeMap<String, usize>>,
    fds_at_end: BTreeMap<String, usize>,
    /// Minutes when the ordering checks first reported an error.
    first_error: Option<(f64, String)>,
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask soak: building the release example soak_streamer...");
    run_checked(
        Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "ultimate-stream",
                "--features",
                "streamer,mysql,cache",
                "--example",
                "soak_streamer",
            ])
            .current_dir(&root),
        "cargo build --release --example soak_streamer",
    )?;
    let bin = state_dir()
        .parent()
        .map(|t| t.join("release").join("examples").join("soak_streamer"))
        .context("target dir")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));

    let dir = unique_temp_dir("soak");
    std::fs::create_dir_all(&dir)?;
    let started_at = utc_now();
    let load_before = load();
    let result = soak(&a, &bin, &dir, &stop);
    let load_after = load();
    let report = result.map(|series| report(&a, &series, &started_at, load_before, load_after));
    let _ = std::fs::remove_dir_all(&dir);
    let (text, failures, csv) = report?;
    print!("{text}");
    std::fs::create_dir_all(state_dir())?;
    std::fs::write(state_dir().join("soak.md"), &text)?;
    std::fs::write(state_dir().join("soak-samples.csv"), csv)?;
    eprintln!(
        "xtask soak: report saved as {}",
        state_dir().join("soak.md").display()
    );
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join("; "));
    }
    Ok(())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn soak(a: &Args, bin: &Path, dir: &Path, stop: &AtomicBool) -> Result<Series> {
    eprintln!("xtask soak: starting MariaDB...");
    // Rotate the binlog at 64 MB and drop files older than 10 minutes: 30 minutes at 5,000
    // commits/s write about 2 GB of binlog.
    let server = MariaDb::start(
        &dir.join("mariadb"),
        &["--max-binlog-size=64M", "--binlog-expire-logs-seconds=600"],
    )
    .map_err(anyhow::Error::msg)?;
    server
        .sql(
            "CREATE DATABASE soak; CREATE TABLE soak.items (id INT PRIMARY KEY, writer INT NOT NULL, \
             seq BIGINT NOT NULL, ts_us BIGINT NOT NULL, payload VARCHAR(64) NOT NULL)",
        )
        .map_err(anyhow::Error::msg)?;
    let url = format!("{}/soak", server.url());
    let (tx, rx) = mpsc::channel();
    let stream_log = dir.join("streamer.log");
    let writer_log = dir.join("writer.log");
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    let mut streamer = Proc::spawn(
        "streamer",
        Command::new(bin)
            .arg("stream")
            .arg(&url)
            .arg(&state)
            .args(["--subscribers", &a.subscribers.to_string()])
            .args(["--reads", &READS_PER_SECOND.to_string()])
            .args(["--keys", &KEYS.to_string()])
            .env("RUST_LOG", "warn"),
        &stream_log,
        tx.clone(),
    )?;
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        streamer.ended(&stream_log)?;
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.json["ready"] == true => break,
            _ if Instant::now() > ready_by => bail!("the streamer did not start within 60 s"),
            _ => {}
        }
    }
    eprintln!(
        "xtask soak: {} minutes at {} commits/s, {} subscribers (streamer pid {})...",
        a.minutes,
        a.rate,
        a.subscribers,
        streamer.pid()
    );
    let mut writer = Proc::spawn(
        "writer",
        Command::new(bin)
            .arg("write")
            .arg(&url)
            .args(["--rate", &a.rate.to_string()])
            .args(["--seconds", &(a.minutes * 60).to_string()])
            .args(["--writers", &WRITERS.to_string()])
            .args(["--keys", &KEYS.to_string()]),
        &writer_log,
        tx,
    )?;
    let t0 = Instant::now();
    let minute = |at: Instant| at.saturating_duration_since(t0).as_secs_f64() / 60.0;
    let mut series = Series::default();
    let mut next_sample = t0;
    let mut next_progress = t0 + Duration::from_secs(60);
    let mut last_delivered = (0u64, Instant::now());
    let mut final_by: Option<Instant> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= next_sample && series.verdict.is_none() && final_by.is_none() {
            if let Some(s) = sample(streamer.pid(), minute(now)) {
                series.samples.push(s);
                let kinds = fd_kinds(streamer.pid());
                if series.fds_after_warm_up.is_none() && now >= t0 + WARM_UP {
                    series.fds_after_warm_up = Some(kinds.clone());
                }
                series.fds_at_end = kinds;
            }
            next_sample += SAMPLE_EVERY;
        }
        if now >= next_progress {
            progress(&series);
            next_progress += Duration::from_secs(60);
        }
        if series.verdict.is_some() {
            break;
        }
        if series.writer_done.is_none() {
            // Ended well, its last line is still on its way.
            if let Some(status) = writer.child.try_wait()?
                && !status.success()
            {
                bail!(
                    "the writer failed ({status}): {}",
                    crate::util::tail(&writer_log, 15)
                );
            }
        }
        streamer.ended(&stream_log)?;
        if final_by.is_some_and(|by| now > by) {
            bail!("the streamer gave no final verdict within 6 minutes after the writer finished");
        }
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let m = minute(line.at);
        match line.from {
            "writer" if line.json["done"] == true => {
                let commits = line.json["commits"].as_u64().unwrap_or(0);
                series.writer.push((m, commits));
                series.writer_done = Some(line.json);
                let stdin = streamer.stdin.as_mut().context("the streamer's stdin")?;
                writeln!(stdin, "expect {commits}")?;
                stdin.flush()?;
                final_by = Some(Instant::now() + Duration::from_secs(360));
                eprintln!(
                    "xtask soak: the writer committed {commits} changes; waiting for the subscribers..."
                );
            }
            "writer" => series
                .writer
                .push((m, line.json["commits"].as_u64().unwrap_or(0))),
            _ if line.json["final"] == true => series.verdict = Some(line.json),
            _ => {
                let delivered = line.json["events_min"].as_u64().unwrap_or(0);
                let committed = series.writer.last().map_or(0, |w| w.1);
                if delivered > last_delivered.0 || delivered >= committed {
                    last_delivered = (delivered, line.at);
                } else {
                    let stalled = line.at.duration_since(last_delivered.1).as_secs_f64();
                    series.longest_stall_s = series.longest_stall_s.max(stalled);
                    if stalled > STALL.as_secs_f64() && series.first_error.is_none() {
                        series.first_error = Some((m, format!("no delivery for {stalled:.0} s")));
                    }
                }
                if series.first_error.is_none()
                    && let Some(e) = line.json["first_error"].as_str()
                {
                    series.first_error = Some((m, e.to_owned()));
                }
                series.stream.push((m, line.json));
            }
        }
    }
    drop(writer);
    let _ = streamer.child.wait();
    drop(server);
    Ok(series)
}

/// One line on stderr a minute, so a long run shows it is alive.
fn progress(series: &Series) {
    let committed = series.writer.last().map_or(0, |w| w.1);
    let delivered = series
        .stream
        .last()
        .and_then(|s| s.1["events_min"].as_u64())
        .unwrap_or(0);
    let rss = series.samples.last().map_or(0, |s| s.rss_kb / 1024);
    eprintln!(
        "xtask soak: minute {:.0}: {committed} committed, {delivered} delivered to every subscriber, RSS {rss} MB, load {:.2}",
        series.samples.last().map_or(0.0, |s| s.minute),
        load().0
    );
}

/// The lag histograms (upper bound µs → count) of the stats lines in `[from, to)` minutes.
fn merged_lag(series: &Series, from: f64, to: f64) -> BTreeMap<u64, u64> {
    let mut lag = BTreeMap::new();
    for (m, line) in &series.stream {
        if *m < from || *m >= to {
            continue;
        }
        if let Some(map) = line["lag_us"].as_object() {
            for (k, v) in map {
                if let (Ok(k), Some(v)) = (k.parse::<u64>(), v.as_u64()) {
                    *lag.entry(k).or_insert(0) += v;
                }
            }
        }
    }
    lag
}

/// The `p` quantile of a histogram, as its bucket's upper bound in ms.
fn quantile_ms(lag: &BTreeMap<u64, u64>, p: f64) -> Option<f64> {
    let total: u64 = lag.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    lag.iter().find_map(|(us, n)| {
        seen += n;
        (seen >= rank).then_some(*us as f64 / 1000.0)
    })
}

/// The last value at or before `minute` of a rising series.
fn at_minute(points: &[(f64, u64)], minute: f64) -> u64 {
    points
        .iter()
        .take_while(|(m, _)| *m <= minute)
        .last()
        .map_or(0, |p| p.1)
}

/// Least-squares slope of RSS (MB) over minutes.
fn slope(samples: &[Sample]) -> Option<f64> {
    if samples.len() < 3 {
        return None;
    }
    let n = samples.len() as f64;
    let mx = samples.iter().map(|s| s.minute).sum::<f64>() / n;
    let my = samples
        .iter()
        .map(|s| s.rss_kb as f64 / 1024.0)
        .sum::<f64>()
        / n;
    let sxy: f64 = samples
        .iter()
        .map(|s| (s.minute - mx) * (s.rss_kb as f64 / 1024.0 - my))
        .sum();
    let sxx: f64 = samples.iter().map(|s| (s.minute - mx).powi(2)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.1}"))
}

/// The report, the reasons it fails (empty: passed) and the samples as CSV.
fn report(
    a: &Args,
    series: &Series,
    started_at: &str,
    load_before: (f64, f64, f64),
    load_after: (f64, f64, f64),
) -> (String, Vec<String>, String) {
    let mut out = String::new();
    let mut failures = Vec::new();
    let done = series.writer_done.clone().unwrap_or(Value::Null);
    let commits = done["commits"].as_u64().unwrap_or(0);
    let achieved = done["rate"].as_f64().unwrap_or(0.0);
    let _ = writeln!(
        out,
        "# Soak: {} minutes at {} commits/s, {} subscribers\n",
        a.minutes, a.rate, a.subscribers
    );
    let _ = writeln!(
        out,
        "`cargo xtask soak --minutes {} --rate {} --subscribers {}`, started {started_at}; load average \
         before {:.2} {:.2} {:.2}, after {:.2} {:.2} {:.2} ({} CPUs).\n",
        a.minutes,
        a.rate,
        a.subscribers,
        load_before.0,
        load_before.1,
        load_before.2,
        load_after.0,
        load_after.1,
        load_after.2,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let _ = writeln!(
        out,
        "Writer: {commits} commits ({} inserts, {} updates, {} deletes) in {:.0} s over {WRITERS} \
         connections and {KEYS} ids: **{achieved:.0} commits/s achieved** ({:.1}% of the {} asked). \
         Streamer: cache on (10,000 rows, TTL 5 min), {READS_PER_SECOND} cached reads/s, file \
         checkpoints.\n",
        done["inserts"],
        done["updates"],
        done["deletes"],
        done["t"].as_f64().unwrap_or(0.0),
        100.0 * achieved / a.rate as f64,
        a.rate
    );
    let _ = writeln!(
        out,
        "| minute | commits/s | delivered/s (slowest subscriber) | behind at end | lag p50 ms | lag p99 ms | lag max ms | RSS MB | fds | threads | CPU % | cache rows | load 1m |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let delivered: Vec<(f64, u64)> = series
        .stream
        .iter()
        .map(|(m, l)| (*m, l["events_min"].as_u64().unwrap_or(0)))
        .collect();
    let mut p99s = Vec::new();
    for m in 0..a.minutes {
        let (from, to) = (m as f64, (m + 1) as f64);
        let per_s = |points: &[(f64, u64)]| {
            (at_minute(points, to).saturating_sub(at_minute(points, from))) as f64 / 60.0
        };
        let lag = merged_lag(series, from, to);
        let p99 = quantile_ms(&lag, 0.99);
        p99s.push(p99);
        let in_minute: Vec<&Sample> = series
            .samples
            .iter()
            .filter(|s| s.minute >= from && s.minute < to)
            .collect();
        let last = in_minute.last();
        let cpu = match (in_minute.first(), last) {
            (Some(f), Some(l)) if l.minute > f.minute => {
                format!(
                    "{:.0}",
                    100.0 * (l.cpu_s - f.cpu_s) / ((l.minute - f.minute) * 60.0)
                )
            }
            _ => "-".to_owned(),
        };
        let cache = series
            .stream
            .iter()
            .take_while(|(t, _)| *t < to)
            .last()
            .map_or("-".to_owned(), |(_, l)| l["cache_entries"].to_string());
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {cpu} | {cache} | {} |",
            m + 1,
            per_s(&series.writer),
            per_s(&delivered),
            at_minute(&series.writer, to).saturating_sub(at_minute(&delivered, to)),
            ms(quantile_ms(&lag, 0.50)),
            ms(p99),
            ms(quantile_ms(&lag, 1.0)),
            last.map_or("-".to_owned(), |s| format!(
                "{:.1}",
                s.rss_kb as f64 / 1024.0
            )),
            last.map_or("-".to_owned(), |s| s.fds.to_string()),
            last.map_or("-".to_owned(), |s| s.threads.to_string()),
            last.map_or("-".to_owned(), |s| format!("{:.2}", s.load1)),
        );
    }
    let all = merged_lag(series, f64::MIN, f64::MAX);
    let _ = writeln!(
        out,
        "\nLag is commit to delivery: a subscriber's wall clock on receipt minus the writer's just \
         before its statement (inserts and updates; a delete's row image is the old row). Whole \
         run: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms over {} deliveries. Buckets are 1/16 \
         of a power of two wide (≤ 6.25%).\n",
        ms(quantile_ms(&all, 0.5)),
        ms(quantile_ms(&all, 0.99)),
        ms(quantile_ms(&all, 0.999)),
        ms(quantile_ms(&all, 1.0)),
        all.values().sum::<u64>()
    );

    let _ = writeln!(out, "## Verdict\n");
    let verdict = series.verdict.clone().unwrap_or(Value::Null);
    if verdict["ok"] == true {
        let _ = writeln!(
            out,
            "- pass: no loss, no reorder: each of the {} subscribers got exactly the {commits} \
             changes, positions strictly rising, each change matching the row it rebuilt, and its \
             rebuilt table ({} rows) equals the server's.",
            a.subscribers,
            verdict["rows"].as_str().unwrap_or("?")
        );
    } else {
        let errors: Vec<String> = verdict["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .take(5)
                    .map(|v| v.as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_else(|| vec!["no final verdict from the streamer".to_owned()]);
        let _ = writeln!(out, "- FAIL: loss or reorder: {}", errors.join("; "));
        failures.push("loss or reorder".to_owned());
    }
    if let Some((m, e)) = &series.first_error {
        let _ = writeln!(out, "- first problem seen at minute {m:.1}: {e}");
    }
    let stall_ok = series.longest_stall_s <= STALL.as_secs_f64();
    let _ = writeln!(
        out,
        "- {}: longest time without delivery while changes were pending: {:.0} s (a stall is > {} s).",
        if stall_ok { "pass" } else { "FAIL" },
        series.longest_stall_s,
        STALL.as_secs()
    );
    if !stall_ok {
        failures.push("stall".to_owned());
    }
    let half = a.minutes as f64 / 2.0;
    let second_half: Vec<Sample> = series
        .samples
        .iter()
        .copied()
        .filter(|s| s.minute >= half)
        .collect();
    match slope(&second_half) {
        Some(s) => {
            let per_event = s * 1024.0 * 1024.0 / (achieved.max(1.0) * 60.0);
            let ok = s <= RSS_SLOPE_LIMIT_MB_PER_MIN;
            let _ = writeln!(
                out,
                "- {}: RSS slope over the second half (minutes {half:.1}–{}, {} samples, least squares): \
                 {s:+.3} MB/min ({per_event:+.2} bytes per commit); threshold {RSS_SLOPE_LIMIT_MB_PER_MIN} MB/min. \
                 RSS first {:.1} MB, at half time {:.1} MB, last {:.1} MB, peak {:.1} MB.",
                if ok { "pass" } else { "FAIL" },
                a.minutes,
                second_half.len(),
                series
                    .samples
                    .first()
                    .map_or(0.0, |s| s.rss_kb as f64 / 1024.0),
                second_half
                    .first()
                    .map_or(0.0, |s| s.rss_kb as f64 / 1024.0),
                series
                    .samples
                    .last()
                    .map_or(0.0, |s| s.rss_kb as f64 / 1024.0),
                series.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0) as f64 / 1024.0,
            );
            if !ok {
                failures.push(format!("RSS grows {s:.2} MB/min"));
            }
        }
        None => {
            let _ = writeln!(out, "- FAIL: too few RSS samples for a slope");
            failures.push("no RSS slope".to_owned());
        }
    }
    let warm = WARM_UP.as_secs_f64() / 60.0;
    if let (Some((first, last)), Some(s0), Some(sn)) = (
        fd_floors(&series.samples, warm, FD_WINDOW_MINUTES),
        series.samples.first(),
        series.samples.last(),
    ) {
        let max = series.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let ok = last <= first;
        let _ = writeln!(
            out,
            "- {}: open fds, fewest in the first {FD_WINDOW_MINUTES} minutes after a {} s warm-up \
             {first}, fewest in the last {FD_WINDOW_MINUTES} minutes {last} (shorter windows in a \
             short run; at the start {}, at most {max}); threads at the start {}, at the end {}.",
            if ok { "pass" } else { "FAIL" },
            WARM_UP.as_secs(),
            s0.fds,
            s0.threads,
            sn.threads
        );
        let _ = writeln!(
            out,
            "  The fds after the warm-up: {:?}; at the end: {:?}.",
            series.fds_after_warm_up.clone().unwrap_or_default(),
            series.fds_at_end
        );
        if !ok {
            failures.push(format!("fds grew from {first} to {last}"));
        }
    }
    let p99_values: Vec<f64> = p99s.iter().flatten().copied().collect();
    if let (Some(min), Some(max)) = (
        p99_values.iter().copied().reduce(f64::min),
        p99_values.iter().copied().reduce(f64::max),
    ) {
        let _ = writeln!(
            out,
            "- lag p99 per minute ranges {min:.1}–{max:.1} ms (the table above; reported, not a \
             pass/fail criterion)."
        );
    }
    let rate_ok = achieved >= 0.98 * a.rate as f64;
    let _ = writeln!(
        out,
        "- {}: rate achieved {achieved:.0} commits/s of {} asked (reported; not a pass/fail criterion).",
        if rate_ok { "rate met" } else { "RATE NOT MET" },
        a.rate
    );
    let last_stats = series.stream.last().map(|s| &s.1);
    if let Some(l) = last_stats {
        let _ = writeln!(
            out,
            "- cache at the end: {} rows, {} hits, {} misses, {} evictions, {} invalidations; reads {} ok, {} failed; the Streamer's own delivery p99 (read to acknowledged, whole run) {} µs.",
            l["cache_entries"],
            l["cache_hits"],
            l["cache_misses"],
            l["cache_evictions"],
            l["cache_invalidations"],
            l["reads"],
            l["read_errors"],
            l["delivery_p99_us"]
        );
    }
    let _ = writeln!(
        out,
        "\n{}\n",
        if failures.is_empty() {
            "**Soak passed.**".to_owned()
        } else {
            format!("**Soak FAILED: {}.**", failures.join("; "))
        }
    );
    let mut csv = String::from("minute,rss_kb,fds,threads,cpu_s,load1\n");
    for s in &series.samples {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{:.2},{:.2}",
            s.minute, s.rss_kb, s.fds, s.threads, s.cpu_s, s.load1
        );
    }
    (out, failures, csv)
}
