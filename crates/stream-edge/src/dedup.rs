//! A dedup window for pushed events: remembers the ids seen recently (at most `capacity` of
//! them, each for at most `ttl`) and says whether an id is new.
//!
//! ```
//! use std::time::Duration;
//! use stream_edge::dedup::{DedupStats, DedupWindow};
//!
//! let window = DedupWindow::new(10_000, Duration::from_secs(60));
//! assert!(window.check("evt-1"));
//! assert!(!window.check("evt-1")); // a duplicate
//! assert!(window.check("evt-2"));
//! assert_eq!(window.stats(), DedupStats { received: 3, unique: 2, duplicate: 1 });
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stream_core::ChangeEvent;

/// Counters of a [`DedupWindow`] since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DedupStats {
    /// Ids checked.
    pub received: u64,
    /// Ids seen for the first time within the window.
    pub unique: u64,
    /// Ids already in the window.
    pub duplicate: u64,
}

/// Remembers recent event ids; thread-safe (share it by reference or in an `Arc`).
///
/// An id counts as a duplicate when the same id was first seen less than `ttl` ago and at most
/// `capacity` other ids were first seen since. A duplicate does not extend its id's time in the
/// window. Memory is bounded by `capacity` ids.
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    ttl: Duration,
    seen: Mutex<Seen>,
    received: AtomicU64,
    unique: AtomicU64,
    duplicate: AtomicU64,
}

#[derive(Debug, Default)]
struct Seen {
    /// Id → when it was first seen.
    ids: HashMap<Arc<str>, Instant>,
    /// The same ids, oldest first.
    order: VecDeque<(Arc<str>, Instant)>,
}

impl DedupWindow {
    /// A window of at most `capacity` ids (at least 1), each remembered for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            seen: Mutex::new(Seen::default()),
            received: AtomicU64::new(0),
            unique: AtomicU64::new(0),
            duplicate: AtomicU64::new(0),
        }
    }

    /// The most ids remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long an id is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// `true` when `id` is seen for the first time within the window (deliver the event);
    /// `false` for a duplicate (drop it). Counts either way.
    pub fn check(&self, id: &str) -> bool {
        self.check_at(id, Instant::now())
    }

    /// [`check`](Self::check) for an event, by [`event_id`].
    pub fn check_event(&self, event: &ChangeEvent) -> bool {
        self.check(&event_id(event))
    }

    fn check_at(&self, id: &str, now: Instant) -> bool {
        self.received.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            self.evict(&mut seen, now);
            if seen.ids.contains_key(id) {
                false
            } else {
                let id: Arc<str> = Arc::from(id);
                seen.ids.insert(Arc::clone(&id), now);
                seen.order.push_back((id, now));
                self.evict(&mut seen, now);
                true
            }
        };
        let counter = if first { &self.unique } else { &self.duplicate };
        counter.fetch_add(1, Ordering::Relaxed);
        first
    }

    /// Drops ids older than the TTL, then the oldest beyond capacity.
    fn evict(&self, seen: &mut Seen, now: Instant) {
        while let Some((id, at)) = seen.order.front() {
            let expired = now.saturating_duration_since(*at) >= self.ttl;
            if !expired && seen.order.len() <= self.capacity {
                break;
            }
            seen.ids.remove(id);
            seen.order.pop_front();
        }
    }

    /// Ids remembered now (expired ones may still count until the next check).
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every id (the counters stay).
    pub fn clear(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.ids.clear();
        seen.order.clear();
    }

    /// The counters.
    pub fn stats(&self) -> DedupStats {
        DedupStats {
            received: self.received.load(Ordering::Relaxed),
            unique: self.unique.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
        }
    }
}

/// A default id for an event that carries none: its source and position
/// (`mysql@binlog:mysql-bin.000003:1234+2`). A position names exactly one event of a source, so
/// the same event pushed twice has the same id.
pub fn event_id(event: &ChangeEvent) -> String {
    format!("{}@{}", event.source.as_str(), event.position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_core::{Namespace, Op, Position, SourceKind};

    #[test]
    fn the_first_sighting_is_unique_and_repeats_are_duplicates() {
        let w = DedupWindow::new(100, Duration::from_secs(60));
        assert!(w.check("a"));
        assert!(w.check("b"));
        assert!(!w.check("a"));
        assert!(!w.check("a"));
        assert_eq!(
            w.stats(),
            DedupStats {
                received: 4,
                unique: 2,
                duplicate: 2
            }
        );
        assert_eq!(w.len(), 2);
        w.clear();
        assert!(w.is_empty());
        assert!(w.check("a"), "forgotten after clear");
        assert_eq!(w.stats().received, 5);
    }

    #[test]
    fn the_oldest_ids_leave_when_the_window_is_full() {
        let w = DedupWindow::new(3, Duration::from_secs(60));
        for id in ["1", "2", "3", "4"] {
            assert!(w.check(id));
        }
        assert_eq!(w.len(), 3);
        assert!(w.check("1"), "evicted by capacity");
        assert!(!w.check("4"));
        assert!(!w.check("3"));
        assert!(w.check("2"), "evicted when 4 came");
        assert_eq!(DedupWindow::new(0, Duration::from_secs(1)).capacity(), 1);
    }

    #[test]
    fn ids_expire_after_the_ttl_and_duplicates_do_not_extend_it() {
        let w = DedupWindow::new(100, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(w.check_at("a", t0));
        assert!(!w.check_at("a", t0 + Duration::from_secs(9)));
        assert!(w.check_at("b", t0 + Duration::from_secs(9)));
        assert!(
            w.check_at("a", t0 + Duration::from_secs(10)),
            "expired 10 s after its first sighting"
        );
        assert!(!w.check_at("b", t0 + Duration::from_secs(18)));
        assert_eq!(w.len(), 2);
        assert!(w.check_at("c", t0 + Duration::from_secs(100)));
        assert_eq!(w.len(), 1, "expired ids are dropped");
        assert_eq!(
            w.stats(),
            DedupStats {
                received: 6,
                unique: 4,
                duplicate: 2
            }
        );
    }

    #[test]
    fn real_time_expiry() {
        // Long enough that the second check comes within it on a loaded machine.
        let ttl = Duration::from_secs(1);
        let w = DedupWindow::new(10, ttl);
        assert!(w.check("x"));
        assert!(!w.check("x"));
        std::thread::sleep(ttl + Duration::from_millis(100));
        assert!(w.check("x"));
    }

    #[test]
    fn the_window_is_shared_between_threads() {
        let w = Arc::new(DedupWindow::new(100_000, Duration::from_secs(60)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || (0..1000).filter(|i| w.check(&i.to_string())).count())
            })
            .collect();
        let firsts: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
        assert_eq!(firsts, 1000, "each id is new exactly once");
        assert_eq!(
            w.stats(),
            DedupStats {
                received: 4000,
                unique: 1000,
                duplicate: 3000
            }
        );
    }

    #[test]
    fn events_dedup_by_source_and_position() {
        let event = ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "orders"),
            op: Op::Insert,
            key: None,
            before: None,
            after: None,
            update: None,
            position: "binlog:mysql-bin.000003:1234+2"
                .parse::<Position>()
                .expect("position"),
            ts_ms: 0,
            txn: None,
        };
        assert_eq!(event_id(&event), "mysql@binlog:mysql-bin.000003:1234+2");
        let w = DedupWindow::new(10, Duration::from_secs(10));
        assert!(w.check_event(&event));
        assert!(!w.check_event(&event.clone()));
    }
}
