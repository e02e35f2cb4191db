//! MySQL and MariaDB binlog change data capture for ultimate-stream.
//!
//! **Status: not implemented yet.** [`MySqlSource::open`] returns
//! [`SourceError::Unsupported`]; nothing here pretends to stream. The binlog reader, the
//! initial snapshot, the polling fallback and the `Store` arrive with the MySQL issue.
//!
//! ```
//! use stream_core::{CancellationToken, Source, SourceError, StartFrom};
//! use stream_mysql::MySqlSource;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut source = MySqlSource::new("mysql://repl:secret@127.0.0.1:3306/shop");
//! let err = source.open(StartFrom::Latest, CancellationToken::new()).await.err().unwrap();
//! assert!(matches!(err, SourceError::Unsupported { .. }));
//! assert!(!err.to_string().contains("secret"));
//! # }
//! ```

use stream_core::{BatchStream, CancellationToken, Source, SourceError, SourceKind, StartFrom};

/// A MySQL/MariaDB binlog source (not implemented yet: see the crate docs).
#[derive(Clone)]
pub struct MySqlSource {
    url: String,
}

impl std::fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("MySqlSource").finish_non_exhaustive()
    }
}

impl MySqlSource {
    /// A source for `mysql://user:password@host:port/db`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }
}

#[async_trait::async_trait]
impl Source for MySqlSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MySql
    }

    async fn open(
        &mut self,
        _from: StartFrom,
        _shutdown: CancellationToken,
    ) -> Result<BatchStream, SourceError> {
        let _ = &self.url;
        Err(SourceError::Unsupported {
            what: "MySQL/MariaDB binlog streaming is not implemented yet in this build".into(),
        })
    }
}
