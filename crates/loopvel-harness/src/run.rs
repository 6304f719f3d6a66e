//! The loop that turns turns: prompt → reply → edits → tests → grade → feedback.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use loopvel_provider::{
    complete_within, Completion, Control, Limiter, Message, ModelConfig, ProviderError, Role, Spent,
};

/// How a request that produced no reply ended, for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// An error: the run ends as an error (played again on resume).
    Error,
    /// The next retry would wait past the run's wall budget: the run ends
    /// censored by that budget, as if the budget had run out.
    OutOfTime,
    /// A signal ended loopvel: the run is interrupted, played again on resume.
    Interrupted,
}

/// A request that produced no reply.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    /// Why, in words (names the model and URL, never a key).
    pub message: String,
    /// What it means for the run.
    pub end: CallEnd,
    /// What the request waited and tried before it ended.
    pub spent: Spent,
}

impl From<String> for CallFailure {
    fn from(message: String) -> Self {
        CallFailure { message, end: CallEnd::Error, spent: Spent::default() }
    }
}

impl From<ProviderError> for CallFailure {
    fn from(e: ProviderError) -> Self {
        let end = match e {
            ProviderError::OutOfTime { .. } => CallEnd::OutOfTime,
            ProviderError::Cancelled { .. } => CallEnd::Interrupted,
            _ => CallEnd::Error,
        };
        CallFailure { message: e.to_string(), end, spent: e.spent().clone() }
    }
}

/// Where a turn's reply comes from: a live endpoint, or a recording.
pub trait Responder: Sync {
    /// The reply to `messages` on `turn` (1-based). An error ends the run as an error.
    fn respond(&self, turn: u32, messages: &[Message]) -> Result<Completion, String>;
    /// [`Responder::respond`], calling `on_tokens` with the output tokens so far
    /// while the reply streams in. A recording answers at once, without calling it.
    fn respond_observed(&self, turn: u32, messages: &[Message], on_tokens: &dyn Fn(u64)) -> Result<Completion, String> {
        let _ = on_tokens;
        self.respond(turn, messages)
    }
    /// [`Responder::respond_observed`] under `control`: its deadline (the
    /// run's wall budget), its wait reports and its cancel. A recording
    /// answers at once and needs none of them.
    fn respond_within(&self, turn: u32, messages: &[Message], control: &Control) -> Result<Completion, CallFailure> {
        self.respond_observed(turn, messages, control.on_tokens).map_err(CallFailure::from)
    }
    /// Reply number `candidate` (from 0) of a turn that asks for several to
    /// the same `messages` at once, each from its own thread. A live model is
    /// simply asked again; a recording answers with that candidate's reply.
    fn respond_candidate(
        &self,
        turn: u32,
        candidate: u32,
        messages: &[Message],
        control: &Control,
    ) -> Result<Completion, CallFailure> {
        let _ = candidate;
        self.respond_within(turn, messages, control)
    }
    /// What this reply cost, USD. Asked on the thread that got the reply,
    /// right after it (a recording keeps its last reply's cost per thread).
    fn usd(&self, completion: &Completion) -> f64;
    /// What this reply would have cost with no prompt cache, USD.
    fn usd_uncached(&self, completion: &Completion) -> f64 {
        self.usd(completion)
    }
}

/// A live model endpoint behind its shared limiter.
pub struct Live<'a> {
    /// The model.
    pub model: &'a ModelConfig,
    /// Its shared limits.
    pub limiter: &'a Limiter,
}

impl Responder for Live<'_> {
    fn respond(&self, turn: u32, messages: &[Message]) -> Result<Completion, String> {
        self.respond_observed(turn, messages, &|_| {})
    }
    fn respond_observed(
        &self,
        _turn: u32,
        messages: &[Message],
        on_tokens: &dyn Fn(u64),
    ) -> Result<Completion, String> {
        let control = Control { on_tokens, ..Control::default() };
        complete_within(self.model, messages, self.limiter, &control).map_err(|e| e.to_string())
    }
    fn respond_within(&self, _turn: u32, messages: &[Message], control: &Control) -> Result<Completion, CallFailure> {
        complete_within(self.model, messages, self.limiter, control).map_err(CallFailure::from)
    }
    fn usd(&self, c: &Completion) -> f64 {
        self.model.usd(&c.tokens())
    }
    fn usd_uncached(&self, c: &Completion) -> f64 {
        self.model.usd_uncached(&c.tokens())
    }
}

/// How a run's clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub enum Clock {
    /// Wall-clock time as measured.
    #[default]
    Wall,
    /// Replay: the model's time is the time its (recorded) completion says,
    /// not the instant a recording answers in; tests and harness work are
    /// measured, unless `test_s` pretends every test run took that long.
    /// Nothing sleeps.
    Virtual {
        /// Pretend each test run took this many seconds.
        test_s: Option<f64>,
    },
}
use loopvel_record::{Outcome, RunSummary, Turn};
use loopvel_store::{CallRecord, CandidateRecord, FailedCall, Store, TestRecord};

use crate::design::{Feedback, FilesShown, LoopDesign, RestartClock, THINK_FIRST};
use crate::edits::{
    fenced_blocks, first_line_path, line_before_first_fence, mentioned_paths, parse_edits, same_file, Edit, EditOp,
    FORMAT_INSTRUCTIONS, UNNAMED_BLOCK,
};
use crate::grade::{grade, Grade, TurnResult};
use crate::report::Counts;
use crate::task::Task;
use crate::testrun::{run_tests, TestRun, TestSpec, OUTPUT_CAP};
use crate::workspace::{Snapshot, Workspace};

/// What the model sees of earlier turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum History {
    /// The whole conversation: context grows each turn.
    Full,
    /// A fresh prompt each turn with only the latest files and feedback.
    Last,
    /// The task's first prompt and the latest K exchanges (`window:K`).
    Window(u32),
}

impl History {
    /// Reads `full`, `last` or `window:K` (K ≥ 1).
    pub fn parse(s: &str) -> Result<History, String> {
        match s {
            "full" => Ok(History::Full),
            "last" => Ok(History::Last),
            other => match other.strip_prefix("window:").map(str::parse::<u32>) {
                Some(Ok(k)) if k >= 1 => Ok(History::Window(k)),
                _ => Err(format!("history {other:?} is not known; use full, last or window:K with K ≥ 1")),
            },
        }
    }

