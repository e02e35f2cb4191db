//! `cargo xtask chaos`: the reliability campaign (docs/reliability.md). A MariaDB of its own, a
//! large change stream, and three faults: `ustream tail --checkpoint` killed at random points
//! and restarted, the server restarted under a running tail, the binlog purged past a
//! checkpoint. Every printed line is checked against an uninterrupted read (by position and
//! content) and the tables rebuilt from the events against the server's `SELECT`. Prints a
//! report and fails on any loss or misread. `--only PHASE,...` runs some of the phases
//! (`--help` lists them).

mod crash;
mod edges;
mod gtid;
mod mongo;
mod mongo_streamer;
mod purge;
mod server;
mod storm;
mod tail;
mod verify;
mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use stream_testkit::mariadb::MariaDb;

use crate::servers::unique_temp_dir;
use crate::util::{state_dir, workspace_root};

const USAGE: &str = "usage: cargo xtask chaos [--quick] [--changes N] [--kills N] [--restarts N] \
                     [--seed N] [--ustream PATH] [--ddl-storm SEEDS] [--edges] \
                     [--only PHASE[,PHASE...]]";

/// A part of the campaign `--only` can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Mongo,
    MongoStreamer,
    Crash,
    CrashStreamer,
    CrashGtid,
    Server,
    Purge,
    Storm,
    Edges,
}

/// Every phase: its `--only` name and what it does, in the order a run takes them.
const PHASES: &[(Phase, &str, &str)] = &[
    (
        Phase::Mongo,
        "mongo",
        "MongoDB stand-in restarted and killed under `ustream tail --checkpoint`; its oplog \
         pruned past the checkpoint, and the way back",
    ),
    (
        Phase::MongoStreamer,
        "mongo-streamer",
        "a `Streamer` on MongoDB (file checkpoints) killed (SIGKILL) at random points and \
         restarted",
    ),
    (
        Phase::Crash,
        "crash",
        "`ustream tail --checkpoint` killed (SIGKILL) at random points and restarted",
    ),
    (
        Phase::CrashStreamer,
        "crash-streamer",
        "a `Streamer` process (file checkpoints) killed (SIGKILL) at random points and restarted",
    ),
    (
        Phase::CrashGtid,
        "crash-gtid",
        "`ustream tail --gtid --checkpoint` (MariaDB GTID positions) killed (SIGKILL) at random \
         points and restarted",
    ),
    (
        Phase::Server,
        "server",
        "MariaDB stopped and killed under a running `ustream tail`",
    ),
    (
        Phase::Purge,
        "purge",
        "binlog purged past a checkpoint: the typed error, and the way back (a re-snapshot \
         killed inside the snapshot)",
    ),
    (
        Phase::Storm,
        "storm",
        "stream-mysql's DDL storm test (`--ddl-storm SEEDS` seeds; 1 when only named here)",
    ),
    (
        Phase::Edges,
        "edges",
        "1,000 columns, 10,000 tables, a 64 MB row, a 1 M-row transaction: peak RSS (alone, \
         as `--edges`)",
    ),
];

/// The phases a run without `--only` takes: all but the edges, and the DDL storm only with
/// `--ddl-storm`.
fn default_phases(ddl_storm: u64) -> Vec<Phase> {
    PHASES
        .iter()
        .map(|p| p.0)
        .filter(|&p| p != Phase::Edges && (p != Phase::Storm || ddl_storm > 0))
        .collect()
}

/// `--only`'s value: phase names, comma separated.
fn parse_phases(list: &str) -> Result<Vec<Phase>> {
    let mut phases = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(&(phase, ..)) = PHASES.iter().find(|p| p.1 == name) else {
            let valid: Vec<&str> = PHASES.iter().map(|p| p.1).collect();
            bail!(
                "--only: unknown phase `{name}`; the phases are {}",
                valid.join(", ")
            );
        };
        if !phases.contains(&phase) {
            phases.push(phase);
        }
    }
    if phases.is_empty() {
        bail!("--only needs at least one phase\n{}", help());
    }
    if phases.contains(&Phase::Edges) && phases.len() > 1 {
        bail!("--only: `edges` runs alone (its server has settings of its own)");
    }
    Ok(phases)
}

/// `--help`: the usage and the phases.
fn help() -> String {
    let mut text =
        format!("{USAGE}\n\nphases (`--only`, comma separated; all but edges by default):\n");
    for (_, name, what) in PHASES {
        let _ = writeln!(text, "  {name:<16} {what}");
    }
    text
}

