//! Each user's stored bytes (chats and background responses), added up now and then: what the
//! storage quota (`api::quota`) compares against.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ChatStore, StoreError};

/// How long a user's total is reused before it is added up again (adding up reads all their rows):
/// a user can pass the quota by at most what they store in that time.
const USAGE_TTL: Duration = Duration::from_secs(30);

/// Each user's stored bytes, as last added up, plus what was stored since.
#[derive(Default)]
pub struct StorageUsage {
    totals: Mutex<HashMap<String, (Instant, i64)>>,
    /// One adding-up at a time per user: a burst of requests when the total is due (a busy user,
    /// a restart) would otherwise read all the user's rows once per request.
    adding_up: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    #[cfg(test)]
    times_added_up: std::sync::atomic::AtomicUsize,
}

impl StorageUsage {
    /// The bytes `owner` keeps: the cached total while it is fresh, else added up again (once, however
    /// many requests ask at the same time).
    pub async fn used(&self, store: &ChatStore, owner: &str) -> Result<i64, StoreError> {
        if let Some(used) = self.fresh(owner) {
            return Ok(used);
        }
        let gate = self.adding_up.lock().expect("usage lock").entry(owner.to_string()).or_default().clone();
        let _turn = gate.lock().await;
        if let Some(used) = self.fresh(owner) {
            return Ok(used);
        }
        let used = store.stored_bytes(owner).await?;
        #[cfg(test)]
        self.times_added_up.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.totals.lock().expect("usage lock").insert(owner.to_string(), (Instant::now(), used));
        Ok(used)
    }

    fn fresh(&self, owner: &str) -> Option<i64> {
        let (at, used) = self.totals.lock().expect("usage lock").get(owner).copied()?;
        (at.elapsed() < USAGE_TTL).then_some(used)
    }

    /// `owner` stores about `bytes` more (counted until the total is added up again).
    pub fn add(&self, owner: &str, bytes: usize) {
        if let Some((_, used)) = self.totals.lock().expect("usage lock").get_mut(owner) {
            *used += bytes as i64;
        }
    }

    /// `owner` deleted something: add up again next time.
    pub fn forget(&self, owner: &str) {
        self.totals.lock().expect("usage lock").remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of requests adds the total up once: the others get the total it found.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_adds_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("usage.db").display());
        let store = ChatStore::connect(&url).await.unwrap();
        store.begin_exchange("ana", "chat-1", 0, "q1", "twelve chars", "a1", None).await.unwrap();
        let usage = Arc::new(StorageUsage::default());
        let asks: Vec<_> = (0..32)
            .map(|_| {
                let (usage, store) = (usage.clone(), store.clone());
                tokio::spawn(async move { usage.used(&store, "ana").await.unwrap() })
            })
            .collect();
        let first = store.stored_bytes("ana").await.unwrap();
        for ask in asks {
            assert_eq!(ask.await.unwrap(), first);
        }
        assert_eq!(usage.times_added_up.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Stored since: the cached total grows without adding up again (one adding-up found `first`).
        store.begin_exchange("ana", "chat-2", 0, "q2", "more text here", "a2", None).await.unwrap();
        assert_eq!(usage.used(&store, "ana").await.unwrap(), first, "the total is cached");
        usage.add("ana", 10);
        assert_eq!(usage.used(&store, "ana").await.unwrap(), first + 10);
    }
}
