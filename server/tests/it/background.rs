//! Background responses (docs/reference.md §6.4) over HTTP, on SQLite and on the PostgreSQL of
//! `TEST_DATABASE_URL`: start, poll, replay and resume the stream by sequence number, cancel, time
//! out, per-user access; and a server killed mid-task whose restart finishes it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use fake_model::{FakeModel, Reply};
use serde_json::{Value, json};
use server::Settings;
use server::config::Secret;

fn with_database(url: &str) -> impl FnOnce(&mut Settings) {
    let url = url.to_string();
    move |s| {
        s.history.enabled = true;
        s.history.database_url = Some(Secret::new(url));
        s.background.poll_interval_seconds = 0.05;
    }
}

fn background(text: &str) -> Value {
    json!({"input": [{"role": "user", "content": text}], "background": true})
}

/// Polls `GET /responses/{id}` until the task ended.
async fn wait_until_ended(server: &TestServer, id: &str, headers: &[(&str, &str)]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get(&format!("/responses/{id}"), headers).await;
        assert_eq!(status, 200, "{body}");
        if !["in_progress", "queued"].contains(&body["status"].as_str().unwrap()) {
            return body;
        }
        assert!(Instant::now() < deadline, "the task did not end: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sequence_numbers(stream: &Stream) -> Vec<u64> {
    stream.json().iter().map(|e| e["sequence_number"].as_u64().expect("every event has a sequence number")).collect()
}

fn message_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn a_background_response_is_polled_replayed_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    for url in database_urls(&dir) {
        let server = start_with(with_database(&url), server::agent::agent()).await;
        server.fake.push(Reply::tool_call("get_current_time", "{}"));
        server.fake.push(Reply::text_with_delay("It is late in the evening now.", Duration::from_millis(40)));
        let (status, started) = server.post("/responses", background("what time is it?")).await;
        assert_eq!(status, 200, "{started}");
        assert_eq!(started["status"], "in_progress");
        assert_eq!(started["background"], true);
        assert_eq!(started["object"], "response");
        let id = started["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("resp_"));

        // A reader that joins while the task runs gets everything from the start, live, to the end.
        let live = server.get_stream(&format!("/responses/{id}?stream=true"), &[]).await;
        assert_eq!(live.status, 200);
        assert_eq!(live.content_type.as_deref(), Some("text/event-stream; charset=utf-8"));
        assert_eq!(live.data.last().unwrap(), "[DONE]");
        assert_eq!(live.types()[0], "response.created");
        assert_eq!(live.types().last().unwrap(), "response.completed");
        assert_eq!(live.text(), "It is late in the evening now.");
        let numbers = sequence_numbers(&live);
        assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>(), "no gap, no repeat");

        let done = wait_until_ended(&server, &id, &[]).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["id"], id.as_str());
        let kinds: Vec<&str> = done["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["function_call", "function_call_output", "message"]);
        assert_eq!(message_text(&done), "It is late in the evening now.");

        // Resuming after event N gives exactly the events after N; a replay gives them all again.
        let cut = numbers[numbers.len() / 2];
        let rest = server.get_stream(&format!("/responses/{id}?stream=true&starting_after={cut}"), &[]).await;
        assert_eq!(sequence_numbers(&rest), numbers.iter().copied().filter(|n| *n > cut).collect::<Vec<_>>());
        assert_eq!(rest.data.last().unwrap(), "[DONE]");
        assert_eq!(server.get_stream(&format!("/responses/{id}?stream=true"), &[]).await.json(), live.json());

        // Wrong parameters are 400 in the reference's shape; unknown ids and other users' tasks 404.
        let (status, body) = server.get(&format!("/responses/{id}?starting_after=3"), &[]).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("only be used with stream"), "{body}");
        let (status, body) = server.get(&format!("/responses/{id}?stream=true&starting_after=x"), &[]).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = server.get("/responses/resp_nope", &[]).await;
        assert_eq!((status, body["detail"].as_str().unwrap()), (404, "Response with id 'resp_nope' not found."));
        let other = [("x-forwarded-email", "mallory@example.com")];
        assert_eq!(server.get(&format!("/responses/{id}"), &other).await.0, 404);
        assert_eq!(server.get_stream(&format!("/responses/{id}?stream=true"), &other).await.status, 404);
        let resp = server.client.post(format!("{}/responses/{id}/cancel", server.url)).header(other[0].0, other[0].1);
        assert_eq!(resp.send().await.unwrap().status(), 404);
        // Cancelling a task that ended leaves it as it was.
        let (status, body) = server.post(&format!("/responses/{id}/cancel"), json!({})).await;
        assert_eq!((status, body["status"].as_str().unwrap()), (200, "completed"));
    }
}

