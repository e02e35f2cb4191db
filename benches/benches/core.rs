//! Hot paths of stream-core: JSON encoding of events and Hub fan-out.
//! Run: `cargo bench -p ultimate-stream-benches --bench core`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use stream_core::{
    ChangeEvent, Date, DateTime, Decimal, Hub, Namespace, Op, Position, Row, SourceKind,
    SubscribeOptions, Value,
};

fn order_event(n: i64) -> ChangeEvent {
    let row = |status: &str| -> Row {
        [
            ("id", Value::Int(n)),
            ("customer_id", Value::Int(n % 97)),
            ("status", Value::Enum(status.into())),
            (
                "total",
                Value::Decimal(Decimal::parse("1234.50").expect("decimal")),
            ),
            (
                "note",
                Value::String("deliver to the back door, \"ring twice\"".into()),
            ),
            ("weight", Value::Double(1.25)),
            (
                "placed_at",
                Value::DateTime(
                    DateTime::new(
                        Date::new(2024, 2, 29).expect("date"),
                        12,
                        34,
                        56,
                        123_000,
                        3,
                    )
                    .expect("datetime"),
                ),
            ),
        ]
        .into_iter()
        .collect()
    };
    ChangeEvent {
        source: SourceKind::MySql,
        namespace: Namespace::new("shop", "orders"),
        op: Op::Update,
        key: Some([("id", Value::Int(n))].into_iter().collect()),
        before: Some(row("new")),
        after: Some(row("paid")),
        update: None,
        position: Position::binlog("mysql-bin.000042", 123_456_789, 3),
        ts_ms: 1_732_272_000_000,
        txn: Some("0-1-1042".into()),
    }
}

fn json_encoding(c: &mut Criterion) {
    let events: Vec<ChangeEvent> = (0..1000).map(order_event).collect();
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("encode_update_events", |b| {
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            buf.clear();
            for ev in &events {
                ev.write_json(&mut buf);
                buf.push(b'\n');
            }
            buf.len()
        });
    });
    group.finish();
}

fn hub_fan_out(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let events: Vec<Arc<ChangeEvent>> = (0..1000).map(|n| Arc::new(order_event(n))).collect();
    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(events.len() as u64));
    for subscribers in [1usize, 10, 100] {
        group.bench_with_input(
            BenchmarkId::new("fan_out", subscribers),
            &subscribers,
            |b, &subscribers| {
                b.iter(|| {
                    runtime.block_on(async {
                        let hub = Hub::new();
                        let subs: Vec<_> = (0..subscribers)
                            .map(|_| {
                                hub.subscribe("shop.*", SubscribeOptions::default().capacity(2048))
                                    .expect("subscribe")
                            })
                            .collect();
                        hub.publish_all(events.iter().cloned()).await;
                        hub.close();
                        let mut received = 0;
                        for sub in subs {
                            received += sub.count().await;
                        }
                        received
                    })
                });
            },
        );
    }
    group.finish();
}

mod harness {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, json_encoding, hub_fan_out);
}
criterion_main!(harness::benches);
