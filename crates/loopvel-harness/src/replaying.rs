//! Playing recorded runs again: finding their tasks, building one job per
//! run (and per what-if), and playing each through the same loop with its
//! recorded replies on a virtual clock (`loopvel replay`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use loopvel_math::units::{count, seconds};
use loopvel_provider::Completion;
use loopvel_record::{Grade, Outcome, Run, Turn};
use loopvel_sandbox::Sandbox;
use loopvel_store::{Store, StoreError};

use crate::plan::{replay_plan_key, task_hash, RecordedOptions};
use crate::replay::{Candidates, Recording, RunReplay, Timing, PAST_THE_RECORDING};
use crate::run::{play_run, Clock, RunJob, RunOptions, INTERRUPTED};
use crate::task::{discover, Task};

/// Why the recorded runs' tasks cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// A folder of tasks is not usable.
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
    /// A task's folder is gone or does not hold it; says the fix.
    #[error("{0}")]
    Missing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What-ifs: each named model's decode speed times a factor, its time to
/// first token set, every test run's time set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhatIf {
    /// Model name → speed factor.
    pub speed: HashMap<String, f64>,
    /// Model name → time to first token, s.
    pub ttft: HashMap<String, f64>,
    /// Every test run takes this long, s.
    pub test_s: Option<f64>,
}

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
    pub outcome: (Outcome, Outcome),
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

/// The task of each recorded run, loaded once per folder.
pub struct FoundTasks {
    /// The tasks found.
    pub tasks: Vec<Task>,
    /// Each task's files hash.
    pub hashes: Vec<String>,
    /// Per run: an index into `tasks`, or why the run is skipped.
    pub per_run: Vec<Result<usize, String>>,
}

/// Loads each folder of tasks once.
#[derive(Default)]
struct Loader {
    tasks: Vec<Task>,
    by_dir: HashMap<PathBuf, Vec<usize>>,
}

