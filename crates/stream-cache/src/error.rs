//! What can go wrong in the cache.

use stream_core::{ErrorClass, StoreError};

/// Errors of this crate. Reads never fail because of the cache: a Redis tier that stops
/// answering is logged and skipped, so these come from configuration, health checks and the
/// wrapped store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A setting is out of range; `field` names it as in a configuration file.
    #[error("{field} {reason}")]
    Config {
        /// The setting, e.g. `cache.max_entries`.
        field: &'static str,
        /// What is wrong and what is accepted, e.g. `must be at least 1`.
        reason: String,
    },
    /// The Redis tier failed (the message never contains the URL's password).
    #[error("redis tier at {url}: {reason}")]
    Redis {
        /// The URL with its password replaced by `***`.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The wrapped store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CacheError {
    /// Whether retrying may help: a configuration error needs a human, a Redis failure may
    /// pass, a store error keeps its own class.
    pub fn class(&self) -> ErrorClass {
        match self {
            CacheError::Config { .. } => ErrorClass::Definite,
            CacheError::Redis { .. } => ErrorClass::Transient,
            CacheError::Store(StoreError::Backend { class, .. }) => *class,
            CacheError::Store(_) => ErrorClass::Definite,
        }
    }
}
