//! End-to-end: prompt caching as servers report it. Three local servers
//! speak the wire protocols and count cached tokens the way real ones do: an
//! OpenAI-compatible one (`usage.prompt_tokens_details.cached_tokens`), a
//! llama.cpp one (`timings.cache_n`) and an Anthropic one
//! (`cache_read_input_tokens` / `cache_creation_input_tokens`, only when the
//! request marks `cache_control`). Each caches like a prefix cache: what a
//! request shares with the one before it is read from the cache.
//!
//! The run's database is the one docs/report.md shows (docs/data/cache-demo.db):
//! this test checks that a fresh run gives the same cache table, and with
//! `LOOPVEL_UPDATE_DOCS=1` writes it there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

#[path = "support/abc_task.rs"]
mod abc_task;
use abc_task::abc_task as task;
#[path = "support/fake_server.rs"]
mod fake_server;
use fake_server::{serve_with, FakeServer, Step};

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn loopvel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "80")
        .env("LOOPVEL_CACHE_KEY", "sk-cache-test-not-stored")
        .output()
        .expect("run loopvel")
}

/// The text of a request's prompt (system and messages, strings or blocks)
/// and whether it marks a cache breakpoint.
fn prompt_text(body: &Value) -> (String, bool) {
    let text_of = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
            _ => String::new(),
        }
    };
    let mut text = text_of(&body["system"]);
    for m in body["messages"].as_array().into_iter().flatten() {
        text.push_str(m["role"].as_str().unwrap_or(""));
        text.push_str(&text_of(&m["content"]));
    }
    (text, body.to_string().contains("cache_control"))
}

fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    OpenAi,
    LlamaCpp,
    Anthropic,
}

/// Per request: (input tokens, cached tokens, cache writes) as the server reported them.
type Reported = Arc<Mutex<Vec<(u64, u64, u64)>>>;

/// A server whose model fixes one more check per turn and whose prompt cache
/// holds the previous request: about four characters a token, so the cached
/// tokens are the characters shared with the previous prompt over four.
fn caching_server(kind: Kind) -> (FakeServer, Reported) {
    let previous = Mutex::new(String::new());
    let reported: Reported = Arc::default();
    let seen = reported.clone();
    let server = serve_with(
        move |body| {
            let v: Value = serde_json::from_str(body).ok()?;
            let turn = v["messages"].as_array()?.iter().filter(|m| m["role"] == "assistant").count();
            let (text, marked) = prompt_text(&v);
            let total = text.chars().count() as u64 / 4;
            let mut prev = previous.lock().unwrap();
            let shared = common_prefix_chars(&prev, &text) as u64 / 4;
            *prev = text;
            let reply = ["A=1\nB=0\nC=0\n", "A=1\nB=1\nC=0\n", "A=1\nB=1\nC=1\n"][turn.min(2)];
            let pieces = vec![format!("calc.sh\n```sh\n{reply}```\n")];
            let (usage_event, row) = match kind {
                Kind::OpenAi => (
                    json!({"choices": [], "usage": {"prompt_tokens": total, "completion_tokens": 30,
                        "prompt_tokens_details": {"cached_tokens": shared}}}),
                    (total, shared, 0),
                ),
                Kind::LlamaCpp => (
                    json!({"choices": [], "usage": {"prompt_tokens": total, "completion_tokens": 30},
                        "timings": {"cache_n": shared, "prompt_n": total - shared}}),
                    (total, shared, 0),
                ),
                // Without a breakpoint nothing is cached; with one the prompt up to it is
                // read where the last request had it, written for the rest.
                Kind::Anthropic if !marked => (json!({"input_tokens": total}), (total, 0, 0)),
                Kind::Anthropic => (
                    json!({"input_tokens": 0, "cache_read_input_tokens": shared,
                        "cache_creation_input_tokens": total - shared}),
                    (total, shared, total - shared),
                ),
            };
            seen.lock().unwrap().push(row);
            Some(Step::WithUsage { pieces, usage_event })
        },
        kind == Kind::Anthropic,
    );
    (server, reported)
}

fn config(dir: &Path, openai: &str, llamacpp: &str, anthropic: &str) {
    std::fs::write(
        dir.join("loopvel.toml"),
        format!(
            "[models.gpt-like]\napi = \"openai\"\nbase_url = \"{openai}\"\nmodel = \"m\"\napi_key_env = \"LOOPVEL_CACHE_KEY\"\n\
             usd_per_mtok_in = 2.0\nusd_per_mtok_cached_in = 0.5\nusd_per_mtok_out = 8.0\n\n\
             [models.llamacpp]\napi = \"openai\"\nbase_url = \"{llamacpp}\"\nmodel = \"m\"\n\n\
             [models.claude-like]\napi = \"anthropic\"\nbase_url = \"{anthropic}\"\nmodel = \"m\"\napi_key_env = \"LOOPVEL_CACHE_KEY\"\n\
             usd_per_mtok_in = 3.0\nusd_per_mtok_cached_in = 0.3\nusd_per_mtok_cache_write = 3.75\nusd_per_mtok_out = 15.0\ncache = true\n"
        ),
    )
    .unwrap();
}

