//! What `--from` accepts for each kind of URL, and the error that says so.

use anyhow::{Result, bail};
use stream_core::{Position, StartFrom};

/// The databases `ustream tail` reads, told apart by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlKind {
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `mongodb://` or `mongodb+srv://`.
    MongoDb,
}

impl UrlKind {
    /// The kind of `url`, or an error naming the schemes `ustream` knows.
    pub(crate) fn of(url: &str) -> Result<Self> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("mysql" | "mariadb") => Ok(UrlKind::MySql),
            Some("mongodb" | "mongodb+srv") => Ok(UrlKind::MongoDb),
            _ => bail!(
                "unsupported URL: expected mysql://, mariadb://, mongodb:// or mongodb+srv://"
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            UrlKind::MySql => "a MySQL/MariaDB URL",
            UrlKind::MongoDb => "a MongoDB URL",
        }
    }

    /// Every start this kind takes, each with an example: one line.
    fn forms(self) -> &'static str {
        match self {
            UrlKind::MySql => {
                "`start` (the oldest binlog the server has), `end` (changes from now on), \
                 `snapshot` (the tables' rows, then their changes), \
                 `binlog:FILE:OFFSET+SKIP` (e.g. `binlog:mysql-bin.000003:1234+0`), \
                 `mariadb-gtid:DOMAIN-SERVER-SEQ,...+SKIP` (e.g. `mariadb-gtid:0-1-100+0`), \
                 or a `mysql-snapshot:...` position printed during a snapshot"
            }
            UrlKind::MongoDb => {
                "`start` (the oldest change in the oplog), `end` (changes from now on), \
                 `snapshot` (the collections' documents, then their changes), \
                 `mongodb:TOKEN` (a resume token, e.g. `mongodb:gmZeqS0AAAABKwIsAQApbloQBA`), \
                 `mongodb-time:SECONDS.INCREMENT` (a cluster time, e.g. \
                 `mongodb-time:1732272000.1`), \
                 or a `mongodb-snapshot:...` position printed during a snapshot"
            }
        }
    }

    fn takes(self, position: &Position) -> bool {
        matches!(
            (self, position),
            (UrlKind::MySql, Position::MySql(_)) | (UrlKind::MongoDb, Position::MongoDb(_))
        )
    }

    /// The database whose positions start with `kind:`.
    fn of_position_kind(kind: &str) -> Option<Self> {
        match kind {
            "binlog" | "mariadb-gtid" | "mysql-gtid" | "mysql-snapshot" | "mysql-poll" => {
                Some(UrlKind::MySql)
            }
            "mongodb" | "mongodb-time" | "mongodb-snapshot" | "mongodb-poll" => {
                Some(UrlKind::MongoDb)
            }
            _ => None,
        }
    }
}

/// `--from TEXT` for a URL of `kind`: a keyword or a position of that database.
pub(crate) fn parse_from(text: &str, kind: UrlKind) -> Result<StartFrom> {
    let written_for = text
        .split_once(':')
        .and_then(|(prefix, _)| UrlKind::of_position_kind(prefix));
    let problem = match text.parse::<StartFrom>() {
        Ok(StartFrom::Position(position)) if !kind.takes(&position) => {
            format!("`{text}` is a position of another database")
        }
        Ok(from) => return Ok(from),
        Err(e) if written_for == Some(kind) => e.to_string(),
        Err(_) if written_for.is_some() => format!("`{text}` is a position of another database"),
        Err(_) => format!("`{text}` is neither a keyword nor a position"),
    };
    bail!("--from: {problem}; {} takes {}", kind.name(), kind.forms())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `e.g.` example of the message, without its backquotes.
    fn examples(kind: UrlKind) -> Vec<&'static str> {
        kind.forms()
            .split("e.g. `")
            .skip(1)
            .filter_map(|rest| rest.split('`').next())
            .collect()
    }

    #[test]
    fn every_example_of_each_kind_is_a_position_that_kind_takes() {
        for kind in [UrlKind::MySql, UrlKind::MongoDb] {
            let examples = examples(kind);
            assert!(examples.len() >= 2, "{kind:?}");
            for example in examples {
                assert!(
                    matches!(parse_from(example, kind), Ok(StartFrom::Position(_))),
                    "{kind:?}: {example}"
                );
            }
            for keyword in ["start", "end", "snapshot"] {
                assert!(parse_from(keyword, kind).is_ok(), "{kind:?}: {keyword}");
                assert!(kind.forms().contains(&format!("`{keyword}`")));
            }
        }
    }

    #[test]
    fn a_position_of_the_other_database_is_refused_with_the_forms_this_one_takes() {
        let err = parse_from("binlog:mysql-bin.000001:4+0", UrlKind::MongoDb)
            .expect_err("binlog for MongoDB")
            .to_string();
        assert!(err.contains("is a position of another database"), "{err}");
        assert!(err.contains("mongodb-time:"), "{err}");
        assert!(!err.contains("e.g. `binlog"), "{err}");
        assert!(parse_from("mongodb-time:1.1", UrlKind::MySql).is_err());
        let err = parse_from("binlog:nope", UrlKind::MongoDb).expect_err("binlog for MongoDB");
        assert!(err.to_string().contains("another database"), "{err}");
    }

    #[test]
    fn garbage_is_answered_with_the_forms_of_the_urls_own_database() {
        let err = parse_from("garbage", UrlKind::MongoDb)
            .expect_err("garbage")
            .to_string();
        assert!(
            err.starts_with(
                "--from: `garbage` is neither a keyword nor a position; a MongoDB URL takes `start`"
            ),
            "{err}"
        );
        assert!(!err.contains("binlog"), "{err}");
        let err = parse_from("binlog:nope", UrlKind::MySql)
            .expect_err("bad binlog position")
            .to_string();
        assert!(
            err.starts_with(
                "--from: invalid position `binlog:nope`: missing `+<rows already delivered>` suffix; a MySQL/MariaDB URL takes"
            ),
            "{err}"
        );
        assert!(err.contains("e.g. `mariadb-gtid:0-1-100+0`"), "{err}");
    }

    #[test]
    fn schemes_are_recognised_in_any_case() {
        assert_eq!(UrlKind::of("MariaDB://h").ok(), Some(UrlKind::MySql));
        assert_eq!(UrlKind::of("mongodb+srv://h").ok(), Some(UrlKind::MongoDb));
        assert!(UrlKind::of("postgres://h").is_err());
        assert!(UrlKind::of("no url").is_err());
    }
}
