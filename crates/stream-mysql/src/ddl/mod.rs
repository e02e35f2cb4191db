//! DDL from QUERY events, parsed and applied to the known table definitions, so rows are
//! decoded with the columns in force when they were written.
//!
//! Parsing ([`parse`]) is pure and unit-tested: `sqlparser` reads the statements, after a pass
//! over the tokens ([`prepass`]) has taken out what it does not read (table options, character
//! sets, `DROP CHECK`, database options). [`apply`] changes a [`Catalog`]. What it tracks
//! follows the server: a column's character set is its own, a new text column takes the
//! table's default (which follows `ALTER TABLE ... CHARACTER SET` and `CONVERT TO`, and is the
//! database's for a `CREATE TABLE` without one), and MariaDB JSON columns are those a CHECK
//! keeps valid JSON ([`crate::jsoncheck`]), as information_schema says.
//!
//! A statement the parser cannot read, on a table we track, drops that table's definition: with
//! FULL row metadata nothing is lost (names come with every row); without it, the next row of
//! the table fails with a clear schema error instead of being decoded with the wrong columns.

mod alter;
mod column;
mod prepass;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use sqlparser::ast::{
    AlterTableOperation, CreateTableLikeKind, MySQLColumnPosition, ObjectName, ObjectType,
    RenameTableNameKind, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use stream_core::{Namespace, SchemaChangeKind};

use crate::jsoncheck::json_columns;
use crate::schema::Catalog;

pub(crate) use column::NewColumn;
pub(crate) use prepass::Database;

type TableName = (String, String);

/// Where an added or changed column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    Last,
    First,
    After(String),
}

/// One change to a table's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AlterOp {
    /// `ADD [IF NOT EXISTS]`.
    Add {
        column: NewColumn,
        place: Place,
        if_not_exists: bool,
    },
    /// `DROP [IF EXISTS]`.
    Drop {
        name: String,
        if_exists: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    /// `CHANGE`/`MODIFY [IF EXISTS]`: replace column `from` by this definition.
    Change {
        from: String,
        column: NewColumn,
        place: Option<Place>,
        if_exists: bool,
    },
    DropPrimaryKey,
    /// A table-level CHECK that keeps these columns valid JSON.
    AddCheck {
        name: Option<String>,
        columns: Vec<String>,
    },
    /// `DROP CHECK name` / `DROP CONSTRAINT name`.
    DropCheck(String),
    /// `[DEFAULT] CHARACTER SET x` / `COLLATE y`: the default for new columns.
    DefaultCharset(String),
    /// `CONVERT TO CHARACTER SET x`: every text column becomes `x`.
    ConvertCharset(String),
}

/// A table as `CREATE TABLE` defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateTable {
    pub(crate) columns: Vec<NewColumn>,
    /// Named columns of a `PRIMARY KEY (...)` constraint.
    pub(crate) key: Vec<String>,
    /// `DEFAULT CHARSET=` of the table; `None`: the database's.
    pub(crate) charset: Option<String>,
    /// Table-level CHECKs that keep columns valid JSON: (name, columns).
    pub(crate) checks: Vec<(Option<String>, Vec<String>)>,
}

/// What a statement does to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Create(CreateTable),
    CreateLike(TableName),
    /// A definition we cannot know from the statement (`CREATE TABLE ... SELECT`).
    Forget,
    Alter(Vec<AlterOp>),
    Rename(TableName),
    Drop,
    Truncate,
}

/// The outcome of parsing one QUERY event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Changes to these tables, in order.
    Changes(Vec<(TableName, Action)>),
    /// `CREATE DATABASE` / `ALTER DATABASE`.
    Database(Database),
    /// `DROP DATABASE`.
    DropDatabase(String),
    /// Not a statement that changes a table definition.
    Other,
    /// Looks like DDL but could not be parsed; the named tables (if found) are uncertain.
    Unreadable(String),
}

fn table_name(name: &ObjectName, default_db: Option<&str>) -> Option<TableName> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    match parts.as_slice() {
        [db, table] => Some((db.clone(), table.clone())),
        [table] => Some((default_db?.to_owned(), table.clone())),
        _ => None,
    }
}

fn place_of(p: Option<&MySQLColumnPosition>) -> Option<Place> {
    p.map(|p| match p {
        MySQLColumnPosition::First => Place::First,
        MySQLColumnPosition::After(c) => Place::After(c.value.clone()),
    })
}

