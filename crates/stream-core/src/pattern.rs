//! Namespace patterns (`shop.*`, `shop.orders`, `*.audit_?`) and include/exclude filters.

use std::fmt;
use std::str::FromStr;

use crate::event::Namespace;

/// A glob over `db.table`: `*` matches any run of characters, `?` one character.
///
/// The part before the first `.` matches the database, the rest the table (so MongoDB
/// collections with dots, like `system.views`, work). A pattern without a dot means every table
/// of that database; `*` alone means everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePattern {
    text: String,
    db: String,
    table: String,
}

/// Why a pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid namespace pattern `{pattern}`: {reason}")]
pub struct PatternError {
    /// The rejected pattern.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for NamespacePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let err = |reason| PatternError {
            pattern: s.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(err("empty pattern"));
        }
        if text.contains(char::is_whitespace) {
            return Err(err("patterns cannot contain whitespace"));
        }
        let (db, table) = match text.split_once('.') {
            Some((db, table)) => (db, table),
            None => (text, "*"),
        };
        if db.is_empty() {
            return Err(err("empty database part before `.`"));
        }
        if table.is_empty() {
            return Err(err(
                "empty table part after `.` (use `db.*` for every table)",
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            db: db.to_owned(),
            table: table.to_owned(),
        })
    }
}

impl NamespacePattern {
    /// Whether the namespace matches.
    pub fn matches(&self, ns: &Namespace) -> bool {
        glob(self.db.as_bytes(), ns.db.as_bytes())
            && glob(self.table.as_bytes(), ns.table.as_bytes())
    }

    /// Whether the pattern matches a namespace given as `db` and `table`.
    pub fn matches_parts(&self, db: &str, table: &str) -> bool {
        glob(self.db.as_bytes(), db.as_bytes()) && glob(self.table.as_bytes(), table.as_bytes())
    }

    /// Whether the database part matches `db` (for events and listings without a table).
    pub fn matches_db(&self, db: &str) -> bool {
        glob(self.db.as_bytes(), db.as_bytes())
    }

    /// The database part (`*` and `?` allowed).
    pub fn db_part(&self) -> &str {
        &self.db
    }

    /// The table part (`*` when the pattern had no dot).
    pub fn table_part(&self) -> &str {
        &self.table
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for NamespacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterative glob with single-star backtracking: linear in practice, no recursion.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Include and exclude lists: a namespace passes when it matches an include (or there are
/// none) and matches no exclude.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFilter {
    include: Vec<NamespacePattern>,
    exclude: Vec<NamespacePattern>,
}

impl NamespaceFilter {
    /// Everything passes.
    pub fn all() -> Self {
        Self::default()
    }

    /// Builds a filter from comma-separated pattern lists, as the CLI's `--include/--exclude`.
    pub fn parse(include: &str, exclude: &str) -> Result<Self, PatternError> {
        Ok(Self {
            include: parse_list(include)?,
            exclude: parse_list(exclude)?,
        })
    }

    /// Builds a filter from patterns.
    pub fn new(include: Vec<NamespacePattern>, exclude: Vec<NamespacePattern>) -> Self {
        Self { include, exclude }
    }

    /// Whether the namespace passes.
    pub fn matches(&self, ns: &Namespace) -> bool {
        self.matches_parts(&ns.db, &ns.table)
    }

    /// Whether `db`.`table` passes.
    pub fn matches_parts(&self, db: &str, table: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches_parts(db, table)))
            && !self.exclude.iter().any(|p| p.matches_parts(db, table))
    }

    /// The include patterns.
    pub fn includes(&self) -> &[NamespacePattern] {
        &self.include
    }

    /// The exclude patterns.
    pub fn excludes(&self) -> &[NamespacePattern] {
        &self.exclude
    }
}

fn parse_list(list: &str) -> Result<Vec<NamespacePattern>, PatternError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(db: &str, table: &str) -> Namespace {
        Namespace::new(db, table)
    }

    fn pat(s: &str) -> NamespacePattern {
        s.parse().expect(s)
    }

    #[test]
    fn patterns_match_database_and_table_parts() {
        assert!(pat("shop.*").matches(&ns("shop", "orders")));
        assert!(!pat("shop.*").matches(&ns("shopping", "orders")));
        assert!(pat("shop.orders").matches(&ns("shop", "orders")));
        assert!(!pat("shop.orders").matches(&ns("shop", "orders_archive")));
        assert!(pat("*").matches(&ns("any", "thing")));
        assert!(pat("shop").matches(&ns("shop", "users")));
        assert!(pat("*.audit_?").matches(&ns("x", "audit_1")));
        assert!(!pat("*.audit_?").matches(&ns("x", "audit_12")));
        assert!(pat("db.system.*").matches(&ns("db", "system.views")));
        assert!(pat("s*p.*ord*").matches(&ns("shop", "all_orders_v2")));
    }

    #[test]
    fn database_parts_match_alone() {
        let p = pat("s*p.orders");
        assert!(p.matches_db("shop") && !p.matches_db("shops"));
        assert_eq!((p.db_part(), p.table_part()), ("s*p", "orders"));
        assert_eq!(pat("shop").table_part(), "*");
    }

    #[test]
    fn bad_patterns_name_the_pattern() {
        for (p, reason) in [
            ("", "empty"),
            (".t", "empty database"),
            ("db.", "empty table"),
            ("a b", "whitespace"),
        ] {
            let err = p.parse::<NamespacePattern>().expect_err(p);
            assert!(err.to_string().contains(&format!("`{p}`")), "{err}");
            assert!(err.reason.contains(reason), "{p}: {err}");
        }
    }

    #[test]
    fn filter_applies_includes_then_excludes() {
        let f = NamespaceFilter::parse("shop.*, crm.contacts", "shop.audit*").expect("filter");
        assert!(f.matches(&ns("shop", "orders")));
        assert!(f.matches(&ns("crm", "contacts")));
        assert!(!f.matches(&ns("crm", "leads")));
        assert!(!f.matches(&ns("shop", "audit_log")));
        let only_ex = NamespaceFilter::parse("", "tmp.*").expect("filter");
        assert!(only_ex.matches(&ns("shop", "orders")));
        assert!(!only_ex.matches(&ns("tmp", "x")));
        assert!(NamespaceFilter::parse("ok.*,.bad", "").is_err());
    }
}
