//! What a user of the [`Streamer`] needs, in one import:
//! `use ultimate_stream::prelude::*;`.
//!
//! The builder's options (`CacheConfig` with feature `cache`, [`HeartbeatConfig`], [`RetryPolicy`],
//! [`FileDeadLetterQueue`], [`BatchConfig`], [`FileCheckpointStore`]), what callbacks and
//! subscriptions hand you ([`ChangeEvent`], [`Delivery`], [`Op`], [`Row`], [`Value`]),
//! queries ([`Query`], [`Filter`]) and the traits whose methods you call
//! ([`DeadLetterQueue`], [`CheckpointStore`], [`Sink`]).

pub use crate::streamer::{
    Handler, HandlerError, HandlerId, MetricsSnapshot, SourceHealth, Streamer, StreamerBuilder,
    StreamerError, Subscription,
};
pub use stream_core::{
    Backoff, BatchConfig, ChangeEvent, CheckpointStore, Delivery, FileCheckpointStore, Filter,
    MemoryCheckpointStore, Namespace, Op, Query, Row, Sink, SinkError, StartFrom, SubscribeOptions,
    Value,
};
pub use stream_edge::{
    DeadLetter, DeadLetterQueue, Decision, FileDeadLetterQueue, MemoryDeadLetterQueue, RetryPolicy,
};
pub use stream_heartbeat::{Health, HealthEvent, HealthEventKind, HeartbeatConfig};

#[cfg(feature = "cache")]
pub use stream_cache::CacheConfig;
