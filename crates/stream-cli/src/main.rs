//! `ustream`: tail database changes as JSON lines (or a human view).
//!
//! stdout carries only the JSON lines of the event contract; everything else goes to stderr.

/// `eprintln!` in one write: stderr is unbuffered and `eprintln!` writes each piece of its
/// format on its own, so a script (or a test) reading stderr could see half a line.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!("{}\n", format_args!($($arg)*));
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }};
}

mod escape;
mod from;
mod pretty;
mod run;
mod schema_note;
mod signals;

/// Events are allocated on the reader thread and freed on the writer thread: mimalloc keeps
/// that cheap where glibc's allocator contends on its arena locks (stream-alloc).
#[global_allocator]
static GLOBAL: stream_alloc::MiMalloc = stream_alloc::MiMalloc;

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use stream_core::{
    CancellationToken, Checkpoint, CheckpointStore, ErrorClass, FileCheckpointStore, JsonLinesSink,
    NamespaceFilter, Position, Sink, Source, SourceEvent, StartFrom,
};

use crate::escape::escaped;
use crate::from::{UrlKind, parse_from};

/// The checkpoint name `ustream tail --checkpoint DIR` uses.
const PIPELINE: &str = "tail";

#[derive(Parser, Debug)]
#[command(
    name = "ustream",
    version,
    about = "Turn databases into live change streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print every row change of a MySQL/MariaDB binlog or MongoDB change stream.
    ///
    /// stdout carries one contract JSON object per row change (docs/event-json.md), or with
    /// `--format pretty` one line per change for people. Everything else goes to stderr:
    /// `streaming from POSITION`, schema changes (`schema change: table shop.orders altered`;
    /// the event contract has no JSON form for them, so they never reach stdout), errors.
    Tail(TailArgs),
    /// Inspect or replay a dead-letter file (events a streamer's callbacks rejected).
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Run every source and sink a config file names, with /metrics, /health and /stats.
    Run(run::RunArgs),
    /// Check a config file for `ustream run`: a one-line summary, or every error (exit 2).
    Validate(run::ValidateArgs),
    /// Print a commented example config for `ustream run`.
    Init,
}

