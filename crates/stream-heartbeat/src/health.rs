//! Health states and the events that report their changes.

use std::fmt;
use std::fmt::Write as _;

/// How a source's connection is doing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Health {
    /// Pings answer and the stream keeps up with the server.
    Healthy,
    /// Reachable, but something is off: the server's position moves while ours does not, or
    /// the server position cannot be read.
    Degraded {
        /// What is off.
        reason: String,
    },
    /// Unreachable: pings fail or time out, the circuit breaker is open, or the stream's
    /// connection was lost and is not restored yet.
    Unhealthy {
        /// Why.
        reason: String,
    },
}

impl Health {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded { .. } => "degraded",
            Health::Unhealthy { .. } => "unhealthy",
        }
    }

    /// Whether this is [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The reason, unless healthy.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Degraded { reason } | Health::Unhealthy { reason } => Some(reason),
        }
    }

    /// Whether two states are the same kind (reasons aside): only a change of kind is an
    /// event.
    pub(crate) fn same_kind(&self, other: &Health) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    pub(crate) fn to_event_kind(&self) -> HealthEventKind {
        match self {
            Health::Healthy => HealthEventKind::Healthy,
            Health::Degraded { reason } => HealthEventKind::Degraded {
                reason: reason.clone(),
            },
            Health::Unhealthy { reason } => HealthEventKind::Unhealthy {
                reason: reason.clone(),
            },
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str(self.as_str()),
            Some(reason) => write!(f, "{}: {reason}", self.as_str()),
        }
    }
}

/// Something that happened to a source's connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthEvent {
    /// The monitor's name (the source it watches).
    pub source: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What happened.
    pub kind: HealthEventKind,
}

/// What a [`HealthEvent`] reports: a change of [`Health`] (`Healthy`, `Degraded`,
/// `Unhealthy`), or a happening the pipeline reported (`ConnectionLost`, `Reconnected`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HealthEventKind {
    /// Health became [`Health::Healthy`].
    Healthy,
    /// Health became [`Health::Degraded`].
    Degraded {
        /// Why.
        reason: String,
    },
    /// Health became [`Health::Unhealthy`].
    Unhealthy {
        /// Why.
        reason: String,
    },
    /// The stream's connection dropped.
    ConnectionLost {
        /// What happened.
        reason: String,
    },
    /// The stream is connected again.
    Reconnected {
        /// Attempts it took (1: the first one succeeded).
        attempts: u32,
        /// The position streaming resumed from, in its printable form.
        resumed_from: Option<String>,
    },
}

impl HealthEventKind {
    /// `healthy`, `degraded`, `unhealthy`, `connection_lost` or `reconnected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthEventKind::Healthy => "healthy",
            HealthEventKind::Degraded { .. } => "degraded",
            HealthEventKind::Unhealthy { .. } => "unhealthy",
            HealthEventKind::ConnectionLost { .. } => "connection_lost",
            HealthEventKind::Reconnected { .. } => "reconnected",
        }
    }
}

impl HealthEvent {
    /// One line of JSON: `{"source":"mysql","at_ms":1732272000000,"kind":"unhealthy","reason":"…"}`;
    /// `reconnected` carries `"attempts"` and `"resumed_from"` (a position string or `null`)
    /// instead of `"reason"`, `healthy` neither.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96);
        out.push_str("{\"source\":");
        push_json_str(&mut out, &self.source);
        let _ = write!(
            out,
            ",\"at_ms\":{},\"kind\":\"{}\"",
            self.at_ms,
            self.kind.as_str()
        );
        match &self.kind {
            HealthEventKind::Healthy => {}
            HealthEventKind::Degraded { reason }
            | HealthEventKind::Unhealthy { reason }
            | HealthEventKind::ConnectionLost { reason } => {
                out.push_str(",\"reason\":");
                push_json_str(&mut out, reason);
            }
            HealthEventKind::Reconnected {
                attempts,
                resumed_from,
            } => {
                let _ = write!(out, ",\"attempts\":{attempts},\"resumed_from\":");
                match resumed_from {
                    Some(position) => push_json_str(&mut out, position),
                    None => out.push_str("null"),
                }
            }
        }
        out.push('}');
        out
    }
}

impl fmt::Display for HealthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.kind.as_str())?;
        match &self.kind {
            HealthEventKind::Healthy => Ok(()),
            HealthEventKind::Degraded { reason }
            | HealthEventKind::Unhealthy { reason }
            | HealthEventKind::ConnectionLost { reason } => write!(f, " ({reason})"),
            HealthEventKind::Reconnected {
                attempts,
                resumed_from,
            } => {
                write!(f, " after {attempts} attempt(s)")?;
                match resumed_from {
                    Some(position) => write!(f, ", resumed from {position}"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_as_one_line_of_json() {
        let event = |kind| HealthEvent {
            source: "mysql".into(),
            at_ms: 1_732_272_000_000,
            kind,
        };
        assert_eq!(
            event(HealthEventKind::Healthy).to_json(),
            r#"{"source":"mysql","at_ms":1732272000000,"kind":"healthy"}"#
        );
        assert_eq!(
            event(HealthEventKind::Unhealthy {
                reason: "ping failed: \"gone\"\n".into()
            })
            .to_json(),
            r#"{"source":"mysql","at_ms":1732272000000,"kind":"unhealthy","reason":"ping failed: \"gone\"\n"}"#
        );
        assert_eq!(
            event(HealthEventKind::Reconnected {
                attempts: 3,
                resumed_from: Some("binlog:mysql-bin.000001:4+0".into())
            })
            .to_json(),
            r#"{"source":"mysql","at_ms":1732272000000,"kind":"reconnected","attempts":3,"resumed_from":"binlog:mysql-bin.000001:4+0"}"#
        );
        assert_eq!(
            event(HealthEventKind::Reconnected {
                attempts: 1,
                resumed_from: None
            })
            .to_json(),
            r#"{"source":"mysql","at_ms":1732272000000,"kind":"reconnected","attempts":1,"resumed_from":null}"#
        );
        assert_eq!(
            event(HealthEventKind::ConnectionLost {
                reason: "\u{1}".into()
            })
            .to_json(),
            r#"{"source":"mysql","at_ms":1732272000000,"kind":"connection_lost","reason":"\u0001"}"#
        );
    }

    #[test]
    fn health_and_events_read_well() {
        let h = Health::Degraded {
            reason: "stalled".into(),
        };
        assert_eq!(h.to_string(), "degraded: stalled");
        assert_eq!(Health::Healthy.to_string(), "healthy");
        assert!(h.same_kind(&Health::Degraded {
            reason: "other".into()
        }));
        assert!(!h.same_kind(&Health::Healthy));
        let e = HealthEvent {
            source: "shop".into(),
            at_ms: 0,
            kind: HealthEventKind::Reconnected {
                attempts: 2,
                resumed_from: Some("binlog:a.000001:4+0".into()),
            },
        };
        assert_eq!(
            e.to_string(),
            "shop: reconnected after 2 attempt(s), resumed from binlog:a.000001:4+0"
        );
    }
}
