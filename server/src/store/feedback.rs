//! Where thumbs up/down go besides the chat history: an MLflow `user_feedback` assessment on the
//! answer's trace (docs/reference.md §4.4), when traces go to MLflow (`observability::mlflow::MlflowClient`).

use futures::future::BoxFuture;

/// Records a user's feedback on a trace; returns the assessment id when one was created or updated.
/// `previous` is the id this user's earlier vote on the same answer got (a re-vote updates it).
pub trait FeedbackSink: Send + Sync + 'static {
    fn record<'a>(
        &'a self,
        trace_id: &'a str,
        user: &'a str,
        thumbs_up: bool,
        previous: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, String>>;
}

/// No tracing backend: nothing to record beyond the stored vote.
pub struct NoFeedbackSink;

impl FeedbackSink for NoFeedbackSink {
    fn record<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: bool,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}
