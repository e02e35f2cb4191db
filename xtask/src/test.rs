//! `cargo xtask test`: the lint steps, then servers up, every test of the workspace against
//! them, servers down. `cargo xtask lint`: the lint steps alone.
//!
//! The lint steps live here rather than in CI's script, so that the README's test command is
//! exactly CI's check: clippy and rustdoc with every feature and with the default ones (a
//! `#[cfg(feature)]` path that only one of them compiles is still linted), each failing on any
//! warning; and every crate README's example is its crate's tested doc example. They share the
//! test run's target dir, and run before the servers start, so a warning costs no start-up.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use stream_testkit::LEFT_OUT;

use crate::servers::{self, Kind};

/// Which server a test binary or test name talks to, by the naming convention of the
/// integration tests (`tests/mariadb_*.rs`, `mod redis`, ...).
/// Unit and doc tests never count: only integration test binaries (`tests/*.rs`) talk to servers.
fn server_of(binary: &str, test: &str) -> Option<Kind> {
    if !binary.starts_with("tests/") {
        return None;
    }
    let hay = format!("{binary} {test}").to_ascii_lowercase();
    [
        (Kind::MariaDb, &["mariadb", "mysql"][..]),
        (Kind::Postgres, &["postgres"][..]),
        (Kind::Redis, &["redis"][..]),
        (Kind::Nats, &["nats"][..]),
        (Kind::Mongo, &["mongo"][..]),
    ]
    .into_iter()
    .find(|(_, words)| words.iter().any(|w| hay.contains(w)))
    .map(|(k, _)| k)
}

pub fn run(args: &[&str]) -> Result<()> {
    let extra: Vec<&str> = match args {
        ["--", rest @ ..] => rest.to_vec(),
        [] => Vec::new(),
        other => bail!("usage: cargo xtask test [-- <cargo test args>], got {other:?}"),
    };
    let started = Instant::now();
    lint()?;
    let linted = started.elapsed();
    let (fleet, owned) = match servers::load_running()? {
        Some(fleet) => {
            eprintln!("xtask: using the servers already up (`cargo xtask db status`)");
            (fleet, false)
        }
        None => {
            eprintln!("xtask: starting throwaway servers...");
            let fleet = servers::up(&Kind::ALL).context(
                "a test server could not be started, so the tests cannot run; \
                 nothing was skipped: fix the server or set its STREAM_TEST_*_URL",
            )?;
            (fleet, true)
        }
    };
    let servers_ready = started.elapsed() - linted;
    let result = run_cargo_test(&fleet, &extra);
    if owned {
        servers::down(&fleet);
    }
    eprintln!(
        "xtask: lint {:.1} s; servers ready in {:.1} s; whole run {:.1} s",
        linted.as_secs_f64(),
        servers_ready.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    result
}

#[derive(Default)]
struct Tally {
    passed: Vec<String>,
    failed: Vec<String>,
    ignored: Vec<String>,
}

fn run_cargo_test(fleet: &servers::Fleet, extra: &[&str]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"])
        .args(extra)
        .envs(fleet.env())
        // Tests that need a stand-in of their own (restarts, oplog pruning) start this one.
        .env("STREAM_TEST_SECANTUS", servers::secantus_launcher()?)
        .current_dir(crate::util::workspace_root());
    // One pipe for both streams: cargo's `Running tests/x.rs` (stderr) must stay in order with
    // the test results (stdout) to know which binary each test belongs to.
    let (stdout, writer) = std::io::pipe().context("creating a pipe")?;
    cmd.stdout(writer.try_clone().context("cloning the pipe")?)
        .stderr(writer);
    let mut child = cmd.spawn().context("running cargo test")?;
    drop(cmd);
    let mut per_server: Vec<(Kind, Tally)> = Kind::ALL
        .into_iter()
        .map(|k| (k, Tally::default()))
        .collect();
    let mut all = Tally::default();
    let mut left_out = Vec::new();
    let mut binary = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        let trimmed = line.trim();
        if trimmed.starts_with(LEFT_OUT) {
            left_out.push(trimmed.to_owned());
        }
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            binary = rest.to_owned();
        } else if trimmed.starts_with("Doc-tests ") {
            binary = trimmed.to_owned();
        }
        let Some(rest) = trimmed.strip_prefix("test ") else {
            continue;
        };
        let Some((name, outcome)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let label = format!("{} {name}", short_binary(&binary));
        let bucket = |t: &mut Tally| match outcome {
            "ok" => t.passed.push(label.clone()),
            o if o.starts_with("ignored") => t.ignored.push(label.clone()),
            _ => t.failed.push(label.clone()),
        };
        bucket(&mut all);
        if let Some(kind) = server_of(&binary, name)
            && let Some((_, tally)) = per_server.iter_mut().find(|(k, _)| *k == kind)
        {
            bucket(tally);
        }
    }
    let status = child.wait().context("waiting for cargo test")?;

    eprintln!("\n==== integration tests per server ====");
    let mut idle_servers = Vec::new();
    for (kind, tally) in &per_server {
        let url_from = fleet
            .servers
            .iter()
            .find(|s| s.kind == *kind)
            .map_or("not started", |s| {
                if s.pid.is_some() {
                    "throwaway"
                } else {
                    "from env"
                }
            });
        eprintln!(
            "{:<32} {:>3} passed {:>3} failed  ({url_from})",
            kind.label(),
            tally.passed.len(),
            tally.failed.len()
        );
        for name in tally.passed.iter().chain(&tally.failed) {
            eprintln!("    {name}");
        }
        if tally.passed.is_empty() && tally.failed.is_empty() {
            idle_servers.push(kind.label());
        }
    }
    eprintln!(
        "all tests: {} passed, {} failed, {} ignored",
        all.passed.len(),
        all.failed.len(),
        all.ignored.len()
    );
    if !all.ignored.is_empty() {
        eprintln!("IGNORED TESTS (not allowed to hide failures):");
        for name in &all.ignored {
            eprintln!("    {name}");
        }
    }
    for line in &left_out {
        eprintln!("{line}");
    }
    if !status.success() {
        fleet.post_mortem();
        bail!("cargo test failed ({status})");
    }
    if !left_out.is_empty() {
        bail!(
            "{} feature-gated suites were left out although every feature was on",
            left_out.len()
        );
    }
    if !idle_servers.is_empty() {
        bail!(
            "no integration test ran against: {}; a server nobody tests is a test gap",
            idle_servers.join(", ")
        );
    }
    if !all.ignored.is_empty() {
        bail!("{} tests are #[ignore]d", all.ignored.len());
    }
    Ok(())
}

