//! [`PostgresStore`]: read, write, delete and query rows of PostgreSQL tables by key, so the
//! Streamer's CRUD works on a replica the sink keeps.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use stream_core::{
    Date, DateTime, Decimal, ErrorClass, Filter, Json, Namespace, Query, Row, Store, StoreError,
    Time, Timestamp, Value,
};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Row as PgRow};

use crate::connect::connect;
use crate::encode::put_value;
use crate::error::PostgresError;
use crate::table::{self, TableKind, TableSpec, TargetTable};
use crate::types::{PgType, ident};

/// Rows of PostgreSQL tables by key: `db.table` is table `table` in schema `db` (or in the
/// schema given to [`PostgresStore::with_schema`]). The sink's columns (`_position`,
/// `_synced_at`, `_deleted`, …) are not part of the rows; soft-deleted rows read as absent.
pub struct PostgresStore {
    url: String,
    schema: Option<String>,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    tables: tokio::sync::Mutex<HashMap<Namespace, Arc<TargetTable>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &stream_core::redact_url(&self.url))
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A value bound as a parameter of the column's type, by the sink's own binary encoding.
#[derive(Debug)]
struct Param<'a>(&'a Value, PgType);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mut cell = BytesMut::new();
        if let crate::encode::Cell::Refused(reason) = put_value(&mut cell, self.0, self.1) {
            return Err(reason.into());
        }
        if cell[..4] == (-1i32).to_be_bytes() {
            return Ok(IsNull::Yes);
        }
        out.extend_from_slice(&cell[4..]);
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn backend(ns: &Namespace, e: &PostgresError) -> StoreError {
    StoreError::Backend {
        namespace: ns.to_string(),
        reason: e.to_string(),
        class: e.class(),
    }
}

fn invalid(ns: &Namespace, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        namespace: ns.to_string(),
        reason: reason.into(),
    }
}

/// The expression that reads a column back in a form `value_of` understands.
fn select_expr(name: &str, ty: PgType) -> String {
    let c = ident(name);
    match ty {
        PgType::Numeric(_) | PgType::Jsonb | PgType::Uuid | PgType::Inet => format!("{c}::text"),
        PgType::Date => format!("to_char({c}, 'YYYY-MM-DD')"),
        PgType::Timestamp(_) => format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        PgType::Timestamptz(_) | PgType::Interval => {
            format!("(extract(epoch from {c}) * 1000000)::int8")
        }
        PgType::Int2 | PgType::Int4 => format!("{c}::int8"),
        _ => c,
    }
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.parse().ok()
}

fn datetime_of(text: &str, fsp: u8) -> Option<Value> {
    let (date, time) = text.split_once(' ')?;
    let mut d = date.splitn(3, '-').map(parse_num::<u32>);
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let date = Date::new(u16::try_from(year).ok()?, month as u8, day as u8).ok()?;
    let (hms, micros) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(parse_num::<u8>);
    let dt = DateTime::new(
        date,
        t.next()??,
        t.next()??,
        t.next()??,
        parse_num(micros)?,
        fsp,
    )
    .ok()?;
    Some(Value::DateTime(dt))
}

/// One column of a result row as a [`Value`].
fn value_of(row: &PgRow, i: usize, ty: PgType) -> Value {
    let text = || row.try_get::<_, Option<String>>(i).ok().flatten();
    let int = || row.try_get::<_, Option<i64>>(i).ok().flatten();
    let got = match ty {
        PgType::Bool => row
            .try_get::<_, Option<bool>>(i)
            .ok()
            .flatten()
            .map(Value::Bool),
        PgType::Int2 | PgType::Int4 | PgType::Int8 => int().map(Value::Int),
        PgType::Float4 => row
            .try_get::<_, Option<f32>>(i)
            .ok()
            .flatten()
            .map(Value::Float),
        PgType::Float8 => row
            .try_get::<_, Option<f64>>(i)
            .ok()
            .flatten()
            .map(Value::Double),
        PgType::Numeric(_) => text()
            .and_then(|t| Decimal::parse(&t).ok())
            .map(Value::Decimal),
        PgType::Text | PgType::Uuid | PgType::Inet => text().map(Value::String),
        PgType::TextArray => row
            .try_get::<_, Option<Vec<String>>>(i)
            .ok()
            .flatten()
            .map(Value::Set),
        PgType::Bytea => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .ok()
            .flatten()
            .map(Value::Bytes),
        PgType::Jsonb => text().and_then(|t| Json::parse(&t).ok()).map(Value::Json),
        PgType::Date => text().and_then(|t| {
            let mut d = t.splitn(3, '-').map(parse_num::<u32>);
            let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
            Date::new(u16::try_from(y).ok()?, m as u8, dd as u8)
                .ok()
                .map(Value::Date)
        }),
        PgType::Timestamp(fsp) => text().and_then(|t| datetime_of(&t, fsp)),
        PgType::Timestamptz(fsp) => int().and_then(|us| {
            Timestamp::new(
                us.div_euclid(1_000_000),
                us.rem_euclid(1_000_000) as u32,
                fsp.min(6),
            )
            .ok()
            .map(Value::Timestamp)
        }),
        PgType::Interval => int().and_then(|us| {
            let total = us.unsigned_abs();
            let secs = total / 1_000_000;
            Time::new(
                us < 0,
                (secs / 3600) as u32,
                (secs / 60 % 60) as u8,
                (secs % 60) as u8,
                (total % 1_000_000) as u32,
                6,
            )
            .ok()
            .map(Value::Time)
        }),
    };
    got.unwrap_or(Value::Null)
}

