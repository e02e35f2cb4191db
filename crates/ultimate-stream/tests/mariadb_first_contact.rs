//! First contact with the `Streamer` against MariaDB: a typo in the database name fails at
//! `start()`, patterns that can never match are refused or flagged, `health()` says stopped
//! after `stop()`, a lagging subscriber is told its lag on an idle stream, and the latency
//! metric is precise.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{Delivery, SubscribeOptions};
use stream_testkit::{Server, unique_name};
use ultimate_stream::Streamer;

use crate::support::{WAIT, eventually, fresh, insert};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_start_refuses_a_database_that_does_not_exist() {
    // Needs the MySQL source to refuse a missing database in `open` (stream-mysql).
    let typo = unique_name("shpo");
    let err = Streamer::builder()
        .mysql(&format!("{}/{typo}", Server::MySql.url()))
        .start()
        .await
        .expect_err("a database that does not exist");
    let text = err.to_string();
    assert!(text.contains(&typo), "{text}");
    assert!(!text.contains(&password()), "no password in {text}");
}

fn password() -> String {
    let url = Server::MySql.url();
    let after_user = url.split_once("://").map_or("", |(_, rest)| rest);
    let credentials = after_user.split_once('@').map_or("", |(c, _)| c);
    credentials
        .split_once(':')
        .map_or(String::from("\u{0}"), |(_, p)| p.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_refuses_bare_names_and_flags_patterns_that_match_nothing_yet() {
    let (mut c, db) = fresh(&Server::MySql.url(), "patterns").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{}/{db}", Server::MySql.url()))
        .start()
        .await
        .expect("start");
    let err = streamer
        .on("t", |_| async { Ok(()) })
        .expect_err("a bare name");
    let text = err.to_string();
    assert!(text.contains(&format!("`{db}.t`")), "{text}");
    assert!(text.contains("`t.*`"), "{text}");
    assert!(streamer.subscribe("t").is_err());

    let existing = streamer.subscribe(&format!("{db}.t")).expect("subscribe");
    assert!(!existing.matches_nothing_yet());
    let handler = streamer
        .on(&format!("{db}.t"), |_| async { Ok(()) })
        .expect("on");
    assert!(!handler.matches_nothing_yet());
    let mut later = streamer
        .subscribe(&format!("{db}.later"))
        .expect("a table that may be created later");
    assert!(later.matches_nothing_yet());
    let handler = streamer
        .on(&format!("{db}.nope"), |_| async { Ok(()) })
        .expect("on");
    assert!(handler.matches_nothing_yet());
    assert!(
        streamer.subscribe("*").is_ok(),
        "`*` alone means everything"
    );

    c.query_drop(format!(
        "CREATE TABLE `{db}`.later (id INT PRIMARY KEY); INSERT INTO `{db}`.later VALUES (1)"
    ))
    .await
    .expect("create later");
    let delivered = tokio::time::timeout(WAIT, later.next())
        .await
        .expect("an event from the new table")
        .expect("open");
    assert!(matches!(delivered, Delivery::Event(_)), "{delivered:?}");
    let again = streamer
        .subscribe(&format!("{db}.later"))
        .expect("subscribe");
    assert!(!again.matches_nothing_yet(), "the new table is known now");
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_health_says_stopped_after_stop() {
    let (_c, db) = fresh(&Server::MySql.url(), "stopped").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{}/{db}", Server::MySql.url()))
        .start()
        .await
        .expect("start");
    streamer.stop().await.expect("stop");
    let health = streamer.health();
    assert_eq!(
        health.get("mysql"),
        Some(&ultimate_stream::SourceHealth::Stopped),
        "{health:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_lag_mode_subscriber_learns_its_lag_on_an_idle_stream() {
    let (mut c, db) = fresh(&Server::MySql.url(), "idlelag").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{}/{db}", Server::MySql.url()))
        .start()
        .await
        .expect("start");
    let mut lagging = streamer
        .subscribe_with(
            &format!("{db}.t"),
            SubscribeOptions::default().capacity(16).lag_mode(),
        )
        .expect("subscribe");
    let values: Vec<String> = (0..1000).map(|id| format!("({id}, 'x')")).collect();
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES {}", values.join(",")))
        .await
        .expect("insert 1,000 rows");
    // Acknowledged, not just received: the rows are counted before they are published, and
    // a lag read while the publisher is halfway would count fewer missed.
    eventually("the 1,000 rows to be published and acknowledged", || {
        streamer.metrics().events_acknowledged >= 1000
    })
    .await;
    for _ in 0..16 {
        let got = tokio::time::timeout(WAIT, lagging.next())
            .await
            .expect("a queued event")
            .expect("open");
        assert!(matches!(got, Delivery::Event(_)), "{got:?}");
    }
    // No further row comes: the missed count must arrive anyway.
    let told = tokio::time::timeout(WAIT, lagging.next())
        .await
        .expect("the lag, without another row")
        .expect("open");
    assert_eq!(told, Delivery::Lagged(984));
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_delivery_latency_is_measured_precisely() {
    let (mut c, db) = fresh(&Server::MySql.url(), "latency").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{}/{db}", Server::MySql.url()))
        .start()
        .await
        .expect("start");
    let handled = Arc::new(AtomicUsize::new(0));
    {
        let handled = handled.clone();
        streamer
            .on(&format!("{db}.t"), move |_| {
                let handled = handled.clone();
                async move {
                    handled.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .expect("on");
    }
    for id in 0..20 {
        insert(&mut c, &db, id).await;
    }
    eventually("the callback", || handled.load(Ordering::SeqCst) == 20).await;
    eventually("every batch acknowledged", || {
        streamer.metrics().events_acknowledged >= 20
    })
    .await;
    let (p50, _p95, p99) = streamer.metrics().delivery;
    // The callback returns at once: below MariaDB's one-second timestamp resolution, which
    // a commit-time lag could not resolve. The median, so one batch stalled by a loaded
    // machine does not decide it.
    assert!(
        p50 < std::time::Duration::from_millis(900),
        "p50 {p50:?}, p99 {p99:?}"
    );
    let text = streamer.prometheus().expect("the Prometheus recorder");
    assert!(
        text.contains("# HELP ustream_delivery_seconds"),
        "the metric says what it measures: {text}"
    );
    assert!(!text.contains("ustream_commit_lag"), "{text}");
    streamer.stop().await.expect("stop");
}
