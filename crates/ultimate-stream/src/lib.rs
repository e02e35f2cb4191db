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
//! | `cache` | `stream-cache`: reads kept fresh by the change stream (in-process tier) | ready |
//! | `redis` | `cache` plus `stream-cache`'s Redis second tier, shared by several processes | ready |
//! | `heartbeat` | `stream-heartbeat`: probes, circuit breaker, reconnect | ready |
//! | `edge` | `stream-edge`: retries, validation, dead letters, dedup | ready |
//! | `streamer` | the [`Streamer`] (needs `heartbeat`, `edge`; add `mysql`, `mongo`, `cache`) | ready |
//! | `full` | all of the above | |
//! | `premium` | `stream-premium`: auth, ACL, field encryption (not in `full`) | not implemented yet |
//!
//! With `features = ["full"]`, the [`Streamer`] runs everything; `use
//! ultimate_stream::prelude::*` brings what its users need. This program (the crate's
//! `examples/quickstart.rs`, run against MariaDB by the test suite) prints every change of
//! database `shop`, and resumes where it stopped after a restart:
//!
#![cfg_attr(all(feature = "streamer", feature = "mysql"), doc = "```no_run")]
#![cfg_attr(
    all(feature = "streamer", feature = "mysql"),
    doc = include_str!("../examples/quickstart.rs")
)]
#![cfg_attr(all(feature = "streamer", feature = "mysql"), doc = "```")]
//!
//! Every option, reads and writes through the cache, pushed events, health and metrics:
//! `examples/tour.rs` and the guide `docs/streamer.md` in the repository.
//!
//! The hub alone, without a server:
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
    Batch, BatchConfig, ChangeEvent, Checkpoint, CheckpointStore, Delivery, FileCheckpointStore,
    Filter, Hub, Namespace, Op, Position, Query, Row, Sink, SinkError, Source, StartFrom, Store,
    SubscribeOptions, Value,
};

#[cfg(feature = "streamer")]
pub mod prelude;
#[cfg(feature = "streamer")]
mod streamer;
#[cfg(feature = "streamer")]
pub use streamer::{
    Handler, HandlerError, HandlerId, MetricsSnapshot, SourceHealth, Streamer, StreamerBuilder,
    StreamerError, Subscription,
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
