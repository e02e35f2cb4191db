//! [`Store`] over a `mysql_async` pool: read, upsert, delete and query by key and a portable
//! filter, with bound parameters and quoted identifiers only.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::Pool;
use mysql_async::prelude::*;
use stream_core::{ErrorClass, Filter, Namespace, Query, Row, Store, StoreError};
use tokio::sync::Mutex;

use crate::MySqlConfig;
use crate::schema::{Catalog, TableSchema};
use crate::values::{quote, row_from_query, to_param};

/// CRUD and queries on MySQL/MariaDB tables.
#[derive(Debug)]
pub struct MySqlStore {
    pool: Pool,
    connect_timeout: std::time::Duration,
    schemas: Mutex<HashMap<Namespace, Arc<TableSchema>>>,
}

fn backend(ns: &Namespace, e: mysql_async::Error) -> StoreError {
    let class = if e.is_fatal() {
        ErrorClass::Transient
    } else {
        ErrorClass::Definite
    };
    StoreError::Backend {
        namespace: ns.to_string(),
        reason: e.to_string(),
        class,
    }
}

fn invalid(ns: &Namespace, reason: String) -> StoreError {
    StoreError::Invalid {
        namespace: ns.to_string(),
        reason,
    }
}

impl MySqlStore {
    /// A store over a connection pool to the configured server, bounded by `config.pool`:
    /// connections opened in a burst close again once they idle. Connections use UTC, so
    /// TIMESTAMP values are read and written as UTC.
    pub fn new(config: &MySqlConfig) -> Self {
        let opts = config
            .opts()
            .pool_opts(config.pool.pool_opts())
            .init(vec!["SET time_zone = '+00:00'"]);
        Self {
            pool: Pool::new(opts),
            connect_timeout: config.connect_timeout,
            schemas: Mutex::new(HashMap::new()),
        }
    }

    /// Closes the pool (waits for its connections to be returned and disconnected).
    pub async fn close(self) -> Result<(), StoreError> {
        self.pool
            .disconnect()
            .await
            .map_err(|e| StoreError::Backend {
                namespace: "*".into(),
                reason: format!("closing the connection pool: {e}"),
                class: ErrorClass::Transient,
            })
    }

    /// A pooled connection, or a transient error when none is ready within `connect_timeout`
    /// (all in use past `pool_max`, or a server that does not answer).
    async fn conn(&self, ns: &Namespace) -> Result<mysql_async::Conn, StoreError> {
        match tokio::time::timeout(self.connect_timeout, self.pool.get_conn()).await {
            Ok(conn) => conn.map_err(|e| backend(ns, e)),
            Err(_) => Err(StoreError::Backend {
                namespace: ns.to_string(),
                reason: format!(
                    "no connection within {} s (connect_timeout): the server does not answer \
                     or all pool_max connections stay in use",
                    self.connect_timeout.as_secs()
                ),
                class: ErrorClass::Transient,
            }),
        }
    }

    async fn schema(&self, ns: &Namespace) -> Result<Arc<TableSchema>, StoreError> {
        if let Some(s) = self.schemas.lock().await.get(ns) {
            return Ok(s.clone());
        }
        let mut conn = self.conn(ns).await?;
        let catalog = Catalog::load_table(&mut conn, &ns.db, &ns.table)
            .await
            .map_err(|e| backend(ns, e))?;
        let schema = catalog.table(&ns.db, &ns.table).cloned().ok_or_else(|| {
            StoreError::UnknownNamespace {
                namespace: ns.to_string(),
            }
        })?;
        self.schemas.lock().await.insert(ns.clone(), schema.clone());
        Ok(schema)
    }

