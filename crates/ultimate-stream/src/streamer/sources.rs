//! How to (re)build each source, probe it, and what it can read and write.

use std::sync::Arc;

use stream_core::{Opened, Source, SourceError, StartFrom};
use stream_heartbeat::Probe;

use super::probes;

/// How to (re)build one source, and what it can read and write.
pub(crate) enum SourceSpec {
    #[cfg(feature = "mysql")]
    MySql(Box<stream_mysql::MySqlConfig>),
    #[cfg(feature = "mongo")]
    Mongo(Box<stream_mongo::MongoConfig>),
    Custom {
        name: String,
        /// Builds the source with the state saved in its checkpoint.
        make: Arc<dyn Fn(Option<serde_json::Value>) -> Box<dyn Source> + Send + Sync>,
    },
}

impl SourceSpec {
    #[cfg(feature = "mysql")]
    pub(crate) fn mysql(mut config: stream_mysql::MySqlConfig) -> Self {
        // The streamer reconnects itself, with the heartbeat's backoff and health events.
        config.reconnect_for = std::time::Duration::ZERO;
        SourceSpec::MySql(Box::new(config))
    }

    #[cfg(feature = "mongo")]
    pub(crate) fn mongo(mut config: stream_mongo::MongoConfig) -> Self {
        config.reconnect_for = std::time::Duration::ZERO;
        SourceSpec::Mongo(Box::new(config))
    }

    pub(crate) fn custom<F>(name: &str, make: F) -> Self
    where
        F: Fn(Option<serde_json::Value>) -> Box<dyn Source> + Send + Sync + 'static,
    {
        SourceSpec::Custom {
            name: name.to_owned(),
            make: Arc::new(make),
        }
    }

    /// The pipeline name: the checkpoint key and the health entry.
    pub(crate) fn name(&self) -> &str {
        match self {
            #[cfg(feature = "mysql")]
            SourceSpec::MySql(_) => "mysql",
            #[cfg(feature = "mongo")]
            SourceSpec::Mongo(_) => "mongodb",
            SourceSpec::Custom { name, .. } => name,
        }
    }

    fn build(&self, state: Option<serde_json::Value>) -> Box<dyn Source> {
        match self {
            #[cfg(feature = "mysql")]
            SourceSpec::MySql(config) => {
                let mut config = (**config).clone();
                config.schema_state = state;
                Box::new(stream_mysql::MySqlSource::new(config))
            }
            #[cfg(feature = "mongo")]
            SourceSpec::Mongo(config) => {
                let _ = state;
                Box::new(stream_mongo::MongoSource::new((**config).clone()))
            }
            SourceSpec::Custom { make, .. } => make(state),
        }
    }

    pub(crate) async fn open(
        &self,
        from: StartFrom,
        state: Option<serde_json::Value>,
        shutdown: stream_core::CancellationToken,
    ) -> Result<Opened, SourceError> {
        self.build(state).open(from, shutdown).await
    }

    pub(crate) fn probe(&self) -> Arc<dyn Probe> {
        match self {
            #[cfg(feature = "mysql")]
            SourceSpec::MySql(config) => Arc::new(probes::MySqlProbe::new(config)),
            #[cfg(feature = "mongo")]
            SourceSpec::Mongo(config) => Arc::new(probes::MongoProbe::new((**config).clone())),
            SourceSpec::Custom { .. } => Arc::new(probes::NoProbe),
        }
    }
}
