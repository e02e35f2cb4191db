//! The `Streamer` against MariaDB: a write by another client reaches a subscriber and
//! invalidates the cache; a killed server makes health go unhealthy, then reconnected, with no
//! event lost; a failing callback dead-letters while the others go on; a slow subscriber holds
//! the source back (or is told its lag); `stop()` checkpoints every acknowledged event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mysql_async::prelude::*;
use stream_core::{
    BatchConfig, CheckpointStore, Delivery, FileCheckpointStore, Row, SubscribeOptions, Value,
};
use stream_testkit::Server;
use ultimate_stream::cache::CacheConfig;
use ultimate_stream::edge::{Decision, RetryPolicy};
use ultimate_stream::heartbeat::Health;
use ultimate_stream::heartbeat::{HealthEventKind, HeartbeatConfig};
use ultimate_stream::{HandlerError, SourceHealth, Streamer};

use crate::support::{WAIT, conn_to, eventually, fresh, id_of, key, own_mariadb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_write_by_another_client_reaches_subscribers_and_the_cache() {
    let url = Server::MySql.url();
    let (mut other_client, db) = fresh(&url, "cache").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{url}/{db}"))
        .cache(CacheConfig::default())
        .start()
        .await
        .expect("start");
    let ns = format!("{db}.t");
    let mut orders = streamer.subscribe(&ns).expect("subscribe");
    assert_eq!(streamer.read(&ns, &key(1)).await.expect("read"), None);
    assert_eq!(streamer.read(&ns, &key(1)).await.expect("read"), None);
    let hits_before = streamer.metrics().cache.expect("cache").hits;
    assert!(hits_before >= 1, "the second read is served by the cache");

    other_client
        .query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 'from elsewhere')"))
        .await
        .expect("insert");
    let delivered = tokio::time::timeout(WAIT, orders.next())
        .await
        .expect("an event")
        .expect("subscription open");
    let Delivery::Event(event) = delivered else {
        panic!("{delivered:?}")
    };
    assert_eq!(id_of(&event), 1);
    // The event has refreshed the cache: the cached "no such row" is gone.
    let row = streamer
        .read(&ns, &key(1))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.get("v"), Some(&Value::String("from elsewhere".into())));

    // Read-your-own-writes through the streamer.
    let mine: Row = [("id", Value::Int(2)), ("v", Value::String("mine".into()))]
        .into_iter()
        .collect();
    streamer.write(&ns, &key(2), &mine).await.expect("write");
    let row = streamer
        .read(&ns, &key(2))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.get("v"), Some(&Value::String("mine".into())));
    let err = streamer
        .read("no_dot", &key(1))
        .await
        .expect_err("bad namespace");
    assert!(err.to_string().contains("no_dot"), "{err}");
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_killed_server_goes_unhealthy_then_reconnected_with_nothing_lost() {
    let mut server = own_mariadb("streamer-kill");
    let url = server.url();
    let (mut c, db) = fresh(&url, "kill").await;
    let heartbeat = HeartbeatConfig {
        interval: Duration::from_millis(100),
        probe_timeout: Duration::from_millis(500),
        ..HeartbeatConfig::default()
    };
    let streamer = Streamer::builder()
        .mysql(&format!("{url}/{db}"))
        .heartbeat(heartbeat)
        .start()
        .await
        .expect("start");
    let mut health = Box::pin(streamer.health_events());
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    {
        let seen = seen.clone();
        streamer
            .on(&format!("{db}.t"), move |event| {
                let seen = seen.clone();
                async move {
                    seen.lock().expect("lock").push(id_of(&event));
                    Ok(())
                }
            })
            .expect("on");
    }
    for id in 1..=5 {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'a')"))
            .await
            .expect("insert");
    }
    eventually("the first five rows", || {
        seen.lock().expect("lock").len() == 5
    })
    .await;
    drop(c);
    server.kill();
    let mut kinds = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = health.next().await {
            let unhealthy = matches!(event.kind, HealthEventKind::Unhealthy { .. });
            kinds.push(event.kind);
            if unhealthy {
                break;
            }
        }
    })
    .await
    .expect("health goes unhealthy");
    assert!(matches!(
        streamer.health().values().next(),
        Some(SourceHealth::Running(Health::Unhealthy { .. }))
    ));
    server.restart().expect("restart");
    let mut c = conn_to(&url).await;
    for id in 6..=10 {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'b')"))
            .await
            .expect("insert after restart");
    }
    tokio::time::timeout(WAIT, async {
        while let Some(event) = health.next().await {
            let reconnected = matches!(event.kind, HealthEventKind::Reconnected { .. });
            kinds.push(event.kind);
            if reconnected {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never reconnected; health events: {kinds:?}"));
    eventually("all ten rows", || seen.lock().expect("lock").len() >= 10).await;
    assert_eq!(*seen.lock().expect("lock"), (1..=10).collect::<Vec<i64>>());
    assert!(streamer.metrics().reconnects >= 1);
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_failing_callbacks_dead_letter_while_the_others_go_on() {
    let url = Server::MySql.url();
    let (mut c, db) = fresh(&url, "dlq").await;
    let policy = RetryPolicy::from_table([
        (
            stream_core::ErrorClass::Transient,
            Decision::Retry { max_attempts: 3 },
        ),
        (stream_core::ErrorClass::Definite, Decision::DeadLetter),
    ]);
    let streamer = Streamer::builder()
        .mysql(&format!("{url}/{db}"))
        .retry_policy(policy)
        .start()
        .await
        .expect("start");
    let ns = format!("{db}.t");
    let good: Arc<Mutex<Vec<i64>>> = Arc::default();
    {
        let good = good.clone();
        streamer
            .on(&ns, move |event| {
                let good = good.clone();
                async move {
                    good.lock().expect("lock").push(id_of(&event));
                    Ok(())
                }
            })
            .expect("good callback");
    }
    streamer
        .on(&ns, |event| async move {
            if id_of(&event) == 2 {
                panic!("row 2 is poison");
            }
            Ok(())
        })
        .expect("panicking callback");
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    {
        let attempts = attempts.clone();
        streamer
            .on(&ns, move |event| {
                let attempts = attempts.clone();
                async move {
                    if id_of(&event) == 3 {
                        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return Err(HandlerError::transient("downstream busy"));
                    }
                    Ok(())
                }
            })
            .expect("erroring callback");
    }
    c.query_drop(format!(
        "INSERT INTO `{db}`.t VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d')"
    ))
    .await
    .expect("insert");
    eventually("the good callback", || {
        good.lock().expect("lock").len() == 4
    })
    .await;
    assert_eq!(*good.lock().expect("lock"), vec![1, 2, 3, 4]);
    let queue = streamer.dead_letters();
    let mut letters = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            letters = queue.list().await.expect("list");
            if letters.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("two dead letters");
    letters.sort_by_key(|l| l.event["key"]["id"].as_i64());
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].event["key"]["id"], 2);
    assert!(
        letters[0].reason.contains("row 2 is poison"),
        "{}",
        letters[0].reason
    );
    assert_eq!(letters[0].attempts, 1, "a panic is not retried");
    assert_eq!(letters[1].event["key"]["id"], 3);
    assert!(letters[1].reason.contains("downstream busy"));
    assert_eq!(letters[1].attempts, 3);
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
    // The letter is put before the counter moves.
    eventually("both letters counted", || {
        streamer.metrics().dead_lettered == 2
    })
    .await;
    let text = streamer.prometheus().expect("the Prometheus recorder");
    assert!(text.contains("ustream_dead_letters_total"), "{text}");
    assert!(text.contains("ustream_delivery_seconds"), "{text}");
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_slow_subscriber_holds_the_source_back_or_is_told_its_lag() {
    let url = Server::MySql.url();
    let (mut c, db) = fresh(&url, "slow").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{url}/{db}"))
        .start()
        .await
        .expect("start");
    let ns = format!("{db}.t");
    let mut slow = streamer
        .subscribe_with(&ns, SubscribeOptions::default().capacity(2))
        .expect("slow subscriber");
    let mut lagging = streamer
        .subscribe_with(&ns, SubscribeOptions::default().capacity(2).lag_mode())
        .expect("lag-mode subscriber");
    let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let handled = handled.clone();
        streamer
            .on(&ns, move |_| {
                let handled = handled.clone();
                async move {
                    handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }
            })
            .expect("on");
    }
    for id in 0..50 {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'x')"))
            .await
            .expect("insert");
    }
    // While `slow` reads nothing, the source waits for room in its two slots; callbacks get
    // a batch only once every subscriber has it, so at most the first two rows.
    eventually("the source to wait for the slow subscriber", || {
        streamer.metrics().waiting_on_subscribers == 1
    })
    .await;
    let held = handled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        held <= 2,
        "the callback saw {held} events past a full subscriber"
    );
    let mut ids = Vec::new();
    while ids.len() < 50 {
        match tokio::time::timeout(WAIT, slow.next())
            .await
            .expect("event")
            .expect("open")
        {
            Delivery::Event(e) => ids.push(id_of(&e)),
            Delivery::Lagged(n) => panic!("backpressure mode never lags, got {n}"),
        }
    }
    assert_eq!(ids, (0..50).collect::<Vec<i64>>());
    eventually("the callback after the slow reader caught up", || {
        handled.load(std::sync::atomic::Ordering::SeqCst) == 50
    })
    .await;
    // The lag-mode subscriber was never waited for: it holds two rows and is told how many
    // it missed once it has read them, without another row coming.
    let (mut got, mut missed) = (0u64, 0u64);
    while got + missed < 50 {
        match tokio::time::timeout(WAIT, lagging.next())
            .await
            .expect("an event or the missed count")
            .expect("open")
        {
            Delivery::Event(_) => got += 1,
            Delivery::Lagged(n) => missed += n,
        }
    }
    assert_eq!(got + missed, 50, "every event delivered or counted");
    assert!(got <= 2, "a channel of two held {got} events");
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (50, 'x')"))
        .await
        .expect("insert");
    let next = tokio::time::timeout(WAIT, lagging.next())
        .await
        .expect("the next row")
        .expect("open");
    assert!(matches!(next, Delivery::Event(_)), "{next:?}");
    assert!(
        missed > 0,
        "the lag-mode subscriber was told what it missed"
    );
    streamer.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_stop_checkpoints_every_acknowledged_event() {
    let url = Server::MySql.url();
    let (mut c, db) = fresh(&url, "stop").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ns = format!("{db}.t");
    let start = |seen: Arc<Mutex<Vec<i64>>>| {
        let url = format!("{url}/{db}");
        let ns = ns.clone();
        let dir = dir.path().to_owned();
        async move {
            // On the builder: it sees the replay after the restart from the first event on.
            Streamer::builder()
                .mysql(&url)
                .checkpoints(FileCheckpointStore::new(dir))
                .on_batch(
                    &ns,
                    BatchConfig::max(7).within(Duration::from_millis(300)),
                    move |batch| {
                        let seen = seen.clone();
                        async move {
                            seen.lock()
                                .expect("lock")
                                .extend(batch.iter().map(|e| id_of(e)));
                            Ok(())
                        }
                    },
                )
                .start()
                .await
                .expect("start")
        }
    };
    let first: Arc<Mutex<Vec<i64>>> = Arc::default();
    let streamer = start(first.clone()).await;
    for id in 0..20 {
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'x')"))
            .await
            .expect("insert");
    }
    // Stop as soon as the rows were read: the last partial batch is still waiting for its
    // 300 ms; stop lets it finish and checkpoints it.
    eventually("some rows handed over", || {
        !first.lock().expect("lock").is_empty()
    })
    .await;
    streamer.stop().await.expect("stop");
    let handled = first.lock().expect("lock").clone();
    let saved = FileCheckpointStore::new(dir.path())
        .load("mysql")
        .await
        .expect("load")
        .expect("a checkpoint");
    assert!(!handled.is_empty());
    // Restarting from the checkpoint yields exactly what the first run did not acknowledge.
    let second: Arc<Mutex<Vec<i64>>> = Arc::default();
    let streamer = start(second.clone()).await;
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (100, 'after')"))
        .await
        .expect("insert");
    eventually("the row written after the restart", || {
        second.lock().expect("lock").contains(&100)
    })
    .await;
    streamer.stop().await.expect("stop");
    let mut all = handled.clone();
    all.extend(second.lock().expect("lock").iter().copied());
    let mut expected: Vec<i64> = (0..20).collect();
    expected.push(100);
    assert_eq!(
        all, expected,
        "nothing lost, nothing repeated (checkpoint {})",
        saved.position
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_streamer_pushed_events_reach_subscribers_once_per_id() {
    let url = Server::MySql.url();
    let (_c, db) = fresh(&url, "push").await;
    let streamer = Streamer::builder()
        .mysql(&format!("{url}/{db}"))
        .start()
        .await
        .expect("start");
    let mut notices = streamer.subscribe("app.notices").expect("subscribe");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let seen = seen.clone();
        streamer
            .on("app.*", move |event| {
                let seen = seen.clone();
                async move {
                    seen.lock().expect("lock").push(event.to_json());
                    Ok(())
                }
            })
            .expect("on");
    }
    let doc: Row = [("text", Value::String("hello".into()))]
        .into_iter()
        .collect();
    assert!(
        streamer
            .push("app.notices", "n-1", doc.clone())
            .await
            .expect("push")
    );
    assert!(
        !streamer
            .push("app.notices", "n-1", doc.clone())
            .await
            .expect("push again")
    );
    assert!(
        streamer
            .push("app.notices", "n-2", doc)
            .await
            .expect("push")
    );
    let stats = streamer.dedup_stats();
    assert_eq!((stats.received, stats.unique, stats.duplicate), (3, 2, 1));
    let mut positions = Vec::new();
    for expected in ["n-1", "n-2"] {
        let Delivery::Event(event) = tokio::time::timeout(WAIT, notices.next())
            .await
            .expect("an event")
            .expect("open")
        else {
            panic!("lagged")
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).expect("json");
        assert_eq!(json["source"], "app");
        assert_eq!(json["key"]["id"], expected);
        assert_eq!(json["after"]["text"], "hello");
        positions.push(event.position.clone());
    }
    assert!(
        positions[0].to_string().starts_with("app:"),
        "{}",
        positions[0]
    );
    assert_eq!(
        positions[0].compare(&positions[1]),
        Some(std::cmp::Ordering::Less),
        "pushed events are ordered"
    );
    // push waits for the callbacks: both were handled when it returned.
    assert_eq!(seen.lock().expect("lock").len(), 2);
    let err = streamer
        .push("no-dot", "x", Row::new())
        .await
        .expect_err("bad namespace");
    assert!(err.to_string().contains("no-dot"), "{err}");
    streamer.stop().await.expect("stop");
}