#[tokio::test]
async fn a_streamed_background_response_goes_on_when_the_client_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_urls(&dir).remove(0);
    let server = start_with(with_database(&url), server::agent::agent()).await;
    server.fake.push(Reply::text_with_delay("one two three four five six seven eight", Duration::from_millis(60)));
    let mut body = background("count");
    body["stream"] = json!(true);
    let mut resp = server.client.post(format!("{}/responses", server.url)).json(&body).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    let first = String::from_utf8(resp.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let created: Value = serde_json::from_str(first.lines().next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(created["type"], "response.created");
    let id = created["response"]["id"].as_str().unwrap().to_string();
    drop(resp); // the client goes away after the first event

    let done = wait_until_ended(&server, &id, &[]).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(message_text(&done), "one two three four five six seven eight");
}

#[tokio::test]
async fn cancel_stops_a_running_task() {
    let dir = tempfile::tempdir().unwrap();
    for url in database_urls(&dir) {
        let server = start_with(with_database(&url), server::agent::agent()).await;
        let words = vec!["word"; 200].join(" ");
        server.fake.push(Reply::text_with_delay(&words, Duration::from_millis(50)));
        let (_, started) = server.post("/responses", background("talk")).await;
        let id = started["id"].as_str().unwrap().to_string();
        // Wait for the answer to be under way.
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.fake.open_streams() == 0 {
            assert!(Instant::now() < deadline, "the model was never called");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, cancelled) = server.post(&format!("/responses/{id}/cancel"), json!({})).await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!(cancelled["status"], "cancelled");
        let ended = wait_until_ended(&server, &id, &[]).await;
        assert_eq!(ended["status"], "cancelled");
        // The model call was dropped, and the stream ends for readers.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.fake.open_streams() != 0 {
            assert!(Instant::now() < deadline, "the model stream was left open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let events = server.get_stream(&format!("/responses/{id}?stream=true"), &[]).await;
        assert_eq!(events.data.last().unwrap(), "[DONE]");
        assert!(!events.types().contains(&"response.completed".to_string()));
        // The final record stays cancelled, and cancelling again changes nothing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, again) = server.post(&format!("/responses/{id}/cancel"), json!({})).await;
        assert_eq!(again["status"], "cancelled");
    }
}

#[tokio::test]
async fn a_task_past_its_timeout_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_urls(&dir).remove(0);
    let server = start_with(
        |s| {
            with_database(&url)(s);
            s.background.task_timeout_seconds = 0.5;
        },
        server::agent::agent(),
    )
    .await;
    server.fake.push(Reply::text_with_delay(&vec!["slow"; 100].join(" "), Duration::from_millis(50)));
    let (_, started) = server.post("/responses", background("go")).await;
    let done = wait_until_ended(&server, started["id"].as_str().unwrap(), &[]).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "task_timeout");
    assert!(done["error"]["message"].as_str().unwrap().contains("TASK_TIMEOUT_SECONDS"));
    let events = server.get_stream(&format!("/responses/{}?stream=true", started["id"].as_str().unwrap()), &[]).await;
    let error = events.json().into_iter().find(|e| e["type"] == "error").expect("an error event");
    assert_eq!(error["code"], "task_timeout");
}

#[tokio::test]
async fn without_a_database_background_is_refused_clearly() {
    let server = start().await; // chat history off in tests
    let (status, body) = server.post("/responses", background("hi")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("need a database"), "{body}");
    assert_eq!(server.get("/responses/resp_x", &[]).await.0, 400);
    // Without `background`, the same request works as ever.
    server.fake.push(Reply::text("hello"));
    assert_eq!(server.post("/responses", user("hi")).await.0, 200);
}

