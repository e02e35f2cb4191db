//! `cargo xtask fuzz`: every libFuzzer target in `fuzz/` (or the ones named) for a while each,
//! one after another, with limits that turn hangs and unbounded allocation into failures; then
//! a report per target, and a non-zero exit if any target crashed, hung or ran out of memory.
//!
//! Each target reads its committed seeds (`fuzz/seeds/<target>`) and grows a working corpus
//! (`fuzz/corpus/<target>`, not committed); libFuzzer writes failing inputs to
//! `fuzz/artifacts/<target>/`, and the whole log goes to `target/xtask/fuzz/<target>.log`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{state_dir, tail, workspace_root};

const USAGE: &str = "usage: cargo xtask fuzz [--minutes N | --seconds N] [target ...]";

/// libFuzzer's limits: an input running 10 s is a hang; a process over 2 GiB, or one
/// allocation over 512 MiB, is out of memory.
const LIMITS: [&str; 3] = ["-timeout=10", "-rss_limit_mb=2048", "-malloc_limit_mb=512"];

struct Args {
    seconds: u64,
    targets: Vec<String>,
}

fn parse(args: &[&str]) -> Result<Args> {
    let mut a = Args {
        seconds: 600,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        let mut num = |name: &str| -> Result<u64> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))?;
            v.parse()
                .with_context(|| format!("{name}: `{v}` is not a whole number\n{USAGE}"))
        };
        match arg {
            "--minutes" => a.seconds = num("--minutes")?.max(1) * 60,
            "--seconds" => a.seconds = num("--seconds")?.max(1),
            "-h" | "--help" => bail!("{USAGE}"),
            flag if flag.starts_with('-') => bail!("unknown option `{flag}`\n{USAGE}"),
            target => a.targets.push(target.to_owned()),
        }
    }
    Ok(a)
}

/// `cargo +nightly ...` through rustup's proxy, without the variables of the stable cargo
/// that runs xtask (they would pin the toolchain).
fn nightly_cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(root)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// Fails with how to install what is missing: the nightly toolchain, or cargo-fuzz.
fn check_tools(root: &Path) -> Result<()> {
    let works = |args: &[&str]| {
        nightly_cargo(root)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(&["--version"]) {
        bail!(
            "the nightly Rust toolchain is missing (libFuzzer needs its sanitizer flags): \
             install it with `rustup toolchain install nightly`"
        );
    }
    if !works(&["fuzz", "--version"]) {
        bail!("cargo-fuzz is missing: install it with `cargo install cargo-fuzz`");
    }
    Ok(())
}

/// The targets of `fuzz/Cargo.toml` (its `[[bin]]` names).
fn all_targets(root: &Path) -> Result<Vec<String>> {
    let manifest = root.join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            targets.push(name.trim_matches('"').to_owned());
        }
    }
    Ok(targets)
}

/// How one target's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    Crash(String),
    Hang,
    OutOfMemory(String),
    /// Stopped by a signal (SIGINT, SIGTERM) before its time was up: no finding, no verdict.
    Interrupted,
    /// The run failed without libFuzzer reporting a finding (a build error, a bad flag).
    Failed(String),
}

/// What one target's run did, read from libFuzzer's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Stats {
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    new_units: Option<u64>,
    coverage: Option<u64>,
    peak_rss_mb: Option<u64>,
    /// The failing input libFuzzer saved.
    artifact: Option<String>,
}

fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// A number of libFuzzer's status lines (`#123 NEW cov: 45 ft: 67 corp: 8/90b exec/s: 10
/// rss: 52Mb`), from the last line that has it.
fn status_field(log: &str, field: &str) -> Option<u64> {
    log.lines()
        .rev()
        .filter(|l| l.starts_with('#'))
        .find_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == field)?;
            words.next()?.trim_end_matches("Mb").parse().ok()
        })
}

fn read_stats(log: &str) -> Stats {
    let runs = stat(log, "stat::number_of_executed_units:").or_else(|| {
        let last = log.lines().rev().find(|l| l.starts_with('#'))?;
        last.split_whitespace()
            .next()?
            .trim_start_matches('#')
            .parse()
            .ok()
    });
    Stats {
        runs,
        execs_per_sec: stat(log, "stat::average_exec_per_sec:")
            .or_else(|| status_field(log, "exec/s:")),
        new_units: stat(log, "stat::new_units_added:"),
        coverage: status_field(log, "cov:"),
        peak_rss_mb: stat(log, "stat::peak_rss_mb:").or_else(|| status_field(log, "rss:")),
        artifact: log.lines().find_map(|l| {
            let path = l.split("Test unit written to ").nth(1)?;
            Some(path.trim().to_owned())
        }),
    }
}

