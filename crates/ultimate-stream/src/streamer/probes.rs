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

/// `SELECT 1` and `SHOW MASTER STATUS` over a small pool of its own.
#[cfg(feature = "mysql")]
pub(crate) struct MySqlProbe {
    pool: mysql_async::Pool,
}

#[cfg(feature = "mysql")]
impl MySqlProbe {
    pub(crate) fn new(config: &stream_mysql::MySqlConfig) -> Self {
        let opts = config.opts().pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(mysql_async::PoolConstraints::new(0, 1).unwrap_or_default()),
        );
        Self {
            pool: mysql_async::Pool::new(opts),
        }
    }
}

#[cfg(feature = "mysql")]
#[async_trait::async_trait]
impl Probe for MySqlProbe {
    async fn ping(&self) -> Result<(), String> {
        use mysql_async::prelude::Queryable as _;
        let mut conn = self.pool.get_conn().await.map_err(|e| e.to_string())?;
        conn.query_drop("SELECT 1").await.map_err(|e| e.to_string())
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        use mysql_async::prelude::Queryable as _;
        let mut conn = self.pool.get_conn().await.map_err(|e| e.to_string())?;
        let row: Option<mysql_async::Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.and_then(|row| {
            let file: Option<String> = row.get(0);
            let offset: Option<u64> = row.get(1);
            Some(Position::binlog(file?, offset?, 0))
        }))
    }
}

/// `ping` and the last write's cluster time, from the MongoDB connector.
#[cfg(feature = "mongo")]
pub(crate) use stream_mongo::MongoProbe;
