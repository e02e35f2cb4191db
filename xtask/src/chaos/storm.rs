//! `cargo xtask chaos --ddl-storm N`: stream-mysql's DDL storm test (seeded writes and ALTERs,
//! every decoded row compared with the server's `SELECT`, both metadata modes) for N seeds,
//! against the chaos command's own server.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{Ctx, Outcome};
use crate::util::workspace_root;

const ALTERS: u64 = 300;
const WRITES: u64 = 1_000;

pub(crate) fn run(ctx: &Ctx, seeds: u64) -> Result<Outcome> {
    let started = Instant::now();
    eprintln!("chaos storm: {seeds} seeds of {ALTERS} ALTERs and {WRITES} writes...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["test", "--quiet", "-p", "stream-mysql", "--test", "main"])
        .args(["mariadb_ddl_storm", "--", "--test-threads=1", "--nocapture"])
        // As a plain `cargo test` builds it (see `release_programs`).
        .env_remove("CARGO_MANIFEST_DIR")
        .env("STREAM_TEST_MYSQL_URL", &ctx.url)
        .env("STREAM_TEST_SEED", ctx.seed.to_string())
        .env("STREAM_TEST_DDL_STORM_SEEDS", seeds.to_string())
        .env("STREAM_TEST_DDL_STORM_ALTERS", ALTERS.to_string())
        .env("STREAM_TEST_DDL_STORM_WRITES", WRITES.to_string())
        .current_dir(workspace_root())
        .output()
        .context("running the DDL storm test")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut notes = vec![format!(
        "seeds {} to {} (`STREAM_TEST_SEED` replays one), binlog_row_metadata NO_LOG and FULL",
        ctx.seed,
        ctx.seed + seeds - 1
    )];
    let (mut run, mut refused) = (0u64, 0u64);
    for line in text.lines().filter(|l| l.starts_with("DDL storm ")) {
        let number = |before: &str| -> u64 {
            line.split(before)
                .next()
                .and_then(|head| head.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        run += number(" ALTERs run");
        refused += number(" refused by the server");
    }
    notes.push(format!(
        "{run} ALTERs run in all (both modes), {refused} refused by the server (not binlogged, \
         nothing to compare)"
    ));
    let failed = !out.status.success();
    if failed {
        notes.extend(
            text.lines()
                .filter(|l| l.contains("panicked") || l.contains("differ") || l.contains("failed"))
                .take(6)
                .map(str::to_owned),
        );
    }
    Ok(Outcome {
        fault: "DDL storm (stream-mysql's oracle test)".into(),
        injected: format!(
            "{seeds} seeds × {ALTERS} random ALTERs and {WRITES} writes, both metadata modes"
        ),
        changes: seeds * 2 * WRITES,
        lost: 0,
        misread: u64::from(failed),
        repeats: 0,
        outside_window: 0,
        died: 0,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}
