//! Which changes of a snapshot's hand-over window the stream that follows leaves out.
//!
//! The stream starts at the snapshot's start `T0`; the scan read each collection later, chunk
//! by chunk, each chunk a majority read at or after the operation time of the previous read
//! (`from`, per collection: that of its first chunk). A change of a document the scan read,
//! made up to that time, is in the document delivered. A change of a document in a range the
//! scan read but did not return, made up to `from`, is in what it delivered too: the document
//! was gone when its range was read (a delete that, applied, finds nothing to delete). After
//! `from` such a document is followed from its first insert on (the insert may have come after
//! the read); its updates and deletes before that are of a document the read did not see.
//!
//! A resumed snapshot does not know how far the attempt before it got: a kill can come after
//! that attempt printed documents and before it saved their checkpoint. So every change of a
//! document that existed before this attempt started (`earlier_attempt`) is delivered, as are
//! the changes of the part the earlier attempt delivered and this one does not read again;
//! only documents born later are left out as above.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use mongodb::bson::{Bson, Timestamp};
use stream_core::Namespace;

use crate::source::id_key;

/// Documents followed or left out at most; past that, every change is delivered (deletes of
/// documents the consumer never received, harmless).
const MAX_TRACKED: usize = 1_000_000;

type DocKey = (Namespace, Vec<u8>);

/// What the scan read, and what the stream from `T0` therefore leaves out.
#[derive(Debug, Default)]
pub(crate) struct HandOver {
    /// Documents the scan delivered -> the time up to which their changes are in them.
    seen: HashMap<DocKey, Timestamp>,
    /// Collections the scan read -> the operation time before its first chunk.
    from: HashMap<Namespace, Timestamp>,
    /// The collection a resumed scan continued in and the last `_id` read before: `_id`s up to
    /// it were delivered by an earlier attempt and not read again.
    resumed_after: Option<(Namespace, Bson)>,
    /// When this attempt started, for a resumed snapshot.
    earlier_attempt: Option<Timestamp>,
    /// The operation time of the scan's last read: past it, nothing is left out.
    until: Option<Timestamp>,
    /// Documents not read whose every change is delivered from now on.
    followed: HashSet<DocKey>,
    /// Documents not read whose changes were left out so far.
    left_out: HashSet<DocKey>,
    /// Too many documents to track: deliver everything.
    overflowed: bool,
}

fn ts_le(a: Timestamp, b: Timestamp) -> bool {
    (a.time, a.increment) <= (b.time, b.increment)
}

impl HandOver {
    /// A snapshot started afresh, or resumed (`earlier_attempt`: when this attempt started) in
    /// `collection` after `_id` `after`.
    pub(crate) fn new(
        earlier_attempt: Option<Timestamp>,
        resumed_after: Option<(Namespace, Bson)>,
    ) -> Self {
        Self {
            earlier_attempt,
            resumed_after,
            ..Self::default()
        }
    }

    /// The scan starts reading `ns` with a read at or after `from`.
    pub(crate) fn reading(&mut self, ns: &Namespace, from: Timestamp) {
        self.from.entry(ns.clone()).or_insert(from);
    }

    /// The scan delivered this document, with every change up to `seen_until`.
    pub(crate) fn read(&mut self, ns: &Namespace, id: &Bson, seen_until: Timestamp) {
        self.seen.insert((ns.clone(), id_key(id)), seen_until);
    }

    /// The scan is done; its last read was at or before `until`.
    pub(crate) fn finish(&mut self, until: Timestamp) {
        self.until = Some(until);
    }

    /// Whether a change at `at` is past the window: nothing from there on is left out.
    pub(crate) fn passed(&self, at: Timestamp) -> bool {
        self.until.is_none_or(|until| !ts_le(at, until))
    }

    /// Whether the change `op` (`operationType`) of document `id` of `ns` at `at` is in what
    /// the scan delivered, so the stream leaves it out.
    pub(crate) fn leaves_out(
        &mut self,
        ns: &Namespace,
        id: &Bson,
        op: &str,
        at: Timestamp,
    ) -> bool {
        if self.passed(at) {
            return false;
        }
        let key = (ns.clone(), id_key(id));
        if let Some(seen_until) = self.seen.get(&key) {
            return ts_le(at, *seen_until);
        }
        let Some(&from) = self.from.get(ns) else {
            // Not read by this scan.
            return false;
        };
        if let Some((resumed_in, after)) = &self.resumed_after
            && resumed_in == ns
            && crate::order::compare(id, after) != Some(Ordering::Greater)
        {
            // Delivered by an earlier attempt (or not known to be after it).
            return false;
        }
        if self.overflowed || self.followed.contains(&key) {
            return false;
        }
        let first = !self.left_out.contains(&key);
        let insert = op == "insert";
        if first
            && self
                .earlier_attempt
                .is_some_and(|started| !insert || ts_le(at, started))
        {
            // It existed while the earlier attempt ran, which may have printed it.
            return !self.follow(key);
        }
        if ts_le(at, from) || !insert {
            // Gone when its range was read (or not yet seen by anything delivered).
            return self.leave_out(key);
        }
        !self.follow(key)
    }

