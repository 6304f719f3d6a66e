//! `loopvel worker`: claim pending runs from a shared database and play them.
//!
//! A worker holds each run it claims with a lease on the database's clock,
//! which a heartbeat extends; a worker that dies (a lost machine, `kill -9`)
//! stops extending it, and when it runs out any worker claims the run again
//! and plays it from its start, its partial turns discarded. SIGTERM or
//! SIGINT gives the runs in flight back to the queue at once.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loopvel_harness::plan::{task_hash, RecordedOptions};
use loopvel_harness::pool::{work_through, Next};
use loopvel_harness::run::{play_run, Clock, Live, RunJob};
use loopvel_harness::task::{discover, Task};
use loopvel_provider::{Limiter, ModelConfig, Secret};
use loopvel_record::Outcome;
use loopvel_store::{Claimed, RunSpec, Store};

use crate::cli::WorkerArgs;
use crate::commands::shown;
use crate::error::CliError;

/// This worker's name in the queue: host and process, and a random tag,
/// since containers can share a host name and a pid (each pid namespace
/// starts at 1), and two workers under one name would hold each other's runs.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // Randomness from the standard library's keyed hasher: no RNG crate needed for a tag.
    let tag = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), std::process::id());
    format!("{}:{}-{:04x}", host.trim(), std::process::id(), tag & 0xffff)
}

/// What a worker cannot get past: it gives the run back and stops, since
/// every run it claimed next would fail the same way.
fn refuse(store: &Store, run: i64, why: String, stop: &Mutex<Option<String>>) -> Next {
    let _ = store.release_run(run);
    if let Ok(mut s) = stop.lock() {
        s.get_or_insert(why);
    }
    Next::Stop
}

/// Find a run's task on this machine: in `--tasks`, else in the folder the
/// planner recorded; its files must be the plan's.
fn find_task(spec: &RunSpec, tasks: Option<&std::path::Path>) -> Result<Task, String> {
    let dir = match (tasks, &spec.task_dir) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(d)) => std::path::PathBuf::from(d).parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        (None, None) => return Err(format!("task {}: no --tasks, and the plan does not record its folder", spec.task)),
    };
    let found = discover(&dir).map_err(|e| format!("task {}: {e}", spec.task))?;
    let task = found.into_iter().find(|t| t.name == spec.task).ok_or_else(|| {
        format!("task {}: not in {}; give --tasks DIR with this machine's copy", spec.task, dir.display())
    })?;
    if task_hash(&task) != spec.files_hash {
        return Err(format!(
            "task {}: the files in {} differ from the plan's (hash {}); give this worker the plan's files",
            spec.task,
            task.dir.display(),
            spec.files_hash
        ));
    }
    Ok(task)
}

/// The model as the plan recorded it, with the key from this worker's environment.
fn find_model(spec: &RunSpec) -> Result<ModelConfig, String> {
    let mut model: ModelConfig = serde_json::from_str(&spec.model_json)
        .map_err(|e| format!("model {}: its recorded configuration cannot be read: {e}", spec.model))?;
    if let Some(var) = &model.api_key_env {
        let key = std::env::var(var)
            .map_err(|_| format!("model {}: set {var} in this worker's environment (its key)", spec.model))?;
        model.api_key = Some(Secret::new(key));
    }
    Ok(model)
}

