//! Connection health for ultimate-stream.
//!
//! **Status: not implemented yet.** This crate reserves its place in the workspace and its
//! feature flag in `ultimate-stream`; it exports only the `IMPLEMENTED` flag, so nothing can be mistaken for
//! working code. Planned scope: per-connection probes (ping and "is replication advancing"), a circuit breaker, reconnect with exponential backoff and jitter from the last checkpoint, and a stream of health events.
//!
//! ```
//! // Depend on it through the facade: `ultimate-stream = { features = ["..."] }`.
//! assert!(!stream_heartbeat::IMPLEMENTED);
//! ```

/// Whether this crate's features exist yet. Checked by tests and by the facade's docs.
pub const IMPLEMENTED: bool = false;
