//! Faults of the model endpoint, each checked over HTTP in both modes: the client gets a clear error
//! in the reference's shape, what was already said is kept, and the server keeps working.

use std::time::{Duration, Instant};

use crate::common::{start, start_with, user, user_stream};
use fake_model::Reply;
use serde_json::Value;

/// The stream ends with the error event (every client shape) and `[DONE]`, status 200.
fn assert_stream_error(s: &crate::common::Stream, code: &str, needle: &str) -> Value {
    assert_eq!(s.status, 200);
    assert_eq!(s.data.last().unwrap(), "[DONE]", "{:?}", s.data);
    let events = s.json();
    let error = events.last().unwrap().clone();
    assert_eq!(error["type"], "error", "{error}");
    let message = error["error"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} should mention {needle:?}");
    assert_eq!(error["message"], message);
    assert_eq!(error["code"], code);
    assert_eq!(error["databricks_output"]["error"]["error_code"], code);
    assert_eq!(error["databricks_output"]["error"]["message"], message);
    assert!(!events.iter().any(|e| e["type"] == "response.completed"));
    error
}

/// After a fault: no model connection is left open (the failed call was hung up on), and the next
/// request is answered normally.
async fn still_works(server: &crate::common::TestServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.fake.open_streams() > 0 {
        assert!(Instant::now() < deadline, "{} model streams left open after the fault", server.fake.open_streams());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.fake.push(Reply::text("fine"));
    let (status, body) = server.post("/invocations", user("again")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"][0]["content"][0]["text"], "fine");
}

#[tokio::test]
async fn rate_limited_then_success_is_retried() {
    let server = start().await;
    server.fake.push(Reply::Status {
        status: 429,
        body: r#"{"error":{"message":"slow down"}}"#.into(),
        retry_after: None,
    });
    server.fake.push(Reply::status(503, "busy"));
    server.fake.push(Reply::text("made it"));
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"][0]["content"][0]["text"], "made it");
    assert_eq!(server.fake.requests().len(), 3);
    // Streaming too: the retry happens before anything is sent to the client.
    server.fake.push(Reply::status(429, "slow down"));
    server.fake.push(Reply::text("streamed"));
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_eq!(s.text(), "streamed");
    assert_eq!(s.types().last().unwrap(), "response.completed");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = start().await;
    server.fake.push(Reply::Status { status: 429, body: "wait".into(), retry_after: Some(1) });
    server.fake.push(Reply::text("ok"));
    let started = Instant::now();
    let (status, _) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
    still_works(&server).await;
}

#[tokio::test]
async fn server_errors_are_reported_after_the_retries() {
    let server = start_with(|s| s.model.max_retries = 2, server::agent::agent()).await;
    for _ in 0..3 {
        server.fake.push(Reply::status(500, r#"{"message": "simulated upstream failure"}"#));
    }
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 500);
    assert_eq!(body["detail"], "the model endpoint returned HTTP 500: simulated upstream failure");
    assert_eq!(server.fake.requests().len(), 3, "one call and two retries");
    for _ in 0..3 {
        server.fake.push(Reply::status(500, "simulated upstream failure"));
    }
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "INTERNAL_ERROR", "HTTP 500: simulated upstream failure");
    assert_eq!(s.types()[..2], ["response.created", "response.in_progress"]);
    still_works(&server).await;
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = start().await;
    server.fake.push(Reply::status(400, r#"{"error": {"message": "bad tool schema"}}"#));
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 500);
    assert_eq!(body["detail"], "the model endpoint returned HTTP 400: bad tool schema");
    assert_eq!(server.fake.requests().len(), 1);
    server.fake.push(Reply::status(401, "invalid token"));
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "UNAUTHENTICATED", "HTTP 401: invalid token");
    still_works(&server).await;
}

#[tokio::test]
async fn mid_stream_disconnect_keeps_what_was_said() {
    let server = start().await;
    server.fake.push(Reply::Disconnect { chunks: vec!["Half".into(), " an".into(), " answer".into()] });
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "INTERNAL_ERROR", "closed the connection before finishing");
    assert_eq!(s.text(), "Half an answer");
    let done = s.done_items();
    assert_eq!(done[0]["status"], "incomplete");
    assert_eq!(done[0]["content"][0]["text"], "Half an answer");
    // Not retried: part of the answer had already been sent.
    assert_eq!(server.fake.requests().len(), 1);
    // Non-streaming: a 500 that says what happened.
    server.fake.push(Reply::Disconnect { chunks: vec!["x".into()] });
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 500, "{body}");
    still_works(&server).await;
}