// --- a server killed mid-task -------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_binary(dir: &std::path::Path, port: u16, database: &str, fake: &FakeModel) -> Child {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("AGENT_HOST", "127.0.0.1")
        .env("DATABRICKS_APP_PORT", port.to_string())
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("DATABASE_URL", database)
        .env("AGENT_DATA_DIR", dir.join("data"))
        .env("AGENT_CHAT_TITLES", "false")
        .env("AGENT_BACKGROUND_LEASE_SECONDS", "1")
        .env("POLL_INTERVAL_SECONDS", "0.1")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "the server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn logs_of(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    child.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    logs
}

/// A `server` binary on a SQLite file, restartable on the same port and database.
struct Deployment {
    dir: tempfile::TempDir,
    database: String,
    fake: FakeModel,
    client: reqwest::Client,
    port: u16,
    base: String,
}

impl Deployment {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}?mode=rwc", dir.path().join("tasks.db").display());
        let port = free_port();
        let (fake, client) = (FakeModel::start().await, server::http_client::new());
        Self { dir, database, fake, client, port, base: format!("http://127.0.0.1:{port}") }
    }

    /// Starts the binary and waits until it answers.
    async fn start(&self) -> Child {
        let child = start_binary(self.dir.path(), self.port, &self.database, &self.fake);
        wait_healthy(&self.client, &self.base).await;
        child
    }
}

