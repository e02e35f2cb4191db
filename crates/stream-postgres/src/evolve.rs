//! Schema changes from the source applied to the target, inside the data transaction: a failure
//! rolls everything of the batch back, so nothing is half-applied.

use std::sync::Arc;

use stream_core::{Namespace, SchemaChange, SchemaChangeKind, SourceKind};

use crate::error::{PostgresError, TypeChange};
use crate::schema::{ColumnChange, Ddl, SourceColumn, SourceDefault, SourceTable, parse_ddl};
use crate::sink::{Known, PostgresSink};
use crate::table::{self, TableKind, TableSpec, TargetTable, columns_from_source};
use crate::types::{PgType, ident};

impl PostgresSink {
    /// The target table of `ns` as it is in the database (not created when missing).
    async fn existing(
        &mut self,
        ns: &Namespace,
        known: &Known,
    ) -> Result<Option<Arc<TargetTable>>, PostgresError> {
        if let Some(t) = known.targets.get(ns) {
            return Ok(Some(t.clone()));
        }
        let spec = TableSpec {
            source_name: ns.to_string(),
            schema: self.schema_of(&ns.db),
            name: ns.table.to_string(),
            kind: TableKind::Replica,
            columns: Vec::new(),
            key: Vec::new(),
            soft: false,
        };
        let session = self.session().await?;
        table::load(&session.client, &spec).await
    }

