//! `ustream tail` over TLS, through a fault proxy, to a MariaDB of the test's own that serves
//! TLS with a test CA; the tail's user is `REQUIRE SSL`, so every reconnect is a new verified
//! TLS session (`ssl-mode=verify-identity`) or a refused login. The faults and the checks are
//! those of `mariadb_tail_network_faults.rs`: nothing lost, repeated or misread.

use stream_testkit::mariadb::{MariaDb, PASSWORD, USER};
use stream_testkit::tls::TestCerts;

use crate::mariadb_tail_network_faults::{Target, tail_through};
use crate::tail_process::NetFault;

/// A MariaDB serving TLS (kept alive with its certificates while the test runs), and a tail
/// through the proxy as a user that may only connect over TLS.
async fn tail_over_tls_through(prefix: &str, fault: NetFault) -> Result<(), String> {
    let certs = TestCerts::make(&MariaDb::temp_dir(&format!("{prefix}-certs")))?;
    let args = certs.mariadb_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = MariaDb::start(&MariaDb::temp_dir(prefix), &args)?;
    server.sql(
        "CREATE USER 'tls_only'@'%' IDENTIFIED BY 'pw' REQUIRE SSL; \
         GRANT ALL ON *.* TO 'tls_only'@'%'",
    )?;
    let direct = server.url();
    let target = Target {
        tail: direct.replacen(&format!("{USER}:{PASSWORD}@"), "tls_only:pw@", 1),
        params: format!("?ssl-mode=verify-identity&ssl-ca={}", certs.ca().display()),
        direct,
    };
    assert_ne!(target.tail, target.direct, "the tail logs in as tls_only");
    tail_through(&target, prefix, fault).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_over_tls_through_a_reset_connection_reconnects_without_loss_or_repeat() {
    tail_over_tls_through("tls_reset", NetFault::Reset)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tail_over_tls_notices_a_half_open_connection_and_reconnects_without_loss() {
    tail_over_tls_through("tls_halfopen", NetFault::HalfOpen)
        .await
        .unwrap_or_else(|e| panic!("half-open TLS binlog connection not noticed: {e}"));
}