fn column_of(
    table: &TargetTable,
    ns: &Namespace,
    name: &str,
) -> Result<(String, PgType), StoreError> {
    table
        .column(name)
        .map(|c| (ident(&c.name), c.ty))
        .ok_or_else(|| {
            invalid(
                ns,
                format!("no column `{name}` (filters on document paths are not supported)"),
            )
        })
}

/// `column op $n`, false where the value is NULL or does not fit the column's type (values of
/// unrelated kinds never compare, as in [`Filter::matches`]).
fn compare<'a>(
    op: &str,
    name: &str,
    value: &'a Value,
    table: &TargetTable,
    ns: &Namespace,
    params: &mut Vec<Param<'a>>,
) -> Result<String, StoreError> {
    let (c, ty) = column_of(table, ns, name)?;
    if value.is_null() || put_value(&mut BytesMut::new(), value, ty) != crate::encode::Cell::Written
    {
        return Ok("false".to_owned());
    }
    params.push(Param(value, ty));
    Ok(format!("coalesce({c} {op} ${}, false)", params.len()))
}

/// A filter as SQL with bound parameters, with the semantics of [`Filter::matches`].
fn where_sql<'a>(
    filter: &'a Filter,
    table: &TargetTable,
    ns: &Namespace,
    params: &mut Vec<Param<'a>>,
) -> Result<String, StoreError> {
    let joined = |parts: Vec<String>, joiner: &str, empty: &str| {
        format!(
            "({})",
            if parts.is_empty() {
                empty.to_owned()
            } else {
                parts.join(joiner)
            }
        )
    };
    Ok(match filter {
        Filter::All => "true".into(),
        Filter::Eq(n, v) => compare("=", n, v, table, ns, params)?,
        Filter::Ne(n, v) => {
            let (c, _) = column_of(table, ns, n)?;
            format!(
                "({c} IS NOT NULL AND NOT {})",
                compare("=", n, v, table, ns, params)?
            )
        }
        Filter::Lt(n, v) => compare("<", n, v, table, ns, params)?,
        Filter::Lte(n, v) => compare("<=", n, v, table, ns, params)?,
        Filter::Gt(n, v) => compare(">", n, v, table, ns, params)?,
        Filter::Gte(n, v) => compare(">=", n, v, table, ns, params)?,
        Filter::In(n, vs) => {
            let parts = vs
                .iter()
                .map(|v| compare("=", n, v, table, ns, params))
                .collect::<Result<Vec<_>, _>>()?;
            joined(parts, " OR ", "false")
        }
        Filter::IsNull(n) => format!("{} IS NULL", column_of(table, ns, n)?.0),
        Filter::And(fs) => joined(
            fs.iter()
                .map(|f| where_sql(f, table, ns, params))
                .collect::<Result<_, _>>()?,
            " AND ",
            "true",
        ),
        Filter::Or(fs) => joined(
            fs.iter()
                .map(|f| where_sql(f, table, ns, params))
                .collect::<Result<_, _>>()?,
            " OR ",
            "false",
        ),
        Filter::Not(f) => format!("NOT ({})", where_sql(f, table, ns, params)?),
        _ => return Err(invalid(ns, "a filter this store does not know")),
    })
}

