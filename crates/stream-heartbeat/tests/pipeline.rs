//! A pipeline in miniature, against a simulated server that dies mid-stream: health goes
//! unhealthy, then reconnected, and resuming from the checkpoint loses no event.
//!
//! The real thing (a MariaDB server killed under a `Streamer`) is tested in the facade; this
//! pins down the protocol between a pipeline, its [`Monitor`] and [`reconnect`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use stream_core::{
    Batch, ChangeEvent, ErrorClass, Namespace, Op, Opened, Position, Source, SourceError,
    SourceEvent, SourceKind, StartFrom, Value,
};
use stream_heartbeat::{HealthEventKind, HeartbeatConfig, Monitor, Probe, reconnect};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The server: committed row ids 1..=n, whether it is up, and when it dies.
#[derive(Debug, Default)]
struct Server {
    committed: u64,
    up: bool,
    /// The server dies after a connection has streamed this many rows.
    die_after: Option<u64>,
}

/// The server's state; its subscribers wake up on every change (no polling).
type Shared = Arc<watch::Sender<Server>>;

fn position(id: u64) -> Position {
    Position::binlog("mysql-bin.000001", id, 0)
}

/// The row id a position of ours names.
fn id_of(position: &Position) -> u64 {
    let text = position.to_string();
    let offset = text
        .trim_end_matches("+0")
        .rsplit(':')
        .next()
        .expect("offset");
    offset.parse().expect("numeric offset")
}

fn change(id: u64) -> ChangeEvent {
    let id_value = i64::try_from(id).expect("small id");
    ChangeEvent {
        source: SourceKind::MySql,
        namespace: Namespace::new("shop", "orders"),
        op: Op::Insert,
        key: Some([("id", Value::Int(id_value))].into_iter().collect()),
        before: None,
        after: Some([("id", Value::Int(id_value))].into_iter().collect()),
        update: None,
        position: position(id),
        ts_ms: 0,
        txn: None,
    }
}

#[derive(Clone)]
struct FakeSource(Shared);

#[async_trait::async_trait]
impl Source for FakeSource {
    fn kind(&self) -> SourceKind {
        SourceKind::MySql
    }

    async fn open(
        &mut self,
        from: StartFrom,
        shutdown: CancellationToken,
    ) -> Result<Opened, SourceError> {
        if !self.0.borrow().up {
            return Err(SourceError::Connect {
                target: "127.0.0.1:3306".into(),
                reason: "connection refused".into(),
                class: ErrorClass::Transient,
            });
        }
        let after = match &from {
            StartFrom::Position(p) => id_of(p),
            _ => 0,
        };
        let server = Arc::clone(&self.0);
        let batches =
            futures::stream::unfold((after, 0u64, false), move |(last, streamed, ended)| {
                let server = Arc::clone(&server);
                let shutdown = shutdown.clone();
                async move {
                    if ended {
                        return None;
                    }
                    // Subscribed before looking, so a change made after the look wakes us.
                    let mut changes = server.subscribe();
                    loop {
                        let mut died = false;
                        server.send_if_modified(|s| {
                            died = s.die_after.is_some_and(|n| streamed >= n);
                            if died {
                                s.up = false;
                                s.die_after = None;
                            }
                            died
                        });
                        if died {
                            let lost = SourceError::ConnectionLost {
                                reason: "server has gone away".into(),
                            };
                            return Some((Err(lost), (last, streamed, true)));
                        }
                        if server.borrow().committed > last {
                            let id = last + 1;
                            let batch = Batch {
                                events: vec![SourceEvent::Change(change(id))],
                                position: position(id),
                                state: None,
                            };
                            return Some((Ok(batch), (id, streamed + 1, false)));
                        }
                        tokio::select! {
                            () = shutdown.cancelled() => return None,
                            changed = changes.changed() => changed.ok()?,
                        }
                    }
                }
            });
        Ok(Opened {
            start: position(after),
            batches: Box::pin(batches),
        })
    }
}