/// `tests/servers.rs (target/debug/deps/servers-1234)` -> `servers`
fn short_binary(binary: &str) -> String {
    let first = binary.split_whitespace().next().unwrap_or(binary);
    let file = first.rsplit('/').next().unwrap_or(first);
    file.trim_end_matches(".rs").to_owned()
}

/// The cargo commands of the lint, in order; `RUSTDOCFLAGS` gets `-D warnings` for `doc`.
const LINT_STEPS: [&str; 4] = [
    "clippy --workspace --all-targets --all-features -- -D warnings",
    "clippy --workspace --all-targets -- -D warnings",
    "doc --workspace --no-deps --all-features",
    "doc --workspace --no-deps",
];

/// Crates whose README shows their crate-level doc example (checked by [`check_readmes`]).
const README_EXAMPLES: [&str; 6] = [
    "stream-core",
    "stream-cache",
    "stream-heartbeat",
    "stream-edge",
    "stream-premium",
    "stream-testkit",
];

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// `cargo xtask lint`.
pub fn lint_command(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask lint, got {args:?}");
    }
    lint()
}

/// Clippy and rustdoc, with all features and with the default ones, warnings denied; then the
/// READMEs. Stops at the first failing step.
pub fn lint() -> Result<()> {
    let root = crate::util::workspace_root();
    let started = Instant::now();
    for step in LINT_STEPS {
        let shown = format!("cargo {step}");
        eprintln!("xtask: lint: {shown}");
        let step_started = Instant::now();
        let mut cmd = cargo();
        cmd.args(step.split_whitespace()).current_dir(&root);
        if step.starts_with("doc ") {
            let mut flags = std::env::var("RUSTDOCFLAGS").unwrap_or_default();
            flags.push_str(" -D warnings");
            cmd.env("RUSTDOCFLAGS", flags.trim());
        }
        let status = cmd.status().with_context(|| format!("running {shown}"))?;
        if !status.success() {
            bail!("lint failed: `{shown}` ({status}); fix the warnings above");
        }
        eprintln!(
            "xtask: lint: {shown}: {:.1} s",
            step_started.elapsed().as_secs_f64()
        );
    }
    check_readmes(&root)?;
    eprintln!(
        "xtask: lint passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The example a crate README shows must be the crate's doc example (which rustdoc compiles
/// and runs), without the lines rustdoc hides.
fn check_readmes(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for name in README_EXAMPLES {
        let dir = root.join("crates").join(name);
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .with_context(|| format!("reading crates/{name}/{file}"))
        };
        let Some(doc) = doc_example(&read("src/lib.rs")?) else {
            problems.push(format!(
                "crates/{name}/src/lib.rs: no example in the crate docs"
            ));
            continue;
        };
        let Some(shown) = readme_example(&read("README.md")?) else {
            problems.push(format!("crates/{name}/README.md: no ```rust example"));
            continue;
        };
        if let Some(diff) = first_difference(&doc, &shown) {
            problems.push(format!(
                "crates/{name}/README.md: its first ```rust block is not the crate doc example \
                 of src/lib.rs (without hidden `# ` lines): {diff}"
            ));
        }
    }
    if !problems.is_empty() {
        bail!("lint failed:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// The first code block of the `//!` docs, without the lines rustdoc hides.
fn doc_example(lib: &str) -> Option<Vec<String>> {
    let docs = lib
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l));
    // Rust, and run or at least compiled by rustdoc.
    let tested = |fence: &str| {
        fence.split(',').map(str::trim).all(|attr| {
            matches!(attr, "" | "rust" | "no_run" | "should_panic") || attr.starts_with("edition")
        })
    };
    let block = code_block(docs, tested)?;
    let shown = block.into_iter().filter(|line| {
        let t = line.trim_start();
        t != "#" && !t.starts_with("# ")
    });
    Some(shown.collect())
}

/// The first ```rust block of a README.
fn readme_example(readme: &str) -> Option<Vec<String>> {
    code_block(readme.lines(), |fence| fence == "rust")
}

/// The lines of the first fenced block whose info string `wanted` accepts.
fn code_block<'a>(
    lines: impl Iterator<Item = &'a str>,
    wanted: impl Fn(&str) -> bool,
) -> Option<Vec<String>> {
    let mut lines = lines;
    loop {
        let Some(fence) = lines.next()?.trim_start().strip_prefix("```") else {
            continue;
        };
        let fence = fence.trim().to_owned();
        let mut block = Vec::new();
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            block.push(line.to_owned());
        }
        if wanted(&fence) {
            return Some(block);
        }
    }
}

