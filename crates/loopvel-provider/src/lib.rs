//! # loopvel-provider: talking to model endpoints
//!
//! Brief overview. A [`ModelConfig`] says where a model lives and how it is
//! priced; its API key is a [`Secret`] that never prints and never serialises.
//! [`complete`] sends one chat request, always streamed, and returns a
//! [`Completion`]: the text, when the first content token arrived, when the
//! last did, token counts (from the server's usage when it sends one, else an
//! estimate marked as such) and how long was spent waiting on rate limits and
//! retries, kept apart from model time. Two wire formats: OpenAI-compatible
//! chat completions (`api = "openai"`: OpenAI, vLLM, llama.cpp, Ollama, Groq,
//! OpenRouter, …) and Anthropic messages (`api = "anthropic"`).
//!
//! Hand-written over a blocking HTTP client (ureq) rather than an SDK: the
//! timing of each streamed chunk is the measurement, and lenient parsing of
//! each SSE line survives servers that bend the format. SSE framing is a few
//! lines (`data:` lines, blank line ends an event), so it is parsed here.
//!
//! Architecture invariant: the only code that knows wire formats; the only
//! code that holds an API key's value, and only long enough to set a header.

mod limiter;
mod sse;
#[cfg(test)]
mod stream_tests;

pub use limiter::Limiter;

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

/// An API key. Prints as `***`; has no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a key.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which wire format a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI-compatible `/chat/completions`.
    OpenAi,
    /// Anthropic `/messages`.
    Anthropic,
}

/// One model endpoint, as configured. Serialises without its key, and
/// reads back (a worker reading a plan's models) without one: the key comes
/// from the worker's own environment, through `api_key_env`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// The name used in reports.
    pub name: String,
    /// Wire format.
    pub api: Api,
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The model id sent to the server.
    pub model: String,
    /// The environment variable the key came from (its name, not its value).
    pub api_key_env: Option<String>,
    /// The key itself; `None` for local servers (no auth header).
    #[serde(skip)]
    pub api_key: Option<Secret>,
    /// USD per million input tokens.
    pub usd_per_mtok_in: f64,
    /// USD per million output tokens.
    pub usd_per_mtok_out: f64,
    /// Sampling temperature, if set.
    pub temperature: Option<f64>,
    /// Most output tokens per reply.
    pub max_tokens: u32,
    /// Merged into the request body as is.
    pub extra: serde_json::Map<String, Value>,
    /// Most requests in flight at once.
    pub max_concurrent: Option<u32>,
    /// Most requests per second.
    pub rps: Option<f64>,
    /// Attempts per request before giving up (429, 5xx, dropped connections).
    pub max_attempts: u32,
    /// Seconds without a byte before a request counts as dropped.
    pub read_timeout_s: f64,
    /// USD per million input tokens read from the server's prompt cache;
    /// `None`: billed as uncached input (the safe side when a price is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_mtok_cached_in: Option<f64>,
    /// USD per million input tokens written to the cache (Anthropic bills
    /// them above the input price); `None`: billed as uncached input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_mtok_cache_write: Option<f64>,
    /// Anthropic only: mark the stable prefix of each request (the system
    /// prompt and the conversation up to the newest message) with
    /// `cache_control`, so the next turn reads it from the cache.
    /// OpenAI-compatible servers cache on their own and need no mark.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
}

impl ModelConfig {
    /// What a call cost, in US dollars: uncached input at the input price,
    /// cache reads at the cached price, cache writes at the cache-write
    /// price, output at the output price.
    ///
    /// ```
    /// # use loopvel_provider::*;
    /// let mut m = ModelConfig::local("m", "http://127.0.0.1:8080/v1");
    /// m.usd_per_mtok_in = 1.0;
    /// m.usd_per_mtok_cached_in = Some(0.1);
    /// // 1M input of which 0.8M from the cache: 0.2 × $1 + 0.8 × $0.1.
    /// assert!((m.usd(&Tokens { input: 1_000_000, cached: 800_000, ..Tokens::default() }) - 0.28).abs() < 1e-12);
    /// ```
    pub fn usd(&self, t: &Tokens) -> f64 {
        let uncached = t.input.saturating_sub(t.cached).saturating_sub(t.cache_write);
        (uncached as f64 * self.usd_per_mtok_in
            + t.cached as f64 * self.usd_per_mtok_cached_in.unwrap_or(self.usd_per_mtok_in)
            + t.cache_write as f64 * self.usd_per_mtok_cache_write.unwrap_or(self.usd_per_mtok_in)
            + t.output as f64 * self.usd_per_mtok_out)
            / 1e6
    }