impl Loader {
    fn load(&mut self, dir: &Path) -> Result<Vec<usize>, crate::task::TaskError> {
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
pub fn locate_tasks(
    tasks_dir: Option<&Path>,
    source_db: &Path,
    src: &Store,
    runs: &[Run],
) -> Result<FoundTasks, LocateError> {
    let mut loader = Loader::default();
    let mut per_run = Vec::new();
    if let Some(dir) = tasks_dir {
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
                    return Err(LocateError::Missing(format!(
                        "run {} ({} × {}): task {} was recorded in {}, which is gone; {fix}",
                        r.run_id,
                        r.task,
                        r.model,
                        r.task,
                        dir.display()
                    )));
                }
                let found = loader.load(&dir).map_err(|e| {
                    LocateError::Missing(format!(
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
                return Err(LocateError::Missing(format!(
                    "run {} ({} × {}): {} does not record where task {}'s files are (recorded by an older \
                     loopvel), and it is not in {}; {fix}",
                    r.run_id,
                    r.task,
                    r.model,
                    loopvel_store::shown(&source_db.to_string_lossy()),
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

/// One recorded run to play again (once unchanged, once per what-if).
pub struct ReplayJob<'a> {
    source: &'a Run,
    task: &'a Task,
    calls: Vec<Recording>,
    candidates: Candidates,
    options: RunOptions,
    name: String,
    timing: Timing,
    unchanged: bool,
    /// The destination plan.
    pub plan: i64,
    /// The destination task.
    pub task_id: i64,
    /// The destination model (name, with what-ifs in it).
    pub model_id: i64,
    /// The replicate, as recorded.
    pub replicate: u32,
}

/// The jobs for `runs` (read from `src`, which `source` names), registered
/// in `dst`: one per run unchanged, and one more per run that a what-if
/// touches. Runs that cannot be replayed are skipped, with why.
pub fn build_jobs<'a>(
    src: &Store,
    dst: &Store,
    source: &str,
    runs: &'a [Run],
    tasks: &'a FoundTasks,
    what_if: &WhatIf,
    sandbox: &Arc<Sandbox>,
) -> Result<(Vec<ReplayJob<'a>>, Vec<String>), StoreError> {
    let (speed, ttft) = (&what_if.speed, &what_if.ttft);
    let any_what_if = !speed.is_empty() || !ttft.is_empty() || what_if.test_s.is_some();
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
        let arm_of = src.model_config(&r.model)?.unwrap_or_default();
        let recorded =
            src.plan_options(r.plan_id)?.as_deref().and_then(RecordedOptions::parse).map(|o| o.with_arm_of(&arm_of));
        let Some(options) = recorded.map(|o| o.into_run_options(sandbox.clone(), Clock::Wall)) else {
            skipped.push(format!("run {}: its plan's options cannot be read", r.run_id));
            continue;
        };
        let mut calls = Vec::new();
        for (c, t) in src.run_calls(r.run_id)?.into_iter().zip(&r.turns) {
            let Ok(completion) = serde_json::from_str::<Completion>(&c.detail_json) else {
                skipped.push(format!("run {} turn {}: the recorded call cannot be read", r.run_id, c.turn));
                break;
            };
            calls.push(Recording {
                request_json: c.request_json,
                completion,
                usd: t.usd,
                usd_uncached: t.usd_uncached.unwrap_or(t.usd),
            });
        }
        if calls.len() != r.turns.len() {
            continue;
        }
        // The replies of best-of-k turns, each candidate answered with its own.
        let mut candidates = Candidates::new();
        for c in src.run_candidates(r.run_id)? {
            let Ok(completion) = serde_json::from_str::<Completion>(&c.record.detail_json) else {
                skipped.push(format!("run {} turn {}: a recorded candidate cannot be read", r.run_id, c.turn));
                continue;
            };
            let request_json = (c.turn as usize)
                .checked_sub(1)
                .and_then(|i| calls.get(i))
                .map(|k| k.request_json.clone())
                .unwrap_or_default();
            candidates.entry(c.turn).or_default().insert(
                c.record.candidate,
                Recording { request_json, completion, usd: c.record.usd, usd_uncached: c.record.usd_uncached },
            );
        }
        let timing_if =
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
            if let Some(t) = what_if.test_s {
                label.push(format!("tests {t} s"));
            }
            if !label.is_empty() {
                variants.push((format!("{} ({})", r.model, label.join(", ")), timing_if, what_if.test_s, false));
            }
        }
        for (name, timing, test_s, unchanged) in variants {
            let mut options = options.clone();
            options.clock = Clock::Virtual { test_s };
            let key = replay_plan_key(source, r.plan_id, &name);
            // The source plan's options, so plans in DST compare as the recorded ones did.
            let options_json = src.plan_options(r.plan_id)?.unwrap_or_else(|| "replay".into());
            let plan = dst.plan(&key, &format!("replay of {source} plan {}", r.plan_id), &options_json)?;
            let task_id = dst.task(&task.name, hash, &task.prompt, &task.test)?;
            let dir = std::fs::canonicalize(&task.dir).unwrap_or_else(|_| task.dir.clone());
            dst.set_task_dir(task_id, &dir.display().to_string())?;
            let config = src.model_config(&r.model)?.unwrap_or_else(|| "{}".into());
            let model_id = dst.model(&name, &config)?;
            jobs.push(ReplayJob {
                source: r,
                task,
                calls: calls.clone(),
                candidates: candidates.clone(),
                options,
                name,
                timing,
                unchanged,
                plan,
                task_id,
                model_id,
                replicate: r.replicate,
            });
        }
    }
    Ok((jobs, skipped))
}

/// Play one replay job into `dst`: what happened, against the record. An
/// error (the store failed, or [`INTERRUPTED`]) stops the replay.
pub fn play_one(dst: &Store, job: ReplayJob) -> Result<Replayed, String> {
    let run_id = dst
        .start_run(job.plan, job.task_id, job.model_id, job.source.replicate, job.options.sandbox.level().as_str())
        .map_err(|e| e.to_string())?;
    let responder = RunReplay::new(job.calls, job.timing).with_candidates(job.candidates);
    let grades: Mutex<Vec<Grade>> = Mutex::new(Vec::new());
    let on_turn = |t: &Turn| {
        if let Ok(mut g) = grades.lock() {
            g.push(t.grade);
        }
    };
    let rj = RunJob { task: job.task, responder: &responder, store: dst, run_id, options: &job.options };
    let mut summary = play_run(&rj, &on_turn);
    if summary.outcome == Outcome::Interrupted {
        dst.interrupt_run(run_id).map_err(|e| e.to_string())?;
        return Err(INTERRUPTED.into());
    }
    // Past the recording: where the recorded run itself ended in an error (a
    // provider error, a context overflow), the replay ends in that error too;
    // otherwise the run simply stops where the record stops.
    if summary.error.as_deref().is_some_and(|e| e.starts_with(PAST_THE_RECORDING)) {
        if job.source.outcome == Outcome::Error && summary.turns as usize == job.source.turns.len() {
            summary.error = Some("the recorded run ended in an error here".into());
        } else {
            summary.outcome = Outcome::Fail;
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
        outcome: (src.outcome, summary.outcome),
        turns: (src.turns.len() as u32, summary.turns),
        time_to_pass_s: (src.time_to_pass_s, summary.time_to_pass_s),
        differences,
        request_note,
    })
}
