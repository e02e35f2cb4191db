//! The `Store` trait: read, write (upsert), delete and query rows by key and a portable filter.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::event::Namespace;
use crate::json::write_row;
use crate::source::ErrorClass;
use crate::value::{Row, Value};

/// A filter every store can evaluate: translated to SQL `WHERE` with bound parameters, or to a
/// MongoDB query document. Field names may be dotted paths into documents.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// Every row.
    All,
    /// `field = value`.
    Eq(String, Value),
    /// `field <> value`.
    Ne(String, Value),
    /// `field < value`.
    Lt(String, Value),
    /// `field <= value`.
    Lte(String, Value),
    /// `field > value`.
    Gt(String, Value),
    /// `field >= value`.
    Gte(String, Value),
    /// `field IN (values)`.
    In(String, Vec<Value>),
    /// `field IS NULL` (or missing).
    IsNull(String),
    /// All must hold.
    And(Vec<Filter>),
    /// One must hold.
    Or(Vec<Filter>),
    /// Must not hold.
    Not(Box<Filter>),
}

impl Filter {
    /// Evaluates the filter against a row, as every store must: missing fields are null,
    /// comparisons between values of unrelated kinds are false.
    pub fn matches(&self, row: &Row) -> bool {
        let field = |name: &str| row.get_path(name).unwrap_or(&Value::Null);
        let cmp = |name: &str, v: &Value, ok: fn(Ordering) -> bool| {
            let f = field(name);
            !f.is_null() && !v.is_null() && f.compare(v).is_some_and(ok)
        };
        match self {
            Filter::All => true,
            Filter::Eq(n, v) => cmp(n, v, Ordering::is_eq),
            Filter::Ne(n, v) => !field(n).is_null() && !cmp(n, v, Ordering::is_eq),
            Filter::Lt(n, v) => cmp(n, v, Ordering::is_lt),
            Filter::Lte(n, v) => cmp(n, v, Ordering::is_le),
            Filter::Gt(n, v) => cmp(n, v, Ordering::is_gt),
            Filter::Gte(n, v) => cmp(n, v, Ordering::is_ge),
            Filter::In(n, vs) => vs.iter().any(|v| cmp(n, v, Ordering::is_eq)),
            Filter::IsNull(n) => field(n).is_null(),
            Filter::And(fs) => fs.iter().all(|f| f.matches(row)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(row)),
            Filter::Not(f) => !f.matches(row),
        }
    }
}

/// A query: a filter, an order and a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Which rows.
    pub filter: Filter,
    /// Sort by these fields (`true` = ascending), in order.
    pub order_by: Vec<(String, bool)>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

impl Query {
    /// Rows matching `filter`, unordered, unlimited.
    pub fn filter(filter: Filter) -> Self {
        Self {
            filter,
            order_by: Vec::new(),
            limit: None,
        }
    }

    /// Adds a sort key.
    pub fn order_by(mut self, field: impl Into<String>, ascending: bool) -> Self {
        self.order_by.push((field.into(), ascending));
        self
    }

    /// Caps the number of rows.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The namespace does not exist.
    #[error("unknown table or collection `{namespace}`")]
    UnknownNamespace {
        /// `db.table`.
        namespace: String,
    },
    /// The input does not fit the namespace (bad key, unknown column, wrong type).
    #[error("invalid input for `{namespace}`: {reason}")]
    Invalid {
        /// `db.table`.
        namespace: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The server failed.
    #[error("store operation on `{namespace}` failed: {reason}")]
    Backend {
        /// `db.table`.
        namespace: String,
        /// What the server said.
        reason: String,
        /// Whether retrying may help.
        class: ErrorClass,
    },
}

/// CRUD by primary key plus queries, over a table or collection.
///
/// `key` holds the primary-key fields (MongoDB: `_id`); `write` is an upsert of the whole row
/// (key fields included); `delete` reports whether a row was removed.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The row with this key.
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError>;
    /// Inserts or replaces the row with this key.
    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError>;
    /// Removes the row with this key; `true` if there was one.
    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError>;
    /// Rows matching the query.
    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError>;
}

