//! What `on`, `on_batch` and `subscribe` hand back: an id to remove a callback with, a
//! stream of deliveries, and whether the pattern matches any table or collection yet.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use stream_core::Delivery;

/// Identifies a callback registered with [`Streamer::on`](super::Streamer::on) or
/// [`Streamer::on_batch`](super::Streamer::on_batch); give it to
/// [`Streamer::off`](super::Streamer::off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(pub(crate) u64);

/// A registered callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handler {
    pub(crate) id: HandlerId,
    pub(crate) matches_nothing_yet: bool,
}

impl Handler {
    /// Its id, for [`Streamer::off`](super::Streamer::off).
    pub fn id(&self) -> HandlerId {
        self.id
    }

    /// Whether, when it was registered, its pattern matched no table or collection of the
    /// sources (a typo, or a table created later: it is called once one exists). Always
    /// `false` when the streamer cannot list what its sources stream (a custom source, or
    /// none).
    pub fn matches_nothing_yet(&self) -> bool {
        self.matches_nothing_yet
    }
}

impl From<Handler> for HandlerId {
    fn from(handler: Handler) -> Self {
        handler.id
    }
}

/// The changes of the namespaces matching a pattern: a `futures::Stream` of [`Delivery`].
/// Drop it to unsubscribe. See [`Streamer::subscribe`](super::Streamer::subscribe).
#[derive(Debug)]
pub struct Subscription {
    pub(crate) inner: stream_core::Subscription,
    pub(crate) matches_nothing_yet: bool,
}

impl Subscription {
    /// Whether, when it subscribed, its pattern matched no table or collection of the sources
    /// (a typo, or a table created later: its events arrive once it exists). Always `false`
    /// when the streamer cannot list what its sources stream (a custom source, or none).
    pub fn matches_nothing_yet(&self) -> bool {
        self.matches_nothing_yet
    }

    /// The hub's subscription inside.
    pub fn into_inner(self) -> stream_core::Subscription {
        self.inner
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}
