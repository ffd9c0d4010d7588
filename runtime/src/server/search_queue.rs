//! The queue of segment searches: one search at a time (a search of the
//! whole log takes a blocking thread and disk bandwidth), and a bounded
//! number waiting for it, so that requests for ids nobody has cannot pile
//! up without limit; beyond it the request is refused (503 with
//! `Retry-After`).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard};

/// Lookups that may wait for the search under way; more are refused.
pub(super) const SEARCH_QUEUE: usize = 16;

/// What a refused lookup is told to wait before it tries again, in seconds.
pub(super) const SEARCH_RETRY_AFTER: u32 = 1;

pub(super) struct SearchQueue {
    turn: Mutex<()>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Counts a lookup as waiting for as long as it waits (also when the
/// request is dropped while waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SearchQueue {
    pub(super) fn new(max_waiting: usize) -> Self {
        SearchQueue { turn: Mutex::new(()), waiting: AtomicUsize::new(0), max_waiting }
    }

    /// This lookup's turn to search; `None` when too many already wait.
    pub(super) async fn turn(&self) -> Option<MutexGuard<'_, ()>> {
        if let Ok(guard) = self.turn.try_lock() {
            return Some(guard);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let _waiting = Waiting(&self.waiting);
        Some(self.turn.lock().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_freed_one_admits() {
        let queue = std::sync::Arc::new(SearchQueue::new(1));
        let searching = queue.turn().await.expect("the first searches at once");
        let q = queue.clone();
        let waiter = tokio::spawn(async move { q.turn().await.is_some() });
        while queue.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(queue.turn().await.is_none(), "one waits already: refused");
        drop(searching);
        assert!(waiter.await.unwrap(), "the waiter gets its turn");
        assert!(queue.turn().await.is_some(), "room again");
        assert_eq!(queue.waiting.load(Ordering::Acquire), 0);
    }
}
