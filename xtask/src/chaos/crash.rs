//! Crash: `ustream tail --checkpoint DIR` killed with SIGKILL at random points of a large
//! change stream and restarted with the same command each time; the union of the runs' output
//! must hold every line of an uninterrupted read, by position and content, and that read must
//! rebuild the server's tables exactly. Repeats are allowed only after the checkpoint saved
//! last before a kill, and counted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::tail::{Tail, binlog_end, read_uninterrupted};
use super::verify::{Reference, Replica, Walk, binlog_position};
use super::workload::Workload;
use super::{Ctx, Outcome};

/// The database of the crash workload (the history-lost phase reuses it).
pub(crate) const DB: &str = "chaos";

/// What the crash phase leaves for the history-lost phase.
pub(crate) struct Leftover {
    pub(crate) workload: Workload,
    pub(crate) checkpoint_dir: std::path::PathBuf,
}

/// The position saved in `DIR/tail.checkpoint.json`, if any.
pub(crate) fn saved_position(dir: &Path) -> Result<Option<String>> {
    saved_in(&dir.join("tail.checkpoint.json"))
}

/// The position saved in a checkpoint file, if any.
pub(crate) fn saved_in(path: &Path) -> Result<Option<String>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    let saved: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(saved["position"].as_str().map(str::to_owned))
}

/// Which processes the crash phase kills (none: it only writes the workload and leaves a
/// checkpoint for the history-lost phase).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subjects {
    /// `ustream tail --checkpoint`.
    pub(crate) tail: bool,
    /// The `Streamer` example.
    pub(crate) streamer: bool,
    /// `ustream tail --gtid --checkpoint` (MariaDB GTID positions).
    pub(crate) gtid: bool,
}

impl Subjects {
    pub(crate) fn any(self) -> bool {
        self.tail || self.streamer || self.gtid
    }
}

pub(crate) fn run(ctx: &Ctx, subjects: Subjects) -> Result<(Vec<Outcome>, Leftover)> {
    let started = Instant::now();
    let start = binlog_end(&ctx.url)?;
    let mut workload = Workload::new(DB, ctx.seed);
    ctx.server
        .sql(&workload.schema())
        .map_err(anyhow::Error::msg)?;
    let pieces = workload.pieces(ctx.changes, 50_000);
    let total = workload.changes;
    eprintln!(
        "chaos crash: writing {total} row changes in {} pieces...",
        pieces.len()
    );
    for piece in &pieces {
        ctx.server.sql(piece).map_err(anyhow::Error::msg)?;
    }
    drop(pieces);
    eprintln!(
        "chaos crash: written in {:.0} s; reading it once uninterrupted...",
        started.elapsed().as_secs_f64()
    );
    let url = format!("{}/{DB}", ctx.url);
    let reference_out = ctx.work.join("crash-reference.jsonl");
    let checkpoint_dir = ctx.work.join("crash-checkpoint");
    let read_started = Instant::now();
    let mut reference_args = vec![
        url.clone(),
        "--from".into(),
        start.clone(),
        "--limit".into(),
        total.to_string(),
        "--idle-exit-ms".into(),
        "60000".into(),
    ];
    if !subjects.tail {
        // No killed tail leaves a checkpoint for the history-lost phase: this read does.
        reference_args.extend(["--checkpoint".into(), checkpoint_dir.display().to_string()]);
    }
    read_uninterrupted(&ctx.ustream, &reference_args, &reference_out)?;
    let read_seconds = read_started.elapsed().as_secs_f64();
    let mut replica = Replica::default();
    let reference = Reference::load(&reference_out, &mut replica)?;
    let comparison = replica.compare(&ctx.server, DB)?;
    let mut notes = Vec::new();
    notes.extend(comparison.examples.iter().cloned());
    notes.extend(replica.examples.iter().cloned());
    let reference_bytes = std::fs::metadata(&reference_out)?.len();
    notes.push(format!(
        "uninterrupted read: {} lines ({:.0} MB) in {read_seconds:.1} s; {}; before images that \
         did not match: {}",
        reference.len(),
        reference_bytes as f64 / 1e6,
        comparison.summary(),
        replica.misread
    ));
    let mut lost_by_reference = 0;
    if reference.len() as u64 != total {
        lost_by_reference = total.saturating_sub(reference.len() as u64);
        notes.push(format!(
            "the uninterrupted read printed {} lines; the workload made {total} changes",
            reference.len()
        ));
    }

    let resume = |position: &str| binlog_position(position).map(|p| reference.first_after(p));
    let tail = Subject {
        name: "tail",
        program: ctx.ustream.clone(),
        args: vec![
            "tail".into(),
            url.clone(),
            "--from".into(),
            start.clone(),
            "--checkpoint".into(),
            checkpoint_dir.display().to_string(),
        ],
        checkpoint: checkpoint_dir.join("tail.checkpoint.json"),
        seed: ctx.seed ^ 0x00c0_ffee,
        resume: &resume,
        kills: ctx.kills,
        must_place: true,
        on_output: None,
        saves: TAIL_SAVES,
    };
    let streamer_dir = ctx.work.join("crash-streamer-checkpoint");
    let streamer = Subject {
        name: "streamer",
        program: ctx.streamer.clone(),
        args: vec![
            url.clone(),
            format!("{DB}.*"),
            streamer_dir.display().to_string(),
            "--from".into(),
            start.clone(),
        ],
        checkpoint: streamer_dir.join("mysql.checkpoint.json"),
        seed: ctx.seed ^ 0x05ee_d5ee,
        resume: &resume,
        kills: ctx.kills,
        must_place: true,
        on_output: None,
        saves: "once the callback returned for every event of a source batch (the \
                checkpointer saves, in a task of its own, the newest position whose batches \
                were all answered)",
    };
    let shared = Shared {
        lost: lost_by_reference + comparison.missing + comparison.extra,
        misread: comparison.differ + replica.misread,
        total,
        reference_bytes,
    };
    let mut outcomes = Vec::new();
    let chosen = [
        (
            subjects.tail,
            &tail,
            "`ustream tail --checkpoint` killed (SIGKILL) and restarted",
        ),
        (
            subjects.streamer,
            &streamer,
            "a `Streamer` process (file checkpoints) killed (SIGKILL) and restarted",
        ),
    ];
    for (_, subject, fault) in chosen.into_iter().filter(|c| c.0) {
        let mut outcome = killed_and_restarted(ctx, &reference, subject, &shared)?;
        outcome.fault = fault.into();
        if outcomes.is_empty() {
            notes.push(format!(
                "written and read in {:.0} s",
                started.elapsed().as_secs_f64() - outcome.seconds
            ));
            outcome.notes.splice(0..0, notes.drain(..));
        } else {
            outcome
                .notes
                .insert(0, "checked against the same uninterrupted read".into());
        }
        eprintln!(
            "chaos crash: {} done in {:.0} s (lost {}, misread {}, repeats {})",
            subject.name, outcome.seconds, outcome.lost, outcome.misread, outcome.repeats
        );
        outcomes.push(outcome);
    }
    let _ = std::fs::remove_dir_all(&streamer_dir);
    drop(reference);
    let _ = std::fs::remove_file(&reference_out);
    if subjects.gtid {
        let mut outcome = super::gtid::run(ctx, &url, &start, total)?;
        outcome.notes.insert(
            0,
            "the same workload as the crash phase, read with `--gtid`".into(),
        );
        outcomes.push(outcome);
    }
    Ok((
        outcomes,
        Leftover {
            workload,
            checkpoint_dir,
        },
    ))
}

