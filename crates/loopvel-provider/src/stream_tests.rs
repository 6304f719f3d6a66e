//! A hostile or broken server, without HTTP: arbitrary bytes, and well-formed
//! replies with garbage between their events, delivered in pieces that split
//! lines and UTF-8 characters. Whatever arrives: no panic, the reply capped,
//! no text that was not sent as reply content, every dropped event counted.
//!
//! Lone surrogate escapes and invalid UTF-8 inside a content string are reply
//! content as sent: they reach the text as U+FFFD (see [`Piece::Surrogate`]
//! and [`Piece::BadBytes`]). Everywhere else they are garbage.

use super::*;
use proptest::prelude::*;
use std::cell::RefCell;
use std::io::{BufReader, ErrorKind, Read};

/// Hands out its bytes in chunks of the given sizes, in turn; a size of 0 is
/// an interrupted read, which a reader must retry.
struct Chunked {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Chunked {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.bytes.len() || out.is_empty() {
            return Ok(0);
        }
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        if size == 0 {
            return Err(ErrorKind::Interrupted.into());
        }
        let n = size.min(out.len()).min(self.bytes.len() - self.at);
        out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn chunked(bytes: Vec<u8>, mut sizes: Vec<usize>) -> BufReader<Chunked> {
    // At least one read that makes progress, or an all-zero list would spin.
    sizes.push(1);
    BufReader::new(Chunked { bytes, at: 0, sizes, turn: 0 })
}

/// Reads a stream, checking on the way that progress never goes back.
fn read(api: Api, reader: impl std::io::BufRead) -> Attempt {
    let seen = RefCell::new(0u64);
    let on_tokens = |n: u64| {
        assert!(n >= *seen.borrow(), "progress went back");
        *seen.borrow_mut() = n;
    };
    read_stream(api, reader, Instant::now(), 40, &on_tokens)
}

fn read_bytes(api: Api, bytes: &[u8]) -> Attempt {
    read(api, bytes)
}

/// Whatever came of it, no more than the cap was kept.
fn assert_capped(a: &Attempt) {
    if let Attempt::Done(c) = a {
        assert!(c.text.len() <= MAX_REPLY_BYTES);
    }
}

fn done(a: Attempt) -> Completion {
    match a {
        Attempt::Done(c) => c,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn retry_reason(a: Attempt) -> String {
    match a {
        Attempt::Retry { reason, .. } => reason,
        other => panic!("expected a retry, got {other:?}"),
    }
}

/// JSON string text for `s`, without the quotes.
fn escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_string()
}

/// One event's worth of the stream, or noise between events.
#[derive(Debug, Clone)]
enum Piece {
    /// Reply text, well formed.
    Content(String),
    /// Reply text with a lone `\ud800` escape between the two parts: JSON
    /// allows it, Rust strings cannot hold it, so it arrives as U+FFFD.
    Surrogate(String, String),
    /// Reply text with raw bytes (not always valid UTF-8) between the two parts.
    BadBytes(String, Vec<u8>, String),
    /// Reasoning: counted, never text.
    Reasoning(String),
    /// A data line that is not JSON even after repair.
    Unreadable(String),
    /// An event of invalid UTF-8 bytes.
    InvalidUtf8(Vec<u8>),
    /// Comments, unknown fields, blank lines, JSON without content: ignored.
    Noise(&'static [u8]),
}

const NOISE: &[&[u8]] = &[
    b": a comment\n",
    b":\n",
    b"id: 7\n",
    b"retry: 100\n",
    b"\n",
    b"\r\n",
    b"da\xfft: x\n",
    b"data: {}\n\n",
    b"data: {\"choices\":[]}\n\n",
    b"data: {\"choices\":[{\"delta\":{}}]}\n\n",
    b"data: {\"junk\":\"\\ud800\"}\n\n",
    b"data: {\"type\":\"ping\"}\n\n",
    b"event: ping\ndata: {\"type\":\"ping\"}\n\n",
    b"data: [1,2,3]\n\n",
    b"data: \"a string\"\n\n",
];

/// Data lines that are never JSON (after lossy decoding and surrogate
/// repair), some of them looking much like a reply or its end.
const NOT_JSON: &[&str] = &[
    "[DONE] and more",
    "[DONE",
    "{\"choices\":[{\"delta\":{\"content\":\"GARBAGE\"}}]",
    "{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"GARBAGE\"}",
    "{\"choices\":[{\"delta\":{\"content\":\"GARBAGE\\ud800\"}}]",
    "{\"choices\":[{\"delta\":{\"content\":\"GARBAGE\\u12\"}}]}",
    "{\"choices\":[{\"delta\":{\"content\":GARBAGE}}]}",
    "data: {\"choices\":[{\"delta\":{\"content\":\"GARBAGE\"}}]}",
    "\\ud800",
    "\u{0}",
];

/// Any characters: control characters, NUL, quotes, backslashes, newlines, and
/// text that looks like the framing itself.
fn content() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        1 => prop::sample::select(vec![
            "data: x", "\n\ndata: [DONE]\n\n", "[DONE]", " [DONE] ", "\\ud800", "\\\\ud800", "\"", "\\", "\u{0}",
            "\r\n\r\n", "event: message_stop", "{\"type\":\"message_stop\"}", "é€😀", "\u{2028}\u{85}",
        ])
        .prop_map(str::to_string),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => content().prop_map(Piece::Content),
        1 => (content(), content()).prop_map(|(a, b)| Piece::Surrogate(a, b)),
        1 => (content(), proptest::collection::vec(0x80u8..=0xFF, 1..5), content())
            .prop_map(|(a, bad, b)| Piece::BadBytes(a, bad, b)),
        1 => content().prop_map(Piece::Reasoning),
        1 => prop::sample::select(NOT_JSON).prop_map(|g| Piece::Unreadable(g.to_string())),
        // A raw control character is invalid anywhere in JSON, in a string or out of one.
        1 => content().prop_map(|s| Piece::Unreadable(format!("{}\u{1}", s.replace(['\n', '\r'], " ")))),
        1 => proptest::collection::vec(0x80u8..=0xFF, 0..12).prop_map(|mut b| {
            b.insert(0, 0xFF);
            Piece::InvalidUtf8(b)
        }),
        2 => prop::sample::select(NOISE).prop_map(Piece::Noise),
    ]
}

/// A stream: its bytes, and what reading it must give.
struct Stream {
    bytes: Vec<u8>,
    text: String,
    reasoning_chars: usize,
    unreadable: u32,
}

fn event(out: &mut Vec<u8>, name: Option<&str>, data: &[u8], crlf: bool) {
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(nl);
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(nl);
    out.extend_from_slice(nl);
}

/// A content event with `text` spliced raw into its JSON string.
fn content_event(api: Api, out: &mut Vec<u8>, text: &[u8], crlf: bool) {
    let (name, head, tail): (_, &[u8], &[u8]) = match api {
        Api::OpenAi => (None, b"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"", b"\"}}]}"),
        Api::Anthropic => (
            Some("content_block_delta"),
            b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
            b"\"}}",
        ),
    };
    event(out, name, &[head, text, tail].concat(), crlf);
}

fn encode(api: Api, pieces: &[(Piece, bool)], end: bool, after: &[String]) -> Stream {
    let mut s = Stream { bytes: Vec::new(), text: String::new(), reasoning_chars: 0, unreadable: 0 };
    if api == Api::Anthropic {
        let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 11}}});
        event(&mut s.bytes, Some("message_start"), start.to_string().as_bytes(), false);
    }
    for (p, crlf) in pieces {
        let crlf = *crlf;
        match p {
            Piece::Content(t) => {
                // Built with serde_json, so the escaping is the one a server would use.
                let (name, v) = match api {
                    Api::OpenAi => (None, json!({"choices": [{"index": 0, "delta": {"content": t}}]})),
                    Api::Anthropic => (
                        Some("content_block_delta"),
                        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
                    ),
                };
                event(&mut s.bytes, name, v.to_string().as_bytes(), crlf);
                s.text.push_str(t);
            }
            Piece::Surrogate(a, b) => {
                let raw = format!("{}\\ud800{}", escaped(a), escaped(b));
                content_event(api, &mut s.bytes, raw.as_bytes(), crlf);
                s.text.push_str(&format!("{a}\u{fffd}{b}"));
            }
            Piece::BadBytes(a, bad, b) => {
                let raw = [escaped(a).as_bytes(), bad, escaped(b).as_bytes()].concat();
                content_event(api, &mut s.bytes, &raw, crlf);
                // The parts around are whole characters, so the bytes decode on their own.
                s.text.push_str(&format!("{a}{}{b}", String::from_utf8_lossy(bad)));
            }
            Piece::Reasoning(t) => {
                let (name, v) = match api {
                    Api::OpenAi => (None, json!({"choices": [{"delta": {"reasoning_content": t}}]})),
                    Api::Anthropic => (
                        Some("content_block_delta"),
                        json!({"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": t}}),
                    ),
                };
                event(&mut s.bytes, name, v.to_string().as_bytes(), crlf);
                s.reasoning_chars += t.len();
            }
            Piece::Unreadable(g) => {
                event(&mut s.bytes, None, g.as_bytes(), crlf);
                s.unreadable += 1;
            }
            Piece::InvalidUtf8(b) => {
                event(&mut s.bytes, None, b, crlf);
                s.unreadable += 1;
            }
            Piece::Noise(n) => s.bytes.extend_from_slice(n),
        }
    }
    if end {
        match api {
            Api::OpenAi => {
                let stop = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
                event(&mut s.bytes, None, stop.to_string().as_bytes(), false);
                let usage = json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 22}});
                event(&mut s.bytes, None, usage.to_string().as_bytes(), false);
                event(&mut s.bytes, None, b"[DONE]", false);
            }
            Api::Anthropic => {
                let delta = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 22}});
                event(&mut s.bytes, Some("message_delta"), delta.to_string().as_bytes(), false);
                event(&mut s.bytes, Some("message_stop"), b"{\"type\":\"message_stop\"}", false);
            }
        }
        // Whatever comes after the end is not part of the reply.
        for t in after {
            content_event(api, &mut s.bytes, escaped(&format!("AFTER{t}")).as_bytes(), false);
        }
    }
    s
}

