//! DDL from QUERY events, parsed with `sqlparser` and applied to the known table definitions,
//! so rows are decoded with the columns in force when they were written.
//!
//! Parsing ([`parse`]) is pure and unit-tested; [`apply`] changes a [`Catalog`]. A statement
//! the parser cannot read, on a table we track, drops that table's definition: with FULL row
//! metadata nothing is lost (names come with every row); without it, the next row of the table
//! fails with a clear schema error instead of being decoded with the wrong columns.

use std::sync::Arc;

use sqlparser::ast::{
    AlterTableOperation, ColumnDef, CreateTableLikeKind, MySQLColumnPosition, ObjectName,
    ObjectType, RenameTableNameKind, Statement,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use stream_core::{Namespace, SchemaChangeKind};

use crate::schema::{Catalog, ColumnSchema, TableSchema, parse_labels};

type TableName = (String, String);

/// Where an added or changed column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    Last,
    First,
    After(String),
}

/// One change to a table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AlterOp {
    Add(ColumnSchema, Place),
    Drop(String),
    Rename {
        from: String,
        to: String,
    },
    /// `CHANGE`/`MODIFY`: replace column `from` by this definition.
    Change {
        from: String,
        column: ColumnSchema,
        place: Option<Place>,
    },
    DropPrimaryKey,
}

/// What a statement does to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Create(TableSchema),
    CreateLike(TableName),
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

fn charset_in(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    for marker in ["CHARACTER SET ", "CHARSET ", "CHARACTER SET=", "CHARSET="] {
        if let Some(i) = upper.find(marker) {
            let rest = text[i + marker.len()..].trim_start_matches(['=', ' ']);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return Some(name.to_ascii_lowercase());
            }
        }
    }
    None
}

fn column_from_def(def: &ColumnDef, default_charset: &str) -> ColumnSchema {
    let type_text = def.data_type.to_string();
    let lower = type_text.to_ascii_lowercase();
    let base = lower
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_owned();
    let data_type = normalize_type(&base).to_owned();
    let options: Vec<String> = def.options.iter().map(|o| o.to_string()).collect();
    let explicit = charset_in(&type_text).or_else(|| options.iter().find_map(|o| charset_in(o)));
    let charset = if BINARY_TYPES.contains(&data_type.as_str()) {
        None
    } else if TEXT_TYPES.contains(&data_type.as_str()) || data_type == "json" {
        Some(explicit.unwrap_or_else(|| default_charset.to_owned()))
    } else {
        explicit
    };
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
    ColumnSchema {
        name: def.name.value.clone(),
        fsp,
        unsigned: lower.contains("unsigned"),
        json: data_type == "json",
        data_type,
        charset,
        labels,
    }
}

/// `CHANGE`/`MODIFY` carry a column's parts rather than a `ColumnDef`.
fn column_from_parts(
    name: sqlparser::ast::Ident,
    data_type: sqlparser::ast::DataType,
    options: Vec<sqlparser::ast::ColumnOption>,
) -> ColumnSchema {
    let def = ColumnDef {
        name,
        data_type,
        options: options
            .into_iter()
            .map(|option| sqlparser::ast::ColumnOptionDef { name: None, option })
            .collect(),
    };
    column_from_def(&def, "utf8mb4")
}

fn is_primary(def: &ColumnDef) -> bool {
    def.options
        .iter()
        .any(|o| o.to_string().to_ascii_uppercase().contains("PRIMARY KEY"))
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
    match words.first().map(String::as_str) {
        Some("CREATE" | "ALTER") => words.get(1).is_some_and(|w| w == "TABLE"),
        Some("DROP") => words
            .get(1)
            .is_some_and(|w| matches!(w.as_str(), "TABLE" | "DATABASE" | "SCHEMA")),
        Some("RENAME") => words.get(1).is_some_and(|w| w == "TABLE"),
        Some("TRUNCATE") => true,
        _ => false,
    }
}

