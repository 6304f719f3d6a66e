//! `loopvel replay`: recorded replies, real tests, a virtual clock.
//!
//! Each recorded run is played again through the same loop (`play_run`) with
//! its recorded replies in order. The tests really run; the model's time is
//! the recorded one (scaled by what-ifs), the tests' is measured (or the
//! `--test-time` what-if), and nothing sleeps. Unchanged, a replay must give
//! each run's outcome, turns and grades exactly; any difference is reported
//! per run (a flaky test, a changed task). With what-ifs, every run is played
//! twice into DST: once unchanged (under its model's name) and once with the
//! what-ifs (under `NAME (what-if)`), so `loopvel report --db DST` shows the
//! counterfactual beside the original.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use loopvel_harness::replay::{Recording, RunReplay, Timing, PAST_THE_RECORDING};
use loopvel_harness::run::{play_run, Clock, History, RunJob, RunOptions, INTERRUPTED};
use loopvel_harness::task::{discover, Task};
use loopvel_math::units::{count, seconds};
use loopvel_provider::Completion;
use loopvel_sandbox::Sandbox;
use loopvel_store::{Store, StoredRun};
use serde_json::{json, Value};

use crate::cli::ReplayArgs;
use crate::commands::run::{fnv1a, task_hash, FNV_OFFSET};
use crate::error::CliError;

/// What happened to one replayed run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    /// Source run id.
    pub source_run: i64,
    /// Task.
    pub task: String,
    /// Model name in the destination.
    pub model: String,
    /// True for the unchanged replay (the one that must reproduce the record).
    pub unchanged: bool,
    /// Outcome then and now.
    pub outcome: (String, String),
    /// Turns then and now.
    pub turns: (u32, u32),
    /// Time to pass then and now (s; virtual now).
    pub time_to_pass_s: (Option<f64>, Option<f64>),
    /// Differences in outcome, turns or grades from the record (unchanged replays only), empty when exact.
    pub differences: Vec<String>,
    /// Where the request the loop built differed from the recorded one although
    /// the grades agree (test output that changes run to run).
    pub request_note: Option<String>,
}

/// The whole replay.
#[derive(Debug, serde::Serialize)]
pub struct ReplayResult {
    /// Runs replayed.
    pub runs: Vec<Replayed>,
    /// Source runs skipped, with why.
    pub skipped: Vec<String>,
    /// Seconds the replay took.
    pub elapsed_s: f64,
}

fn parse_pairs(flag: &str, items: &[String], factor: bool) -> Result<HashMap<String, f64>, CliError> {
    let mut out = HashMap::new();
    for item in items {
        let bad = |why: &str| CliError::Usage(format!("{flag} {item}: {why}"));
        let (name, value) = item.rsplit_once('=').ok_or_else(|| bad("expected NAME=VALUE"))?;
        let v =
            if factor { value.strip_prefix('x').or_else(|| value.strip_prefix('×')).unwrap_or(value) } else { value };
        let x: f64 = v
            .parse()
            .map_err(|_| bad(if factor { "the value is xFACTOR, e.g. x10" } else { "the value is seconds" }))?;
        if !x.is_finite() || x < 0.0 || (factor && x == 0.0) {
            return Err(bad("give a finite number ≥ 0 (a factor > 0)"));
        }
        out.insert(name.to_string(), x);
    }
    Ok(out)
}

/// The loop options a run was recorded with (its plan's options).
fn recorded_options(json: &str, sandbox: &Arc<Sandbox>) -> Option<RunOptions> {
    let v: Value = serde_json::from_str(json).ok()?;
    // Plans recorded before the key left out --runs store `[options, runs]`.
    let o = if v.is_array() { v.get(0)? } else { &v };
    Some(RunOptions {
        max_turns: o.get("max_turns")?.as_u64()? as u32,
        max_wall_s: o.get("max_wall_s").and_then(Value::as_f64),
        max_usd: o.get("max_usd").and_then(Value::as_f64),
        history: if o.get("history")?.as_str()? == "last" { History::Last } else { History::Full },
        feedback_bytes: o.get("feedback_bytes")?.as_u64()? as usize,
        sandbox: sandbox.clone(),
        clock: Clock::Wall,
    })
}

