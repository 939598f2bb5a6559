//! Where thumbs up/down go besides the chat history: an MLflow `user_feedback` assessment on the
//! answer's trace (spec §4.4). The tracing work plugs an MLflow client in here; until then votes are
//! stored only.

use futures::future::BoxFuture;

/// Records a user's feedback on a trace; returns the assessment id when one was created.
pub trait FeedbackSink: Send + Sync + 'static {
    fn record<'a>(
        &'a self,
        trace_id: &'a str,
        user: &'a str,
        thumbs_up: bool,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// No tracing backend: nothing to record beyond the stored vote.
pub struct NoFeedbackSink;

impl FeedbackSink for NoFeedbackSink {
    fn record<'a>(&'a self, _: &'a str, _: &'a str, _: bool) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}
