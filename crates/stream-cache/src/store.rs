//! [`CachedStore`]: any [`Store`] behind the cache.

use stream_core::{Namespace, Query, Row, Store, StoreError};

use crate::cache::{Cache, Lookup};

/// What a [`CachedStore`] caches after a write the store accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WritePolicy {
    /// The row as written: the next read is a hit. Right when the store keeps rows exactly as
    /// given (MongoDB documents, tables without defaults, triggers or `ON UPDATE` columns).
    #[default]
    CacheWritten,
    /// Nothing: the next read asks the store, and caches the row as the store keeps it. For
    /// tables whose stored row differs from the written one (column defaults, triggers,
    /// `ON UPDATE CURRENT_TIMESTAMP`, values converted to the column's type).
    Invalidate,
}

/// A [`Store`] that answers reads and queries from a [`Cache`] when it can.
///
/// - `read`: the cache, else the store (and the answer is cached, "no such row" included);
/// - `query`: the cached result, else the store (and the result is cached);
/// - `write`: the store, then the written row is cached so a read right after sees it (see
///   [`WritePolicy`]), unless another change of the key raced with the write;
/// - `delete`: the store, then "no such row" is cached likewise.
///
/// Writes and deletes drop the namespace's cached query results. Writes made by anyone else
/// reach the cache through [`Cache::apply`]: feed it the change events of the namespaces read
/// through this store.
#[derive(Debug, Clone)]
pub struct CachedStore<S> {
    store: S,
    cache: Cache,
    policy: WritePolicy,
}

impl<S: Store> CachedStore<S> {
    /// `store` behind `cache`, caching written rows as written.
    pub fn new(store: S, cache: Cache) -> Self {
        Self {
            store,
            cache,
            policy: WritePolicy::default(),
        }
    }

