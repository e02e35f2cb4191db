//! What `sqlparser` does not read of MySQL DDL, read from tokens ([`crate::sqltext`]) before
//! the rest goes to it: table options (`[DEFAULT] CHARACTER SET`, `COLLATE`,
//! `CONVERT TO CHARACTER SET`), `DROP CHECK`/`DROP CONSTRAINT`, the `CHARSET` spelling in
//! column definitions, `CREATE TABLE ... SELECT`, and `CREATE/ALTER DATABASE` options.

use crate::charset::{charset_name, charset_of_collation};
use crate::sqltext::{Kind, Token, significant, split_top_level, text_with_character_set};

use super::{AlterOp, TableName};

/// The character set `CHARACTER SET x`, `CHARSET x` or `COLLATE y` among `tokens` names;
/// an explicit character set wins over the one a collation implies.
pub(super) fn charset_option(tokens: &[Token<'_>]) -> Option<String> {
    let value = |i: usize| {
        tokens[i..]
            .iter()
            .find(|t| !(t.kind == Kind::Punct && t.text == "="))
            .and_then(Token::name)
    };
    let mut collation = None;
    for (i, t) in tokens.iter().enumerate() {
        let at = if t.is("CHARSET") {
            Some(i + 1)
        } else if t.is("CHARACTER") && tokens.get(i + 1).is_some_and(|s| s.is("SET")) {
            Some(i + 2)
        } else {
            None
        };
        if let Some(name) = at.and_then(value).and_then(|v| charset_name(&v)) {
            return Some(name);
        }
        if t.is("COLLATE") {
            collation = collation.or_else(|| value(i + 1).and_then(|v| charset_of_collation(&v)));
        }
    }
    collation
}

/// `db.table` or `table` at the start of `tokens`; the name and how many tokens it took.
fn table_name_at(tokens: &[Token<'_>], default_db: Option<&str>) -> Option<(TableName, usize)> {
    let first = tokens.first()?.name()?;
    if tokens.get(1).is_some_and(|t| t.text == ".") {
        let table = tokens.get(2)?.name()?;
        Some(((first, table), 3))
    } else {
        Some(((default_db?.to_owned(), first), 1))
    }
}

/// The index in `tokens` just after its first `n` significant (not space) tokens.
fn after_significant(tokens: &[Token<'_>], n: usize) -> usize {
    let mut seen = 0;
    for (i, t) in tokens.iter().enumerate() {
        if seen == n {
            return i;
        }
        if t.kind != Kind::Space {
            seen += 1;
        }
    }
    tokens.len()
}

/// Table options and other specifications that do not change the row format. A specification
/// starting with one of these words is read here and not given to `sqlparser`.
const OPTION_WORDS: &[&str] = &[
    "DEFAULT",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
    "ENGINE",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "CHECKSUM",
    "COMMENT",
    "COMPRESSION",
    "CONNECTION",
    "DATA",
    "DELAY_KEY_WRITE",
    "ENCRYPTED",
    "ENCRYPTION",
    "ENCRYPTION_KEY_ID",
    "IETF_QUOTES",
    "INSERT_METHOD",
    "KEY_BLOCK_SIZE",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "PASSWORD",
    "ROW_FORMAT",
    "SEQUENCE",
    "STATS_AUTO_RECALC",
    "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES",
    "TABLESPACE",
    "TRANSACTIONAL",
    "UNION",
    "FORCE",
    "ALGORITHM",
    "LOCK",
    "ENABLE",
    "DISABLE",
    "ORDER",
    "DISCARD",
    "IMPORT",
    "NOWAIT",
    "WAIT",
];

/// An `ALTER TABLE` split into what this pass read and what is left for `sqlparser`.
#[derive(Debug, Default)]
pub(super) struct Alter {
    pub(super) table: Option<TableName>,
    /// `ALTER TABLE <name> <the other specifications>`, or `None` when none are left.
    pub(super) rest: Option<String>,
    /// Applied before the specifications `sqlparser` reads: the table's new default
    /// character set (new columns of the same statement get it) and dropped checks.
    pub(super) before: Vec<AlterOp>,
    /// Applied after them: `CONVERT TO CHARACTER SET` converts every text column, new ones too.
    pub(super) after: Vec<AlterOp>,
    /// MariaDB's `IF [NOT] EXISTS` on column specifications, taken out for `sqlparser`.
    pub(super) conditional: Conditional,
}

/// The columns of MariaDB `ADD [COLUMN] IF NOT EXISTS` and `MODIFY|CHANGE [COLUMN] IF EXISTS`
/// specifications: applied against the tracked table only when the condition holds.
#[derive(Debug, Default)]
pub(super) struct Conditional {
    added: Vec<String>,
    changed: Vec<String>,
}

impl Conditional {
    /// Gives `op` the condition its specification had.
    pub(super) fn mark(&self, op: &mut AlterOp) {
        let named =
            |names: &[String], name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
        match op {
            AlterOp::Add {
                column,
                if_not_exists,
                ..
            } if named(&self.added, &column.column.name) => *if_not_exists = true,
            AlterOp::Change {
                from, if_exists, ..
            } if named(&self.changed, from) => *if_exists = true,
            _ => {}
        }
    }
}

/// Index and key specifications: they do not change the row format.
const INDEX_WORDS: &[&str] = &[
    "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "PRIMARY",
];

/// A MariaDB `IF [NOT] EXISTS` right after the specification's leading words (`ADD`, `COLUMN`,
/// `INDEX`, ...): the index of `IF` among `words` and how many words the condition takes.
fn condition_at(words: &[Token<'_>]) -> Option<(usize, usize)> {
    let at = words.iter().position(|t| t.is("IF"))?;
    if at > 3 {
        return None;
    }
    if words.get(at + 1).is_some_and(|t| t.is("EXISTS")) {
        Some((at, 2))
    } else if words.get(at + 1).is_some_and(|t| t.is("NOT"))
        && words.get(at + 2).is_some_and(|t| t.is("EXISTS"))
    {
        Some((at, 3))
    } else {
        None
    }
}

/// Reads a MariaDB column or index specification with `IF [NOT] EXISTS`: `true` when it was
/// read (an index one dropped, a column one recorded in `conditional`, and its text without the
/// condition pushed to `kept`).
fn conditional_spec(
    spec: &[Token<'_>],
    conditional: &mut Conditional,
    kept: &mut Vec<String>,
) -> bool {
    let words = significant(spec);
    let Some((at, len)) = condition_at(&words) else {
        return false;
    };
    let verb = &words[0];
    let is_column = !words[1..at]
        .iter()
        .any(|t| INDEX_WORDS.iter().any(|w| t.is(w)));
    let Some(name) = words.get(at + len).and_then(Token::name) else {
        return false;
    };
    if !is_column || words[1..at].iter().any(|t| t.is("CONSTRAINT")) {
        // Indexes and constraints do not change the row format.
        return verb.is("ADD") || verb.is("DROP");
    }
    let list = if verb.is("ADD") {
        &mut conditional.added
    } else if verb.is("MODIFY") || verb.is("CHANGE") {
        &mut conditional.changed
    } else {
        return false;
    };
    list.push(name);
    // The condition's tokens are left out of the text given to `sqlparser`.
    let rest: Vec<Token<'_>> = spec
        .iter()
        .filter(|t| t.kind != Kind::Space)
        .enumerate()
        .filter(|(i, _)| !(at..at + len).contains(i))
        .map(|(_, t)| *t)
        .collect();
    let rest = rest
        .iter()
        .map(|t| text_with_character_set(std::slice::from_ref(t)))
        .collect::<Vec<_>>()
        .join(" ");
    kept.push(rest);
    true
}

/// Splits an `ALTER [ONLINE] [IGNORE] TABLE` statement; `None` for anything else.
pub(super) fn alter(sql: &str, default_db: Option<&str>) -> Option<Alter> {
    let tokens = crate::sqltext::lex(sql);
    let sig = significant(&tokens);
    if !sig.first()?.is("ALTER") {
        return None;
    }
    let mut i = 1;
    while sig
        .get(i)
        .is_some_and(|t| t.is("ONLINE") || t.is("OFFLINE") || t.is("IGNORE"))
    {
        i += 1;
    }
    if !sig.get(i)?.is("TABLE") {
        return None;
    }
    i += 1;
    if sig.get(i).is_some_and(|t| t.is("IF")) && sig.get(i + 1).is_some_and(|t| t.is("EXISTS")) {
        i += 2;
    }
    let (table, len) = table_name_at(&sig[i..], default_db)?;
    let name_text: String = sig[i..i + len].iter().map(|t| t.text).collect();
    let mut out = Alter {
        table: Some(table),
        ..Alter::default()
    };
    // Specifications are re-assembled from all tokens (comments included) of each part.
    let specs_start = after_significant(&tokens, i + len);
    let mut kept = Vec::new();
    for spec in split_top_level(&tokens[specs_start..]) {
        let words = significant(spec);
        let Some(first) = words.first() else {
            continue;
        };
        if first.is("CONVERT") && words.get(1).is_some_and(|t| t.is("TO")) {
            if let Some(charset) = charset_option(&words) {
                out.before.push(AlterOp::DefaultCharset(charset.clone()));
                out.after.push(AlterOp::ConvertCharset(charset));
            }
        } else if first.is("DROP")
            && words
                .get(1)
                .is_some_and(|t| t.is("CHECK") || t.is("CONSTRAINT"))
        {
            let name = words[2..]
                .iter()
                .find(|t| !(t.is("IF") || t.is("EXISTS")))
                .and_then(Token::name);
            out.before.extend(name.map(AlterOp::DropCheck));
        } else if conditional_spec(spec, &mut out.conditional, &mut kept) {
        } else if OPTION_WORDS.iter().any(|w| first.is(w)) {
            if let Some(charset) = charset_option(&words) {
                out.before.push(AlterOp::DefaultCharset(charset));
            }
        } else {
            kept.push(text_with_character_set(spec).trim().to_owned());
        }
    }
    if !kept.is_empty() {
        out.rest = Some(format!("ALTER TABLE {name_text} {}", kept.join(", ")));
    }
    Some(out)
}

/// A `CREATE TABLE` made ready for `sqlparser`.
#[derive(Debug)]
pub(super) struct Create {
    /// The statement up to its column list (table options dropped, `CHARSET` spelled out).
    pub(super) sql: String,
    /// The table's default character set from its options.
    pub(super) charset: Option<String>,
    /// `CREATE TABLE ... SELECT`: the columns come from a query.
    pub(super) from_query: bool,
}

/// Prepares a `CREATE ... TABLE` statement; `None` for anything else.
pub(super) fn create(sql: &str) -> Option<Create> {
    let tokens = crate::sqltext::lex(sql);
    let sig = significant(&tokens);
    if !sig.first()?.is("CREATE") || !sig.iter().take(6).any(|t| t.is("TABLE")) {
        return None;
    }
    let from_query = sig.iter().any(|t| t.is("SELECT"));
    let open = tokens
        .iter()
        .position(|t| t.kind == Kind::Punct && t.text == "(");
    let Some(open) = open.filter(|_| !from_query) else {
        return Some(Create {
            sql: sql.to_owned(),
            charset: None,
            from_query,
        });
    };
    let mut depth = 0usize;
    let mut close = tokens.len();
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match (t.kind, t.text) {
            (Kind::Punct, "(") => depth += 1,
            (Kind::Punct, ")") => {
                depth -= 1;
                if depth == 0 {
                    close = i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let head: String = tokens[..open].iter().map(|t| t.text).collect();
    let options = significant(&tokens[close..]);
    Some(Create {
        sql: format!("{head}{}", text_with_character_set(&tokens[open..close])),
        charset: charset_option(&options),
        from_query,
    })
}

/// `CREATE DATABASE` / `ALTER DATABASE` (or `SCHEMA`): the database and the default character
/// set it names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Database {
    pub(crate) name: String,
    pub(crate) charset: Option<String>,
    pub(crate) create: bool,
}

/// Reads `CREATE|ALTER DATABASE|SCHEMA`; `None` for anything else (or no database to name).
pub(super) fn database(sql: &str, default_db: Option<&str>) -> Option<Database> {
    let tokens = crate::sqltext::lex(sql);
    let sig = significant(&tokens);
    let create = sig.first()?.is("CREATE");
    let mut i = 1;
    if create
        && sig.get(1).is_some_and(|t| t.is("OR"))
        && sig.get(2).is_some_and(|t| t.is("REPLACE"))
    {
        i = 3;
    }
    if !(create || sig[0].is("ALTER"))
        || !sig
            .get(i)
            .is_some_and(|t| t.is("DATABASE") || t.is("SCHEMA"))
    {
        return None;
    }
    i += 1;
    if sig.get(i).is_some_and(|t| t.is("IF")) {
        i += 3;
    }
    let named = sig.get(i).filter(|t| {
        !["DEFAULT", "CHARACTER", "CHARSET", "COLLATE", "COMMENT"]
            .iter()
            .any(|w| t.is(w))
    });
    let name = match named {
        Some(t) => {
            i += 1;
            t.name()?
        }
        None => default_db?.to_owned(),
    };
    Some(Database {
        name,
        charset: charset_option(sig.get(i..).unwrap_or_default()),
        create,
    })
}
