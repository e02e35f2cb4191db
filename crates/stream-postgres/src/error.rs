//! What can go wrong in the PostgreSQL sink, store and checkpoint store.

use stream_core::{ErrorClass, SinkError};

/// A failure of the PostgreSQL sink. Never contains the URL's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The server cannot be reached, or the connection broke.
    #[error("PostgreSQL at {target} is unreachable: {reason}")]
    Connect {
        /// The redacted URL.
        target: String,
        /// What the driver said.
        reason: String,
    },
    /// The server refused the login for good: a wrong password, a missing role or database,
    /// no CONNECT privilege. Retrying does not help; the URL or the grants must change.
    #[error(
        "PostgreSQL at {target} refused the connection: {reason}; check the user, password and database in the URL and the user's grants"
    )]
    Refused {
        /// The redacted URL.
        target: String,
        /// The server's message and SQLSTATE.
        reason: String,
    },
    /// A statement failed.
    #[error("PostgreSQL {context}: {reason}")]
    Statement {
        /// What the sink was doing (`merging into shop.orders`).
        context: String,
        /// The server's message and SQLSTATE.
        reason: String,
        /// Whether retrying may help.
        class: ErrorClass,
    },
    /// A source table has no primary key and `keyless: refuse` is set.
    #[error(
        "table {table} has no primary key: add one at the source, or set `keyless: append` on the postgres sink"
    )]
    Keyless {
        /// `db.table`.
        table: String,
    },
    /// A column type change that would lose data.
    #[error("incompatible schema change at {position}: column {table}.{column} {change}")]
    IncompatibleChange {
        /// `db.table`.
        table: String,
        /// The column.
        column: String,
        /// The schema change's position.
        position: String,
        /// The types, and how to copy the table again.
        change: Box<TypeChange>,
    },
    /// A source table or column name PostgreSQL would truncate (it keeps 63 bytes), so two
    /// long names could become one.
    #[error(
        "{table}: the name `{name}` is {bytes} bytes and PostgreSQL keeps only 63, so names that differ after that would land in one; shorten it at the source, or exclude the table"
    )]
    NameTooLong {
        /// `db.table` of the source.
        table: String,
        /// The table or column name.
        name: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// Two source tables map to one target table.
    #[error(
        "{second} and {first} both map to the PostgreSQL table {target}; give their sinks different `schema`s, or exclude one of them"
    )]
    Collision {
        /// The target table, quoted.
        target: String,
        /// The source table that has it (`db.table`).
        first: String,
        /// The source table that would write into it too.
        second: String,
    },
    /// A change the target refuses for good.
    #[error("change to {table} key {key} at {position} refused: {reason}")]
    Rejected {
        /// `db.table`.
        table: String,
        /// The key as JSON.
        key: String,
        /// The change's position.
        position: String,
        /// Why.
        reason: String,
    },
}

/// A column type change the target cannot follow, and how to copy the table again: drop it,
/// forget the pipeline's position, start from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeChange {
    /// The type before (source type and the target's).
    pub old: String,
    /// The type the DDL asks for.
    pub new: String,
    /// The target table, quoted.
    pub target: String,
    /// How to forget the pipeline's position (the SQL, when it is in PostgreSQL).
    pub checkpoint: String,
}

impl std::fmt::Display for TypeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot change from {} to {} without loss; to copy the table again with its new type: stop, run `DROP TABLE {}` and `{}` in PostgreSQL, then start with the source's `from: snapshot` (reverting the change at the source does not help: the stream would meet it again)",
            self.old, self.new, self.target, self.checkpoint
        )
    }
}

impl PostgresError {
    /// Whether retrying may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            PostgresError::Connect { .. } => ErrorClass::Transient,
            PostgresError::Statement { class, .. } => *class,
            PostgresError::Keyless { .. }
            | PostgresError::Refused { .. }
            | PostgresError::NameTooLong { .. }
            | PostgresError::Collision { .. }
            | PostgresError::IncompatibleChange { .. }
            | PostgresError::Rejected { .. } => ErrorClass::Definite,
        }
    }

    /// The `SinkError` the pipeline sees, for the sink called `sink`.
    pub fn into_sink_error(self, sink: &str) -> SinkError {
        match self {
            PostgresError::Rejected {
                table,
                key,
                position,
                reason,
            } => SinkError::Rejected {
                sink: sink.to_owned(),
                position,
                reason: format!("{table} key {key}: {reason}"),
            },
            other => SinkError::Write {
                sink: sink.to_owned(),
                class: other.class(),
                reason: other.to_string(),
            },
        }
    }

    /// Classifies a driver error raised while doing `context`.
    pub(crate) fn from_driver(context: impl Into<String>, e: &tokio_postgres::Error) -> Self {
        let context = context.into();
        match e.as_db_error() {
            Some(db) => PostgresError::Statement {
                context,
                reason: describe(e),
                class: class_of_state(db.code().code()),
            },
            None => PostgresError::Statement {
                context,
                reason: describe(e),
                class: ErrorClass::Transient,
            },
        }
    }
}

/// What a driver error says: the server's own message and SQLSTATE, or the driver's words
/// followed by their causes (`error connecting to server: Connection refused (os error 111)`),
/// instead of tokio_postgres's bare `db error`.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        cause = inner.source();
    }
    out
}

/// Whether a SQLSTATE met while logging in means the login can never succeed as configured:
/// 28000/28P01 (authorization, password), 3D000 (no such database), 42501 (no privilege).
pub(crate) fn is_login_refusal(code: &str) -> bool {
    matches!(code, "28000" | "28P01" | "3D000" | "42501")
}

/// Whether `CREATE ... IF NOT EXISTS` lost a race with another session creating the same
/// schema or table (`IF NOT EXISTS` checks before inserting into the catalog, so the loser
/// hits the catalog's unique index: 23505, or 42P06/42P07/42710 duplicate schema, table,
/// object). Running the statement again finds the winner's object and does nothing.
pub(crate) fn is_creation_race(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| matches!(db.code().code(), "23505" | "42P06" | "42P07" | "42710"))
}

/// SQLSTATE classes that say the data or the schema is wrong, as opposed to the connection or
/// the server's load (`08` connection, `40` serialization/deadlock, `53` resources, `57`
/// shutdown: all transient).
pub(crate) fn class_of_state(code: &str) -> ErrorClass {
    match code.get(..2) {
        Some("08" | "40" | "53" | "55" | "57" | "58" | "XX") => ErrorClass::Transient,
        _ => ErrorClass::Definite,
    }
}

/// Whether a driver error is about the data (class 22 data exception, 23 integrity
/// constraint): the change at fault can be found and refused alone.
pub(crate) fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| matches!(db.code().code().get(..2), Some("22" | "23")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_do_and_classify_for_retries() {
        let e = PostgresError::Keyless {
            table: "shop.log".into(),
        };
        assert!(e.to_string().contains("shop.log"));
        assert!(e.to_string().contains("keyless: append"));
        assert_eq!(e.class(), ErrorClass::Definite);
        assert_eq!(class_of_state("08006"), ErrorClass::Transient);
        assert_eq!(class_of_state("22003"), ErrorClass::Definite);
        let rejected = PostgresError::Rejected {
            table: "shop.o".into(),
            key: "{\"id\":1}".into(),
            position: "binlog:b.000001:4+1".into(),
            reason: "numeric field overflow".into(),
        }
        .into_sink_error("pg");
        assert!(matches!(rejected, SinkError::Rejected { .. }));
        assert!(
            rejected.to_string().contains("shop.o key {\"id\":1}"),
            "{rejected}"
        );
    }
}
