//! One table's buffered changes into the target: binary COPY into a temporary staging table,
//! then one `INSERT ... ON CONFLICT DO UPDATE` and one delete (or soft-delete update). A change
//! the target refuses is found by replaying the table's changes one by one under savepoints.
//!
//! Rows that are all inserts (an initial snapshot, a fresh table, an insert-only stream) are
//! first copied straight into the target table under a savepoint: no staging, no merge. When
//! a key is there already, the copy fails, is rolled back to the savepoint, and the rows take
//! the merge; the table then takes the merge for the rest of the connection.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::SinkExt as _;
use stream_core::ChangeEvent;
use tokio_postgres::Client;

use crate::encode::{COPY_HEADER, COPY_TRAILER};
use crate::error::{PostgresError, is_data_error};
use crate::rows::{NullCounts, RowOp, Staged, TableBuffer, encode_row, key_json};
use crate::table::{TableKind, TargetTable};
use crate::types::ident;

/// A change the target refused, and why.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The change.
    pub event: Arc<ChangeEvent>,
    /// `db.table` of the source.
    pub table: String,
    /// Why it was refused.
    pub reason: String,
}

/// A live connection and the staging tables created on it.
pub(crate) struct Session {
    pub(crate) client: Client,
    /// Target table → (its shape when the staging table was made, the staging table's name).
    stages: HashMap<String, (Arc<TargetTable>, String)>,
    /// Staging tables holding rows in the open transaction.
    dirty: HashSet<String>,
    made: u64,
    /// Tables (qualified) where a direct copy met a key already there: they take the merge.
    merge_only: HashSet<String>,
    /// The stored checkpoint was compared with the batch after (re)connecting.
    pub(crate) checked: bool,
}

/// What flushing a table produced.
#[derive(Debug, Default)]
pub(crate) struct Flushed {
    pub(crate) applied: u64,
    pub(crate) nulls: NullCounts,
    pub(crate) rejected: Vec<Rejection>,
}

/// Bytes per COPY message.
const COPY_CHUNK: usize = 1 << 20;

fn driver(context: String) -> impl Fn(tokio_postgres::Error) -> PostgresError {
    move |e| PostgresError::from_driver(context.clone(), &e)
}

