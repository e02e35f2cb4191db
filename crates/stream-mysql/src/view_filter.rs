//! Binlog changes a resumed snapshot's new view already holds.
//!
//! A snapshot resumed in a second consistent view (taken at `until`) already contains the
//! changes made between the first view and `until` to the rows it reads: the table it resumed
//! in (keys after `after`) and every later table. Those changes are skipped until the stream
//! reaches `until`, so the resume delivers nothing twice. Keys that cannot be ordered like the
//! server does (strings, under a collation) are not skipped: for them the resume is
//! at-least-once.
//!
//! One kind of change the new view cannot hold: that a row is gone. The consumer may hold a
//! row the first view delivered after the last checkpoint (at-least-once), so the delete of a
//! row that existed before the window is delivered, and so is every later change of that key
//! (a row inserted again arrives after its delete). Rows born inside the window were in no
//! view the consumer read: their whole life stays skipped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use stream_core::{Op, Row, SnapshotProgress, Value};

use crate::start::FilePos;

/// Keys of rows born inside the window remembered at most; past that, the delete of such a
/// row is delivered (a delete of a key the consumer never held, harmless).
const MAX_BORN: usize = 1_000_000;

/// What the window saw of the keys it covers: shared by the clones a reconnect makes.
#[derive(Debug, Default)]
struct WindowKeys {
    /// Inserted inside the window (and not deleted since): no view the consumer read held them.
    born: HashSet<Vec<u8>>,
    /// Deleted (or moved away) inside the window after existing before it: every later
    /// change of these keys is delivered.
    reopened: HashSet<Vec<u8>>,
}

/// The binlog changes a resumed snapshot's new view already holds.
#[derive(Debug, Clone)]
pub(crate) struct ViewFilter {
    pub(crate) until: FilePos,
    table: String,
    after: Option<Vec<Value>>,
    keys: Arc<Mutex<WindowKeys>>,
}

/// One table's key as a set member: `db.table`, a NUL, the key's contract JSON.
fn member(table: &str, key: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() + 32);
    out.extend_from_slice(table.as_bytes());
    out.push(0);
    stream_core::json::write_row(&mut out, key);
    out
}

impl ViewFilter {
    pub(crate) fn new(progress: &SnapshotProgress, until: FilePos) -> Option<Self> {
        let after = match &progress.after {
            None => Some(Vec::new()),
            Some(json) => {
                let parsed: serde_json::Value = serde_json::from_str(json).ok()?;
                parsed
                    .as_object()?
                    .values()
                    .map(|v| match v {
                        serde_json::Value::Number(n) => n
                            .as_i64()
                            .map(Value::Int)
                            .or_else(|| n.as_u64().map(Value::UInt)),
                        _ => None,
                    })
                    .collect::<Option<Vec<Value>>>()
            }
        };
        Some(Self {
            until,
            table: progress.table.clone(),
            after,
            keys: Arc::default(),
        })
    }

    /// Whether the second view holds the row of this key.
    fn covers(&self, table: &str, key: Option<&Row>) -> bool {
        if table > self.table.as_str() {
            return true;
        }
        if table != self.table {
            return false;
        }
        match (&self.after, key) {
            (Some(after), _) if after.is_empty() => true,
            (Some(after), Some(key)) if key.len() == after.len() => {
                let order = key
                    .iter()
                    .zip(after)
                    .map(|((_, k), a)| k.compare(a))
                    .find(|o| o != &Some(std::cmp::Ordering::Equal))
                    .unwrap_or(Some(std::cmp::Ordering::Equal));
                order == Some(std::cmp::Ordering::Greater)
            }
            _ => false,
        }
    }

