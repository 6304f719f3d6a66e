//! Server-sent events: `event:` and `data:` lines, a blank line ends an event.
//!
//! Read as bytes, not text: the server is not trusted to send UTF-8 or to
//! end its lines. Invalid UTF-8 becomes U+FFFD (the event may still be
//! readable, and if not, the caller counts it rather than losing the whole
//! stream), and a line or an event past its cap is dropped without being
//! held in memory, and reported, so a server cannot make loopvel grow
//! without bound by never sending a newline.

use std::io::{BufRead, ErrorKind};

/// The longest line kept (4 MiB): far above a reply's cap
/// ([`crate::MAX_REPLY_BYTES`]), so no event a real server sends is cut.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// The most `data:` text one event may gather (4 MiB), for the same reason.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` name, if any.
    pub event: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// What the stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event as sent (invalid UTF-8 replaced by U+FFFD).
    Event(Event),
    /// An event with a line longer than [`MAX_LINE_BYTES`] or more data than
    /// [`MAX_EVENT_BYTES`]: dropped unread, so the caller can record it.
    Oversized,
}

/// Events as they arrive; an I/O error ends the stream with that error.
pub fn events<R: BufRead>(reader: R) -> impl Iterator<Item = std::io::Result<Item>> {
    events_capped(reader, MAX_LINE_BYTES, MAX_EVENT_BYTES)
}

/// [`events`] with the caps as arguments, so tests can reach them with small inputs.
pub(crate) fn events_capped<R: BufRead>(
    mut reader: R,
    max_line: usize,
    max_event: usize,
) -> impl Iterator<Item = std::io::Result<Item>> {
    let mut buf = Vec::new();
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut ev = Event::default();
        let mut has_data = false;
        let mut oversized = false;
        let finish = |ev: Event, has_data: bool, oversized: bool| {
            if oversized {
                Some(Ok(Item::Oversized))
            } else {
                has_data.then_some(Ok(Item::Event(ev)))
            }
        };
        loop {
            match read_line(&mut reader, &mut buf, max_line) {
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
                Ok(Line::Eof) => {
                    done = true;
                    return finish(ev, has_data, oversized);
                }
                Ok(Line::TooLong) => oversized = true,
                Ok(Line::Read) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.strip_suffix('\n').unwrap_or(&text).trim_end_matches('\r');
                    if line.is_empty() {
                        if has_data || oversized {
                            return finish(ev, has_data, oversized);
                        }
                        continue;
                    }
                    if oversized {
                        // The event is lost already; holding the rest of it would only cost memory.
                        continue;
                    }
                    if let Some(d) = line.strip_prefix("data:") {
                        let d = d.strip_prefix(' ').unwrap_or(d);
                        if ev.data.len() + usize::from(has_data) + d.len() > max_event {
                            oversized = true;
                            ev.data = String::new();
                            continue;
                        }
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(d);
                        has_data = true;
                    } else if let Some(e) = line.strip_prefix("event:") {
                        ev.event = e.trim().to_string();
                    }
                    // Comments (":…") and unknown fields are ignored.
                }
            }
        }
    })
}

enum Line {
    /// A line, with its newline if it had one, is in the buffer.
    Read,
    /// A line past the cap was consumed and not kept.
    TooLong,
    /// Nothing more.
    Eof,
}

