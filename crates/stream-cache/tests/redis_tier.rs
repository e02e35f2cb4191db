//! The Redis tier against the Redis that `cargo xtask` starts (`STREAM_TEST_REDIS_URL`).

use std::time::{Duration, Instant};

use stream_cache::{Cache, CacheConfig, CachedStore, Lookup, RedisTier};
use stream_core::{
    Date, DateTime, Decimal, Json, MemoryStore, Namespace, Query, Row, Store, StoreError, Time,
    Timestamp, Value,
};
use stream_testkit::{Server, unique_name};

fn tier(prefix: &str) -> RedisTier {
    let mut tier = RedisTier::new(Server::Redis.url());
    tier.prefix = prefix.to_owned();
    tier.ttl = Duration::from_secs(60);
    // A stall of a loaded machine must not count as a Redis error (which also switches the
    // tier off); the unreachable-server test sets its own.
    tier.timeout = Duration::from_secs(10);
    tier
}

async fn cache(tier: RedisTier) -> Cache {
    Cache::new(CacheConfig {
        redis: Some(tier),
        ..CacheConfig::default()
    })
    .await
    .expect("cache")
}

/// Two caches (two processes) sharing one tier under a prefix of this test's own.
async fn pair() -> (Cache, Cache) {
    let prefix = unique_name("cache");
    (cache(tier(&prefix)).await, cache(tier(&prefix)).await)
}

fn ns() -> Namespace {
    Namespace::new("shop", "orders")
}

fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

fn row(id: i64, status: &str) -> Row {
    [("id", Value::Int(id)), ("status", Value::from(status))]
        .into_iter()
        .collect()
}

/// Reads `id` as a caller would: a miss is answered by `row` from "the store".
async fn read_through(c: &Cache, id: i64, row: Option<Row>) {
    assert_eq!(c.get(&ns(), &key(id)).await, Lookup::Miss);
    let ticket = c.ticket(&ns());
    c.fill(&ns(), &key(id), row, ticket).await;
}

#[tokio::test]
async fn redis_a_second_cache_reads_what_the_first_filled() {
    let (a, b) = pair().await;
    a.check_redis().await.expect("redis answers");
    read_through(&a, 1, Some(row(1, "new"))).await;
    read_through(&a, 2, None).await;
    assert_eq!(
        b.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "new")))
    );
    assert_eq!(b.get(&ns(), &key(2)).await, Lookup::Hit(None));
    let s = b.stats();
    assert_eq!(
        (s.hits, s.redis_hits, s.misses, s.redis_errors),
        (2, 2, 0, 0)
    );
    // Now in b's local tier too.
    assert!(b.get(&ns(), &key(1)).await.is_hit());
    assert_eq!(b.stats().redis_hits, 2);
    assert_eq!(
        b.get(&Namespace::new("shop", "users"), &key(1)).await,
        Lookup::Miss
    );
}

#[tokio::test]
async fn redis_an_invalidation_in_one_cache_reaches_the_others_redis_reads() {
    let (a, b) = pair().await;
    for id in 1..=4 {
        read_through(&a, id, Some(row(id, "new"))).await;
    }
    a.invalidate(&ns(), &key(1)).await;
    assert_eq!(b.get(&ns(), &key(1)).await, Lookup::Miss);
    assert!(b.get(&ns(), &key(2)).await.is_hit());
    a.invalidate_namespace(&ns()).await;
    assert_eq!(b.get(&ns(), &key(3)).await, Lookup::Miss);
    // A row written again after the namespace invalidation is shared again.
    read_through(&a, 3, Some(row(3, "paid"))).await;
    assert_eq!(
        b.get(&ns(), &key(3)).await,
        Lookup::Hit(Some(row(3, "paid")))
    );
    // Everything, for every process: b had never read key 4.
    a.invalidate_all().await;
    assert_eq!(b.get(&ns(), &key(4)).await, Lookup::Miss);
    assert_eq!(a.stats().redis_errors + b.stats().redis_errors, 0);
}

