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
//! | `cache` | `stream-cache`: reads kept fresh by the change stream | ready |
//! | `heartbeat` | `stream-heartbeat`: probes, circuit breaker, reconnect | ready |
//! | `edge` | `stream-edge`: retries, validation, dead letters, dedup | ready |
//! | `streamer` | the [`Streamer`] (needs `heartbeat`, `edge`; add `mysql`, `mongo`, `cache`) | ready |
//! | `premium` | `stream-premium`: auth, ACL, field encryption | not implemented yet |
//! | `full` | all of the above | |
//!
//! With `features = ["full"]`, the [`Streamer`] runs everything:
//!
//! ```no_run
//! # #[cfg(feature = "full")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ultimate_stream::{Streamer, FileCheckpointStore, core::{BatchConfig, Row, Value}};
//! use ultimate_stream::cache::CacheConfig;
//!
//! let streamer = Streamer::builder()
//!     .mysql("mysql://app:pw@db:3306/shop")
//!     .checkpoints(FileCheckpointStore::new("state/"))
//!     .cache(CacheConfig::default())
//!     .start().await?;
//! let _orders = streamer.subscribe("shop.orders")?;               // a futures::Stream
//! let id = streamer.on("shop.users", |event| async move {         // at-least-once callback
//!     println!("{}", event.to_json());
//!     Ok(())
//! })?;
//! streamer.on_batch("shop.*", BatchConfig::max(500).within(Duration::from_millis(50)), |batch| async move {
//!     println!("{} changes", batch.len());
//!     Ok(())
//! })?;
//! let key: Row = [("id", Value::Int(7))].into_iter().collect();
//! let _user = streamer.read("shop.users", &key).await?;            // cache first
//! streamer.off(id);
//! println!("{:?} {:?}", streamer.health(), streamer.metrics());
//! streamer.stop().await?;                                          // acknowledged work checkpointed
//! # Ok(()) }
//! ```
//!
//! The hub alone:
//!
//! ```
//! use ultimate_stream::core::{Hub, SubscribeOptions};
//!
//! let hub = Hub::new();
//! let _orders = hub.subscribe("shop.orders", SubscribeOptions::default()).unwrap();
//! assert_eq!(hub.subscriber_count(), 1);
//! ```

// `Streamer` exists only with the `streamer` feature; the docs above name it either way.
#![cfg_attr(not(feature = "streamer"), allow(rustdoc::broken_intra_doc_links))]

pub use stream_core as core;
pub use stream_core::{
    Batch, ChangeEvent, Checkpoint, CheckpointStore, Delivery, FileCheckpointStore, Hub, Namespace,
    Op, Position, Row, Sink, Source, StartFrom, Store, SubscribeOptions, Value,
};

#[cfg(feature = "streamer")]
mod streamer;
#[cfg(feature = "streamer")]
pub use streamer::{
    HandlerError, HandlerId, MetricsSnapshot, Streamer, StreamerBuilder, StreamerError,
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
