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

/// `ping` and the last write's cluster time, from the MongoDB connector.
#[cfg(feature = "mongo")]
pub(crate) use stream_mongo::MongoProbe;