#[tokio::test]
async fn garbage_chunk_is_an_error() {
    let server = start().await;
    server.fake.push(Reply::Garbage { chunks: vec!["Before".into()], garbage: "{this is not json".into() });
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "INTERNAL_ERROR", "not a chat-completions chunk: {this is not json");
    assert_eq!(s.text(), "Before");
    server.fake.push(Reply::Garbage { chunks: vec![], garbage: "<html>502 Bad Gateway</html>".into() });
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().contains("<html>502 Bad Gateway</html>"), "{body}");
    still_works(&server).await;
}

#[tokio::test]
async fn a_model_that_never_answers_times_out() {
    let server = start_with(|s| s.model.timeout_seconds = 0.3, server::agent::agent()).await;
    server.fake.push(Reply::Hang { chunks: vec![] });
    let started = Instant::now();
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 500);
    assert_eq!(body["detail"], "the model endpoint did not answer within 300ms");
    assert!(started.elapsed() < Duration::from_secs(3));
    server.fake.push(Reply::Hang { chunks: vec![] });
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "DEADLINE_EXCEEDED", "did not answer within 300ms");
    still_works(&server).await;
}

#[tokio::test]
async fn a_model_that_stalls_mid_answer_times_out() {
    let server = start_with(|s| s.model.idle_timeout_seconds = 0.3, server::agent::agent()).await;
    server.fake.push(Reply::Hang { chunks: vec!["Start".into()] });
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "DEADLINE_EXCEEDED", "went silent for 300ms");
    assert_eq!(s.text(), "Start");
    still_works(&server).await;
}

#[tokio::test]
async fn unreachable_model_is_reported() {
    // A port nobody listens on: connection refused, retried, then reported.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let server = start_with(
        move |s| {
            s.model.openai_base_url = Some(dead);
            s.model.max_retries = 1;
        },
        server::agent::agent(),
    )
    .await;
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().starts_with("could not reach the model endpoint"), "{body}");
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "TEMPORARILY_UNAVAILABLE", "could not reach the model endpoint");
}

#[tokio::test]
async fn upstream_error_object_in_the_stream() {
    let server = start().await;
    server.fake.push(Reply::Raw { payloads: vec![r#"{"error": {"message": "context length exceeded"}}"#.into()] });
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert_stream_error(&s, "INTERNAL_ERROR", "reported an error: context length exceeded");
    still_works(&server).await;
}

/// A model that does not stop talking is stopped: the answer so far is kept (incomplete), the client
/// gets an error, the model connection is closed, and tool-call arguments count too.
#[tokio::test]
async fn a_runaway_answer_is_cut_off_at_the_output_limit() {
    let server = start_with(|s| s.limits.max_model_output_bytes = 2_000, server::agent::agent()).await;
    let long = "word ".repeat(2_000);
    server.fake.push(Reply::text_with_delay(&long, Duration::from_millis(0)));
    let s = server.stream("/invocations", user_stream("talk"), &[]).await;
    assert_stream_error(&s, "OUTPUT_TOO_LARGE", "passed 2000 bytes");
    let said = s.text();
    assert!(said.len() > 1_000 && said.len() <= 2_100, "{}", said.len());
    let message = s.done_items().into_iter().find(|i| i["type"] == "message").unwrap();
    assert_eq!(message["status"], "incomplete");
    // Not streamed: a 500 with the reason.
    server.fake.push(Reply::tool_call("get_current_time", &format!("{{\"pad\": \"{}\"}}", "x".repeat(5_000))));
    let (status, body) = server.post("/invocations", user("time")).await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().contains("AGENT_MAX_MODEL_OUTPUT_BYTES"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.fake.open_streams() > 0 {
        assert!(Instant::now() < deadline, "the model stream was not closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    still_works(&server).await;
}
