//! Connection health for ultimate-stream: per-source probes, a circuit breaker, reconnect with
//! exponential backoff and jitter, and a stream of health events.
//!
//! A [`Monitor`] watches one source. Its probe loop pings the server through a [`Probe`] and
//! asks whether the server's position moves while the stream's does not; the pipeline tells it
//! what it delivered and when its connection dropped or came back. Subscribers receive a
//! [`HealthEvent`] whenever [`Health`] changes (`healthy`, `degraded`, `unhealthy`) and when the
//! connection is lost or restored. [`reconnect()`] reopens a source from its last checkpoint,
//! retrying transient errors with [`Backoff`](stream_core::Backoff) through the [`CircuitBreaker`] and giving up on
//! definite ones.
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use stream_core::{Position, SourceError};
//! use stream_heartbeat::{HeartbeatConfig, Monitor, Probe, reconnect};
//! use tokio_util::sync::CancellationToken;
//!
//! /// A server that always answers (a real probe runs `SELECT 1` on its own connection).
//! struct AlwaysUp;
//!
//! #[async_trait::async_trait]
//! impl Probe for AlwaysUp {
//!     async fn ping(&self) -> Result<(), String> {
//!         Ok(())
//!     }
//!     async fn server_position(&self) -> Result<Option<Position>, String> {
//!         Ok(None)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = HeartbeatConfig::default();
//! config.validate()?;
//! let monitor = Arc::new(Monitor::new("shop", config.clone(), Arc::new(AlwaysUp)));
//! let mut events = monitor.events();
//! let shutdown = CancellationToken::new();
//! let probes = monitor.spawn(shutdown.clone());
//!
//! // The pipeline reports what it delivered, and that its connection dropped.
//! let checkpoint: Position = "binlog:mysql-bin.000001:4+0".parse()?;
//! monitor.delivered(&checkpoint);
//! monitor.connection_lost("server closed the connection");
//!
//! // Reopen from the checkpoint: the first attempt fails transiently, the second works.
//! let reopened = reconnect(&config, Some(&monitor), &shutdown, |attempt| {
//!     let from = checkpoint.clone();
//!     async move {
//!         if attempt == 1 {
//!             Err(SourceError::ConnectionLost { reason: "connection refused".into() })
//!         } else {
//!             Ok(from) // a real pipeline returns its reopened source (`stream_core::Opened`)
//!         }
//!     }
//! })
//! .await?;
//! assert_eq!(reopened, checkpoint);
//! assert!(monitor.health().is_healthy());
//!
//! let mut seen = Vec::new();
//! for _ in 0..4 {
//!     let event = events.next().await.ok_or("no event")?;
//!     seen.push(event.kind.as_str());
//! }
//! assert_eq!(seen, ["connection_lost", "unhealthy", "reconnected", "healthy"]);
//!
//! shutdown.cancel();
//! probes.await?;
//! # Ok(()) }
//! ```
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | [`HeartbeatConfig`] (its backoff is a [`stream_core::Backoff`]), [`HeartbeatError`] |
//! | [`breaker`] | [`CircuitBreaker`]: closed, open, half-open |
//! | [`health`] | [`Health`], [`HealthEvent`], [`HealthEventKind`] |
//! | [`Probe`] | what a monitor asks a server (defined in `stream-core`, so each connector implements it for its own server) |
//! | [`monitor`] | [`Monitor`]: the probe loop and the event stream |
//! | [`reconnect`](mod@reconnect) | [`reconnect()`]: backoff, breaker, shutdown |

pub mod breaker;
pub mod config;
pub mod health;
pub mod monitor;

pub mod reconnect;
#[cfg(test)]
mod testing;

pub use breaker::{BreakerState, CircuitBreaker};
pub use config::{HeartbeatConfig, HeartbeatError};
pub use health::{Health, HealthEvent, HealthEventKind};
pub use monitor::{EVENT_CAPACITY, HealthEvents, Monitor};
pub use reconnect::{Resumed, reconnect};
pub use stream_core::Probe;
