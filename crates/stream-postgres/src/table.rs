//! Target tables: how a source table or collection looks in PostgreSQL, creating it when
//! missing, reading it back from the catalog, and changing it with the source's DDL.

use std::sync::Arc;

use stream_core::{ChangeEvent, Row, SourceKind, Value};
use tokio_postgres::Client;

use crate::config::{ExtractedColumn, ExtractedType};
use crate::error::PostgresError;
use crate::schema::SourceTable;
use crate::types::{PgType, ident};

/// Where a target column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnSource {
    /// The row field of this name.
    Field,
    /// MongoDB: the document's `_id` as text.
    MongoId,
    /// MongoDB: the whole document as Relaxed Extended JSON.
    MongoDoc,
    /// MongoDB: the value at a dotted path, converted to the column's type.
    Path(String, ExtractedType),
}

/// One data column of a target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetColumn {
    pub(crate) name: String,
    pub(crate) ty: PgType,
    pub(crate) source: ColumnSource,
}

/// How rows land in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableKind {
    /// Upsert by key; deletes hard or soft.
    Replica,
    /// Keyless source table with `keyless: append`: every change a new row.
    Append,
}

/// A target table as the sink writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetTable {
    /// `db.table` of the source, for messages and metrics.
    pub(crate) source_name: String,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) kind: TableKind,
    /// Data columns (without `_position`, `_synced_at`, `_deleted`, `_deleted_at`, `_op`).
    pub(crate) columns: Vec<TargetColumn>,
    /// Indexes into `columns` of the primary key.
    pub(crate) key: Vec<usize>,
    /// `_deleted` and `_deleted_at` exist.
    pub(crate) soft: bool,
}

/// Columns the sink adds to every table; never taken from the source.
pub(crate) const META_COLUMNS: &[&str] =
    &["_position", "_synced_at", "_deleted", "_deleted_at", "_op"];

impl TargetTable {
    /// `"schema"."name"`.
    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    pub(crate) fn column(&self, name: &str) -> Option<&TargetColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The MongoDB layout: `_id text PRIMARY KEY`, `doc jsonb NOT NULL`, extracted columns.
pub(crate) fn mongo_columns(
    extracted: Option<&std::collections::BTreeMap<String, ExtractedColumn>>,
) -> Vec<TargetColumn> {
    let mut columns = vec![
        TargetColumn {
            name: "_id".into(),
            ty: PgType::Text,
            source: ColumnSource::MongoId,
        },
        TargetColumn {
            name: "doc".into(),
            ty: PgType::Jsonb,
            source: ColumnSource::MongoDoc,
        },
    ];
    for (name, spec) in extracted.into_iter().flatten() {
        let ty = match spec.column_type {
            ExtractedType::Text => PgType::Text,
            ExtractedType::Boolean => PgType::Bool,
            ExtractedType::Integer => PgType::Int4,
            ExtractedType::Bigint => PgType::Int8,
            ExtractedType::Numeric => PgType::Numeric(None),
            ExtractedType::Double => PgType::Float8,
            ExtractedType::Timestamptz => PgType::Timestamptz(3),
            ExtractedType::Jsonb => PgType::Jsonb,
        };
        columns.push(TargetColumn {
            name: name.clone(),
            ty,
            source: ColumnSource::Path(spec.path.clone(), spec.column_type),
        });
    }
    columns
}

/// Columns from the source definition.
pub(crate) fn columns_from_source(def: &SourceTable) -> Vec<TargetColumn> {
    def.columns
        .iter()
        .filter(|c| !META_COLUMNS.contains(&c.name.as_str()))
        .map(|c| TargetColumn {
            name: c.name.clone(),
            ty: c.ty.to_pg(),
            source: ColumnSource::Field,
        })
        .collect()
}

/// The type a value suggests, for tables the sink knows nothing about but their rows.
fn inferred_type(v: &Value) -> PgType {
    match v {
        Value::Bool(_) => PgType::Bool,
        Value::Int(_) => PgType::Int8,
        Value::UInt(_) => PgType::Numeric(Some((20, 0))),
        Value::Float(_) => PgType::Float4,
        Value::Double(_) => PgType::Float8,
        Value::Decimal(_) | Value::Decimal128(_) => PgType::Numeric(None),
        Value::Bytes(_) | Value::Binary { .. } => PgType::Bytea,
        Value::Set(_) => PgType::TextArray,
        Value::Date(_) => PgType::Date,
        Value::DateTime(d) => PgType::Timestamp(d.fsp),
        Value::Timestamp(t) => PgType::Timestamptz(t.fsp),
        Value::BsonDateTime(_) => PgType::Timestamptz(3),
        Value::Time(_) => PgType::Interval,
        Value::Json(_) | Value::Document(_) | Value::Array(_) => PgType::Jsonb,
        _ => PgType::Text,
    }
}

/// Columns guessed from one row (no schema known): integers as bigint, and so on.
pub(crate) fn columns_from_row(row: &Row) -> Vec<TargetColumn> {
    row.iter()
        .filter(|(n, _)| !META_COLUMNS.contains(&&***n))
        .map(|(n, v)| TargetColumn {
            name: n.to_string(),
            ty: inferred_type(v),
            source: ColumnSource::Field,
        })
        .collect()
}

/// What the sink needs to create a table.
pub(crate) struct TableSpec {
    pub(crate) source_name: String,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) kind: TableKind,
    pub(crate) columns: Vec<TargetColumn>,
    pub(crate) key: Vec<String>,
    pub(crate) soft: bool,
}

