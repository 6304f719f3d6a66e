//! A local HTTP server that speaks the OpenAI and Anthropic streaming wire
//! protocols, scripted step by step: the test double for paid model APIs.
//! Test-only; it binds 127.0.0.1 on a free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub enum Step {
    /// Stream `pieces` of a reply: the first after `first_ms`, the rest `gap_ms` apart.
    Reply { pieces: Vec<String>, first_ms: u64, gap_ms: u64 },
    /// Answer 200 with this content type and body, as they are.
    Raw { content_type: String, body: String },
    /// Answer with this status and a Retry-After header.
    Status { code: u16, retry_after_s: u64 },
    /// Answer with this status and body (a refusal that says why).
    Refuse { code: u16, body: String },
    /// Stream `pieces` at once with the server's own usage report: for
    /// OpenAI-compatible servers `usage_event` is the whole last event before
    /// `[DONE]` (usage, llama.cpp's timings, …); for Anthropic it is the
    /// `usage` object of `message_start` (input and cache counts).
    WithUsage { pieces: Vec<String>, usage_event: serde_json::Value },
}

pub struct FakeServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<(String, String)>>>,
}

pub fn read_request(stream: &mut TcpStream) -> (String, String) {
    try_read_request(stream).expect("a whole request")
}

pub fn chunk(stream: &mut TcpStream, data: &str) {
    let _ = write!(stream, "{:x}\r\n{}\r\n", data.len(), data);
    let _ = stream.flush();
}

pub fn openai_event(text: &str) -> String {
    let v = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {v}\n\n")
}

pub fn anthropic_event(text: &str) -> String {
    let v =
        serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}});
    format!("event: content_block_delta\ndata: {v}\n\n")
}

pub fn serve(script: Vec<Step>, anthropic: bool) -> FakeServer {
    let steps = Mutex::new(script.into_iter());
    serve_with(move |_| steps.lock().unwrap().next(), anthropic)
}

/// A server whose answer to each request is `answer(request body)`; `None`
/// answers 500 (the script ended). For plans whose requests come in any order.
pub fn serve_with(answer: impl Fn(&str) -> Option<Step> + Send + 'static, anthropic: bool) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // A client killed mid-request (kill -9 tests) leaves a short read: skip it.
            let Some(req) = try_read_request(&mut stream) else { continue };
            let step = answer(&req.1);
            seen.lock().unwrap().push(req);
            let Some(step) = step else {
                let _ = write!(stream, "HTTP/1.1 500 Script Ended\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                continue;
            };
            // Each reply on its own thread, so a slow one does not hold up the next request.
            std::thread::spawn(move || respond(stream, step, anthropic));
        }
    });
    FakeServer { url, requests }
}

/// [`read_request`], or `None` when the client went away before the body was whole.
pub fn try_read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

pub fn respond(mut stream: TcpStream, step: Step, anthropic: bool) {
    {
        {
            match step {
                Step::Raw { content_type, body } => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Step::Refuse { code, body } => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Step::Status { code, retry_after_s } => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} Slow Down\r\nretry-after: {retry_after_s}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                }
                Step::WithUsage { pieces, usage_event } => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    );
                    if anthropic {
                        let start = serde_json::json!({"type": "message_start", "message": {"usage": usage_event}});
                        chunk(&mut stream, &format!("event: message_start\ndata: {start}\n\n"));
                    }
                    for p in &pieces {
                        chunk(&mut stream, &if anthropic { anthropic_event(p) } else { openai_event(p) });
                    }
                    if anthropic {
                        chunk(&mut stream, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n");
                        chunk(&mut stream, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
                    } else {
                        chunk(&mut stream, &format!("data: {usage_event}\n\n"));
                        chunk(&mut stream, "data: [DONE]\n\n");
                    }
                    chunk(&mut stream, "");
                }
                Step::Reply { pieces, first_ms, gap_ms } => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    );
                    if anthropic {
                        chunk(&mut stream, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":120}}}\n\n");
                    }
                    std::thread::sleep(Duration::from_millis(first_ms));
                    for (i, p) in pieces.iter().enumerate() {
                        if i > 0 {
                            std::thread::sleep(Duration::from_millis(gap_ms));
                        }
                        chunk(&mut stream, &if anthropic { anthropic_event(p) } else { openai_event(p) });
                    }
                    if anthropic {
                        chunk(&mut stream, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n");
                        chunk(&mut stream, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
                    } else {
                        chunk(
                            &mut stream,
                            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":30}}\n\n",
                        );
                        chunk(&mut stream, "data: [DONE]\n\n");
                    }
                    chunk(&mut stream, "");
                }
            }
        }
    }
}