    /// What the call would have cost with no prompt cache: every input token at the input price.
    pub fn usd_uncached(&self, t: &Tokens) -> f64 {
        (t.input as f64 * self.usd_per_mtok_in + t.output as f64 * self.usd_per_mtok_out) / 1e6
    }

    /// A keyless OpenAI-compatible model with no prices (a local server) and
    /// the defaults a `loopvel.toml` block leaves unset: 4,096 output tokens,
    /// 5 attempts, a 300 s read timeout.
    pub fn local(name: &str, base_url: &str) -> ModelConfig {
        ModelConfig {
            name: name.into(),
            api: Api::OpenAi,
            base_url: base_url.into(),
            model: name.into(),
            api_key_env: None,
            api_key: None,
            usd_per_mtok_in: 0.0,
            usd_per_mtok_out: 0.0,
            temperature: None,
            max_tokens: 4096,
            extra: Default::default(),
            max_concurrent: None,
            rps: None,
            max_attempts: 5,
            read_timeout_s: 300.0,
            usd_per_mtok_cached_in: None,
            usd_per_mtok_cache_write: None,
            cache: false,
        }
    }
}

/// The tokens of one call, as priced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Every input token, cached or not.
    pub input: u64,
    /// Of `input`, read from the prompt cache.
    pub cached: u64,
    /// Of `input`, written to the prompt cache.
    pub cache_write: u64,
    /// Output tokens.
    pub output: u64,
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The harness.
    User,
    /// The model.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Who.
    pub role: Role,
    /// What.
    pub content: String,
}

/// One retry, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RetryNote {
    /// Attempt number that failed (1-based).
    pub attempt: u32,
    /// Why (status code or error).
    pub reason: String,
    /// Seconds waited before the next attempt.
    pub wait_s: f64,
}

/// A streamed reply and its timing. Times in seconds from the moment the
/// successful attempt's request was sent.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Completion {
    /// The reply text.
    pub text: String,
    /// First non-empty content token.
    pub ttft_s: Option<f64>,
    /// First reasoning token, when the server streams reasoning separately.
    pub reasoning_ttft_s: Option<f64>,
    /// Characters of reasoning text streamed.
    pub reasoning_chars: usize,
    /// Last token (the end of the stream).
    pub ttlt_s: f64,
    /// Output tokens.
    pub output_tokens: u64,
    /// `output_tokens` is an estimate (the server sent no usage).
    pub output_tokens_estimated: bool,
    /// Input tokens.
    pub input_tokens: u64,
    /// `input_tokens` is an estimate.
    pub input_tokens_estimated: bool,
    /// Of `input_tokens`, those the server read from its prompt cache, as it
    /// reported them (OpenAI-compatible `usage.prompt_tokens_details.cached_tokens`,
    /// llama.cpp's `timings.cache_n`, Anthropic's `cache_read_input_tokens`);
    /// `None` when it reported nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// Of `input_tokens`, those written to the cache (Anthropic's
    /// `cache_creation_input_tokens`); `None` when not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Output tokens per second after the first token.
    pub tokens_per_s: Option<f64>,
    /// Seconds spent waiting for rate limits, backoff and failed attempts.
    pub retry_wait_s: f64,
    /// Attempts made.
    pub attempts: u32,
    /// Why earlier attempts failed.
    pub retries: Vec<RetryNote>,
    /// The server's finish reason, if it gave one.
    pub finish_reason: Option<String>,
    /// Stream events that could not be read as JSON even after repair, or
    /// that were past the SSE reader's caps on a line or an event (each one a
    /// piece of the reply that may be missing from `text`): recorded, never
    /// silently dropped.
    #[serde(default)]
    pub unreadable_events: u32,
}

/// What a request that ended without a reply spent before it did: recorded
/// with the run, so a run that gave up still shows its waits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spent {
    /// Seconds spent waiting: backoff, rate limits and the failed attempts themselves.
    pub retry_wait_s: f64,
    /// Attempts made.
    pub attempts: u32,
    /// Why each retried attempt failed, and the wait after it.
    pub retries: Vec<RetryNote>,
}

/// A request that did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The server refused for good (4xx other than 408/409/429).
    #[error("{model}: HTTP {status} from {url}: {body}")]
    Refused {
        /// The model's name.
        model: String,
        /// The URL (never with a key in it).
        url: String,
        /// Status code.
        status: u16,
        /// The start of the body.
        body: String,
        /// What the request spent.
        spent: Spent,
    },
    /// Every attempt failed.
    #[error("{model}: gave up after {attempts} attempts; last: {last}")]
    GaveUp {
        /// The model's name.
        model: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
        /// What the request spent.
        spent: Spent,
    },
    /// The next retry would wait past the caller's deadline (the run's wall budget).
    #[error("{model}: {last}; the next attempt would wait {wait_s:.1} s, past the wall budget ({left_s:.1} s left)")]
    OutOfTime {
        /// The model's name.
        model: String,
        /// The wait the server asked for (or the backoff), s.
        wait_s: f64,
        /// Seconds left until the deadline.
        left_s: f64,
        /// The failure before the wait.
        last: String,
        /// What the request spent.
        spent: Spent,
    },
    /// The caller cancelled (a signal ended loopvel).
    #[error("{model}: cancelled while waiting to retry")]
    Cancelled {
        /// The model's name.
        model: String,
        /// What the request spent.
        spent: Spent,
    },
}

