//! [`SourceHealth`]: how each source is doing, including whether it still runs at all.

use std::fmt;

use stream_heartbeat::Health;

/// One source's state, as [`Streamer::health`](super::Streamer::health) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceHealth {
    /// Streaming; how its connection is doing (probes, circuit breaker, reconnects).
    Running(Health),
    /// Stopped on a final error: a setting, a purged position, a consumer that could neither
    /// deliver nor dead-letter an event, a checkpoint that could not be saved. Fix the cause
    /// and restart: the source resumes from its last checkpoint.
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped by [`Streamer::stop`](super::Streamer::stop).
    Stopped,
}

impl SourceHealth {
    /// `healthy`, `degraded`, `unhealthy`, `failed` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceHealth::Running(health) => health.as_str(),
            SourceHealth::Failed { .. } => "failed",
            SourceHealth::Stopped => "stopped",
        }
    }

    /// Whether the source runs and is healthy.
    pub fn is_healthy(&self) -> bool {
        matches!(self, SourceHealth::Running(health) if health.is_healthy())
    }

    /// Why it is not healthy, if it says.
    pub fn reason(&self) -> Option<&str> {
        match self {
            SourceHealth::Running(health) => health.reason(),
            SourceHealth::Failed { reason } => Some(reason),
            SourceHealth::Stopped => None,
        }
    }
}

impl fmt::Display for SourceHealth {
    /// `healthy`, `degraded: <reason>`, `failed: <reason>`, `stopped`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str(self.as_str()),
            Some(reason) => write!(f, "{}: {reason}", self.as_str()),
        }
    }
}