/// Where two examples first differ, for the error message.
fn first_difference(expected: &[String], found: &[String]) -> Option<String> {
    let differs = expected
        .iter()
        .zip(found)
        .position(|(e, f)| e.trim_end() != f.trim_end());
    match differs {
        Some(i) => Some(format!(
            "line {}: expected `{}`, found `{}`",
            i + 1,
            expected[i].trim(),
            found[i].trim()
        )),
        None if expected.len() != found.len() => Some(format!(
            "{} lines expected, {} found",
            expected.len(),
            found.len()
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_are_attributed_to_servers_by_name() {
        assert_eq!(
            server_of(
                "tests/mariadb_types.rs (target/debug/deps/x)",
                "decodes_ints"
            ),
            Some(Kind::MariaDb)
        );
        assert_eq!(
            server_of("tests/servers.rs", "redis::answers_ping"),
            Some(Kind::Redis)
        );
        assert_eq!(
            server_of("unittests src/lib.rs", "hub::tests::fan_out"),
            None
        );
        assert_eq!(
            short_binary("tests/servers.rs (target/debug/deps/servers-ab12)"),
            "servers"
        );
    }

    #[test]
    fn the_readme_example_is_the_doc_example_without_hidden_lines() {
        let lib = "//! Intro.\n//!\n//! ```text\n//! not this\n//! ```\n//!\n//! ```no_run\n\
                   //! use x::Y;\n//! # fn main() {\n//!     Y::go();\n//!\n//! #\n//! # }\n//! ```\n\
                   //! ```\n//! second();\n//! ```\n\npub mod x;\n";
        let doc = doc_example(lib).expect("an example");
        assert_eq!(doc, ["use x::Y;", "    Y::go();", ""]);
        let readme = "# x\n\n```sh\ncargo add x\n```\n\n```rust\nuse x::Y;\n    Y::go();\n\n```\n";
        let shown = readme_example(readme).expect("a rust block");
        assert_eq!(first_difference(&doc, &shown), None);
        let other = readme_example("```rust\nuse x::Z;\n```\n").expect("a rust block");
        let diff = first_difference(&doc, &other).expect("differs");
        assert_eq!(diff, "line 1: expected `use x::Y;`, found `use x::Z;`");
        assert_eq!(
            first_difference(&doc, &shown[..1]).as_deref(),
            Some("3 lines expected, 1 found")
        );
        assert!(readme_example("no code").is_none());
    }

    #[test]
    fn every_crate_readme_shows_its_crate_doc_example() {
        check_readmes(&crate::util::workspace_root()).expect("READMEs match the crate docs");
    }
}
