//! The config's meaning, checked: URLs that parse, patterns and positions that parse, names
//! that exist, settings that fit their source. Every error names its key path and line.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use stream_config::{ConfigError, ConfigErrors, KeyPath, Loaded};
use stream_core::{Cron, NamespaceFilter, NamespacePattern, PollSchedule, StartFrom};

use super::config::{
    ColumnConfig, Deletes, FullDocumentSetting, Keyless, OnError, PreImagesSetting, RunConfig,
    SinkConfig, SourceConfig, SourceMode,
};

/// Polling defaults, the polling sources' own.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const POLL_SAFETY_LAG: Duration = Duration::from_secs(1);

/// What `ustream run` will do, every setting checked.
pub(crate) struct Plan {
    pub(crate) sources: Vec<SourcePlan>,
    pub(crate) sinks: Vec<SinkPlan>,
    pub(crate) checkpoints: Checkpoints,
    /// `host:port`.
    pub(crate) listen: Option<String>,
}

/// One source, ready to build.
#[derive(Debug, Clone)]
pub(crate) struct SourcePlan {
    pub(crate) name: String,
    pub(crate) server: Server,
    /// Where to start when there is no checkpoint.
    pub(crate) from: StartFrom,
    pub(crate) mode: ReadMode,
}

/// The server a source reads, with its filter and settings in place.
#[derive(Debug, Clone)]
pub(crate) enum Server {
    MySql(stream_mysql::MySqlConfig),
    Mongo(stream_mongo::MongoConfig),
}

impl Server {
    fn label(&self) -> &'static str {
        match self {
            Server::MySql(_) => "mysql",
            Server::Mongo(_) => "mongodb",
        }
    }
}

/// Change capture or polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadMode {
    Stream,
    Poll {
        column: String,
        /// Every `interval`, or at the times of a cron `schedule`.
        schedule: PollSchedule,
        safety_lag: Duration,
    },
}

/// One sink, ready for [`super::sinks::build_sinks`].
#[derive(Debug, Clone)]
pub(crate) struct SinkPlan {
    pub(crate) name: String,
    pub(crate) kind: SinkKind,
    /// The names of the sources that feed it.
    pub(crate) sources: Vec<String>,
    pub(crate) schema: Option<String>,
    pub(crate) deletes: Deletes,
    pub(crate) keyless: Keyless,
    pub(crate) on_error: ErrorPolicy,
    /// MongoDB documents: column name, document path, PostgreSQL type, in file order.
    pub(crate) columns: Vec<(String, ColumnConfig)>,
}

/// What a sink writes to.
#[derive(Clone)]
pub(crate) enum SinkKind {
    /// `postgres://` or `postgresql://` (the URL, with its password: never print it).
    Postgres { url: String },
}

impl std::fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkKind::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &stream_core::redact_url(url))
                .finish(),
        }
    }
}

/// A sink's answer to an event it rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorPolicy {
    Stop,
    DeadLetter { file: PathBuf },
}

/// Where positions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checkpoints {
    /// Nowhere (no sink: nothing consumes the events, so nothing may be marked done).
    None,
    /// In each sink's database, in the same transaction as the data.
    Postgres,
    /// Files in a directory.
    Directory(PathBuf),
}

impl Plan {
    /// Checks `loaded` and returns the plan, or every error found.
    pub(crate) fn new(loaded: &Loaded<RunConfig>) -> Result<Plan, ConfigErrors> {
        let mut errors = Vec::new();
        let config = &loaded.value;
        if config.sources.is_empty() {
            errors.push(loaded.invalid(
                KeyPath::of(["sources"]),
                "at least one source is needed, e.g. `sources: {shop: {url: mysql://...}}`",
            ));
        }
        let mut sources = Vec::new();
        for (name, source) in config.sources.iter() {
            let key = KeyPath::of(["sources", name.as_str()]);
            check_name(loaded, &key, name, &mut errors);
            if let Some(plan) = source_plan(loaded, &key, name, source, &mut errors) {
                sources.push(plan);
            }
        }
        let mut sinks = Vec::new();
        for (name, sink) in config.sinks.iter() {
            let key = KeyPath::of(["sinks", name.as_str()]);
            check_name(loaded, &key, name, &mut errors);
            if let Some(plan) = sink_plan(loaded, &key, name, sink, &mut errors) {
                sinks.push(plan);
            }
        }
        for sink in &sinks {
            if let Some(reason) = super::overlap::colliding_sources(sink, &sources) {
                errors.push(loaded.invalid(KeyPath::of(["sinks", sink.name.as_str()]), reason));
            }
        }
        let checkpoints = checkpoints(loaded, &sinks, &mut errors);
        let listen = config.listen.as_deref().and_then(|listen| {
            check_listen(listen)
                .map_err(|reason| errors.push(loaded.invalid(KeyPath::of(["listen"]), reason)))
                .ok()
        });
        match ConfigErrors::new(errors) {
            Some(errors) => Err(errors),
            None => Ok(Plan {
                sources,
                sinks,
                checkpoints,
                listen,
            }),
        }
    }

