//! Table definitions from information_schema: names, signedness, charsets, ENUM/SET labels,
//! MariaDB's JSON/UUID/INET types and primary keys. With `binlog_row_metadata=FULL` most of this
//! also arrives in each TABLE_MAP; with the default (NO_LOG / MINIMAL) it comes only from here.
//!
//! A MariaDB JSON column is LONGTEXT kept valid by a CHECK constraint (`json_valid(col)`); the
//! checks that do so are part of the definition ([`JsonCheck`]), read from
//! `information_schema.CHECK_CONSTRAINTS` here and followed through DDL in `ddl`, with the same
//! rule ([`crate::jsoncheck`]) on both paths.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::prelude::*;
use serde::{Deserialize, Serialize};

use crate::charset::charset_of_collation;
use crate::jsoncheck::json_columns_of_clause;

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
    /// Holds JSON: MySQL's JSON type, or a MariaDB column a [`JsonCheck`] keeps valid JSON.
    pub(crate) json: bool,
    /// Fraction digits of DATETIME, TIMESTAMP and TIME columns.
    #[serde(default)]
    pub(crate) fsp: u8,
    /// DECIMAL precision and scale (a replica declares `numeric(p,s)` from them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) precision: Option<(u32, u32)>,
}

/// A CHECK constraint that keeps columns valid JSON (MariaDB's JSON columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JsonCheck {
    /// The constraint's name; a column-level check is named after its column when created.
    pub(crate) name: String,
    /// The column whose definition holds it (column-level: it goes with that definition on
    /// `MODIFY`/`CHANGE`), or `None` for a table-level check.
    pub(crate) owner: Option<String>,
    /// The columns it keeps valid JSON.
    pub(crate) columns: Vec<String>,
}

/// A table's columns in order, and its primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableSchema {
    pub(crate) columns: Vec<ColumnSchema>,
    pub(crate) primary_key: Vec<usize>,
    /// The table's default character set: what a text column added without one gets.
    #[serde(default)]
    pub(crate) charset: Option<String>,
    /// The CHECK constraints that make columns JSON.
    #[serde(default)]
    pub(crate) checks: Vec<JsonCheck>,
}

impl TableSchema {
    /// A table of these columns, without key, default character set or checks.
    pub(crate) fn new(columns: Vec<ColumnSchema>) -> Self {
        Self {
            columns,
            primary_key: Vec::new(),
            charset: None,
            checks: Vec::new(),
        }
    }

    /// Sets each column's `json` from its type and the checks, after the checks changed.
    pub(crate) fn refresh_json(&mut self) {
        for c in &mut self.columns {
            c.json = c.data_type == "json"
                || self.checks.iter().any(|check| {
                    check
                        .columns
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(&c.name))
                });
        }
    }

    /// Definitions saved before checks were recorded mark JSON columns only by `json`: give
    /// each such column the column-level check MariaDB's JSON type has, so DDL keeps them.
    fn adopt_legacy_json(&mut self) {
        if !self.checks.is_empty() {
            return;
        }
        self.checks = self
            .columns
            .iter()
            .filter(|c| c.json && c.data_type != "json")
            .map(|c| JsonCheck {
                name: c.name.clone(),
                owner: Some(c.name.clone()),
                columns: vec![c.name.clone()],
            })
            .collect();
    }
}

/// Known table definitions, database defaults, and the server's collation id → charset map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub(crate) tables: HashMap<(String, String), Arc<TableSchema>>,
    pub(crate) collations: HashMap<u32, String>,
    /// Each database's default character set (what a new table without one gets).
    pub(crate) databases: HashMap<String, String>,
    /// `character_set_server`: the default of a database created without one.
    pub(crate) server_charset: Option<String>,
    /// The server is MariaDB (its JSON type is LONGTEXT with a check).
    pub(crate) mariadb: bool,
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

/// ER_BAD_FIELD_ERROR and ER_UNKNOWN_TABLE: an information_schema column or table this server
/// version does not have.
fn is_missing(e: &mysql_async::Error, codes: &[u16]) -> bool {
    matches!(e, mysql_async::Error::Server(se) if codes.contains(&se.code))
}

/// The WHERE parts and parameters that restrict the queries to one table, or to none.
struct Scope {
    columns: &'static str,
    checks: &'static str,
    schemata: &'static str,
    params: Vec<mysql_async::Value>,
}