#[derive(Subcommand, Debug)]
enum DeadLettersCommand {
    /// Print each letter (id, time, subscriber, reason, attempts, event) as one JSON line.
    List {
        /// The dead-letter file (`FileDeadLetterQueue`, one JSON object per line).
        file: std::path::PathBuf,
    },
    /// Print each letter's event as a contract JSON line on stdout, then remove the letters
    /// printed from the file: `ustream dead-letters replay dlq.jsonl | your-consumer`.
    /// Run it while no streamer writes to the file.
    Replay {
        /// The dead-letter file.
        file: std::path::PathBuf,
        /// Only the letters of this subscriber.
        #[arg(long)]
        subscriber: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct TailArgs {
    /// `mysql://user:pass@host:port/db` (MariaDB too) or `mongodb://...`; or leave it out and
    /// set `USTREAM_URL`, which keeps the password out of the process list (`ps`).
    #[arg(env = "USTREAM_URL", hide_env_values = true)]
    url: String,
    /// Where to start: `start` (the oldest change the server still has), `end` (changes
    /// from now on), `snapshot` (the selected tables' rows as inserts, then every change
    /// after them, no gap, no duplicate), or an event's `position` (resumes exactly after it).
    ///
    /// MySQL/MariaDB positions: `binlog:FILE:OFFSET+SKIP` (`binlog:mysql-bin.000003:1234+0`),
    /// `mariadb-gtid:DOMAIN-SERVER-SEQ,...+SKIP` (`mariadb-gtid:0-1-100+0`). MongoDB:
    /// `mongodb:TOKEN` (a resume token), `mongodb-time:SECONDS.INCREMENT` (a cluster time,
    /// `mongodb-time:1732272000.1`). The `mysql-snapshot:...` and `mongodb-snapshot:...`
    /// positions printed during a snapshot resume it. See docs/positions.md.
    #[arg(
        long,
        default_value = "end",
        value_name = "start|end|snapshot|POSITION"
    )]
    from: String,
    /// Only these `db.table` patterns, comma separated; `*` and `?` allowed.
    #[arg(long, default_value = "")]
    include: String,
    /// Never these `db.table` patterns, comma separated.
    #[arg(long, default_value = "")]
    exclude: String,
    /// Exit after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Exit 0 once no change arrived for this many milliseconds; the last stderr line says
    /// where to resume. Time while the source is reconnecting after a failure does not
    /// count; a failure is seen at once when the connection is refused or reset, after 5 s
    /// when a MariaDB connection goes silent, and only once the driver's own resume failed
    /// for MongoDB (10 to 30 s).
    #[arg(long)]
    idle_exit_ms: Option<u64>,
    /// Keep reconnecting for this many seconds of continuous failure before giving up (exit 1,
    /// saying where to resume); `forever` never gives up. Errors that retrying cannot fix
    /// (login, privileges, server settings, a purged position) end the run at once.
    #[arg(
        long,
        value_name = "SECONDS|forever",
        default_value = "60",
        value_parser = parse_reconnect_for
    )]
    reconnect_for: Duration,
    /// Replica server id to register with (MySQL/MariaDB); unique by default.
    #[arg(long)]
    server_id: Option<u32>,
    /// Save the position (and the table definitions) after every batch printed, in
    /// DIR/tail.checkpoint.json, and resume from it when it exists (instead of --from).
    /// At-least-once: after a crash, events printed after the last save are printed again.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<std::path::PathBuf>,
    /// Print MariaDB GTID positions (`mariadb-gtid:...`, failover-safe) instead of binlog
    /// file positions.
    #[arg(long)]
    gtid: bool,
    /// MongoDB: `after` of update events: `update-lookup` (the whole document as it is when
    /// read; the default), `off` (`null`), `when-available` or `required` (post-images
    /// recorded at the change).
    #[arg(long, value_enum, default_value_t = FullDocumentArg::UpdateLookup)]
    full_document: FullDocumentArg,
    /// MongoDB: `before` of updates and deletes from pre-images: `off`, `when-available`,
    /// `required` (the collection needs `changeStreamPreAndPostImages`).
    #[arg(long, value_enum, default_value_t = PreImagesArg::Off)]
    pre_images: PreImagesArg,
    /// MongoDB: ask the server to split events over 16 MB and join the fragments.
    #[arg(long)]
    split_large_events: bool,
    /// `jsonl` (the event contract, one object per line) or `pretty` (for humans).
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum FullDocumentArg {
    Off,
    UpdateLookup,
    WhenAvailable,
    Required,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum PreImagesArg {
    Off,
    WhenAvailable,
    Required,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Jsonl,
    Pretty,
}

fn main() {
    // Freed packets of a huge row go back to the OS before the row's values fill memory.
    let purge_delay = stream_alloc::return_freed_memory_promptly();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("USTREAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match &purge_delay {
        stream_alloc::PurgeDelay::FromEnvironment {
            warning: Some(warning),
            ..
        } => tracing::warn!("{warning}"),
        delay => {
            tracing::debug!(purge_delay = ?delay, "allocator: freed memory is returned after the purge delay")
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("ustream: error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Tail(args) => tail(args).await,
            Command::DeadLetters(command) => dead_letters(command).await,
            Command::Run(args) => run::run(args).await,
            Command::Validate(args) => run::validate(&args),
            Command::Init => run::init(),
        }
    });
    if let Err(e) = result {
        if let Some(code) = run::report(&e) {
            std::process::exit(code);
        }
        // One line, never the URL's password (errors are built from redacted parts), and no
        // terminal controls from names in the message.
        let msg = format!("{e:#}").replace('\n', " ");
        say!("ustream: error: {}", escaped(&msg));
        std::process::exit(1);
    }
}

async fn dead_letters(command: DeadLettersCommand) -> Result<()> {
    use stream_edge::{DeadLetterQueue as _, FileDeadLetterQueue};
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match command {
        DeadLettersCommand::List { file } => {
            let queue = FileDeadLetterQueue::new(&file);
            for letter in queue.list().await? {
                serde_json::to_writer(&mut out, &letter).context("writing to stdout")?;
                out.write_all(b"\n").context("writing to stdout")?;
            }
            out.flush().context("writing to stdout")?;
        }
        DeadLettersCommand::Replay { file, subscriber } => {
            let queue = FileDeadLetterQueue::new(&file);
            let wanted = |letter: &stream_edge::DeadLetter| {
                subscriber.as_deref().is_none_or(|s| letter.subscriber == s)
            };
            // A letter counts as delivered once its line reached stdout.
            let report = stream_edge::replay_matching(&queue, wanted, |letter| {
                let written = serde_json::to_writer(&mut out, &letter.event)
                    .map_err(|e| e.to_string())
                    .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()))
                    .and_then(|()| out.flush().map_err(|e| e.to_string()));
                std::future::ready(written)
            })
            .await?;
            say!(
                "replayed {} letters, {} failed, {} left in {}",
                report.replayed,
                report.failed,
                report.remaining,
                escaped(&file.display().to_string())
            );
        }
    }
    Ok(())
}

