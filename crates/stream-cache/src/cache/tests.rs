//! The local tier: hits, misses, TTL, LRU, invalidation races, writes through the streamer.

use std::time::{Duration, Instant};

use stream_core::{Filter, SourceKind, Value};

use super::*;

use crate::fixtures::{event, key, ns, row};

async fn cache(config: CacheConfig) -> Cache {
    Cache::new(config).await.expect("cache")
}

async fn filled(c: &Cache, id: i64, status: &str) {
    let t = c.ticket(&ns());
    c.fill(&ns(), &key(id), Some(row(id, status)), t).await;
}

#[tokio::test]
async fn hits_misses_and_cached_absence_are_counted() {
    let c = cache(CacheConfig::default()).await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    filled(&c, 1, "new").await;
    let t = c.ticket(&ns());
    c.fill(&ns(), &key(2), None, t).await;
    assert_eq!(
        c.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "new")))
    );
    assert_eq!(c.get(&ns(), &key(2)).await, Lookup::Hit(None));
    // The contract JSON of the key is what counts: UInt(1) is the same key as Int(1).
    let unsigned: Row = [("id", Value::UInt(1))].into_iter().collect();
    assert!(c.get(&ns(), &unsigned).await.is_hit());
    assert_eq!(
        c.get(&Namespace::new("shop", "other"), &key(1)).await,
        Lookup::Miss
    );
    c.run_pending_tasks().await;
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.entries), (3, 2, 2));
    assert_eq!((s.evictions, s.invalidations, s.stale_fills), (0, 0, 0));
    let json = serde_json::to_value(s).expect("stats serialise");
    assert_eq!(json["hits"], 3);
}

/// Polls `done` until it holds, failing after `within`: waiting for a condition, not a time.
async fn wait_until<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// moka keeps time with `std::time::Instant` (its mock clock is private to moka's own tests),
/// so tokio's paused time cannot drive the TTL. This test runs on the real clock with a short
/// TTL and checks both bounds without a fixed sleep: a row read back within the TTL is a hit,
/// and the first miss comes no earlier than the TTL after the fill. A stalled machine makes it
/// retry or wait longer, never fail.
#[tokio::test]
async fn entries_expire_after_the_ttl_and_count_as_evictions() {
    const TTL: Duration = Duration::from_millis(50);
    let c = cache(CacheConfig {
        ttl: Some(TTL),
        ..CacheConfig::default()
    })
    .await;
    // Fill and read back within the TTL; a read that came too late to tell retries on a new key.
    let mut id = 0;
    let filled_at = loop {
        id += 1;
        assert!(id <= 20, "no fill was read back within {TTL:?}");
        let at = Instant::now();
        filled(&c, id, "new").await;
        let hit = c.get(&ns(), &key(id)).await.is_hit();
        if at.elapsed() < TTL {
            assert!(hit, "gone {:?} after the fill", at.elapsed());
            break at;
        }
    };
    wait_until(Duration::from_secs(10), || async {
        c.get(&ns(), &key(id)).await == Lookup::Miss
    })
    .await;
    let lived = filled_at.elapsed();
    assert!(lived >= TTL, "expired after {lived:?}, before the TTL");
    c.run_pending_tasks().await;
    let s = c.stats();
    let filled = u64::try_from(id).expect("small");
    assert_eq!((s.evictions, s.entries), (filled, 0), "every fill expired");
}

#[tokio::test]
async fn the_least_recently_used_row_is_evicted_beyond_max_entries() {
    let c = cache(CacheConfig {
        max_entries: 2,
        ..CacheConfig::default()
    })
    .await;
    filled(&c, 1, "a").await;
    filled(&c, 2, "b").await;
    c.run_pending_tasks().await;
    assert!(
        c.get(&ns(), &key(1)).await.is_hit(),
        "1 is now more recent than 2"
    );
    c.run_pending_tasks().await;
    filled(&c, 3, "c").await;
    c.run_pending_tasks().await;
    let s = c.stats();
    assert_eq!((s.evictions, s.entries), (1, 2));
    assert_eq!(c.get(&ns(), &key(2)).await, Lookup::Miss);
    assert!(c.get(&ns(), &key(1)).await.is_hit());
    assert!(c.get(&ns(), &key(3)).await.is_hit());
}

