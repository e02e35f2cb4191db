//! Fan-out of change events to many subscribers by namespace pattern.
//!
//! Every subscriber has its own bounded channel. By default a full channel makes
//! [`Hub::publish`] wait (backpressure reaches the source). A subscriber that opts into
//! [`SubscribeOptions::lag_mode`] is never waited for: events that do not fit are counted and
//! the subscriber receives [`Delivery::Lagged`] with the exact number it missed, in place: before
//! the next event it does get, or as soon as it has read everything queued (so a lag is
//! reported even when no further event comes). Nothing is dropped silently.
//! Dropping a [`Subscription`] unsubscribes it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::cow_list::CowList;
use crate::event::ChangeEvent;
use crate::pattern::{NamespacePattern, PatternError};

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The next matching event.
    Event(Arc<ChangeEvent>),
    /// This many matching events were skipped here because the subscriber was too slow
    /// (lag mode only).
    Lagged(u64),
}

/// How a subscription behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    capacity: usize,
    lag_mode: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            lag_mode: false,
        }
    }
}

impl SubscribeOptions {
    /// Channel capacity in events (at least 1; default 1024).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Never slow the publisher down; report missed events with [`Delivery::Lagged`].
    pub fn lag_mode(mut self) -> Self {
        self.lag_mode = true;
        self
    }
}

struct Sequenced {
    seq: u64,
    event: Arc<ChangeEvent>,
}

/// Lag mode: the number of matching events offered so far (delivered or missed). Publishers
/// number and enqueue under this lock, and the subscriber looks at its channel and the count
/// under it too, so the two always agree: every number below the count is either in the
/// channel or missed.
type Offered = Arc<Mutex<u64>>;

