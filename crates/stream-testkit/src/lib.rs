//! Finds the throwaway test servers that `cargo xtask` starts (or real ones given by URL).
//!
//! Every integration test gets its server from a `STREAM_TEST_*_URL` variable, so the same
//! suite runs against the servers of `cargo xtask test`, `cargo xtask db up`, or a real
//! MySQL 8 / MongoDB replica set. A missing variable fails the test with the fix in the
//! message: no test skips silently. Nor does a suite behind a cargo feature: a crate's
//! `tests/left_out.rs` calls [`report_left_out`] to say what a plain `cargo test` left out.
//!
//! ```
//! use stream_testkit::{GatedSuite, Server, left_out, unique_name};
//!
//! assert_eq!(Server::MySql.env_var(), "STREAM_TEST_MYSQL_URL");
//! let db = unique_name("orders");
//! assert!(db.starts_with("t_orders_"));
//!
//! let redis = GatedSuite { suite: "the Redis tier (tests/main.rs)", feature: "redis", built: false };
//! assert_eq!(
//!     left_out("stream-cache", &[redis]),
//!     ["left out: stream-cache: the Redis tier (tests/main.rs) (needs feature `redis`): \
//!       run cargo test -p stream-cache --features redis"]
//! );
//! assert!(left_out("stream-cache", &[GatedSuite { built: true, ..redis }]).is_empty());
//! ```

pub mod mariadb;
pub mod proxy;
pub mod secantus;
pub mod tls;

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
        host_port(&self.url())
    }
}

/// `host:port` of a server URL (`scheme://user:pass@host:port/db?options`).
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// A name unique to this test run and call, for per-test databases (`t_<prefix>_<pid>_<n>`).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t_{prefix}_{}_{n}", std::process::id())
}

/// A test suite that only runs with a cargo feature of its crate.
#[derive(Debug, Clone, Copy)]
pub struct GatedSuite {
    /// What the suite covers and where it is, e.g. `the Redis tier (tests/main.rs)`.
    pub suite: &'static str,
    /// The feature it needs.
    pub feature: &'static str,
    /// Whether this build has the feature: `cfg!(feature = "...")` in the crate's test target.
    pub built: bool,
}

/// How every line of [`left_out`] begins, for runners that look for them.
pub const LEFT_OUT: &str = "left out:";

/// The `left out:` line for each suite of `package` whose feature this build lacks.
pub fn left_out(package: &str, suites: &[GatedSuite]) -> Vec<String> {
    suites
        .iter()
        .filter(|s| !s.built)
        .map(|s| {
            format!(
                "{LEFT_OUT} {package}: {} (needs feature `{}`): run cargo test -p {package} --features {}",
                s.suite, s.feature, s.feature
            )
        })
        .collect()
}

/// Prints [`left_out`] to stdout, for a crate's `harness = false` test target: cargo skips a
/// test target whose `required-features` are off without a word, and libtest hides what a
/// passing test prints, so this is how a plain `cargo test` says what it did not run.
/// `cargo xtask test`, which builds every feature, fails on any such line.
pub fn report_left_out(package: &str, suites: &[GatedSuite]) {
    for line in left_out(package, suites) {
        println!("{line}");
    }
}