/// The spec of a table for `event`'s namespace.
pub(crate) fn spec_for(
    event: &ChangeEvent,
    def: Option<&SourceTable>,
    schema: String,
    extracted: Option<&std::collections::BTreeMap<String, ExtractedColumn>>,
    soft: bool,
) -> TableSpec {
    let source_name = event.namespace.to_string();
    let name = event.namespace.table.to_string();
    if event.source == SourceKind::MongoDb {
        return TableSpec {
            source_name,
            schema,
            name,
            kind: TableKind::Replica,
            columns: mongo_columns(extracted),
            key: vec!["_id".into()],
            soft,
        };
    }
    let (columns, key) = match def {
        Some(def) if !def.columns.is_empty() => (columns_from_source(def), def.primary_key.clone()),
        _ => {
            let row = event.after.as_ref().or(event.before.as_ref());
            let key = event
                .key
                .as_ref()
                .map(|k| k.iter().map(|(n, _)| n.to_string()).collect())
                .unwrap_or_default();
            (row.map(columns_from_row).unwrap_or_default(), key)
        }
    };
    let kind = if key.is_empty() {
        TableKind::Append
    } else {
        TableKind::Replica
    };
    TableSpec {
        source_name,
        schema,
        name,
        kind,
        columns,
        key,
        soft: soft && kind == TableKind::Replica,
    }
}

fn driver(context: &str) -> impl Fn(tokio_postgres::Error) -> PostgresError + '_ {
    move |e| PostgresError::from_driver(context, &e)
}

/// The statements that create the schema and table of `spec`.
pub(crate) fn create_sql(spec: &TableSpec) -> String {
    let qualified = format!("{}.{}", ident(&spec.schema), ident(&spec.name));
    let mut defs: Vec<String> = spec
        .columns
        .iter()
        .map(|c| {
            let not_null =
                if spec.key.contains(&c.name) || matches!(c.source, ColumnSource::MongoDoc) {
                    " NOT NULL"
                } else {
                    ""
                };
            format!("{} {}{not_null}", ident(&c.name), c.ty)
        })
        .collect();
    if spec.kind == TableKind::Append {
        defs.push("\"_op\" text NOT NULL".into());
    }
    defs.push("\"_position\" text NOT NULL".into());
    defs.push("\"_synced_at\" timestamptz NOT NULL DEFAULT now()".into());
    if spec.soft {
        defs.push("\"_deleted\" boolean NOT NULL DEFAULT false".into());
        defs.push("\"_deleted_at\" timestamptz".into());
    }
    if spec.kind == TableKind::Replica {
        let key: Vec<String> = spec.key.iter().map(|k| ident(k)).collect();
        defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {qualified} ({})",
        ident(&spec.schema),
        defs.join(", ")
    )
}

