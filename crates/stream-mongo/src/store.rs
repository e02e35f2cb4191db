//! [`Store`] over a MongoDB client: read, upsert, delete and query documents by key and a
//! portable filter. The namespace's `db` is the database, its `table` the collection.
//!
//! Field names come from callers, so they are checked before they reach the server: names that
//! start with `$` (operators such as `$where`) or contain a NUL byte are rejected, and every
//! value is compared with `$eq`/`$in`/`$lt`… so that a document value is never read as an
//! operator.

use std::fmt;
use std::time::Duration;

use futures::TryStreamExt as _;
use mongodb::Client;
use mongodb::bson::{Bson, Document, RawDocument, RawDocumentBuf, doc};
use stream_core::{ErrorClass, Filter, Namespace, Query, Row, Store, StoreError, Value};

use crate::bson_value::{
    ConvertError, raw_document_to_row, raw_path, row_to_document, value_to_bson,
};
use crate::config::MongoConfig;
use crate::connect::{self, SELECTION_TIMEOUT, selection_timeout};
use crate::errors::{Purpose, classify, describe};
use crate::uri::UriParts;

/// CRUD and queries on MongoDB collections.
///
/// MongoDB's own namespaces (the `local` and `config` databases, `system.*` collections such
/// as `admin.system.users`) are refused unless [`MongoConfig::system_namespaces`] allows them.
///
/// A key row becomes an equality filter on each of its fields (`{_id: ...}` for the usual
/// key); `write` replaces the whole document matching the key, inserting it if there is none.
/// Filters follow [`Filter::matches`]: comparisons never match a null or missing field, and
/// [`Filter::IsNull`] matches both. One difference is MongoDB's own: a condition on an array
/// field holds when it holds for any element (`Eq("tags", "a")` matches `tags: ["a", "b"]`),
/// and a dotted path reaches into documents inside arrays.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    /// Scrubs the URI's password and secret options out of messages.
    secrets: UriParts,
    /// The server selection timeout, where known.
    selection: Option<Duration>,
    /// Whether MongoDB's own namespaces may be read and written.
    system_namespaces: bool,
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore").finish_non_exhaustive()
    }
}

fn invalid(ns: &Namespace, reason: String) -> StoreError {
    StoreError::Invalid {
        namespace: ns.to_string(),
        reason,
    }
}

/// Checks a field name or dotted path given by a caller: no empty segment, no segment starting
/// with `$`, no NUL byte.
fn check_path(ns: &Namespace, path: &str) -> Result<(), StoreError> {
    let shown = path.escape_default();
    if path.contains('\0') {
        return Err(invalid(
            ns,
            format!("field `{shown}`: a field name cannot contain a NUL byte"),
        ));
    }
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(invalid(
            ns,
            format!("field `{shown}` is not a valid field path"),
        ));
    }
    if path.split('.').any(|segment| segment.starts_with('$')) {
        return Err(invalid(
            ns,
            format!("field `{shown}`: field names must not start with `$`"),
        ));
    }
    Ok(())
}

/// Checks the field names of a document to be stored, at every depth.
fn check_names(ns: &Namespace, doc: &Document, prefix: &str) -> Result<(), StoreError> {
    for (name, value) in doc {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if name.starts_with('$') {
            return Err(invalid(
                ns,
                format!("field `{path}`: field names must not start with `$`"),
            ));
        }
        check_value_names(ns, value, &path)?;
    }
    Ok(())
}

fn check_value_names(ns: &Namespace, value: &Bson, path: &str) -> Result<(), StoreError> {
    match value {
        Bson::Document(d) => check_names(ns, d, path),
        Bson::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value_names(ns, item, &format!("{path}.{i}"))),
        _ => Ok(()),
    }
}

/// One of MongoDB's own namespaces: the `local` (oplog, replication) and `config` (sessions,
/// sharding) databases, and `system.*` collections (users, roles, views, profiles).
fn is_system(ns: &Namespace) -> bool {
    matches!(&*ns.db, "local" | "config") || ns.table.starts_with("system.")
}

