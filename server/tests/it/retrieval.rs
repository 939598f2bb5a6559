//! Retrieval with sources: `search_documents` over a folder (`AGENT_DOCS_DIR`, a real SQLite FTS5
//! index), its passages numbered for the model to cite, and answers whose `[n]` markers become
//! `url_citation` annotations (in the stream and the response); the documents served at `/documents/`.

use crate::common::*;
use fake_model::Reply;
use serde_json::{Value, json};

fn docs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cats.md"), "# Cats\n\nCats sleep for twelve to sixteen hours a day.\n\nThey purr.")
        .unwrap();
    std::fs::create_dir(dir.path().join("garden")).unwrap();
    std::fs::write(
        dir.path().join("garden/tomatoes.md"),
        "# Growing tomatoes\n\nTomatoes need full sun and deep watering.",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("about.html"),
        "<html><title>About us</title><script>var sleep = 1;</script><p>We make software.</p></html>",
    )
    .unwrap();
    std::fs::write(dir.path().join("image.png"), [0u8, 1, 2]).unwrap();
    dir
}

fn tool_outputs(body: &Value) -> Vec<Value> {
    body["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| serde_json::from_str(i["output"].as_str().unwrap()).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn answers_cite_the_documents_they_were_given() {
    let dir = docs();
    let path = dir.path().to_path_buf();
    let server = start_with(move |s| s.agent.docs_dir = Some(path), server::agent::agent()).await;
    server.fake.push(Reply::tool_call("search_documents", r#"{"query": "How long do cats sleep?"}"#));
    server.fake.push(Reply::text("Cats sleep 12 to 16 hours a day [1]."));
    let mut body = user("How long do cats sleep?");
    body["stream"] = json!(true);
    let stream = server.stream("/responses", body, &[]).await;
    assert_eq!(stream.status, 200);

    // The model was offered the tool, and got ranked passages, each with its source and marker.
    assert!(server.fake.requests()[0]["tools"].to_string().contains("search_documents"));
    let done = stream.done_items();
    let output: Value = serde_json::from_str(done[1]["output"].as_str().unwrap()).unwrap();
    let passages = output.as_array().unwrap();
    assert_eq!(passages[0]["doc_uri"], "/documents/cats.md");
    assert_eq!(passages[0]["title"], "Cats");
    assert_eq!(passages[0]["cite_as"], "[1]");
    assert!(passages[0]["text"].as_str().unwrap().contains("twelve to sixteen hours"));
    assert!(
        passages.iter().all(|p| p["doc_uri"] != "/documents/garden/tomatoes.md"),
        "only matching documents: {output}"
    );

    // The answer's marker is a url_citation: an event while streaming, and on the message.
    let annotation = json!({"type": "url_citation", "url": "/documents/cats.md", "title": "Cats", "start_index": 32, "end_index": 35});
    let events = stream.json();
    let added: Vec<&Value> = events.iter().filter(|e| e["type"] == "response.output_text.annotation.added").collect();
    assert_eq!(added.len(), 1, "{events:?}");
    assert_eq!(added[0]["annotation"], annotation);
    assert_eq!(added[0]["annotation_index"], 0);
    assert_eq!(added[0]["item_id"], done[2]["id"]);
    assert_eq!(done[2]["content"][0]["annotations"], json!([annotation]));
    let text = done[2]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.chars().skip(32).take(3).collect::<String>(), "[1]");
    let completed = events.iter().find(|e| e["type"] == "response.completed").unwrap();
    assert_eq!(completed["response"]["output"][2]["content"][0]["annotations"], json!([annotation]));

    // The cited document is readable where the citation points; nothing outside the folder is.
    let page = server.client.get(format!("{}/documents/cats.md", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Cats sleep"));
    let outside = server.client.get(format!("{}/documents/..%2F..%2Fetc%2Fpasswd", server.url)).send().await.unwrap();
    assert_ne!(outside.status(), 200);
}

#[tokio::test]
async fn an_answer_that_cites_nothing_lists_what_it_drew_on_and_search_takes_any_text() {
    let dir = docs();
    let path = dir.path().to_path_buf();
    let server = start_with(
        move |s| {
            s.agent.docs_dir = Some(path);
            s.agent.docs_base_url = Some("https://wiki.example.com/kb".into());
        },
        server::agent::agent(),
    )
    .await;
    server
        .fake
        .push(Reply::tool_call("search_documents", r#"{"query": "tomatoes \"sun\" AND (NEAR OR", "limit": 3}"#))
        .push(Reply::tool_call("search_documents", r#"{"query": "?!"}"#))
        .push(Reply::tool_call("search_documents", r#"{"query": "software"}"#))
        .push(Reply::text("Full sun, and water deeply."));
    let (status, body) = server.post("/responses", user("tomatoes?")).await;
    assert_eq!(status, 200, "{body}");
    let outputs = tool_outputs(&body);
    // FTS syntax in the query is taken as words; a query without words finds nothing, without error.
    assert_eq!(outputs[0][0]["doc_uri"], "https://wiki.example.com/kb/garden/tomatoes.md");
    assert_eq!(outputs[0][0]["cite_as"], "[1]");
    assert_eq!(outputs[1], json!([]));
    // HTML is indexed as its text (scripts left out), titled by its <title>.
    assert_eq!(outputs[2][0]["title"], "About us");
    assert_eq!(outputs[2][0]["cite_as"], "[2]");
    assert!(!outputs[2][0]["text"].as_str().unwrap().contains("var sleep"));
    let message = body["output"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        message["content"][0]["annotations"],
        json!([
            {"type": "url_citation", "url": "https://wiki.example.com/kb/garden/tomatoes.md", "title": "Growing tomatoes"},
            {"type": "url_citation", "url": "https://wiki.example.com/kb/about.html", "title": "About us"},
        ])
    );
    // With an external base URL the app serves no /documents/ of its own.
    let page = server.client.get(format!("{}/documents/cats.md", server.url)).send().await.unwrap();
    assert_ne!(page.status(), 200);
}

#[tokio::test]
async fn answers_without_retrieval_have_no_annotations() {
    let server = start().await;
    server.fake.push(Reply::text("Plain [1] text."));
    let (_, body) = server.post("/responses", user("hi")).await;
    assert_eq!(body["output"][0]["content"][0]["annotations"], json!([]));
}

/// `/documents/` serves the documents the index reads and nothing else: no hidden files, nothing through a
/// symbolic link, no other file types; an HTML document's scripts never run on the app's origin.
#[tokio::test]
async fn only_the_indexed_documents_are_served_and_html_is_sandboxed() {
    let dir = docs();
    let root = dir.path();
    std::fs::write(root.join(".env"), "DATABRICKS_TOKEN=dapi-secret").unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config.md"), "[remote] url = https://token@github.com/x").unwrap();
    std::fs::write(root.join(".hidden.md"), "hidden").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.md"), "outside the folder").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.md"), root.join("link.md")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();
    std::fs::write(root.join("logo.svg"), "<svg onload=alert(1)></svg>").unwrap();
    std::fs::write(root.join("page.html"), "<html><title>P</title><script>alert(document.cookie)</script>Hi</html>")
        .unwrap();
    let path = root.to_path_buf();
    let server = start_with(move |s| s.agent.docs_dir = Some(path), server::agent::agent()).await;
    let get = |path: &str| {
        let url = format!("{}/documents/{path}", server.url);
        let client = server.client.clone();
        async move {
            let resp = client.get(url).send().await.unwrap();
            let csp = resp.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
            (resp.status().as_u16(), csp, resp.text().await.unwrap())
        }
    };
    assert_eq!(get("cats.md").await.0, 200);
    for refused in [".env", ".git/config.md", ".hidden.md", "link.md", "linked/secret.md", "logo.svg", "%2e%2e/x.md"] {
        let (status, _, body) = get(refused).await;
        assert_eq!(status, 404, "{refused}: {body}");
    }
    let (status, csp, body) = get("page.html").await;
    assert_eq!(status, 200);
    assert!(body.contains("<script>"), "the document as it is");
    let csp = csp.unwrap();
    assert!(csp.starts_with("sandbox;") && csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("sha256-"), "its inline script is not allowed by hash: {csp}");
}
