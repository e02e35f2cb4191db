//! GTID positions under kills: `ustream tail --gtid --checkpoint DIR` killed with SIGKILL at
//! random points of the crash phase's workload and restarted with the same command each time.
//! Its checkpoints are MariaDB GTID states (`mariadb-gtid:0-1-N+K`), so a restart resumes
//! through the server's GTID lookup instead of a file offset. Same oracle as the crash phase:
//! an uninterrupted `--gtid` read of the same history (its tables rebuilt equal to the
//! server's), every printed line at its place in it, repeats only after the last checkpoint.

use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::crash::{DB, Shared, Subject, TAIL_SAVES, killed_and_restarted};
use super::tail::read_uninterrupted;
use super::verify::{Reference, Replica};
use super::{Ctx, Outcome};

/// A single-domain MariaDB GTID position as a comparable (sequence number, rows delivered);
/// `None` for other forms (and for states of several domains, which the command's own server
/// never makes).
pub(crate) fn gtid_position(position: &str) -> Option<(u64, u64)> {
    let rest = position.strip_prefix("mariadb-gtid:")?;
    let (state, skip) = rest.rsplit_once('+')?;
    if state.contains(',') {
        return None;
    }
    let seq = state.rsplit('-').next()?.parse().ok()?;
    Some((seq, skip.parse().ok()?))
}

/// Runs the phase over the changes written after binlog position `start` of `url` (`total`
/// row changes).
pub(crate) fn run(ctx: &Ctx, url: &str, start: &str, total: u64) -> Result<Outcome> {
    let started = Instant::now();
    let reference_out = ctx.work.join("gtid-reference.jsonl");
    let mut args = vec![
        url.to_owned(),
        "--gtid".into(),
        "--from".into(),
        start.into(),
    ];
    read_uninterrupted(
        &ctx.ustream,
        &[
            args.clone(),
            ["--limit", &total.to_string(), "--idle-exit-ms", "60000"]
                .map(str::to_owned)
                .into(),
        ]
        .concat(),
        &reference_out,
    )?;
    let read_seconds = started.elapsed().as_secs_f64();
    let mut replica = Replica::default();
    let mut positions: Vec<(u64, u64)> = Vec::new();
    let reference = Reference::load_with(&reference_out, false, |event| {
        let position = event["position"].as_str().unwrap_or_default();
        let Some(at) = gtid_position(position) else {
            bail!("reference position `{position}` is not a one-domain MariaDB GTID position");
        };
        if positions.last().is_some_and(|&last| last >= at) {
            bail!("reference GTID positions do not increase at `{position}`");
        }
        positions.push(at);
        replica.apply(event);
        Ok(())
    })
    .context("the uninterrupted --gtid read")?;
    let comparison = replica.compare(&ctx.server, DB)?;
    let reference_bytes = std::fs::metadata(&reference_out)?.len();
    let mut notes = vec![format!(
        "uninterrupted `--gtid` read: {} lines in {read_seconds:.1} s (positions {} to {}); \
         {}; before images that did not match: {}",
        reference.len(),
        positions.first().map_or(0, |p| p.0),
        positions.last().map_or(0, |p| p.0),
        comparison.summary(),
        replica.misread
    )];
    notes.extend(comparison.examples.iter().cloned());
    notes.extend(replica.examples.iter().cloned());

    let checkpoint_dir = ctx.work.join("crash-gtid-checkpoint");
    args.splice(0..0, ["tail".to_owned()]);
    args.extend(["--checkpoint".into(), checkpoint_dir.display().to_string()]);
    let resume =
        |position: &str| gtid_position(position).map(|at| positions.partition_point(|&p| p <= at));
    let subject = Subject {
        name: "tail-gtid",
        program: ctx.ustream.clone(),
        args,
        checkpoint: checkpoint_dir.join("tail.checkpoint.json"),
        seed: ctx.seed ^ 0x0067_7469,
        resume: &resume,
        kills: ctx.kills,
        must_place: true,
        on_output: None,
        saves: TAIL_SAVES,
    };
    let shared = Shared {
        lost: total.saturating_sub(reference.len() as u64) + comparison.missing + comparison.extra,
        misread: comparison.differ + replica.misread,
        total,
        reference_bytes,
    };
    let mut outcome = killed_and_restarted(ctx, &reference, &subject, &shared)?;
    outcome.fault = "`ustream tail --gtid --checkpoint` (MariaDB GTID positions) killed \
                     (SIGKILL) and restarted"
        .into();
    outcome.notes.splice(0..0, notes);
    outcome.seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "chaos crash: tail-gtid done in {:.0} s (lost {}, misread {}, repeats {})",
        outcome.seconds, outcome.lost, outcome.misread, outcome.repeats
    );
    let _ = std::fs::remove_dir_all(&checkpoint_dir);
    let _ = std::fs::remove_file(&reference_out);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_compare_by_sequence_then_rows_delivered() {
        assert_eq!(gtid_position("mariadb-gtid:0-1-100+3"), Some((100, 3)));
        assert!(gtid_position("mariadb-gtid:0-1-99+7") < gtid_position("mariadb-gtid:0-1-100+0"));
        assert_eq!(gtid_position("mariadb-gtid:0-1-100,1-2-7+0"), None);
        assert_eq!(gtid_position("binlog:mysql-bin.000001:4+0"), None);
    }
}
