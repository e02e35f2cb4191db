//! History lost: the binlog the crash phase's checkpoint points into is purged. The same
//! command must fail with the typed error naming the oldest position still on the server; the
//! documented way back (remove the checkpoint, `--from snapshot --checkpoint DIR`) is then run
//! end to end, killed once inside the snapshot while writes go on, and the tables rebuilt from
//! its events must equal the server's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::crash::{DB, Leftover, saved_position};
use super::tail::{Follower, Tail, binlog_end};
use super::verify::{Replica, for_each_line, hash};
use super::{Ctx, Outcome};

/// Runs the command the crash phase ran and expects the purged-history error.
fn expect_purged(ctx: &Ctx, args: &[String], name: &str, expected: &str) -> Result<String> {
    let out = ctx.work.join(format!("{name}.jsonl"));
    let mut tail = Tail::start(&ctx.ustream, args, &out)?;
    let status = tail.wait(Duration::from_secs(300))?;
    let stderr = tail.stderr();
    let error = stderr
        .lines()
        .find(|l| l.starts_with("ustream: error:"))
        .unwrap_or_default()
        .to_owned();
    if status.code() != Some(1) || !error.contains(expected) {
        bail!(
            "`ustream tail {}` after the purge: exit {status}, stderr `{}`; expected exit 1 with \
             `{expected}`",
            args.join(" ").replace(":ustream@", ":***@"),
            stderr.trim()
        );
    }
    Ok(error)
}

