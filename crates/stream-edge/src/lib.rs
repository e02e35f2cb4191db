//! Robustness at the edges of ultimate-stream.
//!
//! **Status: not implemented yet.** This crate reserves its place in the workspace and its
//! feature flag in `ultimate-stream`; it exports only the `IMPLEMENTED` flag, so nothing can be mistaken for
//! working code. Planned scope: a retry policy table from error class to decision, input validation, dead-letter queues with replay, and a dedup window for pushed events.
//!
//! ```
//! // Depend on it through the facade: `ultimate-stream = { features = ["..."] }`.
//! assert!(!stream_edge::IMPLEMENTED);
//! ```

/// Whether this crate's features exist yet. Checked by tests and by the facade's docs.
pub const IMPLEMENTED: bool = false;
