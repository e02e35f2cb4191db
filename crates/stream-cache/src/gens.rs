//! Generations: how a fill that raced with an invalidation is recognised and never served.
//!
//! One process-wide clock hands out sequence numbers. Every invalidation takes the next number
//! and raises the counter of what it invalidates to it: a stripe of keys (chosen by the key's
//! hash), a stripe of namespaces, the query results of a namespace, or everything. Every cached
//! entry carries a tag: the clock value at the moment its data was about to be read (the
//! ticket), or the number a write through the streamer took when it started. An entry is served
//! only while every counter that covers it is at most its tag, so an invalidation that happened
//! after the ticket makes the entry dead even if the fill lands after the invalidation. There is
//! no lock anywhere and a lookup costs a few atomic loads.
//!
//! Stripes share counters between unrelated keys (and namespaces): a collision can only make an
//! entry dead too early, never keep a stale one alive.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// Key stripes (a power of two).
const KEY_STRIPES: usize = 4096;
/// Namespace stripes (a power of two).
const NS_STRIPES: usize = 1024;

/// What an entry's tag means, which decides the counters it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Read from the store (or the Redis tier) after a ticket was taken: dead once the key was
    /// invalidated or a write through the streamer ended after the ticket.
    Fill,
    /// Written through the streamer: dead once anything else invalidated the key after the
    /// write began (a write's own end does not count).
    Write,
}

/// The counters of one cache.
pub(crate) struct Generations {
    clock: AtomicU64,
    global: AtomicU64,
    /// Per key stripe: the last invalidation (including the start of a write).
    keys: Box<[AtomicU64]>,
    /// Per key stripe: the last end of a write through the streamer.
    write_ends: Box<[AtomicU64]>,
    /// Per key stripe: writes through the streamer under way.
    inflight: Box<[AtomicU32]>,
    /// Per namespace stripe: the last whole-namespace invalidation.
    namespaces: Box<[AtomicU64]>,
    /// Per namespace stripe: the last change of any kind (for query results).
    queries: Box<[AtomicU64]>,
}

fn counters<T: Default>(n: usize) -> Box<[T]> {
    (0..n).map(|_| T::default()).collect()
}

/// Stripe indexes of one key: its own and its namespace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots {
    pub(crate) key: usize,
    pub(crate) ns: usize,
}

impl Slots {
    pub(crate) fn new(key_hash: u64, ns_hash: u64) -> Self {
        Self {
            key: (key_hash as usize) & (KEY_STRIPES - 1),
            ns: ns_slot(ns_hash),
        }
    }
}

/// The namespace stripe of a namespace hash.
pub(crate) fn ns_slot(ns_hash: u64) -> usize {
    (ns_hash as usize) & (NS_STRIPES - 1)
}

impl Generations {
    pub(crate) fn new() -> Self {
        Self {
            // Starts at 1 so that a zero counter is below every ticket.
            clock: AtomicU64::new(1),
            global: AtomicU64::new(0),
            keys: counters(KEY_STRIPES),
            write_ends: counters(KEY_STRIPES),
            inflight: counters(KEY_STRIPES),
            namespaces: counters(NS_STRIPES),
            queries: counters(NS_STRIPES),
        }
    }

    /// The clock now: the tag of a fill whose read starts after this call.
    pub(crate) fn now(&self) -> u64 {
        self.clock.load(SeqCst)
    }

    fn next(&self) -> u64 {
        self.clock.fetch_add(1, SeqCst) + 1
    }

    /// The highest counter covering a row entry of this kind: the entry is alive while its
    /// tag is at least this.
    pub(crate) fn row_floor(&self, slots: Slots, kind: Kind) -> u64 {
        let mut floor = self.keys[slots.key]
            .load(SeqCst)
            .max(self.namespaces[slots.ns].load(SeqCst))
            .max(self.global.load(SeqCst));
        if kind == Kind::Fill {
            floor = floor.max(self.write_ends[slots.key].load(SeqCst));
        }
        floor
    }

    /// The highest counter covering the query results of a namespace stripe.
    pub(crate) fn query_floor(&self, ns_slot: usize) -> u64 {
        self.queries[ns_slot]
            .load(SeqCst)
            .max(self.global.load(SeqCst))
    }

