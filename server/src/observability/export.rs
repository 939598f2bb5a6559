//! Sends finished traces to where they are kept, in the background: a bounded queue in front of
//! one worker that batches, retries what can be retried, and drops (counted, logged) rather than
//! ever making a request wait or fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::record::TraceRecord;

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Worth another try: connection refused, timeout, HTTP 429 or 5xx.
    #[error("{0}")]
    Transient(String),
    /// Will not work by retrying: a 4xx, a bad configuration.
    #[error("{0}")]
    Rejected(String),
}

/// Where traces go: the local store, an MLflow server, Databricks.
pub trait TraceSink: Send + Sync + 'static {
    /// For logs: where this sink sends traces.
    fn describe(&self) -> String;
    fn export<'a>(&'a self, batch: &'a [TraceRecord]) -> BoxFuture<'a, Result<(), ExportError>>;
}

/// Counters, for logs, `/agent/info` and tests.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Given up on after the retries.
    pub failed: AtomicU64,
}

enum Message {
    Trace(Box<TraceRecord>),
    Flush(oneshot::Sender<()>),
}

/// The handle requests use. Cheap to clone; `Exporter::disabled()` turns tracing off.
#[derive(Clone)]
pub struct Exporter(Option<Arc<Shared>>);

struct Shared {
    queue: mpsc::Sender<Message>,
    stats: Arc<ExportStats>,
    model_id: OnceLock<String>,
    destination: String,
}

/// Traces per export call.
const MAX_BATCH: usize = 64;
/// How long a trace may wait for others to share its export call.
const LINGER: Duration = Duration::from_millis(200);
/// Tries per batch, and the waits between them.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

impl Exporter {
    pub fn disabled() -> Self {
        Exporter(None)
    }