/// Whether the statement changes tables or databases (not users, views, routines, …).
pub(crate) fn is_table_ddl(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(6)
        .map(|w| w.to_ascii_uppercase())
        .filter(|w| {
            !matches!(
                w.as_str(),
                "OR" | "REPLACE" | "TEMPORARY" | "ONLINE" | "IGNORE" | "IF" | "NOT" | "EXISTS"
            )
        })
        .collect();
    let second = |allowed: &[&str]| words.get(1).is_some_and(|w| allowed.contains(&w.as_str()));
    match words.first().map(String::as_str) {
        Some("CREATE" | "ALTER" | "DROP") => second(&["TABLE", "DATABASE", "SCHEMA"]),
        Some("RENAME") => second(&["TABLE"]),
        Some("TRUNCATE") => true,
        _ => false,
    }
}

/// The `PRIMARY KEY (...)` column names and JSON checks of a CREATE TABLE's constraints.
fn table_constraints(constraints: &[TableConstraint], create: &mut CreateTable) {
    for constraint in constraints {
        match constraint {
            TableConstraint::Check {
                name,
                expr,
                enforced,
            } if *enforced != Some(false) => {
                let columns = json_columns(expr);
                if !columns.is_empty() {
                    create
                        .checks
                        .push((name.as_ref().map(|n| n.value.clone()), columns));
                }
            }
            TableConstraint::PrimaryKey { columns, .. } => {
                create.key.extend(columns.iter().map(|c| {
                    let text = c.to_string();
                    let name = text.split(['(', ' ']).next().unwrap_or(&text);
                    name.trim_matches('`').replace("``", "`")
                }));
            }
            _ => {}
        }
    }
}

/// The changes one parsed ALTER TABLE makes.
fn alter_changes(
    name: TableName,
    operations: Vec<AlterTableOperation>,
    default_db: Option<&str>,
    mut ops: Vec<AlterOp>,
    changes: &mut Vec<(TableName, Action)>,
) {
    let mut renamed = None;
    for op in operations {
        match op {
            AlterTableOperation::AddColumn {
                column_def,
                column_position,
                if_not_exists,
                ..
            } => ops.push(AlterOp::Add {
                column: NewColumn::from_def(&column_def),
                place: place_of(column_position.as_ref()).unwrap_or(Place::Last),
                if_not_exists,
            }),
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => ops.extend(column_names.into_iter().map(|c| AlterOp::Drop {
                name: c.value,
                if_exists,
            })),
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => ops.push(AlterOp::Rename {
                from: old_column_name.value,
                to: new_column_name.value,
            }),
            AlterTableOperation::ChangeColumn {
                old_name,
                new_name,
                data_type,
                options,
                column_position,
            } => ops.push(AlterOp::Change {
                from: old_name.value,
                column: NewColumn::from_parts(new_name, data_type, options),
                place: place_of(column_position.as_ref()),
                if_exists: false,
            }),
            AlterTableOperation::ModifyColumn {
                col_name,
                data_type,
                options,
                column_position,
            } => ops.push(AlterOp::Change {
                from: col_name.value.clone(),
                column: NewColumn::from_parts(col_name, data_type, options),
                place: place_of(column_position.as_ref()),
                if_exists: false,
            }),
            AlterTableOperation::DropPrimaryKey { .. } => ops.push(AlterOp::DropPrimaryKey),
            AlterTableOperation::DropConstraint { name, .. } => {
                ops.push(AlterOp::DropCheck(name.value));
            }
            AlterTableOperation::AddConstraint {
                constraint:
                    TableConstraint::Check {
                        name,
                        expr,
                        enforced,
                    },
                ..
            } if enforced != Some(false) => {
                let columns = json_columns(&expr);
                if !columns.is_empty() {
                    ops.push(AlterOp::AddCheck {
                        name: name.map(|n| n.value),
                        columns,
                    });
                }
            }
            AlterTableOperation::RenameTable { table_name: to } => {
                let (RenameTableNameKind::As(to) | RenameTableNameKind::To(to)) = to;
                renamed = table_name(&to, default_db).or(renamed);
            }
            // Indexes, other constraints, options: the row format does not change.
            _ => {}
        }
    }
    // The whole statement changes the table, then gives it its new name.
    if !ops.is_empty() || renamed.is_none() {
        changes.push((name.clone(), Action::Alter(ops)));
    }
    if let Some(to) = renamed {
        changes.push((name, Action::Rename(to)));
    }
}