fn check_structured(
    api: Api,
    pieces: &[(Piece, bool)],
    end: bool,
    after: &[String],
    sizes: Vec<usize>,
) -> Result<(), TestCaseError> {
    let s = encode(api, pieces, end, after);
    let got = read(api, chunked(s.bytes, sizes));
    if !end && s.text.is_empty() {
        prop_assert_eq!(retry_reason(got), "stream ended without a reply");
        return Ok(());
    }
    let c = done(got);
    prop_assert_eq!(&c.text, &s.text);
    prop_assert_eq!(c.unreadable_events, s.unreadable);
    prop_assert_eq!(c.reasoning_chars, s.reasoning_chars);
    prop_assert_eq!(c.ttft_s.is_some(), !s.text.is_empty());
    if end {
        prop_assert_eq!((c.output_tokens, c.output_tokens_estimated), (22, false));
        prop_assert_eq!((c.input_tokens, c.input_tokens_estimated), (11, false));
        let reason = if api == Api::OpenAi { "stop" } else { "end_turn" };
        prop_assert_eq!(c.finish_reason.as_deref(), Some(reason));
    } else {
        prop_assert!(c.output_tokens_estimated);
    }
    Ok(())
}

/// Bytes built from pieces of the formats, so that arbitrary input reaches
/// the JSON and the reply's branches, not only the framing.
fn wire_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            &b"data: "[..],
            b"event: ",
            b"\n",
            b"\r\n",
            b"\n\n",
            b"[DONE]",
            b"{\"choices\":[{\"delta\":{\"content\":\"",
            b"{\"choices\":[{\"delta\":{\"reasoning\":\"",
            b"\"}}]}",
            b"\"finish_reason\":\"stop\"",
            b"{\"error\":{\"message\":\"",
            b"{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"",
            b"{\"type\":\"message_stop\"}",
            b"\"}}",
            b"\\ud800",
            b"\\udc00",
            b"\\\\",
            b"\xff",
            b"\xe2\x82",
        ])
        .prop_map(<[u8]>::to_vec),
        proptest::collection::vec(any::<u8>(), 1..6),
    ];
    proptest::collection::vec(piece, 0..120).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_capped(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        for item in sse::events(&bytes[..]) {
            if let Ok(sse::Item::Event(e)) = item {
                prop_assert!(e.data.len() <= 3 * bytes.len());
            }
        }
        assert_capped(&read_bytes(Api::OpenAi, &bytes));
        assert_capped(&read_bytes(Api::Anthropic, &bytes));
    }

    #[test]
    fn wire_like_bytes_never_panic_and_stay_capped(bytes in wire_like(), sizes in proptest::collection::vec(0usize..16, 1..8)) {
        assert_capped(&read(Api::OpenAi, chunked(bytes.clone(), sizes.clone())));
        assert_capped(&read(Api::Anthropic, chunked(bytes, sizes)));
    }

    #[test]
    fn openai_stream_gives_exactly_its_content(
        pieces in proptest::collection::vec((piece(), any::<bool>()), 0..24),
        end in proptest::bool::weighted(0.8),
        after in proptest::collection::vec(content(), 0..3),
        sizes in proptest::collection::vec(0usize..12, 1..8),
    ) {
        check_structured(Api::OpenAi, &pieces, end, &after, sizes)?;
    }

    #[test]
    fn anthropic_stream_gives_exactly_its_content(
        pieces in proptest::collection::vec((piece(), any::<bool>()), 0..24),
        end in proptest::bool::weighted(0.8),
        after in proptest::collection::vec(content(), 0..3),
        sizes in proptest::collection::vec(0usize..12, 1..8),
    ) {
        check_structured(Api::Anthropic, &pieces, end, &after, sizes)?;
    }
}