/// When `ustream tail --checkpoint` saves, for the report.
pub(crate) const TAIL_SAVES: &str = "after each printed batch (1,024 events and the rest of the \
                                     binlog row event that reached them)";

/// What a subject does with each run's output (besides the walk over the reference).
pub(crate) type OnOutput<'a> = dyn Fn(&Path) -> Result<()> + 'a;

/// A process the crash phase kills and restarts: `program args`, printing event lines, saving
/// its position in `checkpoint`.
pub(crate) struct Subject<'a> {
    pub(crate) name: &'static str,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) checkpoint: PathBuf,
    /// Of its kill points.
    pub(crate) seed: u64,
    /// How many times it is killed.
    pub(crate) kills: usize,
    /// The reference line a run resuming from a saved position must start at (`None`: a
    /// position the reference cannot place; that run's start is not checked).
    pub(crate) resume: &'a dyn Fn(&str) -> Option<usize>,
    /// Whether a saved position the reference cannot place is a failure (file and GTID
    /// positions), or only noted (a MongoDB resume token of no event: the end of a quiet
    /// batch).
    pub(crate) must_place: bool,
    /// Called with each run's output before it is removed.
    pub(crate) on_output: Option<&'a OnOutput<'a>>,
    /// When it saves its checkpoint, for the report.
    pub(crate) saves: &'static str,
}

/// What every subject's outcome adds from the reference read.
pub(crate) struct Shared {
    pub(crate) lost: u64,
    pub(crate) misread: u64,
    pub(crate) total: u64,
    pub(crate) reference_bytes: u64,
}

