//! [`CowList`]: a list read on every event and changed rarely (subscribers, callbacks, sinks).
//!
//! Readers take a snapshot (an `Arc` clone under a read lock held for nanoseconds) and iterate
//! it without any lock, so a slow reader never blocks a writer and the other way round. Writers
//! copy the list, change the copy and swap it in.
//!
//! ```
//! use stream_core::CowList;
//!
//! let list = CowList::new();
//! list.push(1);
//! list.push(2);
//! let before = list.snapshot();
//! assert_eq!(list.retain(|n| *n != 1), 1);
//! assert_eq!(*before, vec![1, 2]); // a snapshot does not change
//! assert_eq!(*list.snapshot(), vec![2]);
//! ```

use std::sync::{Arc, RwLock};

/// A copy-on-write list (see the module docs). A poisoned lock is recovered: every write
/// swaps in a whole new list, so a panicking writer leaves the old one intact.
#[derive(Debug)]
pub struct CowList<T> {
    items: RwLock<Arc<Vec<T>>>,
}

impl<T> Default for CowList<T> {
    fn default() -> Self {
        Self {
            items: RwLock::new(Arc::new(Vec::new())),
        }
    }
}

impl<T: Clone> CowList<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The list as it is now; later changes do not show in it.
    pub fn snapshot(&self) -> Arc<Vec<T>> {
        match self.items.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes a copy of the list and makes it the current one; returns what `change` returns.
    pub fn update<R>(&self, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut guard = match self.items.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        let out = change(&mut next);
        *guard = Arc::new(next);
        out
    }

    /// Appends an item.
    pub fn push(&self, item: T) {
        self.update(|items| items.push(item));
    }

    /// Keeps the items for which `keep` is true; returns how many were removed.
    pub fn retain(&self, mut keep: impl FnMut(&T) -> bool) -> usize {
        self.update(|items| {
            let before = items.len();
            items.retain(|item| keep(item));
            before - items.len()
        })
    }

    /// Removes every item.
    pub fn clear(&self) {
        self.update(Vec::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_do_not_change_snapshots_taken_before() {
        let list = CowList::new();
        list.push("a");
        let first = list.snapshot();
        list.push("b");
        list.clear();
        assert_eq!(*first, vec!["a"]);
        assert!(list.snapshot().is_empty());
        assert_eq!(list.update(|items| items.len()), 0);
    }
}
