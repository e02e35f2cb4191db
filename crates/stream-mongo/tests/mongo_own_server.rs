//! What the shared server must not suffer, on a stand-in of each test's own: history lost to
//! oplog pruning, and a server restart in mid-stream. (Against a real replica set these need a
//! deployment of their own too: they start the stand-in, whatever STREAM_TEST_MONGO_URL says.)

use std::time::Duration;

use futures::StreamExt;
use mongodb::bson::{Document, doc};
use stream_core::{
    BatchStream, CancellationToken, ChangeEvent, Source, SourceError, SourceEvent, StartFrom,
};
use stream_mongo::{MongoConfig, MongoPollingSource, MongoSource};
use stream_testkit::secantus::Secantus;

use crate::support::logs::Logs;

const WAIT: Duration = Duration::from_secs(60);

async fn open(url: &str, from: StartFrom) -> Result<BatchStream, SourceError> {
    let mut config = MongoConfig::from_url(url).expect("url");
    config.filter = stream_core::NamespaceFilter::parse("shop.orders", "").expect("filter");
    let opened = MongoSource::new(config)
        .open(from, CancellationToken::new())
        .await?;
    Ok(opened.batches)
}

async fn changes(batches: &mut BatchStream, n: usize) -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while out.len() < n {
            let batch = batches.next().await.expect("stream ended").expect("batch");
            out.extend(batch.events.into_iter().filter_map(|e| match e {
                SourceEvent::Change(c) => Some(c),
                _ => None,
            }));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} changes arrived", out.len()));
    out
}

