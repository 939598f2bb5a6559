//! The app's service principal (OAuth M2M from the workspace's OIDC endpoint, an in-process fake here):
//! the chat history's Lakebase password, renewed, and the credential model calls are signed with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use server::config::Secret;
use server::databricks::oauth::{ClientCredentials, OAuthError};

/// A fake `/oidc/v1/token`: checks the client credentials, hands out `tok-1`, `tok-2`… valid for
/// `lifetime` seconds, and counts the calls.
async fn fake_oidc(lifetime: u64) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/oidc/v1/token",
        post(move |headers: HeaderMap, body: String| {
            let counter = counter.clone();
            async move {
                // "app-id:s3cret" in basic auth.
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                if auth != "Basic YXBwLWlkOnMzY3JldA==" {
                    return (StatusCode::UNAUTHORIZED, "invalid_client").into_response();
                }
                assert_eq!(body, "grant_type=client_credentials&scope=all-apis");
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                // Slow enough that concurrent callers overlap.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                axum::Json(serde_json::json!({
                    "access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": lifetime
                }))
                .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

#[tokio::test]
async fn tokens_are_cached_refreshed_once_at_a_time_and_renewed_near_expiry() {
    let (url, calls) = fake_oidc(3600).await;
    let credentials = Arc::new(ClientCredentials::new(&url, "app-id", Secret::new("s3cret")));
    let tokens = futures::future::join_all((0..8).map(|_| {
        let c = credentials.clone();
        async move { c.token().await.unwrap().secret.expose().to_string() }
    }))
    .await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh for eight concurrent callers");

    // A token inside its renewal window (the last 20% of its life, at most 10 min) is replaced.
    let (url, calls) = fake_oidc(0).await;
    let credentials = ClientCredentials::new(&url, "app-id", Secret::new("s3cret"));
    assert_eq!(credentials.token().await.unwrap().secret.expose(), "tok-1");
    assert_eq!(credentials.token().await.unwrap().secret.expose(), "tok-2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_secret() {
    let (url, _) = fake_oidc(3600).await;
    let credentials = ClientCredentials::new(&url, "app-id", Secret::new("wrong-secret"));
    let error = credentials.token().await.unwrap_err();
    assert!(matches!(error, OAuthError::Refused { status: 401, .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("/oidc/v1/token") && message.contains("invalid_client"), "{message}");
    assert!(!message.contains("wrong-secret"), "{message}");
}

#[tokio::test]
async fn a_lakebase_resource_without_password_connects_with_the_token() {
    let Ok(database) = std::env::var("TEST_DATABASE_URL") else {
        assert!(std::env::var("AGENT_REQUIRE_POSTGRES").as_deref() != Ok("1"), "TEST_DATABASE_URL is required");
        eprintln!("TEST_DATABASE_URL not set: skipped");
        return;
    };
    // postgres://user@host:port/db → the PG* variables a Databricks Apps database resource sets.
    let rest = database.strip_prefix("postgres://").unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let (oidc, calls) = fake_oidc(3600).await;
    let fake = fake_model::FakeModel::start().await;
    let mut settings = crate::common::test_settings(&fake);
    settings.history.enabled = true;
    settings.history.titles = false;
    settings.databricks.host = Some(oidc);
    settings.databricks.client_id = Some("app-id".into());
    settings.databricks.client_secret = Some(Secret::new("s3cret"));
    let database_name = db.split('?').next().unwrap();
    settings.history.pg_host = Some(host.into());
    settings.history.pg_port = Some(port.into());
    settings.history.pg_user = Some(user.into());
    settings.history.pg_database = Some(database_name.into());
    settings.history.pg_sslmode = Some("disable".into());
    assert_eq!(
        settings.history.postgres_url(Some("t/k:n")).unwrap(),
        format!("postgres://{user}:t%2Fk%3An@{host}:{port}/{database_name}?sslmode=disable")
    );
    assert!(settings.history.database_password_needed());
    let state = server::AppState::new(settings, server::agent::agent()).unwrap().with_chat_history().await;
    let store = state.store.clone().expect("chat history on Lakebase");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the password came from the token endpoint");
    store.ping().await.unwrap();
    let user = format!("lakebase-{}", uuid::Uuid::new_v4());
    store.ensure_chat(&user, &format!("chat-{user}"), "hello").await.unwrap();
    assert_eq!(store.list_chats(&user, 5, None).await.unwrap().len(), 1);
}

/// On Databricks Apps there is no token, only the app's service principal: model calls are signed
/// with its OAuth token. A stand-in workspace serves the token and forwards model calls to the fake.
#[tokio::test]
async fn model_serving_calls_use_the_service_principals_token() {
    let fake = fake_model::FakeModel::start().await;
    let seen_auth: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let (oidc, calls) = fake_oidc(3600).await;
    let model_url = format!("{}/serving-endpoints/chat/completions", fake.host_url());
    let app = Router::new()
        .route(
            "/oidc/v1/token",
            post(move |headers: HeaderMap, body: String| {
                let oidc = oidc.clone();
                async move {
                    let resp = server::http_client::new()
                        .post(format!("{oidc}/oidc/v1/token"))
                        .header("authorization", headers["authorization"].clone())
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    (StatusCode::from_u16(resp.status().as_u16()).unwrap(), resp.text().await.unwrap())
                }
            }),
        )
        .route(
            "/serving-endpoints/chat/completions",
            post({
                let seen_auth = seen_auth.clone();
                move |headers: HeaderMap, body: String| {
                    let (seen_auth, model_url) = (seen_auth.clone(), model_url.clone());
                    async move {
                        let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
                        seen_auth.lock().unwrap().push(auth.unwrap_or_default());
                        let resp = server::http_client::new()
                            .post(model_url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        resp.text().await.unwrap()
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let workspace = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut settings = crate::common::test_settings(&fake);
    settings.model.openai_base_url = None;
    settings.databricks.host = Some(workspace);
    settings.databricks.client_id = Some("app-id".into());
    settings.databricks.client_secret = Some(server::config::Secret::new("s3cret"));
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    for _ in 0..2 {
        server.fake.push(fake_model::Reply::text("Signed."));
        let (status, body) = server.post("/invocations", crate::common::user("hi")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["output"][0]["content"][0]["text"], "Signed.");
    }
    assert_eq!(*seen_auth.lock().unwrap(), ["Bearer tok-1", "Bearer tok-1"], "one token, cached");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
