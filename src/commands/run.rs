//! `loopvel run`: tasks × models × replicates through real fix-until-green loops.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use loopvel_harness::plan::{self, plan_key, task_hash, PendingRun};
use loopvel_harness::pool::{work_through, Next};
use loopvel_harness::replay::{Recording, ReplayIndex};
use loopvel_harness::run::{play_run_observed, Clock, History, Live, Responder, RunJob, RunOptions};
use loopvel_harness::task::discover;
use loopvel_math::units::{count, seconds};
use loopvel_provider::Limiter;
use loopvel_store::Store;

use crate::cli::{FeedbackArg, FilesArg, RunArgs};
use crate::error::CliError;
use loopvel_harness::design::{Feedback, FilesShown, LoopDesign, MAX_CANDIDATES};

/// Every recorded call of `model` in `db`, keyed for a replay model.
fn replay_index(db: &std::path::Path, model: &str) -> Result<ReplayIndex, CliError> {
    let store = Store::open_existing(db)?;
    let mut index = ReplayIndex::new(&crate::commands::shown(db).to_string());
    for r in store.read_runs()?.into_iter().filter(|r| r.model == model) {
        // A best-of-k turn recorded k replies to its request: each answers one ask
        // (its kept one among them, so the call row is not added again).
        let candidates = store.run_candidates(r.run_id)?;
        let calls = store.run_calls(r.run_id)?;
        for c in &candidates {
            let request = calls.iter().find(|k| k.turn == c.turn).map(|k| k.request_json.clone());
            if let (Some(request_json), Ok(completion)) = (request, serde_json::from_str(&c.record.detail_json)) {
                let (usd, usd_uncached) = (c.record.usd, c.record.usd_uncached);
                index.insert(&r.task, model, Recording { request_json, completion, usd, usd_uncached });
            }
        }
        for (c, t) in calls.into_iter().zip(&r.turns) {
            if candidates.iter().any(|k| k.turn == c.turn) {
                continue;
            }
            if let Ok(completion) = serde_json::from_str(&c.detail_json) {
                index.insert(
                    &r.task,
                    model,
                    Recording {
                        request_json: c.request_json,
                        completion,
                        usd: t.usd,
                        usd_uncached: t.usd_uncached.unwrap_or(t.usd),
                    },
                );
            }
        }
    }
    if index.is_empty() {
        return Err(CliError::Usage(format!(
            "--model replay:{}#{model}: no recorded calls of {model} in {}",
            crate::commands::shown(db),
            crate::commands::shown(db)
        )));
    }
    Ok(index)
}

/// The causes of runs' errors, most frequent first: `3 × fake: HTTP 401 from
/// http://…: bad key; 1 × connection to …`. At most five, then how many more.
fn causes(errors: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match counts.iter_mut().find(|(c, _)| c == e) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.clone(), 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let mut parts: Vec<String> = counts.iter().take(5).map(|(c, n)| format!("{n} × {c}")).collect();
    if counts.len() > 5 {
        parts.push(format!("{} other causes", counts.len() - 5));
    }
    parts.join("; ")
}