fn ids(events: &[ChangeEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let json: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
            json["key"]["_id"].to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_history_lost_is_a_final_typed_error_naming_the_oldest_position() {
    let server = Secantus::start(&["--oplog-max-entries", "20"]).expect("own stand-in");
    let client = mongodb::Client::with_uri_str(server.url())
        .await
        .expect("client");
    let orders = client.database("shop").collection::<Document>("orders");
    orders.insert_one(doc! {"_id": 0}).await.expect("insert");
    let mut batches = open(&server.url(), StartFrom::Latest).await.expect("open");
    orders.insert_one(doc! {"_id": 1}).await.expect("insert");
    let seen = changes(&mut batches, 1).await;
    drop(batches);
    for i in 2..80 {
        orders.insert_one(doc! {"_id": i}).await.expect("insert");
    }
    client
        .database("admin")
        .run_command(doc! {"secantusAdmin.pruneOplog": 1})
        .await
        .expect("prune the oplog");
    let started = std::time::Instant::now();
    let err = match open(&server.url(), StartFrom::Position(seen[0].position.clone())).await {
        Err(e) => e,
        Ok(mut batches) => tokio::time::timeout(WAIT, batches.next())
            .await
            .expect("an answer, not a retry loop")
            .expect("an item")
            .expect_err("history is gone"),
    };
    let SourceError::PositionPurged { requested, oldest } = &err else {
        panic!("expected PositionPurged, got {err:?}");
    };
    assert_eq!(requested, &seen[0].position.to_string());
    assert!(oldest.starts_with("mongodb-time:"), "{oldest}");
    assert!(err.to_string().contains("re-snapshot"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no retry loop on history loss"
    );
    // The oldest position named is one the stream can start from.
    let mut from_oldest = open(
        &server.url(),
        StartFrom::Position(oldest.parse().expect("position")),
    )
    .await
    .expect("open at the oldest position");
    assert!(!changes(&mut from_oldest, 1).await.is_empty());
}

// A current-thread runtime: the driver's monitors log on this thread, into the capture.
#[tokio::test]
async fn mongo_server_crash_and_restart_mid_stream_resumes_with_nothing_lost_or_repeated_and_is_logged()
 {
    let logs = Logs::capture();
    // Acknowledged writes must survive the crash (mongod: journaled writes; the stand-in:
    // --sync-on-commit), or the oplog the stream resumes in is not the one it read.
    let mut server = Secantus::start(&["--sync-on-commit"]).expect("own stand-in");
    let url = server.url();
    let orders =
        |client: &mongodb::Client| client.database("shop").collection::<Document>("orders");
    let client = mongodb::Client::with_uri_str(&url).await.expect("client");
    orders(&client)
        .insert_one(doc! {"_id": 0})
        .await
        .expect("insert");
    let mut batches = open(&url, StartFrom::Latest).await.expect("open");
    for i in 1..=3 {
        orders(&client)
            .insert_one(doc! {"_id": i})
            .await
            .expect("insert");
    }
    assert_eq!(ids(&changes(&mut batches, 3).await), ["1", "2", "3"]);
    // A crash, not a clean shutdown: the resume token must survive in the server's oplog.
    server.kill();
    server.start_again().expect("restart");
    let client = mongodb::Client::with_uri_str(&url)
        .await
        .expect("client after restart");
    for i in 4..=6 {
        orders(&client)
            .insert_one(doc! {"_id": i})
            .await
            .expect("insert after restart");
    }
    assert_eq!(ids(&changes(&mut batches, 3).await), ["4", "5", "6"]);
    // The driver resumed the stream by itself; the log still shows the server went away.
    let logged = logs.text();
    let server = url
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .expect("host");
    let lost = logged.lines().position(|l| {
        l.contains("WARN") && l.contains("MongoDB server lost") && l.contains(server)
    });
    let back = logged
        .lines()
        .position(|l| l.contains("WARN") && l.contains("MongoDB server answers again"));
    assert!(
        matches!((lost, back), (Some(l), Some(b)) if l < b),
        "a warning that {server} was lost, then a line that it answers again: {logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_standalone_server_is_refused_naming_what_change_streams_need() {
    let server = Secantus::start(&["--standalone"]).expect("own stand-in");
    let err = open(&server.url(), StartFrom::Latest)
        .await
        .err()
        .expect("a standalone server has no change streams");
    let SourceError::Prerequisite {
        setting, actual, ..
    } = &err
    else {
        panic!("expected a prerequisite error, got {err:?}");
    };
    assert_eq!(setting, "replication");
    assert!(
        actual.contains("standalone") && actual.contains("MongoPollingSource"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_lost_server_is_retried_for_reconnect_for_then_ends_both_sources_with_an_error() {
    let mut server = Secantus::start(&[]).expect("own stand-in");
    let url = server.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut config =
        MongoConfig::from_url(&format!("{url}{sep}serverSelectionTimeoutMS=300")).expect("url");
    config.filter = stream_core::NamespaceFilter::parse("shop.orders", "").expect("filter");
    config.reconnect_for = Duration::from_secs(2);
    let streamed = MongoSource::new(config.clone())
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("open the change stream");
    let polled = MongoPollingSource::new(config, "v")
        .interval(Duration::from_millis(100))
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("open the poller");
    // Before the kill: the sources' window starts at their first failure, after it.
    let killed = std::time::Instant::now();
    server.kill();
    for (what, mut batches) in [("stream", streamed.batches), ("poller", polled.batches)] {
        let err = tokio::time::timeout(WAIT, async {
            loop {
                match batches.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return e,
                    None => panic!("{what}: the stream ended without an error"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: still retrying after {WAIT:?}"));
        assert_eq!(
            err.class(),
            stream_core::ErrorClass::Transient,
            "{what}: {err}"
        );
        assert!(
            killed.elapsed() >= Duration::from_secs(2),
            "{what} gave up before reconnect_for: {err}"
        );
    }
}

/// The server's open connection count once it is `expected`, or after 15 s, whichever first
/// (the server counts a closed socket a moment after the client closed it).
async fn settled_connections(admin: &mongodb::Database, expected: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = open_connections(admin).await;
        if now == expected || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connections the server has open now, by `serverStatus`.
async fn open_connections(admin: &mongodb::Database) -> i64 {
    let status = admin
        .run_command(doc! {"serverStatus": 1})
        .await
        .expect("serverStatus");
    let current = status
        .get_document("connections")
        .expect("connections")
        .get("current")
        .expect("current");
    match current {
        mongodb::bson::Bson::Int32(n) => i64::from(*n),
        mongodb::bson::Bson::Int64(n) => *n,
        other => panic!("connections.current is {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_streams_end_after_shutdown_only_once_their_connections_are_closed() {
    let server = Secantus::start(&[]).expect("own stand-in");
    let url = server.url();
    let observer = mongodb::Client::with_uri_str(&url).await.expect("client");
    let admin = observer.database("admin");
    observer
        .database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! {"_id": 1, "v": 1})
        .await
        .expect("insert");
    let before = open_connections(&admin).await;
    let mut config = MongoConfig::from_url(&url).expect("url");
    config.filter = stream_core::NamespaceFilter::parse("shop.orders", "").expect("filter");
    for (what, from) in [
        ("stream", StartFrom::Latest),
        ("snapshot", StartFrom::Snapshot),
    ] {
        let shutdown = CancellationToken::new();
        let mut source = MongoSource::new(config.clone());
        let mut batches = source
            .open(from, shutdown.clone())
            .await
            .expect("open")
            .batches;
        assert!(open_connections(&admin).await > before, "{what} connected");
        shutdown.cancel();
        let ended = tokio::time::timeout(WAIT, async { while batches.next().await.is_some() {} });
        ended.await.expect("the stream ends after shutdown");
        // The client has closed its sockets when the stream ends; the server counts a closed
        // socket once its own reader sees the end, a moment later.
        assert_eq!(
            settled_connections(&admin, before).await,
            before,
            "{what} left connections open"
        );
    }
    let shutdown = CancellationToken::new();
    let mut poller = MongoPollingSource::new(config, "v");
    let mut batches = poller
        .open(StartFrom::Latest, shutdown.clone())
        .await
        .expect("open")
        .batches;
    shutdown.cancel();
    let ended = tokio::time::timeout(WAIT, async { while batches.next().await.is_some() {} });
    ended
        .await
        .expect("the poller's stream ends after shutdown");
    assert_eq!(
        settled_connections(&admin, before).await,
        before,
        "the poller left connections open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_a_second_outage_long_after_a_recovered_one_gets_a_whole_reconnect_window() {
    // Nothing is delivered after the first outage (an idle deployment); its reconnect window
    // must still end once the server answers again, or a loss long after gives up at once.
    let mut server = Secantus::start(&[]).expect("own stand-in");
    let url = server.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut config =
        MongoConfig::from_url(&format!("{url}{sep}serverSelectionTimeoutMS=300")).expect("url");
    config.filter = stream_core::NamespaceFilter::parse("shop.orders", "").expect("filter");
    let window = Duration::from_secs(5);
    config.reconnect_for = window;
    let mut batches = MongoSource::new(config)
        .open(StartFrom::Latest, CancellationToken::new())
        .await
        .expect("open the change stream")
        .batches;
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(item) = batches.next().await {
            if let Err(e) = item {
                let _ = tx.send((std::time::Instant::now(), e));
                return;
            }
        }
    });
    server.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.start_again().expect("start again");
    // Idle, well past the first outage's window.
    tokio::time::sleep(window + Duration::from_secs(5)).await;
    assert!(
        errors.try_recv().is_err(),
        "gave up during the first outage"
    );
    let second = std::time::Instant::now();
    server.kill();
    let (at, err) = tokio::time::timeout(WAIT, errors.recv())
        .await
        .expect("still reconnecting after the second outage's window")
        .expect("an error");
    assert!(
        at - second >= window,
        "gave up {:?} into the second outage, before its {window:?} window: {err}",
        at - second
    );
    let _ = reader.await;
}
