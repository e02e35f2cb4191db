//! The initial snapshot: a consistent read of the selected tables, chunked by primary key,
//! and the binlog position it corresponds to, so streaming continues with no gap and no
//! duplicate.
//!
//! MariaDB reports the binlog position of a `START TRANSACTION WITH CONSISTENT SNAPSHOT`
//! (`binlog_snapshot_file/position`) without locking anything; MySQL needs a brief
//! `FLUSH TABLES WITH READ LOCK` around the start of the transaction (RELOAD privilege).
//!
//! Resuming from a position inside a snapshot reads the remaining rows in a new consistent
//! view, then streams from the original binlog position, skipping (until the new view's
//! position) the changes the new view already holds ([`crate::view_filter`]). A fresh snapshot
//! hands over its start position before its first row, so a snapshot stopped before its first
//! checkpoint resumes too instead of starting over.

use mysql_async::Conn;
use mysql_async::prelude::*;
use stream_core::{
    ChangeEvent, ErrorClass, MySqlPosition, Namespace, Op, Position, SnapshotProgress, SourceError,
    SourceEvent, SourceKind, TxnStart, Value,
};

use crate::MySqlConfig;
use crate::schema::{Catalog, TableSchema};
use crate::server::map_err;
use crate::values::{json_text, json_to_param, key_of, quote, row_from_query};

/// Rows read per query; a shorter chunk ends the table.
pub(crate) const CHUNK: usize = 5000;

/// Opens a consistent snapshot on `conn`; returns the binlog file and offset it corresponds to.
pub(crate) async fn begin(
    config: &MySqlConfig,
    conn: &mut Conn,
) -> Result<(String, u64), SourceError> {
    let e = |err| map_err(config, err);
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(e)?;
    // TIMESTAMP values are read as UTC.
    conn.query_drop("SET SESSION time_zone = '+00:00'")
        .await
        .map_err(e)?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(e)?;
    let status: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(e)?;
    let get = |name: &str| {
        status
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let (Some(file), Some(pos)) = (get("binlog_snapshot_file"), get("binlog_snapshot_position"))
        && !file.is_empty()
    {
        let offset = pos.parse().map_err(|_| SourceError::Other {
            reason: format!("binlog_snapshot_position `{pos}` is not a number"),
            class: ErrorClass::Definite,
        })?;
        return Ok((file, offset));
    }
    // MySQL: hold the global read lock only while the transaction starts.
    conn.query_drop("ROLLBACK").await.map_err(e)?;
    conn.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .map_err(|err| match map_err(config, err) {
            SourceError::Prerequisite { .. } => SourceError::Prerequisite {
                setting: "privileges".into(),
                expected: "RELOAD (for the snapshot's FLUSH TABLES WITH READ LOCK)".into(),
                actual: "missing".into(),
            },
            other => other,
        })?;
    let started = async {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await?;
        conn.query_first::<mysql_async::Row, _>("SHOW MASTER STATUS")
            .await
    }
    .await;
    let unlocked = conn.query_drop("UNLOCK TABLES").await;
    let row = started
        .map_err(e)?
        .ok_or_else(|| SourceError::Prerequisite {
            setting: "log_bin".into(),
            expected: "ON".into(),
            actual: "OFF (SHOW MASTER STATUS is empty)".into(),
        })?;
    unlocked.map_err(e)?;
    let file: Option<String> = row.get(0);
    let offset: Option<u64> = row.get(1);
    match (file, offset) {
        (Some(f), Some(o)) => Ok((f, o)),
        _ => Err(SourceError::Other {
            reason: "SHOW MASTER STATUS returned no position".into(),
            class: ErrorClass::Definite,
        }),
    }
}

/// Key JSON of a snapshot position back to query parameters.
fn key_params(after: &str, schema: &TableSchema) -> Result<Vec<mysql_async::Value>, String> {
    let json: serde_json::Value =
        serde_json::from_str(after).map_err(|e| format!("snapshot key `{after}`: {e}"))?;
    let obj = json
        .as_object()
        .ok_or_else(|| format!("snapshot key `{after}` is not an object"))?;
    schema
        .primary_key
        .iter()
        .map(|&i| {
            let col = &schema.columns[i];
            let v = obj
                .get(&col.name)
                .ok_or_else(|| format!("snapshot key `{after}` lacks `{}`", col.name))?;
            json_to_param(v, col)
        })
        .collect()
}

/// Reads every selected table from the open snapshot transaction, handing rows over in
/// batches through `deliver`, starting after `from` (table, last key) when resuming.
pub(crate) struct SnapshotRead<'a> {
    pub(crate) config: &'a MySqlConfig,
    pub(crate) catalog: &'a Catalog,
    pub(crate) file: String,
    pub(crate) offset: u64,
    pub(crate) from: Option<(String, Option<String>)>,
    pub(crate) ts_ms: i64,
}