impl Session {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            stages: HashMap::new(),
            dirty: HashSet::new(),
            made: 0,
            merge_only: HashSet::new(),
            checked: false,
        }
    }

    /// Call at the start of each transaction.
    pub(crate) fn begin(&mut self) {
        self.dirty.clear();
    }

    /// The staging table for `table`, created (or re-created after DDL) when needed.
    async fn stage(&mut self, table: &Arc<TargetTable>) -> Result<String, PostgresError> {
        let qualified = table.qualified();
        if let Some((shape, name)) = self.stages.get(&qualified)
            && shape.columns == table.columns
        {
            return Ok(name.clone());
        }
        self.made += 1;
        let name = format!("_ustream_stage_{}", self.made);
        let mut columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("{} {}", ident(&c.name), c.ty))
            .collect();
        columns.push("\"_op\" text".into());
        columns.push("\"_position\" text".into());
        let sql = format!(
            "CREATE TEMP TABLE {} ({}) ON COMMIT DELETE ROWS",
            ident(&name),
            columns.join(", ")
        );
        self.client
            .batch_execute(&sql)
            .await
            .map_err(driver(format!("creating the staging table of {qualified}")))?;
        self.stages.insert(qualified, (table.clone(), name.clone()));
        Ok(name)
    }

    /// Encodes and copies `rows` into `into` (a `COPY ... FROM STDIN` statement). Rows that do
    /// not encode are skipped and listed in `refused` by index.
    async fn copy(
        &mut self,
        table: &TargetTable,
        into: &str,
        rows: &[&Staged<'_>],
        with_op: bool,
        nulls: &mut NullCounts,
        refused: &mut Vec<(usize, String)>,
    ) -> Result<u64, Failure> {
        let context = || format!("copying into {}", table.qualified());
        let sink = self
            .client
            .copy_in::<_, Bytes>(into)
            .await
            .map_err(|e| Failure::of(context(), &e))?;
        futures::pin_mut!(sink);
        let mut buf = BytesMut::with_capacity(COPY_CHUNK + 4096);
        buf.extend_from_slice(COPY_HEADER);
        let mut copied = 0;
        for (i, staged) in rows.iter().enumerate() {
            match encode_row(&mut buf, table, staged, with_op, nulls) {
                Ok(()) => copied += 1,
                Err(reason) => refused.push((i, reason)),
            }
            if buf.len() >= COPY_CHUNK {
                let chunk = buf.split().freeze();
                sink.send(chunk)
                    .await
                    .map_err(|e| Failure::of(context(), &e))?;
            }
        }
        buf.extend_from_slice(COPY_TRAILER);
        sink.send(buf.freeze())
            .await
            .map_err(|e| Failure::of(context(), &e))?;
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| Failure::of(context(), &e))?;
        Ok(copied)
    }

    /// Stages `rows` and runs the merge.
    async fn stage_and_merge(
        &mut self,
        table: &TargetTable,
        stage: &str,
        rows: &[&Staged<'_>],
        nulls: &mut NullCounts,
        refused: &mut Vec<(usize, String)>,
    ) -> Result<u64, Failure> {
        if self.dirty.contains(stage) {
            self.client
                .batch_execute(&format!("DELETE FROM pg_temp.{}", ident(stage)))
                .await
                .map_err(|e| {
                    Failure::of(
                        format!("emptying the staging table of {}", table.qualified()),
                        &e,
                    )
                })?;
        }
        self.dirty.insert(stage.to_owned());
        let copied = self
            .copy(
                table,
                &stage_copy_sql(table, stage),
                rows,
                true,
                nulls,
                refused,
            )
            .await?;
        let merge = merge_sql(table, stage, rows);
        if !merge.is_empty() && copied > 0 {
            self.client
                .batch_execute(&merge)
                .await
                .map_err(|e| Failure::of(format!("merging into {}", table.qualified()), &e))?;
        }
        Ok(copied)
    }

    async fn run(&self, sql: &str, context: impl Fn() -> String) -> Result<(), PostgresError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| PostgresError::from_driver(context(), &e))
    }

    /// Applies one table's buffer. `stop_on_reject`: the first refused change fails the
    /// batch; otherwise refused changes are returned and the rest applied.
    pub(crate) async fn flush(
        &mut self,
        table: &Arc<TargetTable>,
        buffer: &TableBuffer<'_>,
        stop_on_reject: bool,
    ) -> Result<Flushed, PostgresError> {
        let mut out = Flushed::default();
        if buffer.is_empty() {
            return Ok(out);
        }
        let rows: Vec<&Staged<'_>> = buffer.rows.iter().collect();
        let reject = |staged: &Staged<'_>, reason: String| PostgresError::Rejected {
            table: table.source_name.clone(),
            key: key_json(staged.event),
            position: staged.event.position.to_string(),
            reason,
        };
        let mut refused = Vec::new();
        if table.kind == TableKind::Append {
            out.applied = self
                .copy(
                    table,
                    &append_copy_sql(table),
                    &rows,
                    true,
                    &mut out.nulls,
                    &mut refused,
                )
                .await
                .map_err(Failure::into_error)?;
        } else if let Some(applied) = self
            .copy_direct(table, &rows, &mut out.nulls, &mut refused)
            .await?
        {
            out.applied = applied;
        } else {
            let stage = self.stage(table).await?;
            let context = || format!("merging into {}", table.qualified());
            self.run("SAVEPOINT ustream_table", context).await?;
            let mut nulls = NullCounts::new();
            match self
                .stage_and_merge(table, &stage, &rows, &mut nulls, &mut refused)
                .await
            {
                Ok(applied) => {
                    out.applied = applied;
                    out.nulls = nulls;
                }
                Err(Failure::Data(_)) => {
                    // Find the changes at fault: each one alone, under its own savepoint.
                    self.run("ROLLBACK TO SAVEPOINT ustream_table", context)
                        .await?;
                    refused.clear();
                    for (i, staged) in rows.iter().enumerate() {
                        self.run("SAVEPOINT ustream_row", context).await?;
                        let mut one = NullCounts::new();
                        let mut refused_one = Vec::new();
                        match self
                            .stage_and_merge(table, &stage, &[staged], &mut one, &mut refused_one)
                            .await
                        {
                            Ok(applied) => {
                                self.run("RELEASE SAVEPOINT ustream_row", context).await?;
                                out.applied += applied;
                                for (k, n) in one {
                                    *out.nulls.entry(k).or_default() += n;
                                }
                                refused.extend(refused_one.into_iter().map(|(_, r)| (i, r)));
                            }
                            Err(Failure::Data(reason)) => {
                                self.run("ROLLBACK TO SAVEPOINT ustream_row", context)
                                    .await?;
                                refused.push((i, reason));
                            }
                            Err(Failure::Other(e)) => return Err(e),
                        }
                    }
                }
                Err(Failure::Other(e)) => return Err(e),
            }
            self.run("RELEASE SAVEPOINT ustream_table", context).await?;
        }
        for (i, reason) in refused {
            let staged = rows[i];
            if stop_on_reject {
                return Err(reject(staged, reason));
            }
            out.rejected.push(Rejection {
                event: Arc::new(staged.event.clone()),
                table: table.source_name.clone(),
                reason,
            });
        }
        Ok(out)
    }
}