/// Read one line into `buf` (cleared first), keeping at most `max` bytes of
/// it; the rest of a longer line is consumed chunk by chunk and let go.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    buf.clear();
    let mut any = false;
    let mut too_long = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => Line::Eof,
                (true, true) => Line::TooLong,
                (true, false) => Line::Read,
            });
        }
        any = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let take = newline.map_or(chunk.len(), |i| i + 1);
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take);
        if newline.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Read });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(bytes: &[u8]) -> Vec<Item> {
        events(bytes).map(Result::unwrap).collect()
    }

    #[test]
    fn events_split_on_blank_lines() {
        let text = ": comment\nevent: a\ndata: {\"x\":1}\n\ndata: one\ndata: two\n\ndata: [DONE]\n";
        let evs = items(text.as_bytes());
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0], Item::Event(Event { event: "a".into(), data: "{\"x\":1}".into() }));
        assert_eq!(evs[1], Item::Event(Event { event: String::new(), data: "one\ntwo".into() }));
        assert_eq!(evs[2], Item::Event(Event { event: String::new(), data: "[DONE]".into() }));
    }

    #[test]
    fn crlf_and_invalid_utf8_are_read() {
        let evs = items(b"event: x\r\ndata: a\xffb\r\n\r\ndata: \xe2\x82\r\n\r\n");
        assert_eq!(evs[0], Item::Event(Event { event: "x".into(), data: "a\u{fffd}b".into() }));
        assert_eq!(evs[1], Item::Event(Event { event: String::new(), data: "\u{fffd}".into() }));
    }

    #[test]
    fn an_over_long_line_drops_its_event_only() {
        let bytes = b"data: 0123456789abcdef\n\ndata: ok\n\n: a comment that is far too long\n\ndata: end";
        let evs: Vec<Item> = events_capped(&bytes[..], 16, 64).map(Result::unwrap).collect();
        let ok = |d: &str| Item::Event(Event { event: String::new(), data: d.into() });
        assert_eq!(evs, vec![Item::Oversized, ok("ok"), Item::Oversized, ok("end")]);
    }

    #[test]
    fn too_much_data_in_one_event_drops_it() {
        let bytes = b"data: 12345\ndata: 12345\ndata: 12345\n\ndata: 12345\ndata: 1234\n\n";
        let evs: Vec<Item> = events_capped(&bytes[..], 64, 10 + 1 + 4).map(Result::unwrap).collect();
        assert_eq!(evs, vec![Item::Oversized, Item::Event(Event { event: String::new(), data: "12345\n1234".into() })]);
    }

    #[test]
    fn a_huge_line_without_a_newline_ends_as_one_dropped_event() {
        let reader = std::io::BufReader::new(std::io::Read::take(std::io::repeat(b'a'), 10 * 1024 * 1024));
        let evs: Vec<Item> = events(reader).map(Result::unwrap).collect();
        assert_eq!(evs, vec![Item::Oversized]);
    }

    #[test]
    fn io_errors_end_the_stream() {
        struct Broken(bool);
        impl std::io::Read for Broken {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(std::io::Error::new(ErrorKind::ConnectionReset, "reset"));
                }
                out[..9].copy_from_slice(b"data: a\n\n");
                Ok(9)
            }
        }
        let mut it = events(std::io::BufReader::new(Broken(false)));
        assert_eq!(it.next().unwrap().unwrap(), Item::Event(Event { event: String::new(), data: "a".into() }));
        assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::ConnectionReset);
        assert!(it.next().is_none());
    }

    /// The reader before it read bytes (`BufRead::lines`), for valid UTF-8 the reference.
    fn reference(text: &str) -> Vec<Item> {
        let mut out = Vec::new();
        let mut ev = Event::default();
        let mut has_data = false;
        for line in text.as_bytes().lines() {
            let line = line.unwrap();
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                if has_data {
                    out.push(Item::Event(std::mem::take(&mut ev)));
                    has_data = false;
                }
                continue;
            }
            if let Some(d) = line.strip_prefix("data:") {
                if has_data {
                    ev.data.push('\n');
                }
                ev.data.push_str(d.strip_prefix(' ').unwrap_or(d));
                has_data = true;
            } else if let Some(e) = line.strip_prefix("event:") {
                ev.event = e.trim().to_string();
            }
        }
        if has_data {
            out.push(Item::Event(ev));
        }
        out
    }

    /// Bytes that look like SSE often enough to reach every branch.
    fn sse_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data:".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"event: ".to_vec()),
            Just(b":".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just("é€😀".as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 1..8),
        ];
        proptest::collection::vec(piece, 0..200).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Invalid UTF-8 never spans a newline (an ASCII byte ends any
        /// sequence), so reading line by line lossily equals reading the
        /// whole stream lossily, which the old reader then parsed.
        #[test]
        fn arbitrary_bytes_read_as_their_lossy_text(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            prop_assert_eq!(items(&bytes), reference(&String::from_utf8_lossy(&bytes)));
        }

        #[test]
        fn sse_like_bytes_read_as_their_lossy_text(bytes in sse_like()) {
            prop_assert_eq!(items(&bytes), reference(&String::from_utf8_lossy(&bytes)));
        }

        /// With small caps: nothing past them is yielded, and every event the
        /// reference reads is either yielded unchanged or reported dropped.
        #[test]
        fn caps_hold_and_drops_are_reported(bytes in sse_like(), max_line in 1usize..64, max_event in 0usize..64) {
            let got: Vec<Item> = events_capped(&bytes[..], max_line, max_event).map(Result::unwrap).collect();
            let want = reference(&String::from_utf8_lossy(&bytes));
            for item in &got {
                if let Item::Event(e) = item {
                    prop_assert!(e.data.len() <= max_event);
                }
            }
            // Data only: the old reader keeps an `event:` name across a blank
            // line without data, so a name can outlive an event that was dropped here.
            let data = |i: &Item| match i {
                Item::Event(e) => Some(e.data.clone()),
                Item::Oversized => None,
            };
            let mut rest = want.iter().filter_map(data);
            for k in got.iter().filter_map(data) {
                prop_assert!(rest.any(|w| w == k), "{:?} is not an event that was sent", k);
            }
        }
    }
}