/// Creates the table when missing (inside the caller's transaction) and reads it back.
pub(crate) async fn ensure(
    client: &Client,
    spec: &TableSpec,
) -> Result<Arc<TargetTable>, PostgresError> {
    check_name(&spec.source_name, &spec.name)?;
    for column in &spec.columns {
        check_name(&spec.source_name, &column.name)?;
    }
    let qualified = format!("{}.{}", ident(&spec.schema), ident(&spec.name));
    let context = format!("creating {qualified}");
    let exists = load(client, spec).await?;
    let table = match exists {
        Some(t) => t,
        None => {
            create(client, spec, &context).await?;
            tracing::info!(table = %qualified, source = %spec.source_name, "created target table");
            load(client, spec)
                .await?
                .ok_or_else(|| PostgresError::Statement {
                    context: context.clone(),
                    reason: "the table is missing right after CREATE TABLE".into(),
                    class: stream_core::ErrorClass::Transient,
                })?
        }
    };
    claim(client, &qualified, &spec.source_name).await?;
    if spec.soft && !table.soft {
        client
            .batch_execute(&format!(
                "ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS \"_deleted\" boolean NOT NULL DEFAULT false, \
                 ADD COLUMN IF NOT EXISTS \"_deleted_at\" timestamptz"
            ))
            .await
            .map_err(driver(&context))?;
        return Ok(Arc::new(TargetTable {
            soft: true,
            ..(*table).clone()
        }));
    }
    Ok(table)
}

/// PostgreSQL's longest identifier in bytes (NAMEDATALEN - 1); longer ones are truncated.
const MAX_NAME_BYTES: usize = 63;

/// Refuses a table or column name of `source` that PostgreSQL would truncate.
pub(crate) fn check_name(source: &str, name: &str) -> Result<(), PostgresError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(PostgresError::NameTooLong {
            table: source.to_owned(),
            name: name.to_owned(),
            bytes: name.len(),
        });
    }
    Ok(())
}

/// How the sink marks a table's source in the table's comment.
const SOURCE_MARK: &str = "ustream source: ";

/// Marks `qualified` as the target of `source` (in its comment), or refuses when another
/// source table already writes into it (two sources of one sink, `schema: combo`, both with
/// an `orders`). A comment of someone else's is left alone.
async fn claim(client: &Client, qualified: &str, source: &str) -> Result<(), PostgresError> {
    let comment = comment_of(client, qualified).await?;
    match comment.as_deref().map(|c| c.strip_prefix(SOURCE_MARK)) {
        Some(Some(owner)) if owner == source => Ok(()),
        Some(Some(owner)) => Err(PostgresError::Collision {
            target: qualified.to_owned(),
            first: owner.to_owned(),
            second: source.to_owned(),
        }),
        Some(None) => Ok(()),
        None => mark(client, qualified, source).await,
    }
}

/// The comment of table `qualified`.
async fn comment_of(client: &Client, qualified: &str) -> Result<Option<String>, PostgresError> {
    Ok(client
        .query_one(
            "SELECT obj_description(to_regclass($1), 'pg_class')",
            &[&qualified],
        )
        .await
        .map_err(driver(&format!("reading the comment of {qualified}")))?
        .get(0))
}

