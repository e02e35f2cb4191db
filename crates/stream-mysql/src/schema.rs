//! Table definitions from information_schema: names, signedness, charsets, ENUM/SET labels,
//! MariaDB's JSON/UUID/INET types and primary keys. With `binlog_row_metadata=FULL` most of this
//! also arrives in each TABLE_MAP; with the default (NO_LOG / MINIMAL) it comes only from here.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::prelude::*;
use serde::{Deserialize, Serialize};

/// One column as information_schema describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ColumnSchema {
    pub(crate) name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `enum`, `inet6`, …
    pub(crate) data_type: String,
    pub(crate) unsigned: bool,
    /// `CHARACTER_SET_NAME`, for text columns.
    pub(crate) charset: Option<String>,
    /// ENUM or SET labels in definition order.
    pub(crate) labels: Vec<String>,
    /// MariaDB JSON column (LONGTEXT with a `json_valid` check).
    pub(crate) json: bool,
    /// Fraction digits of DATETIME, TIMESTAMP and TIME columns.
    #[serde(default)]
    pub(crate) fsp: u8,
}

/// A table's columns in order, and its primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableSchema {
    pub(crate) columns: Vec<ColumnSchema>,
    pub(crate) primary_key: Vec<usize>,
}

/// Known table definitions, and the server's collation id → charset map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub(crate) tables: HashMap<(String, String), Arc<TableSchema>>,
    pub(crate) collations: HashMap<u32, String>,
}

/// Labels of `enum('a','b''c')` / `set(...)` as information_schema prints them.
pub(crate) fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = column_type[open + 1..].trim_end_matches([')', ' ']);
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                Some('\'') | None => break,
                Some('\\') => {
                    if let Some(escaped) = chars.next() {
                        label.push(escaped);
                    }
                }
                Some(other) => label.push(other),
            }
        }
        labels.push(label);
    }
    labels
}

const SYSTEM_SCHEMAS: &str = "'mysql','information_schema','performance_schema','sys'";

impl Catalog {
    /// Reads the definitions of every table `wants(db, table)` accepts.
    pub(crate) async fn load(
        conn: &mut mysql_async::Conn,
        wants: impl Fn(&str, &str) -> bool,
    ) -> Result<Self, mysql_async::Error> {
        Self::load_scoped(conn, None, wants).await
    }

    /// Reads the definition of one table.
    pub(crate) async fn load_table(
        conn: &mut mysql_async::Conn,
        db: &str,
        table: &str,
    ) -> Result<Self, mysql_async::Error> {
        Self::load_scoped(conn, Some((db, table)), |_, _| true).await
    }

    async fn load_scoped(
        conn: &mut mysql_async::Conn,
        only: Option<(&str, &str)>,
        wants: impl Fn(&str, &str) -> bool,
    ) -> Result<Self, mysql_async::Error> {
        let (scope, schema_scope, params): (&str, &str, Vec<mysql_async::Value>) = match only {
            Some((db, table)) => (
                " AND TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                " AND CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                vec![db.into(), table.into()],
            ),
            None => ("", "", Vec::new()),
        };
        let mut catalog = Catalog::default();
        let collations: Vec<(u32, String)> = conn
            .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
            .await?;
        catalog.collations = collations.into_iter().collect();

        type ColumnRow = (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<u8>,
        );
        let rows: Vec<ColumnRow> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), \
                     CHARACTER_SET_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}){scope} \
                     ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
                ),
                params.clone(),
            )
            .await?;
        let mut tables: HashMap<(String, String), TableSchema> = HashMap::new();
        for (db, table, name, data_type, column_type, charset, fsp) in rows {
            if !wants(&db, &table) {
                continue;
            }
            let labels = if data_type == "enum" || data_type == "set" {
                parse_labels(&column_type)
            } else {
                Vec::new()
            };
            tables
                .entry((db, table))
                .or_insert_with(|| TableSchema {
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                })
                .columns
                .push(ColumnSchema {
                    name,
                    unsigned: column_type.contains("unsigned"),
                    data_type,
                    charset,
                    labels,
                    json: false,
                    fsp: fsp.unwrap_or(0),
                });
        }
        // MariaDB's JSON is LONGTEXT plus CHECK (json_valid(`col`)); MySQL has a real JSON type.
        let checks: Vec<(String, String, String)> = conn
            .exec(
                format!(
                    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                     WHERE CONSTRAINT_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) AND CHECK_CLAUSE LIKE 'json_valid(%'{schema_scope}"
                ),
                params.clone(),
            )
            .await
            .unwrap_or_default();
        for (db, table, clause) in checks {
            let Some(t) = tables.get_mut(&(db, table)) else {
                continue;
            };
            let col = clause
                .trim_start_matches("json_valid(")
                .trim_end_matches(')')
                .trim_matches('`');
            if let Some(c) = t.columns.iter_mut().find(|c| c.name == col) {
                c.json = true;
            }
        }
        let keys: Vec<(String, String, String)> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                     WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}){scope} \
                     ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
                ),
                params,
            )
            .await?;
        for (db, table, column) in keys {
            if let Some(t) = tables.get_mut(&(db, table))
                && let Some(i) = t.columns.iter().position(|c| c.name == column)
            {
                t.primary_key.push(i);
            }
        }
        catalog.tables = tables.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Ok(catalog)
    }

    /// The table definitions as checkpoint state (`Batch::state`).
    pub(crate) fn to_state(&self) -> serde_json::Value {
        let mut tables: Vec<(&String, &String, &TableSchema)> = self
            .tables
            .iter()
            .map(|((db, t), s)| (db, t, s.as_ref()))
            .collect();
        tables.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        serde_json::json!({ "version": 1, "tables": tables })
    }

    /// Replaces the table definitions by those saved in a checkpoint's state.
    pub(crate) fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Saved {
            version: u32,
            tables: Vec<(String, String, TableSchema)>,
        }
        let saved: Saved = serde_json::from_value(state.clone())
            .map_err(|e| format!("saved schema state: {e}"))?;
        if saved.version != 1 {
            return Err(format!(
                "saved schema state has version {}, expected 1",
                saved.version
            ));
        }
        self.tables = saved
            .tables
            .into_iter()
            .map(|(db, t, s)| ((db, t), Arc::new(s)))
            .collect();
        Ok(())
    }

    pub(crate) fn table(&self, db: &str, table: &str) -> Option<&Arc<TableSchema>> {
        self.tables.get(&(db.to_owned(), table.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_handle_quotes_commas_and_spaces() {
        assert_eq!(parse_labels("enum('a','b')"), ["a", "b"]);
        assert_eq!(
            parse_labels("set('it''s','x,y',' sp ')"),
            ["it's", "x,y", " sp "]
        );
        assert_eq!(parse_labels("enum('')"), [""]);
        assert!(parse_labels("int(11)").is_empty());
    }
}