/// The report's prompt-cache table, from its title to the rule that ends it.
fn cache_table(dir: &Path, db: &str) -> String {
    let o = loopvel(dir, &["report", "--db", db]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let start = out.find("Prompt cache").unwrap_or_else(|| panic!("no cache table:\n{out}"));
    let rest = &out[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn cached_tokens_are_recorded_priced_and_reported_for_each_server() {
    let dir = scratch("three");
    let t = task(&dir);
    let (openai, openai_seen) = caching_server(Kind::OpenAi);
    let (llama, llama_seen) = caching_server(Kind::LlamaCpp);
    let (anthropic, anthropic_seen) = caching_server(Kind::Anthropic);
    config(&dir, &openai.url, &llama.url, &anthropic.url);
    let o = loopvel(
        &dir,
        &[
            "run",
            "--tasks",
            t.to_str().unwrap(),
            "--model",
            "gpt-like",
            "--model",
            "llamacpp",
            "--model",
            "claude-like",
            "--runs",
            "2",
            "--max-turns",
            "5",
        ],
    );
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    // Anthropic's requests carried the two breakpoints; the others none.
    for (body_of, marked) in [(&anthropic, true), (&openai, false), (&llama, false)] {
        for (_, body) in body_of.requests.lock().unwrap().iter() {
            assert_eq!(body.contains("cache_control"), marked, "{body}");
        }
    }

    let o = loopvel(&dir, &["export", "--db", "loopvel.db", "--format", "jsonl"]);
    assert!(o.status.success());
    let records: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let turns = |model: &str| -> Vec<Value> {
        records.iter().filter(|r| r["record"] == "turn" && r["model"] == model).cloned().collect()
    };
    for (model, seen, prices) in [
        ("gpt-like", &openai_seen, (2.0, 0.5, 2.0, 8.0)),
        ("llamacpp", &llama_seen, (0.0, 0.0, 0.0, 0.0)),
        ("claude-like", &anthropic_seen, (3.0, 0.3, 3.75, 15.0)),
    ] {
        let rows = turns(model);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(rows.len(), 6, "{model}: two runs of three turns");
        assert_eq!(seen.len(), 6, "{model}");
        for (r, (input, cached, written)) in rows.iter().zip(&seen) {
            assert_eq!(r["input_tokens"].as_u64(), Some(*input), "{model}: {r}");
            assert_eq!(r["cached_input_tokens"].as_u64(), Some(*cached), "{model}: {r}");
            let (p_in, p_cached, p_write, p_out) = prices;
            let uncached = input - cached - written;
            let want =
                (uncached as f64 * p_in + *cached as f64 * p_cached + *written as f64 * p_write + 30.0 * p_out) / 1e6;
            let usd = r["usd"].as_f64().unwrap();
            assert!((usd - want).abs() < 1e-12, "{model}: usd {usd}, want {want}");
            let full = (*input as f64 * p_in + 30.0 * p_out) / 1e6;
            assert!((r["usd_uncached"].as_f64().unwrap() - full).abs() < 1e-12, "{model}: {r}");
        }
        // A conversation resent with more on the end: from turn 2 on most of the prompt is cached.
        let later: Vec<&(u64, u64, u64)> = seen.iter().skip(1).collect();
        assert!(later.iter().all(|(i, c, _)| *c * 2 > *i), "{model}: {seen:?}");
    }

    let o = loopvel(&dir, &["report", "--db", "loopvel.db", "--json"]);
    assert!(o.status.success());
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (name, m) in report["models"].as_object().unwrap() {
        let c = &m["cache"];
        let share = c["cached_share"]["value"].as_f64().unwrap();
        assert!(share > 0.5 && share < 1.0, "{m}");
        assert_eq!(c["turns_reporting"], 6);
        let (usd, full) = (c["usd"].as_f64().unwrap(), c["usd_uncached"].as_f64().unwrap());
        if name == "llamacpp" {
            assert_eq!((usd, full), (0.0, 0.0));
        } else {
            assert!(usd < full, "{m}");
        }
    }
    let fresh = cache_table(&dir, "loopvel.db");
    assert!(fresh.contains("gpt-like") && fresh.contains("claude-like") && fresh.contains("saved"), "{fresh}");

    // docs/report.md shows this table from docs/data/cache-demo.db: the same as a fresh run's.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("docs/data/cache-demo.db");
    if std::env::var_os("LOOPVEL_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(shipped.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&shipped);
        let o = loopvel(&dir, &["db", "copy", "--from", "loopvel.db", "--to", shipped.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let committed = cache_table(&root, "docs/data/cache-demo.db");
    assert_eq!(committed, fresh, "docs/data/cache-demo.db is stale: LOOPVEL_UPDATE_DOCS=1 cargo test --test cache_cli");
    let db = std::fs::read(&shipped).unwrap();
    assert!(!db.windows(10).any(|w| w == b"sk-cache-t"), "no key in the shipped database");
}
