//! Server faults: MariaDB stopped (SIGTERM) and killed (SIGKILL) several times while a writer
//! commits transactions and one `ustream tail` keeps running; the tail must reconnect each
//! time and print every change exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::tail::{Follower, Tail, binlog_end, read_uninterrupted, sql_tcp};
use super::verify::{Reference, Replica, Walk};
use super::workload::{Workload, ddl_already_done};
use super::{Ctx, Outcome};

const DB: &str = "chaos_live";
/// Lines the tail must print between two restarts (proof it is streaming again).
const BETWEEN: u64 = 2_000;

/// Writes transactions until told to stop, retrying while the server is down; returns the
/// batches committed and failed.
fn writer(url: String, seed: u64, stop: Arc<AtomicBool>, failed: Arc<AtomicU64>) -> u64 {
    let mut workload = Workload::new(DB, seed);
    let mut committed = 0u64;
    let mut ddl_pending: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        // DDL goes alone (it commits implicitly), retried until done.
        if ddl_pending.is_none() {
            ddl_pending = workload.ddl_due(committed as f64 / 30.0);
        }
        let sql = match &ddl_pending {
            Some(ddl) => ddl.clone(),
            None => (0..4).map(|_| workload.transaction()).collect(),
        };
        match sql_tcp(&url, &sql) {
            Ok(_) => {
                committed += 1;
                ddl_pending = None;
            }
            Err(e) if ddl_pending.is_some() && ddl_already_done(&e.to_string()) => {
                ddl_pending = None;
            }
            Err(_) => {
                failed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    committed
}

/// Waits until the tail printed `BETWEEN` more lines.
fn streamed(tail: &mut Tail, follower: &mut Follower, what: &str) -> Result<()> {
    let base = follower.lines;
    tail.wait_until(what, Duration::from_secs(600), |_| {
        follower.poll(|_| false)?;
        Ok(follower.lines >= base + BETWEEN)
    })
}

pub(crate) fn run(ctx: &mut Ctx) -> Result<Outcome> {
    let started = Instant::now();
    let start = binlog_end(&ctx.url)?;
    ctx.server
        .sql(&Workload::new(DB, 0).schema())
        .map_err(anyhow::Error::msg)?;
    let url = format!("{}/{DB}", ctx.url);
    let live_out = ctx.work.join("live.jsonl");
    let mut tail = Tail::start(
        &ctx.ustream,
        &[url.clone(), "--from".into(), start.clone()],
        &live_out,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let writing = {
        let (url, stop, failed) = (ctx.url.clone(), stop.clone(), failed.clone());
        let seed = ctx.seed ^ 0x11fe;
        std::thread::spawn(move || writer(url, seed, stop, failed))
    };
    let mut follower = Follower::new(&live_out);
    let mut downtimes = Vec::new();
    let mut kinds = Vec::new();
    let result = (|| -> Result<()> {
        for i in 0..ctx.restarts {
            streamed(&mut tail, &mut follower, "events before the restart")?;
            let hard = i % 2 == 1;
            let down = Instant::now();
            if hard {
                ctx.server.kill();
            }
            ctx.server.restart().map_err(anyhow::Error::msg)?;
            downtimes.push(down.elapsed().as_secs_f64());
            kinds.push(if hard { "SIGKILL" } else { "SIGTERM" });
            eprintln!(
                "chaos server: restart {}/{} ({}) took {:.1} s; the tail printed {} lines so far",
                i + 1,
                ctx.restarts,
                kinds[i],
                downtimes[i],
                follower.lines
            );
        }
        streamed(&mut tail, &mut follower, "events after the last restart")?;
        Ok(())
    })();
    stop.store(true, Ordering::SeqCst);
    let batches = writing.join().unwrap_or(0);
    result?;
    // The end of the writes: a marker row, then the tail is stopped once it printed it.
    let mut marked = false;
    for _ in 0..100 {
        if sql_tcp(&ctx.url, &format!("INSERT INTO `{DB}`.marker VALUES (1)")).is_ok() {
            marked = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    if !marked {
        bail!("could not write the marker row after the restarts");
    }
    tail.wait_until("the marker row", Duration::from_secs(600), |_| {
        follower.poll(|line| line.contains("\"table\":\"marker\""))
    })?;
    let status = tail.stop(Duration::from_secs(60))?;
    if !status.success() {
        bail!(
            "ustream tail exited with {status} on SIGTERM: {}",
            tail.stderr_tail()
        );
    }
    let reconnects = tail.stderr().matches("reconnecting").count();

    eprintln!("chaos server: reading the history again, uninterrupted...");
    let reference_out = ctx.work.join("live-reference.jsonl");
    read_uninterrupted(
        &ctx.ustream,
        &[
            url,
            "--from".into(),
            start,
            "--idle-exit-ms".into(),
            "8000".into(),
        ],
        &reference_out,
    )?;
    let mut replica = Replica::default();
    let reference = Reference::load(&reference_out, &mut replica)?;
    let comparison = replica.compare(&ctx.server, DB)?;
    let mut walk = Walk::new(&reference);
    walk.run("live tail", &live_out, Some(0))?;
    let mut notes = vec![
        format!(
            "{} restarts ({}), down {} s; {batches} writer batches of 4 transactions committed, \
             {} failed while the server was down; the tail logged {reconnects} reconnects",
            ctx.restarts,
            kinds.join(", "),
            downtimes
                .iter()
                .map(|d| format!("{d:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            failed.load(Ordering::SeqCst)
        ),
        format!(
            "the live tail printed {} lines; an uninterrupted read afterwards {}; {}; before \
             images that did not match: {}",
            walk.lines,
            reference.len(),
            comparison.summary(),
            replica.misread
        ),
    ];
    notes.extend(walk.examples.iter().cloned());
    notes.extend(comparison.examples.iter().cloned());
    notes.extend(replica.examples.iter().cloned());
    let _ = std::fs::remove_file(&reference_out);
    let _ = std::fs::remove_file(&live_out);
    Ok(Outcome {
        fault: "MariaDB restarted under a running `ustream tail`".into(),
        injected: format!(
            "{} restarts (SIGTERM and SIGKILL alternating) while a writer commits",
            ctx.restarts
        ),
        changes: reference.len() as u64,
        lost: walk.lost() + comparison.missing + comparison.extra,
        misread: walk.misread + comparison.differ + replica.misread,
        repeats: walk.repeats,
        // One process throughout: no checkpoint, so no repeat is allowed.
        outside_window: walk.repeats,
        died: 0,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}
