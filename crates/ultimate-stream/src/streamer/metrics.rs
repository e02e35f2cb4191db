//! Counters and commit-to-delivery lag, kept here for [`super::Streamer::metrics`] and
//! recorded through the `metrics` crate for Prometheus.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use stream_core::ChangeEvent;

/// Upper bounds (ms) of the lag histogram's buckets; the last catches everything above.
const BUCKETS_MS: [u64; 16] = [
    1,
    2,
    3,
    5,
    8,
    13,
    20,
    30,
    50,
    100,
    200,
    500,
    1_000,
    5_000,
    30_000,
    u64::MAX,
];

/// A point-in-time copy of the streamer's metrics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Change events read from the sources.
    pub events_received: u64,
    /// Events callbacks handled successfully.
    pub events_delivered: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Reconnections started after a lost connection.
    pub reconnects: u64,
    /// Commit-to-delivery lag percentiles (ms, upper bucket bounds): p50, p95, p99.
    pub lag_ms: (u64, u64, u64),
    /// Events per second since the streamer started.
    pub events_per_second: f64,
    /// Cache statistics, when a cache is configured.
    #[cfg(feature = "cache")]
    pub cache: Option<stream_cache::CacheStats>,
}

pub(crate) struct Metrics {
    started: std::time::Instant,
    received: AtomicU64,
    delivered: AtomicU64,
    dead: AtomicU64,
    reconnects: AtomicU64,
    lag: [AtomicU64; BUCKETS_MS.len()],
    /// Handles registered once: the macros look the name up in the recorder on every call,
    /// which the per-event path cannot afford.
    exported: Exported,
}

struct Exported {
    received: metrics::Counter,
    delivered: metrics::Counter,
    dead: metrics::Counter,
    reconnects: metrics::Counter,
    lag: metrics::Histogram,
    #[cfg(feature = "cache")]
    cache_hit_ratio: metrics::Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        install_recorder();
        Self {
            started: std::time::Instant::now(),
            received: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            lag: std::array::from_fn(|_| AtomicU64::new(0)),
            exported: Exported {
                received: metrics::counter!("ustream_events_received_total"),
                delivered: metrics::counter!("ustream_events_delivered_total"),
                dead: metrics::counter!("ustream_dead_letters_total"),
                reconnects: metrics::counter!("ustream_reconnects_total"),
                lag: metrics::histogram!("ustream_commit_lag_seconds"),
                #[cfg(feature = "cache")]
                cache_hit_ratio: metrics::gauge!("ustream_cache_hit_ratio"),
            },
        }
    }

    pub(crate) fn received(&self, events: &[std::sync::Arc<ChangeEvent>]) {
        self.received
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.exported.received.increment(events.len() as u64);
        let now = stream_core::now_ms();
        for event in events {
            let lag = u64::try_from(now.saturating_sub(event.ts_ms)).unwrap_or(0);
            let bucket = BUCKETS_MS
                .iter()
                .position(|b| lag <= *b)
                .unwrap_or(BUCKETS_MS.len() - 1);
            self.lag[bucket].fetch_add(1, Ordering::Relaxed);
            self.exported.lag.record(lag as f64 / 1000.0);
        }
    }

    pub(crate) fn delivered(&self, _event: &ChangeEvent) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.exported.delivered.increment(1);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
        self.exported.dead.increment(1);
    }

    pub(crate) fn reconnecting(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.exported.reconnects.increment(1);
    }

    fn percentile(counts: &[u64], p: f64) -> u64 {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return BUCKETS_MS[i];
            }
        }
        BUCKETS_MS[BUCKETS_MS.len() - 1]
    }

    #[cfg_attr(not(feature = "cache"), allow(unused_variables))]
    pub(crate) fn snapshot(&self, cache: Option<CacheStatsOrNothing>) -> MetricsSnapshot {
        let counts: Vec<u64> = self.lag.iter().map(|c| c.load(Ordering::Relaxed)).collect();
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
            dead_lettered: self.dead.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            lag_ms: (
                Self::percentile(&counts, 0.50),
                Self::percentile(&counts, 0.95),
                Self::percentile(&counts, 0.99),
            ),
            events_per_second: received as f64 / elapsed,
            #[cfg(feature = "cache")]
            cache,
        }
    }
}

#[cfg(feature = "cache")]
pub(crate) type CacheStatsOrNothing = stream_cache::CacheStats;
#[cfg(not(feature = "cache"))]
pub(crate) type CacheStatsOrNothing = std::convert::Infallible;

static PROMETHEUS: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    OnceLock::new();

/// Installs the Prometheus recorder as this process's `metrics` recorder, once; another
/// recorder installed first wins (then [`render_prometheus`] has nothing to show).
fn install_recorder() {
    PROMETHEUS.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| tracing::info!(error = %e, "a metrics recorder is already installed; Prometheus text unavailable"))
            .ok()
    });
}

pub(crate) fn render_prometheus() -> Option<String> {
    PROMETHEUS
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
}
