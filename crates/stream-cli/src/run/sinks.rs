//! Sinks and their checkpoint store, from the checked config.
//!
//! Each sink of the file becomes one [`PostgresSink`] per source that feeds it, driven by the
//! streamer with `sink_from` (the sink gets that source's batches only: two sources may stream
//! databases of the same name). With `checkpoints: postgres` each of them writes its position
//! in its own database, in the same transaction as the data, under the key
//! `<source>.<sink>`; the streamer's checkpoint store then only reads: a source resumes from
//! the earliest position the sinks it feeds have reached, and sinks further ahead skip what
//! they hold already.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use stream_core::{Checkpoint, CheckpointError, CheckpointStore, FileCheckpointStore};
use stream_postgres::{
    ExtractedColumn, ExtractedType, PostgresCheckpointStore, PostgresSink, PostgresSinkConfig,
};

use super::RunError;
use super::config::{Deletes, Keyless};
use super::deliver::{RunSink, SinkStats};
use super::plan::{Checkpoints, ErrorPolicy, Plan, Server, SinkKind, SinkPlan, SourcePlan};

/// One sink fed by one source, ready for the streamer.
pub(crate) struct BuiltSink {
    /// The streamer's name for it: the sink's, or `sink.source` when several sources feed it.
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) patterns: Vec<String>,
    pub(crate) sink: RunSink,
    pub(crate) stats: Arc<SinkStats>,
}

/// The key of a source's position in a sink's `ustream.checkpoints`.
pub(crate) fn pipeline_key(source: &str, sink: &str) -> String {
    format!("{source}.{sink}")
}

/// Every sink of `plan`, one per (sink, source).
pub(crate) fn build_sinks(plan: &Plan) -> Result<Vec<BuiltSink>, RunError> {
    let mut built = Vec::new();
    for sink in &plan.sinks {
        let config = postgres_config(sink)?;
        for source in plan
            .sources
            .iter()
            .filter(|s| sink.sources.contains(&s.name))
        {
            let name = if sink.sources.len() == 1 {
                sink.name.clone()
            } else {
                format!("{}.{}", sink.name, source.name)
            };
            let mut postgres = PostgresSink::new(name.clone(), config.clone());
            if plan.checkpoints == Checkpoints::Postgres {
                postgres = postgres
                    .checkpoint_as(pipeline_key(&source.name, &sink.name))
                    .map_err(|e| RunError::Runtime(format!("sinks.{}: {e}", sink.name)))?;
            }
            let dead_letters = match &sink.on_error {
                ErrorPolicy::Stop => None,
                ErrorPolicy::DeadLetter { file } => {
                    Some(stream_edge::FileDeadLetterQueue::new(file.clone()))
                }
            };
            let stats = Arc::new(SinkStats::default());
            built.push(BuiltSink {
                patterns: sink_patterns(sink, std::slice::from_ref(source)),
                sink: RunSink::new(postgres, dead_letters, stats.clone()),
                stats,
                name,
                source: source.name.clone(),
            });
        }
    }
    Ok(built)
}

/// The stream-postgres settings of a sink.
pub(crate) fn postgres_config(plan: &SinkPlan) -> Result<PostgresSinkConfig, RunError> {
    let SinkKind::Postgres { url } = &plan.kind;
    let mut config = PostgresSinkConfig::new(url.clone());
    config.schema.clone_from(&plan.schema);
    config.deletes = match plan.deletes {
        Deletes::Soft => stream_postgres::Deletes::Soft,
        Deletes::Hard => stream_postgres::Deletes::Hard,
    };
    config.keyless = match plan.keyless {
        Keyless::Refuse => stream_postgres::Keyless::Refuse,
        Keyless::Append => stream_postgres::Keyless::Append,
    };
    config.on_error = match plan.on_error {
        ErrorPolicy::Stop => stream_postgres::OnError::Stop,
        ErrorPolicy::DeadLetter { .. } => stream_postgres::OnError::DeadLetter,
    };
    let mut columns = BTreeMap::new();
    for (name, column) in &plan.columns {
        let Some(column_type) = extracted_type(&column.sql_type) else {
            return Err(RunError::Input {
                key: format!("sinks.{}.columns.{name}.type", plan.name),
                reason: format!(
                    "`{}` is not supported for extracted columns; use text, boolean, integer, bigint, numeric, double precision, timestamptz or jsonb",
                    column.sql_type
                ),
            });
        };
        columns.insert(
            name.clone(),
            ExtractedColumn {
                path: column.path.clone(),
                column_type,
            },
        );
    }
    if !columns.is_empty() {
        // The file's columns apply to every collection of the sink.
        config.columns.insert("*".to_owned(), columns);
    }
    Ok(config)
}