/// What one run of the command does.
#[derive(Debug)]
struct Args {
    changes: u64,
    kills: usize,
    restarts: usize,
    seed: u64,
    /// A `ustream` binary to use instead of building the release one.
    ustream: Option<PathBuf>,
    /// Seeds of stream-mysql's DDL storm test to run against the command's server.
    ddl_storm: u64,
    /// The phases to run, in the order of `PHASES`.
    phases: Vec<Phase>,
    /// `--help`: print the usage and the phases, run nothing.
    help: bool,
}

impl Args {
    fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

/// `USTREAM_CHAOS_CHANGES`: the stream's size when no flag gives it (for CI).
fn changes_from_env() -> Result<Option<u64>> {
    std::env::var("USTREAM_CHAOS_CHANGES")
        .ok()
        .map(|v| {
            v.parse()
                .with_context(|| format!("USTREAM_CHAOS_CHANGES: `{v}` is not a number"))
        })
        .transpose()
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        changes: changes_from_env()?.unwrap_or(1_000_000),
        kills: 20,
        restarts: 5,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
        ustream: None,
        ddl_storm: 0,
        phases: Vec::new(),
        help: false,
    };
    let mut only = None;
    let mut edges = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<&str> {
            it.next()
                .copied()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, v: &str| -> Result<u64> {
            v.parse()
                .with_context(|| format!("{name}: `{v}` is not a number"))
        };
        match *arg {
            "--quick" => a.changes = 100_000,
            "--changes" => a.changes = number("--changes", value("--changes")?)?.max(1_000),
            "--kills" => a.kills = number("--kills", value("--kills")?)? as usize,
            "--restarts" => a.restarts = number("--restarts", value("--restarts")?)? as usize,
            "--seed" => a.seed = number("--seed", value("--seed")?)?,
            "--ustream" => a.ustream = Some(PathBuf::from(value("--ustream")?)),
            "--ddl-storm" => a.ddl_storm = number("--ddl-storm", value("--ddl-storm")?)?,
            "--edges" => edges = true,
            "--only" => only = Some(parse_phases(value("--only")?)?),
            "--help" | "-h" => a.help = true,
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    a.phases = match (only, edges) {
        (Some(phases), false) => phases,
        (Some(phases), true) if phases == [Phase::Edges] => phases,
        (Some(_), true) => bail!("--edges runs alone: give it without --only\n{USAGE}"),
        (None, true) => vec![Phase::Edges],
        (None, false) => default_phases(a.ddl_storm),
    };
    if a.runs(Phase::Storm) && a.ddl_storm == 0 {
        a.ddl_storm = 1;
    }
    // In the order a run takes them, whatever the order given.
    a.phases
        .sort_by_key(|p| PHASES.iter().position(|q| q.0 == *p));
    Ok(a)
}

/// What every phase works with.
struct Ctx {
    server: MariaDb,
    /// `mysql://user:pass@127.0.0.1:port` of `server`.
    url: String,
    ustream: PathBuf,
    /// The `Streamer` example (`chaos_streamer`).
    streamer: PathBuf,
    /// The MongoDB writer (stream-testkit's `chaos_mongo_writer` example).
    mongo_writer: PathBuf,
    /// Outputs and checkpoints.
    work: PathBuf,
    seed: u64,
    changes: u64,
    kills: usize,
    restarts: usize,
}

/// One fault's result: a row of the report.
#[derive(Debug)]
struct Outcome {
    fault: String,
    injected: String,
    /// Distinct changes checked.
    changes: u64,
    lost: u64,
    misread: u64,
    repeats: u64,
    /// Repeats the guarantee does not allow (before the last checkpoint, or with no restart).
    outside_window: u64,
    /// Runs of `ustream tail` that exited with an error instead of streaming on.
    died: u64,
    seconds: f64,
    notes: Vec<String>,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.lost > 0 || self.misread > 0 || self.outside_window > 0 || self.died > 0
    }
}

/// The programs the campaign runs: `ustream`, the `Streamer` example and the MongoDB writer.
struct Programs {
    ustream: PathBuf,
    streamer: PathBuf,
    mongo_writer: PathBuf,
}

/// Builds the release programs in one cargo run (one feature set for all); `ustream` is the
/// given binary when there is one.
fn release_programs(ustream: Option<&PathBuf>) -> Result<Programs> {
    eprintln!("chaos: building the release ustream and the Streamer example...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    // `cargo run` (the xtask alias) sets CARGO_MANIFEST_DIR to xtask/; build scripts that watch
    // it (ring's) would then rerun, and everything above them (TLS, both drivers) be rebuilt
    // unlike by a plain `cargo build`.
    build.env_remove("CARGO_MANIFEST_DIR");
    build.args(["build", "--quiet", "--release"]);
    if ustream.is_none() {
        build.args(["-p", "stream-cli", "--bin", "ustream"]);
    }
    let status = build
        .args(["-p", "ultimate-stream", "--example", "chaos_streamer"])
        .args(["-p", "stream-testkit", "--example", "chaos_mongo_writer"])
        .args(["--features", STREAMER_FEATURES])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release of ustream and the chaos examples failed");
    }
    let release = state_dir()
        .parent()
        .map(|t| t.join("release"))
        .context("the target dir")?;
    Ok(Programs {
        ustream: ustream.cloned().unwrap_or_else(|| release.join("ustream")),
        streamer: release.join("examples").join("chaos_streamer"),
        mongo_writer: release.join("examples").join("chaos_mongo_writer"),
    })
}

/// The facade's features the `Streamer` example needs (those `ustream` is built with, so one
/// build serves both).
const STREAMER_FEATURES: &str =
    "ultimate-stream/streamer,ultimate-stream/mysql,ultimate-stream/mongo";

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    if a.help {
        print!("{}", help());
        return Ok(());
    }
    let edges_only = a.runs(Phase::Edges);
    let programs = release_programs(a.ustream.as_ref())?;
    let dir = unique_temp_dir("chaos");
    eprintln!("chaos: seed {}; MariaDB in {}", a.seed, dir.display());
    // A temp dir of its own: the machine's /tmp is shared with other servers and cleaners.
    let tmpdir = dir.join("server-tmp");
    std::fs::create_dir_all(&tmpdir)?;
    let tmpdir = format!("--tmpdir={}", tmpdir.display());
    let mut server_args = vec!["--max-binlog-size=32M", "--max-connections=500", &tmpdir];
    if edges_only {
        // 10,000 tables: one tablespace file each would take the slow disk tens of minutes.
        server_args.push("--innodb-file-per-table=OFF");
    }
    let server = MariaDb::start(&dir.join("server"), &server_args).map_err(anyhow::Error::msg)?;
    let version = server
        .sql("SELECT VERSION()")
        .map_err(anyhow::Error::msg)?
        .trim()
        .to_owned();
    let mut ctx = Ctx {
        url: server.url(),
        server,
        ustream: programs.ustream,
        streamer: programs.streamer,
        mongo_writer: programs.mongo_writer,
        work: dir.clone(),
        seed: a.seed,
        changes: a.changes,
        kills: a.kills,
        restarts: a.restarts,
    };
    let started = Instant::now();
    let result = if edges_only {
        edges::run(&mut ctx)
    } else {
        campaign(&mut ctx, &a).map(|outcomes| {
            let failed = outcomes.iter().any(Outcome::failed);
            (report(&ctx, &version, &outcomes, started), failed)
        })
    };
    drop(ctx);
    let _ = std::fs::remove_dir_all(&dir);
    let (report, failed) = result?;
    print!("{report}");
    let saved = state_dir().join(if edges_only {
        "chaos-edges-report.md"
    } else {
        "chaos-report.md"
    });
    if std::fs::create_dir_all(state_dir()).is_ok() && std::fs::write(&saved, &report).is_ok() {
        eprintln!("chaos: report saved in {}", saved.display());
    }
    if failed && edges_only {
        bail!("chaos --edges: an edge lost changes or went over its memory budget");
    }
    if failed {
        bail!(
            "chaos: changes were lost, misread or repeated outside the checkpoint window, or \
             ustream exited with an error"
        );
    }
    Ok(())
}