/// Parses one statement. `default_db` is the QUERY event's current database.
pub(crate) fn parse(sql: &str, default_db: Option<&str>) -> Parsed {
    if !is_table_ddl(sql) {
        return Parsed::Other;
    }
    if let Some(db) = prepass::database(sql, default_db) {
        return Parsed::Database(db);
    }
    let mut pending_ops = Vec::new();
    let mut conditional = prepass::Conditional::default();
    let mut table_charset = None;
    let mut text = sql.to_owned();
    if let Some(alter) = prepass::alter(sql, default_db) {
        let Some(table) = alter.table else {
            return Parsed::Other;
        };
        let mut ops = alter.before;
        conditional = alter.conditional;
        match alter.rest {
            Some(rest) => {
                text = rest;
                pending_ops = ops;
                pending_ops.extend(alter.after);
            }
            None => {
                ops.extend(alter.after);
                return Parsed::Changes(vec![(table, Action::Alter(ops))]);
            }
        }
    } else if let Some(create) = prepass::create(sql) {
        if create.from_query {
            return match Parser::parse_sql(&MySqlDialect {}, sql).ok().and_then(|s| {
                s.into_iter().find_map(|s| match s {
                    Statement::CreateTable(ct) => table_name(&ct.name, default_db),
                    _ => None,
                })
            }) {
                Some(name) => Parsed::Changes(vec![(name, Action::Forget)]),
                None => Parsed::Unreadable("CREATE TABLE ... SELECT that cannot be parsed".into()),
            };
        }
        text = create.sql;
        table_charset = create.charset;
    }
    let statements = match Parser::parse_sql(&MySqlDialect {}, &text) {
        Ok(s) => s,
        Err(e) => return Parsed::Unreadable(e.to_string()),
    };
    let mut changes = Vec::new();
    for statement in statements {
        match statement {
            Statement::CreateTable(ct) => {
                let Some(name) = table_name(&ct.name, default_db) else {
                    continue;
                };
                if let Some(like) = &ct.like {
                    let (CreateTableLikeKind::Plain(l) | CreateTableLikeKind::Parenthesized(l)) =
                        like;
                    if let Some(from) = table_name(&l.name, default_db) {
                        changes.push((name, Action::CreateLike(from)));
                    }
                    continue;
                }
                let mut create = CreateTable {
                    columns: ct.columns.iter().map(NewColumn::from_def).collect(),
                    key: Vec::new(),
                    charset: table_charset.take(),
                    checks: Vec::new(),
                };
                table_constraints(&ct.constraints, &mut create);
                changes.push((name, Action::Create(create)));
            }
            Statement::AlterTable {
                name, operations, ..
            } => {
                let Some(name) = table_name(&name, default_db) else {
                    continue;
                };
                let (before, after): (Vec<AlterOp>, Vec<AlterOp>) =
                    std::mem::take(&mut pending_ops)
                        .into_iter()
                        .partition(|op| !matches!(op, AlterOp::ConvertCharset(_)));
                let at = changes.len();
                alter_changes(name.clone(), operations, default_db, before, &mut changes);
                if let Some((_, Action::Alter(ops))) = changes.get_mut(at) {
                    ops.iter_mut().for_each(|op| conditional.mark(op));
                }
                if !after.is_empty() {
                    match changes.get_mut(at) {
                        Some((_, Action::Alter(ops))) => ops.extend(after),
                        _ => changes.insert(at, (name, Action::Alter(after))),
                    }
                }
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    if let (Some(from), Some(to)) = (
                        table_name(&r.old_name, default_db),
                        table_name(&r.new_name, default_db),
                    ) {
                        changes.push((from, Action::Rename(to)));
                    }
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                changes.extend(
                    names
                        .iter()
                        .filter_map(|n| table_name(n, default_db))
                        .map(|n| (n, Action::Drop)),
                );
            }
            Statement::Drop {
                object_type: ObjectType::Schema | ObjectType::Database,
                names,
                ..
            } => {
                if let Some(db) = names
                    .first()
                    .and_then(|n| n.0.last())
                    .and_then(|p| p.as_ident())
                {
                    return Parsed::DropDatabase(db.value.clone());
                }
            }
            Statement::Truncate { table_names, .. } => {
                changes.extend(
                    table_names
                        .iter()
                        .filter_map(|t| table_name(&t.name, default_db))
                        .map(|n| (n, Action::Truncate)),
                );
            }
            _ => {}
        }
    }
    if changes.is_empty() {
        Parsed::Other
    } else {
        Parsed::Changes(changes)
    }
}

