//! The `Streamer` on MongoDB under kills: a stand-in of the phase's own (secantusdb,
//! `--sync-on-commit`), a writer that inserts, updates and deletes until it has done its
//! operations, then the `Streamer` example (`FileCheckpointStore`) streaming that history,
//! killed with SIGKILL at random points and restarted with the same command each time.
//! Oracle: an uninterrupted `ustream tail` read of the same history; every line printed is a
//! line of it (same position, same content), every line of it printed at least once; the
//! collection rebuilt from the printed lines (each position once) equals what the writer
//! wrote and what the server holds. MongoDB resume tokens cannot be ordered by a client, so a
//! restart's first line is checked against its checkpoint only when the checkpoint is an
//! event's position.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use stream_testkit::secantus::Secantus;

use super::crash::{Shared, Subject, killed_and_restarted};
use super::mongo::{DB, DURABLE, Docs, FULL_DOCUMENT, Writer, db_url};
use super::tail::read_uninterrupted;
use super::verify::{Reference, for_each_line, hash};
use super::{Ctx, Outcome};

/// The writer's collection (the MongoDB phase's files use other names).
const COLLECTION: &str = "streamed";
/// The longest the writer writes, whatever its operation count.
const WRITE_FOR: Duration = Duration::from_secs(90);

/// The collection rebuilt from printed lines, each position applied once.
#[derive(Default)]
struct Rebuilt {
    docs: Docs,
    applied: HashSet<u64>,
}

impl Rebuilt {
    fn apply_output(&mut self, output: &Path) -> Result<()> {
        for_each_line(output, |line| {
            let event: Value = serde_json::from_str(line)
                .with_context(|| format!("a printed line is not JSON: {line}"))?;
            if self
                .applied
                .insert(hash(event["position"].as_str().unwrap_or_default()))
            {
                self.docs.apply(&event);
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Operations the writer does: a fiftieth of the crash stream's changes (it makes about six
/// changes per operation), at least 2,000.
fn operations(changes: u64) -> u64 {
    (changes / 50).clamp(2_000, 20_000)
}

pub(crate) fn run(ctx: &Ctx) -> Result<Outcome> {
    let started = Instant::now();
    if std::env::var_os("STREAM_TEST_SECANTUS").is_none() {
        // Installs the stand-in where stream-testkit looks for it.
        crate::servers::secantus_launcher()?;
    }
    let server = Secantus::start(DURABLE).map_err(anyhow::Error::msg)?;
    let url = db_url(&server);
    let wanted = operations(ctx.changes);
    eprintln!("chaos mongo-streamer: writing {wanted} operations...");
    let writer = Writer::start(ctx, &server.url(), COLLECTION, ctx.seed ^ 0x6d73)?;
    let writing = Instant::now();
    while writer.ops() < wanted && writing.elapsed() < WRITE_FOR {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (expected, dumped) = writer.files();
    let written = writer.finish()?;
    let write_seconds = writing.elapsed().as_secs_f64();

    let reference_out = ctx.work.join("mongo-streamer-reference.jsonl");
    let mut reference_args = vec![url.clone(), "--from".into(), "start".into()];
    reference_args.extend(["--idle-exit-ms", "8000"].map(str::to_owned));
    reference_args.extend(FULL_DOCUMENT.map(str::to_owned));
    read_uninterrupted(&ctx.ustream, &reference_args, &reference_out)?;
    // The line after each event's position: where a resume from it starts.
    let mut after: HashMap<String, usize> = HashMap::new();
    let reference = Reference::load_with(&reference_out, false, |event| {
        let position = event["position"].as_str().unwrap_or_default().to_owned();
        let next = after.len() + 1;
        after.insert(position, next);
        Ok(())
    })?;
    if reference.len() == 0 {
        bail!("the uninterrupted read of the MongoDB history printed nothing");
    }
    let reference_bytes = std::fs::metadata(&reference_out)?.len();
    let _ = std::fs::remove_file(&reference_out);

    let checkpoint_dir = ctx.work.join("mongo-streamer-checkpoint");
    let rebuilt = RefCell::new(Rebuilt::default());
    let on_output = |output: &Path| rebuilt.borrow_mut().apply_output(output);
    let resume = |position: &str| after.get(position).copied();
    let kills = (ctx.kills / 2).max(1);
    let subject = Subject {
        name: "mongo-streamer",
        program: ctx.streamer.clone(),
        args: vec![
            url.clone(),
            format!("{DB}.*"),
            checkpoint_dir.display().to_string(),
            "--from".into(),
            "start".into(),
        ],
        checkpoint: checkpoint_dir.join("mongodb.checkpoint.json"),
        seed: ctx.seed ^ 0x6d73_7472,
        kills,
        resume: &resume,
        must_place: false,
        on_output: Some(&on_output),
        saves: "once the callback returned for every event of a source batch",
    };
    let shared = Shared {
        lost: 0,
        misread: 0,
        total: reference.len() as u64,
        reference_bytes,
    };
    let mut outcome = killed_and_restarted(ctx, &reference, &subject, &shared)?;
    let rebuilt = rebuilt.into_inner();
    let mut notes = vec![format!(
        "the writer: {written} in {write_seconds:.0} s; an uninterrupted `ustream tail \
         --full-document off` read: {} lines; the collection rebuilt from the printed lines \
         ({} positions, each applied once):",
        reference.len(),
        rebuilt.applied.len()
    )];
    let want = Docs::load(&expected, COLLECTION)?;
    let held = Docs::load(&dumped, COLLECTION)?;
    let (m1, e1, d1) = rebuilt.docs.compare(
        &want,
        "rebuilt from the Streamer's lines vs written",
        &mut notes,
    );
    let (m2, e2, d2) = held.compare(&want, "the server's documents vs written", &mut notes);
    notes.extend(rebuilt.docs.examples.iter().cloned());
    outcome.notes.splice(0..0, notes);
    outcome.fault =
        "a `Streamer` on MongoDB (file checkpoints) killed (SIGKILL) and restarted".into();
    outcome.injected = format!(
        "{kills} kills at random points of {} changes (inserts, updates, deletes), same \
         command each restart",
        reference.len()
    );
    outcome.lost += m1 + e1 + m2 + e2;
    outcome.misread += d1 + d2 + rebuilt.docs.misread;
    outcome.seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "chaos mongo-streamer: done in {:.0} s (lost {}, misread {}, repeats {})",
        outcome.seconds, outcome.lost, outcome.misread, outcome.repeats
    );
    let _ = std::fs::remove_dir_all(&checkpoint_dir);
    drop(server);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_does_a_fiftieth_of_the_changes_within_bounds() {
        assert_eq!(operations(1_000_000), 20_000);
        assert_eq!(operations(100_000), 2_000);
        assert_eq!(operations(1_000), 2_000);
    }
}
