//! The `Source` trait: a resumable stream of batches in commit order.

use std::pin::Pin;
use std::str::FromStr;

use futures::Stream;
use tokio_util::sync::CancellationToken;

use crate::event::{Batch, SourceKind};
use crate::position::{Position, PositionParseError};

/// Whether an error goes away by retrying (restart the source from the last checkpoint) or
/// needs a human (a setting, a purged position, an incompatible schema change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retrying later may succeed: connection lost, server restarting, timeouts.
    Transient,
    /// Retrying will fail the same way until something is changed.
    Definite,
}

/// Where a source starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest history the server still has (`--from start`).
    Earliest,
    /// Only changes committed from now on (`--from end`).
    Latest,
    /// A consistent snapshot of the selected tables (as inserts), then every change committed
    /// after it, with no gap and no duplicate (`--from snapshot`).
    Snapshot,
    /// Exactly after this position.
    Position(Position),
}

impl FromStr for StartFrom {
    type Err = PositionParseError;

    /// `start`, `end`, `snapshot`, or a position string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(StartFrom::Earliest),
            "end" => Ok(StartFrom::Latest),
            "snapshot" => Ok(StartFrom::Snapshot),
            other => other.parse().map(StartFrom::Position),
        }
    }
}

/// What can go wrong while reading a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The server could not be reached or refused the login. `target` never holds a password.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// Host and port (or a redacted URL).
        target: String,
        /// What the server or the network said.
        reason: String,
        /// Whether retrying may help (a refused password will not).
        class: ErrorClass,
    },
    /// A server setting does not allow change capture.
    #[error("server setting `{setting}` must be {expected}, but is {actual}")]
    Prerequisite {
        /// The setting or privilege.
        setting: String,
        /// The required value.
        expected: String,
        /// The value found.
        actual: String,
    },
    /// The requested position is gone from the server's history.
    #[error(
        "position {requested} is no longer on the server; the oldest available is {oldest} (re-snapshot to continue)"
    )]
    PositionPurged {
        /// The position asked for.
        requested: String,
        /// The oldest position the server still has.
        oldest: String,
    },
    /// A value could not be decoded.
    #[error("cannot decode {table}.{column} at {position}: {reason}")]
    Decode {
        /// `db.table`.
        table: String,
        /// Column name (or `#index` when unknown).
        column: String,
        /// Position of the event.
        position: String,
        /// What is wrong.
        reason: String,
    },
    /// The table's schema cannot be known or does not match the row.
    #[error("schema of {table} at {position}: {reason}")]
    Schema {
        /// `db.table`.
        table: String,
        /// Position of the event.
        position: String,
        /// What does not match.
        reason: String,
    },
    /// The connection dropped mid-stream.
    #[error("connection lost: {reason}")]
    ConnectionLost {
        /// What happened.
        reason: String,
    },
    /// This source cannot do what was asked (yet).
    #[error("not supported: {what}")]
    Unsupported {
        /// What was asked.
        what: String,
    },
    /// Anything else, with its class.
    #[error("{reason}")]
    Other {
        /// What happened.
        reason: String,
        /// Whether retrying may help.
        class: ErrorClass,
    },
}

impl SourceError {
    /// Whether retrying may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Connect { class, .. } | SourceError::Other { class, .. } => *class,
            SourceError::ConnectionLost { .. } => ErrorClass::Transient,
            SourceError::Prerequisite { .. }
            | SourceError::PositionPurged { .. }
            | SourceError::Decode { .. }
            | SourceError::Schema { .. }
            | SourceError::Unsupported { .. } => ErrorClass::Definite,
        }
    }
}

/// A stream of batches, as a source yields it.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<Batch, SourceError>> + Send>>;

/// An open source: where it actually starts, and its batches.
pub struct Opened {
    /// The position streaming starts from (`start`/`end` resolved to a concrete position).
    pub start: Position,
    /// The batches, in commit order.
    pub batches: BatchStream,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

/// A change source: yields batches of events in commit order, resumable from any event's
/// position.
///
/// Contract: events are yielded in commit order; each event's position resumes exactly after
/// it; `Batch::position` may advance without events (heartbeats) so a quiet or fully filtered
/// stream keeps moving; the stream ends (`None`) soon after `shutdown` is cancelled; an error
/// item ends the stream (the caller decides, by [`SourceError::class`], whether to reopen).
#[async_trait::async_trait]
pub trait Source: Send {
    /// Which kind of server this reads.
    fn kind(&self) -> SourceKind;

    /// Opens the stream at `from`. Errors that show before the first event (login,
    /// prerequisites, purged position) are returned here.
    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_from_accepts_keywords_and_positions() {
        assert_eq!("start".parse::<StartFrom>(), Ok(StartFrom::Earliest));
        assert_eq!("end".parse::<StartFrom>(), Ok(StartFrom::Latest));
        assert!(matches!(
            "binlog:mysql-bin.000001:4+0".parse::<StartFrom>(),
            Ok(StartFrom::Position(_))
        ));
        assert!("beginning".parse::<StartFrom>().is_err());
    }

    #[test]
    fn errors_are_classified_for_the_retry_policy() {
        let purged = SourceError::PositionPurged {
            requested: "binlog:a.000001:4+0".into(),
            oldest: "binlog:a.000007:4+0".into(),
        };
        assert_eq!(purged.class(), ErrorClass::Definite);
        assert!(
            purged
                .to_string()
                .contains("oldest available is binlog:a.000007:4+0")
        );
        let lost = SourceError::ConnectionLost {
            reason: "reset".into(),
        };
        assert_eq!(lost.class(), ErrorClass::Transient);
        let pre = SourceError::Prerequisite {
            setting: "binlog_format".into(),
            expected: "ROW".into(),
            actual: "STATEMENT".into(),
        };
        assert_eq!(
            pre.to_string(),
            "server setting `binlog_format` must be ROW, but is STATEMENT"
        );
    }
}