    /// As `parse` reads it.
    pub fn name(&self) -> String {
        match self {
            History::Full => "full".into(),
            History::Last => "last".into(),
            History::Window(k) => format!("window:{k}"),
        }
    }
}

/// Budgets and settings of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOptions {
    /// Most turns.
    pub max_turns: u32,
    /// Wall-time budget, s.
    pub max_wall_s: Option<f64>,
    /// Cost budget, USD.
    pub max_usd: Option<f64>,
    /// What the model sees of earlier turns.
    pub history: History,
    /// Bytes of test output fed back per turn (head and tail kept).
    pub feedback_bytes: usize,
    /// What is fed back, which files follow, when to start over (an arm's
    /// design); at its default it adds nothing to the plan's options.
    #[serde(flatten)]
    pub design: LoopDesign,
    /// Where the tests run. Not part of a plan's options: each run records its level.
    #[serde(skip)]
    pub sandbox: std::sync::Arc<loopvel_sandbox::Sandbox>,
    /// Wall clock for live runs, a virtual one for replays.
    #[serde(skip)]
    pub clock: Clock,
}

/// One run to play.
pub struct RunJob<'a> {
    /// The task.
    pub task: &'a Task,
    /// Where replies come from.
    pub responder: &'a dyn Responder,
    /// Where to record.
    pub store: &'a Store,
    /// The run's row.
    pub run_id: i64,
    /// Budgets.
    pub options: &'a RunOptions,
}

/// Called after each turn (progress display).
pub type OnTurn<'a> = &'a (dyn Fn(&Turn) + Sync);

/// Where a turn is, for a live progress display. The harness only reports;
/// drawing it (or not, off a terminal) is the caller's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The request is sent (or waiting on the rate limit); no token yet.
    Waiting {
        /// The turn, from 1.
        turn: u32,
    },
    /// An attempt failed and the next waits (backoff or the server's `Retry-After`).
    Retrying {
        /// The turn, from 1.
        turn: u32,
        /// The wait, as it begins.
        wait: loopvel_provider::Wait,
    },
    /// The reply is streaming in.
    Generating {
        /// The turn, from 1.
        turn: u32,
        /// Output tokens so far (estimated from the characters received).
        tokens: u64,
    },
    /// The tests are running on the edited code.
    Testing {
        /// The turn, from 1.
        turn: u32,
    },
}

/// Called as a turn moves along (progress display); called often while a reply streams.
pub type OnProgress<'a> = &'a (dyn Fn(Progress) + Sync);

fn trim_middle(text: &str, budget: usize) -> String {
    if text.len() <= budget {
        return text.to_string();
    }
    let half = budget / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!("{}\n… [{} bytes cut] …\n{}", &text[..head_end], tail_start - head_end, &text[tail_start..])
}

/// The files in the same shape the model is asked to answer in (path line,
/// then a fenced block), editable ones under their own heading: a model that
/// copies the shape produces a valid edit.
fn files_block(ws: &Workspace) -> String {
    let files = ws.visible_files();
    let mut s = String::new();
    for (heading, want_editable) in [("Files you may edit:", true), ("Read-only files (do not edit):", false)] {
        let group: Vec<_> = files.iter().filter(|(_, _, e)| *e == want_editable).collect();
        if group.is_empty() {
            continue;
        }
        s.push_str(heading);
        s.push_str("\n\n");
        for (path, content, _) in group {
            push_file(&mut s, &path.display().to_string(), content);
        }
    }
    s
}

/// One file as the model is shown it and asked to answer: its path line, then a fenced block.
fn push_file(s: &mut String, path_line: &str, content: &str) {
    s.push_str(&format!("{path_line}\n```\n{content}"));
    if !content.ends_with('\n') {
        s.push('\n');
    }
    s.push_str("```\n\n");
}

/// Past this many bytes, a conversation sent with `--history full` leaves
/// out its earliest turns after the task's first prompt, and the latest
/// prompt says how many. Replies are capped at 1 MiB each, so without this
/// every turn's request would grow by up to that much. The latest exchange
/// (reply, feedback and the files now) is always kept whole, so a request
/// can exceed this when those alone do.
pub const MAX_CONVERSATION_BYTES: usize = 2 * 1024 * 1024;

/// Bring `messages` (system, first prompt, then assistant/user pairs) under
/// [`MAX_CONVERSATION_BYTES`] by leaving out the oldest pairs, never the
/// first prompt or the latest pair; `left_out` counts the pairs left out so
/// far, and the latest prompt says so.
fn cap_conversation(messages: &mut Vec<Message>, left_out: &mut usize) {
    let size = |m: &[Message]| m.iter().map(|x| x.content.len()).sum::<usize>();
    let before = *left_out;
    while size(messages) > MAX_CONVERSATION_BYTES && messages.len() > 4 {
        messages.drain(2..4);
        *left_out += 1;
    }
    if *left_out > before {
        if let Some(last) = messages.last_mut() {
            last.content = format!(
                "[loopvel: the {} earliest turn(s) of this conversation were left out: it was over {} MiB]\n\n{}",
                left_out,
                MAX_CONVERSATION_BYTES / (1024 * 1024),
                last.content
            );
        }
    }
}

fn system_prompt(task: &Task) -> String {
    format!("You fix code until its tests pass. You may edit only: {}.\n{FORMAT_INSTRUCTIONS}", task.edit.join(", "))
}

fn first_prompt(task: &Task, ws: &Workspace) -> String {
    format!("{}\n\nThe files:\n\n{}", task.prompt.trim(), files_block(ws))
}

/// What the feedback of a turn is made from, beside the test run.
struct FeedbackContext<'a> {
    design: &'a LoopDesign,
    report: &'a crate::report::ReportFormat,
    root: &'a std::path::Path,
    /// Tests passing before this turn's edits, if counted.
    passed_before: Option<u32>,
    /// The unified diff of this turn's edits (targeted feedback).
    edit_diff: Option<String>,
}

