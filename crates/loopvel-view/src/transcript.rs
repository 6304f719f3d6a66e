//! One run, turn by turn, as a page shows it: every number already worded
//! with its unit, every text left raw for the template to escape.

use loopvel_math::units;
use loopvel_record::Grade;
use loopvel_store::RunDetail;
use serde::Serialize;
use similar::ChangeTag;

use crate::files::FileStates;

/// A run's transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    /// Run id.
    pub id: i64,
    /// Plan id.
    pub plan_id: i64,
    /// Task name.
    pub task: String,
    /// Model name.
    pub model: String,
    /// Replicate, from 0.
    pub replicate: u32,
    /// `running`, `done`, …
    pub status: String,
    /// True while a `run` is still recording it.
    pub in_progress: bool,
    /// `pass`, `fail`, `error` (empty while running).
    pub outcome: String,
    /// Why it stopped.
    pub stop_reason: String,
    /// The error it ended with.
    pub error: Option<String>,
    /// Wall time, worded.
    pub wall: String,
    /// Time to pass, worded.
    pub time_to_pass: Option<String>,
    /// Sandbox level of its tests.
    pub sandbox: String,
    /// When it started (UTC).
    pub started_at: String,
    /// The loop options, as recorded (JSON).
    pub options: String,
    /// The task's prompt.
    pub task_prompt: String,
    /// The task's test command.
    pub task_test: String,
    /// Why diffs are missing, if they are.
    pub files_note: Option<String>,
    /// The turns.
    pub turns: Vec<TurnView>,
    /// Requests that ended without a reply.
    pub failed_calls: Vec<FailedView>,
    /// The legend of the timeline bars.
    pub legend: Vec<Segment>,
}

/// One turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnView {
    /// Turn number, from 1.
    pub turn: u32,
    /// PASS, PARTIAL, FAIL, THRASH.
    pub grade: String,
    /// Tests passing of total, worded.
    pub tests: String,
    /// Share of tests passing, worded.
    pub score: String,
    /// Wall time, worded.
    pub wall: String,
    /// Start within the run, worded.
    pub started: String,
    /// The timeline bar's parts.
    pub segments: Vec<Segment>,
    /// Tokens in and out, speed, cost, worded.
    pub facts: Vec<(String, String)>,
    /// The prompt as sent.
    pub messages: Vec<MessageView>,
    /// Messages new this turn.
    pub new_messages: usize,
    /// The request as recorded, when it is not a list of messages.
    pub raw_request: Option<String>,
    /// The reply.
    pub reply: String,
    /// Edits applied.
    pub edits_applied: u32,
    /// Edits refused.
    pub edits_refused: u32,
    /// Why edits were refused (and notes on guessed ones).
    pub refusals: Vec<String>,
    /// The editable files against the turn before.
    pub diffs: Vec<FileDiff>,
    /// True when the files are known and no file changed this turn.
    pub same_files: bool,
    /// The tests this turn ran (none when the code did not change).
    pub test: Option<TestView>,
    /// What the loop did after this turn (a restart).
    pub events: Vec<String>,
}

/// One part of a turn's timeline bar.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// What the time went to.
    pub label: &'static str,
    /// CSS class.
    pub class: &'static str,
    /// Worded.
    pub time: String,
    /// Width, percent of the longest turn (a number with two decimals).
    pub width: String,
}

/// One message of a prompt.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// system, user, assistant.
    pub role: String,
    /// Its text.
    pub content: String,
    /// True when the turn before did not send it (what this turn added).
    pub new: bool,
}

/// A file's diff against the turn before.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    /// Path in the workspace.
    pub path: String,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
    /// The unified diff, line by line.
    pub lines: Vec<DiffLine>,
}

/// One line of a unified diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffLine {
    /// `add`, `del`, `ctx` or `hunk`.
    pub kind: &'static str,
    /// The text, with its `+`, `-` or ` ` sign.
    pub text: String,
}

