//! `ustream run CONFIG.yaml`, `ustream validate CONFIG.yaml` and `ustream init`: every source
//! and sink a config file names, in one process (docs/run.md is the reference).
//!
//! | module | job |
//! | --- | --- |
//! | [`config`] | the file as written: serde types refusing unknown keys |
//! | [`plan`] | the file's meaning checked: URLs, patterns, positions, names, combinations |
//! | [`overlap`] | two sources of one sink that would write the same tables |
//! | [`sources`] | sources from the plan (change capture or polling) |
//! | [`sinks`] | PostgreSQL sinks (one per sink and source) and the checkpoint store |
//! | [`deliver`] | the sink the streamer drives: dead-letter file, counters, progress |
//! | [`progress`] | the initial snapshot's progress, on the terminal and in `/stats` |
//! | [`http`] | `/metrics`, `/health`, `/stats` on axum |
//! | [`login`] | every sink's PostgreSQL login checked before starting |
//! | [`service`] | the running process: streamer, HTTP, signals, exit on failure |
//! | [`dry_run`] | `--dry-run`: connect, check, print the DDL and the first events |

mod config;
mod deliver;
mod dry_run;
mod http;
mod login;
mod overlap;
mod plan;
mod progress;
mod service;
mod sinks;
mod sources;

use std::io::Write as _;
use std::path::PathBuf;

use stream_config::ConfigErrors;

use config::RunConfig;
use plan::Plan;

/// The environment prefix of overrides: `USTREAM__SINKS__WAREHOUSE__DELETES=hard`.
const ENV_PREFIX: &str = "USTREAM";

/// The commented example `ustream init` prints.
const EXAMPLE: &str = include_str!("example.yaml");

/// `ustream run`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The config file (`ustream init` prints an example).
    config: PathBuf,
    /// Connect, check the prerequisites, print the DDL the sinks would run and the first
    /// events, and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `ustream validate`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct ValidateArgs {
    /// The config file.
    config: PathBuf,
}

/// Why `run`, `validate` or `init` failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The config file is wrong: every error, one per line (exit 2).
    #[error("{0}")]
    Config(ConfigErrors),
    /// A setting is refused by what it points at: a wrong password, an address in use
    /// (exit 2).
    #[error("{key}: {reason}")]
    Input { key: String, reason: String },
    /// Anything that went wrong while running (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl RunError {
    /// 2 for a bad config or bad input, 1 for a failure while running.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::Input { .. } => 2,
            RunError::Runtime(_) => 1,
        }
    }
}

/// Prints a [`RunError`] (one line per error) and returns its exit code; `None` for other
/// errors, which the caller reports.
pub(crate) fn report(error: &anyhow::Error) -> Option<i32> {
    let error = error.downcast_ref::<RunError>()?;
    for line in error.to_string().lines() {
        say!("ustream: error: {line}");
    }
    Some(error.exit_code())
}

/// `ustream validate CONFIG.yaml`: a one-line summary, or every error.
pub(crate) fn validate(args: &ValidateArgs) -> anyhow::Result<()> {
    let plan = load(&args.config)?;
    println!("{}: ok: {}", args.config.display(), plan.summary());
    Ok(())
}

/// `ustream init`: the commented example config on stdout.
pub(crate) fn init() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(EXAMPLE.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| RunError::Runtime(format!("writing to stdout: {e}")))?;
    Ok(())
}

/// `ustream run CONFIG.yaml`: runs until SIGTERM or SIGINT, then finishes what is in flight.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let plan = load(&args.config)?;
    if args.dry_run {
        dry_run::dry_run(plan).await?;
    } else {
        service::run(plan).await?;
    }
    Ok(())
}

fn load(path: &std::path::Path) -> Result<Plan, RunError> {
    let loaded = stream_config::Loader::new()
        .env_prefix(ENV_PREFIX)
        .load_file::<RunConfig>(path)
        .map_err(RunError::Config)?;
    Plan::new(&loaded).map_err(RunError::Config)
}

#[cfg(test)]
mod tests;