impl Completion {
    /// A reply not yet read: no text, no times, token counts to be estimated
    /// unless the server reports them, one attempt.
    pub fn empty() -> Completion {
        Completion {
            text: String::new(),
            ttft_s: None,
            reasoning_ttft_s: None,
            reasoning_chars: 0,
            ttlt_s: 0.0,
            output_tokens: 0,
            output_tokens_estimated: true,
            input_tokens: 0,
            input_tokens_estimated: true,
            cached_input_tokens: None,
            cache_write_tokens: None,
            tokens_per_s: None,
            retry_wait_s: 0.0,
            attempts: 1,
            retries: Vec::new(),
            finish_reason: None,
            unreadable_events: 0,
        }
    }

    /// The call's tokens, for pricing.
    pub fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input_tokens,
            cached: self.cached_input_tokens.unwrap_or(0),
            cache_write: self.cache_write_tokens.unwrap_or(0),
            output: self.output_tokens,
        }
    }
}

impl ProviderError {
    /// What the request spent before it ended.
    pub fn spent(&self) -> &Spent {
        match self {
            ProviderError::Refused { spent, .. }
            | ProviderError::GaveUp { spent, .. }
            | ProviderError::OutOfTime { spent, .. }
            | ProviderError::Cancelled { spent, .. } => spent,
        }
    }
}

/// Rough token count when the server gives none: about four characters a token.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[derive(Debug)]
enum Attempt {
    Done(Completion),
    Retry { reason: String, retry_after: Option<f64> },
    Fatal(ProviderError),
}

