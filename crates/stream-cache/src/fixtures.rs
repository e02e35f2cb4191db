//! Rows and keys the unit tests share.

use stream_core::{Namespace, Row, Value};

pub(crate) fn ns() -> Namespace {
    Namespace::new("shop", "orders")
}

pub(crate) fn key(id: i64) -> Row {
    [("id", Value::Int(id))].into_iter().collect()
}

pub(crate) fn row(id: i64, status: &str) -> Row {
    [("id", Value::Int(id)), ("status", Value::from(status))]
        .into_iter()
        .collect()
}
