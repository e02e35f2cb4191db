//! Source table definitions: from the MySQL source's checkpoint state (`Batch::state`) and from
//! the DDL statements of its schema-change events.
//!
//! The state names each column's `data_type`, signedness and fraction digits but not DECIMAL
//! precision (unless it carries a `column_type`): a table first created from the state gets an
//! unconstrained `numeric` there; a table created or altered by DDL gets `numeric(p,s)`.

use std::collections::HashMap;

use sqlparser::ast::{AlterTableOperation, ColumnDef, ColumnOption, Statement, TableConstraint};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use crate::types::MySqlType;

/// One source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceColumn {
    pub(crate) name: String,
    pub(crate) ty: MySqlType,
}

/// A source table: columns in order and the primary key's column names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SourceTable {
    pub(crate) columns: Vec<SourceColumn>,
    pub(crate) primary_key: Vec<String>,
}

/// `(db, table)`.
pub(crate) type TableName = (String, String);

/// The tables of a stream-mysql schema state (`{"version":1,"tables":[[db,table,{...}]]}`);
/// empty for any other shape.
pub(crate) fn tables_from_state(state: &serde_json::Value) -> HashMap<TableName, SourceTable> {
    let mut out = HashMap::new();
    let Some(tables) = state.get("tables").and_then(|t| t.as_array()) else {
        return out;
    };
    for entry in tables {
        let (Some(db), Some(table), Some(def)) = (
            entry.get(0).and_then(|v| v.as_str()),
            entry.get(1).and_then(|v| v.as_str()),
            entry.get(2),
        ) else {
            continue;
        };
        let columns: Vec<SourceColumn> = def
            .get("columns")
            .and_then(|c| c.as_array())
            .map(|cols| cols.iter().filter_map(column_from_state).collect())
            .unwrap_or_default();
        let primary_key = def
            .get("primary_key")
            .and_then(|k| k.as_array())
            .map(|k| {
                k.iter()
                    .filter_map(|i| i.as_u64())
                    .filter_map(|i| columns.get(i as usize).map(|c| c.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            (db.to_owned(), table.to_owned()),
            SourceTable {
                columns,
                primary_key,
            },
        );
    }
    out
}

fn column_from_state(c: &serde_json::Value) -> Option<SourceColumn> {
    let name = c.get("name")?.as_str()?.to_owned();
    let flag = |k: &str| c.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let ty = match c.get("column_type").and_then(|v| v.as_str()) {
        Some(full) => MySqlType::parse(full),
        None => MySqlType {
            data_type: c.get("data_type")?.as_str()?.to_owned(),
            unsigned: flag("unsigned"),
            // `[p, s]`, saved by the MySQL source for DECIMAL columns.
            precision: c.get("precision").and_then(|v| {
                let pair = v.as_array()?;
                let part = |i: usize| pair.get(i)?.as_u64().and_then(|n| u32::try_from(n).ok());
                Some((part(0)?, part(1)?))
            }),
            fsp: c.get("fsp").and_then(|v| v.as_u64()).unwrap_or(0).min(6) as u8,
            json: false,
        },
    };
    let json = flag("json") || ty.json;
    Some(SourceColumn {
        name,
        ty: MySqlType { json, ..ty },
    })
}

/// A column's `DEFAULT` in an `ADD COLUMN`: what the source's existing rows now hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceDefault {
    /// A constant, as PostgreSQL literal text (`'std'`, `-1.5`; MySQL's TRUE/FALSE are 1/0).
    Literal(String),
    /// Computed by the source when the column was added (`CURRENT_TIMESTAMP`, an
    /// expression): the statement's text; the target cannot know the values.
    Computed(String),
}

/// One change a DDL statement makes to a table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnChange {
    /// A new column and its default (`None`: none, or `DEFAULT NULL`).
    Add(SourceColumn, Option<SourceDefault>),
    Drop(String),
    Rename {
        from: String,
        to: String,
    },
    /// `CHANGE`/`MODIFY`: column `from` gets this name and type.
    Redefine {
        from: String,
        column: SourceColumn,
    },
}

/// What a DDL statement means for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ddl {
    Create(SourceTable),
    CreateLike(TableName),
    Alter(Vec<ColumnChange>),
    /// Nothing the sink acts on (or a statement it cannot read).
    Other,
}

fn column_from_def(def: &ColumnDef) -> SourceColumn {
    SourceColumn {
        name: def.name.value.clone(),
        ty: MySqlType::parse(&def.data_type.to_string()),
    }
}