/// The first line that says what went wrong, and the line after it (a panic's message).
fn failure_summary(log: &str, markers: &[&str]) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .iter()
        .position(|l| markers.iter().any(|m| l.contains(m)))
        .map(|i| {
            lines[i..lines.len().min(i + 2)]
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn outcome(success: bool, log: &str) -> Outcome {
    if success {
        return Outcome::Ok;
    }
    if log.contains("ERROR: libFuzzer: timeout") {
        return Outcome::Hang;
    }
    if log.contains("libFuzzer: run interrupted") {
        return Outcome::Interrupted;
    }
    if log.contains("ERROR: libFuzzer: out-of-memory")
        || log.contains("allocation-size-too-big")
        || log.contains("memory allocation of")
    {
        return Outcome::OutOfMemory(failure_summary(
            log,
            &[
                "out-of-memory",
                "allocation-size-too-big",
                "memory allocation of",
            ],
        ));
    }
    let crash_markers = [
        "panicked at",
        "ERROR: AddressSanitizer",
        "has overflowed its stack",
        "ERROR: libFuzzer: deadly signal",
        "ERROR: libFuzzer:",
    ];
    if crash_markers.iter().any(|m| log.contains(m)) {
        return Outcome::Crash(failure_summary(log, &crash_markers));
    }
    Outcome::Failed(
        log.lines()
            .rev()
            .find(|l| l.contains("error"))
            .unwrap_or("no libFuzzer output")
            .trim()
            .to_owned(),
    )
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(|e| e.ok()).count())
}

struct Report {
    target: String,
    seconds: u64,
    stats: Stats,
    corpus: usize,
    outcome: Outcome,
    log: PathBuf,
}

fn run_target(root: &Path, target: &str, seconds: u64) -> Result<Report> {
    let fuzz = root.join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let seeds = fuzz.join("seeds").join(target);
    std::fs::create_dir_all(&corpus)?;
    let logs = state_dir().join("fuzz");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    eprintln!(
        "xtask fuzz: {target} for {seconds} s (log: {})",
        log_path.display()
    );
    let mut cmd = nightly_cargo(root);
    cmd.args(["fuzz", "run", "--debug-assertions", target])
        .arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(LIMITS)
        .arg("-print_final_stats=1")
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run cargo fuzz for {target}"))?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Ok(Report {
        target: target.to_owned(),
        seconds: started.elapsed().as_secs(),
        stats: read_stats(&log),
        corpus: count_files(&corpus),
        outcome: outcome(status.success(), &log),
        log: log_path,
    })
}