#[tokio::test]
async fn a_restarted_server_finishes_the_task_a_killed_one_left() {
    let deployment = Deployment::new().await;
    let Deployment { fake, client, base, .. } = &deployment;
    let mut first = deployment.start().await;
    fake.push(Reply::text_with_delay(&vec!["partial"; 100].join(" "), Duration::from_millis(40)));
    let started: Value =
        client.post(format!("{base}/responses")).json(&background("write")).send().await.unwrap().json().await.unwrap();
    let id = started["id"].as_str().unwrap().to_string();

    // Read the live stream until some text was saved (12 words: 480 ms, text is saved at least every
    // 250 ms), then kill the server outright (no clean stop).
    let mut seen = Vec::new();
    {
        let mut resp = client.get(format!("{base}/responses/{id}?stream=true")).send().await.unwrap();
        let mut parser = app::sse::SseParser::default();
        while seen.iter().filter(|e: &&Value| e["type"] == "response.output_text.delta").count() < 12 {
            let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
            for frame in parser.push(&chunk).unwrap() {
                seen.push(serde_json::from_str(&frame.data).unwrap());
            }
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let first_logs = logs_of(first);
    let last_seen = seen.last().unwrap()["sequence_number"].as_u64().unwrap();

    // A new process on the same database takes the task over once its lease ran out.
    fake.push(Reply::text("Picking up where I left off: done."));
    let second = deployment.start().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let body: Value = client.get(format!("{base}/responses/{id}")).send().await.unwrap().json().await.unwrap();
        if body["status"] != "in_progress" {
            break body;
        }
        assert!(Instant::now() < deadline, "the task was not finished after the restart: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = done["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{done}");
    // What was written before the kill stays, closed as incomplete; the new run's answer follows.
    assert_eq!(output[0]["status"], "incomplete");
    assert!(output[0]["content"][0]["text"].as_str().unwrap().starts_with("partial partial partial"));
    assert_eq!(output[1]["status"], "completed");
    assert_eq!(output[1]["content"][0]["text"], "Picking up where I left off: done.");
    // The model was asked to go on from what it had written.
    let resumed = fake.requests().last().unwrap()["messages"].clone();
    let last = resumed.as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "assistant", "{resumed}");

    // A client that had the events up to the kill resumes from there: one stream, no gap, no repeat.
    let rest = client.get(format!("{base}/responses/{id}?stream=true&starting_after={last_seen}"));
    let rest = read_stream(rest.send().await.unwrap()).await;
    let numbers = sequence_numbers(&rest);
    assert_eq!(numbers[0], last_seen + 1, "{:?}", rest.types());
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    assert!(!rest.types().contains(&"response.created".to_string()));
    assert_eq!(rest.types().last().unwrap(), "response.completed");
    assert_eq!(rest.data.last().unwrap(), "[DONE]");
    let second_logs = logs_of(second);
    assert_eq!(done["status"], "completed", "{done}\n{first_logs}\n{second_logs}");
    assert!(second_logs.contains("taking over a background task"), "{second_logs}");
}

#[tokio::test]
async fn a_chat_answer_cut_by_a_killed_server_is_finished_and_saved_by_the_next() {
    let deployment = Deployment::new().await;
    let Deployment { fake, client, base, .. } = &deployment;
    let mut first = deployment.start().await;

    // The chat page sends a question; the answer streams, then the server dies mid-answer.
    fake.push(Reply::text_with_delay(&vec!["partial"; 100].join(" "), Duration::from_millis(40)));
    let mut body = app::conversation::chat_request("chat-1", &[], "Tell me");
    body["chat"] = json!({"id": "chat-1", "position": 0, "question_id": "q-1", "answer_id": "a-1"});
    let mut resp = client.post(format!("{base}/api/chat")).json(&body).send().await.unwrap();
    let mut seen = String::new();
    while seen.matches("output_text.delta").count() < 5 {
        seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    drop(resp);
    tokio::time::sleep(Duration::from_millis(700)).await; // the recorder saved the partial answer
    first.kill().unwrap();
    first.wait().unwrap();
    let _ = logs_of(first);

    fake.push(Reply::text("Finished after the restart."));
    let second = deployment.start().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let chat: Value = client.get(format!("{base}/api/chat/chat-1")).send().await.unwrap().json().await.unwrap();
        let answer = chat["messages"][1].clone();
        if answer["status"] == "complete" {
            break answer;
        }
        assert!(Instant::now() < deadline, "the chat's answer was not finished after the restart: {chat}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let logs = logs_of(second);
    // The saved answer is whole: what was written before the kill, then the rest.
    assert!(answer["text"].as_str().unwrap().starts_with("partial partial"), "{answer}");
    assert!(answer["text"].as_str().unwrap().ends_with("Finished after the restart."), "{answer}\n{logs}");
    let kinds: Vec<&str> =
        answer["items"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["incomplete", "completed"], "{answer}");
}

/// The durability contract (README, "Durability"): a process killed outright (SIGKILL) mid-answer
/// leaves the saved answer with every finished item and the text that arrived until a quarter of a
/// second before (`SAVE_EVERY`; the check allows scheduling slack), as a prefix of the answer.
#[tokio::test]
async fn a_killed_server_leaves_every_finished_item_and_recent_text_saved() {
    let deployment = Deployment::new().await;
    let Deployment { fake, client, base, database, .. } = &deployment;
    let mut server = deployment.start().await;
    let words = vec!["partial"; 200].join(" ");
    fake.push(Reply::tool_call("get_current_time", "{}"))
        .push(Reply::text_with_delay(&words, Duration::from_millis(20)));
    let mut body = app::conversation::chat_request("chat-d", &[], "Tell me");
    body["chat"] = json!({"id": "chat-d", "position": 0, "question_id": "q-d", "answer_id": "a-d"});
    let mut resp = client.post(format!("{base}/api/chat")).json(&body).send().await.unwrap();
    let mut parser = app::sse::SseParser::default();
    let mut arrivals = Vec::new();
    while arrivals.len() < 40 {
        let chunk = resp.chunk().await.unwrap().expect("the answer goes on");
        for frame in parser.push(&chunk).unwrap() {
            if frame.data.contains("\"response.output_text.delta\"") {
                arrivals.push(Instant::now());
            }
        }
    }
    server.kill().unwrap(); // SIGKILL: no clean stop
    let killed = Instant::now();
    server.wait().unwrap();
    let must_have = arrivals.iter().filter(|at| killed.duration_since(**at) > Duration::from_millis(500)).count();

    let store = server::store::ChatStore::connect(database).await.unwrap();
    let chat = serde_json::to_value(store.get_chat(server::identity::LOCAL_USER, "chat-d").await.unwrap()).unwrap();
    let answer = &chat["messages"][1];
    let kinds: Vec<(&str, &str)> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["type"].as_str().unwrap(), i["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(kinds[..2], [("function_call", "completed"), ("function_call_output", "completed")], "{answer}");
    let text = answer["text"].as_str().unwrap();
    assert!(words.starts_with(text.trim_end()), "the saved text is the answer's beginning: {text:?}");
    let saved = text.split_whitespace().count();
    assert!(saved >= must_have, "{saved} words saved, {must_have} had arrived more than 500 ms before the kill");
}
