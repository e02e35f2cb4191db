//! SIGINT and SIGTERM end `tail` and `run` cleanly: the batches in flight finish and their
//! checkpoints are saved.

use stream_core::CancellationToken;

/// Cancels `shutdown` on SIGINT or SIGTERM. On Unix both handlers are registered before this
/// returns, so a signal that arrives at any later moment stops the process cleanly instead of
/// by the signal's default action (a handler registered by a spawned task exists only once
/// that task first runs; elsewhere Ctrl-C still is).
pub(crate) fn stop_on_signals(shutdown: &CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
        ] {
            match signal(kind) {
                Ok(mut received) => {
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if received.recv().await.is_some() {
                            shutdown.cancel();
                        }
                    });
                }
                Err(e) => tracing::warn!(signal = name, error = %e, "signal cannot be handled"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shutdown.cancel();
            }
        });
    }
}
