//! Synthetic recorded runs for report tests and the report benchmark: runs
//! drawn from known loop parameters and written through the real store, as
//! `loopvel run` would write them. Test data only, never a default path.

use std::path::Path;

use loopvel_record::{Grade, Outcome, RunSummary, Turn};
use loopvel_store::{CallRecord, Store, TestRecord};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// One synthetic model.
pub struct SynthModel {
    pub name: &'static str,
    pub p_first: f64,
    pub p_retry: f64,
    pub ceiling: f64,
    pub ttft_s: f64,
    pub tokens_per_s: f64,
    pub output_tokens: u64,
    pub usd_per_turn: f64,
}

/// A fast, weaker model and a slow, stronger one.
pub fn two_models() -> Vec<SynthModel> {
    vec![
        SynthModel {
            name: "fast",
            p_first: 0.3,
            p_retry: 0.35,
            ceiling: 0.9,
            ttft_s: 0.2,
            tokens_per_s: 900.0,
            output_tokens: 400,
            usd_per_turn: 0.0004,
        },
        SynthModel {
            name: "smart",
            p_first: 0.6,
            p_retry: 0.3,
            ceiling: 0.95,
            ttft_s: 2.0,
            tokens_per_s: 60.0,
            output_tokens: 600,
            usd_per_turn: 0.02,
        },
    ]
}

/// Writes `runs_per_model` runs of each model on 10 tasks, at most `max_turns`
/// turns each; returns the number of turns written.
pub fn write(path: &Path, models: &[SynthModel], runs_per_model: u32, max_turns: u32, seed: u64) -> u64 {
    let store = Store::open(path).expect("open store");
    let plan = store.plan(&format!("synthetic-{seed}"), "synthetic", "{}").expect("plan");
    let tasks: Vec<i64> =
        (0..10).map(|i| store.task(&format!("task{i}"), "hash", "prompt", "pytest").expect("task")).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let lognormal = |median: f64, sigma: f64, rng: &mut Xoshiro256PlusPlus| {
        // Box–Muller: two uniforms → one standard normal.
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        median * (sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).exp()
    };
    let mut turns_written = 0;
    for m in models {
        let model = store.model(m.name, "{}").expect("model");
        for rep in 0..runs_per_model {
            let task = tasks[(rep % 10) as usize];
            let run = store.start_run(plan, task, model, rep, "bwrap").expect("start run");
            let solvable = rng.random::<f64>() < m.ceiling;
            let (mut wall, mut model_total, mut test_total, mut usd) = (0.0, 0.0, 0.0, 0.0);
            let mut passed_at = None;
            let mut score: f64 = rng.random::<f64>() * 0.5;
            for turn in 1..=max_turns {
                let ttft = lognormal(m.ttft_s, 0.3, &mut rng);
                let speed = lognormal(m.tokens_per_s, 0.2, &mut rng);
                let gen = m.output_tokens as f64 / speed;
                let test_s = lognormal(0.3, 0.1, &mut rng);
                let overhead = 0.002;
                let p = if turn == 1 { m.p_first } else { m.p_retry };
                let pass = solvable && rng.random::<f64>() < p;
                score = if pass { 1.0 } else { (score + (1.0 - score) * 0.3 * rng.random::<f64>()).min(0.95) };
                let turn_wall = ttft + gen + test_s + overhead;
                let t = Turn {
                    turn,
                    started_s: wall,
                    ttft_s: Some(ttft),
                    model_s: gen,
                    output_tokens: Some(m.output_tokens),
                    output_tokens_estimated: false,
                    input_tokens: Some(1000),
                    // Later turns repeat the first's prompt: a server that caches reads it back.
                    cached_input_tokens: Some(if turn > 1 { 800 } else { 0 }),
                    cache_write_tokens: None,
                    tokens_per_s: Some(speed),
                    retry_wait_s: 0.0,
                    edits_applied: 1,
                    edits_refused: 0,
                    refusals: Vec::new(),
                    test_s,
                    tests_passed: Some((score * 20.0).round() as u32),
                    tests_total: Some(20),
                    score: Some(score),
                    grade: if pass { Grade::Pass } else { Grade::Partial },
                    overhead_s: overhead,
                    wall_s: turn_wall,
                    usd: m.usd_per_turn,
                    usd_uncached: Some(if turn > 1 { m.usd_per_turn * 1.5 } else { m.usd_per_turn }),
                    events: Vec::new(),
                };
                let call = CallRecord {
                    request_json: "{}".into(),
                    reply_text: String::new(),
                    detail_json: "{}".into(),
                    candidates: Vec::new(),
                };
                let test = TestRecord {
                    exit_code: Some(i32::from(!pass)),
                    timed_out: false,
                    passed: t.tests_passed,
                    total: Some(20),
                    duration_s: test_s,
                    output: String::new(),
                };
                store.record_turn(run, &t, &call, Some(&test)).expect("record turn");
                turns_written += 1;
                wall += turn_wall;
                model_total += ttft + gen;
                test_total += test_s;
                usd += m.usd_per_turn;
                if pass {
                    passed_at = Some(turn);
                    break;
                }
            }
            let turns = passed_at.unwrap_or(max_turns);
            store
                .finish_run(
                    run,
                    &RunSummary {
                        outcome: if passed_at.is_some() { Outcome::Pass } else { Outcome::Fail },
                        stop_reason: if passed_at.is_some() { "pass".into() } else { "max_turns".into() },
                        turns,
                        time_to_pass_s: passed_at.map(|_| wall),
                        wall_s: wall,
                        model_s: model_total,
                        test_s: test_total,
                        overhead_s: 0.002 * f64::from(turns),
                        retry_wait_s: 0.0,
                        input_tokens: 1000 * u64::from(turns),
                        output_tokens: m.output_tokens * u64::from(turns),
                        usd,
                        error: None,
                    },
                )
                .expect("finish run");
        }
    }
    turns_written
}