    /// Starts the worker on the current tokio runtime. `queue` traces may wait; beyond that new
    /// ones are dropped.
    pub fn start(sink: Arc<dyn TraceSink>, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(ExportStats::default());
        let destination = sink.describe();
        tokio::spawn(work(rx, sink, stats.clone()));
        Exporter(Some(Arc::new(Shared { queue: tx, stats, model_id: OnceLock::new(), destination })))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    pub fn destination(&self) -> Option<&str> {
        self.0.as_ref().map(|s| s.destination.as_str())
    }

    pub fn stats(&self) -> Option<&ExportStats> {
        self.0.as_ref().map(|s| s.stats.as_ref())
    }

    /// The LoggedModel id traces carry, once version tracking has found or made it.
    pub fn model_id(&self) -> Option<String> {
        self.0.as_ref()?.model_id.get().cloned()
    }

    pub fn set_model_id(&self, id: String) {
        if let Some(shared) = &self.0 {
            let _ = shared.model_id.set(id);
        }
    }

    /// Queues a finished trace; never waits.
    pub fn send(&self, record: TraceRecord) {
        let Some(shared) = &self.0 else { return };
        if shared.queue.try_send(Message::Trace(Box::new(record))).is_err() {
            let dropped = shared.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(100) {
                tracing::warn!(dropped, destination = %shared.destination, "trace export queue full; traces dropped");
            }
        }
    }

    /// Waits (up to `timeout`) until every trace queued before this call has been handled.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let Some(shared) = &self.0 else { return true };
        let (done, wait) = oneshot::channel();
        tokio::time::timeout(timeout, async {
            shared.queue.send(Message::Flush(done)).await.is_ok() && wait.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// An exporter whose queue a test reads.
    #[cfg(test)]
    pub(crate) fn channel_for_tests() -> (Self, TestQueue) {
        let (tx, rx) = mpsc::channel(16);
        let shared = Shared { queue: tx, stats: Arc::default(), model_id: OnceLock::new(), destination: "test".into() };
        (Exporter(Some(Arc::new(shared))), TestQueue(rx))
    }
}

#[cfg(test)]
pub(crate) struct TestQueue(mpsc::Receiver<Message>);

#[cfg(test)]
impl TestQueue {
    pub fn try_recv(&mut self) -> Result<TraceRecord, ()> {
        match self.0.try_recv() {
            Ok(Message::Trace(record)) => Ok(*record),
            _ => Err(()),
        }
    }
}

async fn work(mut queue: mpsc::Receiver<Message>, sink: Arc<dyn TraceSink>, stats: Arc<ExportStats>) {
    let mut batch: Vec<TraceRecord> = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = queue.recv().await {
        // Gather a batch: up to MAX_BATCH traces, or what came within LINGER of the first (sooner
        // on a flush). One export per batch, not per trace, is what keeps the cost per request low.
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Trace(record) => batch.push(*record),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() >= MAX_BATCH || !flushes.is_empty() {
                break;
            }
            next = tokio::time::timeout_at(deadline, queue.recv()).await.ok().flatten();
        }
        // A flush takes everything already queued.
        if !flushes.is_empty() {
            while let Ok(message) = queue.try_recv() {
                match message {
                    Message::Trace(record) => batch.push(*record),
                    Message::Flush(done) => flushes.push(done),
                }
            }
        }
        for chunk in batch.chunks(MAX_BATCH) {
            deliver(sink.as_ref(), chunk, &stats).await;
        }
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn deliver(sink: &dyn TraceSink, batch: &[TraceRecord], stats: &ExportStats) {
    let mut attempt = 0;
    loop {
        match sink.export(batch).await {
            Ok(()) => {
                stats.exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(ExportError::Transient(error)) if attempt < RETRY_DELAYS.len() => {
                tracing::debug!(%error, attempt, "trace export failed; retrying");
                tokio::time::sleep(RETRY_DELAYS[attempt]).await;
                attempt += 1;
            }
            Err(error) => {
                stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(%error, traces = batch.len(), destination = %sink.describe(), "traces not exported");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::trace::{Trace, TraceStart};
    use std::sync::Mutex;

    /// Fails `failures` times, then keeps what it gets.
    struct Flaky {
        failures: Mutex<usize>,
        kept: Mutex<Vec<String>>,
    }

    impl TraceSink for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn export<'a>(&'a self, batch: &'a [TraceRecord]) -> BoxFuture<'a, Result<(), ExportError>> {
            Box::pin(async move {
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    return Err(ExportError::Transient("down".into()));
                }
                self.kept.lock().unwrap().extend(batch.iter().map(|t| t.trace_id.clone()));
                Ok(())
            })
        }
    }

    fn trace(exporter: &Exporter) -> String {
        let start = TraceStart {
            name: "t".into(),
            session: None,
            user: None,
            owner: String::new(),
            request_preview: String::new(),
            inputs: None,
        };
        let trace = Trace::start(exporter, || start);
        trace.finish(|| None, "", None);
        trace.id().unwrap().to_string()
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_flush_waits() {
        let sink = Arc::new(Flaky { failures: Mutex::new(2), kept: Mutex::default() });
        let exporter = Exporter::start(sink.clone(), 8);
        let id = trace(&exporter);
        assert!(exporter.flush(Duration::from_secs(10)).await);
        assert_eq!(*sink.kept.lock().unwrap(), vec![id]);
        assert_eq!(exporter.stats().unwrap().exported.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let sink = Arc::new(Flaky { failures: Mutex::new(usize::MAX), kept: Mutex::default() });
        let exporter = Exporter::start(sink.clone(), 2);
        for _ in 0..20 {
            trace(&exporter);
        }
        let stats = exporter.stats().unwrap();
        assert!(stats.dropped.load(Ordering::Relaxed) >= 17, "{stats:?}");
        assert!(exporter.flush(Duration::from_secs(60)).await);
        assert!(stats.failed.load(Ordering::Relaxed) >= 1);
        assert!(sink.kept.lock().unwrap().is_empty());
    }
}
