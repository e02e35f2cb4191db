//! What a monitor asks a server.

use crate::position::Position;

/// Questions a monitor (`stream_heartbeat::Monitor`) asks a source's server on every probe.
///
/// Implementations use their own (small) connection, not the replication stream's, and should
/// reconnect it lazily: a failed call is expected to be retried at the next probe. Each call
/// is bounded by `probe_timeout`; errors are one-line human-readable reasons.
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    /// Whether the server answers (`SELECT 1`, `ping`).
    async fn ping(&self) -> Result<(), String>;

    /// The server's current end of history (MySQL: the binlog position or GTID state after the
    /// last commit; MongoDB: the latest cluster time), to tell whether the replication stream
    /// keeps up. `Ok(None)` when unknown: stall detection is then off.
    ///
    /// Only compared for equality with the previous answer, so it need not be comparable with
    /// the positions the stream delivers.
    async fn server_position(&self) -> Result<Option<Position>, String>;
}