impl Session {
    /// Copies `rows` straight into the target table when they are all inserts and the table
    /// has not refused that before; `None` when they must take the merge instead (nothing of
    /// them is applied then).
    async fn copy_direct(
        &mut self,
        table: &TargetTable,
        rows: &[&Staged<'_>],
        nulls: &mut NullCounts,
        refused: &mut Vec<(usize, String)>,
    ) -> Result<Option<u64>, PostgresError> {
        let qualified = table.qualified();
        let inserts = rows
            .iter()
            .all(|r| r.op == RowOp::Upsert && r.event.op == stream_core::Op::Insert);
        if !inserts || self.merge_only.contains(&qualified) {
            return Ok(None);
        }
        let context = || format!("copying into {qualified}");
        self.run("SAVEPOINT ustream_direct", context).await?;
        let mut direct_nulls = NullCounts::new();
        let mut direct_refused = Vec::new();
        match self
            .copy(
                table,
                &direct_copy_sql(table),
                rows,
                false,
                &mut direct_nulls,
                &mut direct_refused,
            )
            .await
        {
            Ok(copied) => {
                self.run("RELEASE SAVEPOINT ustream_direct", context)
                    .await?;
                for (k, n) in direct_nulls {
                    *nulls.entry(k).or_default() += n;
                }
                refused.extend(direct_refused);
                Ok(Some(copied))
            }
            Err(Failure::Data(reason)) => {
                self.run("ROLLBACK TO SAVEPOINT ustream_direct", context)
                    .await?;
                tracing::debug!(table = %qualified, %reason, "rows not new to the target; merging from now on");
                self.merge_only.insert(qualified);
                Ok(None)
            }
            Err(Failure::Other(e)) => Err(e),
        }
    }
}

/// A failed statement: about the data (the change at fault can be refused alone), or not.
enum Failure {
    /// The server's reason, for the refusal.
    Data(String),
    Other(PostgresError),
}

impl Failure {
    fn of(context: String, e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if is_data_error(e) => {
                let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                Failure::Data(format!(
                    "{}{detail} [SQLSTATE {}]",
                    db.message(),
                    db.code().code()
                ))
            }
            _ => Failure::Other(PostgresError::from_driver(context, e)),
        }
    }

    fn into_error(self) -> PostgresError {
        match self {
            Failure::Other(e) => e,
            Failure::Data(reason) => PostgresError::Statement {
                context: "appending rows".into(),
                reason,
                class: stream_core::ErrorClass::Definite,
            },
        }
    }
}

