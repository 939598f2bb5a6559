//! One request's run, whoever asked: the API (streamed or not), a background response, or the chat
//! page. Every run goes the same way, top to bottom:
//!
//! 1. [`RequestRun::new`] starts its trace.
//! 2. [`RequestRun::output`] makes the response it fills and says where its events go.
//! 3. [`RequestRun::run`] runs the agent.
//! 4. [`RequestRun::end`] ends it: the error event of a failed run, the trace id frame the client
//!    asked for, the response's status, the trace.
//!
//! What differs is only how the events travel, and that is the callers': `api/responses.rs` answers
//! with JSON or streams them to the client; `background.rs` saves them, beside heartbeats, a
//! deadline and cancellation.

use std::sync::Arc;

use app::responses::{ResponseError, ResponsesRequest};
use serde_json::{Map, json};

use crate::observability::export::Exporter;
use crate::observability::trace::{Payload, payload};
use crate::observability::{Trace, TraceStart};
use crate::runner::output::{EventSink, Output};
use crate::runner::{RunError, Runner};
use crate::tools::ToolContext;

/// Who asked for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `/invocations` or `/responses`, streamed or not as it said.
    Api { stream: bool },
    /// `/responses` with `"background": true`: the run goes on without the client, its events saved.
    Background,
    /// The chat page: always streamed, with notices (`agent_app.notice`) and the trace id (it attaches
    /// votes to it).
    ChatPage,
}

impl Client {
    /// The trace's name, as the reference names its handlers.
    fn handler(self) -> &'static str {
        match self {
            Client::Api { stream: false } => "invoke_handler",
            _ => "stream_handler",
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Completed,
    Failed { code: String, message: String },
    Cancelled,
}

impl From<&Result<(), RunError>> for Outcome {
    fn from(result: &Result<(), RunError>) -> Self {
        match result {
            Ok(()) => Outcome::Completed,
            Err(error) => Outcome::Failed { code: error.error_code().into(), message: error.to_string() },
        }
    }
}

pub struct RequestRun {
    pub runner: Arc<Runner>,
    pub request: ResponsesRequest,
    pub context: ToolContext,
    pub client: Client,
    /// The client asked for the trace id (`x-mlflow-return-trace-id: true`; the chat page always).
    pub return_trace_id: bool,
    trace: Trace,
}

impl RequestRun {
    /// Starts the run's trace; `inputs` is the request as the trace keeps it, `owner` whose it is.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        exporter: &Exporter,
        runner: Arc<Runner>,
        request: ResponsesRequest,
        context: ToolContext,
        client: Client,
        return_trace_id: bool,
        owner: String,
        inputs: Payload,
    ) -> Self {
        let return_trace_id = return_trace_id || client == Client::ChatPage;
        let trace = Trace::start(exporter, || TraceStart {
            name: client.handler().into(),
            session: context.session_id.clone(),
            user: context.user.clone(),
            owner,
            request_preview: request.last_user_text(),
            inputs,
        });
        Self { runner, request, context, client, return_trace_id, trace }
    }

    /// The response the run fills in, with id `id`; its events go to `events` (`None`: not
    /// streamed, only the response is collected).
    pub fn output(&self, id: String, events: Option<EventSink>) -> Output {
        let streamed_to_client = matches!(events, Some(EventSink::Frames(_)));
        let mut out = Output::new(events, id, self.runner.agent.model.clone());
        if let Some(session) = &self.context.session_id {
            out.response.custom_outputs = Some(Map::from_iter([("session_id".to_string(), json!(session))]));
        }
        if self.client == Client::Background || self.client == Client::ChatPage && !streamed_to_client {
            out.response.extra.insert("background".into(), json!(true));
        }
        self.adopt(&mut out, streamed_to_client);
        out
    }

    /// Gives `out` (new, or a stopped run's picked up) what this run's client asks of it: notices
    /// for the chat page, and the trace named in a response the client gets whole (not streamed).
    pub fn adopt(&self, out: &mut Output, streamed_to_client: bool) {
        out.notices = self.client == Client::ChatPage;
        if let (false, Some(trace_id)) = (streamed_to_client, self.trace_id_for_client()) {
            out.response.metadata.get_or_insert_with(Map::new).insert("trace_id".into(), json!(trace_id));
        }
    }

    /// Runs the agent into `out`.
    pub async fn run(&self, out: &mut Output) -> Result<(), RunError> {
        self.runner.run(&self.request, &self.context, out, &self.trace.root()).await
    }

    /// Ends the run: a failure's error event (and the response's `error`), the trace id frame a
    /// completed run's client asked for, the response's status, and the trace.
    pub fn end(&self, out: &mut Output, outcome: &Outcome) {
        let status = match outcome {
            Outcome::Completed => {
                if let Some(trace_id) = self.trace_id_for_client() {
                    out.trace_id(&trace_id);
                }
                "completed"
            }
            Outcome::Failed { code, message } => {
                tracing::warn!(code = %code, error = %message, "run failed");
                out.error(code, message);
                out.response.error = Some(ResponseError { code: Some(code.clone()), message: message.clone() });
                "failed"
            }
            Outcome::Cancelled => "cancelled",
        };
        out.response.status = Some(status.into());
        let error = match outcome {
            Outcome::Failed { message, .. } => Some(message.clone()),
            _ => None,
        };
        let response = &out.response;
        self.trace.finish(|| payload(response), &response.output_text(), error);
    }

    /// Ends the trace of a run this process stopped running (another took it over): nothing more
    /// is written.
    pub fn abandon(&self, why: &str) {
        self.trace.finish(|| None, "", Some(why.into()));
    }

    /// The trace id to give the client, if it asked and the request is traced.
    fn trace_id_for_client(&self) -> Option<String> {
        self.return_trace_id.then(|| self.trace.id().map(str::to_string)).flatten()
    }
}