fn feedback(test: Option<&TestRun>, refusals: &[String], budget: usize, ctx: &FeedbackContext) -> String {
    let mut s = String::new();
    match test {
        Some(t) if t.timed_out => s.push_str("The tests timed out and were killed.\n"),
        Some(t) => match t.counts {
            Some(Counts { passed, total }) => s.push_str(&format!(
                "Tests: {passed} of {total} pass (score {:.2}).\n",
                f64::from(passed) / f64::from(total.max(1))
            )),
            None => s.push_str("The tests crashed before reporting any result.\n"),
        },
        None => s.push_str("The tests did not run again: no edit was applied.\n"),
    }
    if !refusals.is_empty() {
        s.push_str("Problems with your edits:\n");
        for r in refusals {
            s.push_str(&format!("- {r}\n"));
        }
    }
    let Some(t) = test else { return s };
    let raw = |s: &mut String| {
        s.push_str(&format!("Test output (trimmed):\n```\n{}\n```\n", trim_middle(t.output.trim_end(), budget)))
    };
    match ctx.design.feedback {
        Feedback::Raw => raw(&mut s),
        Feedback::Failures | Feedback::Targeted => {
            let failing = crate::failures::failures(ctx.report, &t.output, ctx.root);
            if failing.is_empty() {
                if !t.all_passed() {
                    s.push_str("(No failing test could be read from the output; here it is.)\n");
                    raw(&mut s);
                }
            } else {
                let mut list = String::from("Failing tests:\n");
                for f in &failing {
                    list.push_str(&format!("- {}\n", f.name));
                    for line in &f.detail {
                        list.push_str(&format!("    {line}\n"));
                    }
                }
                s.push_str(&trim_middle(&list, budget));
            }
            if ctx.design.feedback == Feedback::Targeted {
                match (ctx.passed_before, t.counts) {
                    (Some(before), Some(Counts { passed, total })) => {
                        let moved = i64::from(passed) - i64::from(before);
                        s.push_str(&format!(
                            "Score: {before} → {passed} of {total} tests pass ({moved:+} with your last edit).\n"
                        ));
                    }
                    (None, Some(Counts { passed, total })) => {
                        s.push_str(&format!("Score: {passed} of {total} tests pass (the first run of the tests).\n"))
                    }
                    _ => {}
                }
                if let Some(d) = ctx.edit_diff.as_deref().filter(|d| !d.is_empty()) {
                    s.push_str(&format!(
                        "Your last edit changed:\n```diff\n{}\n```\n",
                        trim_middle(d.trim_end(), budget)
                    ));
                }
            }
        }
    }
    s
}

/// The unified diff of the editable files from `before` to `after`.
fn edit_diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> String {
    let empty = String::new();
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = String::new();
    for p in paths {
        let (old, new) = (before.get(p).unwrap_or(&empty), after.get(p).unwrap_or(&empty));
        if old != new {
            let d = similar::TextDiff::from_lines(old.as_str(), new.as_str());
            out.push_str(&d.unified_diff().context_radius(2).header(p, p).to_string());
        }
    }
    out
}

/// The visible files whose content differs from what the model was last
/// shown (`shown`, updated), in the shape of [`files_block`]; then the names of the rest.
fn changed_files_block(ws: &Workspace, shown: &mut BTreeMap<String, String>) -> String {
    let mut s = String::new();
    let mut same = Vec::new();
    for (path, content, editable) in ws.visible_files() {
        let key = path.display().to_string();
        if shown.get(&key) == Some(&content) {
            same.push(key);
            continue;
        }
        let label = if editable { "" } else { " (read-only)" };
        push_file(&mut s, &format!("{key}{label}"), &content);
        shown.insert(key, content);
    }
    if s.is_empty() {
        s.push_str("No file changed since you last saw it.\n");
    }
    if !same.is_empty() {
        s.push_str(&format!("Unchanged since you last saw them: {}.\n", same.join(", ")));
    }
    s
}

/// Every visible file as the model is shown it in a first prompt.
fn all_shown(ws: &Workspace) -> BTreeMap<String, String> {
    ws.visible_files().into_iter().map(|(p, c, _)| (p.display().to_string(), c)).collect()
}

/// One reply of a turn that asked for several, and what its tests found on
/// its own copy of the files.
struct Candidate {
    completion: Completion,
    usd: f64,
    usd_uncached: f64,
    reply: ApplyReply,
    files: Snapshot,
    test: Option<TestRun>,
}

/// Why a candidate has no result: its call ended without a reply, or the
/// harness could not test it (the run ends as an error).
enum CandidateError {
    Call(CallFailure),
    Harness(String),
}

/// Best-of-k within a turn: `k` replies to the same `messages`, asked at once
/// (a server that answers one at a time queues them), each applied to its own
/// copy of `start` and tested there. In the order asked.
#[allow(clippy::too_many_arguments)]
fn ask_candidates(
    job: &RunJob,
    turn: u32,
    k: u32,
    messages: &[Message],
    temperature: Option<f64>,
    deadline: Option<Instant>,
    spaces: &[Workspace],
    spec: &TestSpec,
    test_unchanged: bool,
    on_progress: OnProgress,
) -> Vec<Result<Candidate, CandidateError>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..k)
            .zip(spaces)
            .map(|(i, space)| {
                scope.spawn(move || {
                    // One stream's progress is shown; k interleaved counts would read as noise.
                    let on_tokens = |tokens: u64| {
                        if i == 0 {
                            on_progress(Progress::Generating { turn, tokens })
                        }
                    };
                    let on_wait =
                        |w: &loopvel_provider::Wait| on_progress(Progress::Retrying { turn, wait: w.clone() });
                    let control = Control {
                        on_tokens: &on_tokens,
                        on_wait: &on_wait,
                        deadline,
                        cancelled: &loopvel_sandbox::interrupted,
                        temperature,
                    };
                    let completion =
                        job.responder.respond_candidate(turn, i, messages, &control).map_err(CandidateError::Call)?;
                    let usd = job.responder.usd(&completion);
                    let usd_uncached = job.responder.usd_uncached(&completion);
                    let reply = apply_reply(space, &completion.text);
                    let test = if reply.applied > 0 || test_unchanged {
                        if i == 0 {
                            on_progress(Progress::Testing { turn });
                        }
                        Some(
                            run_tests(space.root(), spec)
                                .map_err(|e| CandidateError::Harness(format!("the test command cannot start: {e}")))?,
                        )
                    } else {
                        None
                    };
                    Ok(Candidate { completion, usd, usd_uncached, reply, files: space.snapshot(), test })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(CandidateError::Harness("a candidate's thread panicked".into()))))
            .collect()
    })
}

