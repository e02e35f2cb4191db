//! [`StreamerError`]: why the streamer could not be built or could not serve a call.

/// Why the streamer could not be built or could not serve a call. Never contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamerError {
    /// An option or a pattern is invalid; names it and says how to write it.
    #[error("invalid option `{field}`: {reason}")]
    Config {
        /// The option, e.g. `cache.max_entries`, or `pattern`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A source could not be opened (connection, login, server settings, start position).
    #[error("source `{source_name}`: {error}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        #[source]
        error: stream_core::SourceError,
    },
    /// A sink failed its health check at start.
    #[error("sink `{sink}` is not ready: {error}")]
    Sink {
        /// The name the sink was added under.
        sink: String,
        /// What it said.
        #[source]
        error: stream_core::SinkError,
    },
    /// Reading or writing data failed.
    #[error(transparent)]
    Store(#[from] stream_core::StoreError),
    /// Input was rejected before it reached a database.
    #[error(transparent)]
    Invalid(#[from] stream_edge::ValidationError),
    /// A checkpoint could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] stream_core::CheckpointError),
    /// A pushed event was neither delivered nor dead-lettered by a callback or sink.
    #[error("the pushed event was not delivered: {reason}")]
    NotDelivered {
        /// Which consumer, and why.
        reason: String,
    },
    /// The streamer was stopped.
    #[error("the streamer is stopped")]
    Stopped,
}

impl StreamerError {
    pub(crate) fn config(field: &str, reason: impl std::fmt::Display) -> Self {
        StreamerError::Config {
            field: field.to_owned(),
            reason: reason.to_string(),
        }
    }
}
