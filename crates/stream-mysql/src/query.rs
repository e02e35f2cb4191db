//! QUERY events: the statement text, its default database, and what it means for the
//! transaction being tracked.

use crate::binary::{Malformed, Reader};

/// A parsed QUERY event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryEvent {
    /// The session's current database, when one was selected.
    pub(crate) db: Option<String>,
    pub(crate) sql: String,
}

/// What a statement does to the transaction being tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Statement {
    /// `BEGIN`, `XA START`/`XA BEGIN`: a transaction starts.
    Begin,
    /// `COMMIT`, and a `ROLLBACK` of the whole transaction (non-transactional changes made
    /// inside it stay in the binlog): the transaction ends.
    End,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`, `XA END`: nothing to track.
    Ignore,
    /// Anything else (DDL and other statements).
    Other,
}

impl QueryEvent {
    /// Parses a QUERY event body (post-header, status variables, database name, statement).
    pub(crate) fn parse(data: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(data);
        r.take(8, "thread id and exec time")?;
        let db_len = usize::from(r.u8("database name length")?);
        r.take(2, "error code")?;
        let status_len = r.uint_le(2, "status variables length")? as usize;
        r.take(status_len, "status variables")?;
        let db = r.take(db_len, "database name")?;
        r.take(1, "database name terminator")?;
        Ok(Self {
            db: (!db.is_empty()).then(|| String::from_utf8_lossy(db).into_owned()),
            sql: String::from_utf8_lossy(r.rest()).into_owned(),
        })
    }

    /// What the statement does to the transaction.
    pub(crate) fn statement(&self) -> Statement {
        let sql = self.sql.trim_start();
        let word = sql.split_whitespace().next().unwrap_or("");
        let head = sql.get(..24).unwrap_or(sql).to_ascii_uppercase();
        match word.to_ascii_uppercase().as_str() {
            "BEGIN" => Statement::Begin,
            "COMMIT" => Statement::End,
            "SAVEPOINT" | "RELEASE" => Statement::Ignore,
            "ROLLBACK" if head.starts_with("ROLLBACK TO") => Statement::Ignore,
            "ROLLBACK" => Statement::End,
            "XA" if head.starts_with("XA START") || head.starts_with("XA BEGIN") => {
                Statement::Begin
            }
            "XA" if head.starts_with("XA END") => Statement::Ignore,
            _ => Statement::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QUERY event body for `sql` run in `db`.
    fn query_event(db: &str, sql: &str) -> Vec<u8> {
        let mut b = vec![0; 8];
        b.push(db.len() as u8);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&3u16.to_le_bytes());
        b.extend_from_slice(&[1, 2, 3]);
        b.extend_from_slice(db.as_bytes());
        b.push(0);
        b.extend_from_slice(sql.as_bytes());
        b
    }

    #[test]
    fn parses_the_database_and_statement() {
        let q = QueryEvent::parse(&query_event("shop", "ALTER TABLE t ADD c INT")).expect("parse");
        assert_eq!(q.db.as_deref(), Some("shop"));
        assert_eq!(q.sql, "ALTER TABLE t ADD c INT");
        let q = QueryEvent::parse(&query_event("", "BEGIN")).expect("parse");
        assert_eq!((q.statement(), q.db), (Statement::Begin, None));
    }

    #[test]
    fn truncated_events_are_errors() {
        let full = query_event("shop", "COMMIT");
        for cut in [0, 5, 12, 15, 20] {
            assert!(QueryEvent::parse(&full[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge_status = full.clone();
        huge_status[11..13].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(QueryEvent::parse(&huge_status).is_err());
    }

    #[test]
    fn statements_are_classified_for_transaction_tracking() {
        let of = |sql: &str| {
            QueryEvent {
                db: None,
                sql: sql.into(),
            }
            .statement()
        };
        assert_eq!(of("  begin"), Statement::Begin);
        assert_eq!(of("XA START 'x'"), Statement::Begin);
        assert_eq!(of("COMMIT"), Statement::End);
        assert_eq!(of("ROLLBACK"), Statement::End);
        assert_eq!(of("ROLLBACK TO SAVEPOINT a"), Statement::Ignore);
        assert_eq!(of("SAVEPOINT a"), Statement::Ignore);
        assert_eq!(of("XA END 'x'"), Statement::Ignore);
        assert_eq!(of("XA COMMIT 'x'"), Statement::Other);
        assert_eq!(of("CREATE TABLE t (id INT)"), Statement::Other);
    }
}
