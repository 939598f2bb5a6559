//! The `server` binary as a user runs it: configuration from flags, environment and `.env`, the port
//! it listens on, a clean stop on SIGTERM, and no credentials in its logs.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_model::FakeModel;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The binary with a clean environment (nothing from the developer's shell leaks in).
fn server_command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("AGENT_HOST", "127.0.0.1")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn wait_healthy(port: u16, child: &mut Child) {
    let client = server::http_client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = client.get(format!("http://127.0.0.1:{port}/health")).send().await
            && resp.status().is_success()
        {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the server exited early");
        assert!(Instant::now() < deadline, "the server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stop(child: &mut Child) -> (std::process::ExitStatus, String) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut logs = String::new();
    child.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    (status, logs)
}

#[tokio::test]
async fn port_from_flag_then_environment_and_settings_from_dotenv() {
    let fake = FakeModel::start().await;
    let dir = std::env::temp_dir().join(format!("agent-app-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `.env` supplies the model and the token; the environment wins over it for the port.
    let env_port = free_port();
    std::fs::write(
        dir.join(".env"),
        format!(
            "DATABRICKS_HOST={}\nDATABRICKS_TOKEN=dapi-secret-from-dotenv\nDATABRICKS_APP_PORT=1\nDATABRICKS_APP_NAME=from-dotenv\n",
            fake.host_url()
        ),
    )
    .unwrap();
    let mut child = server_command(&dir).env("DATABRICKS_APP_PORT", env_port.to_string()).spawn().unwrap();
    wait_healthy(env_port, &mut child).await;
    let client = server::http_client::new();
    let info: Value =
        client.get(format!("http://127.0.0.1:{env_port}/agent/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["name"], "from-dotenv");
    assert_eq!(info["backend"], "databricks");
    let resp: Value = client
        .post(format!("http://127.0.0.1:{env_port}/invocations"))
        .header("authorization", "Bearer user-token-never-logged")
        .header("x-forwarded-access-token", "obo-token-never-logged")
        .json(&json!({"input": [{"role": "user", "content": "what time is it?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["output"].as_array().unwrap().len(), 3, "{resp}");
    assert_eq!(fake.request_headers()[0]["authorization"], "Bearer dapi-secret-from-dotenv");
    let (status, logs) = stop(&mut child);
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(logs.contains("listening on http://127.0.0.1:"), "{logs}");
    let request_line = logs.lines().find(|l| l.contains("path=/invocations")).expect("the request is logged");
    assert!(request_line.contains("method=POST") && request_line.contains("status=200"), "{request_line}");
    assert!(!logs.contains('\u{1b}'), "no colour codes when not on a terminal");
    for secret in ["dapi-secret-from-dotenv", "user-token-never-logged", "obo-token-never-logged"] {
        assert!(!logs.contains(secret), "a credential reached the logs:\n{logs}");
    }

    // A flag beats the environment.
    let flag_port = free_port();
    let mut child = server_command(&dir)
        .env("DATABRICKS_APP_PORT", env_port.to_string())
        .args(["--port", &flag_port.to_string()])
        .spawn()
        .unwrap();
    wait_healthy(flag_port, &mut child).await;
    let (status, _) = stop(&mut child);
    assert!(status.success());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_stream_in_flight_finishes_after_sigterm() {
    let fake = FakeModel::start().await;
    fake.push(fake_model::Reply::text_with_delay("one two three four five six", Duration::from_millis(100)));
    let dir = std::env::temp_dir();
    let port = free_port();
    let mut child = server_command(&dir)
        .env("OPENAI_BASE_URL", fake.base_url())
        .args(["--port", &port.to_string()])
        .spawn()
        .unwrap();
    wait_healthy(port, &mut child).await;
    let client = server::http_client::new();
    let mut resp = client
        .post(format!("http://127.0.0.1:{port}/invocations"))
        .json(&json!({"input": [{"role": "user", "content": "count"}], "stream": true}))
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("response.created"));
    // A connection that never says anything does not hold the shutdown up (until its header timeout).
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut body = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.contains("response.completed") && body.ends_with("data: [DONE]\n\n"), "{body}");
    let (status, _) = stop(&mut child);
    assert!(status.success());
}

/// What a model (or a prompt injection through it) chooses, such as a tool's name, cannot forge log
/// lines or send terminal escapes to whoever reads the log.
#[tokio::test]
async fn model_chosen_text_cannot_forge_log_lines() {
    let fake = FakeModel::start().await;
    let forged = "get_time\n2026-12-03T00:00:00Z  INFO forged: admin signed in\u{1b}[2J";
    fake.push(fake_model::Reply::tool_call(forged, "{}")).push(fake_model::Reply::text("done"));
    let dir = std::env::temp_dir();
    let port = free_port();
    let mut child = server_command(&dir)
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("RUST_LOG", "debug")
        .args(["--port", &port.to_string()])
        .spawn()
        .unwrap();
    wait_healthy(port, &mut child).await;
    let resp = server::http_client::new()
        .post(format!("http://127.0.0.1:{port}/invocations"))
        .json(&json!({"input": [{"role": "user", "content": "time?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, logs) = stop(&mut child);
    assert!(logs.contains("forged: admin signed in"), "the name is logged (escaped): {logs}");
    assert!(!logs.lines().any(|l| l.contains(" INFO forged:") && !l.contains("tool")), "a forged line:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "a terminal escape reached the log");
}