    /// Invalidates one key (and the query results of its namespace); returns the number taken.
    pub(crate) fn invalidate_key(&self, slots: Slots) -> u64 {
        let seq = self.next();
        self.keys[slots.key].fetch_max(seq, SeqCst);
        self.queries[slots.ns].fetch_max(seq, SeqCst);
        seq
    }

    /// Invalidates every key and query result of a namespace stripe.
    pub(crate) fn invalidate_namespace(&self, ns_slot: usize) -> u64 {
        let seq = self.next();
        self.namespaces[ns_slot].fetch_max(seq, SeqCst);
        self.queries[ns_slot].fetch_max(seq, SeqCst);
        seq
    }

    /// Invalidates every entry.
    pub(crate) fn invalidate_all(&self) -> u64 {
        let seq = self.next();
        self.global.fetch_max(seq, SeqCst);
        seq
    }

    /// A write through the streamer begins: counts it as under way and invalidates the key
    /// (what is cached is about to be wrong). Returns the write's tag.
    pub(crate) fn begin_write(&self, slots: Slots) -> u64 {
        self.inflight[slots.key].fetch_add(1, SeqCst);
        self.invalidate_key(slots)
    }

    /// Whether a write that began with `tag` may cache its row: nothing else invalidated the
    /// key, its namespace or everything since, and no other write of its stripe is under way.
    pub(crate) fn write_may_cache(&self, slots: Slots, tag: u64) -> bool {
        self.inflight[slots.key].load(SeqCst) == 1 && self.row_floor(slots, Kind::Write) <= tag
    }

    /// A write through the streamer's store call returned: fills whose ticket was taken
    /// before now may hold what was there before the write, so they die; so do query results.
    pub(crate) fn end_write(&self, slots: Slots) {
        let seq = self.next();
        self.write_ends[slots.key].fetch_max(seq, SeqCst);
        self.queries[slots.ns].fetch_max(seq, SeqCst);
    }

    /// The write is no longer under way (after its entry was cached or invalidated).
    pub(crate) fn leave_write(&self, slots: Slots) {
        self.inflight[slots.key].fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Slots = Slots { key: 1, ns: 1 };
    const B: Slots = Slots { key: 2, ns: 1 };

    #[test]
    fn an_invalidation_after_the_ticket_kills_the_fill() {
        let g = Generations::new();
        let ticket = g.now();
        assert!(g.row_floor(A, Kind::Fill) <= ticket);
        g.invalidate_key(A);
        assert!(g.row_floor(A, Kind::Fill) > ticket);
        assert!(
            g.row_floor(B, Kind::Fill) <= ticket,
            "other keys keep theirs"
        );
        assert!(g.query_floor(1) > ticket, "the namespace's queries die too");
        assert!(g.now() >= ticket);
    }

    #[test]
    fn namespace_and_global_invalidations_cover_every_key() {
        let g = Generations::new();
        let t = g.now();
        g.invalidate_namespace(1);
        assert!(g.row_floor(A, Kind::Write) > t && g.row_floor(B, Kind::Fill) > t);
        let t = g.now();
        g.invalidate_all();
        assert!(g.row_floor(Slots { key: 9, ns: 9 }, Kind::Fill) > t);
        assert!(g.query_floor(9) > t);
    }

    #[test]
    fn a_write_survives_its_own_end_but_fills_before_it_do_not() {
        let g = Generations::new();
        let fill_ticket = g.now();
        let tag = g.begin_write(A);
        let during = g.now();
        assert!(g.write_may_cache(A, tag));
        g.end_write(A);
        assert!(
            g.row_floor(A, Kind::Write) <= tag,
            "the write's own entry lives"
        );
        assert!(g.row_floor(A, Kind::Fill) > fill_ticket);
        assert!(
            g.row_floor(A, Kind::Fill) > during,
            "a read during the write dies"
        );
        g.leave_write(A);
    }

    #[test]
    fn overlapping_writes_cache_nothing() {
        let g = Generations::new();
        let first = g.begin_write(A);
        let second = g.begin_write(A);
        assert!(!g.write_may_cache(A, second), "another write is under way");
        assert!(
            !g.write_may_cache(A, first),
            "the second write invalidated the key"
        );
        g.invalidate_key(A);
        g.leave_write(A);
        assert!(!g.write_may_cache(A, second));
        g.leave_write(A);
    }
}
