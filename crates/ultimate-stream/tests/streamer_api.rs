//! The `Streamer`'s API without a database server: pushed events, sources that cannot open.

use stream_core::{Opened, Row, Source, SourceError, SourceKind, StartFrom};
use ultimate_stream::Streamer;

#[tokio::test]
async fn streamer_push_drops_a_repeated_id_only_within_its_namespace() {
    let streamer = Streamer::builder().start().await.expect("start");
    let push = |ns: &'static str| streamer.push(ns, "evt-1", Row::new());
    assert!(push("app.notifications").await.expect("push"));
    assert!(
        push("app.other").await.expect("push"),
        "the same id in another namespace is another event"
    );
    assert!(!push("app.notifications").await.expect("push"), "a repeat");
    let stats = streamer.dedup_stats();
    assert_eq!((stats.unique, stats.duplicate), (2, 1));
    streamer.stop().await.expect("stop");
}

/// A source whose server refuses connections.
struct Unreachable;

#[async_trait::async_trait]
impl Source for Unreachable {
    fn kind(&self) -> SourceKind {
        SourceKind::App
    }

    async fn open(
        &mut self,
        _from: StartFrom,
        _shutdown: stream_core::CancellationToken,
    ) -> Result<Opened, SourceError> {
        Err(SourceError::Connect {
            target: "orders-db:3306".into(),
            reason: "connection refused".into(),
            class: stream_core::ErrorClass::Transient,
        })
    }
}

#[tokio::test]
async fn streamer_start_returns_the_error_of_a_source_that_cannot_open() {
    let err = Streamer::builder()
        .source("orders", || Box::new(Unreachable))
        .start()
        .await
        .expect_err("the source cannot open");
    let text = err.to_string();
    assert!(text.contains("`orders`"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
}
