//! A read cache for ultimate-stream, kept fresh by the change stream.
//!
//! **Status: not implemented yet.** This crate reserves its place in the workspace and its
//! feature flag in `ultimate-stream`; it exports only the `IMPLEMENTED` flag, so nothing can be mistaken for
//! working code. Planned scope: a moka LRU + TTL cache of reads and query results, invalidated or updated in place by change events of the same namespace, read-your-own-writes, hit/miss/eviction stats, and an optional Redis L2 tier.
//!
//! ```
//! // Depend on it through the facade: `ultimate-stream = { features = ["..."] }`.
//! assert!(!stream_cache::IMPLEMENTED);
//! ```

/// Whether this crate's features exist yet. Checked by tests and by the facade's docs.
pub const IMPLEMENTED: bool = false;