    /// Follows a document from now on; `true` (deliver).
    fn follow(&mut self, key: DocKey) -> bool {
        self.left_out.remove(&key);
        if self.followed.len() >= MAX_TRACKED {
            self.overflowed = true;
        } else {
            self.followed.insert(key);
        }
        true
    }

    /// Leaves a change out; `false` (deliver) once too many documents are tracked.
    fn leave_out(&mut self, key: DocKey) -> bool {
        if self.left_out.len() >= MAX_TRACKED {
            self.overflowed = true;
            return false;
        }
        self.left_out.insert(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: u32) -> Timestamp {
        Timestamp { time, increment: 1 }
    }

    fn ns(coll: &str) -> Namespace {
        Namespace::new("shop", coll)
    }

    fn id(v: i32) -> Bson {
        Bson::Int32(v)
    }

    /// `T0` = 10; `b` read from 20 (returning `_id` 1, seen until 20), the scan done at 30.
    fn scanned(hand_over: &mut HandOver) {
        hand_over.reading(&ns("b"), at(20));
        hand_over.read(&ns("b"), &id(1), at(20));
        hand_over.finish(at(30));
    }

    #[test]
    fn a_fresh_snapshot_leaves_out_every_change_of_a_document_gone_before_its_read() {
        let mut h = HandOver::new(None, None);
        scanned(&mut h);
        let b = ns("b");
        assert!(
            h.leaves_out(&b, &id(1), "update", at(15)),
            "in the row read"
        );
        assert!(
            !h.leaves_out(&b, &id(1), "update", at(25)),
            "after its read"
        );
        assert!(h.leaves_out(&b, &id(2), "update", at(11)), "existed at T0");
        assert!(h.leaves_out(&b, &id(2), "delete", at(12)));
        assert!(h.leaves_out(&b, &id(3), "insert", at(13)), "born and gone");
        assert!(h.leaves_out(&b, &id(3), "delete", at(21)));
        assert!(
            !h.leaves_out(&ns("c"), &id(3), "insert", at(13)),
            "not read"
        );
        assert!(
            !h.leaves_out(&b, &id(9), "delete", at(31)),
            "past the window"
        );
    }

    #[test]
    fn a_document_inserted_after_its_range_may_have_been_read_is_followed_to_its_delete() {
        let mut h = HandOver::new(None, None);
        scanned(&mut h);
        let b = ns("b");
        assert!(
            h.leaves_out(&b, &id(4), "update", at(22)),
            "gone before the read"
        );
        assert!(!h.leaves_out(&b, &id(5), "insert", at(22)));
        assert!(!h.leaves_out(&b, &id(5), "update", at(23)));
        assert!(!h.leaves_out(&b, &id(5), "delete", at(24)));
        assert!(!h.leaves_out(&b, &id(5), "insert", at(25)));
    }

    #[test]
    fn a_resumed_snapshot_delivers_what_its_earlier_attempt_may_have_printed() {
        // Resumed at 15 in `a` after `_id` 10; `a` read again from 16, `b` from 20.
        let mut h = HandOver::new(Some(at(15)), Some((ns("a"), id(10))));
        h.reading(&ns("a"), at(16));
        scanned(&mut h);
        let (a, b) = (ns("a"), ns("b"));
        assert!(
            !h.leaves_out(&a, &id(5), "delete", at(16)),
            "delivered before"
        );
        assert!(
            !h.leaves_out(&a, &id(12), "delete", at(12)),
            "existed at T0"
        );
        assert!(!h.leaves_out(&b, &id(2), "delete", at(18)), "existed at T0");
        assert!(
            !h.leaves_out(&b, &id(3), "insert", at(14)),
            "born before 15"
        );
        assert!(!h.leaves_out(&b, &id(3), "delete", at(17)));
        assert!(h.leaves_out(&b, &id(6), "insert", at(17)), "born after 15");
        assert!(h.leaves_out(&b, &id(6), "update", at(18)));
        assert!(h.leaves_out(&b, &id(6), "delete", at(19)));
        assert!(
            h.leaves_out(&a, &id(20), "insert", at(16)),
            "after `_id` 10"
        );
        assert!(
            !h.leaves_out(&a, &id(7), "insert", at(16)),
            "before it: not read again"
        );
    }
}
