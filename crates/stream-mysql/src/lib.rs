//! MySQL and MariaDB binlog change data capture for ultimate-stream.
//!
//! **Status: not implemented yet.** [`MySqlSource::open`] returns
//! [`SourceError::Unsupported`]; nothing here pretends to stream. The binlog reader, the
//! initial snapshot, the polling fallback and the `Store` arrive with the MySQL issue.
//!
//! ```
//! use stream_core::{CancellationToken, Source, SourceError, StartFrom};
//! use stream_mysql::{MySqlConfig, MySqlSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = MySqlConfig::from_url("mysql://repl:secret@127.0.0.1:3306/shop").unwrap();
//! let mut source = MySqlSource::new(config);
//! let err = source.open(StartFrom::Latest, CancellationToken::new()).await.err().unwrap();
//! assert!(matches!(err, SourceError::Unsupported { .. }));
//! assert!(!err.to_string().contains("secret"));
//! # }
//! ```

mod config;

pub use config::{ConfigError, MySqlConfig, redact_url};
use stream_core::{CancellationToken, Opened, Source, SourceError, SourceKind, StartFrom};

/// A MySQL/MariaDB binlog source (not implemented yet: see the crate docs).
#[derive(Debug, Clone)]
pub struct MySqlSource {
    config: MySqlConfig,
}

impl MySqlSource {
    /// A source with these settings.
    pub fn new(config: MySqlConfig) -> Self {
        Self { config }
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
    ) -> Result<Opened, SourceError> {
        let _ = &self.config;
        Err(SourceError::Unsupported {
            what: "MySQL/MariaDB binlog streaming is not implemented yet in this build".into(),
        })
    }
}