    /// One line: what would run.
    pub(crate) fn summary(&self) -> String {
        let sources: Vec<String> = self
            .sources
            .iter()
            .map(|s| {
                let how = match &s.mode {
                    ReadMode::Stream => format!("stream from {}", start_label(&s.from)),
                    ReadMode::Poll { column, .. } => format!("poll by {column}"),
                };
                format!("{} ({} {how})", s.name, s.server.label())
            })
            .collect();
        let sinks: Vec<String> = self
            .sinks
            .iter()
            .map(|s| {
                let SinkKind::Postgres { .. } = s.kind;
                format!("{} (postgres <- {})", s.name, s.sources.join(", "))
            })
            .collect();
        let checkpoints = match &self.checkpoints {
            Checkpoints::None => "no checkpoints".to_owned(),
            Checkpoints::Postgres => "checkpoints in postgres".to_owned(),
            Checkpoints::Directory(dir) => format!("checkpoints in {}", dir.display()),
        };
        let listen = self
            .listen
            .as_deref()
            .map_or_else(|| "no HTTP".to_owned(), |l| format!("HTTP on {l}"));
        format!(
            "{} {}: {}; {} {}{}{}; {checkpoints}; {listen}",
            self.sources.len(),
            plural(self.sources.len(), "source"),
            sources.join(", "),
            self.sinks.len(),
            plural(self.sinks.len(), "sink"),
            if sinks.is_empty() { "" } else { ": " },
            sinks.join(", "),
        )
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn start_label(from: &StartFrom) -> String {
    match from {
        StartFrom::Earliest => "start".into(),
        StartFrom::Latest => "end".into(),
        StartFrom::Snapshot => "snapshot".into(),
        StartFrom::Position(position) => position.to_string(),
    }
}

/// Names become checkpoint keys, file names and metric labels.
fn check_name(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    name: &str,
    errors: &mut Vec<ConfigError>,
) {
    let fits = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !fits {
        errors.push(loaded.invalid(
            key.clone(),
            "a name holds 1 to 63 letters, digits, `-` and `_`",
        ));
    }
}

fn source_plan(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    name: &str,
    source: &SourceConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<SourcePlan> {
    let at = |k: &str| key.clone().key(k);
    let before = errors.len();
    let filter = namespace_filter(loaded, key, source, errors);
    let from = match source.from.as_deref() {
        None => StartFrom::Snapshot,
        Some(text) => StartFrom::from_str(text).unwrap_or_else(|e| {
            errors.push(loaded.invalid(
                at("from"),
                format!(
                    "expected snapshot, start, end or a position printed in an event's `position` field ({})",
                    e.reason
                ),
            ));
            StartFrom::Snapshot
        }),
    };
    let mode = read_mode(loaded, key, source, errors);
    let scheme = source
        .url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let server = match scheme.as_deref() {
        Some("mysql" | "mariadb") => {
            mongo_only(loaded, key, source, errors);
            match stream_mysql::MySqlConfig::from_url(&source.url) {
                Ok(mut config) => {
                    config.server_id = source.server_id;
                    config.filter = filter;
                    // The streamer reconnects, with its backoff and health events.
                    config.reconnect_for = Duration::ZERO;
                    Some(Server::MySql(config))
                }
                Err(e) => {
                    errors.push(loaded.invalid(at("url"), e.to_string()));
                    None
                }
            }
        }
        Some("mongodb" | "mongodb+srv") => {
            if source.server_id.is_some() {
                errors.push(loaded.invalid(at("server_id"), "only for MySQL/MariaDB sources"));
            }
            match stream_mongo::MongoConfig::from_url(&source.url) {
                Ok(mut config) => {
                    config.filter = filter;
                    config.reconnect_for = Duration::ZERO;
                    mongo_settings(loaded, key, source, &mode, &mut config, errors);
                    Some(Server::Mongo(config))
                }
                Err(e) => {
                    errors.push(loaded.invalid(at("url"), e.to_string()));
                    None
                }
            }
        }
        Some(other) => {
            let hint = match other {
                "postgres" | "postgresql" | "nats" | "redis" | "rediss" => {
                    format!("; {other}:// is a sink: put it under `sinks`")
                }
                _ => String::new(),
            };
            errors.push(loaded.invalid(
                at("url"),
                format!("expected a mysql://, mariadb:// or mongodb:// URL{hint}"),
            ));
            None
        }
        None => {
            errors.push(loaded.invalid(
                at("url"),
                "not a URL: expected mysql://user:password@host:port/ or mongodb://host/",
            ));
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(SourcePlan {
        name: name.to_owned(),
        server: server?,
        from,
        mode,
    })
}

fn namespace_filter(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    source: &SourceConfig,
    errors: &mut Vec<ConfigError>,
) -> NamespaceFilter {
    let mut parse = |list: &[String], field: &str| -> Vec<NamespacePattern> {
        list.iter()
            .enumerate()
            .filter_map(|(i, text)| {
                NamespacePattern::from_str(text)
                    .map_err(|e| {
                        errors.push(loaded.invalid(
                            key.clone().key(field).index(i),
                            format!(
                                "{}: expected db.table, db.* or *, with * and ? as wildcards",
                                e.reason
                            ),
                        ));
                    })
                    .ok()
            })
            .collect()
    };
    let include = parse(&source.include, "include");
    let exclude = parse(&source.exclude, "exclude");
    NamespaceFilter::new(include, exclude)
}

fn read_mode(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    source: &SourceConfig,
    errors: &mut Vec<ConfigError>,
) -> ReadMode {
    let at = |k: &str| key.clone().key(k);
    match source.mode {
        SourceMode::Stream => {
            let poll_only = [
                ("interval", source.interval.is_some()),
                ("column", source.column.is_some()),
                ("schedule", source.schedule.is_some()),
                ("safety_lag", source.safety_lag.is_some()),
            ];
            for (field, set) in poll_only {
                if set {
                    errors.push(loaded.invalid(at(field), "only used with `mode: poll`"));
                }
            }
            ReadMode::Stream
        }
        SourceMode::Poll => {
            if source.interval.is_some_and(|i| i.is_zero()) {
                errors.push(loaded.invalid(at("interval"), "must be more than 0s"));
            }
            let mut schedule = PollSchedule::Every(source.interval.unwrap_or(POLL_INTERVAL));
            if let Some(text) = &source.schedule {
                if source.interval.is_some() {
                    errors.push(loaded.invalid(
                        at("schedule"),
                        "set either `interval` or `schedule`, not both",
                    ));
                }
                match text.parse::<Cron>() {
                    Ok(cron) => schedule = PollSchedule::Cron(cron),
                    Err(e) => errors.push(loaded.invalid(at("schedule"), e.to_string())),
                }
            }
            match &source.column {
                Some(column) if !column.trim().is_empty() => ReadMode::Poll {
                    column: column.clone(),
                    schedule,
                    safety_lag: source.safety_lag.unwrap_or(POLL_SAFETY_LAG),
                },
                _ => {
                    errors.push(loaded.invalid(
                        at("column"),
                        "missing; `mode: poll` reads rows whose change column moved: name it (e.g. `column: updated_at`)",
                    ));
                    ReadMode::Stream
                }
            }
        }
    }
}

/// MongoDB-only keys on a MySQL source.
fn mongo_only(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    source: &SourceConfig,
    errors: &mut Vec<ConfigError>,
) {
    for (field, set) in [
        ("full_document", source.full_document.is_some()),
        ("pre_images", source.pre_images.is_some()),
    ] {
        if set {
            errors.push(loaded.invalid(key.clone().key(field), "only for MongoDB sources"));
        }
    }
}

fn mongo_settings(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    source: &SourceConfig,
    mode: &ReadMode,
    config: &mut stream_mongo::MongoConfig,
    errors: &mut Vec<ConfigError>,
) {
    use stream_mongo::{FullDocument, PreImages};
    if matches!(mode, ReadMode::Poll { .. }) {
        for (field, set) in [
            ("full_document", source.full_document.is_some()),
            ("pre_images", source.pre_images.is_some()),
        ] {
            if set {
                errors.push(loaded.invalid(
                    key.clone().key(field),
                    "only used with change streams (`mode: stream`): polling reads whole documents",
                ));
            }
        }
        return;
    }
    config.full_document = match source.full_document {
        None | Some(FullDocumentSetting::UpdateLookup) => FullDocument::UpdateLookup,
        Some(FullDocumentSetting::WhenAvailable) => FullDocument::WhenAvailable,
        Some(FullDocumentSetting::Required) => FullDocument::Required,
        Some(FullDocumentSetting::Off) => {
            errors.push(loaded.invalid(
                key.clone().key("full_document"),
                "`off` is refused: a pipeline to a table needs each update's full document; use update-lookup (the default), when-available or required",
            ));
            FullDocument::UpdateLookup
        }
    };
    config.pre_images = match source.pre_images {
        None | Some(PreImagesSetting::Off) => PreImages::Off,
        Some(PreImagesSetting::WhenAvailable) => PreImages::WhenAvailable,
        Some(PreImagesSetting::Required) => PreImages::Required,
    };
}

fn sink_plan(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    name: &str,
    sink: &SinkConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<SinkPlan> {
    let at = |k: &str| key.clone().key(k);
    let before = errors.len();
    let scheme = sink
        .url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let kind = match scheme.as_deref() {
        Some("postgres" | "postgresql") => match tokio_postgres::Config::from_str(&sink.url) {
            Ok(_) => Some(SinkKind::Postgres {
                url: sink.url.clone(),
            }),
            Err(e) => {
                errors.push(loaded.invalid(
                    at("url"),
                    format!(
                        "not a valid PostgreSQL URL ({}): {e}",
                        stream_core::redact_url(&sink.url)
                    ),
                ));
                None
            }
        },
        Some(kind @ ("nats" | "redis" | "rediss")) => {
            errors.push(loaded.invalid(
                at("url"),
                format!("{kind}:// sinks are not supported yet; postgres:// is"),
            ));
            None
        }
        Some("mysql" | "mariadb" | "mongodb" | "mongodb+srv") => {
            errors.push(loaded.invalid(
                at("url"),
                "expected a postgres:// URL; mysql:// and mongodb:// are sources: put it under `sources`",
            ));
            None
        }
        _ => {
            errors.push(loaded.invalid(
                at("url"),
                "expected a postgres://user:password@host:port/database URL",
            ));
            None
        }
    };
    let defined: Vec<&String> = loaded.value.sources.iter().map(|(n, _)| n).collect();
    let sources = match &sink.sources {
        None => defined.iter().map(|n| (*n).clone()).collect(),
        Some(listed) if listed.is_empty() => {
            errors.push(loaded.invalid(
                at("sources"),
                "lists no source; remove the key to take every source",
            ));
            Vec::new()
        }
        Some(listed) => {
            for (i, source) in listed.iter().enumerate() {
                if !defined.contains(&source) {
                    let names: Vec<&str> = defined.iter().map(|d| d.as_str()).collect();
                    errors.push(loaded.invalid(
                        at("sources").index(i),
                        format!(
                            "no source is named `{source}`; the sources are: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            listed.clone()
        }
    };
    if sink.schema.as_deref().is_some_and(|s| s.trim().is_empty()) {
        errors.push(loaded.invalid(
            at("schema"),
            "is empty; remove it to use the source database's name",
        ));
    }
    let on_error = match (sink.on_error, &sink.dead_letters) {
        (OnError::Stop, None) => ErrorPolicy::Stop,
        (OnError::Stop, Some(_)) => {
            errors
                .push(loaded.invalid(at("dead_letters"), "only used with `on_error: dead-letter`"));
            ErrorPolicy::Stop
        }
        (OnError::DeadLetter, Some(file)) => ErrorPolicy::DeadLetter { file: file.clone() },
        (OnError::DeadLetter, None) => {
            errors.push(loaded.invalid(
                at("dead_letters"),
                "missing; `on_error: dead-letter` needs a file for the rejected events (e.g. `dead_letters: warehouse.dlq.jsonl`)",
            ));
            ErrorPolicy::Stop
        }
    };
    check_columns(loaded, key, sink, &sources, errors);
    if errors.len() > before {
        return None;
    }
    Some(SinkPlan {
        name: name.to_owned(),
        kind: kind?,
        sources,
        schema: sink.schema.clone(),
        deletes: sink.deletes,
        keyless: sink.keyless,
        on_error,
        columns: sink.columns.0.clone(),
    })
}

fn check_columns(
    loaded: &Loaded<RunConfig>,
    key: &KeyPath,
    sink: &SinkConfig,
    sources: &[String],
    errors: &mut Vec<ConfigError>,
) {
    if sink.columns.is_empty() {
        return;
    }
    let fed_by_mongo = sources.iter().any(|name| {
        loaded
            .value
            .sources
            .get(name)
            .is_some_and(|s| s.url.to_ascii_lowercase().starts_with("mongodb"))
    });
    let columns = key.clone().key("columns");
    if !fed_by_mongo {
        errors.push(loaded.invalid(
            columns,
            "only for sinks fed by MongoDB sources (MySQL rows bring their own columns)",
        ));
        return;
    }
    for (name, column) in sink.columns.iter() {
        let at = columns.clone().key(name.as_str());
        if column.path.trim().is_empty() {
            errors.push(loaded.invalid(
                at.clone().key("path"),
                "is empty; give the document path, e.g. `customer.name`",
            ));
        }
        let sql_type = column.sql_type.trim();
        let plausible = !sql_type.is_empty()
            && sql_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _(),[]".contains(c));
        if !plausible {
            errors.push(loaded.invalid(
                at.key("type"),
                "expected a PostgreSQL type such as text, bigint, numeric(12,2), timestamptz or jsonb",
            ));
        }
    }
}

fn checkpoints(
    loaded: &Loaded<RunConfig>,
    sinks: &[SinkPlan],
    errors: &mut Vec<ConfigError>,
) -> Checkpoints {
    let key = KeyPath::of(["checkpoints"]);
    let all_postgres = sinks
        .iter()
        .all(|s| matches!(s.kind, SinkKind::Postgres { .. }));
    match loaded.value.checkpoints.as_deref().map(str::trim) {
        None if loaded.value.sinks.is_empty() => Checkpoints::None,
        None if all_postgres => Checkpoints::Postgres,
        None => {
            errors.push(loaded.invalid(
                key,
                "missing; write `checkpoints: postgres` or a directory for checkpoint files",
            ));
            Checkpoints::None
        }
        Some("postgres") if loaded.value.sinks.is_empty() => {
            errors.push(loaded.invalid(
                key,
                "`postgres` keeps each position in its sink's database, and there is no sink; use a directory",
            ));
            Checkpoints::None
        }
        Some("postgres") if !all_postgres => {
            errors.push(loaded.invalid(
                key,
                "`postgres` needs every sink to be postgres://; use a directory",
            ));
            Checkpoints::None
        }
        Some("postgres") => Checkpoints::Postgres,
        Some("") => {
            errors.push(loaded.invalid(key, "is empty; write `postgres` or a directory"));
            Checkpoints::None
        }
        Some(dir) => {
            let path = PathBuf::from(dir);
            if path.exists() && !path.is_dir() {
                errors.push(loaded.invalid(
                    key,
                    format!("{dir} is a file; checkpoints need a directory (created if missing)"),
                ));
            }
            Checkpoints::Directory(path)
        }
    }
}

/// `host:port`, port required (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`).
fn check_listen(listen: &str) -> Result<String, String> {
    let bad = || format!("expected host:port such as 127.0.0.1:9464, found `{listen}`");
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("an IPv6 address needs brackets: [{host}]:{port}"));
    }
    Ok(listen.to_owned())
}