pub(crate) fn run(ctx: &mut Ctx, mut left: Leftover) -> Result<Vec<Outcome>> {
    let started = Instant::now();
    let url = format!("{}/{DB}", ctx.url);
    let old =
        saved_position(&left.checkpoint_dir)?.context("the crash phase left no checkpoint")?;
    ctx.server
        .sql("FLUSH BINARY LOGS; FLUSH BINARY LOGS;")
        .map_err(anyhow::Error::msg)?;
    let end = binlog_end(&ctx.url)?;
    let file = end
        .strip_prefix("binlog:")
        .and_then(|r| r.split(':').next())
        .context("binlog end")?
        .to_owned();
    ctx.server
        .sql(&format!("PURGE BINARY LOGS TO '{file}'"))
        .map_err(anyhow::Error::msg)?;
    let logs = ctx
        .server
        .sql("SHOW BINARY LOGS")
        .map_err(anyhow::Error::msg)?;
    let oldest_file = logs.split_whitespace().next().context("no binlog left")?;
    let oldest = format!("binlog:{oldest_file}:4+0");
    let expected = format!(
        "position {old} is no longer on the server; the oldest available is {oldest} \
         (re-snapshot to continue)"
    );
    let checkpoint = left.checkpoint_dir.display().to_string();
    let resumed = [
        url.clone(),
        "--from".into(),
        "start".into(),
        "--checkpoint".into(),
        checkpoint.clone(),
    ];
    let error = expect_purged(ctx, &resumed, "purge-resume", &expected)?;
    let from_old = [url.clone(), "--from".into(), old.clone()];
    expect_purged(ctx, &from_old, "purge-from", &expected)?;

    // The way back, as docs/reliability.md tells it.
    std::fs::remove_file(left.checkpoint_dir.join("tail.checkpoint.json"))?;
    let args = vec![
        url,
        "--from".into(),
        "snapshot".into(),
        "--checkpoint".into(),
        checkpoint,
    ];
    let rows: u64 = ctx
        .server
        .sql(&format!(
            "SELECT (SELECT COUNT(*) FROM `{DB}`.items) + (SELECT COUNT(*) FROM `{DB}`.events) \
             + (SELECT COUNT(*) FROM `{DB}`.side) + (SELECT COUNT(*) FROM `{DB}`.marker)"
        ))
        .map_err(anyhow::Error::msg)?
        .trim()
        .parse()?;
    let more = (ctx.changes / 20).clamp(1_000, 20_000);
    let outs: Vec<PathBuf> = (1..=3)
        .map(|k| ctx.work.join(format!("purge-snapshot-{k}.jsonl")))
        .collect();
    // Attempt 1: killed inside its first chunk, before any checkpoint.
    {
        let mut first = Tail::start(&ctx.ustream, &args, &outs[0])?;
        let mut follower = Follower::new(&outs[0]);
        // At its first line: the first chunk's checkpoint is saved right after the chunk.
        first.wait_until("the first snapshot rows", Duration::from_secs(1800), |_| {
            follower.poll(|_| false)?;
            Ok(follower.lines >= 1)
        })?;
        first.kill();
    }
    let early_checkpoint = saved_position(&left.checkpoint_dir)?;
    write(ctx, &mut left, more, None)?;
    // Attempt 2: killed as soon as it saved a checkpoint inside the snapshot.
    {
        let mut second = Tail::start(&ctx.ustream, &args, &outs[1])?;
        second.wait_until("a snapshot checkpoint", Duration::from_secs(1800), |_| {
            Ok(saved_position(&left.checkpoint_dir)?.is_some())
        })?;
        second.kill();
    }
    let mid_checkpoint = saved_position(&left.checkpoint_dir)?.unwrap_or_default();
    // Writes while no tail runs: the resumed snapshot reads a newer view than its first part.
    write(ctx, &mut left, more, Some(1))?;
    let mut third = Tail::start(&ctx.ustream, &args, &outs[2])?;
    let mut follower = Follower::new(&outs[2]);
    third.wait_until("marker 1", Duration::from_secs(1800), |_| {
        follower.poll(marker_line(1))
    })?;
    // And writes while it streams.
    write(ctx, &mut left, more, Some(2))?;
    third.wait_until("marker 2", Duration::from_secs(1800), |_| {
        follower.poll(marker_line(2))
    })?;
    let status = third.stop(Duration::from_secs(60))?;
    if !status.success() {
        bail!(
            "ustream tail exited with {status} on SIGTERM: {}",
            third.stderr_tail()
        );
    }

    // The history a consumer gets: from the last attempt that started a new snapshot.
    let fresh = usize::from(early_checkpoint.is_none());
    let resumed = replay(&outs[fresh..])?;
    let comparison = resumed.replica.compare(&ctx.server, DB)?;
    let with_first = replay(&outs)?;
    let stale = with_first.replica.compare(&ctx.server, DB)?;
    for out in &outs {
        let _ = std::fs::remove_file(out);
    }
    let mut notes = vec![
        format!("the typed error: `{error}`"),
        format!(
            "the way back: {rows} rows to snapshot; attempt 1 killed inside its first chunk \
             (checkpoint saved: {}); {more} changes written; attempt 2 killed right after its \
             first checkpoint (`{}`); {more} changes written; attempt 3 resumed, finished the \
             snapshot and streamed {more} more changes",
            early_checkpoint.as_deref().unwrap_or("none"),
            mid_checkpoint.chars().take(40).collect::<String>() + "..."
        ),
        format!(
            "attempts {}: {} lines ({} snapshot rows, {} read twice, {} re-read newer, {} \
             binlog lines repeated); {}",
            if fresh == 1 { "2 and 3" } else { "1 to 3" },
            resumed.lines,
            resumed.snapshot_rows,
            resumed.replica.repeats,
            resumed.replica.superseded,
            resumed.repeats,
            comparison.summary()
        ),
    ];
    if resumed.replica.unknown_deletes > 0 {
        notes.push(format!(
            "{} deletes, printed by a resumed snapshot, of rows never delivered: rows that \
             existed while the attempt before it ran, which may have printed them past its \
             checkpoint (at least once: a consumer applying them changes nothing; a row that \
             still exists at the end would show in the comparison above)",
            resumed.replica.unknown_deletes
        ));
    }
    notes.extend(comparison.examples.iter().cloned());
    notes.extend(resumed.replica.examples.iter().cloned());
    let way_back = Outcome {
        fault: "binlog purged past the checkpoint".into(),
        injected: "`PURGE BINARY LOGS`; then `--from snapshot --checkpoint`, killed (SIGKILL) \
                   inside the snapshot after its first checkpoint, restarted"
            .into(),
        changes: resumed.lines - resumed.repeats - resumed.replica.repeats,
        lost: comparison.missing + comparison.extra,
        misread: comparison.differ + resumed.replica.misread + resumed.conflicts,
        repeats: resumed.repeats + resumed.replica.repeats,
        outside_window: 0,
        died: 0,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    };
    if fresh == 0 {
        // Attempt 1 saved its first chunk before the kill: attempt 2 resumed it, and the
        // history above includes attempt 1.
        return Ok(vec![way_back]);
    }
    let mut notes = vec![format!(
        "a consumer that applied attempt 1's {} rows too: {} ({} rows read again with newer \
         content); rows deleted between attempt 1 and 2 get no delete event: attempt 1 saved no \
         checkpoint, so attempt 2 is a new snapshot from a new view",
        with_first.lines - resumed.lines,
        stale.summary(),
        with_first.replica.superseded
    )];
    notes.extend(stale.examples.iter().take(2).cloned());
    let first_chunk = Outcome {
        fault: "re-snapshot killed before its first checkpoint".into(),
        injected: "SIGKILL inside the first 5,000-row chunk, writes, restart".into(),
        changes: with_first.lines,
        lost: stale.missing + stale.extra,
        misread: stale.differ + with_first.replica.misread + with_first.conflicts,
        repeats: with_first.repeats + with_first.replica.repeats,
        outside_window: 0,
        died: 0,
        seconds: 0.0,
        notes,
    };
    Ok(vec![way_back, first_chunk])
}

