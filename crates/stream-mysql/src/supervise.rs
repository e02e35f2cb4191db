//! Reader tasks run under a supervisor: a panic inside one (a bug, or a hostile server's bytes
//! tripping a library) ends its stream with an error instead of a quiet end.

use std::future::Future;

use stream_core::{Batch, BatchStream, ErrorClass, SourceError};
use tokio::sync::mpsc;

/// Spawns the reader `task` writing to a channel of `capacity` batches, and a supervisor that
/// awaits it; returns the stream of batches. The stream ends when the task ends, with
/// [`SourceError::Other`] as its last item if the task panicked.
pub(crate) fn spawn_supervised<F, Fut>(what: &'static str, capacity: usize, task: F) -> BatchStream
where
    F: FnOnce(mpsc::Sender<Result<Batch, SourceError>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(capacity);
    let handle = tokio::spawn(task(tx.clone()));
    tokio::spawn(async move {
        let Err(e) = handle.await else { return };
        if !e.is_panic() {
            return;
        }
        let payload = e.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        tracing::error!(task = what, panic = %message, "reader task panicked");
        let _ = tx
            .send(Err(SourceError::Other {
                reason: format!(
                    "the {what} stopped on an internal error ({message}); restart from the last \
                     checkpoint, and report it if it happens again at the same position"
                ),
                class: ErrorClass::Definite,
            }))
            .await;
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use stream_core::Position;

    use super::*;

    #[tokio::test]
    async fn a_panicking_reader_ends_its_stream_with_an_error() {
        let mut batches = spawn_supervised("binlog reader", 1, |tx| async move {
            let batch = Batch {
                events: Vec::new(),
                position: Position::binlog("mysql-bin.000001", 4, 0),
                state: None,
            };
            let _ = tx.send(Ok(batch)).await;
            let index = std::hint::black_box(7usize);
            let bitmap = [0u8; 1];
            let _ = bitmap[index / 2];
        });
        assert!(matches!(batches.next().await, Some(Ok(_))));
        let Some(Err(e)) = batches.next().await else {
            panic!("the panic must surface as an error")
        };
        let text = e.to_string();
        assert!(
            text.starts_with("the binlog reader stopped on an internal error (index out of bounds"),
            "{text}"
        );
        assert_eq!(e.class(), ErrorClass::Definite);
        assert!(batches.next().await.is_none());
    }

    #[tokio::test]
    async fn a_reader_that_ends_ends_its_stream_quietly() {
        let mut batches = spawn_supervised("poller", 1, |tx| async move { drop(tx) });
        assert!(batches.next().await.is_none());
    }
}
