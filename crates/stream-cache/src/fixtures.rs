//! Rows and keys the unit tests share.

use stream_core::{ChangeEvent, Namespace, Op, Row, SourceKind, Value};

pub(crate) fn ns() -> Namespace {
    Namespace::new("shop", "orders")
}

pub(crate) fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

/// An update event of `ns` (a MySQL one, at a fixed position).
pub(crate) fn event(
    ns: Namespace,
    key: Option<Row>,
    before: Option<Row>,
    after: Option<Row>,
) -> ChangeEvent {
    ChangeEvent {
        source: SourceKind::MySql,
        namespace: ns,
        op: Op::Update,
        key,
        before,
        after,
        update: None,
        position: "binlog:mysql-bin.000001:4+1".parse().expect("position"),
        ts_ms: 0,
        txn: None,
    }
}

pub(crate) fn row(id: i64, status: &str) -> Row {
    [("id", Value::Int(id)), ("status", Value::from(status))]
        .into_iter()
        .collect()
}