/// A test run.
#[derive(Debug, Clone, Serialize)]
pub struct TestView {
    /// Exit code, or how it ended.
    pub ended: String,
    /// Worded duration.
    pub duration: String,
    /// Output as recorded (trimmed by the loop).
    pub output: String,
}

/// A request that ended without a reply.
#[derive(Debug, Clone, Serialize)]
pub struct FailedView {
    /// The turn it was for.
    pub turn: u32,
    /// Why it ended.
    pub error: String,
    /// Attempts, worded.
    pub attempts: String,
    /// Time spent waiting, worded.
    pub waited: String,
}

/// Lines (old and new together) past which a file is not diffed.
const MAX_DIFF_LINES: usize = 20_000;

const PARTS: [(&str, &str); 5] = [
    ("waiting (retries)", "wait"),
    ("first token", "ttft"),
    ("generation", "gen"),
    ("tests", "test"),
    ("harness", "harness"),
];

/// The messages of a recorded request, if it is a list of `{role, content}`.
fn messages_of(request_json: &str) -> Option<Vec<(String, String)>> {
    let v: serde_json::Value = serde_json::from_str(request_json).ok()?;
    let list = v.as_array().or_else(|| v.get("messages").and_then(|m| m.as_array()))?;
    list.iter()
        .map(|m| {
            let role = m.get("role")?.as_str()?.to_string();
            let content = match m.get("content")? {
                serde_json::Value::String(s) => s.clone(),
                // Anthropic's content blocks: their text, joined.
                serde_json::Value::Array(blocks) => {
                    blocks.iter().filter_map(|b| b.get("text").and_then(|t| t.as_str())).collect::<Vec<_>>().join("\n")
                }
                other => other.to_string(),
            };
            Some((role, content))
        })
        .collect()
}

/// The unified diff of `old` against `new`, three lines of context.
pub fn diff(path: &str, old: &str, new: &str) -> Option<FileDiff> {
    if old == new {
        return None;
    }
    // Model-written files can be huge and unrelated turn to turn, and a line diff of
    // two such is slow (Myers: ~50 s for 120,000 lines each): past this size the page
    // says so instead, and any diff gives up on finding the smallest after 200 ms.
    let lines = old.lines().count() + new.lines().count();
    if lines > MAX_DIFF_LINES {
        return Some(FileDiff {
            path: path.to_string(),
            added: 0,
            removed: 0,
            lines: vec![DiffLine {
                kind: "hunk",
                text: format!("(not diffed: {lines} lines, over the {MAX_DIFF_LINES} a page diffs)"),
            }],
        });
    }
    let d = similar::TextDiff::configure().timeout(std::time::Duration::from_millis(200)).diff_lines(old, new);
    let (mut added, mut removed, mut lines) = (0, 0, Vec::new());
    for group in d.grouped_ops(3) {
        let (first, last) = (group.first()?, group.last()?);
        let (old_start, new_start) = (first.old_range().start, first.new_range().start);
        let (old_len, new_len) = (last.old_range().end - old_start, last.new_range().end - new_start);
        lines.push(DiffLine {
            kind: "hunk",
            text: format!("@@ -{},{old_len} +{},{new_len} @@", old_start + 1, new_start + 1),
        });
        for op in &group {
            for change in d.iter_changes(op) {
                let (kind, sign) = match change.tag() {
                    ChangeTag::Insert => {
                        added += 1;
                        ("add", '+')
                    }
                    ChangeTag::Delete => {
                        removed += 1;
                        ("del", '-')
                    }
                    ChangeTag::Equal => ("ctx", ' '),
                };
                let text = change.value().trim_end_matches('\n');
                lines.push(DiffLine { kind, text: format!("{sign}{text}") });
            }
        }
    }
    Some(FileDiff { path: path.to_string(), added, removed, lines })
}

fn width(seconds: f64, longest: f64) -> String {
    format!("{:.2}", if longest > 0.0 { (seconds.max(0.0) / longest * 100.0).min(100.0) } else { 0.0 })
}