struct FakeProbe(Shared);

#[async_trait::async_trait]
impl Probe for FakeProbe {
    async fn ping(&self) -> Result<(), String> {
        if self.0.borrow().up {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }

    async fn server_position(&self) -> Result<Option<Position>, String> {
        let s = self.0.borrow();
        if s.up {
            Ok(Some(position(s.committed)))
        } else {
            Err("connection refused".into())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn killing_the_server_mid_stream_goes_unhealthy_then_reconnected_with_no_event_lost() {
    let server: Shared = Arc::new(watch::Sender::new(Server {
        committed: 100,
        up: true,
        die_after: Some(40),
    }));
    let config = HeartbeatConfig::default();
    let monitor = Arc::new(Monitor::new(
        "shop",
        config.clone(),
        Arc::new(FakeProbe(Arc::clone(&server))),
    ));
    let health = monitor.events();
    let shutdown = CancellationToken::new();
    let probes = monitor.spawn(shutdown.clone());

    // Once it died, the server stays down for 3 s (paused time), comes back and commits 50
    // more rows.
    let restarter = {
        let server = Arc::clone(&server);
        let mut state = server.subscribe();
        tokio::spawn(async move {
            state.wait_for(|s| !s.up).await.expect("server state");
            tokio::time::sleep(Duration::from_secs(3)).await;
            server.send_modify(|s| {
                s.up = true;
                s.committed += 50;
            });
        })
    };

    // The pipeline: deliver, checkpoint, and on a transient error reopen from the checkpoint.
    let source = FakeSource(Arc::clone(&server));
    let mut checkpoint: Option<Position> = None;
    let mut received = Vec::new();
    let open = |checkpoint: Option<Position>| {
        let source = source.clone();
        let shutdown = shutdown.clone();
        move |_attempt: u32| {
            let mut source = source.clone();
            let from = checkpoint
                .clone()
                .map_or(StartFrom::Earliest, StartFrom::Position);
            let shutdown = shutdown.clone();
            async move { source.open(from, shutdown).await }
        }
    };
    // The first connect goes without the monitor: it is no *re*connect.
    let mut opened = reconnect(&config, None, &shutdown, open(None))
        .await
        .expect("first open");
    while received.len() < 150 {
        match opened.batches.next().await {
            Some(Ok(batch)) => {
                for event in &batch.events {
                    if let SourceEvent::Change(change) = event {
                        received.push(id_of(&change.position));
                    }
                }
                monitor.delivered(&batch.position);
                checkpoint = Some(batch.position);
            }
            Some(Err(e)) if e.class() == ErrorClass::Transient => {
                monitor.connection_lost(e.to_string());
                opened = reconnect(&config, Some(&monitor), &shutdown, open(checkpoint.clone()))
                    .await
                    .expect("reconnected");
            }
            Some(Err(e)) => panic!("definite: {e}"),
            None => panic!("the stream ended early"),
        }
    }
    shutdown.cancel();
    probes.await.expect("probe loop");
    restarter.await.expect("restarter");

    // No event lost, none repeated, in order.
    assert_eq!(received, (1..=150).collect::<Vec<u64>>());

    drop(monitor);
    let kinds: Vec<HealthEventKind> = health.map(|e| e.kind).collect().await;
    let names: Vec<&str> = kinds.iter().map(HealthEventKind::as_str).collect();
    assert_eq!(
        names,
        ["connection_lost", "unhealthy", "reconnected", "healthy"],
        "{kinds:#?}"
    );
    let Some(HealthEventKind::Reconnected {
        attempts,
        resumed_from,
    }) = kinds.get(2)
    else {
        panic!("{kinds:#?}");
    };
    assert!(*attempts > 1, "the server was down for a while");
    assert_eq!(
        resumed_from.as_deref(),
        Some("binlog:mysql-bin.000001:40+0")
    );
}
