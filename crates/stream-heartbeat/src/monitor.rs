//! The per-source monitor: a probe loop, the health it concludes, and the events it emits.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use stream_core::Position;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::breaker::{BreakerState, CircuitBreaker};
use crate::config::HeartbeatConfig;
use crate::health::{Health, HealthEvent, HealthEventKind};
use stream_core::Probe;

/// Health events kept for subscribers that have not read them yet; beyond that a subscriber
/// lags (see [`HealthEvents`]). Health changes are rare, so this is plenty.
pub const EVENT_CAPACITY: usize = 64;

/// Watches one source: probes its server every `interval`, keeps its [`Health`], and tells
/// subscribers when it changes.
///
/// The pipeline reports what it delivered ([`delivered`](Self::delivered)) and what happened
/// to its connection ([`connection_lost`](Self::connection_lost),
/// [`reconnected`](Self::reconnected)); the probe loop ([`spawn`](Self::spawn)) does the rest.
///
/// Each probe:
/// 1. asks the [`CircuitBreaker`]; while it is open the server is left alone and health is
///    `Unhealthy` ("circuit breaker open");
/// 2. pings, bounded by `probe_timeout`: a failure or timeout is a breaker failure and makes
///    health `Unhealthy`;
/// 3. after a successful ping, reads the server position (bounded by `probe_timeout` too): if
///    it differs from the previous probe's while nothing was delivered since, the stream is
///    *behind*; behind for `stall_after` with still nothing delivered makes health `Degraded`.
///    A server position that cannot be read also makes it `Degraded`;
/// 4. otherwise health is `Healthy`.
///
/// While the connection is lost (between `connection_lost` and `reconnected`), health stays
/// `Unhealthy` whatever the pings say. Health starts `Healthy`.
///
/// Events are emitted only when health changes kind (`Healthy` ↔ `Degraded` ↔ `Unhealthy`; a
/// new reason for the same kind updates [`health`](Self::health) silently), plus one
/// `ConnectionLost` / `Reconnected` per call of those methods. `connection_lost` emits
/// `ConnectionLost` then (on a change) `Unhealthy`; `reconnected` emits `Reconnected` then (on a
/// change) `Healthy`.
pub struct Monitor {
    name: String,
    config: HeartbeatConfig,
    probe: Arc<dyn Probe>,
    breaker: CircuitBreaker,
    state: Mutex<State>,
    events: broadcast::Sender<HealthEvent>,
}

#[derive(Debug)]
struct State {
    health: Health,
    /// Why the connection was lost, until reconnected.
    lost: Option<String>,
    delivered: Option<Position>,
    /// `delivered` changed since the last probe.
    delivered_since_probe: bool,
    /// The server position at the last probe.
    server: Option<Position>,
    /// Since when the server has moved on while nothing was delivered.
    behind_since: Option<Instant>,
    /// The last ping failure, for the "breaker open" reason.
    last_failure: Option<String>,
}

/// What one probe found out.
enum Observed {
    BreakerOpen,
    Down(String),
    Up(Result<Option<Position>, String>),
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("breaker", &self.breaker)
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor for the source called `name` (the `source` of its events). Nothing runs until
    /// [`spawn`](Self::spawn) (or [`probe_once`](Self::probe_once)). Check the configuration
    /// with [`HeartbeatConfig::validate`] first; out-of-range values are clamped, not rejected.
    pub fn new(name: impl Into<String>, config: HeartbeatConfig, probe: Arc<dyn Probe>) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            name: name.into(),
            breaker: CircuitBreaker::from_config(&config),
            config,
            probe,
            state: Mutex::new(State {
                health: Health::Healthy,
                lost: None,
                delivered: None,
                delivered_since_probe: false,
                server: None,
                behind_since: None,
                last_failure: None,
            }),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain values, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &HeartbeatConfig {
        &self.config
    }