#[test]
fn error_events_are_retried() {
    let openai = b"data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n";
    assert_eq!(retry_reason(read_bytes(Api::OpenAi, openai)), "error event in the stream: overloaded");
    let anthropic = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"overloaded\"}}\n\n";
    assert_eq!(retry_reason(read_bytes(Api::Anthropic, anthropic)), "stream error: overloaded");
}

#[test]
fn a_dropped_connection_is_retried() {
    struct Reset;
    impl Read for Reset {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(ErrorKind::ConnectionReset.into())
        }
    }
    let reason = retry_reason(read(Api::OpenAi, BufReader::new(Reset)));
    assert!(reason.starts_with("stream dropped: "), "{reason}");
}

#[test]
fn a_huge_line_without_a_newline_ends_the_stream_without_a_reply() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let reader = BufReader::new(std::io::repeat(b'a').take(10 * 1024 * 1024));
        assert_eq!(retry_reason(read(api, reader)), "stream ended without a reply");
    }
}

#[test]
fn over_long_events_are_counted_and_the_reply_goes_on() {
    // One line past the line cap, then an event past the event cap in lines under it.
    let mut bytes = vec![b'a'; sse::MAX_LINE_BYTES + 1];
    bytes.extend_from_slice(b"\n\n");
    let line = format!("data: {}\n", "b".repeat(1024 * 1024));
    bytes.extend(line.repeat(sse::MAX_EVENT_BYTES / (1024 * 1024) + 1).into_bytes());
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\"kept\"}}]}\n\ndata: [DONE]\n\n");
    let c = done(read_bytes(Api::OpenAi, &bytes));
    assert_eq!(c.text, "kept");
    assert_eq!(c.unreadable_events, 2);
}

