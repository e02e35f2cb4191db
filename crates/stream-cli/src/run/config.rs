//! The `ustream run` config file as written: serde types that refuse unknown keys. Checks of
//! meaning (URLs, patterns, names that must exist) are in [`super::plan`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunConfig {
    /// Named sources, in file order.
    #[serde(default)]
    pub(crate) sources: Ordered<SourceConfig>,
    /// Named sinks, in file order.
    #[serde(default)]
    pub(crate) sinks: Ordered<SinkConfig>,
    /// `postgres` or a directory.
    pub(crate) checkpoints: Option<String>,
    /// `host:port` for `/metrics`, `/health`, `/stats`.
    pub(crate) listen: Option<String>,
}

/// One source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceConfig {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) include: Vec<String>,
    #[serde(default)]
    pub(crate) exclude: Vec<String>,
    /// `snapshot` (default), `start`, `end` or a position: where to start without a checkpoint.
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) mode: SourceMode,
    /// Polling: time between polls.
    #[serde(default, with = "stream_config::duration::option")]
    pub(crate) interval: Option<Duration>,
    /// Polling: the change column (`updated_at`) or MongoDB field (`updatedAt`).
    pub(crate) column: Option<String>,
    /// Polling: a cron schedule (UTC) instead of `interval`.
    pub(crate) schedule: Option<String>,
    /// Polling: rows younger than this wait for the next poll.
    #[serde(default, with = "stream_config::duration::option")]
    pub(crate) safety_lag: Option<Duration>,
    /// MongoDB change streams: `after` of updates.
    pub(crate) full_document: Option<FullDocumentSetting>,
    /// MongoDB change streams: `before` of updates and deletes.
    pub(crate) pre_images: Option<PreImagesSetting>,
    /// MySQL/MariaDB: the replica server id to register with (unique by default).
    pub(crate) server_id: Option<u32>,
}

/// How a source reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", expecting = "stream or poll")]
pub(crate) enum SourceMode {
    /// The binlog or change streams.
    #[default]
    Stream,
    /// Polling a change column (where the binlog or change streams are not available).
    Poll,
}

/// MongoDB's `fullDocument` for updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    expecting = "update-lookup, when-available, required or off"
)]
pub(crate) enum FullDocumentSetting {
    UpdateLookup,
    WhenAvailable,
    Required,
    Off,
}

/// MongoDB's `fullDocumentBeforeChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    expecting = "off, when-available or required"
)]
pub(crate) enum PreImagesSetting {
    Off,
    WhenAvailable,
    Required,
}

/// One sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkConfig {
    /// The scheme picks the kind: `postgres://` (more later).
    pub(crate) url: String,
    /// The sources that feed it (default: all).
    pub(crate) sources: Option<Vec<String>>,
    /// The target schema (default: the source database's name).
    pub(crate) schema: Option<String>,
    #[serde(default)]
    pub(crate) deletes: Deletes,
    #[serde(default)]
    pub(crate) keyless: Keyless,
    #[serde(default)]
    pub(crate) on_error: OnError,
    /// Where rejected events go with `on_error: dead-letter`.
    pub(crate) dead_letters: Option<PathBuf>,
    /// MongoDB documents: table columns taken from document paths.
    #[serde(default)]
    pub(crate) columns: Ordered<ColumnConfig>,
}

/// What a delete does to the target row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", expecting = "soft or hard")]
pub(crate) enum Deletes {
    /// The row is marked deleted and kept.
    Soft,
    /// The row is removed.
    #[default]
    Hard,
}

/// What happens to tables without a primary or unique key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", expecting = "refuse or append")]
pub(crate) enum Keyless {
    /// The sink refuses them (a replica needs a key to apply updates and deletes).
    #[default]
    Refuse,
    /// Every change is appended as a row (a change log).
    Append,
}

/// What happens when the sink rejects an event (not when it is down: that is retried).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", expecting = "stop or dead-letter")]
pub(crate) enum OnError {
    /// The pipeline stops with the error.
    #[default]
    Stop,
    /// The event goes to the dead-letter file and the pipeline goes on.
    DeadLetter,
}

/// One target column of a MongoDB collection's table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnConfig {
    /// The dotted path in the document (`customer.name`).
    pub(crate) path: String,
    /// The PostgreSQL type (`text`, `bigint`, `numeric(12,2)`, `timestamptz`, `jsonb`, ...).
    #[serde(rename = "type")]
    pub(crate) sql_type: String,
}

/// A mapping whose entries keep the file's order (the order of columns, of startup).
#[derive(Debug)]
pub(crate) struct Ordered<V>(pub(crate) Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> Ordered<V> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Ordered<V>, E> {
                // `sinks:` with nothing under it.
                Ok(Ordered::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, V>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}
