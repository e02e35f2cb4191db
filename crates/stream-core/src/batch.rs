//! Batching a stream by count, bytes and time.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};

use crate::event::ChangeEvent;
use crate::hub::Delivery;

/// Size in bytes of an item, for batching by bytes.
pub trait ByteSize {
    /// A rough in-memory size in bytes.
    fn byte_size(&self) -> usize;
}

impl ByteSize for ChangeEvent {
    fn byte_size(&self) -> usize {
        self.approx_size()
    }
}

impl<T: ByteSize + ?Sized> ByteSize for Arc<T> {
    fn byte_size(&self) -> usize {
        (**self).byte_size()
    }
}

impl ByteSize for Delivery {
    fn byte_size(&self) -> usize {
        match self {
            Delivery::Event(e) => e.byte_size(),
            Delivery::Lagged(_) => 8,
        }
    }
}

/// When a batch is complete: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items in one batch (at least 1).
    pub max_items: usize,
    /// Most bytes in one batch; a single larger item still forms a batch of its own.
    pub max_bytes: usize,
    /// Longest time the first item of a batch waits for more.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_items: 500,
            max_bytes: 4 << 20,
            max_wait: Duration::from_millis(50),
        }
    }
}

impl BatchConfig {
    /// Batches of at most `max_items` items (other limits at their defaults).
    pub fn max(max_items: usize) -> Self {
        Self {
            max_items: max_items.max(1),
            ..Self::default()
        }
    }

    /// Flush a batch once its first item has waited `max_wait`.
    pub fn within(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Flush a batch before it exceeds `max_bytes`.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }
}

struct BatchState<S: Stream> {
    inner: std::pin::Pin<Box<S>>,
    carry: Option<S::Item>,
    done: bool,
}

/// Groups items of `stream` into batches bounded by `config`. The last, partial batch is
/// yielded when the stream ends; an empty batch is never yielded.
pub fn batched<S>(stream: S, config: BatchConfig) -> impl Stream<Item = Vec<S::Item>>
where
    S: Stream,
    S::Item: ByteSize,
{
    let max_items = config.max_items.max(1);
    let state = BatchState {
        inner: Box::pin(stream),
        carry: None,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        if st.done && st.carry.is_none() {
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        if let Some(item) = st.carry.take() {
            bytes += item.byte_size();
            batch.push(item);
        } else {
            match st.inner.next().await {
                Some(item) => {
                    bytes += item.byte_size();
                    batch.push(item);
                }
                None => return None,
            }
        }
        let deadline = tokio::time::Instant::now() + config.max_wait;
        while batch.len() < max_items && bytes < config.max_bytes && !st.done {
            tokio::select! {
                next = st.inner.next() => match next {
                    Some(item) => {
                        let size = item.byte_size();
                        if bytes + size > config.max_bytes {
                            st.carry = Some(item);
                            break;
                        }
                        bytes += size;
                        batch.push(item);
                    }
                    None => st.done = true,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        Some((batch, st))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sized(usize);
    impl ByteSize for Sized {
        fn byte_size(&self) -> usize {
            self.0
        }
    }

    #[tokio::test]
    async fn batches_by_count() {
        let s = futures::stream::iter((0..10).map(|_| Sized(1)));
        let sizes: Vec<usize> = batched(s, BatchConfig::max(4))
            .map(|b| b.len())
            .collect()
            .await;
        assert_eq!(sizes, vec![4, 4, 2]);
    }

    #[tokio::test]
    async fn batches_by_bytes_and_oversized_items_stand_alone() {
        let s = futures::stream::iter([3, 3, 3, 10, 1].map(Sized));
        let cfg = BatchConfig::max(100).max_bytes(7);
        let sizes: Vec<Vec<usize>> = batched(s, cfg)
            .map(|b| b.iter().map(|i| i.0).collect())
            .collect()
            .await;
        assert_eq!(sizes, vec![vec![3, 3], vec![3], vec![10], vec![1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_by_time_when_items_trickle_in() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let rx = tokio_stream_from(rx);
        let mut batches = Box::pin(batched(
            rx,
            BatchConfig::max(100).within(Duration::from_millis(50)),
        ));
        tx.send(Sized(1)).await.expect("send");
        tx.send(Sized(1)).await.expect("send");
        let started = tokio::time::Instant::now();
        let first = batches.next().await.expect("batch");
        assert_eq!(first.len(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        tx.send(Sized(1)).await.expect("send");
        drop(tx);
        assert_eq!(batches.next().await.expect("batch").len(), 1);
        assert!(batches.next().await.is_none());
    }

    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
