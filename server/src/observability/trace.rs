//! One request's trace while it runs: spans opened and closed by the agent loop, sent to the
//! exporter when the last handle goes away (so a run dropped mid-way, by a client that hung up, is
//! still traced, as an error).

use std::sync::{Arc, Mutex};

use serde_json::Map;

use super::export::Exporter;
use super::record::preview;
pub use super::record::{
    MAX_PAYLOAD_BYTES, Payload, SpanRecord, SpanType, TokenUsage, TraceRecord, TraceState, now_ns, payload,
};

/// A trace being recorded. Cheap to clone; a disabled trace records nothing and costs nothing
/// (inputs and outputs are given as closures, evaluated only when recording).
#[derive(Clone)]
pub struct Trace(Option<Arc<Recording>>);

struct Recording {
    trace_id: String,
    exporter: Exporter,
    state: Mutex<Building>,
}

struct Building {
    record: TraceRecord,
    /// Spans not yet ended, by index in `record.spans`.
    open: Vec<usize>,
    finished: bool,
}

/// Who and what a trace is about, known when the request arrives.
pub struct TraceStart {
    pub name: String,
    pub session: Option<String>,
    pub user: Option<String>,
    pub owner: String,
    pub request_preview: String,
    pub inputs: Payload,
}

impl Trace {
    /// A trace that records nothing.
    pub fn disabled() -> Self {
        Trace(None)
    }

    /// Starts a trace and its root span, which [`Trace::finish`] ends.
    pub fn start(exporter: &Exporter, start: impl FnOnce() -> TraceStart) -> Self {
        if !exporter.is_enabled() {
            return Trace::disabled();
        }
        let start = start();
        let trace_id = format!("tr-{:032x}", fastrand::u128(1..));
        let now = now_ns();
        let root = SpanRecord {
            span_id: new_span_id(),
            parent_id: None,
            name: start.name.clone(),
            span_type: SpanType::Unknown,
            start_ns: now,
            end_ns: 0,
            error: None,
            inputs: start.inputs,
            outputs: None,
            model: None,
            usage: None,
            attributes: Map::new(),
        };
        let record = TraceRecord {
            trace_id: trace_id.clone(),
            name: start.name,
            start_ns: now,
            end_ns: 0,
            state: TraceState::Ok,
            error: None,
            session: start.session,
            user: start.user,
            request_preview: preview(&start.request_preview),
            response_preview: String::new(),
            usage: None,
            model_id: exporter.model_id(),
            owner: start.owner,
            spans: vec![root],
        };
        Trace(Some(Arc::new(Recording {
            trace_id,
            exporter: exporter.clone(),
            state: Mutex::new(Building { record, open: vec![0], finished: false }),
        })))
    }

    /// `tr-…`, when recording.
    pub fn id(&self) -> Option<&str> {
        self.0.as_ref().map(|r| r.trace_id.as_str())
    }

    /// The root span, to hang the run's spans under.
    pub fn root(&self) -> Span {
        Span { trace: self.clone(), index: 0 }
    }

    /// Ends the root span with the request's output (or its error) and hands the trace to the
    /// exporter.
    pub fn finish(&self, outputs: impl FnOnce() -> Payload, response_preview: &str, error: Option<String>) {
        let Some(recording) = &self.0 else { return };
        let mut building = recording.state.lock().unwrap_or_else(|p| p.into_inner());
        if building.finished {
            return;
        }
        let root = &mut building.record.spans[0];
        root.outputs = outputs();
        root.error = error.clone();
        building.record.response_preview = preview(response_preview);
        building.record.error = error;
        building.finish();
    }

    fn with<R>(&self, f: impl FnOnce(&mut Building) -> R) -> Option<R> {
        let recording = self.0.as_ref()?;
        let mut building = recording.state.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut building))
    }
}

impl Building {
    fn finish(&mut self) {
        let now = now_ns();
        for &i in &self.open {
            self.record.spans[i].end_ns = now;
        }
        self.open.clear();
        let record = &mut self.record;
        record.end_ns = now;
        if record.error.is_some() {
            record.state = TraceState::Error;
        }
        let mut total: Option<TokenUsage> = None;
        for usage in record.spans.iter().filter_map(|s| s.usage) {
            total.get_or_insert_default().add(usage);
        }
        record.usage = total;
        self.finished = true;
    }
}

impl Drop for Recording {
    /// The last handle is gone. A trace nobody finished (the client went away and the run was
    /// dropped) is still sent, as an error.
    fn drop(&mut self) {
        let building = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if !building.finished {
            building.record.error = Some("the request was cancelled before it finished (the client went away)".into());
            building.record.spans[0].error = building.record.error.clone();
            building.finish();
        }
        let record = std::mem::replace(
            &mut building.record,
            TraceRecord {
                trace_id: String::new(),
                name: String::new(),
                start_ns: 0,
                end_ns: 0,
                state: TraceState::Ok,
                error: None,
                session: None,
                user: None,
                request_preview: String::new(),
                response_preview: String::new(),
                usage: None,
                model_id: None,
                owner: String::new(),
                spans: Vec::new(),
            },
        );
        self.exporter.send(record);
    }
}

fn new_span_id() -> String {
    format!("{:016x}", fastrand::u64(1..))
}

