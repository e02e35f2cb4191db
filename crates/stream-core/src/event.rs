//! Change events: one row (MySQL) or document (MongoDB) change, in commit order.

use std::fmt;
use std::sync::Arc;

use crate::position::Position;
use crate::value::{Name, Row};

/// Which kind of server an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// MySQL or MariaDB.
    MySql,
    /// MongoDB.
    MongoDb,
    /// Events an application pushed through the hub itself.
    App,
}

impl SourceKind {
    /// The contract's name: `mysql`, `mongodb`, `app`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::MySql => "mysql",
            SourceKind::MongoDb => "mongodb",
            SourceKind::App => "app",
        }
    }
}

/// A database and table (MongoDB: database and collection).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    /// Database name.
    pub db: Name,
    /// Table or collection name.
    pub table: Name,
}

impl Namespace {
    /// A namespace from its two parts.
    pub fn new(db: impl Into<Name>, table: impl Into<Name>) -> Self {
        Self {
            db: db.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// A new row or document.
    Insert,
    /// A changed row, or a MongoDB update operation.
    Update,
    /// A removed row or document.
    Delete,
    /// A MongoDB whole-document replacement.
    Replace,
}

impl Op {
    /// The contract's name: `insert`, `update`, `delete`, `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Replace => "replace",
        }
    }
}

/// MongoDB's update description: fields set (by dotted path) and fields removed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateDescription {
    /// Updated fields by dotted path.
    pub set: Row,
    /// Removed fields by dotted path.
    pub unset: Vec<String>,
}

/// One row or document change, with everything needed to resume after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Where it comes from.
    pub source: SourceKind,
    /// Database and table or collection.
    pub namespace: Namespace,
    /// What happened.
    pub op: Op,
    /// Primary key columns (MongoDB: `_id`); `None` when the table has no primary key.
    pub key: Option<Row>,
    /// The whole row before the change (update, delete; MongoDB: the pre-image if enabled).
    pub before: Option<Row>,
    /// The whole row after the change (insert, update, replace).
    pub after: Option<Row>,
    /// MongoDB update description.
    pub update: Option<UpdateDescription>,
    /// Resuming from this position yields exactly the events after this one.
    pub position: Position,
    /// Commit time in epoch milliseconds, as the server recorded it.
    pub ts_ms: i64,
    /// Transaction id (MariaDB `domain-server-seq`, MySQL `uuid:n`, MongoDB `lsid:txnNumber`).
    pub txn: Option<Arc<str>>,
}

impl ChangeEvent {
    /// The canonical JSON encoding (`docs/event-json.md`), without a trailing newline.
    pub fn to_json(&self) -> String {
        let mut buf = Vec::with_capacity(256);
        self.write_json(&mut buf);
        // The encoder writes only UTF-8: valid &str input, ASCII escapes and digits.
        String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the canonical JSON encoding to `buf` (no newline).
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        crate::json::write_event(buf, self);
    }

    /// A rough in-memory size in bytes, for batching by bytes.
    pub fn approx_size(&self) -> usize {
        let rows = [&self.key, &self.before, &self.after]
            .into_iter()
            .flatten()
            .map(Row::approx_size)
            .sum::<usize>();
        let update = self.update.as_ref().map_or(0, |u| {
            u.set.approx_size() + u.unset.iter().map(String::len).sum::<usize>()
        });
        128 + rows + update
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (the `ts_ms` of events a source
/// stamps itself: snapshots, pushed events, health events).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A change to a table's or collection's definition, or the end of a stream's validity.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// Where it comes from.
    pub source: SourceKind,
    /// The affected namespace (for a dropped database, the table part is empty).
    pub namespace: Namespace,
    /// What happened.
    pub kind: SchemaChangeKind,
    /// The DDL statement, where the source has one.
    pub statement: Option<String>,
    /// Resuming from this position yields the events after this change.
    pub position: Position,
    /// Commit time in epoch milliseconds.
    pub ts_ms: i64,
}

/// Kinds of schema change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SchemaChangeKind {
    /// A table or collection was created.
    Create,
    /// A table's columns changed.
    Alter,
    /// Renamed to the given namespace.
    Rename {
        /// The new name.
        to: Namespace,
    },
    /// The table or collection was dropped.
    Drop,
    /// All rows were removed at once.
    Truncate,
    /// The whole database was dropped.
    DropDatabase,
    /// MongoDB closed the change stream (`invalidate`).
    Invalidate,
}

/// What a source yields: row changes and schema changes, in commit order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceEvent {
    /// A row or document change.
    Change(ChangeEvent),
    /// A definition change.
    Schema(SchemaChange),
}

impl SourceEvent {
    /// The position after this event.
    pub fn position(&self) -> &Position {
        match self {
            SourceEvent::Change(c) => &c.position,
            SourceEvent::Schema(s) => &s.position,
        }
    }
}

/// A batch of events in commit order, and where to resume once all of them are handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The events, possibly none (a heartbeat that only moves the position).
    pub events: Vec<SourceEvent>,
    /// Resume point after this batch; may move ahead of the last event (heartbeats,
    /// filtered-out events), so an idle or fully filtered stream still advances.
    pub position: Position,
    /// Source state that belongs with `position` (a binlog reader's table definitions):
    /// when `Some`, save it as the checkpoint's `state` together with the position and hand it
    /// back to the source on restart; `None` means unchanged since the last batch that had one.
    pub state: Option<serde_json::Value>,
}
