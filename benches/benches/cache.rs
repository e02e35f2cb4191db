//! stream-cache: a hit, a miss, and the invalidation a change event causes.
//! Run: `cargo bench -p ultimate-stream-benches --bench cache`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stream_cache::{Cache, CacheConfig, Lookup};
use stream_core::{ChangeEvent, Namespace, Op, Position, Row, SourceKind, Value};

const KEYS: i64 = 10_000;

fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

fn row(id: i64) -> Row {
    [
        ("id", Value::Int(id)),
        ("name", Value::String(format!("customer {id}"))),
        ("balance", Value::Double(12.5)),
    ]
    .into_iter()
    .collect()
}

fn cache_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ns = Namespace::new("shop", "customers");
    let cache = runtime.block_on(async {
        let cache = Cache::new(CacheConfig::default()).await.expect("cache");
        for id in 0..KEYS {
            let ticket = cache.ticket(&ns);
            cache.fill(&ns, &key(id), Some(row(id)), ticket).await;
        }
        cache
    });
    let keys: Vec<Row> = (0..KEYS).map(key).collect();
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let hit = runtime.block_on(cache.get(&ns, &keys[i]));
            assert!(matches!(hit, Lookup::Hit(Some(_))));
        })
    });
    let absent = key(KEYS + 1);
    group.bench_function("get_miss", |b| {
        b.iter(|| runtime.block_on(cache.get(&ns, &absent)))
    });
    let events: Vec<ChangeEvent> = (0..KEYS)
        .map(|id| ChangeEvent {
            source: SourceKind::MySql,
            namespace: ns.clone(),
            op: Op::Update,
            key: Some(key(id)),
            before: Some(row(id)),
            after: Some(row(id)),
            update: None,
            position: Position::binlog("b.000001", 4, 0),
            ts_ms: 0,
            txn: None,
        })
        .collect();
    group.bench_function("apply_update_event", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            runtime.block_on(cache.apply(&events[i]));
        })
    });
    group.finish();
}

mod harness {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, cache_benches);
}
criterion_main!(harness::benches);