/// An open span. Ends when [`Span::end`] is called or, failing that, when the trace finishes.
#[derive(Clone)]
pub struct Span {
    trace: Trace,
    index: usize,
}

impl Span {
    /// Whether anything is recorded (to skip preparing what only a trace would use).
    pub fn is_recording(&self) -> bool {
        self.trace.0.is_some()
    }

    /// Opens a child span.
    pub fn child(&self, name: &str, span_type: SpanType, inputs: impl FnOnce() -> Payload) -> Span {
        let index = self
            .trace
            .with(|b| {
                let parent = b.record.spans[self.index].span_id.clone();
                b.record.spans.push(SpanRecord {
                    span_id: new_span_id(),
                    parent_id: Some(parent),
                    name: name.to_string(),
                    span_type,
                    start_ns: now_ns(),
                    end_ns: 0,
                    error: None,
                    inputs: inputs(),
                    outputs: None,
                    model: None,
                    usage: None,
                    attributes: Map::new(),
                });
                let index = b.record.spans.len() - 1;
                b.open.push(index);
                index
            })
            .unwrap_or(0);
        Span { trace: self.trace.clone(), index }
    }

    /// Changes the span while it is open (outputs, model, usage, attributes).
    pub fn update(&self, f: impl FnOnce(&mut SpanRecord)) {
        self.trace.with(|b| {
            if !b.finished {
                f(&mut b.record.spans[self.index]);
            }
        });
    }

    pub fn end(self, outputs: impl FnOnce() -> Payload) {
        let index = self.index;
        self.trace.with(|b| {
            if b.finished || !b.open.contains(&index) {
                return;
            }
            let span = &mut b.record.spans[index];
            span.outputs = outputs();
            span.end_ns = now_ns();
            b.open.retain(|&i| i != index);
        });
    }

    pub fn fail(self, error: &str, outputs: impl FnOnce() -> Payload) {
        self.update(|s| s.error = Some(error.to_string()));
        self.end(outputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::json;

    fn start() -> TraceStart {
        TraceStart {
            name: "invoke_handler".into(),
            session: Some("s-1".into()),
            user: None,
            owner: "local-user".into(),
            request_preview: "hi".into(),
            inputs: payload(&json!({"input": "hi"})),
        }
    }

    #[test]
    fn spans_nest_and_usage_adds_up() {
        let (exporter, mut received) = Exporter::channel_for_tests();
        let trace = Trace::start(&exporter, start);
        let id = trace.id().unwrap().to_string();
        assert!(id.starts_with("tr-") && id.len() == 35);
        let agent = trace.root().child("Agent", SpanType::Agent, || payload(&json!([])));
        for tokens in [3, 4] {
            let call = agent.child("chat m", SpanType::ChatModel, || None);
            call.update(|s| {
                s.usage = Some(TokenUsage { input_tokens: tokens, output_tokens: 1, total_tokens: tokens + 1 })
            });
            call.end(|| payload(&"ok"));
        }
        agent.end(|| payload(&"done"));
        trace.finish(|| payload(&json!({"output": []})), "done", None);
        drop(trace);
        let record = received.try_recv().expect("exported on drop");
        assert_eq!(record.trace_id, id);
        assert_eq!(record.spans.len(), 4);
        assert_eq!(record.spans[1].parent_id.as_deref(), Some(record.spans[0].span_id.as_str()));
        assert_eq!(record.spans[2].parent_id.as_deref(), Some(record.spans[1].span_id.as_str()));
        assert_eq!(record.usage, Some(TokenUsage { input_tokens: 7, output_tokens: 2, total_tokens: 9 }));
        assert_eq!(record.state, TraceState::Ok);
        assert!(record.spans.iter().all(|s| s.end_ns >= s.start_ns && s.end_ns > 0));
    }

    #[test]
    fn a_dropped_run_is_traced_as_an_error() {
        let (exporter, mut received) = Exporter::channel_for_tests();
        let trace = Trace::start(&exporter, start);
        let span = trace.root().child("tool", SpanType::Tool, || None);
        drop(trace);
        assert!(received.try_recv().is_err(), "a span still holds the trace");
        drop(span);
        let record = received.try_recv().unwrap();
        assert_eq!(record.state, TraceState::Error);
        assert!(record.error.unwrap().contains("cancelled"));
        assert!(record.spans[1].end_ns > 0, "open spans are closed");
    }

    #[test]
    fn large_payloads_are_cut() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES * 2);
        let cut: Value = serde_json::from_str(payload(&big).unwrap().get()).unwrap();
        assert_eq!(cut["truncated"], true);
        assert_eq!(cut["bytes"], MAX_PAYLOAD_BYTES * 2 + 2);
        assert!(cut["start"].as_str().unwrap().len() <= MAX_PAYLOAD_BYTES / 2);
        assert_eq!(payload(&"small").unwrap().get(), r#""small""#);
    }

    #[test]
    fn disabled_traces_record_nothing() {
        let trace = Trace::disabled();
        let span = trace.root().child("x", SpanType::Tool, || panic!("inputs are not built"));
        span.end(|| panic!("outputs are not built"));
        trace.finish(|| panic!("not built"), "", None);
        assert!(trace.id().is_none());
    }
}
