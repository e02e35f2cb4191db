//! The sink's settings: the `postgres` sink block of a config file, as a plain struct.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a source delete does to the target row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deletes {
    /// The row is deleted.
    #[default]
    Hard,
    /// The row stays with its last values, `_deleted = true` and `_deleted_at` set; a later
    /// insert of the same key brings it back alive.
    Soft,
}

/// What happens to a source table without a primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keyless {
    /// The pipeline stops with an error naming the table.
    #[default]
    Refuse,
    /// Every change is appended as a new row with `_op` and `_position`.
    Append,
}

/// What happens to a change the target refuses (out of range, a constraint, a value that does
/// not convert to an extracted column's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The batch fails with [`stream_core::SinkError::Rejected`] naming table, key, position
    /// and reason; nothing of it is applied.
    #[default]
    Stop,
    /// The refused changes are left out and handed back ([`crate::Applied::rejected`]) for
    /// the dead-letter queue; the rest of the batch is applied.
    DeadLetter,
}

/// PostgreSQL types an extracted MongoDB column can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtractedType {
    /// `text`: strings as themselves, other scalars in their JSON form.
    Text,
    /// `boolean`.
    Boolean,
    /// `integer`.
    Integer,
    /// `bigint`.
    Bigint,
    /// `numeric`: integers, doubles, Decimal128.
    Numeric,
    /// `double precision`.
    #[serde(alias = "double precision")]
    Double,
    /// `timestamptz`: BSON dates.
    Timestamptz,
    /// `jsonb`: any value as Relaxed Extended JSON.
    Jsonb,
}

/// One typed column extracted from a MongoDB document by dotted path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractedColumn {
    /// Dotted path into the document (`amount.total`).
    pub path: String,
    /// The column's type.
    #[serde(rename = "type")]
    pub column_type: ExtractedType,
}

/// The `postgres` sink of a config file.
///
/// ```yaml
/// url: postgres://writer:secret@db:5432/replica
/// schema: shop            # default: the source database's name
/// deletes: soft           # hard (default) | soft
/// keyless: append         # refuse (default) | append
/// on_error: dead-letter   # stop (default) | dead-letter
/// columns:                # MongoDB only: typed columns beside `doc`, per collection
///   orders:
///     total: {path: amount.total, type: numeric}
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// `postgres://user:password@host:port/database` (never printed with its password).
    pub url: String,
    /// Target schema; `None`: each source database's name.
    #[serde(default)]
    pub schema: Option<String>,
    /// Hard or soft deletes.
    #[serde(default)]
    pub deletes: Deletes,
    /// What to do with tables without a primary key.
    #[serde(default)]
    pub keyless: Keyless,
    /// What to do with changes the target refuses.
    #[serde(default)]
    pub on_error: OnError,
    /// MongoDB: extracted columns per collection (`orders`, `shop.orders`, or `*` for every
    /// collection), by column name.
    #[serde(default)]
    pub columns: BTreeMap<String, BTreeMap<String, ExtractedColumn>>,
}

impl std::fmt::Debug for PostgresSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSinkConfig")
            .field("url", &stream_core::redact_url(&self.url))
            .field("schema", &self.schema)
            .field("deletes", &self.deletes)
            .field("keyless", &self.keyless)
            .field("on_error", &self.on_error)
            .field("columns", &self.columns)
            .finish()
    }
}

impl PostgresSinkConfig {
    /// Settings with every default and this URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            deletes: Deletes::default(),
            keyless: Keyless::default(),
            on_error: OnError::default(),
            columns: BTreeMap::new(),
        }
    }

    /// The extracted columns of a collection, by `db.collection`, by collection name, or
    /// those under `*` (every collection).
    pub(crate) fn extracted(
        &self,
        db: &str,
        collection: &str,
    ) -> Option<&BTreeMap<String, ExtractedColumn>> {
        self.columns
            .get(&format!("{db}.{collection}"))
            .or_else(|| self.columns.get(collection))
            .or_else(|| self.columns.get("*"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_contract_reads_with_defaults_and_refuses_unknown_keys() {
        let c: PostgresSinkConfig = serde_json::from_str(
            r#"{"url":"postgres://w:hunter2@db/replica","deletes":"soft","keyless":"append",
                "on_error":"dead-letter",
                "columns":{"orders":{"total":{"path":"amount.total","type":"numeric"}}}}"#,
        )
        .expect("config");
        assert_eq!(c.deletes, Deletes::Soft);
        assert_eq!(c.keyless, Keyless::Append);
        assert_eq!(c.on_error, OnError::DeadLetter);
        assert_eq!(c.schema, None);
        let total = &c.extracted("shop", "orders").expect("columns")["total"];
        assert_eq!(total.path, "amount.total");
        assert_eq!(total.column_type, ExtractedType::Numeric);
        assert!(!format!("{c:?}").contains("hunter2"));

        let d: PostgresSinkConfig =
            serde_json::from_str(r#"{"url":"postgres://h/db"}"#).expect("d");
        assert_eq!(d, PostgresSinkConfig::new("postgres://h/db"));
        let err = serde_json::from_str::<PostgresSinkConfig>(r#"{"url":"x","delete":"soft"}"#)
            .expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `delete`"), "{err}");
        assert!(
            serde_json::from_str::<PostgresSinkConfig>(r#"{"url":"x","deletes":"maybe"}"#).is_err()
        );
    }
}
