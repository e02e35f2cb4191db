//! Driver errors: which are worth retrying (one table for the change stream, the snapshot, the
//! polling fallback and the store), and how they read: one line each.

use std::time::Duration;

use mongodb::error::{
    Error as DriverError, ErrorKind, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
    SYSTEM_OVERLOADED_ERROR, TRANSIENT_TRANSACTION_ERROR, WriteFailure,
};
use stream_core::{ErrorClass, Namespace, Position, SourceError};

use crate::bson_value::{ConvertError, shown_path};
use crate::uri::UriParts;

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

/// What the driver was asked to do when a server selection timed out: what to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A change stream, which needs a replica set.
    ChangeStream,
    /// Anything else.
    Other,
}

const AUTH_FAILED: &str = "authentication failed (check the user, password and authSource)";

/// A driver error as one line: what failed (and where, unless `hosts_framed`: the caller
/// names the hosts) and what to do. Never the driver's topology dump, error labels or raw
/// server reply; never a secret of `uri`. `selection` is the server selection timeout in
/// force, where known.
pub(crate) fn describe(
    e: &DriverError,
    uri: &UriParts,
    selection: Option<Duration>,
    purpose: Purpose,
    hosts_framed: bool,
) -> String {
    let at = if hosts_framed || uri.hosts.is_empty() {
        String::new()
    } else {
        format!(" at {}", uri.hosts)
    };
    let text = match e.kind.as_ref() {
        ErrorKind::ServerSelection { message, .. } => {
            let cause = selection_cause(message)
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let check = match purpose {
                Purpose::ChangeStream => {
                    "is it running, and is this a replica set (change streams need one)?"
                }
                Purpose::Other => "is it running, and reachable from here?",
            };
            let within = selection.map_or_else(
                || "within the server selection timeout".to_owned(),
                |t| format!("within {}", seconds(t)),
            );
            format!("no MongoDB server answered{at} {within}{cause}; {check}")
        }
        ErrorKind::Authentication { .. } => format!("{AUTH_FAILED}{at}"),
        ErrorKind::Command(c) if c.code == 18 => format!("{AUTH_FAILED}{at}"),
        ErrorKind::Command(c) => format!("{} ({} {})", c.message, c.code_name, c.code),
        ErrorKind::Io(io) => format!("network error{at}: {io}"),
        ErrorKind::DnsResolve { message, .. } => format!("cannot resolve{at}: {message}"),
        ErrorKind::InvalidArgument { message, .. } => {
            format!("invalid connection string or option: {message}")
        }
        ErrorKind::Write(WriteFailure::WriteError(w)) => format!("{} (code {})", w.message, w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            format!("write concern: {} (code {})", w.message, w.code)
        }
        other => other.to_string(),
    };
    uri.scrub(&one_line(&text))
}

/// The first server's own error inside a server-selection message (`Error: Kind: I/O error:
/// Connection refused (os error 111), labels: ...`).
fn selection_cause(message: &str) -> Option<String> {
    let start = message.find("Error: ")? + "Error: ".len();
    let rest = &message[start..];
    let rest = rest.strip_prefix("Kind: ").unwrap_or(rest);
    let end = rest.find(", labels:").unwrap_or(rest.len());
    let cause = rest[..end].trim();
    (!cause.is_empty()).then(|| cause.to_owned())
}

fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs} s")
    }
}

/// Whitespace runs (newlines included) as one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The positions a MongoDB change-stream source starts from, with an example of each, for
/// errors about a position it cannot use.
pub(crate) const POSITION_KINDS: &str = "a MongoDB change stream starts from `start` (the \
oldest change in the oplog), `end` (changes from now on), `snapshot` (every document, then the \
changes), or a position it printed: `mongodb:<resume token>` (e.g. \
`mongodb:MQAAAAJfZGF0YQAhAAAAODI2NUYwQTFCMjAwMDAwMDAxMkIwNDI5Mjk2RTE0MDQAAA`), \
`mongodb-time:<seconds>.<increment>` (e.g. `mongodb-time:1700000000.1`) or \
`mongodb-snapshot:<progress>` (e.g. \
`mongodb-snapshot:eyJ0IjoxNzAwMDAwMDAwLCJpIjoxLCJjb2xsZWN0aW9uIjoic2hvcC5vcmRlcnMiLCJhZnRlciI6IjcifQ`)";

/// Server error codes for a resume point the server cannot parse: BadValue, FailedToParse,
/// TypeMismatch, InvalidResumeToken.
const BAD_POSITION_CODES: &[i32] = &[2, 9, 14, 260];

/// Why a start position is unusable, when `e` says the position itself is malformed (not
/// the network, the privileges or lost history).
pub(crate) fn bad_position(e: &DriverError) -> Option<String> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) if BAD_POSITION_CODES.contains(&c.code) => Some(format!(
            "the server says: {} ({} {})",
            c.message, c.code_name, c.code
        )),
        ErrorKind::BsonDeserialization(_) => {
            Some("its bytes are not a resume token (a BSON document)".to_owned())
        }
        _ => None,
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
    fn the_cause_of_a_server_selection_timeout_is_the_servers_own_error() {
        let message = "Server selection timeout: No available servers. Topology: { Type: \
                       Unknown, Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: \
                       I/O error: Connection refused (os error 111), labels: \
                       {\"SystemOverloadedError\"}, source: None, server response: None } ] }";
        assert_eq!(
            selection_cause(message).as_deref(),
            Some("I/O error: Connection refused (os error 111)")
        );
        assert_eq!(selection_cause("Server selection timeout"), None);
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }

    #[test]
    fn the_example_positions_are_positions_of_their_kind() {
        use stream_core::{MongoPosition, StartFrom};
        let examples: Vec<&str> = POSITION_KINDS
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|text| !text.contains('<'))
            .collect();
        let kinds: Vec<String> = examples
            .iter()
            .map(|text| match text.parse::<StartFrom>() {
                Ok(StartFrom::Position(Position::MongoDb(MongoPosition::ResumeToken(_)))) => {
                    "token".to_owned()
                }
                Ok(StartFrom::Position(Position::MongoDb(MongoPosition::ClusterTime {
                    ..
                }))) => "time".to_owned(),
                Ok(StartFrom::Position(Position::MongoDb(MongoPosition::Snapshot(_)))) => {
                    "snapshot position".to_owned()
                }
                Ok(other) => format!("{other:?}"),
                Err(e) => panic!("`{text}`: {e}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Earliest",
                "Latest",
                "Snapshot",
                "token",
                "time",
                "snapshot position"
            ]
        );
        // Each example round-trips as printed.
        for text in examples.iter().skip(3) {
            assert_eq!(
                text.parse::<Position>().expect("position").to_string(),
                *text
            );
        }
    }

    #[test]
    fn network_errors_are_transient() {
        let io = DriverError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify(&io), ErrorClass::Transient);
    }
}