/// The task of each recorded run, loaded once per folder.
struct FoundTasks {
    tasks: Vec<Task>,
    hashes: Vec<String>,
    /// Per run: an index into `tasks`, or why the run is skipped.
    per_run: Vec<Result<usize, String>>,
}

/// Loads each folder of tasks once.
#[derive(Default)]
struct Loader {
    tasks: Vec<Task>,
    by_dir: HashMap<PathBuf, Vec<usize>>,
}

impl Loader {
    fn load(&mut self, dir: &Path) -> Result<Vec<usize>, loopvel_harness::task::TaskError> {
        if let Some(found) = self.by_dir.get(dir) {
            return Ok(found.clone());
        }
        let mut found = Vec::new();
        for t in discover(dir)? {
            self.tasks.push(t);
            found.push(self.tasks.len() - 1);
        }
        self.by_dir.insert(dir.to_path_buf(), found.clone());
        Ok(found)
    }

    fn named(&self, found: &[usize], name: &str) -> Option<usize> {
        found.iter().copied().find(|&i| self.tasks[i].name == name)
    }
}

/// The value of `--tasks` in a recorded command line.
fn tasks_flag(command: &str) -> Option<PathBuf> {
    let mut words = command.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--tasks" {
            return words.next().map(PathBuf::from);
        }
        if let Some(v) = w.strip_prefix("--tasks=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Each run's task: from `--tasks` when given; else from the folder the
/// database recorded it in (gone: an error naming it and the fix); for
/// databases from before loopvel recorded folders, from the recorded command's
/// `--tasks`, then `tasks/examples` (the old default).
fn find_tasks(args: &ReplayArgs, src: &Store, runs: &[StoredRun]) -> Result<FoundTasks, CliError> {
    let mut loader = Loader::default();
    let mut per_run = Vec::new();
    if let Some(dir) = &args.tasks {
        let found = loader.load(dir)?;
        for r in runs {
            per_run
                .push(loader.named(&found, &r.task).ok_or_else(|| format!("no task {} in {}", r.task, dir.display())));
        }
    } else {
        let recorded = src.task_dirs()?;
        let commands: HashMap<i64, String> = src.plans()?.into_iter().map(|p| (p.id, p.command)).collect();
        let fix = "give --tasks DIR: the task's folder, or a folder of tasks that holds it";
        for r in runs {
            if let Some(dir) = recorded.get(&(r.task.clone(), r.task_files_hash.clone())) {
                let dir = PathBuf::from(dir);
                if !dir.exists() {
                    return Err(CliError::Usage(format!(
                        "run {} ({} × {}): task {} was recorded in {}, which is gone; {fix}",
                        r.run_id,
                        r.task,
                        r.model,
                        r.task,
                        dir.display()
                    )));
                }
                let found = loader.load(&dir).map_err(|e| {
                    CliError::Usage(format!(
                        "run {}: task {} was recorded in {}, which no longer holds it ({e}); {fix}",
                        r.run_id,
                        r.task,
                        dir.display()
                    ))
                })?;
                per_run.push(
                    loader
                        .named(&found, &r.task)
                        .ok_or_else(|| format!("{} no longer holds task {}; {fix}", dir.display(), r.task)),
                );
                continue;
            }
            let mut looked = Vec::new();
            let candidates = commands.get(&r.plan_id).and_then(|c| tasks_flag(c)).into_iter();
            let mut index = None;
            for dir in candidates.chain(std::iter::once(PathBuf::from("tasks/examples"))) {
                if looked.contains(&dir) {
                    continue;
                }
                looked.push(dir.clone());
                if let Some(i) = loader.load(&dir).ok().and_then(|found| loader.named(&found, &r.task)) {
                    index = Some(i);
                    break;
                }
            }
            let Some(i) = index else {
                let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
                return Err(CliError::Usage(format!(
                    "run {} ({} × {}): {} does not record where task {}'s files are (recorded by an older \
                     loopvel), and it is not in {}; {fix}",
                    r.run_id,
                    r.task,
                    r.model,
                    args.db.display(),
                    r.task,
                    looked.join(" or ")
                )));
            };
            per_run.push(Ok(i));
        }
    }
    let hashes = loader.tasks.iter().map(task_hash).collect();
    Ok(FoundTasks { tasks: loader.tasks, hashes, per_run })
}

struct Job<'a> {
    source: &'a StoredRun,
    task: &'a Task,
    calls: Vec<Recording>,
    options: RunOptions,
    name: String,
    timing: Timing,
    unchanged: bool,
    plan: i64,
    task_id: i64,
    model_id: i64,
}

