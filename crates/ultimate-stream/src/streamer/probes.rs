//! Health probes per source kind: "does the server answer" and "where is its change history".

use stream_core::Position;
use stream_heartbeat::Probe;

/// For sources the streamer cannot probe (custom ones): always answers.
pub(crate) struct NoProbe;

#[async_trait::async_trait]
impl Probe for NoProbe {
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        Ok(None)
    }
}

/// `SELECT 1` and `SHOW MASTER STATUS`, from the connector itself.
#[cfg(feature = "mysql")]
pub(crate) use stream_mysql::MySqlProbe;

/// `ping` and the last write's cluster time from `hello`.
#[cfg(feature = "mongo")]
pub(crate) struct MongoProbe {
    config: stream_mongo::MongoConfig,
    client: tokio::sync::OnceCell<mongodb::Client>,
}

#[cfg(feature = "mongo")]
impl MongoProbe {
    pub(crate) fn new(config: stream_mongo::MongoConfig) -> Self {
        Self {
            config,
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn admin(&self) -> Result<mongodb::Database, String> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let mut options = mongodb::options::ClientOptions::parse(self.config.uri())
                    .await
                    .map_err(|e| self.config.scrub(&e.to_string()))?;
                options
                    .server_selection_timeout
                    .get_or_insert(std::time::Duration::from_secs(2));
                mongodb::Client::with_options(options)
                    .map_err(|e| self.config.scrub(&e.to_string()))
            })
            .await?;
        Ok(client.database("admin"))
    }
}

#[cfg(feature = "mongo")]
#[async_trait::async_trait]
impl Probe for MongoProbe {
    async fn ping(&self) -> Result<(), String> {
        self.admin()
            .await?
            .run_command(mongodb::bson::doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(|e| self.config.scrub(&e.to_string()))
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        let hello = self
            .admin()
            .await?
            .run_command(mongodb::bson::doc! {"hello": 1})
            .await
            .map_err(|e| self.config.scrub(&e.to_string()))?;
        let ts = hello
            .get_document("lastWrite")
            .ok()
            .and_then(|w| w.get_document("opTime").ok())
            .and_then(|o| o.get_timestamp("ts").ok());
        Ok(ts.map(|ts| {
            Position::MongoDb(stream_core::MongoPosition::ClusterTime {
                t: ts.time,
                i: ts.increment,
            })
        }))
    }
}
