//! Project automation, run as `cargo xtask <command>`.
//!
//! - `db up|down|status`: throwaway MariaDB, PostgreSQL, Redis, NATS (JetStream) and the
//!   MongoDB stand-in on free loopback ports, data in a temp dir, URLs in an env file.
//! - `test`: the lint steps, then servers up, every test of the workspace, servers down; fails
//!   loudly if a server cannot start.
//! - `lint`: clippy and rustdoc with all and with default features, warnings denied; crate
//!   READMEs show their tested doc example.
//! - `demo`: the newcomer's first run against a throwaway MariaDB.
//! - `bench`: binlog readers side by side on one binlog, and live commit-to-delivery lag.
//! - `fuzz`: the libFuzzer targets in `fuzz/`, each for a while, failing on a crash, hang or
//!   OOM (needs nightly and cargo-fuzz).
//! - `soak`: a `Streamer` with cache and subscribers under a steady write load for minutes:
//!   no loss or reorder, flat RSS, no fd growth, lag per minute (docs/soak.md).

mod bench;
mod chaos;
mod demo;
mod fuzz;
mod servers;
mod soak;
mod test;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  db up [--only mysql,pg,redis,nats,mongo]   start throwaway servers, write their URLs to target/xtask/servers.env
  db down                                    stop the servers that `db up` started
  db status                                  show the servers and their URLs
  test [-- <cargo test args>]                lint, then servers up, run every test of the workspace, servers down
  lint                                       clippy and rustdoc (all and default features, -D warnings), READMEs
  demo [--seconds N]                         live change events from a throwaway MariaDB shop
  bench [--quick] [--rows N] [--rounds N]    binlog readers side by side, and live lag (docs/benchmarks.md)
  fuzz [--minutes N] [target ...]            each fuzz target N minutes (default 10); fails on crash, hang, OOM
  chaos [--quick] [--changes N] [--kills N]  tail and Streamer kills, MariaDB and MongoDB restarts, purged history: nothing lost or misread (docs/reliability.md)
  chaos --edges                              1,000 columns, 10,000 tables, a 64 MB row, a 1 M-row transaction: peak RSS
  soak [--minutes N] [--rate R] [--subscribers S]  a Streamer with cache and subscribers under load: loss, RSS, fds, lag (docs/soak.md)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["db", "up", rest @ ..] => servers::up_command(rest),
        ["db", "down"] => servers::down_command(),
        ["db", "status"] => servers::status_command(),
        ["test", rest @ ..] => test::run(rest),
        ["lint", rest @ ..] => test::lint_command(rest),
        ["demo", rest @ ..] => demo::run(rest),
        ["bench", rest @ ..] => bench::run(rest),
        ["fuzz", rest @ ..] => fuzz::run(rest),
        ["chaos", rest @ ..] => chaos::run(rest),
        ["soak", rest @ ..] => soak::run(rest),
        [] | ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown command `{}`\n\n{USAGE}", words.join(" ")),
    }
}