fn source_for(
    url: &str,
    kind: UrlKind,
    args: &TailArgs,
    filter: &NamespaceFilter,
    state: Option<serde_json::Value>,
) -> Result<Box<dyn Source>> {
    match kind {
        UrlKind::MySql => {
            let mut config = stream_mysql::MySqlConfig::from_url(url)?;
            config.filter = filter.clone();
            if let Some(id) = args.server_id {
                config.server_id = Some(id);
            }
            config.gtid_positions = args.gtid;
            config.schema_state = state;
            config.reconnect_for = args.reconnect_for;
            Ok(Box::new(stream_mysql::MySqlSource::new(config)))
        }
        UrlKind::MongoDb => {
            use stream_mongo::{FullDocument, PreImages};
            let mut config = stream_mongo::MongoConfig::from_url(url)?;
            config.filter = filter.clone();
            config.full_document = match args.full_document {
                FullDocumentArg::Off => FullDocument::Off,
                FullDocumentArg::UpdateLookup => FullDocument::UpdateLookup,
                FullDocumentArg::WhenAvailable => FullDocument::WhenAvailable,
                FullDocumentArg::Required => FullDocument::Required,
            };
            config.pre_images = match args.pre_images {
                PreImagesArg::Off => PreImages::Off,
                PreImagesArg::WhenAvailable => PreImages::WhenAvailable,
                PreImagesArg::Required => PreImages::Required,
            };
            config.split_large_events = args.split_large_events;
            config.reconnect_for = args.reconnect_for;
            Ok(Box::new(stream_mongo::MongoSource::new(config)))
        }
    }
}