fn body_for(cfg: &ModelConfig, messages: &[Message], temperature: Option<f64>) -> Value {
    let mut body = match cfg.api {
        Api::OpenAi => json!({
            "model": cfg.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": cfg.max_tokens,
        }),
        Api::Anthropic => {
            let system: Vec<&str> =
                messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
            let rest: Vec<&Message> = messages.iter().filter(|m| m.role != Role::System).collect();
            let mut b = json!({"model": cfg.model, "messages": rest, "stream": true, "max_tokens": cfg.max_tokens});
            if !system.is_empty() {
                b["system"] = json!(system.join("\n\n"));
            }
            if cfg.cache {
                mark_cache_breakpoints(&mut b);
            }
            b
        }
    };
    if let Some(t) = temperature.or(cfg.temperature) {
        body["temperature"] = json!(t);
    }
    if let Some(obj) = body.as_object_mut() {
        for (k, v) in &cfg.extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Anthropic's prompt cache, opted into with `cache = true`: two of the four
/// breakpoints it allows, one after the system prompt (the same every turn of
/// every run) and one on the newest message, so the whole request is cached
/// and the next turn, which repeats it and adds to it, reads it back (the
/// server looks back from a breakpoint for the longest cached prefix).
fn mark_cache_breakpoints(body: &mut Value) {
    let mark = || json!({"type": "ephemeral"});
    if let Some(system) = body.get("system").and_then(Value::as_str).map(str::to_string) {
        body["system"] = json!([{"type": "text", "text": system, "cache_control": mark()}]);
    }
    if let Some(last) = body["messages"].as_array_mut().and_then(|m| m.last_mut()) {
        if let Some(text) = last["content"].as_str().map(str::to_string) {
            last["content"] = json!([{"type": "text", "text": text, "cache_control": mark()}]);
        }
    }
}

/// JSON text with each `\\uD800`–`\\uDFFF` escape that is not half of a
/// surrogate pair replaced by `\\uFFFD`: JSON allows such escapes but no
/// Rust string can hold them, so serde refuses the whole event, and a server
/// (or a model's output passed through) can produce them.
fn repair_surrogates(json: &str) -> String {
    let b = json.as_bytes();
    let hex = |at: usize| -> Option<u16> {
        let h = json.get(at..at + 4)?;
        u16::from_str_radix(h, 16).ok()
    };
    let mut out = String::with_capacity(json.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 6 <= b.len() {
        // An escape starts at a backslash that is not itself escaped.
        if b[i] == b'\\' && b[i + 1] == b'u' {
            if let Some(unit) = hex(i + 2) {
                let high = (0xD800..0xDC00).contains(&unit);
                let low = (0xDC00..0xE000).contains(&unit);
                let paired = high
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex(i + 8).is_some_and(|n| (0xDC00..0xE000).contains(&n));
                if paired {
                    i += 12;
                    continue;
                }
                if high || low {
                    out.push_str(&json[copied..i]);
                    out.push_str("\\uFFFD");
                    i += 6;
                    copied = i;
                    continue;
                }
            }
            i += 6;
            continue;
        }
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        i += 1;
    }
    out.push_str(&json[copied..]);
    out
}

fn url_for(cfg: &ModelConfig) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    match cfg.api {
        Api::OpenAi => format!("{base}/chat/completions"),
        Api::Anthropic => format!("{base}/messages"),
    }
}

fn attempt(
    cfg: &ModelConfig,
    agent: &ureq::Agent,
    body: &str,
    url: &str,
    input_chars: usize,
    on_tokens: &dyn Fn(u64),
) -> Attempt {
    let mut req = agent.post(url).header("content-type", "application/json").header("accept", "text/event-stream");
    if let Some(key) = &cfg.api_key {
        req = match cfg.api {
            Api::OpenAi => req.header("authorization", format!("Bearer {}", key.expose())),
            Api::Anthropic => req.header("x-api-key", key.expose()),
        };
    }
    if cfg.api == Api::Anthropic {
        req = req.header("anthropic-version", "2023-06-01");
    }
    let sent = Instant::now();
    let resp = match req.send(body) {
        Ok(r) => r,
        Err(e) => return Attempt::Retry { reason: format!("connection to {url}: {e}"), retry_after: None },
    };
    let status = resp.status().as_u16();
    if status != 200 {
        let retry_after =
            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
        let mut text = String::new();
        // Only the start is kept: an error body can be as hostile as a reply.
        let mut start = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(resp.into_body().into_reader(), 4096), &mut start);
        text.push_str(&String::from_utf8_lossy(&start));
        let text: String = scrub(cfg, &text).chars().take(300).collect();
        if status == 429 || status == 408 || status == 409 || status >= 500 {
            return Attempt::Retry { reason: format!("HTTP {status}"), retry_after };
        }
        return Attempt::Fatal(ProviderError::Refused {
            model: cfg.name.clone(),
            url: url.to_string(),
            status,
            body: text,
            spent: Spent::default(),
        });
    }
    // Some servers ignore `stream: true` and answer with one JSON body: read it as the reply it is.
    let content_type =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if content_type.contains("json") && !content_type.contains("event-stream") {
        return whole_reply(cfg, resp, sent, input_chars);
    }
    let reader = std::io::BufReader::new(resp.into_body().into_reader());
    read_stream(cfg.api, reader, sent, input_chars, on_tokens)
}

/// Read a streamed reply in `api`'s format; times are from `sent`. Apart from
/// HTTP so that hostile streams can be tested without a server.
fn read_stream(
    api: Api,
    reader: impl std::io::BufRead,
    sent: Instant,
    input_chars: usize,
    on_tokens: &dyn Fn(u64),
) -> Attempt {
    let mut c = Completion::empty();
    let mut finished = false;
    let mut last_token = 0.0;
    // Tokens so far, about 4 bytes each (usage arrives only at the end); O(1)
    // per chunk, as a reply streams thousands of chunks.
    let progress = |c: &Completion| on_tokens(((c.text.len() + c.reasoning_chars) as u64).div_ceil(4));
    for event in sse::events(reader) {
        let event = match event {
            Ok(sse::Item::Event(e)) => e,
            Ok(sse::Item::Oversized) => {
                c.unreadable_events = c.unreadable_events.saturating_add(1);
                continue;
            }
            Err(e) => return Attempt::Retry { reason: format!("stream dropped: {e}"), retry_after: None },
        };
        let now = sent.elapsed().as_secs_f64();
        if event.data.trim() == "[DONE]" {
            finished = true;
            break;
        }
        let parsed = serde_json::from_str::<Value>(&event.data)
            .or_else(|_| serde_json::from_str::<Value>(&repair_surrogates(&event.data)));
        let Ok(v) = parsed else {
            c.unreadable_events = c.unreadable_events.saturating_add(1);
            continue;
        };
        match api {
            Api::OpenAi => {
                // An error reported inside the stream (overloaded, cut off):
                // the reply so far is not the model's answer; try again.
                if let Some(message) = error_message(&v) {
                    return Attempt::Retry {
                        reason: format!("error event in the stream: {message}"),
                        retry_after: None,
                    };
                }
                if let Some(choice) = v["choices"].get(0) {
                    let delta = &choice["delta"];
                    if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                        c.ttft_s.get_or_insert(now);
                        let room = push_capped(&mut c, t);
                        last_token = now;
                        progress(&c);
                        if !room {
                            finished = true;
                            break;
                        }
                    }
                    for key in ["reasoning_content", "reasoning"] {
                        if let Some(t) = delta[key].as_str().filter(|t| !t.is_empty()) {
                            c.reasoning_ttft_s.get_or_insert(now);
                            c.reasoning_chars += t.len();
                            last_token = now;
                            progress(&c);
                        }
                    }
                    if let Some(f) = choice["finish_reason"].as_str().filter(|f| !f.is_empty()) {
                        c.finish_reason = Some(f.to_string());
                    }
                }
                if let Some(u) = v["usage"].as_object() {
                    if let Some(n) = u.get("completion_tokens").and_then(Value::as_u64) {
                        c.output_tokens = n;
                        c.output_tokens_estimated = false;
                    }
                    if let Some(n) = u.get("prompt_tokens").and_then(Value::as_u64) {
                        c.input_tokens = n;
                        c.input_tokens_estimated = false;
                    }
                }
                if let Some(n) = openai_cached(&v) {
                    c.cached_input_tokens = Some(n);
                }
            }
            Api::Anthropic => match v["type"].as_str().unwrap_or(event.event.as_str()) {
                "message_start" => anthropic_usage(&v["message"]["usage"], &mut c),
                "content_block_delta" => {
                    let d = &v["delta"];
                    if let Some(t) = d["text"].as_str().filter(|t| !t.is_empty()) {
                        c.ttft_s.get_or_insert(now);
                        let room = push_capped(&mut c, t);
                        last_token = now;
                        progress(&c);
                        if !room {
                            finished = true;
                            break;
                        }
                    } else if let Some(t) = d["thinking"].as_str().filter(|t| !t.is_empty()) {
                        c.reasoning_ttft_s.get_or_insert(now);
                        c.reasoning_chars += t.len();
                        last_token = now;
                        progress(&c);
                    }
                }
                "message_delta" => {
                    // Newer servers repeat the input counts here (cumulative): the same fields, read the same way.
                    anthropic_usage(&v["usage"], &mut c);
                    if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                        c.output_tokens = n;
                        c.output_tokens_estimated = false;
                    }
                    if let Some(f) = v["delta"]["stop_reason"].as_str() {
                        c.finish_reason = Some(f.to_string());
                    }
                }
                "message_stop" => {
                    finished = true;
                    break;
                }
                "error" => {
                    return Attempt::Retry {
                        reason: format!("stream error: {}", error_message(&v).unwrap_or_default()),
                        retry_after: None,
                    }
                }
                _ => {}
            },
        }
    }
    // OpenAI-compatible servers may end the stream without [DONE]; a reply with text counts.
    if !finished && c.text.is_empty() {
        return Attempt::Retry { reason: "stream ended without a reply".into(), retry_after: None };
    }
    c.ttlt_s = if last_token > 0.0 { last_token } else { sent.elapsed().as_secs_f64() };
    if c.output_tokens_estimated {
        c.output_tokens = estimate_tokens(&c.text) + (c.reasoning_chars as u64).div_ceil(4);
    }
    if c.input_tokens_estimated {
        c.input_tokens = (input_chars as u64).div_ceil(4);
    }
    let first = c.ttft_s.or(c.reasoning_ttft_s);
    c.tokens_per_s = first.and_then(|f| {
        let span = c.ttlt_s - f;
        (span > 0.0 && c.output_tokens > 1).then(|| (c.output_tokens - 1) as f64 / span)
    });
    Attempt::Done(c)
}