#[tokio::test]
async fn redis_a_fill_that_raced_with_another_process_invalidation_is_not_shared() {
    let (a, b) = pair().await;
    read_through(&a, 1, Some(row(1, "new"))).await;
    // a misses key 2, takes its ticket, reads the store...
    assert_eq!(a.get(&ns(), &key(2)).await, Lookup::Miss);
    let ticket = a.ticket(&ns());
    // ...meanwhile b invalidates the namespace (a keyless change event)...
    b.invalidate_namespace(&ns()).await;
    // ...and a fills what it read before that.
    a.fill(&ns(), &key(2), Some(row(2, "old")), ticket).await;
    assert_eq!(b.get(&ns(), &key(2)).await, Lookup::Miss);
    assert_eq!(b.get(&ns(), &key(1)).await, Lookup::Miss);
}

#[tokio::test]
async fn redis_rows_of_every_kind_arrive_unchanged() {
    let (a, b) = pair().await;
    let date = Date::new(2024, 2, 29).expect("date");
    let doc: Row = [
        ("x", Value::Int(1)),
        ("y", Value::Array(vec![Value::MinKey])),
    ]
    .into_iter()
    .collect();
    let full: Row = [
        ("id", Value::Int(7)),
        ("u", Value::UInt(u64::MAX)),
        ("f", Value::Float(0.1)),
        ("d", Value::Double(-0.0)),
        (
            "dec",
            Value::Decimal(Decimal::parse("19.90").expect("decimal")),
        ),
        ("s", Value::from("café 😀")),
        ("b", Value::Bytes(vec![0, 255])),
        ("j", Value::Json(Json::parse(r#"{"a":[1]}"#).expect("json"))),
        (
            "dt",
            Value::DateTime(DateTime::new(date, 1, 2, 3, 4, 6).expect("datetime")),
        ),
        (
            "ts",
            Value::Timestamp(Timestamp::new(1_709_210_096, 5, 6).expect("timestamp")),
        ),
        (
            "t",
            Value::Time(Time::new(true, 838, 0, 0, 0, 0).expect("time")),
        ),
        ("set", Value::Set(vec!["a".into()])),
        ("oid", Value::ObjectId([7; 12])),
        ("doc", Value::Document(doc)),
        ("null", Value::Null),
    ]
    .into_iter()
    .collect();
    let ticket = a.ticket(&ns());
    assert_eq!(a.get(&ns(), &key(7)).await, Lookup::Miss);
    // The ticket above was taken before a had seen the tier's tokens: nothing is shared.
    a.fill(&ns(), &key(7), Some(full.clone()), ticket).await;
    assert_eq!(b.get(&ns(), &key(7)).await, Lookup::Miss);
    a.invalidate(&ns(), &key(7)).await;
    read_through(&a, 7, Some(full.clone())).await;
    let Lookup::Hit(Some(got)) = b.get(&ns(), &key(7)).await else {
        panic!("b should read the row from redis");
    };
    assert_eq!(format!("{got:?}"), format!("{full:?}"));
}

#[tokio::test]
async fn redis_writes_through_a_cached_store_reach_the_other_process() {
    let (a, b) = pair().await;
    let a = CachedStore::new(MemoryStore::new(), a);
    let b = CachedStore::new(MemoryStore::new(), b);
    // Each process reads the namespace once (and so learns the tier's tokens).
    assert_eq!(a.read(&ns(), &key(1)).await.expect("read"), None);
    a.write(&ns(), &key(1), &row(1, "new"))
        .await
        .expect("write");
    // b's own store is empty: the row can only come from redis.
    assert_eq!(
        b.read(&ns(), &key(1)).await.expect("read"),
        Some(row(1, "new"))
    );
    assert_eq!(b.cache().stats().redis_hits, 1);
    // a deletes; b, like every process sharing the tier, applies the change event.
    a.delete(&ns(), &key(1)).await.expect("delete");
    b.cache().apply(&delete_event(1)).await;
    assert_eq!(b.read(&ns(), &key(1)).await.expect("read"), None);
    assert_eq!(a.read(&ns(), &key(1)).await.expect("read"), None);
}

fn delete_event(id: i64) -> stream_core::ChangeEvent {
    stream_core::ChangeEvent {
        source: stream_core::SourceKind::MySql,
        namespace: ns(),
        op: stream_core::Op::Delete,
        key: Some(key(id)),
        before: Some(row(id, "new")),
        after: None,
        update: None,
        position: "binlog:mysql-bin.000001:4+1".parse().expect("position"),
        ts_ms: 0,
        txn: None,
    }
}

#[tokio::test]
async fn redis_unreachable_falls_back_to_the_store_without_error() {
    let mut tier = RedisTier::new("redis://:hunter2@127.0.0.1:1");
    tier.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let c = cache(tier).await;
    let s = CachedStore::new(MemoryStore::new(), c.clone());
    s.write(&ns(), &key(1), &row(1, "new"))
        .await
        .expect("write");
    assert_eq!(
        s.read(&ns(), &key(1)).await.expect("read"),
        Some(row(1, "new"))
    );
    assert_eq!(s.read(&ns(), &key(2)).await.expect("read"), None);
    assert_eq!(s.read(&ns(), &key(2)).await.expect("read"), None);
    c.invalidate_namespace(&ns()).await;
    assert_eq!(
        s.read(&ns(), &key(1)).await.expect("read"),
        Some(row(1, "new"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let stats = c.stats();
    assert!(stats.redis_errors >= 1, "{stats:?}");
    assert_eq!(stats.redis_hits, 0);
    let err = c
        .check_redis()
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn redis_a_fill_that_raced_with_another_process_key_invalidation_is_refused() {
    let (a, b) = pair().await;
    read_through(&a, 9, None).await; // both learn the tier's clock and tokens
    read_through(&b, 8, None).await;
    // b misses key 1, takes its ticket, reads the store: the old row...
    assert_eq!(b.get(&ns(), &key(1)).await, Lookup::Miss);
    let ticket = b.ticket(&ns());
    // ...meanwhile the change is committed and a applies its event first...
    a.invalidate(&ns(), &key(1)).await;
    // ...then b's fill arrives, before b applied the event: a must not read it from redis.
    b.fill(&ns(), &key(1), Some(row(1, "old")), ticket).await;
    assert_eq!(a.get(&ns(), &key(1)).await, Lookup::Miss);
    // A read that began after the invalidation is shared again.
    read_through(&b, 2, Some(row(2, "x"))).await;
    assert!(a.get(&ns(), &key(2)).await.is_hit());
    b.invalidate(&ns(), &key(1)).await;
    read_through(&b, 1, Some(row(1, "new"))).await;
    assert_eq!(
        a.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "new")))
    );
}

#[tokio::test]
async fn redis_a_fill_that_read_before_another_process_write_cannot_overwrite_it() {
    let prefix = unique_name("cache");
    let (a, b, c) = (
        cache(tier(&prefix)).await,
        cache(tier(&prefix)).await,
        cache(tier(&prefix)).await,
    );
    read_through(&a, 9, None).await;
    read_through(&b, 8, None).await;
    // b reads key 1 (the old row) while a writes it through the streamer.
    assert_eq!(b.get(&ns(), &key(1)).await, Lookup::Miss);
    let ticket = b.ticket(&ns());
    let write = a.begin_write(&ns(), &key(1));
    write.finish(Some(row(1, "new"))).await;
    b.fill(&ns(), &key(1), Some(row(1, "old")), ticket).await;
    // A third process reads a's row from redis, not b's late one.
    assert_eq!(
        c.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "new")))
    );
    assert_eq!(c.stats().redis_hits, 1);
}

/// A store shared by the "processes" of a test: lets other tasks run around every operation
/// and records the commit order of the rows written (by their unique `status`).
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

#[derive(Clone, Default)]
struct Shared(std::sync::Arc<Racy>);

#[async_trait::async_trait]
impl Store for Shared {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        tokio::task::yield_now().await;
        let out = self.0.store.read(ns, key).await;
        tokio::task::yield_now().await;
        out
    }
    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        {
            let mut commits = self.0.commits.lock().await;
            self.0.store.write(ns, key, row).await?;
            let n = commits.len() as u64 + 1;
            if let Some(Value::String(status)) = row.get("status") {
                commits.insert(status.clone(), n);
            }
        }
        tokio::task::yield_now().await;
        Ok(())
    }
    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        self.0.store.delete(ns, key).await
    }
    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        self.0.store.query(ns, query).await
    }
}

