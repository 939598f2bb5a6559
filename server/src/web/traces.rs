//! `/traces`: the local trace viewer (no peer ships one). Server-rendered HTML with no script of
//! its own, so it adds nothing to the chat's browser bundle: the list of the user's traces, and
//! one trace as a waterfall of spans (timings), each opening onto its inputs and outputs, model,
//! token usage and error.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use leptos::prelude::*;
use serde_json::Value;

use crate::api::traces::{TraceQuery, elsewhere};
use crate::identity::Identity;
use crate::observability::local::TraceSummary;
use crate::observability::trace::{Payload, SpanRecord, TraceRecord, TraceState};
use crate::state::AppState;

const STYLE: &str = include_str!("../../../style/traces.css");

/// Inputs and outputs longer than this are cut on the page (the API has them whole).
const SHOWN_CHARS: usize = 20_000;

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn page(title: &str, body: impl IntoView + 'static) -> Html<String> {
    let title = title.to_string();
    let html = Owner::new().with(move || {
        view! {
            <html lang="en">
                <head>
                    <meta charset="utf-8"/>
                    <meta name="viewport" content="width=device-width, initial-scale=1"/>
                    <meta name="color-scheme" content="light dark"/>
                    <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                    <script inner_html=app::THEME_SCRIPT></script>
                    <link rel="stylesheet" href="/pkg/agent-app.css"/>
                    <link rel="stylesheet" href="/traces/style.css"/>
                    <title>{title}</title>
                </head>
                <body class="traces-page">
                    <header class="traces-head">
                        <a class="traces-home" href="/">"← Chat"</a>
                        <a href="/traces"><h1>"Traces"</h1></a>
                    </header>
                    <main class="traces-main">{body}</main>
                </body>
            </html>
        }
        .to_html()
    });
    Html(format!("<!DOCTYPE html>{html}"))
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn duration(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.1} ms") }
}

fn state_badge(ok: bool) -> impl IntoView {
    if ok {
        view! { <span class="badge ok">"OK"</span> }
    } else {
        view! { <span class="badge error">"ERROR"</span> }
    }
}

pub async fn list(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    query: Result<Query<TraceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(store) = state.observability.local.clone() else {
        let message = elsewhere(&state);
        return page("Traces", view! { <p class="traces-note">{message}</p> }).into_response();
    };
    let query = query.map(|q| q.0).unwrap_or(TraceQuery { limit: 50, before: None });
    let limit = query.limit.clamp(1, 200);
    let before = query.before.map(|ms| ms.saturating_mul(1_000_000));
    let mut traces = match store.list(&owner, limit + 1, before).await {
        Ok(traces) => traces,
        Err(error) => {
            let message = format!("The local trace store is unavailable: {error}");
            return (StatusCode::SERVICE_UNAVAILABLE, page("Traces", view! { <p class="traces-note">{message}</p> }))
                .into_response();
        }
    };
    let older = (traces.len() > limit).then(|| traces[limit - 1].start_ms);
    traces.truncate(limit);
    let body = if traces.is_empty() {
        view! { <p class="traces-note">"No traces yet: every request to the agent is traced here."</p> }.into_any()
    } else {
        view! {
            <table class="trace-list">
                <thead>
                    <tr><th>"Time"</th><th>"Request"</th><th>"Response"</th><th>"Duration"</th><th>"Tokens"</th><th>"State"</th></tr>
                </thead>
                <tbody>{traces.into_iter().map(trace_row).collect_view()}</tbody>
            </table>
            {older.map(|ms| view! { <a class="trace-older" href=format!("/traces?before={ms}")>"Older traces →"</a> })}
        }
        .into_any()
    };
    page("Traces", body).into_response()
}

fn trace_row(t: TraceSummary) -> impl IntoView {
    let href = format!("/traces/{}", t.trace_id);
    let tokens = t.total_tokens.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    view! {
        <tr class="trace-row" data-trace-id=t.trace_id.clone()>
            <td class="nowrap"><a href=href.clone()>{when(t.start_ms)}</a></td>
            <td class="preview"><a href=href>{t.request_preview}</a></td>
            <td class="preview">{t.error.clone().unwrap_or(t.response_preview)}</td>
            <td class="nowrap">{duration(t.duration_ms)}</td>
            <td class="nowrap">{tokens}</td>
            <td>{state_badge(t.state == "OK")}</td>
        </tr>
    }
}