#[tokio::test]
async fn a_fill_that_raced_with_an_invalidation_is_dropped() {
    let c = cache(CacheConfig::default()).await;
    // A read misses and takes its ticket, then reads the store: the old row.
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    let ticket = c.ticket(&ns());
    let old = row(1, "new");
    // Meanwhile the change is committed and its event applied.
    c.apply(&event(
        ns(),
        Some(key(1)),
        Some(old.clone()),
        Some(row(1, "paid")),
    ))
    .await;
    // The read finishes: without generations the old row would stay until the TTL.
    c.fill(&ns(), &key(1), Some(old), ticket).await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    assert_eq!(c.stats().stale_fills, 1);
    // A read that starts after the event caches what it read.
    filled(&c, 1, "paid").await;
    assert_eq!(
        c.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "paid")))
    );
}

#[tokio::test]
async fn other_keys_and_namespace_invalidations_race_as_expected() {
    let c = cache(CacheConfig::default()).await;
    let ticket = c.ticket(&ns());
    c.invalidate(&ns(), &key(2)).await;
    c.fill(&ns(), &key(1), Some(row(1, "a")), ticket.clone())
        .await;
    assert!(
        c.get(&ns(), &key(1)).await.is_hit(),
        "another key's invalidation is no race"
    );
    c.invalidate_namespace(&ns()).await;
    c.fill(&ns(), &key(3), Some(row(3, "a")), ticket).await;
    assert_eq!(c.get(&ns(), &key(3)).await, Lookup::Miss);
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    // A ticket of another namespace is ignored.
    let foreign = c.ticket(&Namespace::new("shop", "users"));
    c.fill(&ns(), &key(4), Some(row(4, "a")), foreign).await;
    assert_eq!(c.get(&ns(), &key(4)).await, Lookup::Miss);
}

#[tokio::test]
async fn events_invalidate_their_key_and_the_namespace_queries() {
    let c = cache(CacheConfig::default()).await;
    filled(&c, 1, "a").await;
    filled(&c, 2, "b").await;
    let q = Query::filter(Filter::Eq("status".into(), "a".into()));
    let t = c.ticket(&ns());
    c.fill_query(&ns(), &q, vec![row(1, "a")], t).await;
    assert_eq!(c.get_query(&ns(), &q).await, Some(vec![row(1, "a")]));
    let users = Namespace::new("shop", "users");
    let t = c.ticket(&users);
    c.fill(&users, &key(1), Some(row(1, "u")), t.clone()).await;
    c.fill_query(&users, &q, vec![], t).await;

    c.apply(&event(
        ns(),
        Some(key(1)),
        Some(row(1, "a")),
        Some(row(1, "z")),
    ))
    .await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    assert!(c.get(&ns(), &key(2)).await.is_hit());
    assert_eq!(c.get_query(&ns(), &q).await, None);
    assert!(
        c.get(&users, &key(1)).await.is_hit(),
        "other namespaces keep theirs"
    );
    assert_eq!(c.get_query(&users, &q).await, Some(vec![]));

    // No key (a table without primary key): the whole namespace goes.
    c.apply(&event(ns(), None, None, Some(row(9, "x")))).await;
    assert_eq!(c.get(&ns(), &key(2)).await, Lookup::Miss);
    assert!(c.get(&users, &key(1)).await.is_hit());
    let s = c.stats();
    assert_eq!((s.query_hits, s.query_misses, s.invalidations), (2, 1, 2));
}

#[tokio::test]
async fn an_update_of_the_primary_key_invalidates_both_keys() {
    let c = cache(CacheConfig::default()).await;
    filled(&c, 1, "a").await;
    let t = c.ticket(&ns());
    c.fill(&ns(), &key(2), None, t).await;
    c.apply(&event(
        ns(),
        Some(key(2)),
        Some(row(1, "a")),
        Some(row(2, "a")),
    ))
    .await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    assert_eq!(c.get(&ns(), &key(2)).await, Lookup::Miss);
}

#[tokio::test]
async fn an_old_event_never_brings_back_an_old_row() {
    let c = cache(CacheConfig::default()).await;
    c.put(&ns(), &key(1), Some(row(1, "v2"))).await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Hit(Some(row(1, "v2"))));
    // The event of an earlier change arrives after the write: it invalidates, it does
    // not update in place (which would cache "v1").
    c.apply(&event(ns(), Some(key(1)), None, Some(row(1, "v1"))))
        .await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
}

#[tokio::test]
async fn a_write_through_the_streamer_wins_over_reads_that_raced_with_it() {
    let c = cache(CacheConfig::default()).await;
    // A read started before the write and finishes after it.
    let before = c.ticket(&ns());
    let w = c.begin_write(&ns(), &key(1));
    // A read during the write may read either value; it is cached for now...
    let during = c.ticket(&ns());
    c.fill(&ns(), &key(1), Some(row(1, "old")), during.clone())
        .await;
    w.finish(Some(row(1, "new"))).await;
    // ...and the write's end replaces it; the late fills are dropped.
    c.fill(&ns(), &key(1), Some(row(1, "old")), before).await;
    c.fill(&ns(), &key(1), Some(row(1, "old")), during).await;
    assert_eq!(
        c.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "new")))
    );
    assert_eq!(c.stats().stale_fills, 2);
}

