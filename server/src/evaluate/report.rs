//! The evaluation's reports: a table for the terminal and a self-contained HTML page (per-scorer pass
//! rates as a chart, then every case: the conversation, tool calls, and each verdict with its
//! rationale). Everything from the agent or the judge is escaped.

use std::fmt::Write;

use super::Results;
use super::dataset::CaseKind;
use super::scorers::Score;

fn mark(score: Option<&Score>) -> &'static str {
    match score {
        None => "·",
        Some(s) if s.error => "!",
        Some(s) => match s.pass {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "i",
        },
    }
}

/// Cases as rows, scorers as columns (✓ pass, ✗ fail, ! undecided, i informational, · not
/// applicable), then each scorer's pass rate.
pub fn table(results: &Results) -> String {
    let names: Vec<&str> = results.summary.iter().map(|(n, _)| n.as_str()).collect();
    let width = results.cases.iter().map(|c| c.run.case.name.chars().count()).max().unwrap_or(4).clamp(4, 40);
    let mut out = String::new();
    let _ = write!(out, "{:width$}", "case");
    for (i, _) in names.iter().enumerate() {
        let _ = write!(out, " {:>3}", i + 1);
    }
    out.push('\n');
    for case in &results.cases {
        let name: String = case.run.case.name.chars().take(width).collect();
        let _ = write!(out, "{name:width$}");
        for scorer in &names {
            let score = case.scores.iter().find(|s| s.scorer == *scorer);
            let _ = write!(out, " {:>3}", mark(score));
        }
        if let Some(error) = case.run.error() {
            let _ = write!(out, "  agent error: {}", error.chars().take(80).collect::<String>());
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, (name, summary)) in results.summary.iter().enumerate() {
        let rate = match summary.pass_rate {
            Some(rate) => {
                format!("{:>4.0}% pass ({}/{})", rate * 100.0, summary.passed, summary.passed + summary.failed)
            }
            None => "       -".to_string(),
        };
        let mean = summary.mean.map(|m| format!("  mean {m:.1}")).unwrap_or_default();
        let errors = if summary.errors > 0 { format!("  {} undecided", summary.errors) } else { String::new() };
        let _ = writeln!(out, "{:>3} {name:24} {rate}{mean}{errors}", i + 1);
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1f2328}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}.meta{color:#57606a}\
table{border-collapse:collapse}td,th{padding:.25rem .6rem;text-align:left;border-bottom:1px solid #d0d7de}\
.pass{color:#1a7f37}.fail{color:#cf222e}.undecided{color:#9a6700}.info{color:#57606a}\
details{border:1px solid #d0d7de;border-radius:8px;margin:.6rem 0;padding:.5rem .8rem}summary{cursor:pointer;font-weight:600}\
.turn{margin:.5rem 0;padding:.5rem;background:#f6f8fa;border-radius:6px;white-space:pre-wrap}\
.role{font-weight:600;color:#57606a}.tool{font-family:ui-monospace,monospace;font-size:13px;color:#8250df}\
.score{margin:.3rem 0}.rationale{color:#57606a}";

/// A self-contained HTML report.
pub fn html(results: &Results) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>agent-evaluate report</title><style>{STYLE}</style></head><body>\
         <h1>Evaluation of {}</h1><p class=\"meta\">{} cases · judge {} · started {} · {:.1} s{}</p>",
        escape(&results.target),
        results.cases.len(),
        escape(&results.judge),
        escape(&results.started_at),
        results.duration_seconds,
        results.mlflow_run_id.as_ref().map(|id| format!(" · MLflow run {}", escape(id))).unwrap_or_default()
    );

    // Pass rates as horizontal bars.
    out.push_str("<h2>Pass rate by scorer</h2>");
    let rated: Vec<_> = results.summary.iter().filter(|(_, s)| s.pass_rate.is_some()).collect();
    let (bar_width, row) = (420.0, 26);
    let _ = write!(
        out,
        "<svg width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"pass rates\">",
        200.0 + bar_width + 80.0,
        rated.len() * row + 4
    );
    for (i, (name, summary)) in rated.iter().enumerate() {
        let rate = summary.pass_rate.unwrap_or(0.0);
        let y = i * row;
        let colour = if rate >= 0.8 {
            "#2da44e"
        } else if rate >= 0.5 {
            "#bf8700"
        } else {
            "#cf222e"
        };
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"200\" y=\"{}\" width=\"{bar_width}\" height=\"16\" fill=\"#eaeef2\" rx=\"3\"/>\
             <rect x=\"200\" y=\"{}\" width=\"{:.1}\" height=\"16\" fill=\"{colour}\" rx=\"3\"/><text x=\"{}\" y=\"{}\" font-size=\"13\">{:.0}% ({}/{})</text>",
            y + 15,
            escape(name),
            y + 3,
            y + 3,
            rate * bar_width,
            200.0 + bar_width + 8.0,
            y + 15,
            rate * 100.0,
            summary.passed,
            summary.passed + summary.failed
        );
    }
    out.push_str("</svg>");

    out.push_str(
        "<h2>Summary</h2><table><tr><th>scorer</th><th>passed</th><th>failed</th><th>undecided</th><th>mean</th></tr>",
    );
    for (name, s) in &results.summary {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            s.passed,
            s.failed,
            s.errors,
            s.mean.map(|m| format!("{m:.1}")).unwrap_or_default()
        );
    }
    out.push_str("</table><h2>Cases</h2>");

    for case in &results.cases {
        let failed = case.scores.iter().filter(|s| s.pass == Some(false)).count();
        let status = if case.run.error().is_some() {
            "<span class=\"fail\">agent error</span>".to_string()
        } else if failed > 0 {
            format!("<span class=\"fail\">{failed} failed</span>")
        } else {
            "<span class=\"pass\">all passed</span>".to_string()
        };
        let _ = write!(
            out,
            "<details{}><summary>{} · {status}</summary>",
            if failed > 0 { " open" } else { "" },
            escape(&case.run.case.name)
        );
        if let CaseKind::Simulated { goal, persona, .. } = &case.run.case.kind {
            let _ = write!(
                out,
                "<p class=\"meta\">Simulated user. Goal: {}{}</p>",
                escape(goal),
                persona.as_ref().map(|p| format!(" · persona: {}", escape(p))).unwrap_or_default()
            );
        }
        for turn in &case.run.turns {
            let _ = write!(out, "<div class=\"turn\"><span class=\"role\">User</span>\n{}\n", escape(&turn.user));
            for call in &turn.tool_calls {
                let _ = writeln!(
                    out,
                    "<span class=\"tool\">→ {}({}) = {}</span>",
                    escape(&call.name),
                    escape(&call.arguments),
                    escape(&call.output.clone().unwrap_or_default().chars().take(500).collect::<String>())
                );
            }
            match &turn.error {
                Some(error) => {
                    let _ = write!(out, "<span class=\"fail\">Error: {}</span>", escape(error));
                }
                None => {
                    let _ = write!(out, "<span class=\"role\">Assistant</span>\n{}", escape(&turn.answer));
                }
            }
            let _ = write!(
                out,
                "\n<span class=\"meta\">{:.0} ms{}{}</span></div>",
                turn.latency_ms,
                turn.tokens.map(|t| format!(" · {t} tokens")).unwrap_or_default(),
                turn.trace_id.as_ref().map(|t| format!(" · trace {}", escape(t))).unwrap_or_default()
            );
        }
        for score in &case.scores {
            let class = match (score.error, score.pass) {
                (true, _) => "undecided",
                (_, Some(true)) => "pass",
                (_, Some(false)) => "fail",
                _ => "info",
            };
            let value = match &score.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(
                out,
                "<div class=\"score\"><b class=\"{class}\">{} {}: {}</b> <span class=\"rationale\">{}</span></div>",
                mark(Some(score)),
                escape(&score.scorer),
                escape(&value),
                escape(&score.rationale)
            );
        }
        out.push_str("</details>");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping() {
        assert_eq!(super::escape("<img src=x onerror='a'>&"), "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;");
    }
}
