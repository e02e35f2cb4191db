//! MongoDB change streams for ultimate-stream.
//!
//! **Status: not implemented yet.** [`MongoSource::open`] returns
//! [`SourceError::Unsupported`]; nothing here pretends to stream. Change streams, resume
//! tokens, the snapshot, the polling fallback and the `Store` arrive with the MongoDB issue.
//!
//! ```
//! use stream_core::{CancellationToken, Source, SourceError, StartFrom};
//! use stream_mongo::MongoSource;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut source = MongoSource::new("mongodb://127.0.0.1:27017/shop");
//! let err = source.open(StartFrom::Latest, CancellationToken::new()).await.err().unwrap();
//! assert!(matches!(err, SourceError::Unsupported { .. }));
//! # }
//! ```

use stream_core::{CancellationToken, Opened, Source, SourceError, SourceKind, StartFrom};

/// A MongoDB change-stream source (not implemented yet: see the crate docs).
#[derive(Clone)]
pub struct MongoSource {
    uri: String,
}

impl std::fmt::Debug for MongoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoSource").finish_non_exhaustive()
    }
}

impl MongoSource {
    /// A source for a `mongodb://` connection string.
    pub fn new(uri: impl Into<String>) -> Self {
        Self { uri: uri.into() }
    }
}

#[async_trait::async_trait]
impl Source for MongoSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MongoDb
    }

    async fn open(
        &mut self,
        _from: StartFrom,
        _shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        let _ = &self.uri;
        Err(SourceError::Unsupported {
            what: "MongoDB change streams are not implemented yet in this build".into(),
        })
    }
}
