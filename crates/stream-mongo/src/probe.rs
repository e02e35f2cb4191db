//! The health probe a monitor asks on every beat: `ping`, and the last write's cluster time.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::error::Error as DriverError;
use mongodb::{Client, Database};
use stream_core::{MongoPosition, Position, Probe};
use tokio::sync::OnceCell;

use crate::config::MongoConfig;
use crate::connect::{client, selection_timeout};
use crate::errors::{Purpose, describe};

/// A probe answers within its own timeout, not the driver's 30 s.
const PROBE_SELECTION: Duration = Duration::from_secs(2);

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
        let selection = selection_timeout(&self.config, PROBE_SELECTION);
        let client = self
            .client
            .get_or_try_init(|| client(&self.config, selection))
            .await?;
        Ok(client.database("admin"))
    }

    fn failed(&self, e: &DriverError) -> String {
        let selection = selection_timeout(&self.config, PROBE_SELECTION);
        describe(
            e,
            self.config.uri_parts(),
            Some(selection),
            Purpose::Other,
            false,
        )
    }

    /// Closes the probe's connections (they also close when it is dropped, in the background;
    /// this waits for that, while the runtime still runs).
    pub async fn close(&self) {
        if let Some(client) = self.client.get() {
            crate::connect::close(client.clone()).await;
        }
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
            .map_err(|e| self.failed(&e))
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        let hello = self
            .admin()
            .await?
            .run_command(doc! {"hello": 1})
            .await
            .map_err(|e| self.failed(&e))?;
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
