//! Each user's stored bytes (chats and background responses), added up now and then: what the
//! storage quota (`api::quota`) compares against.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ChatStore, StoreError};

/// How long a user's total is reused before it is added up again (adding up reads all their rows):
/// a user can pass the quota by at most what they store in that time.
const USAGE_TTL: Duration = Duration::from_secs(30);

/// Each user's stored bytes, as last added up, plus what was stored since.
#[derive(Default)]
pub struct StorageUsage(Mutex<HashMap<String, (Instant, i64)>>);

impl StorageUsage {
    /// The bytes `owner` keeps: the cached total while it is fresh, else added up again.
    pub async fn used(&self, store: &ChatStore, owner: &str) -> Result<i64, StoreError> {
        if let Some((at, used)) = self.0.lock().expect("usage lock").get(owner).copied()
            && at.elapsed() < USAGE_TTL
        {
            return Ok(used);
        }
        let used = store.stored_bytes(owner).await?;
        self.0.lock().expect("usage lock").insert(owner.to_string(), (Instant::now(), used));
        Ok(used)
    }

    /// `owner` stores about `bytes` more (counted until the total is added up again).
    pub fn add(&self, owner: &str, bytes: usize) {
        if let Some((_, used)) = self.0.lock().expect("usage lock").get_mut(owner) {
            *used += bytes as i64;
        }
    }

    /// `owner` deleted something: add up again next time.
    pub fn forget(&self, owner: &str) {
        self.0.lock().expect("usage lock").remove(owner);
    }
}