/// The candidate the tests choose: the most tests passing (a candidate that
/// changed nothing stands on `previous`), the first asked on a tie.
fn best_candidate(candidates: &[(u32, Candidate)], previous: Option<&TestRun>) -> Option<usize> {
    let passing = |c: &Candidate| {
        c.test.as_ref().or(previous).filter(|t| !t.timed_out).and_then(|t| t.counts).map(|c| i64::from(c.passed))
    };
    let mut best: Option<(usize, i64)> = None;
    for (at, (_, c)) in candidates.iter().enumerate() {
        let p = passing(c).unwrap_or(-1);
        if best.is_none_or(|(_, b)| p > b) {
            best = Some((at, p));
        }
    }
    best.map(|(at, _)| at)
}

/// The event a best-of-k turn records: each reply's tests, and the one kept.
fn candidates_event(k: u32, candidates: &[(u32, Candidate)], failed: usize, kept: u32) -> String {
    let each: Vec<String> = candidates
        .iter()
        .map(|(i, c)| {
            let tests = match c.test.as_ref() {
                None => "no edit".to_string(),
                Some(t) if t.timed_out => "timed out".to_string(),
                Some(t) => t.counts.map_or("no count".to_string(), |n| format!("{} of {}", n.passed, n.total)),
            };
            format!("#{} {tests}", i + 1)
        })
        .collect();
    let failed = if failed > 0 { format!(" ({failed} got no reply)") } else { String::new() };
    format!("best of {k} replies{failed}: {}; kept #{}", each.join(", "), kept + 1)
}

/// The best state a run reached: where a restart goes back to.
struct BestState {
    turn: u32,
    files: Snapshot,
    test: Option<TestRun>,
}

/// The stop reason of a run a signal ended ([`Outcome::Interrupted`]): not
/// a result, and not stored as done; the caller marks it so its plan plays it again.
pub const INTERRUPTED: &str = "interrupted";

/// Play one run to its end and record every turn. Never panics on model output.
pub fn play_run(job: &RunJob, on_turn: OnTurn) -> RunSummary {
    play_run_observed(job, on_turn, &|_| {})
}