    /// The circuit breaker fed by pings and by [`reconnect`](crate::reconnect()) attempts.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.lock().health.clone()
    }

    /// The last position reported by [`delivered`](Self::delivered).
    pub fn last_delivered(&self) -> Option<Position> {
        self.lock().delivered.clone()
    }

    /// The pipeline delivered everything up to `position`. Call it with every batch's
    /// position, including batches without events (heartbeats, filtered-out changes): a stream
    /// whose position stops moving while the server's moves is reported as stalled.
    pub fn delivered(&self, position: &Position) {
        let mut state = self.lock();
        if state.delivered.as_ref() != Some(position) {
            state.delivered = Some(position.clone());
            state.delivered_since_probe = true;
            state.behind_since = None;
        }
    }

    /// The stream's connection dropped (`reason`: what happened). Emits `ConnectionLost`, and
    /// health becomes `Unhealthy` until [`reconnected`](Self::reconnected).
    pub fn connection_lost(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(source = %self.name, %reason, "connection lost");
        let mut state = self.lock();
        state.lost = Some(reason.clone());
        self.emit(HealthEventKind::ConnectionLost {
            reason: reason.clone(),
        });
        self.set_health(
            &mut state,
            Health::Unhealthy {
                reason: lost_reason(&reason),
            },
        );
    }

    /// The stream is connected again after `attempts` attempts, resuming from `resumed_from`.
    /// Closes the breaker, emits `Reconnected`, and health becomes `Healthy` (until the next
    /// probe says otherwise). Stall detection starts afresh.
    pub fn reconnected(&self, attempts: u32, resumed_from: Option<&Position>) {
        let resumed_from = resumed_from.map(ToString::to_string);
        tracing::info!(source = %self.name, attempts, resumed_from = ?resumed_from, "reconnected");
        self.breaker.record_success();
        let mut state = self.lock();
        state.lost = None;
        state.server = None;
        state.behind_since = None;
        self.emit(HealthEventKind::Reconnected {
            attempts,
            resumed_from,
        });
        self.set_health(&mut state, Health::Healthy);
    }

    /// Health events from now on (read [`health`](Self::health) for the current state). The
    /// stream ends when the monitor is dropped.
    ///
    /// A subscriber that falls more than [`EVENT_CAPACITY`] events behind skips the oldest
    /// ones; [`HealthEvents::missed`] counts them (and a warning is logged). For the lag itself
    /// as an error, use [`subscribe`](Self::subscribe).
    pub fn events(&self) -> HealthEvents {
        HealthEvents::new(self.events.subscribe())
    }

    /// The raw broadcast receiver behind [`events`](Self::events): `recv` returns
    /// `Err(RecvError::Lagged(n))` when `n` events were missed.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// Starts the probe loop on the current Tokio runtime: a probe at once, then one every
    /// `interval` (a slow probe delays the next rather than bunching them up). The task ends
    /// soon after `shutdown` is cancelled.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let monitor = Arc::clone(self);
        tokio::spawn(async move { monitor.run(shutdown).await })
    }

    /// The probe loop [`spawn`](Self::spawn) runs, for callers that drive it themselves.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.config.interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    self.breaker.release_trial();
                    return;
                }
                _ = self.probe_once() => {}
            }
        }
    }

    /// Runs one probe now and returns the health it concluded (emitting an event if it
    /// changed).
    pub async fn probe_once(&self) -> Health {
        let observed = self.observe().await;
        let now = Instant::now();
        let mut state = self.lock();
        let delivered_moved = std::mem::take(&mut state.delivered_since_probe);
        let found = match observed {
            Observed::BreakerOpen => Health::Unhealthy {
                reason: match &state.last_failure {
                    Some(last) => format!("circuit breaker open; last failure: {last}"),
                    None => "circuit breaker open".to_owned(),
                },
            },
            Observed::Down(reason) => {
                state.last_failure = Some(reason.clone());
                let reason = match self.breaker.state() {
                    BreakerState::Open => format!("{reason}; circuit breaker open"),
                    BreakerState::Closed | BreakerState::HalfOpen => reason,
                };
                Health::Unhealthy { reason }
            }
            Observed::Up(Err(reason)) => Health::Degraded { reason },
            Observed::Up(Ok(None)) => {
                state.server = None;
                state.behind_since = None;
                Health::Healthy
            }
            Observed::Up(Ok(Some(server))) => {
                let moved = state.server.as_ref().is_some_and(|prev| *prev != server);
                if moved && !delivered_moved && state.behind_since.is_none() {
                    state.behind_since = Some(now);
                }
                state.server = Some(server);
                match state.behind_since {
                    Some(since) if now.duration_since(since) >= self.config.stall_after => {
                        Health::Degraded {
                            reason: format!(
                                "stalled: the server moved on {:?} ago but nothing was delivered since (last delivered: {})",
                                now.duration_since(since),
                                state
                                    .delivered
                                    .as_ref()
                                    .map_or_else(|| "nothing".to_owned(), ToString::to_string),
                            ),
                        }
                    }
                    _ => Health::Healthy,
                }
            }
        };
        let health = match &state.lost {
            Some(lost) => Health::Unhealthy {
                reason: lost_reason(lost),
            },
            None => found,
        };
        self.set_health(&mut state, health.clone());
        health
    }

    /// Asks the breaker, pings, and reads the server position; feeds the breaker.
    async fn observe(&self) -> Observed {
        if !self.breaker.allow() {
            return Observed::BreakerOpen;
        }
        let limit = self.config.probe_timeout;
        match tokio::time::timeout(limit, self.probe.ping()).await {
            Err(_) => {
                self.breaker.record_failure();
                Observed::Down(format!("ping timed out after {limit:?}"))
            }
            Ok(Err(e)) => {
                self.breaker.record_failure();
                Observed::Down(format!("ping failed: {e}"))
            }
            Ok(Ok(())) => {
                self.breaker.record_success();
                Observed::Up(
                    match tokio::time::timeout(limit, self.probe.server_position()).await {
                        Err(_) => Err(format!(
                            "reading the server position timed out after {limit:?}"
                        )),
                        Ok(Err(e)) => Err(format!("cannot read the server position: {e}")),
                        Ok(Ok(position)) => Ok(position),
                    },
                )
            }
        }
    }

    /// Stores `health`; emits an event when its kind changed.
    fn set_health(&self, state: &mut State, health: Health) {
        if !state.health.same_kind(&health) {
            match &health {
                Health::Healthy => tracing::info!(source = %self.name, "healthy"),
                Health::Degraded { reason } => {
                    tracing::warn!(source = %self.name, %reason, "degraded");
                }
                Health::Unhealthy { reason } => {
                    tracing::warn!(source = %self.name, %reason, "unhealthy");
                }
            }
            self.emit(health.to_event_kind());
        }
        state.health = health;
    }

    fn emit(&self, kind: HealthEventKind) {
        let at_ms = stream_core::now_ms();
        // No subscriber is fine: the event is simply not wanted.
        let _ = self.events.send(HealthEvent {
            source: self.name.clone(),
            at_ms,
            kind,
        });
    }
}

