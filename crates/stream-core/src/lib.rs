//! The core of ultimate-stream: the event model, positions, the canonical JSON encoding, the
//! `Source`/`Sink`/`CheckpointStore`/`Store` traits and the [`Hub`] that fans events out.
//!
//! Connectors (`stream-mysql`, `stream-mongo`) produce [`ChangeEvent`]s; everything else
//! (subscribers, caches, sinks, the CLI) consumes them through this crate only.
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use stream_core::{ChangeEvent, Delivery, Hub, Namespace, Op, Position, Row, SourceKind,
//!                   SubscribeOptions, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new();
//! let mut orders = hub.subscribe("shop.orders", SubscribeOptions::default())?;
//!
//! let row: Row = [("id", Value::Int(7)), ("status", Value::from("paid"))].into_iter().collect();
//! hub.publish(Arc::new(ChangeEvent {
//!     source: SourceKind::MySql,
//!     namespace: Namespace::new("shop", "orders"),
//!     op: Op::Insert,
//!     key: Some([("id", Value::Int(7))].into_iter().collect()),
//!     before: None,
//!     after: Some(row),
//!     update: None,
//!     position: "binlog:mysql-bin.000001:4+1".parse::<Position>()?,
//!     ts_ms: 1_732_272_000_000,
//!     txn: None,
//! })).await;
//!
//! let Some(Delivery::Event(event)) = orders.next().await else { panic!("no event") };
//! assert_eq!(
//!     event.to_json(),
//!     r#"{"source":"mysql","db":"shop","table":"orders","op":"insert","key":{"id":7},"before":null,"after":{"id":7,"status":"paid"},"position":"binlog:mysql-bin.000001:4+1","ts_ms":1732272000000,"txn":null}"#
//! );
//! # Ok(()) }
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`value`] | [`Value`], [`Row`], exact decimals, temporal types, JSON documents |
//! | [`event`] | [`ChangeEvent`], [`SchemaChange`], [`Batch`] |
//! | [`position`] | typed [`Position`]s: binlog file/offset, MariaDB and MySQL GTIDs, MongoDB tokens |
//! | [`json`] | the canonical JSON encoding (`docs/event-json.md`) |
//! | [`hub`] | fan-out with backpressure or lag reporting |
//! | [`cow_list`] | [`CowList`]: the copy-on-write list of subscribers and consumers |
//! | [`Backoff`] | capped exponential delays with jitter, for retries and reconnects |
//! | [`redact_url`], [`UrlParts`] | connection URLs in messages, without their secrets |
//! | [`batch`] | batching by count, bytes and time |
//! | [`source`], [`sink`], [`checkpoint`], [`store`] | the traits connectors implement |

mod backoff;
pub mod batch;
pub mod checkpoint;
pub mod cow_list;
pub mod event;
pub mod hex;
pub mod hub;
pub mod json;
mod json_stream;
pub mod pattern;
pub mod position;
pub mod probe;
pub mod reconnect;
mod redact;
pub mod schedule;
pub mod sink;
pub mod source;
pub mod store;
pub mod value;

pub use backoff::{Backoff, BackoffField, InvalidBackoff};
pub use batch::{BatchConfig, ByteSize, batched};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, FileCheckpointStore, MemoryCheckpointStore,
};
pub use cow_list::CowList;
pub use event::{
    Batch, ChangeEvent, Namespace, Op, SchemaChange, SchemaChangeKind, SourceEvent, SourceKind,
    UpdateDescription, now_ms,
};
pub use hub::{Delivery, Hub, SubscribeOptions, Subscription};
pub use pattern::{NamespaceFilter, NamespacePattern, PatternError};
pub use position::{
    GtidSet, MariaDbGtid, MariaDbGtidList, MongoPosition, MongoSnapshotProgress, MySqlPosition,
    PollCursor, PollProgress, Position, PositionParseError, SnapshotProgress, TxnStart,
};
pub use probe::Probe;
pub use reconnect::{Reconnect, Retry, reconnecting};
pub use redact::{UrlParts, redact_url};
pub use schedule::{Cron, CronError, PollSchedule};
pub use sink::{Durable, JsonLinesSink, Sink, SinkBatch, SinkError, SinkEvent};
pub use source::{BatchStream, ErrorClass, Opened, Source, SourceError, StartFrom};
pub use store::{Filter, MemoryStore, Query, Store, StoreError};
pub use tokio_util::sync::CancellationToken;
pub use value::{Date, DateTime, Decimal, Json, Name, Row, Time, Timestamp, Value, ValueError};