    fn column_index(ns: &Namespace, schema: &TableSchema, name: &str) -> Result<usize, StoreError> {
        schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| invalid(ns, format!("no column `{name}`")))
    }

    fn where_key(
        ns: &Namespace,
        schema: &TableSchema,
        key: &Row,
    ) -> Result<(String, Vec<mysql_async::Value>), StoreError> {
        if key.is_empty() {
            return Err(invalid(ns, "the key has no fields".into()));
        }
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        for (name, value) in key.iter() {
            Self::column_index(ns, schema, name)?;
            clauses.push(format!("{} = ?", quote(name)));
            params.push(
                to_param(value).map_err(|e| invalid(ns, format!("key field `{name}`: {e}")))?,
            );
        }
        Ok((clauses.join(" AND "), params))
    }

    fn select_list(schema: &TableSchema) -> String {
        schema
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn to_row(
        ns: &Namespace,
        schema: &TableSchema,
        row: mysql_async::Row,
    ) -> Result<Row, StoreError> {
        row_from_query(row, schema)
            .map_err(|(column, reason)| invalid(ns, format!("column `{column}`: {reason}")))
    }

    fn filter_sql(
        ns: &Namespace,
        schema: &TableSchema,
        filter: &Filter,
        params: &mut Vec<mysql_async::Value>,
    ) -> Result<String, StoreError> {
        let mut cmp = |field: &str,
                       op: &str,
                       v: &stream_core::Value|
         -> Result<String, StoreError> {
            Self::column_index(ns, schema, field)?;
            params.push(to_param(v).map_err(|e| invalid(ns, format!("filter on `{field}`: {e}")))?);
            Ok(format!("{} {op} ?", quote(field)))
        };
        Ok(match filter {
            Filter::All => "TRUE".into(),
            Filter::Eq(f, v) => cmp(f, "=", v)?,
            Filter::Ne(f, v) => cmp(f, "<>", v)?,
            Filter::Lt(f, v) => cmp(f, "<", v)?,
            Filter::Lte(f, v) => cmp(f, "<=", v)?,
            Filter::Gt(f, v) => cmp(f, ">", v)?,
            Filter::Gte(f, v) => cmp(f, ">=", v)?,
            Filter::IsNull(f) => {
                Self::column_index(ns, schema, f)?;
                format!("{} IS NULL", quote(f))
            }
            Filter::In(f, vs) => {
                Self::column_index(ns, schema, f)?;
                if vs.is_empty() {
                    "FALSE".into()
                } else {
                    for v in vs {
                        params.push(
                            to_param(v)
                                .map_err(|e| invalid(ns, format!("filter on `{f}`: {e}")))?,
                        );
                    }
                    format!("{} IN ({})", quote(f), vec!["?"; vs.len()].join(", "))
                }
            }
            Filter::And(fs) | Filter::Or(fs) => {
                if fs.is_empty() {
                    return Ok(if matches!(filter, Filter::And(_)) {
                        "TRUE".into()
                    } else {
                        "FALSE".into()
                    });
                }
                let joiner = if matches!(filter, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = fs
                    .iter()
                    .map(|f| Self::filter_sql(ns, schema, f, params).map(|s| format!("({s})")))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.join(joiner)
            }
            Filter::Not(f) => format!("NOT ({})", Self::filter_sql(ns, schema, f, params)?),
            other => return Err(invalid(ns, format!("filter {other:?} is not supported"))),
        })
    }
}

#[async_trait::async_trait]
impl Store for MySqlStore {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        let schema = self.schema(ns).await?;
        let (clause, params) = Self::where_key(ns, &schema, key)?;
        let sql = format!(
            "SELECT {} FROM {}.{} WHERE {clause} LIMIT 1",
            Self::select_list(&schema),
            quote(&ns.db),
            quote(&ns.table)
        );
        let mut conn = self.conn(ns).await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(sql, params)
            .await
            .map_err(|e| backend(ns, e))?;
        row.map(|r| Self::to_row(ns, &schema, r)).transpose()
    }

    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        let schema = self.schema(ns).await?;
        for (name, value) in key.iter() {
            if row.get(name) != Some(value) {
                return Err(invalid(
                    ns,
                    format!("row field `{name}` does not equal the key's"),
                ));
            }
        }
        if row.is_empty() {
            return Err(invalid(ns, "the row has no fields".into()));
        }
        let mut cols = Vec::new();
        let mut params = Vec::new();
        for (name, value) in row.iter() {
            Self::column_index(ns, &schema, name)?;
            cols.push(quote(name));
            params.push(to_param(value).map_err(|e| invalid(ns, format!("field `{name}`: {e}")))?);
        }
        let updates: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
        let sql = format!(
            "INSERT INTO {}.{} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
            quote(&ns.db),
            quote(&ns.table),
            cols.join(", "),
            vec!["?"; cols.len()].join(", "),
            updates.join(", ")
        );
        let mut conn = self.conn(ns).await?;
        conn.exec_drop(sql, params)
            .await
            .map_err(|e| backend(ns, e))
    }

    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        let schema = self.schema(ns).await?;
        let (clause, params) = Self::where_key(ns, &schema, key)?;
        let sql = format!(
            "DELETE FROM {}.{} WHERE {clause}",
            quote(&ns.db),
            quote(&ns.table)
        );
        let mut conn = self.conn(ns).await?;
        conn.exec_drop(sql, params)
            .await
            .map_err(|e| backend(ns, e))?;
        Ok(conn.affected_rows() > 0)
    }

    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        let schema = self.schema(ns).await?;
        let mut params = Vec::new();
        let clause = Self::filter_sql(ns, &schema, &query.filter, &mut params)?;
        let mut sql = format!(
            "SELECT {} FROM {}.{} WHERE {clause}",
            Self::select_list(&schema),
            quote(&ns.db),
            quote(&ns.table)
        );
        if !query.order_by.is_empty() {
            let order = query
                .order_by
                .iter()
                .map(|(f, asc)| {
                    Self::column_index(ns, &schema, f)
                        .map(|_| format!("{} {}", quote(f), if *asc { "ASC" } else { "DESC" }))
                })
                .collect::<Result<Vec<_>, _>>()?;
            sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut conn = self.conn(ns).await?;
        let rows: Vec<mysql_async::Row> =
            conn.exec(sql, params).await.map_err(|e| backend(ns, e))?;
        rows.into_iter()
            .map(|r| Self::to_row(ns, &schema, r))
            .collect()
    }
}
