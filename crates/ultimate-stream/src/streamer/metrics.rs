//! Counters and delivery latency, kept here for [`super::Streamer::metrics`] and recorded
//! through the `metrics` crate for Prometheus.
//!
//! Latency is measured with the monotonic clock, from the moment the pipeline got a batch
//! from its source to the moment every callback and sink had acknowledged it. It is not the
//! commit-to-delivery lag: MySQL and MariaDB binlog timestamps have a resolution of one
//! second, so a lag computed from them would print 500 ms for a delivery that took 5 ms.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (µs) of the latency histogram's buckets; the last catches everything above.
const BUCKETS_US: [u64; 18] = [
    100,
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    u64::MAX,
];

/// A point-in-time copy of the streamer's metrics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Change events read from the sources.
    pub events_received: u64,
    /// Events callbacks and sinks handled successfully (each counts once per consumer).
    pub events_delivered: u64,
    /// Events whose batch every callback and sink acknowledged (delivered, dead-lettered or
    /// skipped), so their source may checkpoint past them.
    pub events_acknowledged: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Reconnections started after a lost connection.
    pub reconnects: u64,
    /// Delivery latency percentiles p50, p95, p99: from the pipeline getting a batch from its
    /// source to every callback and sink acknowledging it, by the monotonic clock. Each is the
    /// upper bound of its histogram bucket (100 µs, 250 µs, 500 µs, 1 ms, 2 ms, 5 ms, … 30 s;
    /// [`Duration::MAX`] above). Not measured from commit timestamps: see the module docs.
    pub delivery: (Duration, Duration, Duration),
    /// Publishers (sources, `push`) waiting right now for a subscriber without lag mode to
    /// make room in its full channel: non-zero while a slow subscriber holds sources back.
    pub waiting_on_subscribers: usize,
    /// Events per second since the streamer started.
    pub events_per_second: f64,
    /// Cache statistics, when a cache is configured.
    #[cfg(feature = "cache")]
    pub cache: Option<stream_cache::CacheStats>,
}

const DELIVERY_METRIC: &str = "ustream_delivery_seconds";

pub(crate) struct Metrics {
    started: std::time::Instant,
    received: AtomicU64,
    delivered: AtomicU64,
    acknowledged: AtomicU64,
    dead: AtomicU64,
    reconnects: AtomicU64,
    latency: [AtomicU64; BUCKETS_US.len()],
    /// Handles registered once: the macros look the name up in the recorder on every call,
    /// which the per-event path cannot afford.
    exported: Exported,
}

struct Exported {
    received: metrics::Counter,
    delivered: metrics::Counter,
    dead: metrics::Counter,
    reconnects: metrics::Counter,
    delivery: metrics::Histogram,
    #[cfg(feature = "cache")]
    cache_hit_ratio: metrics::Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        install_recorder();
        metrics::describe_histogram!(
            DELIVERY_METRIC,
            metrics::Unit::Seconds,
            "Time from the streamer getting a batch from its source until every callback and sink acknowledged it (monotonic clock; one sample per event)"
        );
        Self {
            started: std::time::Instant::now(),
            received: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            exported: Exported {
                received: metrics::counter!("ustream_events_received_total"),
                delivered: metrics::counter!("ustream_events_delivered_total"),
                dead: metrics::counter!("ustream_dead_letters_total"),
                reconnects: metrics::counter!("ustream_reconnects_total"),
                delivery: metrics::histogram!(DELIVERY_METRIC),
                #[cfg(feature = "cache")]
                cache_hit_ratio: metrics::gauge!("ustream_cache_hit_ratio"),
            },
        }
    }

    pub(crate) fn received(&self, events: usize) {
        self.received.fetch_add(events as u64, Ordering::Relaxed);
        self.exported.received.increment(events as u64);
    }

    pub(crate) fn delivered(&self, events: usize) {
        self.delivered.fetch_add(events as u64, Ordering::Relaxed);
        self.exported.delivered.increment(events as u64);
    }

    /// Every consumer acknowledged a batch of `events` events, `latency` after it was read.
    pub(crate) fn acknowledged(&self, events: usize, latency: Duration) {
        if events == 0 {
            return;
        }
        self.acknowledged
            .fetch_add(events as u64, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len() - 1);
        self.latency[bucket].fetch_add(events as u64, Ordering::Relaxed);
        self.exported
            .delivery
            .record_many(latency.as_secs_f64(), events);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
        self.exported.dead.increment(1);
    }

    pub(crate) fn reconnecting(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.exported.reconnects.increment(1);
    }

    fn percentile(counts: &[u64], p: f64) -> Duration {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_bound(i);
            }
        }
        Duration::MAX
    }

    #[cfg_attr(not(feature = "cache"), allow(unused_variables))]
    pub(crate) fn snapshot(
        &self,
        waiting_on_subscribers: usize,
        cache: Option<CacheStatsOrNothing>,
    ) -> MetricsSnapshot {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let received = self.received.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        #[cfg(feature = "cache")]
        if let Some(stats) = &cache {
            let lookups = stats.hits + stats.misses;
            if lookups > 0 {
                self.exported
                    .cache_hit_ratio
                    .set(stats.hits as f64 / lookups as f64);
            }
        }
        MetricsSnapshot {
            events_received: received,
            events_delivered: self.delivered.load(Ordering::Relaxed),
            events_acknowledged: self.acknowledged.load(Ordering::Relaxed),
            dead_lettered: self.dead.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            delivery: (
                Self::percentile(&counts, 0.50),
                Self::percentile(&counts, 0.95),
                Self::percentile(&counts, 0.99),
            ),
            waiting_on_subscribers,
            events_per_second: received as f64 / elapsed,
            #[cfg(feature = "cache")]
            cache,
        }
    }
}