/// A stored document as a row; one nested too deep (or not well-formed) is an error naming
/// its `_id`.
fn stored_row(ns: &Namespace, raw: &RawDocument) -> Result<Row, StoreError> {
    raw_document_to_row(raw).map_err(|e| {
        let which = raw_path(raw, "_id").map_or_else(
            || "a document".to_owned(),
            |id| format!("the document with _id {}", id.into_relaxed_extjson()),
        );
        StoreError::Backend {
            namespace: ns.to_string(),
            reason: format!("{which} cannot be read: {e}"),
            class: ErrorClass::Definite,
        }
    })
}

/// A filter that matches no document (every document has an `_id`).
fn match_nothing() -> Document {
    doc! { "_id": { "$in": [] } }
}

impl MongoStore {
    /// A store over an existing client.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            secrets: UriParts::default(),
            selection: None,
            system_namespaces: false,
        }
    }

    /// Lets the store read and write MongoDB's own namespaces (see
    /// [`MongoConfig::system_namespaces`]).
    pub fn with_system_namespaces(mut self, allowed: bool) -> Self {
        self.system_namespaces = allowed;
        self
    }

    /// Connects to the server of a connection string (`mongodb://user:pass@host/?...`) and
    /// checks that it answers (and accepts the credentials) with a `ping`.
    ///
    /// Error messages show the connection string redacted: never the password.
    pub async fn connect(uri: &str) -> Result<Self, StoreError> {
        let config = MongoConfig::from_url(uri).map_err(|e| StoreError::Invalid {
            namespace: e.shown.clone(),
            reason: e.reason,
        })?;
        Self::connect_with(&config).await
    }

    /// Connects to the deployment of `config`, as [`MongoStore::connect`] does.
    pub async fn connect_with(config: &MongoConfig) -> Result<Self, StoreError> {
        let server = config.uri_parts().hosts.clone();
        let selection = selection_timeout(config, SELECTION_TIMEOUT);
        let client =
            connect::client(config, selection)
                .await
                .map_err(|reason| StoreError::Invalid {
                    namespace: server.clone(),
                    reason,
                })?;
        let pinged = client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await;
        if let Err(e) = pinged {
            connect::close(client).await;
            return Err(StoreError::Backend {
                namespace: server,
                reason: describe(
                    &e,
                    config.uri_parts(),
                    Some(selection),
                    Purpose::Other,
                    true,
                ),
                class: classify(&e),
            });
        }
        Ok(Self {
            client,
            secrets: config.uri_parts().clone(),
            selection: Some(selection),
            system_namespaces: config.system_namespaces,
        })
    }

    /// The client the store uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn backend(&self, ns: &Namespace, e: &mongodb::error::Error) -> StoreError {
        StoreError::Backend {
            namespace: ns.to_string(),
            reason: describe(e, &self.secrets, self.selection, Purpose::Other, false),
            class: classify(e),
        }
    }

    fn collection(&self, ns: &Namespace) -> Result<mongodb::Collection<Document>, StoreError> {
        if !self.system_namespaces && is_system(ns) {
            return Err(invalid(
                ns,
                "a MongoDB system namespace (the `local` and `config` databases and `system.*` \
                 collections hold the server's own data); set `MongoConfig::system_namespaces` \
                 to reach it"
                    .into(),
            ));
        }
        if ns.db.is_empty() || ns.db.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
            return Err(invalid(
                ns,
                format!("`{}` is not a valid database name", ns.db.escape_default()),
            ));
        }
        if ns.table.is_empty() || ns.table.contains(['$', '\0']) {
            return Err(invalid(
                ns,
                format!(
                    "`{}` is not a valid collection name",
                    ns.table.escape_default()
                ),
            ));
        }
        Ok(self.client.database(&ns.db).collection(&ns.table))
    }

    /// The key as BSON, field by field, checked.
    fn key_fields(ns: &Namespace, key: &Row) -> Result<Vec<(String, Bson)>, StoreError> {
        if key.is_empty() {
            return Err(invalid(ns, "the key has no fields".into()));
        }
        key.iter()
            .map(|(name, value)| {
                check_path(ns, name)?;
                if name.contains('.') {
                    return Err(invalid(
                        ns,
                        format!("key field `{name}`: key fields must be top-level fields"),
                    ));
                }
                let bson = value_to_bson(value)
                    .map_err(|e| invalid(ns, format!("key field `{name}`: {e}")))?;
                Ok((name.to_string(), bson))
            })
            .collect()
    }

    /// `{k1: {$eq: v1}, k2: {$eq: v2}}`: `$eq`, so that a document value is matched as a value.
    fn key_filter(fields: &[(String, Bson)]) -> Document {
        fields
            .iter()
            .map(|(name, value)| (name.clone(), Bson::Document(doc! { "$eq": value.clone() })))
            .collect()
    }

    fn filter_value(ns: &Namespace, field: &str, v: &Value) -> Result<Bson, StoreError> {
        value_to_bson(v).map_err(|e| invalid(ns, filter_error(field, &e)))
    }

    /// Translates a portable filter, mirroring [`Filter::matches`].
    fn filter_doc(ns: &Namespace, filter: &Filter) -> Result<Document, StoreError> {
        let cmp = |field: &str, op: &str, v: &Value| -> Result<Document, StoreError> {
            check_path(ns, field)?;
            if v.is_null() {
                // A comparison with null never holds.
                return Ok(match_nothing());
            }
            let b = Self::filter_value(ns, field, v)?;
            let mut cond = Document::new();
            cond.insert(op, b);
            let mut d = Document::new();
            d.insert(field, cond);
            Ok(d)
        };
        Ok(match filter {
            Filter::All => Document::new(),
            Filter::Eq(f, v) => cmp(f, "$eq", v)?,
            Filter::Lt(f, v) => cmp(f, "$lt", v)?,
            Filter::Lte(f, v) => cmp(f, "$lte", v)?,
            Filter::Gt(f, v) => cmp(f, "$gt", v)?,
            Filter::Gte(f, v) => cmp(f, "$gte", v)?,
            Filter::Ne(f, v) => {
                // Present, not null, and (unless comparing with null) different.
                check_path(ns, f)?;
                let mut excluded = vec![Bson::Null];
                if !v.is_null() {
                    excluded.push(Self::filter_value(ns, f, v)?);
                }
                let mut d = Document::new();
                if let Some(re @ Bson::RegularExpression(_)) = excluded.get(1) {
                    // `$nin` would use a regex as a pattern: not null, and not `$eq` the regex.
                    let mut is_null = Document::new();
                    is_null.insert(f.as_str(), Bson::Null);
                    let mut equal = Document::new();
                    equal.insert(f.as_str(), doc! { "$eq": re.clone() });
                    d.insert("$nor", vec![Bson::Document(is_null), Bson::Document(equal)]);
                } else {
                    d.insert(f.as_str(), doc! { "$nin": excluded });
                }
                d
            }
            Filter::In(f, vs) => {
                check_path(ns, f)?;
                let values = vs
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| Self::filter_value(ns, f, v))
                    .collect::<Result<Vec<_>, _>>()?;
                if values.is_empty() {
                    match_nothing()
                } else if values
                    .iter()
                    .any(|b| matches!(b, Bson::RegularExpression(_)))
                {
                    // `$in` would use a regex as a pattern; `$eq` compares it as a value.
                    let alternatives: Vec<Bson> = values
                        .into_iter()
                        .map(|b| {
                            let mut d = Document::new();
                            d.insert(f.as_str(), doc! { "$eq": b });
                            Bson::Document(d)
                        })
                        .collect();
                    doc! { "$or": alternatives }
                } else {
                    let mut d = Document::new();
                    d.insert(f.as_str(), doc! { "$in": values });
                    d
                }
            }
            Filter::IsNull(f) => {
                check_path(ns, f)?;
                // `{f: null}` matches null and missing fields.
                let mut d = Document::new();
                d.insert(f.as_str(), Bson::Null);
                d
            }
            Filter::And(fs) if fs.is_empty() => Document::new(),
            Filter::Or(fs) if fs.is_empty() => match_nothing(),
            Filter::And(fs) | Filter::Or(fs) => {
                let op = if matches!(filter, Filter::And(_)) {
                    "$and"
                } else {
                    "$or"
                };
                let parts = fs
                    .iter()
                    .map(|f| Self::filter_doc(ns, f).map(Bson::Document))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut d = Document::new();
                d.insert(op, parts);
                d
            }
            Filter::Not(inner) => doc! { "$nor": [Self::filter_doc(ns, inner)?] },
            other => return Err(invalid(ns, format!("filter {other:?} is not supported"))),
        })
    }

    fn sort_doc(ns: &Namespace, order_by: &[(String, bool)]) -> Result<Document, StoreError> {
        let mut sort = Document::new();
        for (field, ascending) in order_by {
            check_path(ns, field)?;
            // A repeated field cannot change the order the first one set.
            if !sort.contains_key(field) {
                sort.insert(field.as_str(), if *ascending { 1 } else { -1 });
            }
        }
        Ok(sort)
    }
}