fn update(id: i64, status: &str) -> stream_core::ChangeEvent {
    stream_core::ChangeEvent {
        op: stream_core::Op::Update,
        before: None,
        after: Some(row(id, status)),
        ..delete_event(id)
    }
}

/// Two processes sharing a store and a Redis tier, each with a local tier too small for the
/// keys (so reads go to Redis): writers through either, another client, readers. Every change
/// event is applied to both. After a write through a process returned, that process reads it
/// or a later one; once a change's event was applied to both, both read it or a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_processes_under_concurrent_writes_never_read_older_than_the_last_applied() {
    let prefix = unique_name("cache");
    let store = Shared::default();
    let mut procs = Vec::new();
    for _ in 0..2 {
        let c = Cache::new(CacheConfig {
            max_entries: 2,
            redis: Some(tier(&prefix)),
            ..CacheConfig::default()
        })
        .await
        .expect("cache");
        procs.push(std::sync::Arc::new(CachedStore::new(store.clone(), c)));
    }
    let mut tasks = Vec::new();
    for task in 0..6_u64 {
        let (me, other) = if task % 2 == 0 {
            (procs[0].clone(), procs[1].clone())
        } else {
            (procs[1].clone(), procs[0].clone())
        };
        let racy = store.0.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = task * 7919 + 3;
            let mut next = move || {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                seed >> 33
            };
            for i in 0..400 {
                let id = (next() % 3) as i64;
                let status = format!("t{task}-{i}");
                let mine = Some(row(id, &status));
                let written = match task % 3 {
                    0 => {
                        me.write(&ns(), &key(id), &row(id, &status))
                            .await
                            .expect("write");
                        let written = racy.commit_of(&mine).await;
                        let read = me.read(&ns(), &key(id)).await.expect("read");
                        let seen = racy.commit_of(&read).await;
                        assert!(seen >= written, "own write {written} read back as {seen}");
                        written
                    }
                    1 => {
                        me.store()
                            .write(&ns(), &key(id), &row(id, &status))
                            .await
                            .expect("write");
                        racy.commit_of(&mine).await
                    }
                    _ => {
                        me.read(&ns(), &key(id)).await.expect("read");
                        continue;
                    }
                };
                let event = update(id, &status);
                me.cache().apply(&event).await;
                other.cache().apply(&event).await;
                for (name, p) in [("this", &me), ("the other", &other)] {
                    let read = p.read(&ns(), &key(id)).await.expect("read");
                    let seen = racy.commit_of(&read).await;
                    assert!(
                        seen >= written,
                        "event of {written} applied, {name} process read {seen}"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for id in 0..3 {
        let truth = store.read(&ns(), &key(id)).await.expect("read");
        for p in &procs {
            assert_eq!(
                p.read(&ns(), &key(id)).await.expect("read"),
                truth,
                "key {id}"
            );
        }
    }
    let (a, b) = (procs[0].cache().stats(), procs[1].cache().stats());
    assert_eq!(a.redis_errors + b.redis_errors, 0, "{a:?} {b:?}");
    assert!(a.redis_hits + b.redis_hits > 0, "{a:?} {b:?}");
}