fn bucket_bound(i: usize) -> Duration {
    match BUCKETS_US.get(i) {
        Some(&us) if us != u64::MAX => Duration::from_micros(us),
        _ => Duration::MAX,
    }
}

#[cfg(feature = "cache")]
pub(crate) type CacheStatsOrNothing = stream_cache::CacheStats;
#[cfg(not(feature = "cache"))]
pub(crate) type CacheStatsOrNothing = std::convert::Infallible;

static PROMETHEUS: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    OnceLock::new();

/// How often the recorder folds its histograms' samples into their summaries. Until then it
/// keeps every sample (8 bytes, one per event): with nobody rendering the Prometheus text, a
/// streamer grew by 8 bytes per event for as long as it ran (`cargo xtask soak`,
/// docs/soak.md).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The name of the thread that does it.
const UPKEEP_THREAD: &str = "ustream-metrics";

/// Installs the Prometheus recorder as this process's `metrics` recorder, once, with its
/// upkeep; another recorder installed first wins (then [`render_prometheus`] has nothing to
/// show).
fn install_recorder() {
    PROMETHEUS.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| tracing::info!(error = %e, "a metrics recorder is already installed; Prometheus text unavailable"))
            .ok()?;
        // A thread, not a task: the recorder belongs to the process, not to one runtime or
        // streamer, and lives as long as the process does.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name(UPKEEP_THREAD.to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no metrics upkeep thread: delivery latency samples pile up until prometheus() renders them");
        }
        Some(handle)
    });
}

pub(crate) fn render_prometheus() -> Option<String> {
    PROMETHEUS
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorder keeps histogram samples until an upkeep or a render folds them in: a
    /// thread must do it, or memory grows by one sample per event (the soak's finding).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_prometheus_recorder_gets_a_thread_that_folds_histogram_samples_away() {
        let _m = Metrics::new();
        assert!(
            PROMETHEUS.get().is_some_and(Option::is_some),
            "this test binary installs no other recorder"
        );
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("/proc/self/task")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // The new thread names itself once it runs.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !threads().iter().any(|t| t == UPKEEP_THREAD) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {UPKEEP_THREAD} thread among {:?}",
                threads()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn latency_percentiles_are_bucket_bounds_weighted_by_events() {
        let m = Metrics::new();
        assert_eq!(m.snapshot(0, None).delivery.0, Duration::ZERO);
        m.acknowledged(90, Duration::from_micros(700));
        m.acknowledged(10, Duration::from_millis(40));
        m.acknowledged(0, Duration::from_secs(99));
        let snapshot = m.snapshot(0, None);
        assert_eq!(snapshot.events_acknowledged, 100);
        assert_eq!(
            snapshot.delivery,
            (
                Duration::from_millis(1),
                Duration::from_millis(50),
                Duration::from_millis(50)
            )
        );
        m.acknowledged(1000, Duration::from_secs(60));
        assert_eq!(m.snapshot(0, None).delivery.2, Duration::MAX);
    }
}