    /// Whether a change of `table` (its key before and after) is one the new view already
    /// holds, so it is skipped; `false`: deliver it.
    pub(crate) fn skips(
        &self,
        table: &str,
        op: Op,
        before: Option<&Row>,
        after: Option<&Row>,
    ) -> bool {
        let key = after.or(before);
        if !self.covers(table, key) {
            return false;
        }
        let Some(key) = key else {
            // No key to follow the row by: the consumer may hold it, so it hears of its delete.
            return op != Op::Delete;
        };
        let id = member(table, key);
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.reopened.contains(&id) {
            return false;
        }
        match op {
            Op::Insert => {
                if keys.born.len() < MAX_BORN {
                    keys.born.insert(id);
                }
                true
            }
            Op::Delete => {
                if keys.born.remove(&id) {
                    return true;
                }
                keys.reopened.insert(id);
                false
            }
            _ => {
                let moved_from = before.map(|b| member(table, b)).filter(|b| *b != id);
                let Some(from) = moved_from else {
                    // The new view holds the row as it is at `until`.
                    return true;
                };
                if keys.born.remove(&from) {
                    keys.born.insert(id);
                    return true;
                }
                // A row the consumer may hold under its old key moved: it hears of the move.
                keys.reopened.insert(id);
                false
            }
        }
    }

    /// Whether a stream at `at` has reached the view, so nothing more is covered.
    pub(crate) fn passed_by(&self, at: &FilePos) -> bool {
        at.position()
            .compare(&self.until.position())
            .is_some_and(|o| o.is_ge())
    }

    /// Forgets the keys of the window (it has been passed).
    pub(crate) fn release(&self) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        *keys = WindowKeys::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(table: &str, after: Option<&str>) -> ViewFilter {
        let progress = SnapshotProgress {
            file: "b.000001".into(),
            offset: 4,
            table: table.into(),
            after: after.map(str::to_owned),
        };
        let until = FilePos {
            file: "b.000001".into(),
            offset: 1000,
            skip: 0,
        };
        ViewFilter::new(&progress, until).expect("a numeric key")
    }

    fn key(id: i64) -> Row {
        [("id", Value::Int(id))].into_iter().collect()
    }

    #[test]
    fn changes_of_rows_the_new_view_reads_are_skipped_and_earlier_ones_delivered() {
        let f = filter("shop.b", Some(r#"{"id":10}"#));
        let k = key(11);
        assert!(f.skips("shop.b", Op::Update, Some(&k), Some(&k)));
        assert!(f.skips("shop.c", Op::Insert, None, Some(&key(1))));
        assert!(!f.skips("shop.b", Op::Update, Some(&key(10)), Some(&key(10))));
        assert!(!f.skips("shop.a", Op::Insert, None, Some(&key(99))));
    }

    #[test]
    fn a_row_deleted_in_the_window_is_delivered_with_every_later_change_of_its_key() {
        // Resumed at the very start: the new view reads every table.
        let f = filter("", None);
        let k = key(1);
        assert!(f.skips("shop.t", Op::Update, Some(&k), Some(&k)));
        assert!(!f.skips("shop.t", Op::Delete, Some(&k), None), "the delete");
        assert!(
            !f.skips("shop.t", Op::Insert, None, Some(&k)),
            "inserted again"
        );
        assert!(!f.skips("shop.t", Op::Update, Some(&k), Some(&k)));
        assert!(f.skips("shop.t", Op::Update, Some(&key(2)), Some(&key(2))));
    }

    #[test]
    fn a_row_born_in_the_window_stays_skipped_through_its_delete() {
        let f = filter("", None);
        let k = key(7);
        assert!(f.skips("shop.t", Op::Insert, None, Some(&k)));
        assert!(
            f.skips("shop.t", Op::Update, Some(&k), Some(&key(8))),
            "moved"
        );
        assert!(f.skips("shop.t", Op::Delete, Some(&key(8)), None));
    }

    #[test]
    fn a_row_that_existed_before_the_window_moving_to_a_new_key_is_delivered() {
        let f = filter("", None);
        assert!(!f.skips("shop.t", Op::Update, Some(&key(3)), Some(&key(30))));
        assert!(!f.skips("shop.t", Op::Update, Some(&key(30)), Some(&key(30))));
        let clone = f.clone();
        assert!(
            !clone.skips("shop.t", Op::Delete, Some(&key(30)), None),
            "a reconnect's clone remembers"
        );
        f.release();
        assert!(f.skips("shop.t", Op::Update, Some(&key(30)), Some(&key(30))));
    }

    #[test]
    fn a_table_without_a_key_hears_of_deletes_only() {
        let f = filter("", None);
        assert!(f.skips("shop.t", Op::Insert, None, None));
        assert!(!f.skips("shop.t", Op::Delete, None, None));
    }
}
