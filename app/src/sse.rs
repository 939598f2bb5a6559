//! Server-sent events: an incremental frame parser and the frame writer.
//!
//! The parser takes bytes as they arrive (any chunking, UTF-8 characters split anywhere) and yields
//! whole frames. It is used by the server to read model streams and by the browser to read the agent's
//! stream, so both sides agree on framing. Lines end in `\n`, `\r\n` or `\r`; `:` lines are comments
//! (keep-alives); a frame is dispatched at a blank line if it has data.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A line grew past the limit without ending: the peer is not speaking SSE, or is hostile.
    LineTooLong { limit: usize },
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::LineTooLong { limit } => write!(f, "event stream line longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

/// Incremental SSE parser.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// A `\r` ended the last chunk: a `\n` starting the next one belongs to it.
    skip_lf: bool,
    pending: SseFrame,
    has_data: bool,
    max_line: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(16 * 1024 * 1024)
    }
}

impl SseParser {
    /// A parser that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self { buf: Vec::new(), skip_lf: false, pending: SseFrame::default(), has_data: false, max_line }
    }

    /// Feeds bytes; returns the frames they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<SseFrame>, SseError> {
        let mut frames = Vec::new();
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', bytes) {
            let line_end = bytes[pos];
            let line = &bytes[..pos];
            bytes = &bytes[pos + 1..];
            if line_end == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            if self.buf.is_empty() {
                self.line(line, &mut frames);
            } else {
                let mut whole = std::mem::take(&mut self.buf);
                whole.extend_from_slice(line);
                self.line(&whole, &mut frames);
                whole.clear();
                self.buf = whole;
            }
        }
        if self.buf.len() + bytes.len() > self.max_line {
            return Err(SseError::LineTooLong { limit: self.max_line });
        }
        self.buf.extend_from_slice(bytes);
        Ok(frames)
    }

    fn line(&mut self, line: &[u8], frames: &mut Vec<SseFrame>) {
        if line.is_empty() {
            if self.has_data {
                frames.push(std::mem::take(&mut self.pending));
            } else {
                self.pending = SseFrame::default();
            }
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        // Valid UTF-8 is the rule; only a broken peer pays for the lossy conversion.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.pending.event = Some(value.into_owned()),
            b"id" => self.pending.id = Some(value.into_owned()),
            _ => {}
        }
    }
}

/// Writes one `data:` frame. Multi-line data becomes several `data:` lines, so any text round-trips.
pub fn write_data_frame(out: &mut Vec<u8>, data: &str) {
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(frames: &[SseFrame]) -> Vec<&str> {
        frames.iter().map(|f| f.data.as_str()).collect()
    }

    #[test]
    fn whole_body_at_once() {
        let mut p = SseParser::default();
        let f = p
            .push(b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\nid: 7\ndata: two\ndata: lines\n\ndata: [DONE]\n\n")
            .unwrap();
        assert_eq!(data(&f), vec!["{\"a\":1}", "two\nlines", "[DONE]"]);
        assert_eq!(f[1].event.as_deref(), Some("x"));
        assert_eq!(f[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn byte_by_byte_with_utf8_split_and_crlf() {
        let body = "data: héllo wörld 🌍\r\n\r\ndata:no-space\r\rdata: last\n\n".as_bytes();
        let mut p = SseParser::default();
        let mut frames = Vec::new();
        for b in body {
            frames.extend(p.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(data(&frames), vec!["héllo wörld 🌍", "no-space", "last"]);
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let body = "data: αβγ\n\n:c\ndata: 🌍x\r\n\r\ndata: end\n\n".as_bytes();
        let mut whole = SseParser::default();
        let expected = whole.push(body).unwrap();
        for cut in 0..body.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&body[..cut]).unwrap();
            got.extend(p.push(&body[cut..]).unwrap());
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn incomplete_frame_waits() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: par").unwrap().is_empty());
        assert!(p.push(b"tial\n").unwrap().is_empty());
        assert_eq!(data(&p.push(b"\n").unwrap()), vec!["partial"]);
    }

    #[test]
    fn overlong_line_is_refused() {
        let mut p = SseParser::new(8);
        assert_eq!(p.push(b"data: 0123456789").unwrap_err(), SseError::LineTooLong { limit: 8 });
    }

    #[test]
    fn writer_round_trips_multiline_data() {
        let mut out = Vec::new();
        write_data_frame(&mut out, "a\nb");
        assert_eq!(out, b"data: a\ndata: b\n\n");
        assert_eq!(data(&SseParser::default().push(&out).unwrap()), vec!["a\nb"]);
    }
}