/// The stream of a monitor's [`HealthEvent`]s, from [`Monitor::events`]. Ends when the
/// monitor is dropped; skips (and counts) events it lagged too far behind to receive.
pub struct HealthEvents {
    inner: Pin<Box<dyn Stream<Item = HealthEvent> + Send>>,
    missed: Arc<AtomicU64>,
}

impl HealthEvents {
    fn new(receiver: broadcast::Receiver<HealthEvent>) -> Self {
        let missed = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&missed);
        let inner = futures::stream::unfold(receiver, move |mut receiver| {
            let counter = Arc::clone(&counter);
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => return Some((event, receiver)),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            counter.fetch_add(n, Ordering::Relaxed);
                            tracing::warn!(missed = n, "health event subscriber lagged");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Self {
            inner: Box::pin(inner),
            missed,
        }
    }

    /// Events skipped so far because this subscriber lagged behind.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for HealthEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthEvents")
            .field("missed", &self.missed())
            .finish_non_exhaustive()
    }
}

impl Stream for HealthEvents {
    type Item = HealthEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HealthEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// `connection lost: <reason>`, once: a source's own error often already says so.
fn lost_reason(reason: &str) -> String {
    if reason.starts_with("connection lost") {
        reason.to_owned()
    } else {
        format!("connection lost: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeProbe, pos};
    use futures::StreamExt;
    use tokio::sync::broadcast::error::TryRecvError;

    fn monitor(config: HeartbeatConfig) -> (Arc<Monitor>, Arc<FakeProbe>) {
        let probe = Arc::new(FakeProbe::new());
        let monitor = Arc::new(Monitor::new("shop", config, probe.clone()));
        (monitor, probe)
    }

    /// Every event received so far, without waiting.
    fn drain(rx: &mut broadcast::Receiver<HealthEvent>) -> Vec<HealthEventKind> {
        let mut kinds = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(event) => {
                    assert_eq!(event.source, "shop");
                    assert!(event.at_ms > 1_600_000_000_000, "wall-clock ms");
                    kinds.push(event.kind);
                }
                Err(TryRecvError::Empty) => return kinds,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn names(kinds: &[HealthEventKind]) -> Vec<&'static str> {
        kinds.iter().map(HealthEventKind::as_str).collect()
    }

    async fn sleep_ms(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn failing_pings_make_it_unhealthy_then_healthy_again_with_one_event_each() {
        let (monitor, probe) = monitor(HeartbeatConfig::default());
        let mut rx = monitor.subscribe();
        let shutdown = CancellationToken::new();
        let task = monitor.spawn(shutdown.clone());

        // Probes at t = 0, 1, 2, … s.
        sleep_ms(500).await;
        assert_eq!(probe.pings(), 1);
        assert_eq!(monitor.health(), Health::Healthy);
        assert!(drain(&mut rx).is_empty(), "starting healthy is no change");

        probe.set_up(false);
        sleep_ms(1_000).await; // t = 1.5: one failed ping
        assert_eq!(
            monitor.health(),
            Health::Unhealthy {
                reason: "ping failed: connection refused".into()
            }
        );
        assert_eq!(
            drain(&mut rx),
            [HealthEventKind::Unhealthy {
                reason: "ping failed: connection refused".into()
            }]
        );

        sleep_ms(2_000).await; // t = 3.5: three failures open the breaker until t = 8
        assert_eq!(probe.pings(), 4);
        assert_eq!(monitor.breaker().state(), BreakerState::Open);
        assert_eq!(
            monitor.health().reason(),
            Some("ping failed: connection refused; circuit breaker open")
        );

        probe.set_up(true);
        sleep_ms(4_000).await; // t = 7.5: still open, the server is left alone
        assert_eq!(probe.pings(), 4, "no ping while the breaker is open");
        assert_eq!(
            monitor.health().reason(),
            Some("circuit breaker open; last failure: ping failed: connection refused")
        );
        assert!(drain(&mut rx).is_empty(), "a new reason is no new event");

        sleep_ms(1_000).await; // t = 8.5: the half-open trial succeeded
        assert_eq!(probe.pings(), 5);
        assert_eq!(monitor.breaker().state(), BreakerState::Closed);
        assert_eq!(monitor.health(), Health::Healthy);
        assert_eq!(drain(&mut rx), [HealthEventKind::Healthy]);

        sleep_ms(5_000).await;
        assert_eq!(probe.pings(), 10);
        assert!(drain(&mut rx).is_empty(), "no spam while healthy");

        shutdown.cancel();
        task.await.expect("probe loop ends on shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_that_hangs_times_out() {
        let (monitor, probe) = monitor(HeartbeatConfig::default());
        probe.set_hang(true);
        let started = Instant::now();
        let health = monitor.probe_once().await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(
            health,
            Health::Unhealthy {
                reason: "ping timed out after 2s".into()
            }
        );
        assert_eq!(monitor.breaker().consecutive_failures(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_moving_on_while_delivery_stands_still_is_degraded_after_stall_after() {
        let (monitor, probe) = monitor(HeartbeatConfig::default());
        let mut rx = monitor.subscribe();
        let step = |secs| tokio::time::advance(Duration::from_secs(secs));
        monitor.delivered(&pos(4));
        probe.set_server_offset(100);
        assert_eq!(monitor.probe_once().await, Health::Healthy);

        probe.set_server_offset(200); // the server moves on; nothing is delivered
        step(1).await;
        assert_eq!(monitor.probe_once().await, Health::Healthy);
        step(29).await;
        assert_eq!(monitor.probe_once().await, Health::Healthy, "29 s behind");
        step(1).await;
        let health = monitor.probe_once().await;
        assert_eq!(health.as_str(), "degraded", "{health}");
        assert_eq!(
            health.reason(),
            Some(
                "stalled: the server moved on 30s ago but nothing was delivered since (last delivered: binlog:mysql-bin.000001:4+0)"
            )
        );
        step(1).await;
        assert_eq!(monitor.probe_once().await.as_str(), "degraded");

        monitor.delivered(&pos(200));
        step(1).await;
        assert_eq!(monitor.probe_once().await, Health::Healthy);
        assert_eq!(names(&drain(&mut rx)), ["degraded", "healthy"]);
        assert_eq!(monitor.last_delivered(), Some(pos(200)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_server_or_one_we_keep_up_with_is_no_stall() {
        let (monitor, probe) = monitor(HeartbeatConfig::default());
        let mut rx = monitor.subscribe();
        probe.set_server_offset(100);
        // Quiet: neither position moves for minutes.
        for _ in 0..120 {
            assert_eq!(monitor.probe_once().await, Health::Healthy);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // A write delivered before the next probe, then quiet again.
        probe.set_server_offset(200);
        monitor.delivered(&pos(200));
        for _ in 0..120 {
            assert_eq!(monitor.probe_once().await, Health::Healthy);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // Busy: both move at every probe.
        for offset in 300..400 {
            probe.set_server_offset(offset);
            monitor.delivered(&pos(offset - 1));
            assert_eq!(monitor.probe_once().await, Health::Healthy);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(drain(&mut rx).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_server_position_is_degraded() {
        let (monitor, probe) = monitor(HeartbeatConfig::default());
        probe.set_server_error("access denied for SHOW MASTER STATUS");
        assert_eq!(
            monitor.probe_once().await,
            Health::Degraded {
                reason: "cannot read the server position: access denied for SHOW MASTER STATUS"
                    .into()
            }
        );
        assert_eq!(
            monitor.breaker().consecutive_failures(),
            0,
            "the ping worked"
        );
    }

    #[test]
    fn a_lost_connection_is_said_once() {
        assert_eq!(
            lost_reason("reset by peer"),
            "connection lost: reset by peer"
        );
        assert_eq!(
            lost_reason("connection lost: reset by peer"),
            "connection lost: reset by peer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_stays_unhealthy_until_reconnected() {
        let (monitor, _probe) = monitor(HeartbeatConfig::default());
        let mut rx = monitor.subscribe();
        monitor.connection_lost("server has gone away");
        assert_eq!(
            drain(&mut rx),
            [
                HealthEventKind::ConnectionLost {
                    reason: "server has gone away".into()
                },
                HealthEventKind::Unhealthy {
                    reason: "connection lost: server has gone away".into()
                },
            ]
        );
        // Pings answer, but the stream is still down.
        assert_eq!(
            monitor.probe_once().await.reason(),
            Some("connection lost: server has gone away")
        );
        assert!(drain(&mut rx).is_empty());

        monitor.reconnected(3, Some(&pos(4)));
        assert_eq!(monitor.health(), Health::Healthy);
        assert_eq!(
            drain(&mut rx),
            [
                HealthEventKind::Reconnected {
                    attempts: 3,
                    resumed_from: Some("binlog:mysql-bin.000001:4+0".into())
                },
                HealthEventKind::Healthy,
            ]
        );
        assert_eq!(monitor.probe_once().await, Health::Healthy);
        assert!(drain(&mut rx).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lagging_subscriber_skips_and_counts_what_it_missed() {
        let (monitor, _probe) = monitor(HeartbeatConfig::default());
        let mut events = monitor.events();
        for i in 0..100 {
            monitor.connection_lost(format!("drop {i}"));
        }
        drop(monitor);
        // 100 ConnectionLost + 1 Unhealthy; the channel keeps the last 64.
        let received: Vec<HealthEvent> = (&mut events).collect().await;
        assert_eq!(received.len(), EVENT_CAPACITY);
        assert_eq!(events.missed(), 101 - EVENT_CAPACITY as u64);
        assert_eq!(
            received.last().map(|e| e.kind.as_str()),
            Some("connection_lost")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_loop_ends_on_shutdown_even_mid_ping() {
        let (monitor, probe) = monitor(HeartbeatConfig::default());
        probe.set_hang(true);
        let shutdown = CancellationToken::new();
        let task = monitor.spawn(shutdown.clone());
        probe.wait_for_pings(1).await;
        shutdown.cancel();
        // Before the hanging ping times out (2 s of paused time, which pass at once if the
        // loop waits for it).
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the probe loop ends mid-ping")
            .expect("ends");
        assert_eq!(probe.pings(), 1, "the hanging ping was the only one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_interval_is_clamped_rather_than_a_panic() {
        let (monitor, probe) = monitor(HeartbeatConfig {
            interval: Duration::ZERO,
            ..HeartbeatConfig::default()
        });
        let shutdown = CancellationToken::new();
        let task = monitor.spawn(shutdown.clone());
        sleep_ms(10).await;
        assert!(probe.pings() >= 10);
        shutdown.cancel();
        task.await.expect("ends");
    }
}
