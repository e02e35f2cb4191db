//! Schema changes as `ustream tail` reports them on stderr.
//!
//! The event contract (docs/event-json.md) has no JSON form for schema changes, so they never
//! go to stdout, where every line is a row change a machine reads: they are a note for the
//! person watching, one line each.

use stream_core::{Namespace, NamespaceFilter, SchemaChange, SchemaChangeKind, SourceKind};

use crate::escape::escaped;

/// `schema change: table shop.orders renamed to shop.orders_old`, with names escaped.
pub(crate) fn schema_change_line(change: &SchemaChange) -> String {
    let what = match change.source {
        SourceKind::MongoDb => "collection",
        _ => "table",
    };
    let name = shown(&change.namespace);
    let db = escaped(&change.namespace.db);
    let text = match &change.kind {
        SchemaChangeKind::Create => format!("{what} {name} created"),
        SchemaChangeKind::Alter => format!("{what} {name} altered"),
        SchemaChangeKind::Rename { to } => format!("{what} {name} renamed to {}", shown(to)),
        SchemaChangeKind::Drop => format!("{what} {name} dropped"),
        SchemaChangeKind::Truncate => format!("{what} {name} truncated"),
        SchemaChangeKind::DropDatabase => format!("database {db} dropped"),
        SchemaChangeKind::Invalidate if change.namespace.table.is_empty() => {
            format!("the change stream of database {db} was invalidated")
        }
        SchemaChangeKind::Invalidate => {
            format!("the change stream of {what} {name} was invalidated")
        }
        _ if change.namespace.table.is_empty() => format!("database {db} changed"),
        _ => format!("{what} {name} changed"),
    };
    format!("schema change: {text}")
}

/// Whether a change concerns the tables `filter` selects: its table, the new name of a renamed
/// one, or (for a whole database) any table the filter could select in it.
pub(crate) fn concerns(filter: &NamespaceFilter, change: &SchemaChange) -> bool {
    if change.namespace.table.is_empty() {
        let includes = filter.includes();
        return includes.is_empty() || includes.iter().any(|p| p.matches_db(&change.namespace.db));
    }
    filter.matches(&change.namespace)
        || matches!(&change.kind, SchemaChangeKind::Rename { to } if filter.matches(to))
}

/// `db.table`, or `db` alone when the change concerns a whole database.
fn shown(namespace: &Namespace) -> String {
    if namespace.table.is_empty() {
        escaped(&namespace.db).into_owned()
    } else {
        escaped(&namespace.to_string()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_core::Position;

    fn schema(source: SourceKind, db: &str, table: &str, kind: SchemaChangeKind) -> SchemaChange {
        SchemaChange {
            source,
            namespace: Namespace::new(db, table),
            kind,
            statement: None,
            position: Position::binlog("mysql-bin.000001", 4, 0),
            ts_ms: 0,
        }
    }

    fn change(source: SourceKind, db: &str, table: &str, kind: SchemaChangeKind) -> String {
        schema_change_line(&schema(source, db, table, kind))
    }

    #[test]
    fn only_changes_of_the_selected_tables_concern_the_user() {
        let filter = NamespaceFilter::parse("shop.o*", "").expect("filter");
        let mysql = SourceKind::MySql;
        let concerns = |db, table, kind| concerns(&filter, &schema(mysql, db, table, kind));
        assert!(concerns("shop", "orders", SchemaChangeKind::Alter));
        assert!(!concerns("shop", "users", SchemaChangeKind::Alter));
        assert!(concerns("shop", "", SchemaChangeKind::DropDatabase));
        assert!(!concerns("other", "", SchemaChangeKind::DropDatabase));
        let to = Namespace::new("shop", "orders");
        assert!(concerns("shop", "tmp", SchemaChangeKind::Rename { to }));
    }

    #[test]
    fn schema_changes_read_as_sentences() {
        let mysql = SourceKind::MySql;
        assert_eq!(
            change(
                mysql,
                "probe",
                "torename",
                SchemaChangeKind::Rename {
                    to: Namespace::new("probe", "renamed")
                }
            ),
            "schema change: table probe.torename renamed to probe.renamed"
        );
        assert_eq!(
            change(mysql, "probe", "", SchemaChangeKind::DropDatabase),
            "schema change: database probe dropped"
        );
        assert_eq!(
            change(mysql, "shop", "orders", SchemaChangeKind::Alter),
            "schema change: table shop.orders altered"
        );
        assert_eq!(
            change(SourceKind::MongoDb, "shop", "carts", SchemaChangeKind::Drop),
            "schema change: collection shop.carts dropped"
        );
        assert_eq!(
            change(
                SourceKind::MongoDb,
                "shop",
                "",
                SchemaChangeKind::Invalidate
            ),
            "schema change: the change stream of database shop was invalidated"
        );
    }

    #[test]
    fn names_with_terminal_controls_are_escaped() {
        assert_eq!(
            change(SourceKind::MySql, "x", "a\x1b[2J", SchemaChangeKind::Create),
            "schema change: table x.a\\u{1b}[2J created"
        );
    }
}
