//! [`MySqlProbe`]: the health questions a monitor asks a MySQL or MariaDB server.

use mysql_async::prelude::Queryable as _;
use stream_core::{Position, Probe};

use crate::MySqlConfig;
use crate::server::describe;

/// Answers a monitor (`stream_heartbeat::Monitor`) with `SELECT 1` and `SHOW MASTER STATUS`
/// over a pool of at most one connection of its own, reconnected lazily.
///
/// ```no_run
/// use stream_core::Probe;
/// use stream_mysql::{MySqlConfig, MySqlProbe};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let probe = MySqlProbe::new(&MySqlConfig::from_url("mysql://repl:secret@127.0.0.1:3306/shop")?);
/// probe.ping().await?;
/// println!("the server is at {:?}", probe.server_position().await?);
/// # Ok(()) }
/// ```
pub struct MySqlProbe {
    pool: mysql_async::Pool,
    endpoint: String,
}

impl std::fmt::Debug for MySqlProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlProbe")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl MySqlProbe {
    /// A probe of the configured server (nothing connects until the first question).
    pub fn new(config: &MySqlConfig) -> Self {
        let one = mysql_async::PoolConstraints::new(0, 1).unwrap_or_default();
        let opts = config
            .opts()
            .pool_opts(mysql_async::PoolOpts::default().with_constraints(one));
        Self {
            pool: mysql_async::Pool::new(opts),
            endpoint: config.endpoint(),
        }
    }

    /// `what` names the step and ends with a preposition: "connecting to", "SELECT 1 on".
    fn failed(&self, what: &str, e: &mysql_async::Error) -> String {
        format!("{what} {} failed: {}", self.endpoint, describe(e))
    }

    async fn conn(&self) -> Result<mysql_async::Conn, String> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| self.failed("connecting to", &e))
    }
}

#[async_trait::async_trait]
impl Probe for MySqlProbe {
    async fn ping(&self) -> Result<(), String> {
        self.conn()
            .await?
            .query_drop("SELECT 1")
            .await
            .map_err(|e| self.failed("SELECT 1 on", &e))
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        let row: Option<mysql_async::Row> = self
            .conn()
            .await?
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| self.failed("SHOW MASTER STATUS on", &e))?;
        Ok(row.and_then(|row| {
            let file: Option<String> = row.get(0);
            let offset: Option<u64> = row.get(1);
            Some(Position::binlog(file?, offset?, 0))
        }))
    }
}