/// The transcript of `run`, with diffs from `files` when they could be rebuilt
/// (`Err`: why not, said on the page).
pub fn transcript(run: &RunDetail, files: Result<&FileStates, &str>) -> Transcript {
    let row = &run.row;
    let longest = run.turns.iter().map(|t| t.wall_s).fold(0.0, f64::max);
    // Hashes of the messages the turn before sent (and its reply): a turn's new messages are the others.
    let key = |role: &str, content: &str| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (role, content).hash(&mut h);
        h.finish()
    };
    let mut previous_sent: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let turns = run
        .turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let call = run.calls.iter().find(|c| c.turn == t.turn);
            let parsed = call.and_then(|c| messages_of(&c.request_json));
            let (messages, raw_request) = match &parsed {
                Some(list) => (
                    list.iter()
                        .map(|(role, content)| MessageView {
                            role: role.clone(),
                            content: content.clone(),
                            new: !previous_sent.contains(&key(role, content)),
                        })
                        .collect::<Vec<_>>(),
                    None,
                ),
                None => (Vec::new(), call.map(|c| c.request_json.clone())),
            };
            if let (Some(list), Some(c)) = (parsed, call) {
                previous_sent = list.iter().map(|(r, m)| key(r, m)).collect();
                previous_sent.insert(key("assistant", &c.reply_text));
            }
            let gen = (t.model_s - t.ttft_s.unwrap_or(0.0)).max(0.0);
            let parts = [t.retry_wait_s, t.ttft_s.unwrap_or(0.0), gen, t.test_s, t.overhead_s];
            let segments = PARTS
                .iter()
                .zip(parts)
                // Under a millisecond is nothing a bar can show (a retry wait of 2 µs is "no wait").
                .filter(|(_, s)| *s >= 0.0005)
                .map(|(&(label, class), s)| Segment { label, class, time: units::seconds(s), width: width(s, longest) })
                .collect();
            let mut facts = Vec::new();
            if let Some(n) = t.input_tokens {
                let cached =
                    t.cached_input_tokens.filter(|c| *c > 0).map(|c| format!(" ({} cached)", units::tokens(c as f64)));
                facts
                    .push(("prompt".to_string(), format!("{}{}", units::tokens(n as f64), cached.unwrap_or_default())));
            }
            if let Some(n) = t.output_tokens {
                let est = if t.output_tokens_estimated { " (estimated)" } else { "" };
                facts.push(("reply".to_string(), format!("{}{est}", units::tokens(n as f64))));
            }
            if let Some(s) = t.ttft_s {
                facts.push(("first token".to_string(), units::seconds(s)));
            }
            if let Some(v) = t.tokens_per_s {
                facts.push(("decode".to_string(), units::tokens_per_s(v)));
            }
            if t.usd > 0.0 {
                facts.push(("cost".to_string(), units::usd(t.usd)));
            }
            let diffs = match files {
                Ok(states) => {
                    let before = states.start.get(i);
                    match (before, states.after.get(i)) {
                        (Some(b), Some(a)) => {
                            let empty = String::new();
                            let paths: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
                            paths
                                .into_iter()
                                .filter_map(|p| diff(p, b.get(p).unwrap_or(&empty), a.get(p).unwrap_or(&empty)))
                                .collect()
                        }
                        _ => Vec::new(),
                    }
                }
                Err(_) => Vec::new(),
            };
            let test = run.tests.iter().find(|(n, _)| *n == t.turn).map(|(_, x)| TestView {
                ended: match (x.timed_out, x.exit_code) {
                    (true, _) => "killed at its timeout".to_string(),
                    (false, Some(c)) => format!("exit code {c}"),
                    (false, None) => "killed".to_string(),
                },
                duration: units::seconds(x.duration_s),
                output: x.output.clone(),
            });
            TurnView {
                turn: t.turn,
                grade: t.grade.to_string(),
                tests: match (t.tests_passed, t.tests_total) {
                    (Some(p), Some(n)) => format!("{p} of {n} tests"),
                    _ => "tests not counted".to_string(),
                },
                score: t.score.map(units::percent).unwrap_or_else(|| "n/a".into()),
                wall: units::seconds(t.wall_s),
                started: units::seconds(t.started_s),
                segments,
                facts,
                new_messages: messages.iter().filter(|m| m.new).count(),
                messages,
                raw_request,
                reply: call.map(|c| c.reply_text.clone()).unwrap_or_default(),
                edits_applied: t.edits_applied,
                edits_refused: t.edits_refused,
                refusals: t.refusals.clone(),
                same_files: files.is_ok() && diffs.is_empty(),
                diffs,
                test,
                events: t.events.clone(),
            }
        })
        .collect();
    Transcript {
        id: row.id,
        plan_id: row.plan_id,
        task: row.task.clone(),
        model: row.model.clone(),
        replicate: row.replicate,
        status: row.status.clone(),
        in_progress: matches!(row.status.as_str(), "running" | "queued"),
        outcome: row.outcome.map(|o| o.to_string()).unwrap_or_default(),
        stop_reason: row.stop_reason.clone().unwrap_or_default(),
        error: run.error.clone(),
        wall: row.wall_s.map(units::seconds).unwrap_or_else(|| "n/a".into()),
        time_to_pass: row.time_to_pass_s.map(units::seconds),
        sandbox: run.sandbox.clone().unwrap_or_else(|| "not recorded".into()),
        started_at: row.started_at.clone(),
        options: run.plan_options.clone(),
        task_prompt: run.task_prompt.clone(),
        task_test: run.task_test.clone(),
        files_note: files.err().map(str::to_string),
        turns,
        failed_calls: run
            .failed_calls
            .iter()
            .map(|f| FailedView {
                turn: f.turn,
                error: f.error.clone(),
                attempts: units::count(u64::from(f.attempts), "attempt"),
                waited: units::seconds(f.retry_wait_s),
            })
            .collect(),
        legend: PARTS
            .iter()
            .map(|&(label, class)| Segment { label, class, time: String::new(), width: String::new() })
            .collect(),
    }
}