/// Applies one QUERY event's statement to the catalog and says what changed for a table
/// that `wants` selects.
pub(crate) fn apply(
    sql: &str,
    default_db: Option<&str>,
    wants: impl Fn(&str, &str) -> bool,
    catalog: &mut Catalog,
) -> Option<(Namespace, SchemaChangeKind)> {
    let ns = |(db, table): &TableName| Namespace::new(db.as_str(), table.as_str());
    match parse(sql, default_db) {
        Parsed::Other => None,
        Parsed::Unreadable(reason) => {
            // Literals may hold passwords or data: the log gets the statement (and the parser's
            // reason, which quotes the token it stopped at) without them.
            let statement = crate::sqltext::redact_literals(sql);
            let reason = crate::sqltext::redact_literals(&reason);
            tracing::warn!(%statement, %reason, "DDL not understood; affected tables lose their known definition");
            // Drop the definitions of tracked tables the statement names, so rows after it
            // are never decoded with stale columns.
            if let Some(table) = prepass::alter(sql, default_db).and_then(|a| a.table) {
                // An ALTER TABLE names its one table: the others (of other databases too)
                // keep their definitions.
                if wants(&table.0, &table.1) {
                    catalog.tables.remove(&table);
                }
                return None;
            }
            let lower = sql.to_ascii_lowercase();
            catalog.tables.retain(|(db, table), _| {
                let in_db =
                    default_db == Some(db.as_str()) || lower.contains(&db.to_ascii_lowercase());
                !(wants(db, table) && in_db && lower.contains(&table.to_ascii_lowercase()))
            });
            None
        }
        Parsed::Database(db) => {
            match (db.charset, db.create) {
                (Some(charset), _) => {
                    catalog.databases.insert(db.name, charset);
                }
                (None, true) => {
                    let charset = catalog
                        .server_charset
                        .clone()
                        .unwrap_or_else(|| "utf8mb4".to_owned());
                    catalog.databases.insert(db.name, charset);
                }
                (None, false) => {}
            }
            None
        }
        Parsed::DropDatabase(db) => {
            catalog.tables.retain(|(d, _), _| d != &db);
            catalog.databases.remove(&db);
            Some((
                Namespace::new(db.as_str(), ""),
                SchemaChangeKind::DropDatabase,
            ))
        }
        Parsed::Changes(changes) => {
            let mut reported = None;
            for (name, action) in changes {
                let kind = match action {
                    Action::Create(create) => {
                        let schema = alter::create(
                            &create,
                            &catalog.database_charset(&name.0),
                            catalog.mariadb,
                        );
                        catalog.tables.insert(name.clone(), Arc::new(schema));
                        SchemaChangeKind::Create
                    }
                    Action::CreateLike(from) => {
                        match catalog.tables.get(&from).cloned() {
                            Some(s) => {
                                catalog.tables.insert(name.clone(), s);
                            }
                            None => {
                                catalog.tables.remove(&name);
                            }
                        }
                        SchemaChangeKind::Create
                    }
                    Action::Forget => {
                        catalog.tables.remove(&name);
                        SchemaChangeKind::Create
                    }
                    Action::Alter(ops) => {
                        if let Some(current) = catalog.tables.get(&name).cloned() {
                            let defaults = alter::Defaults {
                                database: catalog.database_charset(&name.0),
                                mariadb: catalog.mariadb,
                            };
                            match alter::alter(&current, &ops, &defaults) {
                                Ok(next) => {
                                    catalog.tables.insert(name.clone(), Arc::new(next));
                                }
                                Err(reason) => {
                                    tracing::warn!(table = %ns(&name), %reason, "ALTER TABLE does not fit the known definition; forgetting it");
                                    catalog.tables.remove(&name);
                                }
                            }
                        }
                        SchemaChangeKind::Alter
                    }
                    Action::Rename(to) => {
                        if let Some(s) = catalog.tables.remove(&name) {
                            catalog.tables.insert(to.clone(), s);
                        }
                        SchemaChangeKind::Rename { to: ns(&to) }
                    }
                    Action::Drop => {
                        catalog.tables.remove(&name);
                        SchemaChangeKind::Drop
                    }
                    Action::Truncate => SchemaChangeKind::Truncate,
                };
                let rename_target_wanted =
                    matches!(&kind, SchemaChangeKind::Rename { to } if wants(&to.db, &to.table));
                if reported.is_none() && (wants(&name.0, &name.1) || rename_target_wanted) {
                    reported = Some((ns(&name), kind));
                }
            }
            reported
        }
    }
}