/// `COPY staging (columns, _op, _position) FROM STDIN (FORMAT binary)`.
fn stage_copy_sql(table: &TargetTable, stage: &str) -> String {
    let mut columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    columns.push("\"_op\"".into());
    columns.push("\"_position\"".into());
    format!(
        "COPY pg_temp.{} ({}) FROM STDIN (FORMAT binary)",
        ident(stage),
        columns.join(", ")
    )
}

/// New rows straight into a replica table (`_synced_at` and `_deleted` take their defaults).
fn direct_copy_sql(table: &TargetTable) -> String {
    let mut columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    columns.push("\"_position\"".into());
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.qualified(),
        columns.join(", ")
    )
}

/// Append tables take the rows directly.
fn append_copy_sql(table: &TargetTable) -> String {
    let mut columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    columns.push("\"_op\"".into());
    columns.push("\"_position\"".into());
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.qualified(),
        columns.join(", ")
    )
}

/// The upsert and the delete (or soft delete) of a staged batch, as one simple-query text.
pub(crate) fn merge_sql(table: &TargetTable, stage: &str, rows: &[&Staged<'_>]) -> String {
    let target = table.qualified();
    let stage = format!("pg_temp.{}", ident(stage));
    let columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    let key: Vec<String> = table
        .key
        .iter()
        .map(|&i| ident(&table.columns[i].name))
        .collect();
    let has = |op| rows.iter().any(|r| r.op == op);
    let mut statements = Vec::new();
    if has(RowOp::Upsert) {
        let mut set: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| !table.key.contains(i))
            .map(|(_, c)| format!("{0} = EXCLUDED.{0}", ident(&c.name)))
            .collect();
        set.push("\"_position\" = EXCLUDED.\"_position\"".into());
        set.push("\"_synced_at\" = EXCLUDED.\"_synced_at\"".into());
        let (soft_cols, soft_vals) = if table.soft {
            set.push("\"_deleted\" = false".into());
            set.push("\"_deleted_at\" = NULL".into());
            (
                ", \"_deleted\", \"_deleted_at\"",
                ", false, NULL::timestamptz",
            )
        } else {
            ("", "")
        };
        statements.push(format!(
            "INSERT INTO {target} AS t ({cols}, \"_position\", \"_synced_at\"{soft_cols}) \
             SELECT {cols}, \"_position\", now(){soft_vals} FROM {stage} WHERE \"_op\" = 'u' \
             ON CONFLICT ({key}) DO UPDATE SET {set}",
            cols = columns.join(", "),
            key = key.join(", "),
            set = set.join(", "),
        ));
    }
    if has(RowOp::Delete) {
        let on: Vec<String> = key.iter().map(|k| format!("t.{k} = s.{k}")).collect();
        let on = on.join(" AND ");
        if table.soft {
            statements.push(format!(
                "INSERT INTO {target} AS t ({cols}, \"_position\", \"_synced_at\", \"_deleted\", \"_deleted_at\") \
                 SELECT {cols}, \"_position\", now(), true, now() FROM {stage} WHERE \"_op\" = 'd' \
                 ON CONFLICT ({key}) DO UPDATE SET \"_deleted\" = true, \"_deleted_at\" = now(), \
                 \"_position\" = EXCLUDED.\"_position\", \"_synced_at\" = EXCLUDED.\"_synced_at\"",
                cols = columns.join(", "),
                key = key.join(", "),
            ));
            statements.push(format!(
                "UPDATE {target} AS t SET \"_deleted\" = true, \"_deleted_at\" = now(), \
                 \"_position\" = s.\"_position\", \"_synced_at\" = now() \
                 FROM {stage} AS s WHERE s.\"_op\" = 'k' AND {on}"
            ));
        } else {
            statements.push(format!(
                "DELETE FROM {target} AS t USING {stage} AS s WHERE s.\"_op\" = 'd' AND {on}"
            ));
        }
    }
    statements.join("; ")
}
