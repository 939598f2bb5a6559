//! The SSE frame parser (model streams on the server, the agent's stream in the browser): however
//! the bytes are chunked, the frames are the same, and nothing panics.
#![no_main]

use app::responses::StreamFrame;
use app::sse::SseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where the input is split.
    let Some((&split, bytes)) = data.split_first() else { return };
    let mut whole = SseParser::new(4096);
    let all_at_once = whole.push(bytes);
    let mut chunked = SseParser::new(4096);
    let step = usize::from(split).max(1);
    let mut frames = Vec::new();
    let mut failed = false;
    for chunk in bytes.chunks(step) {
        match chunked.push(chunk) {
            Ok(more) => frames.extend(more),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match all_at_once {
        Ok(expected) if !failed => assert_eq!(frames, expected, "chunking changed the frames"),
        _ => {}
    }
    for frame in frames {
        let _ = StreamFrame::parse(&frame.data);
    }
});
