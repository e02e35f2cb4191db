//! Where a batch may be committed: only whole source transactions reach the target.
//!
//! The MySQL source cuts batches by size (1,024 events) or whenever the server has nothing more
//! ready, which can be in the middle of a transaction; the batch's position then names the open
//! transaction's start with `skip` > 0 (rows of it delivered so far). After a commit the position
//! has `skip` 0. The MongoDB source cuts by what is waiting; the events of one multi-document
//! transaction share a `txn` id, and a later event outside it, or a batch position past the
//! last event (a post-batch resume token), shows the transaction is complete.

use stream_core::{ChangeEvent, MySqlPosition, Position};

use crate::sink::Item;

/// What identifies an event's source transaction.
fn txn_of(event: &ChangeEvent) -> Option<Txn<'_>> {
    match &event.position {
        Position::MySql(p) => Some(Txn::MySql(p)),
        _ => event.txn.as_deref().map(Txn::Id),
    }
}

enum Txn<'a> {
    MySql(&'a MySqlPosition),
    Id(&'a str),
}

impl Txn<'_> {
    fn same(&self, other: &Txn<'_>) -> bool {
        match (self, other) {
            (Txn::MySql(a), Txn::MySql(b)) => a.start == b.start,
            (Txn::Id(a), Txn::Id(b)) => a == b,
            _ => false,
        }
    }
}

fn position_of<'a>(item: &Item<'a>) -> &'a Position {
    match item {
        Item::Change(c) => &c.position,
        Item::Schema(s) => &s.position,
    }
}

/// How many of `items` (held events, then a batch ending at `end`) can be committed, and the
/// checkpoint position that goes with them; `None` when nothing can be committed yet.
pub(crate) fn commit_point(items: &[Item<'_>], end: &Position) -> (usize, Option<Position>) {
    let last = match items.last() {
        Some(Item::Change(c)) => *c,
        // Schema changes end transactions; an empty batch only moves the position.
        Some(Item::Schema(_)) | None => return (items.len(), Some(end.clone())),
    };
    let open = match (end, txn_of(last)) {
        (Position::MySql(p), _) => p.skip > 0,
        (_, Some(Txn::Id(_))) => last.position == *end,
        _ => false,
    };
    if !open {
        return (items.len(), Some(end.clone()));
    }
    let Some(tail_txn) = (match end {
        Position::MySql(p) => Some(Txn::MySql(p)),
        _ => txn_of(last),
    }) else {
        return (items.len(), Some(end.clone()));
    };
    let tail = items
        .iter()
        .rev()
        .take_while(|item| match item {
            Item::Change(c) => txn_of(c).is_some_and(|t| t.same(&tail_txn)),
            Item::Schema(_) => false,
        })
        .count();
    let commit = items.len() - tail;
    if commit == 0 {
        return (0, None);
    }
    (commit, Some(position_of(&items[commit - 1]).clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use stream_core::{Namespace, Op, SourceKind, Value};

    use super::*;

    fn change(position: &str, txn: Option<&str>) -> ChangeEvent {
        ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("db", "t"),
            op: Op::Insert,
            key: Some([("id", Value::Int(1))].into_iter().collect()),
            before: None,
            after: None,
            update: None,
            position: position.parse().expect(position),
            ts_ms: 0,
            txn: txn.map(Arc::from),
        }
    }

    #[test]
    fn a_mysql_batch_cut_inside_a_transaction_holds_that_transaction_back() {
        let a1 = change("binlog:b.000001:100+1", Some("0-1-1"));
        let a2 = change("binlog:b.000001:100+2", Some("0-1-1"));
        let b1 = change("binlog:b.000001:300+1", Some("0-1-2"));
        let b2 = change("binlog:b.000001:300+2", Some("0-1-2"));
        let items = [
            Item::Change(&a1),
            Item::Change(&a2),
            Item::Change(&b1),
            Item::Change(&b2),
        ];
        let mid: Position = "binlog:b.000001:300+2".parse().expect("pos");
        let (n, at) = commit_point(&items, &mid);
        assert_eq!(n, 2);
        assert_eq!(at, Some(a2.position.clone()));
        let done: Position = "binlog:b.000001:500+0".parse().expect("pos");
        assert_eq!(commit_point(&items, &done), (4, Some(done.clone())));
        let (n, at) = commit_point(&items[2..], &mid);
        assert_eq!(
            (n, at),
            (0, None),
            "only the open transaction: nothing to commit"
        );
    }

    #[test]
    fn a_mongo_transaction_is_complete_once_the_stream_moved_past_it() {
        let mut t1 = change("mongodb-time:1700000000.1", Some("lsid:1"));
        t1.source = SourceKind::MongoDb;
        let mut t2 = change("mongodb-time:1700000000.2", Some("lsid:1"));
        t2.source = SourceKind::MongoDb;
        let mut solo = change("mongodb-time:1700000000.3", None);
        solo.source = SourceKind::MongoDb;
        let items = [Item::Change(&solo), Item::Change(&t1), Item::Change(&t2)];
        let (n, at) = commit_point(&items, &t2.position);
        assert_eq!((n, at), (1, Some(solo.position.clone())));
        let later: Position = "mongodb-time:1700000001.0".parse().expect("pos");
        assert_eq!(commit_point(&items, &later).0, 3);
        assert_eq!(commit_point(&items[..1], &solo.position).0, 1);
    }
}