fn campaign(ctx: &mut Ctx, a: &Args) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    if a.runs(Phase::Mongo) {
        outcomes.extend(mongo_phase(ctx));
    }
    if a.runs(Phase::MongoStreamer) {
        outcomes.push(mongo_streamer::run(ctx)?);
    }
    let crash_subjects = crash::Subjects {
        tail: a.runs(Phase::Crash),
        streamer: a.runs(Phase::CrashStreamer),
        gtid: a.runs(Phase::CrashGtid),
    };
    let leftover = if crash_subjects.any() || a.runs(Phase::Purge) {
        let (crashed, leftover) = crash::run(ctx, crash_subjects)?;
        outcomes.extend(crashed);
        Some(leftover)
    } else {
        None
    };
    if a.runs(Phase::Server) {
        let restarted = server::run(ctx)?;
        eprintln!(
            "chaos: server phase done in {:.0} s (lost {}, misread {})",
            restarted.seconds, restarted.lost, restarted.misread
        );
        outcomes.push(restarted);
    }
    if let Some(leftover) = leftover.filter(|_| a.runs(Phase::Purge)) {
        outcomes.extend(purge::run(ctx, leftover)?);
    }
    if a.runs(Phase::Storm) {
        outcomes.push(storm::run(ctx, a.ddl_storm)?);
    }
    Ok(outcomes)
}

