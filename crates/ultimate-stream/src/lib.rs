//! ultimate-stream: turn MySQL/MariaDB and MongoDB into live change streams.
//!
//! This facade re-exports the crates of the workspace behind feature flags, so an application
//! compiles only what it uses:
//!
//! | feature | crate | status |
//! | --- | --- | --- |
//! | (always) | [`core`] (`stream-core`): events, positions, JSON, `Hub`, traits | ready |
//! | `mysql` | `stream-mysql`: binlog CDC, snapshot, polling, `Store` for MySQL and MariaDB | ready |
//! | `mongo` | `stream-mongo`: change streams, snapshot, polling, `Store` for MongoDB | ready |
//! | `cache` | `stream-cache`: reads kept fresh by the change stream | not implemented yet |
//! | `heartbeat` | `stream-heartbeat`: probes, circuit breaker, reconnect | not implemented yet |
//! | `edge` | `stream-edge`: retries, validation, dead letters, dedup | not implemented yet |
//! | `premium` | `stream-premium`: auth, ACL, field encryption | not implemented yet |
//! | `full` | all of the above | |
//!
//! ```
//! use ultimate_stream::core::{Hub, SubscribeOptions};
//!
//! let hub = Hub::new();
//! let _orders = hub.subscribe("shop.orders", SubscribeOptions::default()).unwrap();
//! assert_eq!(hub.subscriber_count(), 1);
//! ```

pub use stream_core as core;
pub use stream_core::{
    Batch, ChangeEvent, Checkpoint, CheckpointStore, Delivery, FileCheckpointStore, Hub, Namespace,
    Op, Position, Row, Sink, Source, StartFrom, Store, SubscribeOptions, Value,
};

#[cfg(feature = "cache")]
pub use stream_cache as cache;
#[cfg(feature = "edge")]
pub use stream_edge as edge;
#[cfg(feature = "heartbeat")]
pub use stream_heartbeat as heartbeat;
#[cfg(feature = "mongo")]
pub use stream_mongo as mongo;
#[cfg(feature = "mysql")]
pub use stream_mysql as mysql;
#[cfg(feature = "premium")]
pub use stream_premium as premium;