/// Parses one statement. `default_db` is the QUERY event's current database.
pub(crate) fn parse(sql: &str, default_db: Option<&str>) -> Parsed {
    if !is_table_ddl(sql) {
        return Parsed::Other;
    }
    let statements = match Parser::parse_sql(&MySqlDialect {}, sql) {
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
                let create_text = ct.to_string();
                let after_columns = create_text.rsplit_once(')').map_or("", |(_, t)| t);
                let default_charset =
                    charset_in(after_columns).unwrap_or_else(|| "utf8mb4".to_owned());
                let columns: Vec<ColumnSchema> = ct
                    .columns
                    .iter()
                    .map(|c| column_from_def(c, &default_charset))
                    .collect();
                let mut primary_key: Vec<usize> = ct
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| is_primary(c))
                    .map(|(i, _)| i)
                    .collect();
                for constraint in &ct.constraints {
                    let text = constraint.to_string();
                    let upper = text.to_ascii_uppercase();
                    if let Some(i) = upper.find("PRIMARY KEY") {
                        let rest = &text[i..];
                        let inner = rest
                            .split_once('(')
                            .and_then(|(_, r)| r.split_once(')'))
                            .map_or("", |(cols, _)| cols);
                        for col in inner.split(',') {
                            let col = col.trim().trim_matches('`');
                            let col = col.split(['(', ' ']).next().unwrap_or(col);
                            if let Some(idx) = columns
                                .iter()
                                .position(|c| c.name.eq_ignore_ascii_case(col))
                            {
                                primary_key.push(idx);
                            }
                        }
                    }
                }
                changes.push((
                    name,
                    Action::Create(TableSchema {
                        columns,
                        primary_key,
                    }),
                ));
            }
            Statement::AlterTable {
                name, operations, ..
            } => {
                let Some(name) = table_name(&name, default_db) else {
                    continue;
                };
                let mut ops = Vec::new();
                for op in operations {
                    match op {
                        AlterTableOperation::AddColumn {
                            column_def,
                            column_position,
                            ..
                        } => ops.push(AlterOp::Add(
                            column_from_def(&column_def, "utf8mb4"),
                            place_of(column_position.as_ref()).unwrap_or(Place::Last),
                        )),
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            ops.extend(column_names.into_iter().map(|c| AlterOp::Drop(c.value)));
                        }
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
                            column: column_from_parts(new_name, data_type, options),
                            place: place_of(column_position.as_ref()),
                        }),
                        AlterTableOperation::ModifyColumn {
                            col_name,
                            data_type,
                            options,
                            column_position,
                        } => ops.push(AlterOp::Change {
                            from: col_name.value.clone(),
                            column: column_from_parts(col_name, data_type, options),
                            place: place_of(column_position.as_ref()),
                        }),
                        AlterTableOperation::DropPrimaryKey { .. } => {
                            ops.push(AlterOp::DropPrimaryKey)
                        }
                        AlterTableOperation::RenameTable { table_name: to } => {
                            let (RenameTableNameKind::As(to) | RenameTableNameKind::To(to)) = to;
                            if let Some(to) = table_name(&to, default_db) {
                                if !ops.is_empty() {
                                    changes.push((
                                        name.clone(),
                                        Action::Alter(std::mem::take(&mut ops)),
                                    ));
                                }
                                changes.push((name.clone(), Action::Rename(to)));
                            }
                        }
                        // Indexes, constraints, options: the row format does not change.
                        _ => {}
                    }
                }
                if !ops.is_empty() || changes.iter().all(|(n, _)| n != &name) {
                    changes.push((name, Action::Alter(ops)));
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

fn insert_at(
    columns: &mut Vec<ColumnSchema>,
    column: ColumnSchema,
    place: &Place,
) -> Result<(), String> {
    let at = match place {
        Place::Last => columns.len(),
        Place::First => 0,
        Place::After(name) => {
            1 + columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("no column `{name}` to add after"))?
        }
    };
    columns.insert(at, column);
    Ok(())
}