/// A marker row's line.
fn marker_line(id: u32) -> impl Fn(&str) -> bool {
    move |line: &str| {
        line.contains("\"table\":\"marker\"")
            && line.contains(&format!("\"after\":{{\"id\":{id}}}"))
    }
}

/// Writes `changes` more changes of the crash workload, then marker row `marker`.
fn write(ctx: &Ctx, left: &mut Leftover, changes: u64, marker: Option<u32>) -> Result<()> {
    for piece in left.workload.pieces(changes, (changes / 4).max(1)) {
        ctx.server.sql(&piece).map_err(anyhow::Error::msg)?;
    }
    if let Some(id) = marker {
        let sql = left.workload.marker(id);
        ctx.server.sql(&sql).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Outputs applied in order, binlog lines deduplicated by position.
struct Replay {
    replica: Replica,
    lines: u64,
    repeats: u64,
    /// Lines at a position already seen with other content.
    conflicts: u64,
    snapshot_rows: u64,
}

fn replay(outs: &[PathBuf]) -> Result<Replay> {
    let mut r = Replay {
        replica: Replica::default(),
        lines: 0,
        repeats: 0,
        conflicts: 0,
        snapshot_rows: 0,
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (attempt, out) in outs.iter().enumerate() {
        // Attempts after the first resume the snapshot: see `Replica::hold_unknown_deletes`.
        r.replica.hold_unknown_deletes = attempt > 0;
        for_each_line(out, |line| {
            let event: Value = serde_json::from_str(line)
                .with_context(|| format!("a printed line is not JSON: {line}"))?;
            let position = event["position"].as_str().unwrap_or_default().to_owned();
            r.lines += 1;
            if position.starts_with("mysql-snapshot:") {
                r.snapshot_rows += 1;
            } else if let Some(&had) = seen.get(&position) {
                if had == hash(line) {
                    r.repeats += 1;
                } else {
                    r.conflicts += 1;
                }
                return Ok(());
            } else {
                seen.insert(position, hash(line));
            }
            r.replica.apply(&event);
            Ok(())
        })?;
    }
    Ok(r)
}