/// Writes the source mark into the table's comment.
async fn mark(client: &Client, qualified: &str, source: &str) -> Result<(), PostgresError> {
    let sql = format!(
        "COMMENT ON TABLE {qualified} IS '{}'",
        format!("{SOURCE_MARK}{source}").replace('\'', "''")
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(driver(&format!("commenting {qualified}")))
}

/// Runs [`create_sql`] inside the caller's transaction; when another session created the
/// schema or table at the same moment, rolls back to before the attempt and runs it once more
/// (the second run finds the other's objects).
async fn create(client: &Client, spec: &TableSpec, context: &str) -> Result<(), PostgresError> {
    let sql = format!(
        "SAVEPOINT ustream_create; {}; RELEASE SAVEPOINT ustream_create",
        create_sql(spec)
    );
    match client.batch_execute(&sql).await {
        Err(e) if crate::error::is_creation_race(&e) => {
            tracing::debug!(schema = %spec.schema, table = %spec.name, "another session created the same schema or table; again");
            client
                .batch_execute("ROLLBACK TO SAVEPOINT ustream_create")
                .await
                .map_err(driver(context))?;
            client.batch_execute(&sql).await.map_err(driver(context))
        }
        other => other.map_err(driver(context)),
    }
}

/// Reads the table from the catalog: columns the sink understands, the key, soft-delete columns.
pub(crate) async fn load(
    client: &Client,
    spec: &TableSpec,
) -> Result<Option<Arc<TargetTable>>, PostgresError> {
    let qualified = format!("{}.{}", ident(&spec.schema), ident(&spec.name));
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    coalesce(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0)::int4 \
             FROM pg_attribute a \
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&qualified],
        )
        .await
        .map_err(driver(&format!("reading the columns of {qualified}")))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::new();
    let mut key: Vec<(i32, usize)> = Vec::new();
    let mut soft = false;
    for row in rows {
        let name: String = row.get(0);
        let type_text: String = row.get(1);
        let key_at: i32 = row.get(2);
        if name == "_deleted" {
            soft = true;
        }
        if META_COLUMNS.contains(&name.as_str()) {
            continue;
        }
        let Some(ty) = PgType::from_catalog(&type_text) else {
            tracing::debug!(table = %qualified, column = %name, %type_text, "column of a type the sink does not write; left alone");
            continue;
        };
        // The spec says where values come from; columns added by DDL since are row fields.
        let source = spec
            .columns
            .iter()
            .find(|c| c.name == name)
            .map_or(ColumnSource::Field, |c| c.source.clone());
        if key_at > 0 {
            key.push((key_at, columns.len()));
        }
        columns.push(TargetColumn { name, ty, source });
    }
    key.sort_unstable();
    Ok(Some(Arc::new(TargetTable {
        source_name: spec.source_name.clone(),
        schema: spec.schema.clone(),
        name: spec.name.clone(),
        kind: spec.kind,
        columns,
        key: key.into_iter().map(|(_, i)| i).collect(),
        soft,
    })))
}

/// The spec that reads an existing table back as it is.
pub(crate) fn spec_of(table: &TargetTable) -> TableSpec {
    TableSpec {
        source_name: table.source_name.clone(),
        schema: table.schema.clone(),
        name: table.name.clone(),
        kind: table.kind,
        columns: table.columns.clone(),
        key: table
            .key
            .iter()
            .map(|&i| table.columns[i].name.clone())
            .collect(),
        soft: table.soft,
    }
}

/// Runs DDL on a target table and reads it back.
pub(crate) async fn alter(
    client: &Client,
    table: &TargetTable,
    sql: &str,
) -> Result<Arc<TargetTable>, PostgresError> {
    let context = format!("altering {}", table.qualified());
    client.batch_execute(sql).await.map_err(driver(&context))?;
    tracing::info!(table = %table.qualified(), statement = sql, "applied a schema change to the target");
    load(client, &spec_of(table))
        .await?
        .ok_or_else(|| PostgresError::Statement {
            context,
            reason: "the table vanished while it was altered".into(),
            class: stream_core::ErrorClass::Transient,
        })
}

/// `ALTER TABLE t RENAME TO new` (moving schemas first when needed), unless `new` exists.
pub(crate) async fn rename_table(
    client: &Client,
    table: &TargetTable,
    schema: &str,
    name: &str,
    source: &str,
) -> Result<(), PostgresError> {
    check_name(source, name)?;
    let context = format!("renaming {}", table.qualified());
    let target = format!("{}.{}", ident(schema), ident(name));
    let taken: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&target])
        .await
        .map_err(driver(&context))?
        .get(0);
    if taken {
        tracing::warn!(from = %table.qualified(), to = %target, "rename: the target name exists; the old table is kept");
        return Ok(());
    }
    let mut sql = String::new();
    let mut current = table.qualified();
    if schema != table.schema {
        sql.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}; ALTER TABLE {current} SET SCHEMA {};",
            ident(schema),
            ident(schema)
        ));
        current = format!("{}.{}", ident(schema), ident(&table.name));
    }
    if name != table.name {
        sql.push_str(&format!("ALTER TABLE {current} RENAME TO {};", ident(name)));
    }
    client.batch_execute(&sql).await.map_err(driver(&context))?;
    // The table now belongs to the renamed source table.
    if comment_of(client, &target)
        .await?
        .is_some_and(|c| c.starts_with(SOURCE_MARK))
    {
        mark(client, &target, source).await?;
    }
    Ok(())
}