/// [`play_run`], reporting where each turn is through `on_progress`.
pub fn play_run_observed(job: &RunJob, on_turn: OnTurn, on_progress: OnProgress) -> RunSummary {
    let started = Instant::now();
    let mut summary = RunSummary {
        outcome: Outcome::Fail,
        stop_reason: "max_turns".into(),
        turns: 0,
        time_to_pass_s: None,
        wall_s: 0.0,
        model_s: 0.0,
        test_s: 0.0,
        overhead_s: 0.0,
        retry_wait_s: 0.0,
        input_tokens: 0,
        output_tokens: 0,
        usd: 0.0,
        error: None,
    };
    let fail = |mut s: RunSummary, e: String| {
        s.outcome = Outcome::Error;
        s.stop_reason = "error".into();
        s.error = Some(e);
        s.wall_s = started.elapsed().as_secs_f64();
        s
    };
    let ws = match Workspace::create(job.task) {
        Ok(ws) => ws,
        Err(e) => return fail(summary, format!("cannot create the workspace: {e}")),
    };
    let system = Message { role: Role::System, content: system_prompt(job.task) };
    // `think_first`: the instruction closes every prompt the model gets.
    let think = |text: String| if job.options.design.think_first { format!("{text}\n\n{THINK_FIRST}") } else { text };
    let mut messages = vec![system.clone(), Message { role: Role::User, content: think(first_prompt(job.task, &ws)) }];
    let mut temperature = job.options.design.temperature;
    let spec = TestSpec::for_task(job.task, &job.options.sandbox);
    let design = &job.options.design;
    // What a restart goes back to when no turn did better, and what the model was shown.
    let original_files = ws.snapshot();
    let mut shown = all_shown(&ws);
    let mut restart_clock = RestartClock::default();
    let mut best: Option<BestState> = None;
    let mut seen_states: HashSet<u64> = HashSet::new();
    let mut previous: Option<TestRun> = None;
    let mut previous_passed: Option<u32> = None;
    // A turn's wall time runs from the end of the previous turn's measurement to
    // the end of its own, so the harness work between turns (recording the turn,
    // building the feedback) is counted, in the next turn's overhead.
    let mut mark = Instant::now();
    let mut turn_start = 0.0;
    let mut left_out = 0usize;
    // Live runs only: a replay's clock is virtual, and its recordings never wait.
    let deadline = match job.options.clock {
        Clock::Wall => job.options.max_wall_s.map(|w| started + std::time::Duration::from_secs_f64(w)),
        Clock::Virtual { .. } => None,
    };
    let interrupted = |mut s: RunSummary| {
        s.outcome = Outcome::Interrupted;
        s.stop_reason = INTERRUPTED.into();
        s.wall_s = started.elapsed().as_secs_f64();
        s
    };
    // How a run ends when a turn's request (or every candidate's) got no reply.
    let call_ended = |mut s: RunSummary, f: CallFailure| match f.end {
        CallEnd::Error => fail(s, f.message),
        CallEnd::Interrupted => interrupted(s),
        // Censored by the wall budget: it could not have passed within it.
        CallEnd::OutOfTime => {
            s.stop_reason = "max_wall".into();
            s.wall_s = started.elapsed().as_secs_f64();
            s
        }
    };
    for turn in 1..=job.options.max_turns {
        if loopvel_sandbox::interrupted() {
            return interrupted(summary);
        }
        let request_json = serde_json::to_string(&messages).unwrap_or_default();
        let call_started = Instant::now();
        on_progress(Progress::Waiting { turn });
        let files_before = (design.feedback == Feedback::Targeted).then(|| ws.editable_files());
        let k = design.candidates_per_turn();
        // A request that gave up: what it waited and tried is part of the run;
        // one never sent (a replay past its recording, a cancel before the
        // first attempt) is no failed call.
        let record_failure = |f: &CallFailure| -> Result<(), String> {
            let failed = FailedCall {
                turn,
                error: f.message.clone(),
                attempts: f.spent.attempts,
                retry_wait_s: f.spent.retry_wait_s,
                retries_json: serde_json::to_string(&f.spent.retries).unwrap_or_default(),
                request_json: request_json.clone(),
            };
            if failed.attempts > 0 {
                job.store.record_failed_call(job.run_id, &failed).map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        // The turn's reply and its tests: one reply applied here, or the best of k
        // (each tested on its own copy, the kept one's files then written here).
        let mut kept_space: Option<Workspace> = None;
        let mut candidate_records = Vec::new();
        let mut turn_totals: Option<Completion> = None;
        let mut candidate_event: Option<String> = None;
        let mut candidate_costs: Option<(f64, f64)> = None;
        // The model's part of the turn, as measured (for a virtual clock's harness share).
        let call_measured_s;
        // The test run the turn's time is counted with (`None`: none ran).
        let timed_test_s: Option<f64>;
        let (completion, ApplyReply { applied, refused, refusals }, test) = if k == 1 {
            let on_tokens = |tokens: u64| on_progress(Progress::Generating { turn, tokens });
            let on_wait = |w: &loopvel_provider::Wait| on_progress(Progress::Retrying { turn, wait: w.clone() });
            let control = Control {
                on_tokens: &on_tokens,
                on_wait: &on_wait,
                deadline,
                cancelled: &loopvel_sandbox::interrupted,
                temperature,
            };
            let completion = match job.responder.respond_within(turn, &messages, &control) {
                Ok(c) => c,
                Err(f) => {
                    summary.retry_wait_s += f.spent.retry_wait_s;
                    if let Err(e) = record_failure(&f) {
                        return fail(summary, e);
                    }
                    return call_ended(summary, f);
                }
            };
            call_measured_s = call_started.elapsed().as_secs_f64();
            let reply = apply_reply(&ws, &completion.text);
            // Only run the tests when the code changed; otherwise the last result stands.
            let test = if reply.applied > 0 || previous.is_none() {
                on_progress(Progress::Testing { turn });
                match run_tests(ws.root(), &spec) {
                    Ok(t) => Some(t),
                    Err(e) => return fail(summary, format!("the test command cannot start: {e}")),
                }
            } else {
                None
            };
            timed_test_s = test.as_ref().map(|t| t.duration_s);
            (completion, reply, test)
        } else {
            let start_files = ws.snapshot();
            let mut spaces = Vec::new();
            for _ in 0..k {
                let space = match Workspace::create(job.task) {
                    Ok(s) => s,
                    Err(e) => return fail(summary, format!("cannot create a candidate's workspace: {e}")),
                };
                if let Err(e) = space.restore_snapshot(&start_files) {
                    return fail(summary, format!("cannot copy the files to a candidate's workspace: {e}"));
                }
                spaces.push(space);
            }
            let asked = ask_candidates(
                job,
                turn,
                k,
                &messages,
                temperature,
                deadline,
                &spaces,
                &spec,
                previous.is_none(),
                on_progress,
            );
            let mut answered: Vec<(u32, Candidate)> = Vec::new();
            let mut failed: Vec<CallFailure> = Vec::new();
            for (i, result) in (0..k).zip(asked) {
                match result {
                    Ok(c) => answered.push((i, c)),
                    Err(CandidateError::Harness(e)) => return fail(summary, e),
                    Err(CandidateError::Call(f)) => {
                        // Each failed request is recorded with its own wait; the run's
                        // time counts the candidates that answered (they ran side by side).
                        if let Err(e) = record_failure(&f) {
                            return fail(summary, e);
                        }
                        failed.push(f);
                    }
                }
            }
            let Some(at) = best_candidate(&answered, previous.as_ref()) else {
                // No reply at all: the turn ends as a single failed request would; a
                // signal outranks the budget, which outranks an error (an interrupted
                // run is played again, an error is not).
                let rank = |f: &CallFailure| match f.end {
                    CallEnd::Interrupted => 0,
                    CallEnd::OutOfTime => 1,
                    CallEnd::Error => 2,
                };
                summary.retry_wait_s += failed.iter().map(|f| f.spent.retry_wait_s).fold(0.0, f64::max);
                let Some(f) = failed.into_iter().min_by_key(rank) else {
                    return fail(summary, "no candidate replied".into());
                };
                return call_ended(summary, f);
            };
            let kept_index = answered[at].0;
            // What the turn consumed and paid is every reply's. Its time is the
            // slowest candidate's path (its retry wait, reply and tests), so the
            // recorded parts add up to what the turn waited.
            let path = |c: &Candidate| {
                c.completion.retry_wait_s + c.completion.ttlt_s + c.test.as_ref().map_or(0.0, |t| t.duration_s)
            };
            let slowest = answered.iter().map(|(_, c)| c).max_by(|a, b| path(a).total_cmp(&path(b)));
            let mut totals = answered[at].1.completion.clone();
            totals.input_tokens = answered.iter().map(|(_, c)| c.completion.input_tokens).sum();
            totals.output_tokens = answered.iter().map(|(_, c)| c.completion.output_tokens).sum();
            totals.input_tokens_estimated = answered.iter().any(|(_, c)| c.completion.input_tokens_estimated);
            totals.output_tokens_estimated = answered.iter().any(|(_, c)| c.completion.output_tokens_estimated);
            totals.cached_input_tokens =
                answered.iter().map(|(_, c)| c.completion.cached_input_tokens).try_fold(0, |sum, n| n.map(|n| sum + n));
            totals.cache_write_tokens =
                answered.iter().map(|(_, c)| c.completion.cache_write_tokens).try_fold(0, |sum, n| n.map(|n| sum + n));
            totals.ttlt_s = slowest.map_or(0.0, |c| c.completion.ttlt_s);
            totals.retry_wait_s = slowest.map_or(0.0, |c| c.completion.retry_wait_s);
            timed_test_s = slowest.and_then(|c| c.test.as_ref().map(|t| t.duration_s));
            call_measured_s = (call_started.elapsed().as_secs_f64() - timed_test_s.unwrap_or(0.0)).max(0.0);
            candidate_records = answered
                .iter()
                .map(|(i, c)| {
                    let counts = c.test.as_ref().or(previous.as_ref()).filter(|t| !t.timed_out).and_then(|t| t.counts);
                    CandidateRecord {
                        reply_text: c.completion.text.clone(),
                        detail_json: serde_json::to_string(&c.completion).unwrap_or_default(),
                        usd: c.usd,
                        usd_uncached: c.usd_uncached,
                        edits_applied: c.reply.applied,
                        tests_passed: counts.map(|n| n.passed),
                        tests_total: counts.map(|n| n.total),
                        test_s: c.test.as_ref().map(|t| t.duration_s),
                        candidate: *i,
                        kept: *i == kept_index,
                    }
                })
                .collect();
            candidate_event = Some(candidates_event(k, &answered, failed.len(), kept_index));
            let (_, kept) = answered.swap_remove(at);
            if let Err(e) = ws.restore_snapshot(&kept.files) {
                return fail(summary, format!("cannot write the kept reply's files: {e}"));
            }
            // Its tests ran in its own copy: kept (with any report file) until the feedback is built.
            kept_space = Some(spaces.swap_remove(kept_index as usize));
            candidate_costs = Some((
                candidate_records.iter().map(|c| c.usd).sum(),
                candidate_records.iter().map(|c| c.usd_uncached).sum(),
            ));
            turn_totals = Some(totals);
            (kept.completion, kept.reply, kept.test)
        };
        let state = ws.state_hash();
        let state_seen_before = applied > 0 && !seen_states.insert(state);
        // Tests killed by a signal to loopvel measured nothing: the turn is not recorded.
        if loopvel_sandbox::interrupted() {
            return interrupted(summary);
        }
        let counts = test.as_ref().or(previous.as_ref()).and_then(|t| if t.timed_out { None } else { t.counts });
        let g = grade(&TurnResult { counts, edits_applied: applied as usize, state_seen_before, previous_passed });
        let (improved, restart_due) =
            restart_clock.tick(g == Grade::Thrash, counts.map(|c| c.passed), design.restart_after);
        if improved {
            best = Some(BestState { turn, files: ws.snapshot(), test: test.clone().or_else(|| previous.clone()) });
        }
        let restart_now = restart_due && g != Grade::Pass && turn < job.options.max_turns;
        let mut events: Vec<String> = if restart_now {
            let passing =
                best.as_ref().and_then(|b| b.test.as_ref()).and_then(|t| t.counts).map(|c| (c.passed, c.total));
            vec![crate::design::restart_event(
                design.restart_after.unwrap_or(0),
                best.as_ref().map(|b| b.turn),
                passing,
            )]
        } else {
            Vec::new()
        };
        events.extend(candidate_event);
        // A temperature that rises after each THRASH turn, back to the first turn's after an improvement.
        if let Some(step) = design.temperature_step.filter(|_| g != Grade::Pass) {
            let next = if g == Grade::Thrash {
                Some((temperature.unwrap_or(0.0) + step).min(2.0))
            } else if improved {
                design.temperature
            } else {
                temperature
            };
            if next != temperature {
                let shown = |t: Option<f64>| t.map_or("the model's own".to_string(), |t| format!("{t:.2}"));
                events.push(format!("temperature {} → {} for the next turn", shown(temperature), shown(next)));
                temperature = next;
            }
        }
        let measured = mark.elapsed().as_secs_f64();
        mark = Instant::now();
        // A best-of-k turn: what all its replies consumed, and the longest wait and tests.
        let totals = turn_totals.as_ref().unwrap_or(&completion);
        let gen_s = totals.ttlt_s;
        let measured_test_s = timed_test_s.unwrap_or(0.0);
        let (wall, test_s) = match job.options.clock {
            Clock::Wall => (measured, measured_test_s),
            Clock::Virtual { test_s: pretend } => {
                let test_s = if timed_test_s.is_some() { pretend.unwrap_or(measured_test_s) } else { 0.0 };
                // The harness's own work is measured; the model's and the tests' are the record's (or pretended).
                let harness = (measured - call_measured_s - measured_test_s).max(0.0);
                (gen_s + totals.retry_wait_s + test_s + harness, test_s)
            }
        };
        let (cost, cost_uncached) = candidate_costs
            .unwrap_or_else(|| (job.responder.usd(&completion), job.responder.usd_uncached(&completion)));
        let record = Turn {
            turn,
            started_s: turn_start,
            ttft_s: completion.ttft_s,
            model_s: gen_s,
            output_tokens: Some(totals.output_tokens),
            output_tokens_estimated: totals.output_tokens_estimated,
            input_tokens: Some(totals.input_tokens),
            cached_input_tokens: totals.cached_input_tokens,
            cache_write_tokens: totals.cache_write_tokens,
            tokens_per_s: totals.tokens_per_s,
            retry_wait_s: totals.retry_wait_s,
            edits_applied: applied,
            edits_refused: refused,
            refusals: refusals.clone(),
            test_s,
            tests_passed: counts.map(|c| c.passed),
            tests_total: counts.map(|c| c.total),
            score: counts.map(|c| f64::from(c.passed) / f64::from(c.total.max(1))),
            grade: g,
            overhead_s: (wall - gen_s - test_s - totals.retry_wait_s).max(0.0),
            wall_s: wall,
            usd: cost,
            usd_uncached: Some(cost_uncached),
            events,
        };
        let call = CallRecord {
            request_json,
            reply_text: completion.text.clone(),
            detail_json: serde_json::to_string(&completion).unwrap_or_default(),
            candidates: candidate_records,
        };
        let test_record = test.as_ref().map(|t| TestRecord {
            exit_code: t.exit_code,
            timed_out: t.timed_out,
            passed: t.counts.map(|c| c.passed),
            total: t.counts.map(|c| c.total),
            duration_s: t.duration_s,
            output: trim_middle(&t.output, OUTPUT_CAP),
        });
        if let Err(e) = job.store.record_turn(job.run_id, &record, &call, test_record.as_ref()) {
            return fail(summary, e.to_string());
        }
        on_turn(&record);
        turn_start += wall;
        summary.turns = turn;
        summary.model_s += gen_s;
        summary.test_s += test_s;
        summary.overhead_s += record.overhead_s;
        summary.retry_wait_s += record.retry_wait_s;
        summary.input_tokens += totals.input_tokens;
        summary.output_tokens += totals.output_tokens;
        summary.usd += cost;
        let elapsed = match job.options.clock {
            Clock::Wall => started.elapsed().as_secs_f64(),
            Clock::Virtual { .. } => turn_start,
        };
        if g == Grade::Pass {
            summary.outcome = Outcome::Pass;
            summary.stop_reason = "pass".into();
            summary.time_to_pass_s = Some(elapsed);
            summary.wall_s = elapsed;
            return summary;
        }
        if job.options.max_wall_s.is_some_and(|w| elapsed >= w) {
            summary.stop_reason = "max_wall".into();
            break;
        }
        if job.options.max_usd.is_some_and(|u| summary.usd >= u) {
            summary.stop_reason = "max_usd".into();
            break;
        }
        let passed_before = previous_passed;
        if let Some(c) = counts {
            previous_passed = Some(c.passed);
        }
        if test.is_some() {
            previous = test;
        }
        let ctx = FeedbackContext {
            design,
            report: &job.task.report,
            root: kept_space.as_ref().map_or(ws.root(), |s| s.root()),
            passed_before,
            edit_diff: files_before.map(|b| edit_diff(&b, &ws.editable_files())),
        };
        let fb = feedback(previous.as_ref().filter(|_| applied > 0), &refusals, job.options.feedback_bytes, &ctx);
        if restart_now {
            // Back to the best state (its test result stands for it) and a conversation begun
            // afresh, told what the last attempt left failing.
            let (files, test) = match best.as_ref() {
                Some(b) => (&b.files, b.test.clone()),
                None => (&original_files, None),
            };
            if let Err(e) = ws.restore_snapshot(files) {
                return fail(summary, format!("cannot reset the files for a restart: {e}"));
            }
            previous_passed = test.as_ref().and_then(|t| t.counts).map(|c| c.passed);
            previous = test;
            shown = all_shown(&ws);
            messages = vec![
                system.clone(),
                Message {
                    role: Role::User,
                    content: think(format!(
                        "{}\n\n[loopvel] A fresh start: the last {} attempts did not pass more tests than the best \
                         so far, so the files above are back to that best state. What the last attempt got back:\n{fb}",
                        first_prompt(job.task, &ws),
                        design.restart_after.unwrap_or(0)
                    )),
                },
            ];
            continue;
        }
        let files_now = match design.files {
            FilesShown::All => files_block(&ws),
            FilesShown::Changed => changed_files_block(&ws, &mut shown),
        };
        match job.options.history {
            History::Full | History::Window(_) => {
                messages.push(Message { role: Role::Assistant, content: completion.text });
                messages
                    .push(Message { role: Role::User, content: think(format!("{fb}\nThe files now:\n\n{files_now}")) });
                if let History::Window(k) = job.options.history {
                    // The system prompt, the task's first prompt, then the latest k exchanges.
                    while messages.len() > 2 + 2 * k as usize {
                        messages.drain(2..4);
                    }
                }
                cap_conversation(&mut messages, &mut left_out);
            }
            History::Last => {
                messages = vec![
                    system.clone(),
                    Message {
                        role: Role::User,
                        content: think(format!("{}\n\nLast attempt: {fb}", first_prompt(job.task, &ws))),
                    },
                ];
            }
        }
    }
    summary.wall_s = match job.options.clock {
        Clock::Wall => started.elapsed().as_secs_f64(),
        Clock::Virtual { .. } => turn_start,
    };
    summary
}

/// What one reply did to a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReply {
    /// Edits written.
    pub applied: u32,
    /// Edits refused.
    pub refused: u32,
    /// Why each refused edit, unreadable block or guess was what it was, in order.
    pub refusals: Vec<String>,
}

/// Reads `reply`'s edits and writes them into `ws`, as a turn of the loop
/// does; the one place that rule lives, so `view` can rebuild what each turn
/// left in the files by playing the recorded replies again.
pub fn apply_reply(ws: &Workspace, reply: &str) -> ApplyReply {
    let mut parsed = parse_edits(reply);
    let mut refusals: Vec<String> = parsed.problems.clone();
    // Small models often answer with one bare code block. When the task has
    // exactly one editable file, that block is taken as its whole new content,
    // and the turn records that it was.
    // A block that names another file in its first line ("# conftest.py"),
    // or that the prose just before it says is for another file ("Add this
    // to conftest.py:"), was written for that file and is never taken as this one's.
    if parsed.edits.is_empty() {
        let editable: Vec<_> = ws.visible_files().into_iter().filter(|(_, _, e)| *e).collect();
        let blocks = fenced_blocks(reply);
        // Only a block no path names (one with SEARCH markers is a broken search/replace, already said).
        let unnamed = refusals.iter().filter(|r| *r == UNNAMED_BLOCK).count();
        if let ([(path, _, _)], [block], 1) = (editable.as_slice(), blocks.as_slice(), unnamed) {
            let path = path.display().to_string();
            refusals.retain(|r| r != UNNAMED_BLOCK);
            let in_prose = line_before_first_fence(reply).map(mentioned_paths).unwrap_or_default();
            let other_in_prose =
                (!in_prose.iter().any(|p| same_file(p, &path))).then(|| in_prose.into_iter().next()).flatten();
            match (first_line_path(block).filter(|named| !same_file(named, &path)), other_in_prose) {
                (Some(named), _) => refusals.push(format!(
                    "the only code block names {named} in its first line, so it was not taken as {path}; put \
                     the path on the line before the fence"
                )),
                (None, Some(named)) => refusals.push(format!(
                    "the line before the only code block names {named}, so it was not taken as {path}; put \
                     the path on a line of its own before the fence"
                )),
                (None, None) => {
                    refusals.push(format!("no path line: took the only code block as the whole of {path}"));
                    parsed.edits.push(Edit { path, op: EditOp::Whole { content: block.clone() } });
                }
            }
        }
    }
    let mut applied = 0u32;
    for edit in &parsed.edits {
        match ws.apply(edit) {
            Ok(_) => applied += 1,
            Err(r) => refusals.push(r.to_string()),
        }
    }
    let refused = parsed.edits.len() as u32 - applied;
    if parsed.edits.is_empty() {
        refusals.push("no applicable edit in the reply".into());
    }
    ApplyReply { applied, refused, refusals }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_head_and_tail() {
        let text = format!("HEAD{}TAIL", "x".repeat(10_000));
        let t = trim_middle(&text, 100);
        assert!(t.starts_with("HEAD") && t.ends_with("TAIL") && t.contains("bytes cut"));
        assert!(t.len() < 200);
        assert_eq!(trim_middle("short", 100), "short");
        // Never splits a character.
        let _ = trim_middle(&"é".repeat(1000), 101);
    }

    #[test]
    fn a_growing_conversation_leaves_out_its_oldest_turns_and_says_so() {
        let msg = |role, n: usize| Message { role, content: "x".repeat(n) };
        let mib = 1024 * 1024;
        let mut messages = vec![msg(Role::System, 100), msg(Role::User, 1000)];
        let mut left_out = 0;
        for _ in 0..6 {
            messages.push(msg(Role::Assistant, mib));
            messages.push(msg(Role::User, 1000));
            cap_conversation(&mut messages, &mut left_out);
            let size: usize = messages.iter().map(|m| m.content.len()).sum();
            assert!(size <= MAX_CONVERSATION_BYTES + 200, "{size}");
        }
        // The system prompt and the task's first prompt stay; the latest exchange stays.
        assert_eq!(messages[0].content.len(), 100);
        assert_eq!(messages[1].content.len(), 1000);
        assert_eq!(messages[2].role, Role::Assistant);
        assert_eq!(left_out, 5);
        let last = &messages.last().unwrap().content;
        assert!(
            last.starts_with("[loopvel: the 5 earliest turn(s) of this conversation were left out: it was over 2 MiB]"),
            "{last:.100}"
        );
        // Small conversations are left as they are.
        let mut small = vec![msg(Role::System, 10), msg(Role::User, 10), msg(Role::Assistant, 10), msg(Role::User, 10)];
        let mut none = 0;
        cap_conversation(&mut small, &mut none);
        assert_eq!((small.len(), none), (4, 0));
    }

    /// Streams a fixed reply in `chunks` pieces, reporting tokens as a live endpoint does.
    struct Streamer {
        reply: String,
        chunks: u64,
    }

    impl Responder for Streamer {
        fn respond(&self, turn: u32, messages: &[Message]) -> Result<Completion, String> {
            self.respond_observed(turn, messages, &|_| {})
        }
        fn respond_observed(&self, _: u32, _: &[Message], on_tokens: &dyn Fn(u64)) -> Result<Completion, String> {
            for i in 1..=self.chunks {
                on_tokens(i * 10);
            }
            Ok(Completion {
                text: self.reply.clone(),
                ttft_s: Some(0.1),
                ttlt_s: 0.2,
                output_tokens: self.chunks * 10,
                output_tokens_estimated: false,
                input_tokens: 100,
                input_tokens_estimated: false,
                finish_reason: Some("stop".into()),
                ..Completion::empty()
            })
        }
        fn usd(&self, _: &Completion) -> f64 {
            0.0
        }
    }

    #[test]
    fn progress_follows_each_turn_waiting_generating_testing() {
        let dir = tempfile::tempdir().unwrap();
        let task_dir = dir.path().join("t");
        std::fs::create_dir_all(&task_dir).unwrap();
        std::fs::write(
            task_dir.join("task.toml"),
            "prompt = \"make ok.txt say yes\"\nedit = [\"ok.txt\"]\ntest = \"grep -q yes ok.txt\"\nreport = \"exit\"\n",
        )
        .unwrap();
        std::fs::write(task_dir.join("ok.txt"), "no\n").unwrap();
        let task = Task::load(&task_dir).unwrap();
        let store = Store::open(&dir.path().join("runs.db")).unwrap();
        let plan = store.plan("k", "test", "{}").unwrap();
        let task_id = store.task("t", "h", "p", "t").unwrap();
        let model_id = store.model("m", "{}").unwrap();
        let run_id = store.start_run(plan, task_id, model_id, 0, "none").unwrap();
        let sandbox =
            loopvel_sandbox::Sandbox::detect(loopvel_sandbox::Requested::Level(loopvel_sandbox::Level::None)).unwrap();
        let options = RunOptions {
            max_turns: 3,
            max_wall_s: None,
            max_usd: None,
            history: History::Full,
            design: LoopDesign::default(),
            feedback_bytes: 1000,
            sandbox: std::sync::Arc::new(sandbox),
            clock: Clock::Wall,
        };
        let responder = Streamer { reply: "ok.txt\n```\nyes\n```\n".into(), chunks: 3 };
        let job = RunJob { task: &task, responder: &responder, store: &store, run_id, options: &options };
        let seen = std::sync::Mutex::new(Vec::new());
        let summary = play_run_observed(&job, &|_| {}, &|p| seen.lock().unwrap().push(p));
        assert_eq!(summary.outcome, Outcome::Pass, "{summary:?}");
        assert_eq!(
            seen.into_inner().unwrap(),
            [
                Progress::Waiting { turn: 1 },
                Progress::Generating { turn: 1, tokens: 10 },
                Progress::Generating { turn: 1, tokens: 20 },
                Progress::Generating { turn: 1, tokens: 30 },
                Progress::Testing { turn: 1 },
            ]
        );
    }
}