fn filter_error(field: &str, e: &ConvertError) -> String {
    format!("filter on `{field}`: {e}")
}

#[async_trait::async_trait]
impl Store for MongoStore {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        let coll = self.collection(ns)?;
        let filter = Self::key_filter(&Self::key_fields(ns, key)?);
        // Raw: the nesting is checked before anything recurses through the document.
        let found = coll
            .clone_with_type::<RawDocumentBuf>()
            .find_one(filter)
            .await
            .map_err(|e| self.backend(ns, &e))?;
        found.map(|raw| stored_row(ns, &raw)).transpose()
    }

    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        let coll = self.collection(ns)?;
        let key_fields = Self::key_fields(ns, key)?;
        let doc = row_to_document(row).map_err(|e| invalid(ns, e.to_string()))?;
        check_names(ns, &doc, "")?;
        // Key fields the row lacks go first, in key order; present ones must agree.
        let mut stored = Document::new();
        for (name, value) in &key_fields {
            match doc.get(name) {
                Some(v) if v == value => {}
                Some(_) => {
                    return Err(invalid(
                        ns,
                        format!("row field `{name}` does not equal the key's"),
                    ));
                }
                None => {
                    stored.insert(name.clone(), value.clone());
                }
            }
        }
        stored.extend(doc);
        coll.replace_one(Self::key_filter(&key_fields), stored)
            .upsert(true)
            .await
            .map_err(|e| self.backend(ns, &e))?;
        Ok(())
    }

    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        let coll = self.collection(ns)?;
        let filter = Self::key_filter(&Self::key_fields(ns, key)?);
        let result = coll
            .delete_one(filter)
            .await
            .map_err(|e| self.backend(ns, &e))?;
        Ok(result.deleted_count > 0)
    }

    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        let coll = self.collection(ns)?;
        let filter = Self::filter_doc(ns, &query.filter)?;
        let sort = Self::sort_doc(ns, &query.order_by)?;
        let raw = coll.clone_with_type::<RawDocumentBuf>();
        let mut find = raw.find(filter);
        if !sort.is_empty() {
            find = find.sort(sort);
        }
        match query.limit {
            // MongoDB reads a limit of 0 as "no limit".
            Some(0) => return Ok(Vec::new()),
            Some(n) => find = find.limit(i64::try_from(n).unwrap_or(i64::MAX)),
            None => {}
        }
        let cursor = find.await.map_err(|e| self.backend(ns, &e))?;
        let docs: Vec<RawDocumentBuf> = cursor
            .try_collect()
            .await
            .map_err(|e| self.backend(ns, &e))?;
        docs.iter().map(|raw| stored_row(ns, raw)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::new("shop", "orders")
    }

    fn filter(f: &Filter) -> Document {
        MongoStore::filter_doc(&ns(), f).expect("filter")
    }

    #[test]
    fn filters_translate_with_the_null_semantics_of_filter_matches() {
        assert_eq!(filter(&Filter::All), doc! {});
        assert_eq!(
            filter(&Filter::Eq("a.b".into(), Value::Int(1))),
            doc! { "a.b": { "$eq": 1 } }
        );
        assert_eq!(
            filter(&Filter::Eq("a".into(), Value::Null)),
            match_nothing()
        );
        assert_eq!(
            filter(&Filter::Gt("a".into(), Value::Null)),
            match_nothing()
        );
        assert_eq!(
            filter(&Filter::Ne("a".into(), Value::from("x"))),
            doc! { "a": { "$nin": [Bson::Null, "x"] } }
        );
        assert_eq!(
            filter(&Filter::Ne("a".into(), Value::Null)),
            doc! { "a": { "$nin": [Bson::Null] } }
        );
        assert_eq!(
            filter(&Filter::In(
                "a".into(),
                vec![Value::Int(1), Value::Null, Value::UInt(5_000_000_000)]
            )),
            doc! { "a": { "$in": [1, 5_000_000_000_i64] } }
        );
        assert_eq!(
            filter(&Filter::In("a".into(), vec![Value::Null])),
            match_nothing()
        );
        let re = Value::Regex {
            pattern: "^x".into(),
            options: String::new(),
        };
        assert_eq!(
            filter(&Filter::In("a".into(), vec![re])),
            doc! { "$or": [{ "a": { "$eq": Bson::RegularExpression(mongodb::bson::Regex { pattern: "^x".into(), options: String::new() }) } }] }
        );
        assert_eq!(
            filter(&Filter::IsNull("a".into())),
            doc! { "a": Bson::Null }
        );
        assert_eq!(filter(&Filter::And(vec![])), doc! {});
        assert_eq!(filter(&Filter::Or(vec![])), match_nothing());
        assert_eq!(
            filter(&Filter::Not(Box::new(Filter::Or(vec![
                Filter::Lt("n".into(), Value::Double(1.5)),
                Filter::Gte("n".into(), Value::Int(9)),
            ])))),
            doc! { "$nor": [{ "$or": [{ "n": { "$lt": 1.5 } }, { "n": { "$gte": 9 } }] }] }
        );
    }

    #[test]
    fn operator_field_names_and_unconvertible_values_are_rejected_naming_the_field() {
        for bad in ["$where", "a.$gt", "", "a..b", "a\0b"] {
            let err = MongoStore::filter_doc(&ns(), &Filter::IsNull(bad.into()))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("shop.orders"), "{err}");
            assert!(
                err.contains(&format!("`{}`", bad.escape_default())),
                "{err}"
            );
        }
        let err = MongoStore::filter_doc(&ns(), &Filter::Eq("n".into(), Value::UInt(u64::MAX)))
            .expect_err("u64")
            .to_string();
        assert!(
            err.contains("filter on `n`") && err.contains("18446744073709551615"),
            "{err}"
        );
        let err = MongoStore::sort_doc(&ns(), &[("$natural".into(), true)]).expect_err("sort");
        assert!(err.to_string().contains("`$natural`"), "{err}");
        let key: Row = [("a.b", Value::Int(1))].into_iter().collect();
        let err = MongoStore::key_fields(&ns(), &key).expect_err("dotted key");
        assert!(err.to_string().contains("`a.b`"), "{err}");
        let err = MongoStore::key_fields(&ns(), &Row::new()).expect_err("empty key");
        assert!(err.to_string().contains("no fields"), "{err}");
        let nested = doc! { "a": [{ "ok": 1 }, { "$set": 1 }] };
        let err = check_names(&ns(), &nested, "").expect_err("nested $");
        assert!(err.to_string().contains("`a.1.$set`"), "{err}");
    }

    #[test]
    fn sort_keeps_the_first_direction_of_a_repeated_field() {
        let sort = MongoStore::sort_doc(
            &ns(),
            &[("b".into(), false), ("a".into(), true), ("b".into(), true)],
        )
        .expect("sort");
        assert_eq!(sort, doc! { "b": -1, "a": 1 });
    }
}