async fn tail(args: TailArgs) -> Result<()> {
    let kind = UrlKind::of(&args.url)?;
    let mut from = parse_from(&args.from, kind)?;
    let filter = NamespaceFilter::parse(&args.include, &args.exclude)?;
    let checkpoints = args.checkpoint.as_ref().map(FileCheckpointStore::new);
    let mut state = None;
    if let Some(store) = &checkpoints
        && let Some(saved) = store.load(PIPELINE).await?
    {
        say!(
            "resuming from checkpoint {}",
            escaped(&saved.position.to_string())
        );
        from = StartFrom::Position(saved.position);
        state = saved.state;
    }
    let mut source = source_for(&args.url, kind, &args, &filter, state.clone())?;
    let shutdown = CancellationToken::new();
    signals::stop_on_signals(&shutdown);
    tracing::info!("connecting");
    let opened = tokio::select! {
        opened = source.open(from, shutdown.clone()) => opened?,
        () = shutdown.cancelled() => {
            // Nothing read, nothing to save: a signal while connecting (server selection
            // waits up to 10 s) ends at once. Exit here: the connection being made is not
            // closed, and a runtime ending under the MongoDB driver's tasks makes them panic.
            say!("ustream: stopped while starting");
            std::process::exit(0);
        }
    };
    say!("streaming from {}", escaped(&opened.start.to_string()));
    // Fused: read once more to its end at exit, whether or not it had ended.
    let mut batches = opened.batches.fuse();

    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut sink: Box<dyn Sink> = match args.format {
        Format::Jsonl => Box::new(JsonLinesSink::new("stdout", tokio::io::stdout())),
        Format::Pretty => Box::new(pretty::PrettySink::new(
            "stdout",
            tokio::io::stdout(),
            colour,
        )),
    };
    let mut ready: Vec<Arc<stream_core::ChangeEvent>> = Vec::new();
    let mut printed: u64 = 0;
    let limit = args.limit.unwrap_or(u64::MAX);
    let idle = args.idle_exit_ms.map(Duration::from_millis);
    let mut last_event = tokio::time::Instant::now();
    // Where a new run would go on from: the last position printed, or saved.
    let mut resume_at: Option<Position> = None;
    let mut waited_for_outage = false;

    'stream: while printed < limit {
        let idle_deadline = async {
            match idle {
                Some(idle) => tokio::time::sleep_until(last_event + idle).await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            // A signal ends the run now, whatever the source is waiting for (a server that
            // does not answer, say); what it read and did not hand over is not printed.
            () = shutdown.cancelled() => break 'stream,
            next = batches.next() => next,
            () = idle_deadline => {
                let idle = idle.unwrap_or_default();
                if stream_core::reconnecting() > 0 {
                    // An outage is not the end of the stream: wait for the source to come
                    // back, or to give up after its reconnect window (an error, exit 1).
                    if !waited_for_outage {
                        say!(
                            "ustream: idle for {} ms after {}, but the source is reconnecting; \
                             waiting for it",
                            idle.as_millis(),
                            events(printed)
                        );
                        waited_for_outage = true;
                    }
                    last_event = tokio::time::Instant::now();
                    continue 'stream;
                }
                say!(
                    "ustream: idle for {} ms after {}; exiting; {}",
                    idle.as_millis(),
                    events(printed),
                    resume_hint(checkpoints.is_some(), resume_at.as_ref(), &opened.start)
                );
                break 'stream;
            }
        };
        let Some(batch) = next else { break };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                close(batches).await;
                // A connection the stream could not get back (its reconnect window is over,
                // or a snapshot read failed): say how to go on from what was printed.
                if e.class() != ErrorClass::Transient {
                    return Err(e.into());
                }
                let resume = resume_hint(checkpoints.is_some(), resume_at.as_ref(), &opened.start);
                return Err(anyhow::Error::from(e).context(format!(
                    "the stream stopped on a connection failure it did not recover from; {resume}"
                )));
            }
        };
        if batch.state.is_some() {
            state.clone_from(&batch.state);
        }
        let mut reached = batch.position;
        ready.clear();
        for event in batch.events {
            let change = match event {
                SourceEvent::Change(change) => change,
                SourceEvent::Schema(schema) => {
                    if schema_note::concerns(&filter, &schema) {
                        say!("{}", schema_note::schema_change_line(&schema));
                    }
                    continue;
                }
                _ => continue,
            };
            if !filter.matches(&change.namespace) {
                continue;
            }
            printed += 1;
            last_event = tokio::time::Instant::now();
            if checkpoints.is_none() {
                resume_at = Some(change.position.clone());
            }
            let at_limit = printed >= limit;
            if at_limit {
                reached = change.position.clone();
            }
            ready.push(Arc::new(change));
            if at_limit {
                break;
            }
        }
        if !ready.is_empty() {
            sink.write(&ready).await?;
            // Printed: let the rows go before waiting for the next batch (a 64 MB row is not
            // kept while the next one is read).
            ready.clear();
        }
        if let Some(store) = &checkpoints {
            let checkpoint = Checkpoint {
                position: reached,
                state: state.clone(),
            };
            store.save(PIPELINE, &checkpoint).await?;
            resume_at = Some(checkpoint.position);
        }
    }
    // Say where to go on from before closing (which may wait a few seconds for a server that
    // is gone).
    let how = resume_hint(checkpoints.is_some(), resume_at.as_ref(), &opened.start);
    if shutdown.is_cancelled() {
        say!("ustream: stopped after {}; {how}", events(printed));
    } else if args.limit.is_some() && printed >= limit {
        say!(
            "ustream: stopped at --limit after {}; {how}",
            events(printed)
        );
    }
    sink.shutdown().await?;
    shutdown.cancel();
    close(batches).await;
    Ok(())
}

/// `--reconnect-for`: whole seconds, at least 1, or `forever`.
fn parse_reconnect_for(text: &str) -> Result<Duration, String> {
    if text.eq_ignore_ascii_case("forever") {
        return Ok(Duration::MAX);
    }
    match text.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!(
            "`{text}` is not a whole number of seconds (at least 1) or `forever`"
        )),
    }
}

/// `1 event`, `2 events`.
fn events(count: u64) -> String {
    format!("{count} event{}", if count == 1 { "" } else { "s" })
}

/// How a new run goes on from where this one stopped: `at` is the last position printed (or,
/// with checkpoints, saved), `start` where the stream started.
fn resume_hint(checkpoints: bool, at: Option<&Position>, start: &Position) -> String {
    match (checkpoints, at) {
        (true, Some(at)) => format!(
            "the same command resumes from its checkpoint, {}",
            escaped(&at.to_string())
        ),
        (true, None) => "the same command resumes from its checkpoint".to_owned(),
        (false, at) => format!(
            "resume with `--from {}`",
            escaped(&at.unwrap_or(start).to_string())
        ),
    }
}

/// Reads the stream to its end after shutdown (5 s at most): a source ends its stream once it
/// has closed its cursors and connections, which must happen before the runtime ends (the
/// MongoDB driver's tasks panic when the runtime ends under them).
async fn close(mut batches: impl futures::Stream + Unpin) {
    let drained = async { while batches.next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drained).await;
}