fn show(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn print_report(reports: &[Report]) {
    println!(
        "\n{:<12} {:>6} {:>12} {:>8} {:>7} {:>6} {:>7} {:>7}  result",
        "target", "secs", "runs", "exec/s", "corpus", "new", "cov", "rss MB"
    );
    for r in reports {
        let result = match &r.outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Hang => "HANG (an input ran over 10 s)".to_owned(),
            Outcome::Crash(what) => format!("CRASH: {what}"),
            Outcome::OutOfMemory(what) => format!("OOM: {what}"),
            Outcome::Interrupted => "INTERRUPTED by a signal: run it again".to_owned(),
            Outcome::Failed(what) => format!("FAILED: {what}"),
        };
        println!(
            "{:<12} {:>6} {:>12} {:>8} {:>7} {:>6} {:>7} {:>7}  {result}",
            r.target,
            r.seconds,
            show(r.stats.runs),
            show(r.stats.execs_per_sec),
            r.corpus,
            show(r.stats.new_units),
            show(r.stats.coverage),
            show(r.stats.peak_rss_mb),
        );
        if r.outcome != Outcome::Ok {
            if let Some(artifact) = &r.stats.artifact {
                println!("{:<12} reproducer: {artifact}", "");
                println!(
                    "{:<12} replay: cargo +nightly fuzz run -a {} {artifact}",
                    "", r.target
                );
            }
            println!("{:<12} log: {}", "", r.log.display());
        }
    }
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let a = parse(args)?;
    let root = workspace_root();
    check_tools(&root)?;
    let known = all_targets(&root)?;
    if let Some(unknown) = a.targets.iter().find(|t| !known.contains(t)) {
        bail!(
            "no fuzz target `{unknown}`; the targets are: {}",
            known.join(", ")
        );
    }
    let targets = if a.targets.is_empty() {
        known
    } else {
        a.targets
    };
    eprintln!("xtask fuzz: building the fuzz targets ...");
    let build = nightly_cargo(&root)
        .args(["fuzz", "build", "--debug-assertions"])
        .output()
        .context("cannot run cargo fuzz build")?;
    if !build.status.success() {
        bail!(
            "cargo +nightly fuzz build failed:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
    }
    let mut reports = Vec::new();
    for target in &targets {
        let report = run_target(&root, target, a.seconds)?;
        if let Outcome::Failed(_) = report.outcome {
            eprintln!("{}", tail(&report.log, 20));
        }
        reports.push(report);
    }
    print_report(&reports);
    let named = |pick: fn(&Outcome) -> bool| -> Vec<&str> {
        reports
            .iter()
            .filter(|r| pick(&r.outcome))
            .map(|r| r.target.as_str())
            .collect()
    };
    let findings = named(|o| {
        matches!(
            o,
            Outcome::Crash(_) | Outcome::Hang | Outcome::OutOfMemory(_)
        )
    });
    let unfinished = named(|o| matches!(o, Outcome::Interrupted | Outcome::Failed(_)));
    let mut problems = Vec::new();
    if !findings.is_empty() {
        problems.push(format!(
            "fuzzing found problems in {}: keep each reproducer under fuzz/artifacts-found/<target>/",
            findings.join(", ")
        ));
    }
    if !unfinished.is_empty() {
        problems.push(format!(
            "{} did not run to the end (see the log)",
            unfinished.join(", ")
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = "\
INFO: Seed: 1
#2\tINITED cov: 120 ft: 130 corp: 3/40b exec/s: 0 rss: 40Mb
#4096\tpulse  cov: 150 ft: 170 corp: 9/300b lim: 40 exec/s: 2048 rss: 52Mb
#8000\tDONE   cov: 151 ft: 171 corp: 10/310b lim: 43 exec/s: 1333 rss: 53Mb
Done 8000 runs in 6 second(s)
stat::number_of_executed_units: 8000
stat::average_exec_per_sec:     1333
stat::new_units_added:          7
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              53
";

    #[test]
    fn a_clean_run_reports_libfuzzer_final_stats() {
        let s = read_stats(DONE);
        assert_eq!(
            (
                s.runs,
                s.execs_per_sec,
                s.new_units,
                s.coverage,
                s.peak_rss_mb
            ),
            (Some(8000), Some(1333), Some(7), Some(151), Some(53))
        );
        assert_eq!(outcome(true, DONE), Outcome::Ok);
    }

    #[test]
    fn crashes_hangs_and_ooms_are_told_apart_with_their_reproducer() {
        let crash = "#10\tNEW cov: 5 ft: 5 corp: 2/3b exec/s: 0 rss: 30Mb\n\
            thread '<unnamed>' panicked at src/tablemap.rs:12:5:\n\
            index out of bounds\n==1== ERROR: libFuzzer: deadly signal\n\
            artifact_prefix='a/'; Test unit written to fuzz/artifacts/x/crash-abc\n";
        let s = read_stats(crash);
        assert_eq!(s.artifact.as_deref(), Some("fuzz/artifacts/x/crash-abc"));
        assert_eq!(s.runs, Some(10));
        assert_eq!(
            outcome(false, crash),
            Outcome::Crash(
                "thread '<unnamed>' panicked at src/tablemap.rs:12:5: index out of bounds".into()
            )
        );
        assert_eq!(
            outcome(false, "==7== ERROR: libFuzzer: timeout after 10 seconds\n"),
            Outcome::Hang
        );
        let oom = "==7== ERROR: libFuzzer: out-of-memory (malloc(4294967296))\n";
        assert!(matches!(outcome(false, oom), Outcome::OutOfMemory(m) if m.contains("malloc")));
        assert!(matches!(
            outcome(false, "error: no such command: `fuzz`\n"),
            Outcome::Failed(_)
        ));
        assert_eq!(
            outcome(false, "==9== libFuzzer: run interrupted; exiting\n"),
            Outcome::Interrupted
        );
    }

    #[test]
    fn arguments_set_the_time_and_the_targets() {
        let a = parse(&["--minutes", "2", "ddl", "position"]).expect("args");
        assert_eq!((a.seconds, a.targets.len()), (120, 2));
        assert_eq!(parse(&[]).expect("defaults").seconds, 600);
        assert!(parse(&["--minutes"]).is_err());
        assert!(parse(&["--fast"]).is_err());
    }

    #[test]
    fn the_targets_are_the_fuzz_crates_binaries() {
        let targets = all_targets(&workspace_root()).expect("fuzz/Cargo.toml");
        for t in [
            "binlog_events",
            "binlog_rows",
            "binary_json",
            "ddl",
            "position",
            "event_json",
        ] {
            assert!(targets.iter().any(|x| x == t), "{t} in {targets:?}");
        }
    }
}