#[test]
fn a_huge_stream_is_cut_at_the_cap() {
    let chunk = "abc€😀".repeat(100);
    let event = format!("data: {}\n\n", json!({"choices": [{"delta": {"content": chunk}}]}));
    let n = 3 * 1024 * 1024 / chunk.len();
    let mut bytes = event.repeat(n).into_bytes();
    bytes.extend_from_slice(b"data: [DONE]\n\n");
    let c = done(read(Api::OpenAi, chunked(bytes, vec![4096, 7, 65536])));
    assert!(c.text.len() <= MAX_REPLY_BYTES && c.text.len() > MAX_REPLY_BYTES - 4, "{}", c.text.len());
    assert!(chunk.repeat(n).starts_with(&c.text));
    assert_eq!(c.finish_reason.as_deref(), Some(CUT_REASON));
}

/// An OpenAI-compatible stream whose last event carries `usage_event`.
fn openai_with(usage_event: Value) -> Completion {
    let bytes = format!(
        "data: {}\n\ndata: {usage_event}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"delta": {"content": "ok"}}]})
    );
    done(read_bytes(Api::OpenAi, bytes.as_bytes()))
}

#[test]
fn cached_prompt_tokens_are_read_as_each_server_reports_them() {
    // OpenAI, vLLM, newer llama.cpp.
    let c = openai_with(json!({"choices": [], "usage": {"prompt_tokens": 1200, "completion_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 1024}}}));
    assert_eq!((c.input_tokens, c.cached_input_tokens, c.cache_write_tokens), (1200, Some(1024), None));
    // DeepSeek.
    let c = openai_with(json!({"choices": [], "usage": {"prompt_tokens": 900, "completion_tokens": 30,
        "prompt_cache_hit_tokens": 640}}));
    assert_eq!(c.cached_input_tokens, Some(640));
    // llama.cpp's timings: cache_n prompt tokens reused, prompt_n processed.
    let c = openai_with(json!({"choices": [], "usage": {"prompt_tokens": 530, "completion_tokens": 30},
        "timings": {"cache_n": 512, "prompt_n": 18, "prompt_per_second": 101.5}}));
    assert_eq!((c.input_tokens, c.cached_input_tokens), (530, Some(512)));
    // llama.cpp's native field.
    let c = openai_with(json!({"choices": [], "tokens_cached": 77}));
    assert_eq!(c.cached_input_tokens, Some(77));
    // A server that says nothing: unknown, not zero.
    let c = openai_with(json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3}}));
    assert_eq!(c.cached_input_tokens, None);
}

#[test]
fn anthropic_cache_reads_and_writes_count_in_the_input() {
    let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 20,
        "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 300, "output_tokens": 1}}});
    let delta = json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "ok"}});
    let end = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}});
    let bytes = format!(
        "event: message_start\ndata: {start}\n\nevent: content_block_delta\ndata: {delta}\n\n\
         event: message_delta\ndata: {end}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    let c = done(read_bytes(Api::Anthropic, bytes.as_bytes()));
    // Anthropic's input_tokens leaves out cache reads and writes; loopvel's counts every prompt token.
    assert_eq!(c.input_tokens, 2120);
    assert_eq!((c.cached_input_tokens, c.cache_write_tokens, c.output_tokens), (Some(1800), Some(300), 12));
    let t = c.tokens();
    assert_eq!((t.input, t.cached, t.cache_write, t.output), (2120, 1800, 300, 12));
}