/// Claim and play runs until the queue is empty (or, with --follow, a signal).
pub fn run(args: &WorkerArgs, out: &mut impl Write) -> Result<(), CliError> {
    if args.concurrency == 0 || args.concurrency > 1024 {
        return Err(CliError::Usage(format!("--concurrency {}: give 1 to 1024 runs at once", args.concurrency)));
    }
    if !(args.lease_s.is_finite() && (2.0..=86_400.0).contains(&args.lease_s)) {
        return Err(CliError::Usage(format!("--lease-s {}: give 2 to 86400 seconds", args.lease_s)));
    }
    let worker = worker_name();
    let store = Arc::new(Store::open(&args.db)?.write_as_worker(&worker));
    let sandbox = Arc::new(super::sandbox::open(args.sandbox, &[&args.db], "worker")?);
    let level = sandbox.level().as_str();
    let _ = loopvel_harness::workspace::sweep_stale();
    let _ = loopvel_sandbox::sweep_stale_cgroups();
    let name = worker.clone();
    let interrupt = super::on_interrupt_with(store.clone(), "worker", "given back to the queue", move |s: &Store| {
        s.release_worker(&name).unwrap_or(0)
    })?;
    let _ = writeln!(
        std::io::stderr(),
        "loopvel worker {worker}: claiming runs from {}, {} at once{}",
        shown(&args.db),
        args.concurrency,
        if args.follow { ", waiting for more when the queue is empty" } else { "" }
    );
    let in_flight: Mutex<HashSet<i64>> = Mutex::new(HashSet::new());
    let limiters: Mutex<HashMap<String, Arc<Limiter>>> = Mutex::new(HashMap::new());
    let tasks: Mutex<HashMap<(String, String), Task>> = Mutex::new(HashMap::new());
    let stop: Mutex<Option<String>> = Mutex::new(None);
    let (played, passed, given_back) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let errored = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The heartbeat: every third of the lease, extend it for the runs in flight.
        s.spawn(|| {
            let every = Duration::from_secs_f64(args.lease_s / 3.0);
            let mut last = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= every {
                    last = std::time::Instant::now();
                    let ids: Vec<i64> = in_flight.lock().map(|f| f.iter().copied().collect()).unwrap_or_default();
                    if let Err(e) = store.heartbeat(&worker, &ids, args.lease_s) {
                        let _ = writeln!(std::io::stderr(), "loopvel worker {worker}: heartbeat failed: {e}");
                    }
                }
            }
        });
        // One job per slot: each claims runs until the queue is empty.
        work_through((0..args.concurrency).collect(), args.concurrency, |_slot: usize| loop {
            if loopvel_sandbox::interrupted() || stop.lock().map_or(true, |s| s.is_some()) {
                return Next::Stop;
            }
            let claimed: Claimed = match store.claim_run(&worker, args.lease_s, level) {
                Ok(Some(c)) => c,
                // Nothing to claim: with --follow wait for more; else wait while
                // other workers hold runs (a dead one's come back when its lease
                // runs out), and stop when none is held.
                Ok(None) if args.follow || store.held_by_workers().is_ok_and(|n| n > 0) => {
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                Ok(None) => return Next::Stop,
                Err(e) => {
                    if let Ok(mut s) = stop.lock() {
                        s.get_or_insert(e.to_string());
                    }
                    return Next::Stop;
                }
            };
            let run = claimed.run_id;
            if let Ok(mut f) = in_flight.lock() {
                f.insert(run);
            }
            let next = (|| {
                let spec = match store.run_spec(run) {
                    Ok(Some(spec)) => spec,
                    Ok(None) => return refuse(&store, run, format!("run {run} vanished from the database"), &stop),
                    Err(e) => return refuse(&store, run, e.to_string(), &stop),
                };
                let key = (spec.task.clone(), spec.files_hash.clone());
                let cached = tasks.lock().ok().and_then(|t| t.get(&key).cloned());
                let task = match cached {
                    Some(t) => t,
                    None => match find_task(&spec, args.tasks.as_deref()) {
                        Ok(t) => {
                            let mut one = vec![t];
                            if let Err(e) = super::prepare_python(&mut one) {
                                return refuse(&store, run, e.to_string(), &stop);
                            }
                            let t = one.remove(0);
                            if let Ok(mut c) = tasks.lock() {
                                c.insert(key, t.clone());
                            }
                            t
                        }
                        Err(why) => return refuse(&store, run, why, &stop),
                    },
                };
                let model = match find_model(&spec) {
                    Ok(m) => m,
                    Err(why) => return refuse(&store, run, why, &stop),
                };
                let Some(options) = RecordedOptions::parse(&spec.options_json) else {
                    return refuse(&store, run, format!("run {run}: its plan's options cannot be read"), &stop);
                };
                let options = options.with_arm_of(&spec.model_json).into_run_options(sandbox.clone(), Clock::Wall);
                let limiter = limiters
                    .lock()
                    .map(|mut l| {
                        l.entry(model.name.clone())
                            .or_insert_with(|| Arc::new(Limiter::new(model.max_concurrent, model.rps)))
                            .clone()
                    })
                    .unwrap_or_else(|_| Arc::new(Limiter::new(model.max_concurrent, model.rps)));
                let live = Live { model: &model, limiter: &limiter };
                let job = RunJob { task: &task, responder: &live, store: &store, run_id: run, options: &options };
                let summary = play_run(&job, &|_| {});
                if summary.outcome == Outcome::Interrupted {
                    let _ = store.release_run(run);
                    given_back.fetch_add(1, Ordering::SeqCst);
                    return Next::Stop;
                }
                match store.finish_run(run, &summary) {
                    Ok(()) => {}
                    // Another worker plays it now (this one lost the database longer than its lease): theirs.
                    Err(loopvel_store::StoreError::Lost { .. }) => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "[{worker}] run {run}: claimed by another worker meanwhile; left to it"
                        );
                        return Next::Continue;
                    }
                    Err(e) => return refuse(&store, run, e.to_string(), &stop),
                }
                played.fetch_add(1, Ordering::SeqCst);
                match summary.outcome {
                    Outcome::Pass => {
                        passed.fetch_add(1, Ordering::SeqCst);
                    }
                    Outcome::Error => {
                        errored.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "[{worker}] {} × {} #{}: {}",
                    spec.task,
                    spec.model,
                    claimed.replicate + 1,
                    crate::render::run::outcome(&summary)
                );
                Next::Continue
            })();
            if let Ok(mut f) = in_flight.lock() {
                f.remove(&run);
            }
            if next == Next::Stop {
                return Next::Stop;
            }
        });
        done.store(true, Ordering::SeqCst);
    });
    let (played, passed, given_back) = (played.into_inner(), passed.into_inner(), given_back.into_inner());
    if let Some(signal) = interrupt.signal() {
        return Err(CliError::Interrupted(
            signal,
            format!("worker {worker} stopped by signal {signal}: played {played}, gave {given_back} back to the queue"),
        ));
    }
    if let Some(why) = stop.into_inner().unwrap_or(None) {
        return Err(CliError::CheckFailed(format!(
            "worker {worker} stopped after {played} run(s): {why} (the run was given back to the queue)"
        )));
    }
    writeln!(out, "worker {worker}: played {played} run(s), {passed} passed; the queue is empty")?;
    // As `run`: runs that ended in an error (a wrong key, no server) make the exit 3, so a Job shows it.
    let errored = errored.into_inner();
    if errored > 0 {
        return Err(CliError::SomeRunsErrored(format!(
            "worker {worker}: {errored} of {played} run(s) ended in an error; `loopvel status` and `loopvel export` \
             show them, and the next `run --enqueue` of the plan queues them again"
        )));
    }
    Ok(())
}
