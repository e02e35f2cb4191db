//! The health probe a monitor asks on every beat: `ping`, and the last write's cluster time.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use stream_core::{MongoPosition, Position, Probe};
use tokio::sync::OnceCell;

use crate::config::MongoConfig;

/// [`Probe`] for a MongoDB deployment, over a client of its own (connected at the first probe,
/// so a server that is down at start is probed again at the next beat).
///
/// `server_position` is the `lastWrite` cluster time `hello` reports: it moves with every
/// write, so a stream whose position stands still while it moves is stalled.
pub struct MongoProbe {
    config: MongoConfig,
    client: OnceCell<Client>,
}

impl std::fmt::Debug for MongoProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoProbe")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MongoProbe {
    /// A probe of the deployment `config` names.
    pub fn new(config: MongoConfig) -> Self {
        Self {
            config,
            client: OnceCell::new(),
        }
    }

    async fn admin(&self) -> Result<Database, String> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let mut options = ClientOptions::parse(self.config.uri())
                    .await
                    .map_err(|e| self.config.scrub(&e.to_string()))?;
                // A probe answers within its own timeout, not the driver's 30 s.
                options
                    .server_selection_timeout
                    .get_or_insert(Duration::from_secs(2));
                Client::with_options(options).map_err(|e| self.config.scrub(&e.to_string()))
            })
            .await?;
        Ok(client.database("admin"))
    }
}

#[async_trait::async_trait]
impl Probe for MongoProbe {
    async fn ping(&self) -> Result<(), String> {
        self.admin()
            .await?
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(|e| self.config.scrub(&e.to_string()))
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        let hello = self
            .admin()
            .await?
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| self.config.scrub(&e.to_string()))?;
        let ts = hello
            .get_document("lastWrite")
            .ok()
            .and_then(|w| w.get_document("opTime").ok())
            .and_then(|o| o.get_timestamp("ts").ok());
        Ok(ts.map(|ts| {
            Position::MongoDb(MongoPosition::ClusterTime {
                t: ts.time,
                i: ts.increment,
            })
        }))
    }
}
