//! Finds the throwaway test servers that `cargo xtask` starts (or real ones given by URL).
//!
//! Every integration test gets its server from a `STREAM_TEST_*_URL` variable, so the same
//! suite runs against the servers of `cargo xtask test`, `cargo xtask db up`, or a real
//! MySQL 8 / MongoDB replica set. A missing variable fails the test with the fix in the
//! message: no test skips silently.
//!
//! ```
//! use stream_testkit::{Server, unique_name};
//!
//! assert_eq!(Server::MySql.env_var(), "STREAM_TEST_MYSQL_URL");
//! let db = unique_name("orders");
//! assert!(db.starts_with("t_orders_"));
//! ```

pub mod mariadb;
pub mod proxy;
pub mod secantus;

use std::sync::atomic::{AtomicU32, Ordering};

/// A kind of test server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// MySQL or MariaDB with binlog ROW/FULL.
    MySql,
    /// PostgreSQL.
    Postgres,
    /// Redis.
    Redis,
    /// NATS with JetStream.
    Nats,
    /// MongoDB replica set (or the secantusdb stand-in).
    Mongo,
}

impl Server {
    /// The variable holding its URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Server::MySql => "STREAM_TEST_MYSQL_URL",
            Server::Postgres => "STREAM_TEST_PG_URL",
            Server::Redis => "STREAM_TEST_REDIS_URL",
            Server::Nats => "STREAM_TEST_NATS_URL",
            Server::Mongo => "STREAM_TEST_MONGO_URL",
        }
    }

    /// The server's URL.
    ///
    /// # Panics
    /// When the variable is unset: the test must fail, not skip.
    pub fn url(self) -> String {
        match std::env::var(self.env_var()) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => panic!(
                "{} is not set: run the tests with `cargo xtask test`, or start servers with \
                 `cargo xtask db up` and load target/xtask/servers.env",
                self.env_var()
            ),
        }
    }

    /// `host:port` of the server's URL.
    pub fn host_port(self) -> String {
        let url = self.url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
    }
}

/// A name unique to this test run and call, for per-test databases (`t_<prefix>_<pid>_<n>`).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t_{prefix}_{}_{n}", std::process::id())
}
