//! Markdown from the model is untrusted: whatever it is, the HTML's only tags are the renderer's
//! (text `<` is always escaped), none is a script or frame, none has an event handler, and every
//! link or image target is one that cannot run code.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A tag's name and its `name="value"` attributes (the renderer always quotes values with `"`).
fn parse_tag(tag: &str) -> (String, Vec<(String, String)>) {
    let tag = tag.trim_start_matches('/').trim_end_matches('/');
    let (name, mut rest) = tag.split_once(' ').unwrap_or((tag, ""));
    let mut attributes = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let attribute = rest[..end].to_ascii_lowercase();
        rest = &rest[end..];
        let value = match rest.strip_prefix("=\"") {
            Some(quoted) => {
                let close = quoted.find('"').expect("a closed attribute value");
                let value = quoted[..close].to_string();
                rest = &quoted[close + 1..];
                value
            }
            None => String::new(),
        };
        attributes.push((attribute, value));
    }
    (name.to_ascii_lowercase(), attributes)
}

fuzz_target!(|text: &str| {
    let html = app::markdown::render(text);
    // Text never holds a raw `<`, so each `<…>` is a tag the renderer wrote.
    for tag in html.split('<').skip(1).map(|t| &t[..t.find('>').expect("a closed tag")]) {
        let (name, attributes) = parse_tag(tag);
        assert!(!["script", "iframe", "object", "embed", "style", "svg", "math"].contains(&name.as_str()), "<{tag}>");
        for (attribute, value) in attributes {
            assert!(!attribute.starts_with("on"), "handler in <{tag}>");
            if attribute == "href" || attribute == "src" {
                assert!(app::markdown::is_safe_url(&value), "unsafe {attribute}={value} in <{tag}>");
            }
        }
    }
});
