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

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use loopvel_harness::pool::{work_through, Next};
use loopvel_harness::replaying::{build_jobs, locate_tasks, play_one, LocateError, Replayed, WhatIf};
use loopvel_math::units::count;
use loopvel_record::Run;
use loopvel_store::Store;
use serde_json::json;

use crate::cli::ReplayArgs;
use crate::error::CliError;

impl From<LocateError> for CliError {
    fn from(e: LocateError) -> Self {
        match e {
            LocateError::Task(e) => CliError::Task(e),
            LocateError::Missing(m) => CliError::Usage(m),
            LocateError::Store(e) => CliError::Store(e),
        }
    }
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
    let runs: Vec<Run> =
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
                crate::commands::shown(&args.db),
                names.join(", ")
            )));
        }
    }
    let mut tasks = locate_tasks(args.tasks.as_deref(), &args.db, &src, &runs)?;
    let sandbox = Arc::new(super::sandbox::open(args.sandbox, &[&args.db, &args.into], "replay")?);
    super::prepare_python(&mut tasks.tasks)?;
    let dst = Arc::new(Store::open(&args.into)?);
    let _writer = dst.claim_writer()?;
    super::clean_up_after_a_kill(&dst, "replay")?;
    let interrupt = super::on_interrupt(dst.clone(), "replay")?;
    let what_if = WhatIf { speed, ttft, test_s: args.test_time };
    let source = crate::commands::shown(&args.db).to_string();
    let (jobs, mut skipped) = build_jobs(&src, &dst, &source, &runs, &tasks, &what_if, &sandbox)?;
    if jobs.is_empty() {
        return Err(CliError::Usage(format!(
            "nothing to replay from {}: {}",
            crate::commands::shown(&args.db),
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
        if done.contains(&(job.task_id, job.model_id, job.replicate)) {
            already += 1;
        } else {
            pending.push(job);
        }
    }
    if already > 0 {
        skipped.push(format!(
            "{} already replayed into {} (kept; use a new --into to replay them again)",
            if already == 1 { "1 run was".to_string() } else { format!("{already} runs were") },
            crate::commands::shown(&args.into)
        ));
    }
    let jobs = pending;
    let results: Mutex<Vec<Replayed>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    work_through(jobs, args.concurrency, |job| match play_one(&dst, job) {
        Ok(r) => {
            results.lock().map(|mut v| v.push(r)).unwrap_or(());
            Next::Continue
        }
        Err(e) => {
            if let Ok(mut f) = failure.lock() {
                f.get_or_insert(e);
            }
            Next::Stop
        }
    });
    if let Some(signal) = interrupt.signal() {
        return Err(CliError::Interrupted(
            signal,
            format!(
                "replay stopped by signal {signal}: the runs replayed are in {}; the same command plays the rest",
                crate::commands::shown(&args.into)
            ),
        ));
    }
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(CliError::Usage(format!("replay into {}: {e}", crate::commands::shown(&args.into))));
    }
    let mut runs = results.into_inner().unwrap_or_default();
    runs.sort_by_key(|r| (r.source_run, !r.unchanged));
    let result = ReplayResult { runs, skipped, elapsed_s: started.elapsed().as_secs_f64() };
    print(&result, args, out)?;
    Ok(result)
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
        crate::commands::shown(&args.db),
        crate::commands::shown(&args.into),
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
            crate::commands::shown(&args.into)
        )?;
    }
    Ok(())
}