/// Replay; returns what happened (also printed).
pub fn run(args: &ReplayArgs, out: &mut impl Write) -> Result<ReplayResult, CliError> {
    if args.concurrency == 0 || args.concurrency > 64 {
        return Err(CliError::Usage(format!("--concurrency {}: give 1 to 64", args.concurrency)));
    }
    if args.test_time.is_some_and(|t| !(t.is_finite() && t >= 0.0)) {
        return Err(CliError::Usage("--test-time: give seconds ≥ 0".into()));
    }
    let speed = parse_pairs("--model-speed", &args.model_speed, true)?;
    let ttft = parse_pairs("--ttft", &args.ttft, false)?;
    let started = Instant::now();
    let src = Store::open_existing(&args.db)?;
    let runs: Vec<StoredRun> =
        src.read_runs()?.into_iter().filter(|r| args.models.is_empty() || args.models.contains(&r.model)).collect();
    let names: Vec<&str> = {
        let mut n: Vec<&str> = runs.iter().map(|r| r.model.as_str()).collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    for name in speed.keys().chain(ttft.keys()) {
        if !names.contains(&name.as_str()) {
            return Err(CliError::Usage(format!(
                "what-if names model {name:?}, which has no runs in {}; models: {}",
                args.db.display(),
                names.join(", ")
            )));
        }
    }
    let mut tasks = find_tasks(args, &src, &runs)?;
    let sandbox = Arc::new(super::sandbox::open(args.sandbox, &[&args.db, &args.into], "replay")?);
    super::prepare_python(&mut tasks.tasks)?;
    let dst = Arc::new(Store::open(&args.into)?);
    let _writer = dst.claim_writer()?;
    super::clean_up_after_a_kill(&dst, "replay")?;
    let interrupt = super::on_interrupt(dst.clone(), "replay")?;
    let any_what_if = !speed.is_empty() || !ttft.is_empty() || args.test_time.is_some();
    let mut skipped = Vec::new();
    let mut jobs = Vec::new();
    for (r, found) in runs.iter().zip(&tasks.per_run) {
        let (task, hash) = match found {
            Ok(i) => (&tasks.tasks[*i], &tasks.hashes[*i]),
            Err(why) => {
                skipped.push(format!("run {} ({} × {}): {why}", r.run_id, r.task, r.model));
                continue;
            }
        };
        if *hash != r.task_files_hash {
            skipped.push(format!(
                "run {} ({} × {}): the task's files in {} changed since the recording; replay needs the same files",
                r.run_id,
                r.task,
                r.model,
                task.dir.display()
            ));
            continue;
        }
        let Some(options) = src.plan_options(r.plan_id)?.as_deref().and_then(|o| recorded_options(o, &sandbox)) else {
            skipped.push(format!("run {}: its plan's options cannot be read", r.run_id));
            continue;
        };
        let mut calls = Vec::new();
        for (c, t) in src.run_calls(r.run_id)?.into_iter().zip(&r.turns) {
            let Ok(completion) = serde_json::from_str::<Completion>(&c.detail_json) else {
                skipped.push(format!("run {} turn {}: the recorded call cannot be read", r.run_id, c.turn));
                break;
            };
            calls.push(Recording { request_json: c.request_json, completion, usd: t.usd });
        }
        if calls.len() != r.turns.len() {
            continue;
        }
        let what_if =
            Timing { speed_factor: speed.get(&r.model).copied().unwrap_or(1.0), ttft_s: ttft.get(&r.model).copied() };
        let mut variants = vec![(r.model.clone(), Timing::default(), None, true)];
        if any_what_if {
            let mut label = Vec::new();
            if let Some(f) = speed.get(&r.model) {
                label.push(format!("x{f} speed"));
            }
            if let Some(t) = ttft.get(&r.model) {
                label.push(format!("TTFT {t} s"));
            }
            if let Some(t) = args.test_time {
                label.push(format!("tests {t} s"));
            }
            if !label.is_empty() {
                variants.push((format!("{} ({})", r.model, label.join(", ")), what_if, args.test_time, false));
            }
        }
        for (name, timing, test_s, unchanged) in variants {
            let mut options = options.clone();
            options.clock = Clock::Virtual { test_s };
            let key = format!("{:016x}", {
                let mut h = fnv1a(b"replay", FNV_OFFSET);
                h = fnv1a(args.db.display().to_string().as_bytes(), h);
                h = fnv1a(&r.plan_id.to_le_bytes(), h);
                fnv1a(name.as_bytes(), h)
            });
            // The source plan's options, so plans in DST compare as the recorded ones did.
            let options_json = src.plan_options(r.plan_id)?.unwrap_or_else(|| "replay".into());
            let plan = dst.plan(&key, &format!("replay of {} plan {}", args.db.display(), r.plan_id), &options_json)?;
            let task_id = dst.task(&task.name, hash, &task.prompt, &task.test)?;
            let dir = std::fs::canonicalize(&task.dir).unwrap_or_else(|_| task.dir.clone());
            dst.set_task_dir(task_id, &dir.display().to_string())?;
            let config = src.model_config(&r.model)?.unwrap_or_else(|| "{}".into());
            let model_id = dst.model(&name, &config)?;
            jobs.push(Job {
                source: r,
                task,
                calls: calls.clone(),
                options,
                name,
                timing,
                unchanged,
                plan,
                task_id,
                model_id,
            });
        }
    }
    if jobs.is_empty() {
        return Err(CliError::Usage(format!(
            "nothing to replay from {}: {}",
            args.db.display(),
            if skipped.is_empty() { "no finished runs".to_string() } else { skipped.join("; ") }
        )));
    }
    // Resume: runs already replayed into DST are kept, not played again.
    let mut already = 0usize;
    let mut done_by_plan: HashMap<i64, std::collections::HashSet<(i64, i64, u32)>> = HashMap::new();
    let mut pending = Vec::new();
    for job in jobs {
        let done = match done_by_plan.entry(job.plan) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(dst.finished_runs(job.plan, false)?),
        };
        if done.contains(&(job.task_id, job.model_id, job.source.replicate)) {
            already += 1;
        } else {
            pending.push(job);
        }
    }
    if already > 0 {
        skipped.push(format!(
            "{} already replayed into {} (kept; use a new --into to replay them again)",
            if already == 1 { "1 run was".to_string() } else { format!("{already} runs were") },
            args.into.display()
        ));
    }
    let jobs = pending;
    let total = jobs.len();
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Replayed>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..args.concurrency.min(total) {
            s.spawn(|| {
                while let Some(job) =
                    queue.lock().ok().filter(|_| !loopvel_sandbox::interrupted()).and_then(|mut q| q.pop_front())
                {
                    match replay_one(&dst, job) {
                        Ok(r) => results.lock().map(|mut v| v.push(r)).unwrap_or(()),
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(signal) = interrupt.signal() {
        return Err(CliError::Interrupted(
            signal,
            format!(
                "replay stopped by signal {signal}: the runs replayed are in {}; the same command plays the rest",
                args.into.display()
            ),
        ));
    }
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(CliError::Usage(format!("replay into {}: {e}", args.into.display())));
    }
    let mut runs = results.into_inner().unwrap_or_default();
    runs.sort_by_key(|r| (r.source_run, !r.unchanged));
    let result = ReplayResult { runs, skipped, elapsed_s: started.elapsed().as_secs_f64() };
    print(&result, args, out)?;
    Ok(result)
}

fn replay_one(dst: &Store, job: Job) -> Result<Replayed, String> {
    let run_id = dst
        .start_run(job.plan, job.task_id, job.model_id, job.source.replicate, job.options.sandbox.level().as_str())
        .map_err(|e| e.to_string())?;
    let responder = RunReplay::new(job.calls, job.timing);
    let grades: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let on_turn = |t: &loopvel_store::TurnRecord| {
        if let Ok(mut g) = grades.lock() {
            g.push(t.grade.clone());
        }
    };
    let rj = RunJob { task: job.task, responder: &responder, store: dst, run_id, options: &job.options };
    let mut summary = play_run(&rj, &on_turn);
    if summary.outcome == INTERRUPTED {
        dst.interrupt_run(run_id).map_err(|e| e.to_string())?;
        return Err(INTERRUPTED.into());
    }
    // Past the recording: where the recorded run itself ended in an error (a
    // provider error, a context overflow), the replay ends in that error too;
    // otherwise the run simply stops where the record stops.
    if summary.error.as_deref().is_some_and(|e| e.starts_with(PAST_THE_RECORDING)) {
        if job.source.outcome == "error" && summary.turns as usize == job.source.turns.len() {
            summary.error = Some("the recorded run ended in an error here".into());
        } else {
            summary.outcome = "fail".into();
            summary.stop_reason = "recording_ended".into();
        }
    }
    dst.finish_run(run_id, &summary).map_err(|e| e.to_string())?;
    let src = job.source;
    let now_grades = grades.into_inner().unwrap_or_default();
    let mut differences = Vec::new();
    if job.unchanged {
        if summary.outcome != src.outcome {
            differences.push(format!("outcome {} (recorded {})", summary.outcome, src.outcome));
        }
        if summary.turns as usize != src.turns.len() {
            differences.push(format!("{} (recorded {})", count(u64::from(summary.turns), "turn"), src.turns.len()));
        }
        for (i, (now, then)) in now_grades.iter().zip(src.turns.iter().map(|t| &t.grade)).enumerate() {
            if now != then {
                differences.push(format!("turn {} graded {now} (recorded {then})", i + 1));
            }
        }
        // Slow tests explain most divergences on a busy machine (timeouts, budget
        // stops moved), so say so where the re-run tests took far longer.
        let recorded_test_s: f64 = src.turns.iter().take(summary.turns as usize).map(|t| t.test_s).sum();
        if !differences.is_empty() && summary.test_s > 3.0 * recorded_test_s && summary.test_s - recorded_test_s > 1.0 {
            differences.push(format!(
                "the tests took {} here against {} recorded (a busy machine?)",
                seconds(summary.test_s),
                seconds(recorded_test_s)
            ));
        }
    }
    let request_note = if job.unchanged { responder.divergence() } else { None };
    Ok(Replayed {
        source_run: src.run_id,
        task: src.task.clone(),
        model: job.name,
        unchanged: job.unchanged,
        outcome: (src.outcome.clone(), summary.outcome.clone()),
        turns: (src.turns.len() as u32, summary.turns),
        time_to_pass_s: (src.time_to_pass_s, summary.time_to_pass_s),
        differences,
        request_note,
    })
}

fn print(result: &ReplayResult, args: &ReplayArgs, out: &mut impl Write) -> Result<(), CliError> {
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json!(result)).unwrap_or_default())?;
        return Ok(());
    }
    let unchanged: Vec<&Replayed> = result.runs.iter().filter(|r| r.unchanged).collect();
    let exact = unchanged.iter().filter(|r| r.differences.is_empty()).count();
    writeln!(
        out,
        "loopvel replay: {} from {} replayed into {} in {:.1} s (recorded replies, real tests, virtual clock)",
        count(result.runs.len() as u64, "run"),
        args.db.display(),
        args.into.display(),
        result.elapsed_s
    )?;
    writeln!(
        out,
        "unchanged replays that reproduce the record exactly (outcome, turns, every grade): {exact} of {}",
        unchanged.len()
    )?;
    for r in unchanged.iter().filter(|r| !r.differences.is_empty()) {
        let why = r.request_note.as_deref().map_or(String::new(), |n| format!(" (first difference: {n})"));
        writeln!(
            out,
            "  diverged: run {} ({} × {}): {}{why}",
            r.source_run,
            r.task,
            r.model,
            r.differences.join("; ")
        )?;
    }
    let notes = unchanged.iter().filter(|r| r.differences.is_empty() && r.request_note.is_some()).count();
    if notes > 0 {
        writeln!(out, "  {notes} exact runs saw test output that differs from the record in ways the grades ignore")?;
    }
    for s in &result.skipped {
        writeln!(out, "  skipped: {s}")?;
    }
    let changed: Vec<&Replayed> = result.runs.iter().filter(|r| !r.unchanged).collect();
    if !changed.is_empty() {
        writeln!(
            out,
            "what-if runs: {} (see them beside the originals: loopvel report --db {})",
            changed.len(),
            args.into.display()
        )?;
    }
    Ok(())
}