/// An in-memory [`Store`], the reference for filter semantics and a fake for unit tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: RwLock<BTreeMap<Namespace, BTreeMap<Vec<u8>, Row>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn key_bytes(ns: &Namespace, key: &Row) -> Result<Vec<u8>, StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid {
            namespace: ns.to_string(),
            reason: "the key has no fields".into(),
        });
    }
    let mut buf = Vec::new();
    write_row(&mut buf, key);
    Ok(buf)
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        let k = key_bytes(ns, key)?;
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        Ok(tables.get(ns).and_then(|t| t.get(&k)).cloned())
    }

    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        let k = key_bytes(ns, key)?;
        for (name, value) in key.iter() {
            if row.get(name) != Some(value) {
                return Err(StoreError::Invalid {
                    namespace: ns.to_string(),
                    reason: format!("row field `{name}` does not equal the key's"),
                });
            }
        }
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        tables.entry(ns.clone()).or_default().insert(k, row.clone());
        Ok(())
    }

    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        let k = key_bytes(ns, key)?;
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        Ok(tables.get_mut(ns).is_some_and(|t| t.remove(&k).is_some()))
    }

    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<Row> = tables
            .get(ns)
            .map(|t| {
                t.values()
                    .filter(|r| query.filter.matches(r))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !query.order_by.is_empty() {
            rows.sort_by(|a, b| {
                for (field, asc) in &query.order_by {
                    let (x, y) = (
                        a.get_path(field).unwrap_or(&Value::Null),
                        b.get_path(field).unwrap_or(&Value::Null),
                    );
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Less,
                        (false, true) => Ordering::Greater,
                        _ => x.compare(y).unwrap_or(Ordering::Equal),
                    };
                    let o = if *asc { o } else { o.reverse() };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
        }
        if let Some(limit) = query.limit {
            rows.truncate(limit);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, status: &str, total: Option<f64>) -> Row {
        [
            ("id", Value::Int(id)),
            ("status", Value::String(status.into())),
            ("total", Value::from(total)),
        ]
        .into_iter()
        .collect()
    }

    fn key(id: i64) -> Row {
        [("id", Value::Int(id))].into_iter().collect()
    }

    #[test]
    fn filters_treat_missing_and_null_fields_like_sql() {
        let r = row(1, "paid", None);
        assert!(Filter::IsNull("total".into()).matches(&r));
        assert!(Filter::IsNull("nope".into()).matches(&r));
        assert!(!Filter::Gt("total".into(), Value::Int(0)).matches(&r));
        assert!(!Filter::Ne("total".into(), Value::Int(0)).matches(&r));
        assert!(Filter::Eq("status".into(), "paid".into()).matches(&r));
        assert!(Filter::In("id".into(), vec![Value::UInt(1), Value::Int(5)]).matches(&r));
        assert!(Filter::Not(Box::new(Filter::Eq("id".into(), Value::Int(2)))).matches(&r));
        assert!(!Filter::Eq("status".into(), Value::Int(1)).matches(&r));
    }

    #[tokio::test]
    async fn memory_store_crud_and_queries() {
        let store = MemoryStore::new();
        let ns = Namespace::new("shop", "orders");
        for (id, status, total) in [(1, "new", 5.0), (2, "paid", 20.0), (3, "paid", 12.5)] {
            store
                .write(&ns, &key(id), &row(id, status, Some(total)))
                .await
                .expect("write");
        }
        assert_eq!(
            store.read(&ns, &key(2)).await.expect("read"),
            Some(row(2, "paid", Some(20.0)))
        );
        let q = Query::filter(Filter::And(vec![
            Filter::Eq("status".into(), "paid".into()),
            Filter::Gte("total".into(), Value::Int(10)),
        ]))
        .order_by("total", true);
        let ids: Vec<_> = store
            .query(&ns, &q)
            .await
            .expect("query")
            .iter()
            .map(|r| r.get("id").cloned())
            .collect();
        assert_eq!(ids, vec![Some(Value::Int(3)), Some(Value::Int(2))]);
        assert!(store.delete(&ns, &key(2)).await.expect("delete"));
        assert!(!store.delete(&ns, &key(2)).await.expect("delete"));
        let err = store
            .write(&ns, &key(9), &row(8, "x", None))
            .await
            .expect_err("mismatch");
        assert!(err.to_string().contains("`id`"), "{err}");
        let err = store.read(&ns, &Row::new()).await.expect_err("empty key");
        assert!(err.to_string().contains("shop.orders"));
    }
}