    /// Applies one schema change (after the buffered rows before it were flushed).
    pub(crate) async fn apply_schema(
        &mut self,
        change: &SchemaChange,
        known: &mut Known,
    ) -> Result<(), PostgresError> {
        let ns = &change.namespace;
        let name = (ns.db.to_string(), ns.table.to_string());
        match &change.kind {
            SchemaChangeKind::Truncate => {
                if let Some(target) = self.existing(ns, known).await? {
                    let session = self.session().await?;
                    session
                        .client
                        .batch_execute(&format!("TRUNCATE {}", target.qualified()))
                        .await
                        .map_err(|e| {
                            PostgresError::from_driver(
                                format!("truncating {}", target.qualified()),
                                &e,
                            )
                        })?;
                    tracing::info!(table = %target.qualified(), position = %change.position, "truncated the target table");
                }
            }
            SchemaChangeKind::Rename { to } => {
                if let Some(target) = self.existing(ns, known).await? {
                    let schema = self.schema_of(&to.db);
                    let session = self.session().await?;
                    table::rename_table(
                        &session.client,
                        &target,
                        &schema,
                        &to.table,
                        &to.to_string(),
                    )
                    .await?;
                }
                known.targets.remove(ns);
                known.targets.remove(to);
                if let Some(def) = known.defs.remove(&name) {
                    known
                        .defs
                        .insert((to.db.to_string(), to.table.to_string()), def);
                }
            }
            // The target keeps the table (and its rows); a table created again later is new.
            SchemaChangeKind::Drop | SchemaChangeKind::DropDatabase => {
                known.targets.remove(ns);
            }
            SchemaChangeKind::Create | SchemaChangeKind::Alter
                if change.source == SourceKind::MySql =>
            {
                let Some(sql) = &change.statement else {
                    return Ok(());
                };
                match parse_ddl(sql, &ns.db) {
                    Ddl::Create(def) => self.create(ns, def, known).await?,
                    Ddl::CreateLike(from) => {
                        if let Some(def) = known.defs.get(&from).cloned() {
                            self.create(ns, (*def).clone(), known).await?;
                        }
                    }
                    Ddl::Alter(changes) => self.alter(change, &changes, known).await?,
                    Ddl::Other => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn create(
        &mut self,
        ns: &Namespace,
        def: SourceTable,
        known: &mut Known,
    ) -> Result<(), PostgresError> {
        known.targets.remove(ns);
        let keyless = def.primary_key.is_empty();
        let spec = TableSpec {
            source_name: ns.to_string(),
            schema: self.schema_of(&ns.db),
            name: ns.table.to_string(),
            kind: if keyless {
                TableKind::Append
            } else {
                TableKind::Replica
            },
            columns: columns_from_source(&def),
            key: def.primary_key.clone(),
            soft: !keyless && self.config.deletes == crate::config::Deletes::Soft,
        };
        known
            .defs
            .insert((ns.db.to_string(), ns.table.to_string()), Arc::new(def));
        // A keyless table is created (or refused) at its first row, by the `keyless` setting.
        if !keyless {
            let session = self.session().await?;
            let target = table::ensure(&session.client, &spec).await?;
            known.targets.insert(ns.clone(), target);
        }
        Ok(())
    }

    async fn alter(
        &mut self,
        change: &SchemaChange,
        changes: &[ColumnChange],
        known: &mut Known,
    ) -> Result<(), PostgresError> {
        let ns = &change.namespace;
        let name = (ns.db.to_string(), ns.table.to_string());
        let old_def = known.defs.get(&name).cloned();
        if let Some(def) = &old_def {
            known
                .defs
                .insert(name.clone(), Arc::new(def.altered(changes)));
        }
        let Some(mut target) = self.existing(ns, known).await? else {
            return Ok(());
        };
        for column_change in changes {
            let (from, column) = match column_change {
                ColumnChange::Add(c, default) => {
                    if target.column(&c.name).is_none() {
                        target = self.add_column(&target, c, default.as_ref()).await?;
                    }
                    continue;
                }
                // Kept: the column stays, NULL in rows written from now on.
                ColumnChange::Drop(_) => continue,
                ColumnChange::Rename { from, to } => {
                    target = self.rename_column(&target, from, to).await?;
                    continue;
                }
                ColumnChange::Redefine { from, column } => (from, column),
            };
            target = self.rename_column(&target, from, &column.name).await?;
            let Some(current) = target.column(&column.name) else {
                continue;
            };
            let (old, new) = (current.ty, column.ty.to_pg());
            let keep = old == new
                || new.widens_to(old)
                || matches!((old, new), (PgType::Numeric(None), PgType::Numeric(_)));
            if keep {
                continue;
            }
            if !(old.widens_to(new) || (new == PgType::Text && old.prints_as_source_text())) {
                let old_source = old_def
                    .as_ref()
                    .and_then(|d| d.columns.iter().find(|c| c.name.eq_ignore_ascii_case(from)))
                    .map(|c| format!("{} ", c.ty))
                    .unwrap_or_default();
                return Err(PostgresError::IncompatibleChange {
                    table: ns.to_string(),
                    column: column.name.clone(),
                    position: change.position.to_string(),
                    change: Box::new(TypeChange {
                        old: format!("{old_source}({old} in PostgreSQL)"),
                        new: format!("{} ({new} in PostgreSQL)", column.ty),
                        target: target.qualified(),
                        checkpoint: match &self.pipeline {
                            Some(p) => format!(
                                "DELETE FROM ustream.checkpoints WHERE pipeline = '{}'",
                                p.replace('\'', "''")
                            ),
                            None => "delete the pipeline's checkpoint".to_owned(),
                        },
                    }),
                });
            }
            let sql = format!(
                "ALTER TABLE {} ALTER COLUMN {col} TYPE {new} USING {col}::{new}",
                target.qualified(),
                col = ident(&column.name)
            );
            target = self.run_alter(&target, &sql).await?;
        }
        known.targets.insert(ns.clone(), target);
        Ok(())
    }

    /// Adds `column`. The source's existing rows hold its default now: a constant default
    /// becomes the target column's default, which fills the existing rows the same way (when
    /// PostgreSQL takes it for the column's type); for a computed one the existing rows stay
    /// NULL until they change, and a warning says so.
    async fn add_column(
        &mut self,
        target: &Arc<TargetTable>,
        column: &SourceColumn,
        default: Option<&SourceDefault>,
    ) -> Result<Arc<TargetTable>, PostgresError> {
        table::check_name(&target.source_name, &column.name)?;
        let add = format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
            target.qualified(),
            ident(&column.name),
            column.ty.to_pg()
        );
        let unfilled = |why: &str| {
            tracing::warn!(
                table = %target.qualified(),
                column = %column.name,
                "the source filled its existing rows with the new column's default ({why}); in PostgreSQL they stay NULL until each row changes"
            );
        };
        match default {
            None => self.run_alter(target, &add).await,
            Some(SourceDefault::Computed(expr)) => {
                unfilled(&format!("{expr}, computed by the source"));
                self.run_alter(target, &add).await
            }
            Some(SourceDefault::Literal(literal)) => {
                let with_default = format!(
                    "SAVEPOINT ustream_add; {add} DEFAULT {literal}; RELEASE SAVEPOINT ustream_add"
                );
                match self.run_alter(target, &with_default).await {
                    Ok(altered) => Ok(altered),
                    Err(e) => {
                        // A literal PostgreSQL refuses for the type (a zero date): as if none.
                        let session = self.session().await?;
                        if session
                            .client
                            .batch_execute("ROLLBACK TO SAVEPOINT ustream_add")
                            .await
                            .is_err()
                        {
                            return Err(e);
                        }
                        unfilled(&format!("{literal}, refused by PostgreSQL: {e}"));
                        self.run_alter(target, &add).await
                    }
                }
            }
        }
    }

    async fn rename_column(
        &mut self,
        target: &Arc<TargetTable>,
        from: &str,
        to: &str,
    ) -> Result<Arc<TargetTable>, PostgresError> {
        if from == to || target.column(from).is_none() || target.column(to).is_some() {
            return Ok(target.clone());
        }
        table::check_name(&target.source_name, to)?;
        let sql = format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            target.qualified(),
            ident(from),
            ident(to)
        );
        self.run_alter(target, &sql).await
    }

    async fn run_alter(
        &mut self,
        target: &TargetTable,
        sql: &str,
    ) -> Result<Arc<TargetTable>, PostgresError> {
        let session = self.session().await?;
        table::alter(&session.client, target, sql).await
    }
}