impl PostgresStore {
    /// A store at `url`; each namespace's database names the schema.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            client: tokio::sync::Mutex::new(None),
            tables: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Tables in this schema, whatever the namespace's database (the sink's `schema:`).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    async fn client(&self, ns: &Namespace) -> Result<Arc<Client>, StoreError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = Arc::new(
            connect(&self.url, "ustream-store")
                .await
                .map_err(|e| backend(ns, &e))?,
        );
        *guard = Some(client.clone());
        Ok(client)
    }

    async fn table(&self, ns: &Namespace) -> Result<(Arc<Client>, Arc<TargetTable>), StoreError> {
        let client = self.client(ns).await?;
        if let Some(t) = self.tables.lock().await.get(ns) {
            return Ok((client, t.clone()));
        }
        let spec = TableSpec {
            source_name: ns.to_string(),
            schema: self.schema.clone().unwrap_or_else(|| ns.db.to_string()),
            name: ns.table.to_string(),
            kind: TableKind::Replica,
            columns: Vec::new(),
            key: Vec::new(),
            soft: false,
        };
        let loaded = table::load(&client, &spec)
            .await
            .map_err(|e| backend(ns, &e))?
            .ok_or_else(|| StoreError::UnknownNamespace {
                namespace: ns.to_string(),
            })?;
        self.tables.lock().await.insert(ns.clone(), loaded.clone());
        Ok((client, loaded))
    }

    fn key_where<'a>(
        ns: &Namespace,
        table: &TargetTable,
        key: &'a Row,
        params: &mut Vec<Param<'a>>,
    ) -> Result<String, StoreError> {
        if key.is_empty() {
            return Err(invalid(ns, "the key has no fields"));
        }
        let mut parts = Vec::new();
        for (name, value) in key.iter() {
            let column = table
                .column(name)
                .ok_or_else(|| invalid(ns, format!("no column `{name}`")))?;
            if !table.key.iter().any(|&i| table.columns[i].name == **name) {
                return Err(invalid(
                    ns,
                    format!("`{name}` is not part of the primary key"),
                ));
            }
            params.push(Param(value, column.ty));
            parts.push(format!("{} = ${}", ident(name), params.len()));
        }
        if table.soft {
            parts.push("NOT \"_deleted\"".into());
        }
        Ok(parts.join(" AND "))
    }

    async fn select(
        &self,
        ns: &Namespace,
        client: &Client,
        table: &TargetTable,
        filter: &str,
        tail: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| select_expr(&c.name, c.ty))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter}{tail}",
            columns.join(", "),
            table.qualified()
        );
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&sql, &refs).await.map_err(|e| {
            backend(
                ns,
                &PostgresError::from_driver(format!("reading {}", table.qualified()), &e),
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name.as_str(), value_of(r, i, c.ty)))
                    .collect()
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        let (client, table) = self.table(ns).await?;
        let mut params = Vec::new();
        let filter = Self::key_where(ns, &table, key, &mut params)?;
        Ok(self
            .select(ns, &client, &table, &filter, " LIMIT 1", &params)
            .await?
            .into_iter()
            .next())
    }

    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        let (client, table) = self.table(ns).await?;
        for (name, value) in key.iter() {
            if row.get(name) != Some(value) {
                return Err(invalid(
                    ns,
                    format!("row field `{name}` does not equal the key's"),
                ));
            }
        }
        let mut names = Vec::new();
        let mut params = Vec::new();
        for (name, value) in row.iter() {
            let column = table
                .column(name)
                .ok_or_else(|| invalid(ns, format!("no column `{name}`")))?;
            names.push(ident(name));
            params.push(Param(value, column.ty));
        }
        let key_columns: Vec<String> = table
            .key
            .iter()
            .map(|&i| ident(&table.columns[i].name))
            .collect();
        if key_columns.is_empty() {
            return Err(invalid(ns, "the table has no primary key"));
        }
        let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
        let mut set: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = EXCLUDED.{n}"))
            .collect();
        set.push("\"_position\" = EXCLUDED.\"_position\"".into());
        set.push("\"_synced_at\" = now()".into());
        if table.soft {
            set.push("\"_deleted\" = false".into());
            set.push("\"_deleted_at\" = NULL".into());
        }
        let sql = format!(
            "INSERT INTO {} ({}, \"_position\") VALUES ({}, 'store') ON CONFLICT ({}) DO UPDATE SET {}",
            table.qualified(),
            names.join(", "),
            placeholders.join(", "),
            key_columns.join(", "),
            set.join(", ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        client.execute(&sql, &refs).await.map_err(|e| {
            let e = PostgresError::from_driver(format!("writing {}", table.qualified()), &e);
            match e.class() {
                ErrorClass::Definite => invalid(ns, e.to_string()),
                _ => backend(ns, &e),
            }
        })?;
        Ok(())
    }

    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        let (client, table) = self.table(ns).await?;
        let mut params = Vec::new();
        let filter = Self::key_where(ns, &table, key, &mut params)?;
        let sql = if table.soft {
            format!(
                "UPDATE {} SET \"_deleted\" = true, \"_deleted_at\" = now() WHERE {filter}",
                table.qualified()
            )
        } else {
            format!("DELETE FROM {} WHERE {filter}", table.qualified())
        };
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let n = client.execute(&sql, &refs).await.map_err(|e| {
            backend(
                ns,
                &PostgresError::from_driver(format!("deleting from {}", table.qualified()), &e),
            )
        })?;
        Ok(n > 0)
    }

    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        let (client, table) = self.table(ns).await?;
        let mut params = Vec::new();
        let mut filter = where_sql(&query.filter, &table, ns, &mut params)?;
        if table.soft {
            filter = format!("({filter}) AND NOT \"_deleted\"");
        }
        let mut tail = String::new();
        if !query.order_by.is_empty() {
            let order = query
                .order_by
                .iter()
                .map(|(name, asc)| {
                    let c = table
                        .column(name)
                        .ok_or_else(|| invalid(ns, format!("no column `{name}`")))?;
                    Ok(format!(
                        "{} {}",
                        ident(&c.name),
                        if *asc {
                            "ASC NULLS FIRST"
                        } else {
                            "DESC NULLS LAST"
                        }
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            tail.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        if let Some(limit) = query.limit {
            tail.push_str(&format!(" LIMIT {limit}"));
        }
        self.select(ns, &client, &table, &filter, &tail, &params)
            .await
    }
}