/// The `DEFAULT` of a column definition.
fn default_of(def: &ColumnDef) -> Option<SourceDefault> {
    use sqlparser::ast::{Expr, UnaryOperator, Value};
    let expr = def.options.iter().find_map(|o| match &o.option {
        ColumnOption::Default(expr) => Some(expr),
        _ => None,
    })?;
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Some(match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => return None,
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                SourceDefault::Literal(quoted(s))
            }
            Value::Number(n, _) => SourceDefault::Literal(n.to_string()),
            Value::Boolean(b) => SourceDefault::Literal(if *b { "1" } else { "0" }.to_owned()),
            _ => SourceDefault::Computed(expr.to_string()),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => SourceDefault::Literal(format!("-{n}")),
                _ => SourceDefault::Computed(expr.to_string()),
            },
            _ => SourceDefault::Computed(expr.to_string()),
        },
        _ => SourceDefault::Computed(expr.to_string()),
    })
}

fn column_from_parts(name: &str, data_type: &sqlparser::ast::DataType) -> SourceColumn {
    SourceColumn {
        name: name.to_owned(),
        ty: MySqlType::parse(&data_type.to_string()),
    }
}

/// Reads one DDL statement (as the MySQL source reports it) for `default_db`.
pub(crate) fn parse_ddl(sql: &str, default_db: &str) -> Ddl {
    let Ok(statements) = Parser::parse_sql(&MySqlDialect {}, sql) else {
        return Ddl::Other;
    };
    let Some(statement) = statements.into_iter().next() else {
        return Ddl::Other;
    };
    match statement {
        Statement::CreateTable(ct) => {
            if let Some(like) = &ct.like {
                let (sqlparser::ast::CreateTableLikeKind::Plain(l)
                | sqlparser::ast::CreateTableLikeKind::Parenthesized(l)) = like;
                let parts: Vec<String> = l
                    .name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
                    .collect();
                return match parts.as_slice() {
                    [db, t] => Ddl::CreateLike((db.clone(), t.clone())),
                    [t] => Ddl::CreateLike((default_db.to_owned(), t.clone())),
                    _ => Ddl::Other,
                };
            }
            let columns: Vec<SourceColumn> = ct.columns.iter().map(column_from_def).collect();
            let mut primary_key: Vec<String> = ct
                .columns
                .iter()
                .filter(|c| {
                    c.options.iter().any(|o| {
                        matches!(
                            &o.option,
                            ColumnOption::Unique {
                                is_primary: true,
                                ..
                            }
                        ) || o
                            .option
                            .to_string()
                            .to_ascii_uppercase()
                            .contains("PRIMARY KEY")
                    })
                })
                .map(|c| c.name.value.clone())
                .collect();
            for constraint in &ct.constraints {
                if let TableConstraint::PrimaryKey { columns: keys, .. } = constraint {
                    primary_key.extend(keys.iter().map(|k| {
                        let text = k.to_string();
                        let name = text.split(['(', ' ']).next().unwrap_or(&text);
                        name.trim_matches('`').to_owned()
                    }));
                }
            }
            Ddl::Create(SourceTable {
                columns,
                primary_key,
            })
        }
        Statement::AlterTable { operations, .. } => {
            let mut changes = Vec::new();
            for op in operations {
                match op {
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        changes.push(ColumnChange::Add(
                            column_from_def(&column_def),
                            default_of(&column_def),
                        ));
                    }
                    AlterTableOperation::DropColumn { column_names, .. } => {
                        changes.extend(
                            column_names
                                .into_iter()
                                .map(|c| ColumnChange::Drop(c.value)),
                        );
                    }
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => changes.push(ColumnChange::Rename {
                        from: old_column_name.value,
                        to: new_column_name.value,
                    }),
                    AlterTableOperation::ChangeColumn {
                        old_name,
                        new_name,
                        data_type,
                        ..
                    } => changes.push(ColumnChange::Redefine {
                        from: old_name.value,
                        column: column_from_parts(&new_name.value, &data_type),
                    }),
                    AlterTableOperation::ModifyColumn {
                        col_name,
                        data_type,
                        ..
                    } => changes.push(ColumnChange::Redefine {
                        from: col_name.value.clone(),
                        column: column_from_parts(&col_name.value, &data_type),
                    }),
                    _ => {}
                }
            }
            Ddl::Alter(changes)
        }
        _ => Ddl::Other,
    }
}