/// The extracted-column type a PostgreSQL type name stands for (`numeric(12,2)` is numeric).
fn extracted_type(sql_type: &str) -> Option<ExtractedType> {
    let lower = sql_type.trim().to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or_default().trim();
    Some(match base {
        "text" | "varchar" | "character varying" => ExtractedType::Text,
        "boolean" | "bool" => ExtractedType::Boolean,
        "integer" | "int" | "int4" => ExtractedType::Integer,
        "bigint" | "int8" => ExtractedType::Bigint,
        "numeric" | "decimal" => ExtractedType::Numeric,
        "double precision" | "double" | "float8" => ExtractedType::Double,
        "timestamptz" | "timestamp with time zone" => ExtractedType::Timestamptz,
        "jsonb" | "json" => ExtractedType::Jsonb,
        _ => return None,
    })
}

/// Where positions are saved: `None` when nothing consumes the events.
pub(crate) async fn checkpoint_store(
    plan: &Plan,
) -> Result<Option<Arc<dyn CheckpointStore>>, RunError> {
    match &plan.checkpoints {
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
        Checkpoints::Postgres => Ok(Some(Arc::new(SinkCheckpoints::new(plan)))),
    }
}

/// `checkpoints: postgres`: the sinks write their positions with their data; this reads, for
/// each source, the earliest of the positions its sinks reached.
pub(crate) struct SinkCheckpoints {
    /// Source name → (sink name, the store of that sink's database).
    stores: BTreeMap<String, Vec<(String, PostgresCheckpointStore)>>,
}

impl SinkCheckpoints {
    fn new(plan: &Plan) -> Self {
        let mut stores: BTreeMap<String, Vec<(String, PostgresCheckpointStore)>> = BTreeMap::new();
        for sink in &plan.sinks {
            let SinkKind::Postgres { url } = &sink.kind;
            for source in &sink.sources {
                stores
                    .entry(source.clone())
                    .or_default()
                    .push((sink.name.clone(), PostgresCheckpointStore::new(url.clone())));
            }
        }
        Self { stores }
    }
}

/// The key of the position every sink of a source fed by several had made durable (saved by
/// the Streamer, which knows their order): a sink cannot be named with a leading `.`.
pub(crate) fn fan_out_key(source: &str) -> String {
    format!("{source}..fan-out")
}

#[async_trait::async_trait]
impl CheckpointStore for SinkCheckpoints {
    /// The earliest position of the sinks `source` feeds; none while one of them has none
    /// (it starts from the source's `from`). When their positions cannot be ordered (MongoDB
    /// resume tokens, snapshot positions of different tables), the last position all of them
    /// had made durable, which the Streamer saved in the first sink's database.
    async fn load(&self, source: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some(stores) = self.stores.get(source) else {
            return Ok(None);
        };
        let mut earliest: Option<(String, Checkpoint)> = None;
        let mut unordered = false;
        for (sink, store) in stores {
            let Some(found) = store.load(&pipeline_key(source, sink)).await? else {
                tracing::info!(
                    source,
                    sink,
                    "no checkpoint: the source starts from its `from`"
                );
                return Ok(None);
            };
            earliest = Some(match earliest {
                None => (sink.clone(), found),
                Some((first, kept)) => match found.position.compare(&kept.position) {
                    Some(Ordering::Less) => (sink.clone(), found),
                    Some(_) => (first, kept),
                    None => {
                        unordered = true;
                        (first, kept)
                    }
                },
            });
        }
        if unordered {
            let (first_sink, first_store) = &stores[0];
            return match first_store.load(&fan_out_key(source)).await? {
                Some(floor) => {
                    tracing::info!(source, position = %floor.position,
                        "the sinks' positions cannot be ordered; resuming from the last one every sink had made durable");
                    Ok(Some(floor))
                }
                None => {
                    tracing::warn!(source, sink = %first_sink,
                        "the sinks' positions cannot be ordered and no position shared by all of them was saved; starting from the source's `from` (each sink skips or re-applies what it has)");
                    Ok(None)
                }
            };
        }
        Ok(earliest.map(|(sink, checkpoint)| {
            tracing::info!(source, sink, position = %checkpoint.position, "resuming from the earliest sink");
            checkpoint
        }))
    }

