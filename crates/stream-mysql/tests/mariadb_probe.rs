//! `MySqlProbe`, the health questions a monitor asks: does the server answer, and where is
//! the end of its binlog.

use crate::support::*;
use mysql_async::prelude::*;
use stream_core::Probe;
use stream_mysql::{MySqlConfig, MySqlProbe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_probe_pings_and_follows_the_end_of_the_binlog() {
    let probe = MySqlProbe::new(&MySqlConfig::from_url(&url()).expect("url"));
    probe.ping().await.expect("the server answers");
    let before = probe
        .server_position()
        .await
        .expect("position")
        .expect("binlog on");
    let mut c = conn().await;
    let db = fresh_db(&mut c, "probe").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await
        .expect("write");
    let after = probe
        .server_position()
        .await
        .expect("position")
        .expect("binlog on");
    assert_eq!(
        after.compare(&before),
        Some(std::cmp::Ordering::Greater),
        "{before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_probe_of_a_server_that_is_gone_says_so_in_one_line_without_the_password() {
    let proxy = Proxy::start(MySqlConfig::from_url(&url()).expect("url").endpoint()).await;
    let with_password = proxy.url(&url()).replacen(":ustream@", ":s3cret-pw@", 1);
    let probe = MySqlProbe::new(&MySqlConfig::from_url(&with_password).expect("url"));
    proxy.stop();
    // The proxy's port closes once its accept loop sees the stop.
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Err(e) = probe.ping().await {
                break e;
            }
        }
    })
    .await
    .expect("the probe notices");
    assert!(!err.contains("s3cret-pw") && !format!("{probe:?}").contains("s3cret-pw"));
    assert!(!err.contains('\n'), "{err}");
    assert!(
        err.starts_with(&format!("connecting to 127.0.0.1:{} failed: ", proxy.port)),
        "{err}"
    );
}