impl Scope {
    fn new(only: Option<(&str, &str)>) -> Self {
        match only {
            Some((db, table)) => Self {
                columns: " AND TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                checks: " AND CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                schemata: " AND SCHEMA_NAME = ?",
                params: vec![db.into(), table.into()],
            },
            None => Self {
                columns: "",
                checks: "",
                schemata: "",
                params: Vec::new(),
            },
        }
    }

    /// The parameters of `schemata`: the database alone.
    fn schemata_params(&self) -> Vec<mysql_async::Value> {
        self.params.first().cloned().into_iter().collect()
    }
}

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
        let scope = Scope::new(only);
        let mut catalog = Catalog::default();
        let collations: Vec<(u32, String)> = conn
            .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
            .await?;
        catalog.collations = collations.into_iter().collect();
        let server: Option<(String, Option<String>)> = conn
            .query_first("SELECT @@version, @@character_set_server")
            .await?;
        if let Some((version, charset)) = server {
            catalog.mariadb = version.to_ascii_lowercase().contains("mariadb");
            catalog.server_charset = charset.map(|c| c.to_ascii_lowercase());
        }
        let schemata: Vec<(String, Option<String>)> = conn
            .exec(
                format!(
                    "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME NOT IN ({SYSTEM_SCHEMAS}){}",
                    scope.schemata
                ),
                scope.schemata_params(),
            )
            .await?;
        catalog.databases = schemata
            .into_iter()
            .filter_map(|(db, charset)| Some((db, charset?.to_ascii_lowercase())))
            .collect();

        let mut tables = Self::load_columns(conn, &scope, &wants).await?;
        let defaults: Vec<(String, String, Option<String>)> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}){}",
                    scope.columns
                ),
                scope.params.clone(),
            )
            .await?;
        for (db, table, collation) in defaults {
            if let Some(t) = tables.get_mut(&(db, table)) {
                t.charset = collation.as_deref().and_then(charset_of_collation);
            }
        }
        if catalog.mariadb {
            for (db, table, check) in Self::load_json_checks(conn, &scope).await? {
                if let Some(t) = tables.get_mut(&(db, table)) {
                    t.checks.push(check);
                }
            }
        }
        let keys: Vec<(String, String, String)> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                     WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}){} \
                     ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
                    scope.columns
                ),
                scope.params.clone(),
            )
            .await?;
        for (db, table, column) in keys {
            if let Some(t) = tables.get_mut(&(db, table))
                && let Some(i) = t.columns.iter().position(|c| c.name == column)
            {
                t.primary_key.push(i);
            }
        }
        catalog.tables = tables
            .into_iter()
            .map(|(k, mut v)| {
                v.refresh_json();
                (k, Arc::new(v))
            })
            .collect();
        Ok(catalog)
    }

    async fn load_columns(
        conn: &mut mysql_async::Conn,
        scope: &Scope,
        wants: &impl Fn(&str, &str) -> bool,
    ) -> Result<HashMap<(String, String), TableSchema>, mysql_async::Error> {
        type ColumnRow = (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<u8>,
            Option<u32>,
            Option<u32>,
        );
        let rows: Vec<ColumnRow> = conn
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), \
                     CHARACTER_SET_NAME, DATETIME_PRECISION, NUMERIC_PRECISION, NUMERIC_SCALE \
                     FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}){} \
                     ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
                    scope.columns
                ),
                scope.params.clone(),
            )
            .await?;
        let mut tables: HashMap<(String, String), TableSchema> = HashMap::new();
        for (db, table, name, data_type, column_type, charset, fsp, digits, scale) in rows {
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
                .or_insert_with(|| TableSchema::new(Vec::new()))
                .columns
                .push(ColumnSchema {
                    name,
                    unsigned: column_type.contains("unsigned"),
                    charset: charset.map(|c| c.to_ascii_lowercase()),
                    labels,
                    json: false,
                    fsp: fsp.unwrap_or(0),
                    precision: (data_type == "decimal")
                        .then(|| digits.zip(scale))
                        .flatten(),
                    data_type,
                });
        }
        Ok(tables)
    }

    /// MariaDB's CHECK constraints that keep columns valid JSON, by table. Servers before
    /// 10.3.10 have no CHECK_CONSTRAINTS (and no enforced checks); before 10.5.10 it has no LEVEL.
    async fn load_json_checks(
        conn: &mut mysql_async::Conn,
        scope: &Scope,
    ) -> Result<Vec<(String, String, JsonCheck)>, mysql_async::Error> {
        let query = |level: &str| {
            format!(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, {level}, CHECK_CLAUSE \
                 FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
                 AND CHECK_CLAUSE LIKE '%json\\_valid%'{}",
                scope.checks
            )
        };
        type CheckRow = (String, String, String, Option<String>, String);
        let rows: Vec<CheckRow> = match conn.exec(query("LEVEL"), scope.params.clone()).await {
            Ok(rows) => rows,
            Err(e) if is_missing(&e, &[1054]) => {
                conn.exec(query("NULL"), scope.params.clone()).await?
            }
            Err(e) if is_missing(&e, &[1109]) => {
                tracing::debug!("no information_schema.CHECK_CONSTRAINTS: no JSON checks to read");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        Ok(rows
            .into_iter()
            .filter_map(|(db, table, name, level, clause)| {
                let columns = json_columns_of_clause(&clause);
                if columns.is_empty() {
                    return None;
                }
                // A column-level check is named after its column when created (and keeps that
                // name across a rename): it belongs to the one column it names.
                let column_level = match level.as_deref() {
                    Some(level) => level.eq_ignore_ascii_case("column"),
                    None => columns.iter().any(|c| c.eq_ignore_ascii_case(&name)),
                };
                let owner = (column_level && columns.len() == 1).then(|| columns[0].clone());
                Some((
                    db,
                    table,
                    JsonCheck {
                        name,
                        owner,
                        columns,
                    },
                ))
            })
            .collect())
    }

    /// The table definitions and database defaults as checkpoint state (`Batch::state`).
    pub(crate) fn to_state(&self) -> serde_json::Value {
        let mut tables: Vec<(&String, &String, &TableSchema)> = self
            .tables
            .iter()
            .map(|((db, t), s)| (db, t, s.as_ref()))
            .collect();
        tables.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let databases: std::collections::BTreeMap<&String, &String> =
            self.databases.iter().collect();
        serde_json::json!({ "version": 1, "tables": tables, "databases": databases })
    }

    /// Replaces the table definitions (and database defaults, when saved) by those saved in a
    /// checkpoint's state.
    pub(crate) fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Saved {
            version: u32,
            tables: Vec<(String, String, TableSchema)>,
            #[serde(default)]
            databases: Option<HashMap<String, String>>,
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
            .map(|(db, t, mut s)| {
                s.adopt_legacy_json();
                ((db, t), Arc::new(s))
            })
            .collect();
        if let Some(databases) = saved.databases {
            self.databases = databases;
        }
        Ok(())
    }

    pub(crate) fn table(&self, db: &str, table: &str) -> Option<&Arc<TableSchema>> {
        self.tables.get(&(db.to_owned(), table.to_owned()))
    }

    /// The default character set of a new table in `db` that names none.
    pub(crate) fn database_charset(&self, db: &str) -> String {
        self.databases
            .get(db)
            .or(self.server_charset.as_ref())
            .cloned()
            .unwrap_or_else(|| "utf8mb4".to_owned())
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

    #[test]
    fn saved_state_round_trips_and_older_states_keep_their_json_columns() {
        let mut catalog = Catalog {
            databases: [("shop".to_owned(), "latin1".to_owned())].into(),
            ..Catalog::default()
        };
        // A state saved before checks were recorded: JSON only as the column flag.
        let legacy = serde_json::json!({"version": 1, "tables": [["shop", "t", {
            "columns": [
                {"name": "id", "data_type": "int", "unsigned": false, "charset": null, "labels": [], "json": false},
                {"name": "doc", "data_type": "longtext", "unsigned": false, "charset": "utf8mb4", "labels": [], "json": true}
            ],
            "primary_key": [0]
        }]]});
        catalog.restore(&legacy).expect("legacy state");
        assert_eq!(catalog.databases["shop"], "latin1", "kept when not saved");
        crate::ddl::apply(
            "ALTER TABLE t ADD COLUMN note TEXT",
            Some("shop"),
            |_, _| true,
            &mut catalog,
        );
        let t = catalog.table("shop", "t").expect("t");
        let json: Vec<bool> = t.columns.iter().map(|c| c.json).collect();
        assert_eq!(json, [false, true, false]);
        assert_eq!(t.columns[2].charset.as_deref(), Some("latin1"));

        let mut restored = Catalog::default();
        restored.restore(&catalog.to_state()).expect("state");
        assert_eq!(restored.tables, catalog.tables);
        assert_eq!(restored.databases, catalog.databases);
    }
}