/// The MongoDB phase, on a server of its own: a failure here is a row of the report, not the
/// end of the run.
fn mongo_phase(ctx: &Ctx) -> Vec<Outcome> {
    let outcomes = mongo::run(ctx).unwrap_or_else(|e| {
        vec![Outcome {
            fault: "MongoDB stand-in faults".into(),
            injected: "(did not finish)".into(),
            changes: 0,
            lost: 0,
            misread: 0,
            repeats: 0,
            outside_window: 0,
            died: 1,
            seconds: 0.0,
            notes: vec![format!("FAILED: {e:#}")],
        }]
    });
    for o in &outcomes {
        eprintln!(
            "chaos: {} done in {:.0} s (lost {}, misread {}, repeats {})",
            o.fault, o.seconds, o.lost, o.misread, o.repeats
        );
    }
    outcomes
}

/// Thousands separators, for numbers pasted into docs.
fn n(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(ctx: &Ctx, version: &str, outcomes: &[Outcome], started: Instant) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "\n## `cargo xtask chaos` report\n\nseed {} · {} changes in the crash stream · MariaDB {version} \
         · {} · {:.0} s\n",
        ctx.seed,
        n(ctx.changes),
        ctx.ustream.display(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        r,
        "| fault | injected | changes checked | lost | misread | repeats |\n| --- | --- | ---: | ---: | ---: | ---: |"
    );
    for o in outcomes {
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} |",
            o.fault,
            o.injected,
            n(o.changes),
            n(o.lost),
            n(o.misread),
            n(o.repeats)
        );
    }
    for o in outcomes {
        let _ = writeln!(r, "\n{} ({:.0} s):", o.fault, o.seconds);
        for note in &o.notes {
            let _ = writeln!(r, "- {note}");
        }
        if o.died > 0 {
            let _ = writeln!(
                r,
                "- FAILED: `ustream tail` exited with an error {} times",
                o.died
            );
        }
        if o.outside_window > 0 {
            let _ = writeln!(
                r,
                "- FAILED: {} repeats outside the at-least-once window",
                o.outside_window
            );
        }
    }
    let verdict = if outcomes.iter().any(Outcome::failed) {
        "FAILED: see above"
    } else {
        "lost 0, misread 0 in every fault; repeats only after the last saved checkpoint"
    };
    let _ = writeln!(r, "\nverdict: {verdict}");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_numbers_have_thousands_separators() {
        assert_eq!(n(0), "0");
        assert_eq!(n(999), "999");
        assert_eq!(n(1_000), "1,000");
        assert_eq!(n(1_234_567), "1,234,567");
    }

    #[test]
    fn quick_is_a_tenth_of_the_default() {
        if std::env::var_os("USTREAM_CHAOS_CHANGES").is_none() {
            assert_eq!(parse(&[]).expect("parses").changes, 1_000_000);
        }
        assert_eq!(parse(&["--quick"]).expect("parses").changes, 100_000);
        assert!(parse(&["--kills"]).is_err());
    }

    #[test]
    fn without_only_every_phase_but_the_edges_runs_and_the_storm_only_when_asked() {
        let all = parse(&[]).expect("parses").phases;
        assert_eq!(
            all,
            [
                Phase::Mongo,
                Phase::MongoStreamer,
                Phase::Crash,
                Phase::CrashStreamer,
                Phase::CrashGtid,
                Phase::Server,
                Phase::Purge
            ]
        );
        let stormy = parse(&["--ddl-storm", "2"]).expect("parses");
        assert!(stormy.runs(Phase::Storm) && stormy.ddl_storm == 2);
        assert_eq!(parse(&["--edges"]).expect("parses").phases, [Phase::Edges]);
    }

    #[test]
    fn only_runs_the_named_phases_in_the_campaigns_order() {
        let a = parse(&["--only", "purge,crash-streamer"]).expect("parses");
        assert_eq!(a.phases, [Phase::CrashStreamer, Phase::Purge]);
        let storm = parse(&["--only", "storm"]).expect("parses");
        assert_eq!(
            (storm.phases.as_slice(), storm.ddl_storm),
            (&[Phase::Storm][..], 1)
        );
    }

    #[test]
    fn an_unknown_phase_is_refused_naming_the_valid_ones() {
        let err = parse(&["--only", "crash,crahs"])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("`crahs`"), "{err}");
        for (_, name, _) in PHASES {
            assert!(err.contains(name), "{err}");
        }
        assert!(parse(&["--only", "edges,crash"]).is_err());
        assert!(parse(&["--only", ""]).is_err());
    }

    #[test]
    fn help_lists_every_phase() {
        assert!(parse(&["--help"]).expect("parses").help);
        let text = help();
        for (_, name, _) in PHASES {
            assert!(text.contains(name), "{text}");
        }
    }
}