impl SnapshotRead<'_> {
    /// Where the snapshot starts: nothing copied yet.
    pub(crate) fn start_position(&self) -> Position {
        self.position("", None)
    }

    fn position(&self, table: &str, after: Option<String>) -> Position {
        Position::MySql(MySqlPosition {
            start: TxnStart::Snapshot(SnapshotProgress {
                file: self.file.clone(),
                offset: self.offset,
                table: table.to_owned(),
                after,
            }),
            skip: 0,
        })
    }

    /// The tables to read, in name order.
    pub(crate) fn tables(&self) -> Vec<((String, String), std::sync::Arc<TableSchema>)> {
        let mut tables: Vec<_> = self
            .catalog
            .tables
            .iter()
            .filter(|((db, t), _)| self.config.wants(db, t))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((from_table, _)) = &self.from {
            tables.retain(|((db, t), _)| format!("{db}.{t}") >= *from_table);
        }
        tables
    }

    /// Reads one chunk of `table` after `after`; returns the events (empty when done).
    pub(crate) async fn chunk(
        &self,
        conn: &mut Conn,
        (db, table): &(String, String),
        schema: &TableSchema,
        after: Option<&str>,
        offset_rows: usize,
    ) -> Result<Vec<SourceEvent>, SourceError> {
        let name = format!("{db}.{table}");
        let cols: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let from = format!("{}.{}", quote(db), quote(table));
        let pk: Vec<String> = schema
            .primary_key
            .iter()
            .map(|&i| quote(&schema.columns[i].name))
            .collect();
        let (sql, params) = if pk.is_empty() {
            // No key to page by: page by offset inside the one consistent view.
            (
                format!(
                    "SELECT {} FROM {from} LIMIT {CHUNK} OFFSET {offset_rows}",
                    cols.join(", ")
                ),
                Vec::new(),
            )
        } else {
            let order = pk.join(", ");
            match after {
                None => (
                    format!(
                        "SELECT {} FROM {from} ORDER BY {order} LIMIT {CHUNK}",
                        cols.join(", ")
                    ),
                    Vec::new(),
                ),
                Some(after) => {
                    let params =
                        key_params(after, schema).map_err(|reason| SourceError::Schema {
                            table: name.clone(),
                            position: self.position(&name, Some(after.to_owned())).to_string(),
                            reason,
                        })?;
                    let marks = vec!["?"; pk.len()].join(", ");
                    (
                        format!(
                            "SELECT {} FROM {from} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT {CHUNK}",
                            cols.join(", ")
                        ),
                        params,
                    )
                }
            }
        };
        let rows: Vec<mysql_async::Row> = conn
            .exec(sql, params)
            .await
            .map_err(|e| map_err(self.config, e))?;
        let ns = Namespace::new(db.as_str(), table.as_str());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let out =
                row_from_query(row, schema).map_err(|(column, reason)| SourceError::Decode {
                    table: name.clone(),
                    column,
                    position: self.position(&name, None).to_string(),
                    reason,
                })?;
            let key = key_of(&out, schema);
            // Without a key, a position inside the table restarts the table.
            let after = key.as_ref().map(|k| json_text(&Value::Document(k.clone())));
            events.push(SourceEvent::Change(ChangeEvent {
                source: SourceKind::MySql,
                namespace: ns.clone(),
                op: Op::Insert,
                key,
                before: None,
                after: Some(out),
                update: None,
                position: self.position(&name, after),
                ts_ms: self.ts_ms,
                txn: None,
            }));
        }
        Ok(events)
    }
}