/// Cached prompt tokens in an OpenAI-compatible event or body, as the
/// servers report them: `usage.prompt_tokens_details.cached_tokens` (OpenAI,
/// vLLM, newer llama.cpp), `usage.prompt_cache_hit_tokens` (DeepSeek),
/// llama.cpp's `timings.cache_n` or its native `tokens_cached`.
fn openai_cached(v: &Value) -> Option<u64> {
    v["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .or_else(|| v["usage"]["prompt_cache_hit_tokens"].as_u64())
        .or_else(|| v["timings"]["cache_n"].as_u64())
        .or_else(|| v["tokens_cached"].as_u64())
}

/// Anthropic's usage object: `input_tokens` there counts only the input
/// that was neither read from nor written to the cache, so loopvel's
/// `input_tokens` (every prompt token, as OpenAI counts them) is the sum of
/// the three.
fn anthropic_usage(u: &Value, c: &mut Completion) {
    let read = u["cache_read_input_tokens"].as_u64();
    let written = u["cache_creation_input_tokens"].as_u64();
    if let Some(n) = u["input_tokens"].as_u64() {
        c.input_tokens = n.saturating_add(read.unwrap_or(0)).saturating_add(written.unwrap_or(0));
        c.input_tokens_estimated = false;
    }
    if read.is_some() {
        c.cached_input_tokens = read;
    }
    if written.is_some() {
        c.cache_write_tokens = written;
    }
}

/// The most reply text loopvel keeps (1 MiB): a reply past it is cut there,
/// the stream is closed and the finish reason says so. With `--history full`
/// every reply goes back into each later prompt, so an unbounded reply (20 MB
/// in the hostile trial) would grow every request and the database with it.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// The finish reason recorded for a reply cut at [`MAX_REPLY_BYTES`].
pub const CUT_REASON: &str = "loopvel: reply cut at 1 MiB";

/// Append `t` to the reply, up to the cap (on a character boundary);
/// `false` once the cap is reached.
fn push_capped(c: &mut Completion, t: &str) -> bool {
    let room = MAX_REPLY_BYTES.saturating_sub(c.text.len());
    if t.len() <= room {
        c.text.push_str(t);
        return true;
    }
    let mut end = room;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    c.text.push_str(&t[..end]);
    c.finish_reason = Some(CUT_REASON.into());
    false
}

/// A reply sent as one JSON body instead of a stream. Its time to first
/// token is when the body arrived, and no decode speed can be measured.
fn whole_reply(
    cfg: &ModelConfig,
    resp: ureq::http::Response<ureq::Body>,
    sent: Instant,
    input_chars: usize,
) -> Attempt {
    let mut text = String::new();
    // Capped like any reply: a hostile server cannot make loopvel hold more.
    let read = std::io::Read::read_to_string(
        &mut std::io::Read::take(resp.into_body().into_reader(), 64 * 1024 * 1024),
        &mut text,
    );
    if let Err(e) = read {
        return Attempt::Retry { reason: format!("body dropped: {e}"), retry_after: None };
    }
    let arrived = sent.elapsed().as_secs_f64();
    let Ok(v) =
        serde_json::from_str::<Value>(&text).or_else(|_| serde_json::from_str::<Value>(&repair_surrogates(&text)))
    else {
        return Attempt::Retry { reason: "a JSON reply that is not JSON".into(), retry_after: None };
    };
    if let Some(message) = error_message(&v) {
        return Attempt::Retry { reason: format!("error in the reply: {message}"), retry_after: None };
    }
    let mut c = Completion::empty();
    match cfg.api {
        Api::OpenAi => c.cached_input_tokens = openai_cached(&v),
        Api::Anthropic => anthropic_usage(&v["usage"], &mut c),
    }
    let (reply, reasoning, finish, input, output) = match cfg.api {
        Api::OpenAi => {
            let m = &v["choices"][0]["message"];
            let reasoning =
                ["reasoning_content", "reasoning"].iter().filter_map(|k| m[*k].as_str()).map(str::len).sum();
            (
                m["content"].as_str().map(str::to_string),
                reasoning,
                v["choices"][0]["finish_reason"].as_str().map(str::to_string),
                v["usage"]["prompt_tokens"].as_u64(),
                v["usage"]["completion_tokens"].as_u64(),
            )
        }
        Api::Anthropic => {
            let blocks = v["content"].as_array().cloned().unwrap_or_default();
            let text: String =
                blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect();
            let thinking = blocks.iter().filter_map(|b| b["thinking"].as_str()).map(str::len).sum();
            (
                (!blocks.is_empty()).then_some(text),
                thinking,
                v["stop_reason"].as_str().map(str::to_string),
                (!c.input_tokens_estimated).then_some(c.input_tokens),
                v["usage"]["output_tokens"].as_u64(),
            )
        }
    };
    let Some(reply) = reply else {
        return Attempt::Retry { reason: "a JSON reply without a message".into(), retry_after: None };
    };
    let estimated_out = estimate_tokens(&reply) + (reasoning as u64).div_ceil(4);
    c.ttft_s = (!reply.is_empty()).then_some(arrived);
    c.reasoning_ttft_s = (reasoning > 0).then_some(arrived);
    c.reasoning_chars = reasoning;
    c.ttlt_s = arrived;
    c.output_tokens = output.unwrap_or(estimated_out);
    c.output_tokens_estimated = output.is_none();
    c.input_tokens = input.unwrap_or((input_chars as u64).div_ceil(4));
    c.input_tokens_estimated = input.is_none();
    c.finish_reason = finish;
    push_capped(&mut c, &reply);
    Attempt::Done(c)
}

/// `text` from the server with the model's key blanked out: a proxy that
/// echoes the key it refused ("invalid key sk-…") must not put it in an
/// error message, which is printed and stored.
fn scrub(cfg: &ModelConfig, text: &str) -> String {
    match &cfg.api_key {
        Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "***"),
        _ => text.to_string(),
    }
}

