//! Shared by the stream-mongo integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod logs;

use std::time::Duration;

use futures::StreamExt;
use stream_core::BatchStream;

/// No further event within `quiet` (batches that only move the position are fine).
pub async fn assert_no_more(batches: &mut BatchStream, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(next) = tokio::time::timeout_at(deadline, batches.next()).await {
        let batch = next.expect("stream ended").expect("batch");
        assert!(
            batch.events.is_empty(),
            "unexpected events: {:?}",
            batch.events
        );
    }
}