/// The CSS class of a grade.
pub fn grade_class(g: Grade) -> &'static str {
    match g {
        Grade::Pass => "pass",
        Grade::Partial => "partial",
        Grade::Fail => "fail",
        Grade::Thrash => "thrash",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_added_and_removed_lines_in_hunks() {
        let d = diff("a.py", "x = 1\ny = 2\nz = 3\n", "x = 1\ny = 20\nz = 3\n").unwrap();
        assert_eq!((d.added, d.removed), (1, 1));
        let kinds: Vec<&str> = d.lines.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["hunk", "ctx", "del", "add", "ctx"]);
        assert_eq!(d.lines[0].text, "@@ -1,3 +1,3 @@");
        assert_eq!(d.lines[2].text, "-y = 2");
        assert!(diff("a.py", "same\n", "same\n").is_none());
        // Huge files are not diffed (a page must not spend seconds on one).
        let big: String = (0..MAX_DIFF_LINES).map(|i| format!("{i}\n")).collect();
        let d = diff("big.py", &big, "x\n").unwrap();
        assert!(d.lines[0].text.starts_with("(not diffed: 20001 lines"), "{:?}", d.lines[0]);
    }

    #[test]
    fn requests_read_as_messages_in_both_wire_shapes() {
        let openai = r#"[{"role":"system","content":"s"},{"role":"user","content":"u"}]"#;
        assert_eq!(messages_of(openai).unwrap(), [("system".into(), "s".into()), ("user".into(), "u".into())]);
        let anthropic =
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
        assert_eq!(messages_of(anthropic).unwrap(), [("user".to_string(), "a\nb".to_string())]);
        assert!(messages_of("not json").is_none());
    }
}