/// Runs `subject` from the start of the reference, SIGKILLed after random amounts of output
/// and restarted with the same command each time, then restarted until it has nothing more to
/// print; lays every run's output over the reference.
pub(crate) fn killed_and_restarted(
    ctx: &Ctx,
    reference: &Reference,
    subject: &Subject<'_>,
    shared: &Shared,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(subject.seed);
    let mut points: Vec<u64> = (0..subject.kills)
        .map(|_| rng.u64(1..shared.reference_bytes.max(2)))
        .collect();
    points.sort_unstable();
    let mut walk = Walk::new(reference);
    let mut resumed_at = None;
    let mut previous = 0;
    let mut kills = 0;
    let mut idle_before_kill = 0;
    // Errors of runs that exited on their own instead of being killed; like a supervisor,
    // the command restarts them and carries on.
    let mut died: Vec<String> = Vec::new();
    // Restarts from a checkpoint the reference cannot place (not checked).
    let mut unplaced = 0u64;
    let mut run = |name: String,
                   extra: &[&str],
                   kill_after: Option<u64>,
                   walk: &mut Walk<'_>,
                   resumed_at: &mut Option<Option<usize>>|
     -> Result<bool> {
        let out = ctx.work.join(format!("{name}.jsonl"));
        let mut all = subject.args.clone();
        all.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut process = Tail::spawn(&subject.program, &all, &out)?;
        let deadline = Instant::now() + Duration::from_secs(3600);
        let status = loop {
            if let Some(status) = process.exited() {
                break Some(status);
            }
            if kill_after.is_some_and(|bytes| process.printed() >= bytes) {
                process.kill();
                break None;
            }
            if Instant::now() > deadline {
                bail!("{name} neither finished nor printed enough within an hour");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if status.is_some_and(|s| !s.success()) {
            let stderr = process.stderr();
            let error = stderr
                .lines()
                .find(|l| l.contains("error:"))
                .unwrap_or("(no error line)")
                .to_owned();
            eprintln!("chaos crash: {name} exited on its own: {error}");
            died.push(format!("{name}: {error}"));
        }
        // No checkpoint yet: from the start.
        let expected = resumed_at.unwrap_or(Some(0));
        unplaced += u64::from(expected.is_none());
        walk.run(&name, &out, expected)?;
        if let Some(each) = subject.on_output {
            each(&out)?;
        }
        *resumed_at = saved_in(&subject.checkpoint)?
            .as_deref()
            .map(subject.resume);
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(out.with_extension("stderr"));
        Ok(status.is_some_and(|s| s.success()))
    };
    for (k, &point) in points.iter().enumerate() {
        let bytes = (point - previous).max(1);
        previous = point;
        // A kill point past what is left to print (restarts repeat, so a run may print less
        // than the reference's bytes up to it): the run exits once idle instead of waiting.
        let ended_idle = run(
            format!("crash-{}-{k:02}", subject.name),
            &["--idle-exit-ms", "5000"],
            Some(bytes),
            &mut walk,
            &mut resumed_at,
        )?;
        if ended_idle {
            idle_before_kill += 1;
        } else {
            kills += 1;
        }
        eprintln!(
            "chaos crash: {} {} {}/{} after {bytes} bytes; first line missing: {:?}",
            subject.name,
            if ended_idle {
                "ended idle before its kill point"
            } else {
                "kill"
            },
            k + 1,
            subject.kills,
            walk.first_missing()
        );
    }
    // Restarts until a run exits cleanly having found nothing more to print.
    for k in 0..10 {
        let clean = run(
            format!("crash-{}-final-{k}", subject.name),
            &["--idle-exit-ms", "5000"],
            None,
            &mut walk,
            &mut resumed_at,
        )?;
        if clean && walk.first_missing().is_none() {
            break;
        }
    }
    if saved_in(&subject.checkpoint)?.is_none() {
        // Otherwise every restart would be checked against the start of the reference.
        bail!(
            "{}: no checkpoint was saved in {} (not the file it saves?)",
            subject.name,
            subject.checkpoint.display()
        );
    }
    let mut notes = Vec::new();
    if let Some(first) = walk.first_missing() {
        notes.push(format!(
            "stuck: no restart got past reference line {first}; {} changes never printed \
             (still on the server: not destroyed, but the stream cannot move on)",
            walk.lost()
        ));
    }
    if !died.is_empty() {
        notes.push(format!(
            "{} runs exited with an error instead of streaming on (each restarted); first: {}",
            died.len(),
            died[0]
        ));
    }
    if idle_before_kill > 0 {
        notes.push(format!(
            "{idle_before_kill} of the {} kill points lay past what was left to print (the runs \
             before repeated lines, so the stream ended first): those runs exited once idle",
            subject.kills
        ));
    }
    if unplaced > 0 {
        notes.push(format!(
            "{unplaced} restarts resumed from a checkpoint that is no line's position (their \
             first line was not checked against it)"
        ));
    }
    let saves = subject.saves;
    notes.push(format!(
        "{} ({kills} kills): every restart resumed exactly after its saved checkpoint ({} did \
         not); {} repeats in all, at most {} after one kill: lines printed after the last \
         checkpoint save before the kill (the checkpoint is saved {saves}); lines cut in half \
         by a kill (not delivered, printed again whole): {}",
        subject.name, walk.off_checkpoint, walk.repeats, walk.most_repeats_at_once, walk.cut_lines
    ));
    notes.extend(walk.examples.iter().cloned());
    Ok(Outcome {
        fault: String::new(),
        injected: format!(
            "{kills} kills at random points of {} changes, same command each restart",
            shared.total
        ),
        changes: shared.total,
        lost: walk.lost() + shared.lost,
        misread: walk.misread + shared.misread,
        repeats: walk.repeats,
        outside_window: walk.off_checkpoint + if subject.must_place { unplaced } else { 0 },
        died: died.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}