#[tokio::test]
async fn a_write_that_raced_with_anything_invalidates_instead_of_caching() {
    let c = cache(CacheConfig::default()).await;
    // Two writes of one key overlap: the store's order is unknown here.
    let first = c.begin_write(&ns(), &key(1));
    let second = c.begin_write(&ns(), &key(1));
    second.finish(Some(row(1, "b"))).await;
    first.finish(Some(row(1, "a"))).await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    // An event arrives while a write is under way.
    let w = c.begin_write(&ns(), &key(1));
    c.apply(&event(ns(), Some(key(1)), None, Some(row(1, "other"))))
        .await;
    w.finish(Some(row(1, "mine"))).await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    // Nothing in the way: read-your-own-writes.
    let w = c.begin_write(&ns(), &key(1));
    w.finish(Some(row(1, "mine"))).await;
    assert_eq!(
        c.get(&ns(), &key(1)).await,
        Lookup::Hit(Some(row(1, "mine")))
    );
    let w = c.begin_write(&ns(), &key(1));
    w.finish(None).await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Hit(None));
}

#[tokio::test]
async fn an_abandoned_write_invalidates_and_does_not_block_later_ones() {
    let c = cache(CacheConfig::default()).await;
    filled(&c, 1, "a").await;
    drop(c.begin_write(&ns(), &key(1)));
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    c.begin_write(&ns(), &key(1)).abort().await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    let w = c.begin_write(&ns(), &key(1));
    w.finish(Some(row(1, "b"))).await;
    assert!(c.get(&ns(), &key(1)).await.is_hit());
}

#[tokio::test]
async fn query_results_die_with_any_change_of_their_namespace() {
    let c = cache(CacheConfig::default()).await;
    let q = Query::filter(Filter::All).order_by("id", true).limit(10);
    let t = c.ticket(&ns());
    c.put(&ns(), &key(5), Some(row(5, "x"))).await;
    c.fill_query(&ns(), &q, vec![], t).await;
    assert_eq!(c.get_query(&ns(), &q).await, None, "a put after the ticket");
    let t = c.ticket(&ns());
    c.fill_query(&ns(), &q, vec![row(5, "x")], t).await;
    assert!(c.get_query(&ns(), &q).await.is_some());
    c.begin_write(&ns(), &key(6))
        .finish(Some(row(6, "y")))
        .await;
    assert_eq!(c.get_query(&ns(), &q).await, None, "a write");
    let t = c.ticket(&ns());
    c.fill_query(&ns(), &q, vec![], t).await;
    c.invalidate(&ns(), &key(7)).await;
    assert_eq!(c.get_query(&ns(), &q).await, None, "an invalidated key");
}

#[tokio::test]
async fn schema_changes_invalidate_what_they_touch() {
    let c = cache(CacheConfig::default()).await;
    let users = Namespace::new("shop", "users");
    let archive = Namespace::new("shop", "archive");
    for n in [ns(), users.clone(), archive.clone()] {
        let t = c.ticket(&n);
        c.fill(&n, &key(1), Some(row(1, "a")), t).await;
    }
    let change = |namespace: Namespace, kind| SchemaChange {
        source: SourceKind::MySql,
        namespace,
        kind,
        statement: None,
        position: "binlog:mysql-bin.000001:4+0".parse().expect("position"),
        ts_ms: 0,
    };
    c.apply_schema(&change(
        ns(),
        SchemaChangeKind::Rename {
            to: archive.clone(),
        },
    ))
    .await;
    assert_eq!(c.get(&ns(), &key(1)).await, Lookup::Miss);
    assert_eq!(c.get(&archive, &key(1)).await, Lookup::Miss);
    assert!(c.get(&users, &key(1)).await.is_hit());
    c.apply_schema(&change(users.clone(), SchemaChangeKind::DropDatabase))
        .await;
    assert_eq!(c.get(&users, &key(1)).await, Lookup::Miss);
}

#[tokio::test]
async fn query_caching_can_be_turned_off() {
    let c = cache(CacheConfig {
        max_query_results: 0,
        ..CacheConfig::default()
    })
    .await;
    let q = Query::filter(Filter::All);
    let t = c.ticket(&ns());
    c.fill_query(&ns(), &q, vec![], t).await;
    assert_eq!(c.get_query(&ns(), &q).await, None);
    assert!(
        Cache::new(CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        })
        .await
        .is_err()
    );
}
