//! Robustness at the edges of ultimate-stream: what to do when delivering an event fails,
//! checking input before it reaches a server, keeping rejected events, and dropping
//! duplicates of pushed events.
//!
//! | module | what |
//! | --- | --- |
//! | [`retry`](mod@retry) | [`RetryPolicy`]: one table from [`ErrorClass`](stream_core::ErrorClass) to [`Decision`], [`Backoff`](stream_core::Backoff), the [`retry()`] helper |
//! | [`validate`] | [`namespace`](validate::namespace), [`key`](validate::key) and [`DocumentSchema`] checks with errors naming the field and value |
//! | [`dead_letter`] | [`DeadLetter`]s in a file or a table ([`FileDeadLetterQueue`], [`TableDeadLetterQueue`]) and [`replay`] |
//! | [`dedup`] | [`DedupWindow`]: drop events whose id was seen recently, with counters |
//!
//! A subscriber's delivery loop puts them together like this:
//!
//! ```
//! use std::time::Duration;
//! use stream_core::{Backoff, ErrorClass};
//! use stream_edge::{
//!     retry, DeadLetter, DeadLetterQueue, DedupWindow, MemoryDeadLetterQueue,
//!     RetryPolicy, replay,
//! };
//!
//! #[derive(Debug)]
//! struct SinkDown;
//! impl std::fmt::Display for SinkDown {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str("sink is down")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::default().with_backoff(Backoff::constant(Duration::from_millis(1)));
//! let dedup = DedupWindow::new(10_000, Duration::from_secs(300));
//! let dead_letters = MemoryDeadLetterQueue::new();
//!
//! for (id, event) in [("e1", serde_json::json!({"op": "insert"})), ("e1", serde_json::json!({}))] {
//!     if !dedup.check(id) {
//!         continue; // pushed twice
//!     }
//!     let outcome = retry(&policy, |_: &SinkDown| ErrorClass::Transient, || async {
//!         Err::<(), _>(SinkDown)
//!     })
//!     .await;
//!     if let Err(gave_up) = outcome {
//!         let letter = DeadLetter::from_json("sink", gave_up.to_string(), gave_up.attempts, event);
//!         dead_letters.put(letter).await?;
//!     }
//! }
//! assert_eq!(dedup.stats().duplicate, 1);
//! let letters = dead_letters.list().await?;
//! assert_eq!(letters.len(), 1);
//! assert_eq!(letters[0].attempts, 5);
//! assert!(letters[0].reason.ends_with("sink is down"));
//!
//! // Later, once the sink is back:
//! let report = replay(&dead_letters, |_| async { Ok::<(), SinkDown>(()) }).await?;
//! assert_eq!(report.replayed, 1);
//! # Ok(()) }
//! ```

pub mod dead_letter;
pub mod dedup;
pub mod retry;
pub mod validate;

pub use dead_letter::{
    DeadLetter, DeadLetterError, DeadLetterQueue, EventColumn, FileDeadLetterQueue,
    MemoryDeadLetterQueue, ReplayFailure, ReplayReport, TableDeadLetterQueue, replay,
    replay_matching,
};
pub use dedup::{DedupStats, DedupWindow, event_id};
pub use retry::{Action, Decision, Exhausted, GiveUp, PolicyParseError, RetryPolicy, retry};
pub use validate::{DocumentSchema, ValidationError, Violation};