fn check(args: &RunArgs) -> Result<(), CliError> {
    let bad = |m: String| Err(CliError::Usage(m));
    if args.runs == 0 {
        return bad("--runs 0: give at least 1 run per task and model".into());
    }
    if args.max_turns == 0 {
        return bad("--max-turns 0: give at least 1 turn".into());
    }
    if args.concurrency == 0 || args.concurrency > 1024 {
        return bad(format!("--concurrency {}: give 1 to 1024 loops at once", args.concurrency));
    }
    let designed = !matches!(args.feedback, crate::cli::FeedbackArg::Raw)
        || !matches!(args.files, crate::cli::FilesArg::All)
        || args.restart_after.is_some()
        || args.candidates.is_some()
        || args.history != History::Full;
    if !args.arms.is_empty() && designed {
        return bad("--arm sets the loop design of each arm; give --history, --feedback, --files, --restart-after \
             and --candidates inside the arms instead (--arm NAME:history=last,feedback=failures)"
            .into());
    }
    if matches!(args.files, crate::cli::FilesArg::Changed) && args.history != History::Full {
        return bad(format!(
            "--files changed needs --history full (with {} the files the model saw leave its context); use \
             --files all or --history full",
            args.history.name()
        ));
    }
    if args.restart_after == Some(0) {
        return bad("--restart-after 0: give 1 or more turns, or leave it out".into());
    }
    if let Some(k) = args.candidates.filter(|k| !(1..=MAX_CANDIDATES).contains(k)) {
        return bad(format!("--candidates {k}: give 1 to {MAX_CANDIDATES} replies a turn"));
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.max_wall_s.is_some_and(|w| !positive(w)) || args.max_usd.is_some_and(|u| !positive(u)) {
        return bad("--max-wall-s and --max-usd must be > 0".into());
    }
    Ok(())
}

/// Run the plan, resuming what an earlier run of the same plan finished.
/// Between a model's name and its arm's in a variant's label (`qwen-1.5b / lean`):
/// reports split labels here to count models, not arms.
pub(crate) const ARM_SEPARATOR: &str = " / ";

pub fn run(args: &RunArgs, out: &mut impl Write) -> Result<(), CliError> {
    check(args)?;
    let mut tasks = discover(&args.tasks)?;
    let models = crate::config::resolve_models(args.config.as_deref(), &args.models)?;
    let config = super::sandbox::config_to_hide(args.config.as_deref());
    let mut hide: Vec<&std::path::Path> = vec![&args.db];
    hide.extend(config.as_deref());
    let sandbox = Arc::new(super::sandbox::open(args.sandbox, &hide, "run")?);
    super::prepare_python(&mut tasks)?;
    let level = sandbox.level().as_str();
    let design = LoopDesign {
        feedback: match args.feedback {
            FeedbackArg::Raw => Feedback::Raw,
            FeedbackArg::Failures => Feedback::Failures,
            FeedbackArg::Targeted => Feedback::Targeted,
        },
        files: match args.files {
            FilesArg::All => FilesShown::All,
            FilesArg::Changed => FilesShown::Changed,
        },
        restart_after: args.restart_after,
        candidates: args.candidates.filter(|&k| k > 1),
        ..LoopDesign::default()
    };
    let options = RunOptions {
        max_turns: args.max_turns,
        max_wall_s: args.max_wall_s,
        max_usd: args.max_usd,
        history: args.history,
        feedback_bytes: args.feedback_bytes,
        design,
        sandbox: sandbox.clone(),
        clock: Clock::Wall,
    };
    // Arms: every model once per loop design, labelled `MODEL / ARM`, each with its own options.
    let arms = crate::config::resolve_arms(args.config.as_deref(), &args.arms)?;
    let (models, model_options): (Vec<loopvel_provider::ModelConfig>, Vec<RunOptions>) = if arms.is_empty() {
        let n = models.len();
        (models, vec![options.clone(); n])
    } else {
        models
            .iter()
            .flat_map(|m| {
                arms.iter().map(|a| {
                    let mut variant = m.clone();
                    variant.name = format!("{}{ARM_SEPARATOR}{}", m.name, a.name);
                    let mut o = options.clone();
                    o.design = a.design.clone();
                    o.history = a.history;
                    (variant, o)
                })
            })
            .unzip()
    };
    let arm_json: Vec<Option<serde_json::Value>> = if arms.is_empty() {
        vec![None; models.len()]
    } else {
        (0..models.len()).map(|i| Some(arms[i % arms.len()].json())).collect()
    };
    let store = Arc::new(Store::open(&args.db)?);
    // One writer per database: a second `run` here would replay the same pending runs.
    // Enqueueing only adds pending rows, beside workers that may be playing others.
    // When no plain `run` writes the database, what a killed one left is
    // cleaned up (so enqueueing can queue it again); workers hold their own runs.
    let _writer = if args.enqueue { store.claim_writer().ok() } else { Some(store.claim_writer()?) };
    if _writer.is_some() {
        super::clean_up_after_a_kill(&store, "run")?;
    }
    // The plan: which tasks (by content), which models (config without keys), which options.
    let task_hashes: Vec<String> = tasks.iter().map(task_hash).collect();
    // A variant's configuration records its arm beside the model's.
    let model_json: Vec<String> = models
        .iter()
        .zip(&arm_json)
        .map(|(m, arm)| {
            let mut v = serde_json::to_value(m).unwrap_or_default();
            if let (Some(o), Some(a)) = (v.as_object_mut(), arm) {
                o.insert("arm".into(), a.clone());
            }
            serde_json::to_string(&v).unwrap_or_default()
        })
        .collect();
    let options_json = serde_json::to_string(&options).unwrap_or_default();
    let key = plan_key(&task_hashes, &model_json, &options_json);
    // As recorded in the database: a database URL's password never is.
    let command = std::env::args()
        .map(|w| match w.split_once('=') {
            Some((flag, url)) if flag.starts_with("--") => format!("{flag}={}", loopvel_store::shown(url)),
            _ => loopvel_store::shown(&w),
        })
        .collect::<Vec<_>>()
        .join(" ");
    if !store.has_plan(&key)? {
        // Said before the first request: a changed flag must not quietly split the database.
        let settings = super::plans::Settings::new(
            &options_json,
            models.iter().zip(&model_json).map(|(m, j)| (m.name.clone(), j.clone())),
            tasks.iter().zip(&task_hashes).map(|(t, h)| (t.name.clone(), h.clone())),
        );
        if let Some(notice) = super::plans::new_plan_notice(&store, &args.db, &settings)? {
            let _ = writeln!(std::io::stderr(), "{notice}");
        }
    }
    let registered = plan::register(
        &store,
        &key,
        &command,
        &options_json,
        &tasks.iter().zip(&task_hashes).map(|(t, h)| (t, h.as_str())).collect::<Vec<_>>(),
        &models.iter().zip(&model_json).map(|(m, j)| (m.name.as_str(), j.as_str())).collect::<Vec<_>>(),
    )?;
    let plan = registered.plan;
    // Runs queued for workers, or held by one, are theirs: a plain run (or
    // --fresh) would play or delete them under a live worker.
    let queued = store.queued_runs(plan)?;
    if queued > 0 && (args.fresh || !args.enqueue) {
        return Err(CliError::Usage(format!(
            "plan {plan} has {} queued for workers or held by one in {}; let `loopvel worker` play them (see \
             `loopvel status`){}",
            count(queued as u64, "run"),
            crate::commands::shown(&args.db),
            if args.fresh { ", then start over with --fresh" } else { ", or add --enqueue to queue more" }
        )));
    }
    if args.fresh {
        store.clear_plan(plan)?;
    }
    let retry_errors = !args.no_retry_errors;
    if args.enqueue {
        // A worker reaches models over HTTP; a recording lives in a file on this machine.
        if let Some(m) = models.iter().find(|m| m.base_url.starts_with(crate::config::REPLAY_SCHEME)) {
            return Err(CliError::Usage(format!(
                "--model {}: a replay:DB#MODEL model answers from a file on this machine, which workers cannot \
                 reach; run it without --enqueue",
                m.name
            )));
        }
        let (pending, finished) = plan::pending(&store, &registered, args.runs, retry_errors)?;
        let mut queued = 0u64;
        for p in &pending {
            if store.enqueue_run(plan, p.task_id, p.model_id, p.replicate, retry_errors)? {
                queued += 1;
            }
        }
        let db = crate::commands::shown(&args.db);
        writeln!(
            out,
            "plan {plan}: {} queued in {db} ({finished} already done, {} already queued or held by a worker); \
             play them with `loopvel worker --db {db}` on any machine with the tasks, and follow with `loopvel \
             status --db {db}`",
            count(queued, "run"),
            pending.len() as u64 - queued
        )?;
        return Ok(());
    }
    let interrupt = super::on_interrupt(store.clone(), "run")?;
    let errors_before = store.run_errors(plan)?;
    let passed_before = store.passed_runs(plan)?;
    let (queue, skipped) = plan::pending(&store, &registered, args.runs, retry_errors)?;
    let queue = if args.shuffle { plan::shuffled(queue, &key) } else { queue };
    let total = tasks.len() * models.len() * args.runs as usize;
    let mut err = std::io::stderr();
    let tty = err.is_terminal();
    let _ = writeln!(
        err,
        "loopvel run: {} × {} × {} = {}{}; recording into {}",
        count(tasks.len() as u64, "task"),
        count(models.len() as u64, "model"),
        count(u64::from(args.runs), "run"),
        count(total as u64, "run"),
        if skipped > 0 { format!(" ({skipped} already done, resuming)") } else { String::new() },
        crate::commands::shown(&args.db)
    );
    if retry_errors && !errors_before.is_empty() {
        let _ = writeln!(
            err,
            "loopvel run: playing again {} that ended in an error before ({}); --no-retry-errors keeps them",
            count(errors_before.len() as u64, "run"),
            causes(&errors_before)
        );
    }
    let limiters: Vec<Limiter> = models.iter().map(|m| Limiter::new(m.max_concurrent, m.rps)).collect();
    // replay:DB#MODEL models answer from recorded calls; load each database once.
    let mut replays: Vec<Option<ReplayIndex>> = Vec::new();
    for m in &models {
        replays.push(match m.base_url.strip_prefix(crate::config::REPLAY_SCHEME) {
            Some(db) => Some(replay_index(std::path::Path::new(db), &m.model)?),
            None => None,
        });
    }
    let finished = AtomicUsize::new(skipped);
    let passed = AtomicUsize::new(passed_before);
    let started = Instant::now();
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let interrupted_runs = AtomicUsize::new(0);
    // On a terminal: a bar for the whole plan and a line per active loop.
    // Otherwise: a plain line per finished run (below).
    let bars =
        MultiProgress::with_draw_target(if tty { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    let overall = bars.add(ProgressBar::new(total as u64));
    overall.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs · {msg} · ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    overall.set_position(skipped as u64);
    overall.set_message(format!("{passed_before} passed"));
    let all_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Not on a terminal: besides a line per finished run, a status line every 30 s,
        // so a log shows the run is alive through long turns.
        if !tty {
            s.spawn(|| {
                let mut last = Instant::now();
                while !all_done.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if last.elapsed().as_secs() >= 30 {
                        last = Instant::now();
                        let _ = writeln!(
                            std::io::stderr(),
                            "… {}/{total} runs done, {} passed, {} elapsed",
                            finished.load(Ordering::SeqCst),
                            passed.load(Ordering::SeqCst),
                            seconds(started.elapsed().as_secs_f64())
                        );
                    }
                }
            });
        }
        work_through(queue, args.concurrency, |job: PendingRun| {
            let (task, model) = (&tasks[job.task], &models[job.model]);
            let run_id = match store.start_run(plan, job.task_id, job.model_id, job.replicate, level) {
                Ok(id) => id,
                Err(e) => {
                    first_error.lock().map(|mut f| f.get_or_insert(e.to_string()).clone()).ok();
                    return Next::Stop;
                }
            };
            let live = Live { model, limiter: &limiters[job.model] };
            let replayed = replays[job.model].as_ref().map(|idx| idx.for_run(&task.name, &model.model));
            let responder: &dyn Responder = match &replayed {
                Some(r) => r,
                None => &live,
            };
            let rj = RunJob { task, responder, store: &store, run_id, options: &model_options[job.model] };
            let label = format!("{} × {} #{}", task.name, model.name, job.replicate + 1);
            let line = bars.add(ProgressBar::new_spinner());
            line.set_message(format!("{label}: turn 1 …"));
            let on_turn = |t: &loopvel_record::Turn| {
                // After a PASS the run is done; otherwise another turn follows (if the budget allows).
                let then = if t.grade == loopvel_record::Grade::Pass { "done" } else { "next turn …" };
                line.set_message(format!(
                    "{label}: turn {} {} (score {}), {then}",
                    t.turn,
                    t.grade,
                    t.score.map_or("n/a".into(), |s| format!("{s:.2}"))
                ));
            };
            // Within a turn, on a terminal only: first token, tokens so far, tests.
            // Off a terminal, a wait of seconds or more gets a line of its own.
            let on_progress = |p: loopvel_harness::run::Progress| {
                if tty {
                    line.set_message(crate::render::run::progress(&label, p));
                } else if let loopvel_harness::run::Progress::Retrying { turn, wait } = &p {
                    if wait.wait_s >= 2.0 {
                        let _ = writeln!(
                            std::io::stderr(),
                            "… {label}: turn {turn}: {}",
                            crate::render::run::waiting(wait)
                        );
                    }
                }
            };
            let summary = play_run_observed(&rj, &on_turn, &on_progress);
            line.finish_and_clear();
            bars.remove(&line);
            if summary.outcome == loopvel_record::Outcome::Interrupted {
                interrupted_runs.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = store.interrupt_run(run_id) {
                    first_error.lock().map(|mut f| f.get_or_insert(e.to_string()).clone()).ok();
                }
                return Next::Stop;
            }
            if let Err(e) = store.finish_run(run_id, &summary) {
                first_error.lock().map(|mut f| f.get_or_insert(e.to_string()).clone()).ok();
                return Next::Stop;
            }
            let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
            if summary.outcome == loopvel_record::Outcome::Pass {
                passed.fetch_add(1, Ordering::SeqCst);
            }
            overall.inc(1);
            overall.set_message(format!("{} passed", passed.load(Ordering::SeqCst)));
            let elapsed = started.elapsed().as_secs_f64();
            let done_here = n - skipped;
            let eta = elapsed / done_here.max(1) as f64 * (total - n) as f64;
            // At --sandbox none every run says so: its result is only as true as its code was honest.
            let unconfined = if level == "none" { " [UNSANDBOXED: --sandbox none]" } else { "" };
            let text = format!(
                "[{n}/{total}] {label}: {}; {} passed so far; ETA {}{unconfined}",
                crate::render::run::outcome(&summary),
                passed.load(Ordering::SeqCst),
                seconds(eta)
            );
            if tty {
                let _ = bars.println(text);
            } else {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
            Next::Continue
        });
        all_done.store(true, Ordering::SeqCst);
    });
    overall.finish_and_clear();
    if let Some(signal) = interrupt.signal() {
        let done_now = finished.load(Ordering::SeqCst) - skipped;
        return Err(CliError::Interrupted(
            signal,
            format!(
                "stopped by signal {signal}: {} recorded this time; {} in flight marked interrupted and {} not \
                 started: the same command plays them",
                count(done_now as u64, "run"),
                count(interrupted_runs.load(Ordering::SeqCst) as u64, "run"),
                count(
                    (total - finished.load(Ordering::SeqCst) - interrupted_runs.load(Ordering::SeqCst)) as u64,
                    "run"
                )
            ),
        ));
    }
    // The database failed mid-plan (disk full, file removed): what was recorded stays; exit 1.
    if let Some(e) = first_error.lock().ok().and_then(|f| f.clone()) {
        return Err(CliError::CheckFailed(format!("recording into {} failed: {e}", crate::commands::shown(&args.db))));
    }
    let runs: Vec<loopvel_record::Run> = store.read_runs()?.into_iter().filter(|r| r.plan_id == plan).collect();
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let rows = loopvel_analysis::plan_table::plan_rows(&runs, &names);
    writeln!(out, "{}", crate::render::run::summary_table(&rows, crate::render::Layout::detect(args.wide)))?;
    // Judged on the plan's stored runs, not on this invocation's: a resume
    // that plays only the runs that errored before must not call a plan with
    // results "nothing measured", nor one that keeps errors (--no-retry-errors) clean.
    // All errors: nothing was measured (no server at the address, a refused
    // key), exit 1. Some: results with errors among them, exit 3.
    let plan_errors = store.run_errors(plan)?;
    let again = if retry_errors {
        "fix the cause, then run the same command: runs that ended in an error are played again"
    } else {
        "fix the cause, then run the same command without --no-retry-errors to play them again"
    };
    if !plan_errors.is_empty() && plan_errors.len() == runs.len() {
        return Err(CliError::CheckFailed(format!(
            "every run of this plan ({} of {}) ended in an error, so nothing was measured: {}. They are recorded \
             with outcome error; {again}",
            plan_errors.len(),
            runs.len(),
            causes(&plan_errors)
        )));
    }
    if !plan_errors.is_empty() {
        return Err(CliError::SomeRunsErrored(format!(
            "{} of {} of this plan ended in an error: {}. The rest are results; the errors are recorded with \
             outcome error and reported apart from passes and fails; {again}",
            plan_errors.len(),
            count(runs.len() as u64, "run"),
            causes(&plan_errors)
        )));
    }
    Ok(())
}
