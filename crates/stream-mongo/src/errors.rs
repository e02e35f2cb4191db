//! Which driver errors are worth retrying: one table for the change stream, the snapshot, the
//! polling fallback and the store.

use mongodb::error::{
    Error as DriverError, ErrorKind, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
    SYSTEM_OVERLOADED_ERROR, TRANSIENT_TRANSACTION_ERROR, WriteFailure,
};
use stream_core::{ErrorClass, Namespace, Position, SourceError};

use crate::bson_value::{ConvertError, shown_path};

/// Server error codes after which retrying may succeed: network (6, 7, 89, 9001), elections
/// and shutdowns (91, 189, 10107, 11600, 11602, 13435, 13436), time limits (50, 262), a lost
/// cursor (43), stale routing on sharded clusters (63, 150, 13388), read preference and read
/// concern not yet satisfiable (133, 134), write conflicts and write-concern timeouts (64, 112),
/// and a change stream asked to retry (234).
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 43, 50, 63, 64, 89, 91, 112, 133, 134, 150, 189, 234, 262, 9001, 10107, 11600, 11602,
    13388, 13435, 13436,
];

/// Labels the server or driver puts on errors that a retry can fix.
const TRANSIENT_LABELS: &[&str] = &[
    "ResumableChangeStreamError",
    RETRYABLE_ERROR,
    RETRYABLE_WRITE_ERROR,
    SYSTEM_OVERLOADED_ERROR,
    TRANSIENT_TRANSACTION_ERROR,
];

/// Whether the driver's error is worth retrying (the network, a failover, a resumable
/// change-stream error, a write conflict) or final.
pub(crate) fn classify(e: &DriverError) -> ErrorClass {
    let labelled = TRANSIENT_LABELS.iter().any(|label| e.contains_label(label));
    let transient = labelled
        || match e.kind.as_ref() {
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. } => true,
            ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
            ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
                TRANSIENT_CODES.contains(&w.code)
            }
            ErrorKind::Write(WriteFailure::WriteError(w)) => TRANSIENT_CODES.contains(&w.code),
            _ => false,
        };
    if transient {
        ErrorClass::Transient
    } else {
        ErrorClass::Definite
    }
}

/// A document of `ns` that cannot be converted, at `position` (the event's, or the one that
/// resumes after the document): final, since reading it again fails the same way.
pub(crate) fn undecodable(
    ns: &Namespace,
    position: Option<&Position>,
    e: &ConvertError,
) -> SourceError {
    let (position, hint) = match position {
        Some(p) => (
            p.to_string(),
            "; to skip the document, resume from this position",
        ),
        None => ("an unknown position".to_owned(), ""),
    };
    SourceError::Decode {
        table: ns.to_string(),
        column: shown_path(e.field()),
        position,
        reason: format!("{}{hint}", e.reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_errors_are_transient() {
        let io = DriverError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify(&io), ErrorClass::Transient);
    }
}
