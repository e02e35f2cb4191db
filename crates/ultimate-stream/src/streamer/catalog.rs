//! The tables and collections the sources stream, so that a pattern that matches none of
//! them can be flagged (it may still match one created later). Listed once at start, then
//! learned from the stream itself: every change event's namespace, every created or renamed
//! table.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stream_core::{Namespace, NamespacePattern, SchemaChange, SchemaChangeKind};

use super::sources::SourceSpec;

/// How long listing the sources' tables may take at start before the streamer goes on without.
const LISTING_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct Catalog {
    known: RwLock<HashSet<Namespace>>,
    /// Whether `known` holds everything the sources stream today: not with a custom source
    /// (it may produce any namespace), without any source, or when a listing failed. Only
    /// then is "matches nothing" said.
    complete: AtomicBool,
}

impl Catalog {
    /// Lists the namespaces of every source.
    pub(crate) async fn load(specs: &[&SourceSpec]) -> Self {
        let catalog = Self::default();
        let listed = tokio::time::timeout(LISTING_TIMEOUT, async {
            let mut all = Vec::new();
            for spec in specs {
                all.extend(list(spec).await?);
            }
            Ok::<_, String>(all)
        })
        .await;
        match listed {
            // Without sources only pushed namespaces exist, and those cannot be listed.
            Ok(Ok(namespaces)) if !specs.is_empty() => {
                catalog.write().extend(namespaces);
                catalog.complete.store(true, Ordering::Release);
            }
            Ok(Ok(_)) => {}
            Ok(Err(reason)) => {
                tracing::debug!(
                    reason,
                    "cannot list the sources' tables; patterns are not checked"
                );
            }
            Err(_) => {
                tracing::debug!("listing the sources' tables timed out; patterns are not checked");
            }
        }
        catalog
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<Namespace>> {
        self.known.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<Namespace>> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A namespace seen in the stream (or pushed) exists.
    pub(crate) fn learn(&self, namespace: &Namespace) {
        if !self.read().contains(namespace) {
            self.write().insert(namespace.clone());
        }
    }

    pub(crate) fn learn_schema_change(&self, change: &SchemaChange) {
        match &change.kind {
            SchemaChangeKind::Create => self.learn(&change.namespace),
            SchemaChangeKind::Rename { to } => self.learn(to),
            _ => {}
        }
    }

    /// Whether none of the patterns matches a namespace the sources stream today (never said
    /// when that is not known for sure).
    pub(crate) fn matches_nothing(&self, patterns: &[NamespacePattern]) -> bool {
        self.complete.load(Ordering::Acquire)
            && !self
                .read()
                .iter()
                .any(|ns| patterns.iter().any(|p| p.matches(ns)))
    }

    /// The known namespaces whose table is called `table`, sorted (for suggestions).
    pub(crate) fn tables_named(&self, table: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .read()
            .iter()
            .filter(|ns| &*ns.table == table)
            .map(ToString::to_string)
            .collect();
        found.sort();
        found
    }
}

async fn list(spec: &SourceSpec) -> Result<Vec<Namespace>, String> {
    match spec {
        #[cfg(feature = "mysql")]
        SourceSpec::MySql(config) => mysql_tables(config).await,
        #[cfg(feature = "mongo")]
        SourceSpec::Mongo(config) => mongo_collections(config).await,
        SourceSpec::Custom { name, .. } => Err(format!("`{name}` is a custom source")),
    }
}

#[cfg(feature = "mysql")]
async fn mysql_tables(config: &stream_mysql::MySqlConfig) -> Result<Vec<Namespace>, String> {
    stream_mysql::list_tables(config)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(feature = "mongo")]
async fn mongo_collections(config: &stream_mongo::MongoConfig) -> Result<Vec<Namespace>, String> {
    stream_mongo::list_collections(config)
        .await
        .map_err(|e| e.to_string())
}

/// Reads a pattern as the streamer takes them: `db.table`, `db.*`, `*.audit`, or `*` for
/// everything. A bare name (`users`) is refused: it would mean every table of a database
/// called `users`, which is rarely what was meant. The error shows both ways to write it,
/// with the tables of that name the sources know of.
pub(crate) fn parse_pattern(
    text: &str,
    catalog: Option<&Catalog>,
) -> Result<NamespacePattern, super::StreamerError> {
    let trimmed = text.trim();
    if trimmed != "*" && !trimmed.is_empty() && !trimmed.contains('.') {
        let known = catalog.map(|c| c.tables_named(trimmed)).unwrap_or_default();
        let table = match known.as_slice() {
            [] => format!("`<database>.{trimmed}` (e.g. `shop.{trimmed}`) for one table"),
            [one] => format!("`{one}` for that table"),
            many => format!(
                "one of {} for one table",
                many.iter()
                    .map(|ns| format!("`{ns}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(super::StreamerError::config(
            "pattern",
            format!(
                "`{trimmed}` has no `.`: write {table}, or `{trimmed}.*` for every table of database `{trimmed}`"
            ),
        ));
    }
    text.parse()
        .map_err(|e: stream_core::PatternError| super::StreamerError::config("pattern", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_refused_with_both_ways_to_write_it() {
        let catalog = Catalog::default();
        let err = parse_pattern("users", Some(&catalog)).expect_err("bare");
        let text = err.to_string();
        assert!(text.contains("`shop.users`"), "{text}");
        assert!(text.contains("`users.*`"), "{text}");
        catalog.learn(&Namespace::new("crm", "users"));
        let text = parse_pattern("users", Some(&catalog))
            .expect_err("bare")
            .to_string();
        assert!(text.contains("write `crm.users` for that table"), "{text}");
        assert!(parse_pattern("*", None).is_ok());
        assert!(parse_pattern("shop.*", None).is_ok());
        assert!(parse_pattern("shop.", None).is_err());
    }

    #[test]
    fn matching_nothing_is_said_only_when_every_namespace_is_known() {
        let catalog = Catalog::default();
        let nope: Vec<NamespacePattern> = vec!["shop.nope".parse().expect("pattern")];
        assert!(!catalog.matches_nothing(&nope), "not listed: not known");
        catalog.complete.store(true, Ordering::Release);
        assert!(catalog.matches_nothing(&nope));
        catalog.learn(&Namespace::new("shop", "nope"));
        assert!(!catalog.matches_nothing(&nope));
    }
}