fn lock(offered: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    offered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Slot {
    id: u64,
    pattern: NamespacePattern,
    lag_mode: bool,
    tx: mpsc::Sender<Sequenced>,
    offered: Offered,
}

#[derive(Default)]
struct HubInner {
    slots: CowList<Arc<Slot>>,
    next_id: AtomicU64,
    /// Publishers waiting for room in a full channel right now.
    waiting: AtomicUsize,
}

impl HubInner {
    fn remove(&self, id: u64) {
        self.slots.retain(|s| s.id != id);
    }
}

/// Counts a publisher as waiting while it lives (also when the publish is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Fans events out to subscribers by namespace pattern. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

impl Hub {
    /// A hub with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to events whose namespace matches `pattern` (`db.table`, `db.*`, `*`).
    pub fn subscribe(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, PatternError> {
        let pattern: NamespacePattern = pattern.parse()?;
        let (tx, rx) = mpsc::channel(options.capacity);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let offered = Offered::default();
        self.inner.slots.push(Arc::new(Slot {
            id,
            pattern,
            lag_mode: options.lag_mode,
            tx,
            offered: offered.clone(),
        }));
        Ok(Subscription {
            id,
            lag_mode: options.lag_mode,
            rx,
            next_seq: 0,
            offered,
            held: None,
            hub: Arc::downgrade(&self.inner),
            closed: false,
        })
    }

    /// Delivers one event to every matching subscriber, waiting for room in the channels of
    /// subscribers without lag mode. Returns how many subscribers received it.
    pub async fn publish(&self, event: Arc<ChangeEvent>) -> usize {
        self.publish_to(&self.inner.slots.snapshot(), event).await
    }

    /// Delivers events in order; equivalent to `publish` for each, with one snapshot of the
    /// subscriber list.
    pub async fn publish_all(&self, events: impl IntoIterator<Item = Arc<ChangeEvent>>) -> usize {
        let slots = self.inner.slots.snapshot();
        let mut delivered = 0;
        for event in events {
            delivered += self.publish_to(&slots, event).await;
        }
        delivered
    }

    async fn publish_to(&self, slots: &[Arc<Slot>], event: Arc<ChangeEvent>) -> usize {
        let mut delivered = 0;
        for slot in slots.iter().filter(|s| s.pattern.matches(&event.namespace)) {
            let sent = if slot.lag_mode {
                self.offer(slot, event.clone())
            } else {
                self.send(slot, event.clone()).await
            };
            delivered += usize::from(sent);
        }
        delivered
    }

    /// Lag mode: enqueue if there is room, else count the event as missed.
    fn offer(&self, slot: &Slot, event: Arc<ChangeEvent>) -> bool {
        let mut offered = lock(&slot.offered);
        let seq = *offered;
        *offered += 1;
        match slot.tx.try_send(Sequenced { seq, event }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(subscriber = slot.id, pattern = %slot.pattern, "subscriber lagging");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                drop(offered);
                self.inner.remove(slot.id);
                false
            }
        }
    }

    /// Backpressure: wait for room (counted in [`Hub::publishers_waiting`] meanwhile).
    async fn send(&self, slot: &Slot, event: Arc<ChangeEvent>) -> bool {
        let item = Sequenced { seq: 0, event };
        let sent = match slot.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => {
                let _waiting = Waiting::enter(&self.inner.waiting);
                slot.tx.send(item).await.is_ok()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if !sent {
            self.inner.remove(slot.id);
        }
        sent
    }

    /// Number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.inner
            .slots
            .snapshot()
            .iter()
            .filter(|s| !s.tx.is_closed())
            .count()
    }

    /// How many publishers are waiting right now for a subscriber without lag mode to make
    /// room in its full channel: non-zero while a slow subscriber holds its sources back.
    pub fn publishers_waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// Ends every subscription: their streams finish after the events already queued.
    pub fn close(&self) {
        self.inner.slots.clear();
    }
}

/// A stream of [`Delivery`] for one pattern. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    lag_mode: bool,
    rx: mpsc::Receiver<Sequenced>,
    /// Lag mode: the number of the next event this subscriber has not been told about.
    next_seq: u64,
    offered: Offered,
    held: Option<Arc<ChangeEvent>>,
    hub: Weak<HubInner>,
    closed: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Subscription {
    /// This subscription's id, unique within its hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Lag mode: an event numbered `seq` arrived; report the events missed before it first.
    fn sequenced(&mut self, seq: u64, event: Arc<ChangeEvent>) -> Delivery {
        let gap = seq.saturating_sub(self.next_seq);
        self.next_seq = seq + 1;
        if gap > 0 {
            self.held = Some(event);
            Delivery::Lagged(gap)
        } else {
            Delivery::Event(event)
        }
    }

    /// Lag mode: events offered but neither queued nor reported yet (all of them missed once
    /// the channel is empty), now reported.
    fn missed_since_last(&mut self, offered: u64) -> Option<Delivery> {
        let gap = offered.saturating_sub(self.next_seq);
        self.next_seq = self.next_seq.max(offered);
        (gap > 0).then_some(Delivery::Lagged(gap))
    }

    /// Lag mode, without waiting: the next queued event, or what was missed when nothing is
    /// queued, so a subscriber learns of its lag even when no further event comes.
    fn poll_lagging(&mut self) -> Option<Delivery> {
        let offered = lock(&self.offered);
        match self.rx.try_recv() {
            Ok(Sequenced { seq, event }) => {
                drop(offered);
                Some(self.sequenced(seq, event))
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                let count = *offered;
                drop(offered);
                self.missed_since_last(count)
            }
            Err(mpsc::error::TryRecvError::Disconnected) => {
                let count = *offered;
                drop(offered);
                self.closed = true;
                self.missed_since_last(count)
            }
        }
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = &mut *self;
        if let Some(event) = this.held.take() {
            return Poll::Ready(Some(Delivery::Event(event)));
        }
        if this.closed {
            return Poll::Ready(None);
        }
        if !this.lag_mode {
            return this
                .rx
                .poll_recv(cx)
                .map(|item| item.map(|Sequenced { event, .. }| Delivery::Event(event)));
        }
        if let Some(delivery) = this.poll_lagging() {
            return Poll::Ready(Some(delivery));
        }
        if this.closed {
            return Poll::Ready(None);
        }
        // Nothing queued and nothing missed: wait (an event may have come in between).
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Sequenced { seq, event })) => {
                Poll::Ready(Some(this.sequenced(seq, event)))
            }
            Poll::Ready(None) => {
                this.closed = true;
                let count = *lock(&this.offered);
                Poll::Ready(this.missed_since_last(count))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Namespace, Op, SourceKind};
    use crate::position::Position;
    use crate::value::{Row, Value};
    use futures::{FutureExt, StreamExt};
    use std::time::Duration;

    fn event(db: &str, table: &str, n: i64) -> Arc<ChangeEvent> {
        Arc::new(ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new(db, table),
            op: Op::Insert,
            key: None,
            before: None,
            after: Some([("n", Value::Int(n))].into_iter().collect::<Row>()),
            update: None,
            position: Position::binlog("mysql-bin.000001", 4, n as u64),
            ts_ms: 0,
            txn: None,
        })
    }

    fn n_of(d: &Delivery) -> i64 {
        match d {
            Delivery::Event(e) => match e.after.as_ref().and_then(|r| r.get("n")) {
                Some(Value::Int(n)) => *n,
                other => panic!("unexpected {other:?}"),
            },
            Delivery::Lagged(n) => panic!("unexpected lag of {n}"),
        }
    }

    #[tokio::test]
    async fn many_subscribers_each_get_their_namespaces_in_order() {
        let hub = Hub::new();
        let mut all: Vec<Subscription> = (0..50)
            .map(|_| {
                hub.subscribe("shop.*", SubscribeOptions::default())
                    .expect("sub")
            })
            .collect();
        let mut orders = hub
            .subscribe("shop.orders", SubscribeOptions::default())
            .expect("sub");
        let mut other = hub
            .subscribe("crm.*", SubscribeOptions::default())
            .expect("sub");
        for i in 0..100 {
            let table = if i % 2 == 0 { "orders" } else { "users" };
            hub.publish(event("shop", table, i)).await;
        }
        hub.close();
        for sub in &mut all {
            let got: Vec<i64> = sub.by_ref().map(|d| n_of(&d)).collect().await;
            assert_eq!(got, (0..100).collect::<Vec<_>>());
        }
        let got: Vec<i64> = orders.by_ref().map(|d| n_of(&d)).collect().await;
        assert_eq!(got, (0..100).step_by(2).collect::<Vec<_>>());
        assert!(other.next().await.is_none());
    }

    /// Yields until `done` holds (the publisher runs in between on this single-threaded
    /// runtime); panics after a few seconds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !done() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn a_slow_subscriber_holds_back_the_publisher_without_losing_events() {
        let hub = Hub::new();
        let mut slow = hub
            .subscribe("*", SubscribeOptions::default().capacity(2))
            .expect("sub");
        let published = Arc::new(AtomicUsize::new(0));
        let publisher = {
            let (hub, published) = (hub.clone(), published.clone());
            tokio::spawn(async move {
                for i in 0..10 {
                    hub.publish(event("a", "b", i)).await;
                    published.fetch_add(1, Ordering::SeqCst);
                }
                hub.close();
            })
        };
        let mut got = Vec::new();
        while got.len() < 10 {
            // Two fit in the channel; the third publish waits until the subscriber reads.
            let room = (got.len() + 2).min(10);
            until("the publisher to fill the channel", || {
                published.load(Ordering::SeqCst) >= room
            })
            .await;
            assert_eq!(
                published.load(Ordering::SeqCst),
                room,
                "never past the channel"
            );
            if room < 10 {
                until("the publisher to wait", || hub.publishers_waiting() == 1).await;
            }
            got.push(n_of(&slow.next().await.expect("an event")));
        }
        assert!(slow.next().await.is_none());
        publisher.await.expect("publisher");
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(hub.publishers_waiting(), 0);
    }

    #[tokio::test]
    async fn lag_mode_reports_exactly_how_many_events_were_missed() {
        let hub = Hub::new();
        let mut lagging = hub
            .subscribe("*", SubscribeOptions::default().capacity(3).lag_mode())
            .expect("sub");
        // The publisher never waits: 10 events, only 3 fit.
        for i in 0..10 {
            hub.publish(event("a", "b", i)).await;
        }
        let first: Vec<i64> = vec![
            n_of(&lagging.next().await.expect("e")),
            n_of(&lagging.next().await.expect("e")),
            n_of(&lagging.next().await.expect("e")),
        ];
        assert_eq!(first, vec![0, 1, 2]);
        hub.publish(event("a", "b", 10)).await;
        assert_eq!(lagging.next().await, Some(Delivery::Lagged(7)));
        assert_eq!(n_of(&lagging.next().await.expect("e")), 10);
        // Missed events at the very end are reported when the stream ends.
        for i in 11..16 {
            hub.publish(event("a", "b", i)).await;
        }
        hub.close();
        let rest: Vec<Delivery> = lagging.collect().await;
        assert_eq!(rest.len(), 4);
        assert_eq!(rest[3], Delivery::Lagged(2));
    }

    #[tokio::test]
    async fn lag_mode_reports_missed_events_when_no_further_event_comes() {
        let hub = Hub::new();
        let mut lagging = hub
            .subscribe("*", SubscribeOptions::default().capacity(16).lag_mode())
            .expect("sub");
        for i in 0..1000 {
            hub.publish(event("a", "b", i)).await;
        }
        for i in 0..16 {
            assert_eq!(n_of(&lagging.next().await.expect("e")), i);
        }
        // The stream is idle now: the subscriber learns of its lag on its next read anyway.
        let next = tokio::time::timeout(Duration::from_secs(5), lagging.next()).await;
        assert_eq!(next.expect("told at once"), Some(Delivery::Lagged(984)));
        hub.publish(event("a", "b", 1000)).await;
        assert_eq!(n_of(&lagging.next().await.expect("e")), 1000);
        assert_eq!(
            lagging.next().now_or_never(),
            None,
            "nothing more to report"
        );
    }

    #[tokio::test]
    async fn dropped_subscriptions_are_removed_and_do_not_block_publishers() {
        let hub = Hub::new();
        let keep = hub
            .subscribe("*", SubscribeOptions::default())
            .expect("sub");
        let dropped = hub
            .subscribe("*", SubscribeOptions::default().capacity(1))
            .expect("sub");
        assert_eq!(hub.subscriber_count(), 2);
        drop(dropped);
        assert_eq!(hub.subscriber_count(), 1);
        // Would block forever on a capacity-1 channel if the dropped one were still served.
        tokio::time::timeout(Duration::from_secs(5), async {
            for i in 0..100 {
                hub.publish(event("a", "b", i)).await;
            }
        })
        .await
        .expect("publisher must not wait for a dropped subscriber");
        drop(keep);
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[tokio::test]
    async fn cancelling_a_subscriber_mid_stream_leaves_the_others_whole() {
        let hub = Hub::new();
        let mut steady = hub
            .subscribe("*", SubscribeOptions::default())
            .expect("sub");
        let mut cancelled = hub
            .subscribe("*", SubscribeOptions::default())
            .expect("sub");
        let consumer = tokio::spawn(async move {
            let mut n = 0;
            while let Some(_d) = cancelled.next().await {
                n += 1;
                if n == 5 {
                    break;
                }
            }
        });
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..2000 {
                    hub.publish(event("a", "b", i)).await;
                }
                hub.close();
            })
        };
        let mut got = 0;
        while let Some(d) = steady.next().await {
            assert_eq!(n_of(&d), got);
            got += 1;
        }
        assert_eq!(got, 2000);
        consumer.await.expect("consumer");
        publisher.await.expect("publisher");
    }

    #[test]
    fn subscribing_with_a_bad_pattern_names_it() {
        let hub = Hub::new();
        let err = hub
            .subscribe("shop.", SubscribeOptions::default())
            .expect_err("bad");
        assert!(err.to_string().contains("`shop.`"));
    }
}