fn alter(schema: &TableSchema, ops: &[AlterOp]) -> Result<TableSchema, String> {
    let mut columns = schema.columns.clone();
    let mut pk_names: Vec<String> = schema
        .primary_key
        .iter()
        .filter_map(|&i| schema.columns.get(i).map(|c| c.name.clone()))
        .collect();
    let find = |columns: &[ColumnSchema], name: &str| {
        columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("no column `{name}`"))
    };
    let default_charset = columns
        .iter()
        .find_map(|c| c.charset.clone())
        .unwrap_or_else(|| "utf8mb4".to_owned());
    let with_charset = |mut c: ColumnSchema| {
        if c.charset.as_deref() == Some("utf8mb4") && default_charset != "utf8mb4" {
            c.charset = Some(default_charset.clone());
        }
        c
    };
    for op in ops {
        match op {
            AlterOp::Add(c, place) => insert_at(&mut columns, with_charset(c.clone()), place)?,
            AlterOp::Drop(name) => {
                let i = find(&columns, name)?;
                columns.remove(i);
                pk_names.retain(|p| !p.eq_ignore_ascii_case(name));
            }
            AlterOp::Rename { from, to } => {
                let i = find(&columns, from)?;
                columns[i].name = to.clone();
                for p in &mut pk_names {
                    if p.eq_ignore_ascii_case(from) {
                        *p = to.clone();
                    }
                }
            }
            AlterOp::Change {
                from,
                column,
                place,
            } => {
                let i = find(&columns, from)?;
                for p in &mut pk_names {
                    if p.eq_ignore_ascii_case(from) {
                        p.clone_from(&column.name);
                    }
                }
                match place {
                    None => columns[i] = with_charset(column.clone()),
                    Some(place) => {
                        columns.remove(i);
                        insert_at(&mut columns, with_charset(column.clone()), place)?;
                    }
                }
            }
            AlterOp::DropPrimaryKey => pk_names.clear(),
        }
    }
    let primary_key = pk_names
        .iter()
        .filter_map(|p| columns.iter().position(|c| c.name.eq_ignore_ascii_case(p)))
        .collect();
    Ok(TableSchema {
        columns,
        primary_key,
    })
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
            tracing::warn!(statement = sql, %reason, "DDL not understood; affected tables lose their known definition");
            // Drop the definitions of tracked tables the statement names, so rows after it
            // are never decoded with stale columns.
            let lower = sql.to_ascii_lowercase();
            catalog.tables.retain(|(db, table), _| {
                let in_db =
                    default_db == Some(db.as_str()) || lower.contains(&db.to_ascii_lowercase());
                !(wants(db, table) && in_db && lower.contains(&table.to_ascii_lowercase()))
            });
            None
        }
        Parsed::DropDatabase(db) => {
            catalog.tables.retain(|(d, _), _| d != &db);
            Some((
                Namespace::new(db.as_str(), ""),
                SchemaChangeKind::DropDatabase,
            ))
        }
        Parsed::Changes(changes) => {
            let mut reported = None;
            for (name, action) in changes {
                let kind = match action {
                    Action::Create(schema) => {
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
                    Action::Alter(ops) => {
                        if let Some(current) = catalog.tables.get(&name).cloned() {
                            match alter(&current, &ops) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            unsigned: false,
            charset: None,
            labels: Vec::new(),
            json: false,
            fsp: 0,
        }
    }

    fn names(s: &TableSchema) -> Vec<&str> {
        s.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn create_table_reads_types_charsets_labels_and_key() {
        let Parsed::Changes(changes) = parse(
            "CREATE TABLE `orders` (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, \
             note VARCHAR(20) CHARACTER SET latin1, status ENUM('new','it''s'), doc JSON, \
             raw VARBINARY(8), PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4",
            Some("shop"),
        ) else {
            panic!("not parsed")
        };
        let [((db, table), Action::Create(schema))] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!((db.as_str(), table.as_str()), ("shop", "orders"));
        assert_eq!(names(schema), ["id", "note", "status", "doc", "raw"]);
        assert!(schema.columns[0].unsigned);
        assert_eq!(schema.columns[0].data_type, "bigint");
        assert_eq!(schema.columns[1].charset.as_deref(), Some("latin1"));
        assert_eq!(schema.columns[2].labels, ["new", "it's"]);
        assert!(schema.columns[3].json);
        assert_eq!(schema.columns[4].charset, None);
        assert_eq!(schema.primary_key, vec![0]);
    }

    #[test]
    fn alter_table_adds_drops_renames_and_moves_columns() {
        let start = TableSchema {
            columns: vec![col("id", "int"), col("a", "int"), col("b", "int")],
            primary_key: vec![0],
        };
        let Parsed::Changes(changes) = parse(
            "ALTER TABLE shop.t ADD COLUMN c VARCHAR(5) AFTER id, DROP COLUMN a, \
             RENAME COLUMN b TO bee, CHANGE COLUMN id ident BIGINT FIRST, ADD z INT FIRST",
            None,
        ) else {
            panic!("not parsed")
        };
        let [(_, Action::Alter(ops))] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        let next = alter(&start, ops).expect("alter");
        assert_eq!(names(&next), ["z", "ident", "c", "bee"]);
        assert_eq!(next.columns[1].data_type, "bigint");
        assert_eq!(next.primary_key, vec![1]);
        assert!(alter(&start, &[AlterOp::Drop("nope".into())]).is_err());
    }

    #[test]
    fn renames_drops_truncates_and_non_ddl() {
        assert_eq!(
            parse("RENAME TABLE a TO b, shop.c TO crm.c", Some("shop")),
            Parsed::Changes(vec![
                (
                    ("shop".into(), "a".into()),
                    Action::Rename(("shop".into(), "b".into()))
                ),
                (
                    ("shop".into(), "c".into()),
                    Action::Rename(("crm".into(), "c".into()))
                ),
            ])
        );
        assert_eq!(
            parse(
                "DROP TABLE IF EXISTS `t1`,`t2` /* generated by server */",
                Some("d")
            ),
            Parsed::Changes(vec![
                (("d".into(), "t1".into()), Action::Drop),
                (("d".into(), "t2".into()), Action::Drop)
            ])
        );
        assert_eq!(
            parse("TRUNCATE TABLE t", Some("d")),
            Parsed::Changes(vec![(("d".into(), "t".into()), Action::Truncate)])
        );
        assert_eq!(
            parse("DROP DATABASE shop", None),
            Parsed::DropDatabase("shop".into())
        );
        assert_eq!(parse("INSERT INTO t VALUES (1)", Some("d")), Parsed::Other);
        assert_eq!(
            parse("CREATE USER 'u'@'%' IDENTIFIED BY 'p'", None),
            Parsed::Other
        );
        assert_eq!(parse("DROP VIEW v", Some("d")), Parsed::Other);
        assert!(matches!(
            parse("ALTER TABLE t FROBNICATE", Some("d")),
            Parsed::Unreadable(_)
        ));
    }

    #[test]
    fn apply_tracks_the_catalog_and_reports_wanted_tables_only() {
        let mut catalog = Catalog::default();
        let wants = |db: &str, _: &str| db == "shop";
        let change = apply(
            "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
            Some("shop"),
            wants,
            &mut catalog,
        );
        assert_eq!(
            change,
            Some((Namespace::new("shop", "t"), SchemaChangeKind::Create))
        );
        apply(
            "ALTER TABLE t ADD COLUMN w INT",
            Some("shop"),
            wants,
            &mut catalog,
        );
        let t = catalog.table("shop", "t").expect("tracked");
        assert_eq!(names(t), ["id", "v", "w"]);
        assert_eq!(
            apply("CREATE TABLE other.x (id INT)", None, wants, &mut catalog),
            None
        );
        apply(
            "ALTER TABLE t FROBNICATE",
            Some("shop"),
            wants,
            &mut catalog,
        );
        assert!(
            catalog.table("shop", "t").is_none(),
            "an unreadable DDL must forget the table"
        );
    }
}
