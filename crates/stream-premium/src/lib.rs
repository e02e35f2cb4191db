//! Security features for ultimate-stream.
//!
//! **Status: not implemented yet.** This crate reserves its place in the workspace and its
//! feature flag in `ultimate-stream`; it exports only the `IMPLEMENTED` flag, so nothing can be mistaken for
//! working code. Planned scope: JWT and API-key authentication, per-namespace ACLs, AES-256-GCM field encryption and redaction.
//!
//! ```
//! // Depend on it through the facade: `ultimate-stream = { features = ["..."] }`.
//! assert!(!stream_premium::IMPLEMENTED);
//! ```

/// Whether this crate's features exist yet. Checked by tests and by the facade's docs.
pub const IMPLEMENTED: bool = false;
