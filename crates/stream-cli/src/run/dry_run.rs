//! `ustream run --dry-run CONFIG.yaml`: connects to every source and sink, checks the
//! sources' prerequisites, prints where each source would start, the DDL each sink would run
//! and each source's first events, and writes nothing (no table, no checkpoint).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;
use stream_core::{
    CancellationToken, Checkpoint, CheckpointStore as _, ErrorClass, FileCheckpointStore,
    SourceEvent, StartFrom,
};
use stream_postgres::{PostgresCheckpointStore, PostgresSink};

use super::RunError;
use super::plan::{Checkpoints, Plan, Server, SinkKind, SourcePlan};
use super::sinks::{pipeline_key, postgres_config};
use super::sources::build_source;

/// Change events shown per source.
const FIRST_EVENTS: usize = 5;
/// How long to wait for them (a quiet source shows fewer).
const WAIT_FOR_EVENTS: Duration = Duration::from_secs(5);

/// What was read from one source.
struct Seen {
    events: Vec<SourceEvent>,
    state: Option<serde_json::Value>,
}

pub(crate) async fn dry_run(plan: Plan) -> Result<(), RunError> {
    super::login::check_sink_logins(&plan).await?;
    let mut out = String::new();
    let mut seen = Vec::with_capacity(plan.sources.len());
    for source in &plan.sources {
        let saved = saved_checkpoint(&plan, source).await?;
        let (from, state) = match saved {
            Some(c) => (StartFrom::Position(c.position), c.state),
            None => (source.from.clone(), None),
        };
        let read = first_events(source, from.clone(), state).await?;
        let shown = match &from {
            StartFrom::Position(p) => format!("its checkpoint, {p}"),
            StartFrom::Snapshot => "a snapshot (no checkpoint)".to_owned(),
            StartFrom::Earliest => "the oldest history (no checkpoint)".to_owned(),
            StartFrom::Latest => "now (no checkpoint)".to_owned(),
        };
        out.push_str(&format!(
            "-- sources.{}: connected, prerequisites met; would start from {shown}\n",
            source.name
        ));
        seen.push(read);
    }
    for sink in &plan.sinks {
        let postgres = PostgresSink::new(format!("{}-dry-run", sink.name), postgres_config(sink)?);
        let mut statements = Vec::new();
        for (source, read) in plan.sources.iter().zip(&seen) {
            if !sink.sources.contains(&source.name) {
                continue;
            }
            let wants = |db: &str, table: &str| match &source.server {
                Server::MySql(c) => c.wants(db, table),
                Server::Mongo(c) => c.wants(db, table),
            };
            let checkpoints = plan.checkpoints == Checkpoints::Postgres && statements.is_empty();
            let more = postgres
                .preview_ddl(&read.events, read.state.as_ref(), wants, checkpoints)
                .await
                .map_err(|e| RunError::Runtime(format!("sinks.{}: {e}", sink.name)))?;
            statements.extend(more);
        }
        if statements.is_empty() {
            out.push_str(&format!(
                "-- sinks.{}: connected; its tables exist, no DDL to run\n",
                sink.name
            ));
        } else {
            out.push_str(&format!("-- sinks.{}: connected; would run:\n", sink.name));
            for statement in statements {
                out.push_str(&statement);
                out.push_str(";\n");
            }
        }
    }
    for (source, read) in plan.sources.iter().zip(&seen) {
        let changes: Vec<&stream_core::ChangeEvent> = read
            .events
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Change(c) => Some(c),
                _ => None,
            })
            .collect();
        out.push_str(&format!(
            "-- sources.{}: first {} events:\n",
            source.name,
            changes.len()
        ));
        for change in changes {
            out.push_str(&change.to_json());
            out.push('\n');
        }
    }
    out.push_str("-- dry run: nothing was written\n");
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| RunError::Runtime(format!("writing to stdout: {e}")))
}

/// The checkpoint `run` would resume `source` from, read without creating anything.
async fn saved_checkpoint(
    plan: &Plan,
    source: &SourcePlan,
) -> Result<Option<Checkpoint>, RunError> {
    let fail = |e: stream_core::CheckpointError| RunError::Runtime(format!("checkpoints: {e}"));
    match &plan.checkpoints {
        Checkpoints::None => Ok(None),
        Checkpoints::Directory(dir) if !Path::new(dir).is_dir() => Ok(None),
        Checkpoints::Directory(dir) => FileCheckpointStore::new(dir)
            .load(&source.name)
            .await
            .map_err(fail),
        Checkpoints::Postgres => {
            let mut earliest: Option<Checkpoint> = None;
            for sink in plan
                .sinks
                .iter()
                .filter(|s| s.sources.contains(&source.name))
            {
                let SinkKind::Postgres { url } = &sink.kind;
                let found = PostgresCheckpointStore::new(url.clone())
                    .peek(&pipeline_key(&source.name, &sink.name))
                    .await
                    .map_err(|e| RunError::Runtime(format!("sinks.{}: {e}", sink.name)))?;
                let Some(found) = found else { return Ok(None) };
                earliest = match earliest {
                    Some(kept)
                        if found
                            .position
                            .compare(&kept.position)
                            .is_none_or(|o| o.is_ge()) =>
                    {
                        Some(kept)
                    }
                    _ => Some(found),
                };
            }
            Ok(earliest)
        }
    }
}

/// Opens `source` (its prerequisites are checked there) and reads its first events.
async fn first_events(
    source: &SourcePlan,
    from: StartFrom,
    state: Option<serde_json::Value>,
) -> Result<Seen, RunError> {
    let shutdown = CancellationToken::new();
    let key = format!("sources.{}", source.name);
    let opened = build_source(source, state.clone())
        .open(from, shutdown.clone())
        .await
        .map_err(|error| {
            if error.class() == ErrorClass::Definite {
                RunError::Input {
                    key: key.clone(),
                    reason: error.to_string(),
                }
            } else {
                RunError::Runtime(format!("{key}: {error}"))
            }
        })?;
    let mut batches = opened.batches;
    let mut seen = Seen {
        events: Vec::new(),
        state,
    };
    let deadline = tokio::time::Instant::now() + WAIT_FOR_EVENTS;
    let mut changes = 0;
    while changes < FIRST_EVENTS {
        let next = tokio::time::timeout_at(deadline, batches.next()).await;
        let batch = match next {
            Ok(Some(Ok(batch))) => batch,
            Ok(Some(Err(e))) => return Err(RunError::Runtime(format!("{key}: {e}"))),
            Ok(None) | Err(_) => break,
        };
        if batch.state.is_some() {
            seen.state = batch.state;
        }
        for event in batch.events {
            if changes == FIRST_EVENTS {
                break;
            }
            if matches!(event, SourceEvent::Change(_)) {
                changes += 1;
            }
            seen.events.push(event);
        }
    }
    shutdown.cancel();
    Ok(seen)
}