    /// What to cache after a write.
    pub fn with_write_policy(mut self, policy: WritePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The cache (clone it to feed it change events).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The wrapped store: reads and writes made through it bypass the cache.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The wrapped store and the cache.
    pub fn into_parts(self) -> (S, Cache) {
        (self.store, self.cache)
    }
}

#[async_trait::async_trait]
impl<S: Store> Store for CachedStore<S> {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        if let Lookup::Hit(row) = self.cache.get(ns, key).await {
            return Ok(row);
        }
        let ticket = self.cache.ticket(ns);
        let row = self.store.read(ns, key).await?;
        self.cache.fill(ns, key, row.clone(), ticket).await;
        Ok(row)
    }

    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        let ticket = self.cache.begin_write(ns, key);
        match self.store.write(ns, key, row).await {
            Ok(()) => {
                match self.policy {
                    WritePolicy::CacheWritten => ticket.finish(Some(row.clone())).await,
                    WritePolicy::Invalidate => ticket.abort().await,
                }
                Ok(())
            }
            Err(e) => {
                ticket.abort().await;
                Err(e)
            }
        }
    }

    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        let ticket = self.cache.begin_write(ns, key);
        match self.store.delete(ns, key).await {
            Ok(existed) => {
                ticket.finish(None).await;
                Ok(existed)
            }
            Err(e) => {
                ticket.abort().await;
                Err(e)
            }
        }
    }

    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        if let Some(rows) = self.cache.get_query(ns, query).await {
            return Ok(rows);
        }
        let ticket = self.cache.ticket(ns);
        let rows = self.store.query(ns, query).await?;
        self.cache.fill_query(ns, query, rows.clone(), ticket).await;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use stream_core::{ChangeEvent, Filter, MemoryStore, Value};

    use super::*;
    use crate::CacheConfig;

    use crate::fixtures::{event, key, ns, row};

    fn update(id: i64, before: &str, after: &str) -> ChangeEvent {
        let (before, after) = (Some(row(id, before)), Some(row(id, after)));
        event(ns(), Some(key(id)), before, after)
    }

    async fn cached() -> CachedStore<MemoryStore> {
        let cache = Cache::new(CacheConfig::default()).await.expect("cache");
        CachedStore::new(MemoryStore::new(), cache)
    }

    #[tokio::test]
    async fn reads_are_served_from_the_cache_after_the_first() {
        let s = cached().await;
        s.store()
            .write(&ns(), &key(1), &row(1, "new"))
            .await
            .expect("seed");
        for _ in 0..3 {
            assert_eq!(
                s.read(&ns(), &key(1)).await.expect("read"),
                Some(row(1, "new"))
            );
        }
        assert_eq!(s.read(&ns(), &key(2)).await.expect("read"), None);
        assert_eq!(s.read(&ns(), &key(2)).await.expect("read"), None);
        let stats = s.cache().stats();
        assert_eq!((stats.hits, stats.misses), (3, 2));
    }

    #[tokio::test]
    async fn your_own_writes_and_deletes_are_read_back_from_the_cache() {
        let s = cached().await;
        s.write(&ns(), &key(1), &row(1, "new"))
            .await
            .expect("write");
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "new"))
        );
        s.write(&ns(), &key(1), &row(1, "paid"))
            .await
            .expect("write");
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "paid"))
        );
        assert!(s.delete(&ns(), &key(1)).await.expect("delete"));
        assert_eq!(s.read(&ns(), &key(1)).await.expect("read"), None);
        let stats = s.cache().stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (3, 0),
            "every read came from the cache"
        );
        assert_eq!(s.store().read(&ns(), &key(1)).await.expect("read"), None);
    }

    #[tokio::test]
    async fn a_change_by_another_client_is_read_once_its_event_arrived() {
        let s = cached().await;
        s.write(&ns(), &key(1), &row(1, "new"))
            .await
            .expect("write");
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "new"))
        );
        // Another client changes the row behind the cache's back.
        s.store()
            .write(&ns(), &key(1), &row(1, "paid"))
            .await
            .expect("other client");
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "new")),
            "until its event arrives the cache answers"
        );
        s.cache().apply(&update(1, "new", "paid")).await;
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "paid"))
        );
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "paid"))
        );
        let stats = s.cache().stats();
        assert_eq!((stats.hits, stats.misses, stats.invalidations), (3, 1, 1));
    }

    #[tokio::test]
    async fn query_results_are_cached_until_the_namespace_changes() {
        let s = cached().await;
        for (id, status) in [(1, "paid"), (2, "new"), (3, "paid")] {
            s.write(&ns(), &key(id), &row(id, status))
                .await
                .expect("write");
        }
        let paid = Query::filter(Filter::Eq("status".into(), "paid".into())).order_by("id", true);
        let expect = vec![row(1, "paid"), row(3, "paid")];
        assert_eq!(s.query(&ns(), &paid).await.expect("query"), expect);
        assert_eq!(s.query(&ns(), &paid).await.expect("query"), expect);
        // A write through the cached store drops the results.
        s.write(&ns(), &key(2), &row(2, "paid"))
            .await
            .expect("write");
        let all_paid = vec![row(1, "paid"), row(2, "paid"), row(3, "paid")];
        assert_eq!(s.query(&ns(), &paid).await.expect("query"), all_paid);
        // So does the event of a write by another client.
        s.store()
            .write(&ns(), &key(3), &row(3, "new"))
            .await
            .expect("other client");
        assert_eq!(
            s.query(&ns(), &paid).await.expect("query"),
            all_paid,
            "not yet"
        );
        s.cache().apply(&update(3, "paid", "new")).await;
        assert_eq!(
            s.query(&ns(), &paid).await.expect("query"),
            vec![row(1, "paid"), row(2, "paid")]
        );
        let stats = s.cache().stats();
        assert_eq!((stats.query_hits, stats.query_misses), (2, 3));
    }

    #[tokio::test]
    async fn a_failed_write_leaves_the_key_to_the_store() {
        let s = cached().await;
        s.write(&ns(), &key(1), &row(1, "new"))
            .await
            .expect("write");
        let err = s
            .write(&ns(), &key(1), &row(2, "mismatch"))
            .await
            .expect_err("the key does not match the row");
        assert!(err.to_string().contains("shop.orders"), "{err}");
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "new"))
        );
        assert_eq!(
            s.cache().stats().misses,
            1,
            "the failed write invalidated the key"
        );
    }

    #[tokio::test]
    async fn the_invalidate_policy_reads_back_what_the_store_keeps() {
        let s = cached().await.with_write_policy(WritePolicy::Invalidate);
        s.write(&ns(), &key(1), &row(1, "new"))
            .await
            .expect("write");
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "new"))
        );
        assert_eq!(
            s.read(&ns(), &key(1)).await.expect("read"),
            Some(row(1, "new"))
        );
        assert!(s.delete(&ns(), &key(1)).await.expect("delete"));
        assert_eq!(s.read(&ns(), &key(1)).await.expect("read"), None);
        let stats = s.cache().stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (2, 1),
            "a miss after the write only"
        );
    }

    /// A store that lets other tasks run before and after every operation, and records the
    /// commit order of the rows written (by their unique `status`).
    #[derive(Default)]
    struct Racy {
        store: MemoryStore,
        commits: tokio::sync::Mutex<std::collections::HashMap<String, u64>>,
    }

    impl Racy {
        /// The commit number of the row read (0 for "no such row").
        async fn commit_of(&self, row: &Option<Row>) -> u64 {
            let Some(Value::String(status)) = row.as_ref().and_then(|r| r.get("status")) else {
                return 0;
            };
            self.commits.lock().await.get(status).copied().unwrap_or(0)
        }
    }

    #[async_trait::async_trait]
    impl Store for Racy {
        async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
            tokio::task::yield_now().await;
            let out = self.store.read(ns, key).await;
            tokio::task::yield_now().await;
            out
        }
        async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
            tokio::task::yield_now().await;
            {
                let mut commits = self.commits.lock().await;
                self.store.write(ns, key, row).await?;
                let n = commits.len() as u64 + 1;
                if let Some(Value::String(status)) = row.get("status") {
                    commits.insert(status.clone(), n);
                }
            }
            tokio::task::yield_now().await;
            Ok(())
        }
        async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
            self.store.delete(ns, key).await
        }
        async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
            tokio::task::yield_now().await;
            let out = self.store.query(ns, query).await;
            tokio::task::yield_now().await;
            out
        }
    }

    /// Writers through the cache, another client whose events are applied right after its
    /// writes, and readers, on three keys: every read made after a write returned, or after
    /// the event of a write was applied, sees that write or a later one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_readers_writers_and_events_never_read_older_than_the_last_applied() {
        let cache = Cache::new(CacheConfig::default()).await.expect("cache");
        let s = std::sync::Arc::new(CachedStore::new(Racy::default(), cache));
        let all = Query::filter(Filter::All).order_by("id", true);
        let mut tasks = Vec::new();
        for task in 0..6_u64 {
            let s = s.clone();
            let all = all.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = task * 7919 + 1;
                let mut next = move || {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    seed >> 33
                };
                for i in 0..1500 {
                    let id = (next() % 3) as i64;
                    let status = format!("t{task}-{i}");
                    match (task % 3, next() % 4) {
                        // Through the cache: read-your-own-writes.
                        (0, _) => {
                            s.write(&ns(), &key(id), &row(id, &status))
                                .await
                                .expect("write");
                            let written = s.store().commit_of(&Some(row(id, &status))).await;
                            let read = s.read(&ns(), &key(id)).await.expect("read");
                            let seen = s.store().commit_of(&read).await;
                            assert!(seen >= written, "own write {written} read back as {seen}");
                        }
                        // Another client: the store, then its event.
                        (1, _) => {
                            let mine = Some(row(id, &status));
                            s.store()
                                .write(&ns(), &key(id), &row(id, &status))
                                .await
                                .expect("write");
                            let written = s.store().commit_of(&mine).await;
                            s.cache().apply(&update(id, "?", &status)).await;
                            let read = s.read(&ns(), &key(id)).await.expect("read");
                            let seen = s.store().commit_of(&read).await;
                            assert!(seen >= written, "event of {written} applied, read {seen}");
                        }
                        (_, 0) => {
                            s.query(&ns(), &all).await.expect("query");
                        }
                        _ => {
                            s.read(&ns(), &key(id)).await.expect("read");
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        for id in 0..3 {
            let truth = s.store().read(&ns(), &key(id)).await.expect("read");
            assert_eq!(
                s.read(&ns(), &key(id)).await.expect("read"),
                truth,
                "key {id}"
            );
        }
        let truth = s.store().query(&ns(), &all).await.expect("query");
        assert_eq!(s.query(&ns(), &all).await.expect("query"), truth);
        let stats = s.cache().stats();
        assert!(stats.hits > 0 && stats.stale_fills > 0, "{stats:?}");
    }
}