impl SourceTable {
    /// The table after `changes` (names compared case-insensitively, as MySQL does).
    pub(crate) fn altered(&self, changes: &[ColumnChange]) -> SourceTable {
        let mut next = self.clone();
        let find = |cols: &[SourceColumn], name: &str| {
            cols.iter().position(|c| c.name.eq_ignore_ascii_case(name))
        };
        for change in changes {
            match change {
                ColumnChange::Add(c, _) => {
                    if find(&next.columns, &c.name).is_none() {
                        next.columns.push(c.clone());
                    }
                }
                ColumnChange::Drop(name) => {
                    if let Some(i) = find(&next.columns, name) {
                        next.columns.remove(i);
                    }
                }
                ColumnChange::Rename { from, to } => {
                    if let Some(i) = find(&next.columns, from) {
                        next.columns[i].name = to.clone();
                    }
                    rename_key(&mut next.primary_key, from, to);
                }
                ColumnChange::Redefine { from, column } => {
                    if let Some(i) = find(&next.columns, from) {
                        next.columns[i] = column.clone();
                    }
                    rename_key(&mut next.primary_key, from, &column.name);
                }
            }
        }
        next
    }
}

fn rename_key(key: &mut [String], from: &str, to: &str) {
    for k in key.iter_mut() {
        if k.eq_ignore_ascii_case(from) {
            *k = to.to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_columns_keep_constant_defaults_as_postgres_literals() {
        let Ddl::Alter(changes) = parse_ddl(
            "ALTER TABLE c ADD COLUMN tier VARCHAR(5) NOT NULL DEFAULT 'std', ADD n INT DEFAULT -3, \
             ADD q VARCHAR(5) DEFAULT 'it''s', ADD b BOOLEAN DEFAULT TRUE, ADD z INT DEFAULT NULL, \
             ADD t TIMESTAMP DEFAULT CURRENT_TIMESTAMP, ADD plain INT",
            "x",
        ) else {
            panic!("an ALTER");
        };
        let defaults: Vec<Option<SourceDefault>> = changes
            .into_iter()
            .map(|c| match c {
                ColumnChange::Add(_, d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        let literal = |s: &str| Some(SourceDefault::Literal(s.to_owned()));
        assert_eq!(
            defaults[..4],
            [
                literal("'std'"),
                literal("-3"),
                literal("'it''s'"),
                literal("1")
            ]
        );
        assert_eq!(defaults[4], None);
        assert!(
            matches!(&defaults[5], Some(SourceDefault::Computed(e)) if e.contains("CURRENT_TIMESTAMP")),
            "{:?}",
            defaults[5]
        );
        assert_eq!(defaults[6], None);
    }

    #[test]
    fn create_statements_give_exact_types_and_the_key() {
        let Ddl::Create(t) = parse_ddl(
            "CREATE TABLE o (id INT NOT NULL, total DECIMAL(10,2), note VARCHAR(20), PRIMARY KEY (id))",
            "shop",
        ) else {
            panic!("create");
        };
        assert_eq!(t.primary_key, ["id"]);
        assert_eq!(t.columns[1].ty.to_pg().to_string(), "numeric(10,2)");
        let Ddl::Create(t) = parse_ddl("CREATE TABLE k (a BIGINT UNSIGNED PRIMARY KEY)", "x")
        else {
            panic!("create");
        };
        assert_eq!(t.primary_key, ["a"]);
        assert_eq!(
            parse_ddl("CREATE TABLE b LIKE shop.a", "x"),
            Ddl::CreateLike(("shop".into(), "a".into()))
        );
    }

    #[test]
    fn alter_statements_list_their_column_changes() {
        let Ddl::Alter(ops) = parse_ddl(
            "ALTER TABLE o ADD COLUMN c INT, RENAME COLUMN a TO b, MODIFY n VARCHAR(50), DROP COLUMN z",
            "shop",
        ) else {
            panic!("alter");
        };
        assert_eq!(ops.len(), 4);
        assert!(matches!(&ops[1], ColumnChange::Rename { from, to } if from == "a" && to == "b"));
        assert!(matches!(&ops[3], ColumnChange::Drop(z) if z == "z"));
        assert_eq!(parse_ddl("TRUNCATE TABLE o", "shop"), Ddl::Other);
    }

    #[test]
    fn the_mysql_source_state_reads_with_its_key() {
        let state = serde_json::json!({"version": 1, "tables": [["shop", "o", {
            "columns": [
                {"name": "id", "data_type": "int", "unsigned": true, "charset": null, "labels": [], "json": false, "fsp": 0},
                {"name": "doc", "data_type": "longtext", "unsigned": false, "charset": "utf8mb4", "labels": [], "json": true, "fsp": 0}
            ],
            "primary_key": [0]
        }]]});
        let tables = tables_from_state(&state);
        let t = &tables[&("shop".to_owned(), "o".to_owned())];
        assert_eq!(t.primary_key, ["id"]);
        assert_eq!(t.columns[0].ty.to_pg().to_string(), "bigint");
        assert_eq!(t.columns[1].ty.to_pg().to_string(), "jsonb");
    }
}
