//! A column as a DDL statement defines it, before the table it goes into says what its
//! default character set is and which server flavour spells JSON how.

use sqlparser::ast::{ColumnDef, ColumnOption, ColumnOptionDef, DataType, Ident};

use crate::charset::{charset_name, charset_of_collation};
use crate::jsoncheck::json_columns;
use crate::schema::{ColumnSchema, JsonCheck, parse_labels};

/// A column's character set as its definition gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CharsetSpec {
    /// Not a text type (numbers, dates, binary strings).
    None,
    /// A text type without `CHARACTER SET` or `COLLATE`: the table's default.
    TableDefault,
    /// Named by `CHARACTER SET`, implied by `COLLATE`, or fixed by the type (JSON, NCHAR).
    Named(String),
}

/// One column definition of `CREATE TABLE`, `ADD`, `CHANGE` or `MODIFY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewColumn {
    /// The column; its `charset` and `json` are settled by [`NewColumn::resolve`].
    pub(crate) column: ColumnSchema,
    pub(crate) charset: CharsetSpec,
    /// Declared `JSON`.
    pub(crate) json_type: bool,
    /// The definition has its own CHECK; these are the columns it keeps valid JSON.
    pub(crate) check: Option<Vec<String>>,
    /// Declared `PRIMARY KEY`.
    pub(crate) primary: bool,
}

fn normalize_type(base: &str) -> &str {
    match base {
        "integer" => "int",
        "bool" | "boolean" => "tinyint",
        "numeric" | "dec" | "fixed" => "decimal",
        "real" | "double precision" => "double",
        "character" | "nchar" | "national" => "char",
        "nvarchar" => "varchar",
        other => other,
    }
}

const BINARY_TYPES: &[&str] = &[
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "bit",
];
const TEXT_TYPES: &[&str] = &[
    "char",
    "varchar",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
    "enum",
    "set",
];

/// Whether a column of this type has a character set.
pub(crate) fn is_text_type(data_type: &str) -> bool {
    TEXT_TYPES.contains(&data_type)
}

/// `CHARACTER SET x` (or the collation's character set) in a type's or option's SQL text.
fn charset_in(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .collect();
    let value = |i: usize| words.get(i).map(|w| w.trim_matches(['\'', '"', '`']));
    let mut collation = None;
    for (i, w) in words.iter().enumerate() {
        if w.eq_ignore_ascii_case("CHARSET")
            || (w.eq_ignore_ascii_case("CHARACTER")
                && words
                    .get(i + 1)
                    .is_some_and(|s| s.eq_ignore_ascii_case("SET")))
        {
            let at = if w.eq_ignore_ascii_case("CHARSET") {
                i + 1
            } else {
                i + 2
            };
            if let Some(name) = value(at).and_then(charset_name) {
                return Some(name);
            }
        }
        if w.eq_ignore_ascii_case("COLLATE") {
            collation = collation.or_else(|| value(i + 1).and_then(charset_of_collation));
        }
    }
    collation
}

impl NewColumn {
    /// The column of a `ColumnDef` (CREATE TABLE, ADD COLUMN).
    pub(crate) fn from_def(def: &ColumnDef) -> Self {
        let type_text = def.data_type.to_string();
        let lower = type_text.to_ascii_lowercase();
        let base = lower
            .split(['(', ' '])
            .next()
            .unwrap_or_default()
            .to_owned();
        let data_type = normalize_type(&base).to_owned();
        let options: Vec<&ColumnOption> = def.options.iter().map(|o| &o.option).collect();
        let named = options.iter().find_map(|o| match o {
            ColumnOption::CharacterSet(name) => charset_name(&name.to_string()),
            _ => None,
        });
        let collated = options.iter().find_map(|o| match o {
            ColumnOption::Collation(name) => charset_of_collation(&name.to_string()),
            _ => None,
        });
        let explicit = charset_in(&type_text).or(named).or(collated);
        let json_type = data_type == "json";
        let charset = match explicit {
            _ if BINARY_TYPES.contains(&data_type.as_str()) => CharsetSpec::None,
            Some(name) if is_text_type(&data_type) || json_type => CharsetSpec::Named(name),
            None if json_type => CharsetSpec::Named("utf8mb4".into()),
            None if matches!(base.as_str(), "nchar" | "nvarchar" | "national") => {
                CharsetSpec::Named("utf8mb3".into())
            }
            None if is_text_type(&data_type) => CharsetSpec::TableDefault,
            _ => CharsetSpec::None,
        };
        let checks: Vec<&sqlparser::ast::Expr> = options
            .iter()
            .filter_map(|o| match o {
                ColumnOption::Check(expr) => Some(expr),
                _ => None,
            })
            .collect();
        let check =
            (!checks.is_empty()).then(|| checks.iter().flat_map(|e| json_columns(e)).collect());
        let labels = if data_type == "enum" || data_type == "set" {
            parse_labels(&type_text)
        } else {
            Vec::new()
        };
        let fsp = if matches!(data_type.as_str(), "datetime" | "timestamp" | "time") {
            lower
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(n, _)| n.trim().parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        let precision = (data_type == "decimal").then(|| {
            let args: Vec<u32> = lower
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(inner, _)| {
                    inner
                        .split(',')
                        .filter_map(|a| a.trim().parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            // MySQL's defaults: DECIMAL is DECIMAL(10,0), DECIMAL(p) is DECIMAL(p,0).
            match args[..] {
                [p, s] => (p, s),
                [p] => (p, 0),
                _ => (10, 0),
            }
        });
        let primary = options.iter().any(|o| {
            matches!(
                o,
                ColumnOption::Unique {
                    is_primary: true,
                    ..
                }
            )
        });
        NewColumn {
            column: ColumnSchema {
                name: def.name.value.clone(),
                fsp,
                unsigned: lower.contains("unsigned"),
                json: false,
                data_type,
                charset: None,
                labels,
                precision,
            },
            charset,
            json_type,
            check,
            primary,
        }
    }

    /// The column of `CHANGE`/`MODIFY`, which carry its parts rather than a `ColumnDef`.
    pub(crate) fn from_parts(name: Ident, data_type: DataType, options: Vec<ColumnOption>) -> Self {
        Self::from_def(&ColumnDef {
            name,
            data_type,
            options: options
                .into_iter()
                .map(|option| ColumnOptionDef { name: None, option })
                .collect(),
        })
    }

    /// The column in a table whose default character set is `table_charset`, and the CHECK its
    /// definition holds. MariaDB's JSON is LONGTEXT with `CHECK (json_valid(col))` unless the
    /// definition has a CHECK of its own, which replaces that one.
    pub(crate) fn resolve(
        &self,
        table_charset: &str,
        mariadb: bool,
    ) -> (ColumnSchema, Option<JsonCheck>) {
        let mut column = self.column.clone();
        column.charset = match &self.charset {
            CharsetSpec::None => None,
            CharsetSpec::TableDefault => Some(table_charset.to_owned()),
            CharsetSpec::Named(name) => Some(name.clone()),
        };
        let kept = match &self.check {
            Some(columns) => columns.clone(),
            None if self.json_type => vec![column.name.clone()],
            None => Vec::new(),
        };
        if self.json_type && mariadb {
            column.data_type = "longtext".into();
        }
        let check = (!kept.is_empty()).then(|| JsonCheck {
            name: column.name.clone(),
            owner: Some(column.name.clone()),
            columns: kept,
        });
        (column, check)
    }
}
