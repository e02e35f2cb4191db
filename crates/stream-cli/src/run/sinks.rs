//! Sinks and their checkpoint store, from the checked config.
//!
//! **The seam.** `ustream run` drives sinks through the facade's `Streamer`, and the
//! PostgreSQL sink lives in the `stream-postgres` crate; neither `Streamer::sink` nor that
//! crate is on this branch yet. Wiring them in is three steps, all in this module and in
//! [`super::service`]:
//!
//! 1. [`build_sink`]: build `stream_postgres`'s replica sink from the [`SinkPlan`] (URL,
//!    schema, deletes, keyless, columns) and return it instead of the `NotWired` error.
//! 2. [`checkpoint_store`]: for [`Checkpoints::Postgres`], return `PostgresCheckpointStore`
//!    (positions in the sink's database, in the same transaction as the data).
//! 3. In `service::start_streamer`, hand each built sink to the builder with
//!    `.sink(&plan.name, sink, &sink_patterns(plan, sources))`, and route `on_error` to the
//!    streamer's retry policy and a `FileDeadLetterQueue` at the plan's dead-letter file.

use std::sync::Arc;

use stream_core::{CheckpointStore, FileCheckpointStore, Sink};

use super::RunError;
use super::plan::{Checkpoints, Server, SinkKind, SinkPlan, SourcePlan};

/// The sink `plan` describes.
pub(crate) async fn build_sink(plan: &SinkPlan) -> Result<Box<dyn Sink>, RunError> {
    match &plan.kind {
        SinkKind::Postgres { .. } => Err(RunError::NotWired {
            key: format!("sinks.{}", plan.name),
            what: "PostgreSQL sinks (the stream-postgres crate)".into(),
        }),
    }
}

/// Where positions are saved: `None` when nothing consumes the events.
pub(crate) async fn checkpoint_store(
    checkpoints: &Checkpoints,
) -> Result<Option<Arc<dyn CheckpointStore>>, RunError> {
    match checkpoints {
        Checkpoints::None => Ok(None),
        Checkpoints::Directory(dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| RunError::Input {
                    key: "checkpoints".into(),
                    reason: format!("cannot create {}: {e}", dir.display()),
                })?;
            Ok(Some(Arc::new(FileCheckpointStore::new(dir))))
        }
        Checkpoints::Postgres => Err(RunError::NotWired {
            key: "checkpoints".into(),
            what: "`checkpoints: postgres` (PostgresCheckpointStore, in stream-postgres)".into(),
        }),
    }
}

/// The namespace patterns a sink subscribes to: the include patterns of the sources that
/// feed it (a source without any: its URL's database, or everything).
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the patterns of `Streamer::sink`, once the facade has it"
    )
)]
pub(crate) fn sink_patterns(sink: &SinkPlan, sources: &[SourcePlan]) -> Vec<String> {
    let mut patterns: Vec<String> = Vec::new();
    for source in sources.iter().filter(|s| sink.sources.contains(&s.name)) {
        let (filter, database) = match &source.server {
            Server::MySql(config) => (&config.filter, config.database.as_deref()),
            Server::Mongo(config) => (&config.filter, config.database.as_deref()),
        };
        let own: Vec<String> = if filter.includes().is_empty() {
            vec![database.map_or_else(|| "*".to_owned(), |db| format!("{db}.*"))]
        } else {
            filter
                .includes()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        };
        for pattern in own {
            if pattern == "*" {
                return vec![pattern];
            }
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use stream_core::{NamespaceFilter, StartFrom};

    use super::*;
    use crate::run::config::{Deletes, Keyless};
    use crate::run::plan::{ErrorPolicy, ReadMode};

    fn mysql_source(name: &str, url: &str, include: &str) -> SourcePlan {
        let mut config = stream_mysql::MySqlConfig::from_url(url).expect("url");
        config.filter = NamespaceFilter::parse(include, "").expect("patterns");
        SourcePlan {
            name: name.into(),
            server: Server::MySql(config),
            from: StartFrom::Snapshot,
            mode: ReadMode::Stream,
        }
    }

    fn sink(sources: &[&str]) -> SinkPlan {
        SinkPlan {
            name: "warehouse".into(),
            kind: SinkKind::Postgres {
                url: "postgres://etl:pw@127.0.0.1/analytics".into(),
            },
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            schema: None,
            deletes: Deletes::Hard,
            keyless: Keyless::Refuse,
            on_error: ErrorPolicy::Stop,
            columns: Vec::new(),
        }
    }

    #[test]
    fn a_sink_subscribes_to_what_its_sources_include() {
        let sources = [
            mysql_source("shop", "mysql://u@h/", "shop.*,crm.users"),
            mysql_source("billing", "mysql://u@h/billing", ""),
            mysql_source("all", "mysql://u@h/", ""),
        ];
        assert_eq!(
            sink_patterns(&sink(&["shop"]), &sources),
            ["shop.*", "crm.users"]
        );
        assert_eq!(sink_patterns(&sink(&["billing"]), &sources), ["billing.*"]);
        assert_eq!(sink_patterns(&sink(&["all", "shop"]), &sources), ["*"]);
    }

    #[tokio::test]
    async fn postgres_sinks_say_they_are_not_wired_yet() {
        let err = build_sink(&sink(&["shop"])).await.err().expect("not wired");
        assert_eq!(
            err.to_string(),
            "sinks.warehouse: PostgreSQL sinks (the stream-postgres crate) are not wired into \
             `ustream run` yet"
        );
        assert_eq!(err.exit_code(), 1);
    }

    #[tokio::test]
    async fn a_checkpoint_directory_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        let store = checkpoint_store(&Checkpoints::Directory(nested.clone()))
            .await
            .expect("store");
        assert!(store.is_some() && nested.is_dir());
        assert!(
            checkpoint_store(&Checkpoints::None)
                .await
                .expect("none")
                .is_none()
        );
    }
}