pub async fn show(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    Path(trace_id): Path<String>,
) -> Response {
    let Some(store) = state.observability.local.clone() else {
        let message = elsewhere(&state);
        return (StatusCode::NOT_FOUND, page("Trace", view! { <p class="traces-note">{message}</p> })).into_response();
    };
    match store.get(&owner, &trace_id).await {
        Ok(Some(trace)) => {
            let title = format!("Trace {}", trace.trace_id);
            page(&title, trace_view(trace)).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, page("Trace", view! { <p class="traces-note">"Trace not found."</p> }))
            .into_response(),
        Err(error) => {
            let message = format!("The local trace store is unavailable: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, page("Trace", view! { <p class="traces-note">{message}</p> }))
                .into_response()
        }
    }
}

fn trace_view(trace: TraceRecord) -> impl IntoView {
    let usage =
        trace.usage.map(|u| format!("{} in, {} out, {} total", u.input_tokens, u.output_tokens, u.total_tokens));
    let facts: Vec<(&str, String)> = [
        ("Trace", Some(trace.trace_id.clone())),
        ("Started", Some(when((trace.start_ns / 1_000_000) as i64))),
        ("Duration", Some(duration(trace.duration_ms()))),
        ("Tokens", usage),
        ("Session", trace.session.clone()),
        ("User", trace.user.clone()),
        ("Model version", trace.model_id.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let tree = span_tree(&trace);
    view! {
        <section class="trace-summary">
            <h2>{trace.request_preview.clone()} " " {state_badge(trace.state == TraceState::Ok)}</h2>
            {trace.error.clone().map(|e| view! { <p class="span-error">{e}</p> })}
            <dl>
                {facts.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
            </dl>
        </section>
        <section class="span-tree" aria-label="Spans">{tree}</section>
    }
}

/// The spans as a waterfall: depth-first, each indented under its parent, each row opening onto
/// its details.
fn span_tree(trace: &TraceRecord) -> Vec<AnyView> {
    let total = trace.end_ns.saturating_sub(trace.start_ns).max(1) as f64;
    let children_of = |parent: Option<&str>| {
        let mut children: Vec<&SpanRecord> = trace.spans.iter().filter(|s| s.parent_id.as_deref() == parent).collect();
        children.sort_by_key(|s| std::cmp::Reverse(s.start_ns));
        children
    };
    let mut stack: Vec<(&SpanRecord, usize)> = children_of(None).into_iter().map(|s| (s, 0)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::with_capacity(trace.spans.len());
    while let Some((span, depth)) = stack.pop() {
        // A corrupt record with a cycle must not loop.
        if !seen.insert(span.span_id.as_str()) {
            continue;
        }
        let left = (span.start_ns.saturating_sub(trace.start_ns) as f64 / total * 100.0).min(99.5);
        let width = (span.end_ns.saturating_sub(span.start_ns) as f64 / total * 100.0).clamp(0.5, 100.0 - left);
        rows.push(span_view(span, depth, left, width));
        stack.extend(children_of(Some(&span.span_id)).into_iter().map(|s| (s, depth + 1)));
    }
    rows
}

fn pretty(raw: &serde_json::value::RawValue) -> String {
    let value: Value = serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().to_string()));
    let text = match &value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}\n… ({} more characters; see /api/traces/<id>)", &text[..cut], text.len() - cut),
        None => text,
    }
}

fn span_view(span: &SpanRecord, depth: usize, left: f64, width: f64) -> AnyView {
    let ms = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e6;
    let kind = span.span_type.as_str();
    let bar = format!("margin-left:{left:.2}%;width:{width:.2}%");
    let usage = span.usage.map(|u| format!("{} in / {} out tokens", u.input_tokens, u.output_tokens));
    let io = |label: &'static str, payload: &Payload| {
        payload.as_ref().map(|raw| view! { <div class="span-io"><h4>{label}</h4><pre>{pretty(raw)}</pre></div> })
    };
    let inputs = io("Inputs", &span.inputs);
    let outputs = io("Outputs", &span.outputs);
    let attributes = (!span.attributes.is_empty())
        .then(|| view! { <div class="span-io"><h4>"Attributes"</h4><pre>{serde_json::to_string_pretty(&span.attributes).unwrap_or_default()}</pre></div> });
    let class = if span.error.is_some() { "span failed" } else { "span" };
    let indent = format!("padding-left:{:.1}rem", depth.min(12) as f64 * 1.1);
    view! {
        <details class=class data-span-type=kind>
            <summary>
                <span class=format!("span-type t-{}", kind.to_lowercase())>{kind}</span>
                <span class="span-name" style=indent>{span.name.clone()}</span>
                <span class="span-time">{duration(ms)}</span>
                <span class="span-bar"><span style=bar></span></span>
            </summary>
            <div class="span-body">
                {span.error.clone().map(|e| view! { <p class="span-error">{e}</p> })}
                {span.model.clone().map(|m| view! { <p class="span-meta">"Model: " {m}</p> })}
                {usage.map(|u| view! { <p class="span-meta">{u}</p> })}
                {inputs}
                {outputs}
                {attributes}
            </div>
        </details>
    }
    .into_any()
}
