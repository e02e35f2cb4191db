//! Tables built by `CREATE TABLE` and changed by `ALTER TABLE`, the way the server does it:
//! character sets, JSON checks, column order and the primary key.

use crate::charset::as_stored_in;
use crate::schema::{ColumnSchema, JsonCheck, TableSchema};

use super::column::is_text_type;
use super::{AlterOp, CreateTable, Place};

/// What a table falls back on when its definition does not say.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    /// The database's default character set (for definitions saved without the table's own).
    pub(crate) database: String,
    /// MariaDB spells JSON as LONGTEXT with a CHECK.
    pub(crate) mariadb: bool,
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The name MariaDB gives an unnamed table-level CHECK: the first free `CONSTRAINT_<n>`.
fn unnamed_check(checks: &[JsonCheck]) -> String {
    (1..)
        .map(|n| format!("CONSTRAINT_{n}"))
        .find(|name| !checks.iter().any(|c| same(&c.name, name)))
        .unwrap_or_default()
}

/// The table a `CREATE TABLE` defines in a database whose default character set is
/// `database_charset`.
pub(crate) fn create(create: &CreateTable, database_charset: &str, mariadb: bool) -> TableSchema {
    let charset = create
        .charset
        .clone()
        .unwrap_or_else(|| database_charset.to_owned());
    let mut table = TableSchema::new(Vec::new());
    for new in &create.columns {
        let (column, check) = new.resolve(&charset, mariadb);
        table.columns.push(column);
        table.checks.extend(check);
    }
    table.primary_key = create
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.primary)
        .map(|(i, _)| i)
        .chain(
            create
                .key
                .iter()
                .filter_map(|k| table.columns.iter().position(|c| same(&c.name, k))),
        )
        .collect();
    for (name, columns) in &create.checks {
        let name = name.clone().unwrap_or_else(|| unnamed_check(&table.checks));
        table.checks.push(JsonCheck {
            name,
            owner: None,
            columns: columns.clone(),
        });
    }
    table.charset = Some(charset);
    table.columns.iter_mut().for_each(store_labels);
    table.refresh_json();
    table
}

/// ENUM/SET labels as the column's character set stores them.
fn store_labels(column: &mut ColumnSchema) {
    if let Some(charset) = &column.charset {
        for label in &mut column.labels {
            *label = as_stored_in(charset, label);
        }
    }
}

fn find(columns: &[ColumnSchema], name: &str) -> Result<usize, String> {
    columns
        .iter()
        .position(|c| same(&c.name, name))
        .ok_or_else(|| format!("no column `{name}`"))
}

fn insert_at(
    columns: &mut Vec<ColumnSchema>,
    column: ColumnSchema,
    place: &Place,
) -> Result<(), String> {
    let at = match place {
        Place::Last => columns.len(),
        Place::First => 0,
        Place::After(name) => {
            1 + find(columns, name).map_err(|_| format!("no column `{name}` to add after"))?
        }
    };
    columns.insert(at, column);
    Ok(())
}

/// Renames `from` to `to` wherever the checks name it.
fn rename_in_checks(checks: &mut [JsonCheck], from: &str, to: &str) {
    for check in checks {
        for c in check.columns.iter_mut().chain(check.owner.as_mut()) {
            if same(c, from) {
                *c = to.to_owned();
            }
        }
    }
}

/// `schema` after the operations of one `ALTER TABLE`.
pub(crate) fn alter(
    schema: &TableSchema,
    ops: &[AlterOp],
    defaults: &Defaults,
) -> Result<TableSchema, String> {
    let mut table = schema.clone();
    let mut charset = table
        .charset
        .clone()
        .unwrap_or_else(|| defaults.database.clone());
    let mut pk_names: Vec<String> = schema
        .primary_key
        .iter()
        .filter_map(|&i| schema.columns.get(i).map(|c| c.name.clone()))
        .collect();
    for op in ops {
        match op {
            AlterOp::Add {
                column,
                place,
                if_not_exists,
            } => {
                if *if_not_exists && find(&table.columns, &column.column.name).is_ok() {
                    continue;
                }
                let (column, check) = column.resolve(&charset, defaults.mariadb);
                insert_at(&mut table.columns, column, place)?;
                table.checks.extend(check);
            }
            AlterOp::Drop { name, if_exists } => {
                let Ok(i) = find(&table.columns, name) else {
                    if *if_exists {
                        continue;
                    }
                    return Err(format!("no column `{name}`"));
                };
                table.columns.remove(i);
                pk_names.retain(|p| !same(p, name));
                table
                    .checks
                    .retain(|c| !c.owner.as_deref().is_some_and(|o| same(o, name)));
                for check in &mut table.checks {
                    check.columns.retain(|c| !same(c, name));
                }
                table.checks.retain(|c| !c.columns.is_empty());
            }
            AlterOp::Rename { from, to } => {
                let i = find(&table.columns, from)?;
                table.columns[i].name.clone_from(to);
                for p in &mut pk_names {
                    if same(p, from) {
                        p.clone_from(to);
                    }
                }
                rename_in_checks(&mut table.checks, from, to);
            }
            AlterOp::Change {
                from,
                column,
                place,
                if_exists,
            } => {
                let i = match find(&table.columns, from) {
                    Ok(i) => i,
                    Err(_) if *if_exists => continue,
                    Err(e) => return Err(e),
                };
                let (column, check) = column.resolve(&charset, defaults.mariadb);
                for p in &mut pk_names {
                    if same(p, from) {
                        p.clone_from(&column.name);
                    }
                }
                // The old definition's own check goes with it; table-level checks follow the
                // new name.
                table
                    .checks
                    .retain(|c| !c.owner.as_deref().is_some_and(|o| same(o, from)));
                rename_in_checks(&mut table.checks, from, &column.name);
                table.checks.extend(check);
                match place {
                    None => table.columns[i] = column,
                    Some(place) => {
                        table.columns.remove(i);
                        insert_at(&mut table.columns, column, place)?;
                    }
                }
            }
            AlterOp::DropPrimaryKey => pk_names.clear(),
            AlterOp::AddCheck { name, columns } => {
                let name = name.clone().unwrap_or_else(|| unnamed_check(&table.checks));
                table.checks.push(JsonCheck {
                    name,
                    owner: None,
                    columns: columns.clone(),
                });
            }
            AlterOp::DropCheck(name) => table
                .checks
                .retain(|c| c.owner.is_some() || !same(&c.name, name)),
            AlterOp::DefaultCharset(next) => charset.clone_from(next),
            AlterOp::ConvertCharset(next) => {
                charset.clone_from(next);
                for c in &mut table.columns {
                    let binary = c.charset.as_deref() == Some("binary");
                    if (is_text_type(&c.data_type) || c.data_type == "json") && !binary {
                        c.charset = Some(next.clone());
                    }
                }
            }
        }
    }
    table.primary_key = pk_names
        .iter()
        .filter_map(|p| table.columns.iter().position(|c| same(&c.name, p)))
        .collect();
    table.charset = Some(charset);
    table.columns.iter_mut().for_each(store_labels);
    table.refresh_json();
    Ok(table)
}