/// The message of an `"error"` member a server put in a reply or an event
/// (at most 200 characters), if it put one there.
fn error_message(v: &Value) -> Option<String> {
    let e = v.get("error").filter(|e| !e.is_null())?;
    Some(e["message"].as_str().map_or_else(|| e.to_string(), str::to_string).chars().take(200).collect())
}

/// Backoff before attempt `n + 1`: `Retry-After` when the server sent one,
/// else 0.5 s · 2ⁿ⁻¹ with ±50% jitter, capped at 30 s.
fn backoff_s(n: u32, retry_after: Option<f64>) -> f64 {
    if let Some(s) = retry_after.filter(|s| s.is_finite() && *s >= 0.0) {
        return s.min(300.0);
    }
    let base = (0.5 * 2f64.powi(n.saturating_sub(1) as i32)).min(30.0);
    // Jitter from the standard library's randomly keyed hasher: no RNG crate needed for this.
    let bits = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), n);
    let jitter = 0.5 + (bits >> 11) as f64 / (1u64 << 53) as f64;
    (base * jitter).min(30.0)
}

/// Send `messages` to the model, streamed, retrying 429, 5xx and dropped
/// connections with backoff; waits on `limiter` first.
pub fn complete(cfg: &ModelConfig, messages: &[Message], limiter: &Limiter) -> Result<Completion, ProviderError> {
    complete_observed(cfg, messages, limiter, &|_| {})
}

