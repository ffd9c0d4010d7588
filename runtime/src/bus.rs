//! The in-process event bus: lifecycle events for live status, metrics and
//! (later) the REST API.
//!
//! Bounded and lossy on purpose: publishing never waits, so a slow subscriber
//! never slows an execution; it loses the oldest events instead, and is told
//! how many. The journal does not go through the bus.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::journal::JournalEvent;

/// Events each subscriber may lag behind by default.
pub const DEFAULT_BUS_CAPACITY: usize = 1024;

struct Shared {
    tx: broadcast::Sender<Arc<JournalEvent>>,
    subscribers: AtomicUsize,
}

/// A bounded broadcast of journal events. Cheap to clone; clones share the bus.
///
/// Every [`Runtime`](crate::Runtime) has one: subscribe before an execution
/// starts to see all of its events (the [`Runtime`](crate::Runtime) example
/// does). A subscriber that falls behind is told how many it missed.
///
/// ```
/// use orchestr8_runtime::{EventBus, Runtime};
///
/// let bus = EventBus::new(16); // each subscriber may lag 16 events behind
/// let runtime = Runtime::default().with_bus(bus.clone());
/// let mut progress = runtime.bus().subscribe();
/// assert_eq!(bus.subscriber_count(), 1);
/// assert!(progress.try_recv().is_none()); // nothing published yet
/// ```
#[derive(Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("subscribers", &self.subscriber_count()).finish()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(DEFAULT_BUS_CAPACITY)
    }
}

impl EventBus {
    /// A bus on which each subscriber may fall `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus { shared: Arc::new(Shared { tx, subscribers: AtomicUsize::new(0) }) }
    }

    /// A new subscriber; it sees events published from now on.
    pub fn subscribe(&self) -> Subscriber {
        self.shared.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscriber { rx: self.shared.tx.subscribe(), missed: AtomicU64::new(0), shared: self.shared.clone() }
    }

    /// Subscribers now.
    pub fn subscriber_count(&self) -> usize {
        self.shared.subscribers.load(Ordering::Relaxed)
    }

    /// True when someone listens; publishers skip building events otherwise.
    #[inline]
    pub fn has_subscribers(&self) -> bool {
        self.subscriber_count() != 0
    }

    /// Publishes without waiting. Subscribers that are full lose their oldest event.
    pub fn publish(&self, event: Arc<JournalEvent>) {
        // An error only means nobody listens, which is fine.
        let _ = self.shared.tx.send(event);
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum BusMessage {
    /// The next event.
    Event(Arc<JournalEvent>),
    /// This many events were dropped because this subscriber fell behind.
    Missed(u64),
}

/// One subscription to an [`EventBus`].
pub struct Subscriber {
    rx: broadcast::Receiver<Arc<JournalEvent>>,
    missed: AtomicU64,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("missed", &self.missed()).finish()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shared.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscriber {
    /// Waits for the next event, or the count of events missed since the
    /// last call. `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<BusMessage> {
        match self.rx.recv().await {
            Ok(ev) => Some(BusMessage::Event(ev)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.missed.fetch_add(n, Ordering::Relaxed);
                Some(BusMessage::Missed(n))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Like [`recv`](Self::recv) without waiting: `None` when nothing is queued.
    pub fn try_recv(&mut self) -> Option<BusMessage> {
        match self.rx.try_recv() {
            Ok(ev) => Some(BusMessage::Event(ev)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                self.missed.fetch_add(n, Ordering::Relaxed);
                Some(BusMessage::Missed(n))
            }
            Err(_) => None,
        }
    }

    /// Total events this subscriber has missed so far (as reported by `recv`).
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}
