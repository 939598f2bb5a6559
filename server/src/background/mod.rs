//! Background responses (`"background": true`, docs/reference.md §6.4): the run goes on without the client,
//! every stream event is saved as it is written, and clients poll (`GET /responses/{id}`), replay or
//! resume the stream from a sequence number, or cancel.
//!
//! Each task is run by one process, which shows it is alive with a heartbeat. A task whose process
//! stopped (a restart, a crash, a scale-down) is taken over once its lease runs out: by another
//! process sharing the database, or by this one after it restarts. The new run goes on from the
//! items that were finished; a message cut off mid-way is closed as incomplete, and a tool call
//! that never returned is reported to the model as interrupted (it is not run twice: it may have
//! had effects).

mod recovery;
mod replay;
mod run;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::databricks::auth::WorkspaceAuth;
use crate::observability::export::Exporter;
use crate::runner::Runner;
use crate::store::responses::StoredEvent;
use crate::store::{ChatStore, StoreError};
use crate::tools::ToolContext;

/// What a tool call interrupted by a stopped process gets as its output.
pub const INTERRUPTED_CALL: &str =
    "The server stopped while this tool was running, so its result is unknown (it was not run again).";

#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `TASK_TIMEOUT_SECONDS`.
    pub task_timeout: Duration,
    /// `POLL_INTERVAL_SECONDS`: readers of a task run by another process check this often.
    pub poll_interval: Duration,
    /// `AGENT_BACKGROUND_LEASE_SECONDS`.
    pub lease: Duration,
    /// `AGENT_BACKGROUND_RETENTION_HOURS`.
    pub retention: Duration,
}

impl From<&crate::config::BackgroundSettings> for Timings {
    fn from(settings: &crate::config::BackgroundSettings) -> Self {
        Self {
            task_timeout: settings.task_timeout(),
            poll_interval: settings.poll_interval(),
            lease: settings.lease(),
            retention: settings.retention(),
        }
    }
}

/// What running a task takes besides its request: the agent, where its trace goes, the workspace
/// its tools call.
#[derive(Clone)]
pub struct Engine {
    pub runner: Arc<Runner>,
    pub exporter: Exporter,
    pub workspace: Option<WorkspaceAuth>,
}

/// The background tasks of this process, and the way to every task in the database.
#[derive(Clone)]
pub struct BackgroundTasks(Arc<Inner>);

struct Inner {
    store: ChatStore,
    timings: Timings,
    /// This process, as the `worker` of the tasks it runs.
    worker: String,
    running: Mutex<HashMap<String, Running>>,
    recovering: AtomicBool,
}

/// A task this process runs.
struct Running {
    /// Whose task it is (per-user caps count these).
    owner: String,
    cancel: CancellationToken,
    /// The sequence number of the last event written (readers wake up when it moves).
    written: watch::Receiver<i64>,
    /// Its events so far: readers in this process read them here (they go on if the database
    /// stumbles); readers elsewhere read the saved copies.
    log: Arc<Mutex<ReadLog>>,
}

#[derive(Default)]
struct ReadLog {
    events: Vec<StoredEvent>,
    ended: bool,
}

/// Where a running task's events go for readers in this process.
struct Sink {
    log: Arc<Mutex<ReadLog>>,
    written: watch::Sender<i64>,
}

impl Sink {
    fn push(&self, events: &[StoredEvent]) {
        if let Some(last) = events.last().map(|e| e.sequence) {
            self.log.lock().expect("event log lock").events.extend_from_slice(events);
            self.written.send_replace(last);
        }
    }

    fn end(&self) {
        self.log.lock().expect("event log lock").ended = true;
        self.written.send_modify(|_| {});
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl BackgroundTasks {
    pub fn new(store: ChatStore, timings: Timings) -> Self {
        Self(Arc::new(Inner {
            store,
            timings,
            worker: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            running: Mutex::new(HashMap::new()),
            recovering: AtomicBool::new(false),
        }))
    }

    /// The tasks of `owner` this process is running.
    pub fn running_for(&self, owner: &str) -> usize {
        self.0.running.lock().expect("running lock").values().filter(|r| r.owner == owner).count()
    }

    /// Makes a task this process runs known to its readers here (before it starts, so that no
    /// reader looks for it in the database in the meantime).
    fn register(&self, id: &str, owner: &str, context: &ToolContext) -> Sink {
        let (written_tx, written_rx) = watch::channel(-1_i64);
        let log = Arc::new(Mutex::new(ReadLog::default()));
        let running =
            Running { owner: owner.to_string(), cancel: context.cancel.clone(), written: written_rx, log: log.clone() };
        self.0.running.lock().expect("running lock").insert(id.to_string(), running);
        Sink { log, written: written_tx }
    }

    /// Cancels the user's task (wherever it runs: its process sees the status at its next heartbeat).
    pub async fn cancel(&self, owner: &str, id: &str) -> Result<Value, StoreError> {
        let stored = self.0.store.cancel_response(owner, id).await?;
        if let Some(running) = self.0.running.lock().expect("running lock").get(id) {
            running.cancel.cancel();
        }
        self.view(stored).await
    }

    /// The user's task as a response object: the final one once it ended, else the items done so far.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Value, StoreError> {
        let stored = self.0.store.get_response(owner, id).await?;
        self.view(stored).await
    }
}