/// [`complete`], calling `on_tokens` with the (estimated) output tokens so far
/// after each streamed chunk, for a progress display. A retried attempt starts again from 0.
pub fn complete_observed(
    cfg: &ModelConfig,
    messages: &[Message],
    limiter: &Limiter,
    on_tokens: &dyn Fn(u64),
) -> Result<Completion, ProviderError> {
    complete_within(cfg, messages, limiter, &Control { on_tokens, ..Control::default() })
}

/// A wait before the next attempt, as it begins (for a progress display).
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// Attempts allowed.
    pub of: u32,
    /// Seconds to wait.
    pub wait_s: f64,
    /// Why the attempt failed.
    pub reason: String,
}

/// What a caller lets a request do beyond sending: progress reports, a time
/// by which it must have given up, and a way to stop it.
pub struct Control<'a> {
    /// Output tokens so far, after each streamed chunk.
    pub on_tokens: &'a dyn Fn(u64),
    /// A wait before a retry begins.
    pub on_wait: &'a dyn Fn(&Wait),
    /// A retry wait that would end after this is not waited: the request
    /// ends with [`ProviderError::OutOfTime`] at once (the run's wall budget).
    pub deadline: Option<Instant>,
    /// Checked during waits: `true` ends the request with [`ProviderError::Cancelled`].
    pub cancelled: &'a dyn Fn() -> bool,
    /// Sampling temperature for this request, over the model's own (a loop
    /// design that raises it after a THRASH turn).
    pub temperature: Option<f64>,
}

impl Default for Control<'_> {
    fn default() -> Self {
        Control { on_tokens: &|_| {}, on_wait: &|_| {}, deadline: None, cancelled: &|| false, temperature: None }
    }
}