    /// Each sink saves its own position in the transaction of its data; a source feeding
    /// several also keeps the position all of them made durable (what the Streamer saves
    /// here), for when theirs cannot be ordered.
    async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        match self.stores.get(source).map(Vec::as_slice) {
            Some([(_, first), _, ..]) => first.save(&fan_out_key(source), checkpoint).await,
            _ => Ok(()),
        }
    }
}

/// The namespace patterns a sink subscribes to: the include patterns of the sources that
/// feed it (a source without any: its URL's database, or everything).
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
    use crate::run::config::{ColumnConfig, Deletes, Keyless};
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

    #[test]
    fn a_sink_fed_by_two_sources_is_one_postgres_sink_per_source_with_its_own_checkpoint_key() {
        let plan = Plan {
            sources: vec![
                mysql_source("shop", "mysql://u@h/", "shop.*"),
                mysql_source("billing", "mysql://u@h/billing", ""),
            ],
            sinks: vec![sink(&["shop", "billing"])],
            checkpoints: Checkpoints::Postgres,
            listen: None,
        };
        let built = build_sinks(&plan).expect("sinks");
        let names: Vec<(&str, &str, &[String])> = built
            .iter()
            .map(|b| (b.name.as_str(), b.source.as_str(), b.patterns.as_slice()))
            .collect();
        assert_eq!(
            names,
            [
                ("warehouse.shop", "shop", &["shop.*".to_owned()][..]),
                (
                    "warehouse.billing",
                    "billing",
                    &["billing.*".to_owned()][..]
                ),
            ]
        );
        assert_eq!(pipeline_key("shop", "warehouse"), "shop.warehouse");
    }

    #[test]
    fn extracted_columns_take_the_postgres_type_names_and_refuse_others() {
        let mut plan = sink(&["shop"]);
        plan.columns = vec![
            (
                "total".into(),
                ColumnConfig {
                    path: "amount.total".into(),
                    sql_type: "numeric(12,2)".into(),
                },
            ),
            (
                "at".into(),
                ColumnConfig {
                    path: "at".into(),
                    sql_type: "timestamptz".into(),
                },
            ),
        ];
        let config = postgres_config(&plan).expect("config");
        let columns = &config.columns["*"];
        assert_eq!(columns["total"].column_type, ExtractedType::Numeric);
        assert_eq!(columns["at"].column_type, ExtractedType::Timestamptz);
        plan.columns[0].1.sql_type = "point".into();
        let err = postgres_config(&plan).expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("sinks.warehouse.columns.total.type: `point` is not supported"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[tokio::test]
    async fn a_checkpoint_directory_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        let mut plan = Plan {
            sources: Vec::new(),
            sinks: Vec::new(),
            checkpoints: Checkpoints::Directory(nested.clone()),
            listen: None,
        };
        let store = checkpoint_store(&plan).await.expect("store");
        assert!(store.is_some() && nested.is_dir());
        plan.checkpoints = Checkpoints::None;
        assert!(checkpoint_store(&plan).await.expect("none").is_none());
    }
}
