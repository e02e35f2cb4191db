//! Fan-out of change events to many subscribers by namespace pattern.
//!
//! Every subscriber has its own bounded channel. By default a full channel makes
//! [`Hub::publish`] wait (backpressure reaches the source). A subscriber that opts into
//! [`SubscribeOptions::lag_mode`] is never waited for: events that do not fit are counted and
//! the subscriber receives [`Delivery::Lagged`] with the exact number it missed, in place, before
//! the next event it does get (or before its stream ends). Nothing is dropped silently.
//! Dropping a [`Subscription`] unsubscribes it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

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

struct Slot {
    id: u64,
    pattern: NamespacePattern,
    lag_mode: bool,
    tx: mpsc::Sender<Sequenced>,
    /// Matching events offered to this subscriber so far (delivered or missed).
    offered: Arc<AtomicU64>,
    /// Lag mode: numbering and enqueueing happen together, so concurrent publishers
    /// cannot enqueue sequence numbers out of order.
    enqueue: std::sync::Mutex<()>,
}

#[derive(Default)]
struct HubInner {
    // Copy-on-write: publishers clone the Arc and send without holding the lock.
    slots: RwLock<Arc<Vec<Arc<Slot>>>>,
    next_id: AtomicU64,
}

impl HubInner {
    fn snapshot(&self) -> Arc<Vec<Arc<Slot>>> {
        match self.slots.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Arc<Slot>>)) {
        let mut guard = match self.slots.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }

    fn remove(&self, id: u64) {
        self.update(|slots| slots.retain(|s| s.id != id));
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
        let offered = Arc::new(AtomicU64::new(0));
        let slot = Arc::new(Slot {
            id,
            pattern,
            lag_mode: options.lag_mode,
            tx,
            offered: offered.clone(),
            enqueue: std::sync::Mutex::new(()),
        });
        self.inner.update(|slots| slots.push(slot));
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
        self.publish_to(&self.inner.snapshot(), event).await
    }

    /// Delivers events in order; equivalent to `publish` for each, with one snapshot of the
    /// subscriber list.
    pub async fn publish_all(&self, events: impl IntoIterator<Item = Arc<ChangeEvent>>) -> usize {
        let slots = self.inner.snapshot();
        let mut delivered = 0;
        for event in events {
            delivered += self.publish_to(&slots, event).await;
        }
        delivered
    }

    async fn publish_to(&self, slots: &[Arc<Slot>], event: Arc<ChangeEvent>) -> usize {
        let mut delivered = 0;
        for slot in slots.iter().filter(|s| s.pattern.matches(&event.namespace)) {
            if slot.tx.is_closed() {
                self.inner.remove(slot.id);
                continue;
            }
            let sent = if slot.lag_mode {
                let _order = slot.enqueue.lock().unwrap_or_else(|p| p.into_inner());
                let seq = slot.offered.fetch_add(1, Ordering::AcqRel);
                let item = Sequenced {
                    seq,
                    event: event.clone(),
                };
                match slot.tx.try_send(item) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::debug!(subscriber = slot.id, pattern = %slot.pattern, "subscriber lagging");
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.inner.remove(slot.id);
                        false
                    }
                }
            } else if slot
                .tx
                .send(Sequenced {
                    seq: 0,
                    event: event.clone(),
                })
                .await
                .is_ok()
            {
                true
            } else {
                self.inner.remove(slot.id);
                false
            };
            delivered += usize::from(sent);
        }
        delivered
    }

    /// Number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.inner
            .snapshot()
            .iter()
            .filter(|s| !s.tx.is_closed())
            .count()
    }

    /// Ends every subscription: their streams finish after the events already queued.
    pub fn close(&self) {
        self.inner.update(Vec::clear);
    }
}

/// A stream of [`Delivery`] for one pattern. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    lag_mode: bool,
    rx: mpsc::Receiver<Sequenced>,
    next_seq: u64,
    offered: Arc<AtomicU64>,
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
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Sequenced { event, .. })) if !this.lag_mode => {
                Poll::Ready(Some(Delivery::Event(event)))
            }
            Poll::Ready(Some(Sequenced { seq, event })) => {
                let gap = seq.saturating_sub(this.next_seq);
                this.next_seq = seq + 1;
                if gap > 0 {
                    this.held = Some(event);
                    Poll::Ready(Some(Delivery::Lagged(gap)))
                } else {
                    Poll::Ready(Some(Delivery::Event(event)))
                }
            }
            Poll::Ready(None) => {
                this.closed = true;
                if !this.lag_mode {
                    return Poll::Ready(None);
                }
                let offered = this.offered.load(Ordering::Acquire);
                let gap = offered.saturating_sub(this.next_seq);
                this.next_seq = offered;
                if gap > 0 {
                    Poll::Ready(Some(Delivery::Lagged(gap)))
                } else {
                    Poll::Ready(None)
                }
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
    use futures::StreamExt;
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

    #[tokio::test]
    async fn a_slow_subscriber_holds_back_the_publisher_without_losing_events() {
        let hub = Hub::new();
        let mut slow = hub
            .subscribe("*", SubscribeOptions::default().capacity(2))
            .expect("sub");
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    hub.publish(event("a", "b", i)).await;
                }
                hub.close();
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !publisher.is_finished(),
            "publisher must wait for the slow subscriber"
        );
        let mut got = Vec::new();
        while let Some(d) = slow.next().await {
            got.push(n_of(&d));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        publisher.await.expect("publisher");
        assert_eq!(got, (0..10).collect::<Vec<_>>());
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