/// [`complete`] under a [`Control`].
pub fn complete_within(
    cfg: &ModelConfig,
    messages: &[Message],
    limiter: &Limiter,
    control: &Control,
) -> Result<Completion, ProviderError> {
    let agent = limiter.agent.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs_f64(cfg.read_timeout_s.max(1.0))))
            .build()
            .into()
    });
    let url = url_for(cfg);
    let body = body_for(cfg, messages, control.temperature).to_string();
    let input_chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    let mut waited = 0.0;
    let mut retries = Vec::new();
    let attempts = cfg.max_attempts.max(1);
    let mut last = String::new();
    let spent = |waited: f64, retries: Vec<RetryNote>, attempts: u32| Spent { retry_wait_s: waited, attempts, retries };
    for n in 1..=attempts {
        if (control.cancelled)() {
            return Err(ProviderError::Cancelled { model: cfg.name.clone(), spent: spent(waited, retries, n - 1) });
        }
        let Some(permit) = limiter.acquire_unless(control.cancelled) else {
            return Err(ProviderError::Cancelled { model: cfg.name.clone(), spent: spent(waited, retries, n - 1) });
        };
        waited += permit.waited_s();
        let started = Instant::now();
        match attempt(cfg, agent, &body, &url, input_chars, control.on_tokens) {
            Attempt::Done(mut c) => {
                c.retry_wait_s = waited;
                c.attempts = n;
                c.retries = retries;
                return Ok(c);
            }
            Attempt::Fatal(ProviderError::Refused { model, url, status, body, .. }) => {
                waited += started.elapsed().as_secs_f64();
                return Err(ProviderError::Refused { model, url, status, body, spent: spent(waited, retries, n) });
            }
            Attempt::Fatal(e) => return Err(e),
            Attempt::Retry { reason, retry_after } => {
                let reason = scrub(cfg, &reason);
                drop(permit);
                // The failed attempt's own time is waiting too, not model time.
                waited += started.elapsed().as_secs_f64();
                if n == attempts {
                    last = reason;
                    break;
                }
                let wait = backoff_s(n, retry_after);
                if let Some(deadline) = control.deadline {
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
                    if wait > left {
                        retries.push(RetryNote { attempt: n, reason: reason.clone(), wait_s: 0.0 });
                        return Err(ProviderError::OutOfTime {
                            model: cfg.name.clone(),
                            wait_s: wait,
                            left_s: left,
                            last: reason,
                            spent: spent(waited, retries, n),
                        });
                    }
                }
                (control.on_wait)(&Wait { attempt: n, of: attempts, wait_s: wait, reason: reason.clone() });
                retries.push(RetryNote { attempt: n, reason, wait_s: wait });
                // In slices, so a cancel is seen within 100 ms of a long wait.
                let until = Instant::now() + Duration::from_secs_f64(wait);
                let slept_from = Instant::now();
                while Instant::now() < until {
                    if (control.cancelled)() {
                        waited += slept_from.elapsed().as_secs_f64();
                        return Err(ProviderError::Cancelled {
                            model: cfg.name.clone(),
                            spent: spent(waited, retries, n),
                        });
                    }
                    std::thread::sleep(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
                }
                waited += wait;
            }
        }
    }
    Err(ProviderError::GaveUp { model: cfg.name.clone(), attempts, last, spent: spent(waited, retries, attempts) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_replacement_characters_and_pairs_stay() {
        let lone = r#"{"t":"a\ud800b"}"#;
        assert!(serde_json::from_str::<Value>(lone).is_err(), "serde refuses it as it stands");
        let v: Value = serde_json::from_str(&repair_surrogates(lone)).unwrap();
        assert_eq!(v["t"], "a\u{fffd}b");
        let low = r#"{"t":"\udc00x"}"#;
        assert_eq!(serde_json::from_str::<Value>(&repair_surrogates(low)).unwrap()["t"], "\u{fffd}x");
        let pair = r#"{"t":"\ud83d\ude00"}"#;
        assert_eq!(repair_surrogates(pair), pair);
        let escaped = r#"{"t":"\\ud800"}"#;
        assert_eq!(repair_surrogates(escaped), escaped, "an escaped backslash is not an escape");
        assert_eq!(repair_surrogates("é\\ud800é"), "é\\uFFFDé");
    }

    proptest::proptest! {
        #[test]
        fn repair_never_panics_and_keeps_valid_json_valid(s in "(?s).{0,200}") {
            let out = repair_surrogates(&s);
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                proptest::prop_assert_eq!(serde_json::from_str::<Value>(&out).ok(), Some(v));
            }
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-live-123".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let cfg =
            ModelConfig { api_key_env: Some("K".into()), api_key: Some(s), ..ModelConfig::local("m", "http://x") };
        assert!(!format!("{cfg:?}").contains("sk-live"));
        assert!(!serde_json::to_string(&cfg).unwrap().contains("sk-live"));
        // A server that echoes the key gets it blanked out of what loopvel prints and stores.
        assert_eq!(scrub(&cfg, "invalid key sk-live-123 (sk-live-123)"), "invalid key *** (***)");
    }

    #[test]
    fn backoff_honours_retry_after_and_grows() {
        assert_eq!(backoff_s(3, Some(2.0)), 2.0);
        for n in 1..6 {
            let b = backoff_s(n, None);
            let base = 0.5 * 2f64.powi(n as i32 - 1);
            assert!(b >= base * 0.5 && b <= (base * 1.5).min(30.0), "{n}: {b}");
        }
        assert!(backoff_s(20, None) <= 30.0);
    }

    #[test]
    fn anthropic_body_moves_the_system_message() {
        let mut cfg_msgs = vec![Message { role: Role::System, content: "rules".into() }];
        cfg_msgs.push(Message { role: Role::User, content: "hi".into() });
        let cfg = ModelConfig {
            api: Api::Anthropic,
            model: "claude".into(),
            temperature: Some(0.2),
            ..ModelConfig::local("a", "http://x/v1/")
        };
        let b = body_for(&cfg, &cfg_msgs, None);
        assert_eq!(b["system"], "rules");
        assert_eq!(b["messages"].as_array().unwrap().len(), 1);
        assert_eq!(url_for(&cfg), "http://x/v1/messages");
    }
}