#[test]
fn cached_tokens_are_priced_apart_and_unknown_prices_fall_back_to_the_input_price() {
    let mut m = ModelConfig::local("m", "http://127.0.0.1:9/v1");
    m.usd_per_mtok_in = 3.0;
    m.usd_per_mtok_out = 15.0;
    let t = Tokens { input: 2_000_000, cached: 1_500_000, cache_write: 100_000, output: 10_000 };
    // No cache prices: every input token at the input price.
    assert!((m.usd(&t) - (6.0 + 0.15)).abs() < 1e-9);
    m.usd_per_mtok_cached_in = Some(0.3);
    m.usd_per_mtok_cache_write = Some(3.75);
    let want = 0.4 * 3.0 + 1.5 * 0.3 + 0.1 * 3.75 + 0.01 * 15.0;
    assert!((m.usd(&t) - want).abs() < 1e-9, "{}", m.usd(&t));
    assert!((m.usd_uncached(&t) - 6.15).abs() < 1e-9);
    // A server that reports more cached than input (a bug) never makes a negative cost.
    let odd = Tokens { input: 10, cached: 50, cache_write: 0, output: 0 };
    assert!(m.usd(&odd) >= 0.0);
}

#[test]
fn anthropic_cache_marks_the_system_prompt_and_the_newest_message() {
    let mut m = ModelConfig::local("a", "http://127.0.0.1:9/v1");
    m.api = Api::Anthropic;
    let msgs = [
        Message { role: Role::System, content: "rules".into() },
        Message { role: Role::User, content: "task".into() },
        Message { role: Role::Assistant, content: "try".into() },
        Message { role: Role::User, content: "failures".into() },
    ];
    let plain = body_for(&m, &msgs, None);
    assert_eq!(plain["system"], "rules");
    assert!(!plain.to_string().contains("cache_control"));
    m.cache = true;
    let b = body_for(&m, &msgs, None);
    assert_eq!(b["system"][0]["text"], "rules");
    assert_eq!(b["system"][0]["cache_control"]["type"], "ephemeral");
    let sent = b["messages"].as_array().unwrap();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["content"], "task", "earlier messages stay as they were");
    assert_eq!(sent[2]["content"][0]["text"], "failures");
    assert_eq!(sent[2]["content"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(b.to_string().matches("cache_control").count(), 2, "two of the four breakpoints allowed");
}
