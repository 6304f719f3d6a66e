//! One simulated run of a policy: turns on a clock, with sampled times, task
//! difficulty, flaky tests, thrash, rate limits and budgets.
//!
//! Semantics, decided once and documented here:
//! * A turn is: overhead, then generation of `k` candidates (in waves of
//!   `max_concurrent`, each request waiting for the model's rate limit), then
//!   tests. The turn's generation ends with its slowest candidate.
//! * Budgets are checked after each turn. A pass counts only if its tests
//!   finish within `max_wall_s`; otherwise the run is censored at the wall
//!   budget. A failing run stops at the first budget it has reached
//!   (turns, then wall, then cost); a started turn is always paid in full.
//! * `flaky`: a correct solution still fails a test run with this chance; the
//!   code stays correct, so the next turn re-runs it.
//! * `thrash` (hazard quality): the turn cannot pass and a correct solution
//!   is broken; (tests quality): the turn fixes nothing and one passing test fails again.
//! * Escalation carries the code over: with `tests` quality on both sides the
//!   failing tests carry over; otherwise the new model makes its first attempt.
//! * A race runs both loops on the same task, each with its own task draw
//!   (independent, as in `calc`) and the run's budgets; the loser's turns that
//!   started before the winner passed are paid.

use rand::Rng;
use rand_distr::{Binomial, Distribution};

use crate::sampler::{unit, Sampler};
use crate::spec::{Quality, SimLoop, SimModel};
use crate::stats::{RunRecord, Stop};

/// The entry for overall turn `turn` (1-based) of a per-turn list, the last
/// one past its end; `None` for an empty list.
fn by_turn<T>(list: &[T], turn: u32) -> Option<&T> {
    list.get((turn.max(1) as usize - 1).min(list.len().saturating_sub(1)))
}

/// A model ready to simulate.
#[derive(Debug, Clone)]
pub struct ModelRt {
    ttft: Sampler,
    prefill_tokens_per_s: Option<f64>,
    ttft_by_turn: Vec<Sampler>,
    tokens_per_s_by_turn: Vec<Sampler>,
    tokens_per_s: Sampler,
    output_tokens: Sampler,
    output_tokens_on_pass: Option<Sampler>,
    input_tokens: f64,
    input_growth_tokens: f64,
    usd_per_in: f64,
    usd_per_out: f64,
    quality: QualityRt,
    thrash: f64,
    min_request_gap_s: f64,
    max_concurrent: u32,
}

#[derive(Debug, Clone)]
enum QualityRt {
    Hazard { p_first: Sampler, p_retry: Sampler, ceiling: f64 },
    Tests { first_score: Sampler, r: Sampler, ceiling: f64 },
}

impl ModelRt {
    /// Time to first token of an attempt whose prompt is `input` tokens:
    /// a draw of the part that does not grow with the prompt, plus the
    /// prompt's prefill at the model's prefill speed.
    fn first_token_s<R: Rng + ?Sized>(&self, rng: &mut R, turn: u32, input: f64) -> f64 {
        let fixed = by_turn(&self.ttft_by_turn, turn).unwrap_or(&self.ttft).sample(rng).max(0.0);
        match self.prefill_tokens_per_s {
            Some(p) => fixed + input / p,
            None => fixed,
        }
    }

    /// The decode speed's sampler on overall turn `turn`.
    fn speed(&self, turn: u32) -> &Sampler {
        by_turn(&self.tokens_per_s_by_turn, turn).unwrap_or(&self.tokens_per_s)
    }

    /// The reply's length: `drawn` (from `output_tokens`), or, for an attempt
    /// that passes when passing replies have their own length, a draw of that.
    fn reply_tokens<R: Rng + ?Sized>(&self, rng: &mut R, drawn: f64, correct: bool) -> f64 {
        match &self.output_tokens_on_pass {
            Some(on_pass) if correct => on_pass.sample(rng).max(0.0),
            _ => drawn,
        }
    }

    /// Build samplers for a model.
    pub fn new(m: &SimModel) -> Self {
        ModelRt {
            ttft: Sampler::new(&m.ttft_s),
            prefill_tokens_per_s: m.prefill_tokens_per_s.filter(|p| *p > 0.0 && p.is_finite()),
            ttft_by_turn: m.ttft_by_turn.iter().map(Sampler::new).collect(),
            tokens_per_s_by_turn: m.tokens_per_s_by_turn.iter().map(Sampler::new).collect(),
            output_tokens_on_pass: m.output_tokens_on_pass.as_ref().map(Sampler::new),
            tokens_per_s: Sampler::new(&m.tokens_per_s),
            output_tokens: Sampler::new(&m.output_tokens),
            input_tokens: m.input_tokens,
            input_growth_tokens: m.input_growth_tokens,
            // Cached input blended into one input price, as calc does.
            usd_per_in: ((1.0 - m.cached_share) * m.usd_per_mtok_in + m.cached_share * m.usd_per_mtok_cached_in) / 1e6,
            usd_per_out: m.usd_per_mtok_out / 1e6,
            quality: match &m.quality {
                Quality::Hazard { p_first, p_retry, ceiling } => QualityRt::Hazard {
                    p_first: Sampler::new(p_first),
                    p_retry: Sampler::new(p_retry),
                    ceiling: *ceiling,
                },
                Quality::Tests { first_score, r, ceiling } => {
                    QualityRt::Tests { first_score: Sampler::new(first_score), r: Sampler::new(r), ceiling: *ceiling }
                }
            },
            thrash: m.thrash,
            min_request_gap_s: m.rate_limit_rps.map_or(0.0, |rps| 1.0 / rps),
            max_concurrent: m.max_concurrent.unwrap_or(u32::MAX).max(1),
        }
    }

    /// Whether this model reports a score per turn.
    pub fn has_scores(&self) -> bool {
        matches!(self.quality, QualityRt::Tests { .. })
    }

    fn draw_task<R: Rng + ?Sized>(&self, rng: &mut R) -> Task {
        match &self.quality {
            QualityRt::Hazard { p_first, p_retry, ceiling } => Task {
                solvable: *ceiling >= 1.0 || unit(rng) < *ceiling,
                first: p_first.sample(rng).clamp(0.0, 1.0),
                retry: p_retry.sample(rng).clamp(0.0, 1.0),
            },
            QualityRt::Tests { first_score, r, ceiling } => Task {
                solvable: *ceiling >= 1.0 || unit(rng) < *ceiling,
                first: first_score.sample(rng).clamp(0.0, 1.0),
                retry: r.sample(rng).clamp(0.0, 1.0),
            },
        }
    }
}

/// The loop ready to simulate.
#[derive(Debug, Clone)]
pub struct LoopRt {
    test_s: Sampler,
    overhead_s: f64,
    /// Turn budget.
    pub max_turns: u32,
    /// Number of tests.
    pub tests: u32,
    parallel_tests: bool,
    flaky: f64,
    max_wall_s: f64,
    max_usd: f64,
    restart_after: Option<u32>,
}

impl LoopRt {
    /// Build samplers for the loop.
    pub fn new(l: &SimLoop) -> Self {
        LoopRt {
            test_s: Sampler::new(&l.test_s),
            overhead_s: l.overhead_s,
            max_turns: l.max_turns,
            tests: l.tests,
            parallel_tests: l.parallel_tests,
            flaky: l.flaky,
            max_wall_s: l.max_wall_s.unwrap_or(f64::INFINITY),
            max_usd: l.max_usd.unwrap_or(f64::INFINITY),
            restart_after: l.restart_after.filter(|k| *k > 0),
        }
    }
}

/// One task as one model sees it: solvable at all, and its two per-turn chances
/// (hazard: `p_first`, `p_retry`; tests: `first_score`, `r`).
#[derive(Debug, Clone, Copy)]
struct Task {
    solvable: bool,
    first: f64,
    retry: f64,
}

/// The state of one loop on the clock.
#[derive(Debug, Clone)]
struct LoopState {
    t: f64,
    usd: f64,
    wait_s: f64,
    turns: u32,
    model_turns: u32,
    /// Turns in the current conversation (all of them unless the loop restarts).
    conv_turns: u32,
    /// Restarts so far.
    restarts: u32,
    /// Tests quality: failing tests of the kept code; `None` before the first attempt.
    failing: Option<u32>,
    /// Hazard quality: the kept code is correct (it failed only by flakiness).
    solved: bool,
    next_request_s: f64,
    best_passing: Option<u32>,
    stop: Option<Stop>,
}

impl LoopState {
    fn new() -> Self {
        LoopState {
            t: 0.0,
            usd: 0.0,
            wait_s: 0.0,
            turns: 0,
            model_turns: 0,
            conv_turns: 0,
            restarts: 0,
            failing: None,
            solved: false,
            next_request_s: 0.0,
            best_passing: None,
            stop: None,
        }
    }
}

/// Reusable buffers of one worker, so that runs allocate nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Passing-test counts after each turn of the current run.
    pub scores: Vec<u32>,
    turns_a: Vec<(f64, f64)>,
    turns_b: Vec<(f64, f64)>,
}

fn binomial<R: Rng + ?Sized>(rng: &mut R, n: u32, p: f64) -> u32 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(u64::from(n), p).map_or(0, |b| b.sample(rng) as u32)
}

/// One turn of `model` with `k` candidates. Returns whether it passed.
#[allow(clippy::too_many_arguments)]
fn turn<R: Rng + ?Sized>(
    model: &ModelRt,
    task: &Task,
    lp: &LoopRt,
    k: u32,
    st: &mut LoopState,
    rng: &mut R,
    scores: &mut Vec<u32>,
    started: &mut Vec<(f64, f64)>,
) -> bool {
    let start = st.t;
    // The prompt, and the times that follow it, are those of the turn's place in
    // its conversation: the overall turn, unless a restart began a new one.
    let turn_no = if lp.restart_after.is_some() { st.conv_turns + 1 } else { st.turns + 1 };
    let first_of_model = st.model_turns == 0;
    let input = model.input_tokens + model.input_growth_tokens * f64::from(turn_no - 1);
    let mut usd = 0.0;

    // Generation: candidates in waves of max_concurrent, each request waiting for the rate limit.
    let mut wave_start = start + lp.overhead_s;
    let mut wave_end = wave_start;
    let mut in_wave = 0;
    // Outcome of the best candidate so far.
    let mut best_failing = u32::MAX; // tests quality
    let mut any_correct = false; // hazard quality
                                 // Serial tests need each candidate's correctness in order; k ≤ 64 fits a bitmask.
    let k = k.clamp(1, 64);
    let mut correct_in_order: u64 = 0;
    let serial = !lp.parallel_tests && k > 1;
    for c in 0..k {
        if in_wave == model.max_concurrent {
            wave_start = wave_end;
            in_wave = 0;
        }
        let request = wave_start.max(st.next_request_s);
        st.wait_s += request - wave_start;
        st.next_request_s = request + model.min_request_gap_s;
        let out = model.output_tokens.sample(rng).max(0.0);
        let ttft = model.first_token_s(rng, turn_no, input);
        let speed = model.speed(turn_no).sample(rng).max(1e-9);

        let thrash = model.thrash > 0.0 && unit(rng) < model.thrash;
        let correct = match &model.quality {
            QualityRt::Hazard { .. } => {
                if thrash {
                    false
                } else if st.solved {
                    true
                } else {
                    let p = if first_of_model { task.first } else { task.retry };
                    task.solvable && unit(rng) < p
                }
            }
            QualityRt::Tests { .. } => {
                let failing = match st.failing {
                    None => binomial(rng, lp.tests, 1.0 - task.first),
                    Some(f) if thrash => (f + 1).min(lp.tests),
                    Some(f) => f - binomial(rng, f, task.retry),
                };
                let failing = if task.solvable { failing } else { failing.max(1.min(lp.tests)) };
                best_failing = best_failing.min(failing);
                failing == 0
            }
        };
        let out = model.reply_tokens(rng, out, correct);
        let gen = ttft + out / speed;
        wave_end = wave_end.max(request + gen);
        in_wave += 1;
        usd += input * model.usd_per_in + out * model.usd_per_out;
        any_correct |= correct;
        correct_in_order |= u64::from(correct) << c;
    }
    let generated = wave_end;

    // Tests: all candidates at once, or one after another until the first green.
    let mut passed = false;
    let mut end = generated;
    let mut flaked = false;
    if serial {
        for c in 0..k {
            end += lp.test_s.sample(rng).max(0.0);
            if correct_in_order >> c & 1 == 1 {
                if lp.flaky <= 0.0 || unit(rng) >= lp.flaky {
                    passed = true;
                    break;
                }
                flaked = true;
            }
        }
    } else {
        end += lp.test_s.sample(rng).max(0.0);
        if any_correct {
            if lp.flaky <= 0.0 || unit(rng) >= lp.flaky {
                passed = true;
            } else {
                flaked = true;
            }
        }
    }

    // Keep the best candidate's code.
    match &model.quality {
        QualityRt::Hazard { .. } => st.solved = any_correct,
        QualityRt::Tests { .. } => {
            st.failing = Some(best_failing);
            let seen_passing = if passed {
                lp.tests
            } else if flaked {
                lp.tests.saturating_sub(1)
            } else {
                lp.tests - best_failing
            };
            scores.push(seen_passing);
            st.best_passing = Some(st.best_passing.map_or(seen_passing, |b| b.max(seen_passing)));
        }
    }
    started.push((start, usd));
    st.t = end;
    st.usd += usd;
    st.turns += 1;
    st.model_turns += 1;
    st.conv_turns += 1;
    passed
}

/// Run turns of `model` until it passes, a budget stops it, or `until_turn` turns have been taken overall.
#[allow(clippy::too_many_arguments)]
fn run_model<R: Rng + ?Sized>(
    model: &ModelRt,
    task: &Task,
    lp: &LoopRt,
    k: u32,
    until_turn: u32,
    st: &mut LoopState,
    rng: &mut R,
    scores: &mut Vec<u32>,
    started: &mut Vec<(f64, f64)>,
) {
    while st.stop.is_none() && st.turns < until_turn {
        let passed = turn(model, task, lp, k, st, rng, scores, started);
        st.stop = if passed {
            Some(if st.t <= lp.max_wall_s { Stop::Passed } else { Stop::Wall })
        } else if st.turns >= lp.max_turns {
            Some(Stop::Turns)
        } else if st.t >= lp.max_wall_s {
            Some(Stop::Wall)
        } else if st.usd >= lp.max_usd {
            Some(Stop::Usd)
        } else {
            None
        };
        if let (None, Some(k)) = (st.stop, lp.restart_after) {
            // As the harness counts: the first turn sets the best state, then K turns without a pass.
            let length = if st.restarts == 0 { k + 1 } else { k };
            if st.conv_turns >= length {
                st.conv_turns = 0;
                st.model_turns = 0;
                st.restarts += 1;
            }
        }
    }
}

fn record(st: &LoopState, lp: &LoopRt) -> RunRecord {
    let stop = st.stop.unwrap_or(Stop::Turns);
    RunRecord {
        stop,
        turns: st.turns,
        wall_s: if stop == Stop::Wall { lp.max_wall_s.min(st.t) } else { st.t },
        usd: st.usd,
        wait_s: st.wait_s,
        best_passing: st.best_passing,
        turns_simulated: st.turns,
    }
}

/// A plain loop (`k = 1`) or best-of-`k`.
pub fn run_best_of<R: Rng + ?Sized>(
    model: &ModelRt,
    lp: &LoopRt,
    k: u32,
    rng: &mut R,
    scratch: &mut Scratch,
) -> RunRecord {
    play_best_of(model, lp, k, rng, scratch, true)
}

/// [`run_best_of`] forced onto the general path (tests compare it with the fast path).
#[doc(hidden)]
pub fn run_best_of_general<R: Rng + ?Sized>(
    model: &ModelRt,
    lp: &LoopRt,
    k: u32,
    rng: &mut R,
    scratch: &mut Scratch,
) -> RunRecord {
    play_best_of(model, lp, k, rng, scratch, false)
}

fn play_best_of<R: Rng + ?Sized>(
    model: &ModelRt,
    lp: &LoopRt,
    k: u32,
    rng: &mut R,
    scratch: &mut Scratch,
    fast_path: bool,
) -> RunRecord {
    scratch.scores.clear();
    scratch.turns_a.clear();
    let task = model.draw_task(rng);
    if fast_path && k == 1 && is_simple(model, lp) {
        return run_simple(model, &task, lp, rng);
    }
    let mut st = LoopState::new();
    run_model(model, &task, lp, k, lp.max_turns, &mut st, rng, &mut scratch.scores, &mut scratch.turns_a);
    record(&st, lp)
}

/// The common case the general turn handles with more bookkeeping than it
/// needs: one candidate, pass/fail quality, no thrash, no flakiness, no rate
/// limit, no wall or cost budget.
fn is_simple(model: &ModelRt, lp: &LoopRt) -> bool {
    matches!(model.quality, QualityRt::Hazard { .. })
        && model.thrash <= 0.0
        && model.min_request_gap_s <= 0.0
        && lp.flaky <= 0.0
        && lp.max_wall_s.is_infinite()
        && lp.max_usd.is_infinite()
        && lp.restart_after.is_none()
}

/// A plain loop under [`is_simple`]: the same draws in the same order as
/// [`turn`] (reply length, first-token time, speed, pass draw, test time), so
/// it gives exactly the same runs; a test holds the two paths together.
fn run_simple<R: Rng + ?Sized>(model: &ModelRt, task: &Task, lp: &LoopRt, rng: &mut R) -> RunRecord {
    let mut t = 0.0;
    let mut usd = 0.0;
    let mut solved = false;
    for turn_no in 1..=lp.max_turns {
        let input = model.input_tokens + model.input_growth_tokens * f64::from(turn_no - 1);
        let out = model.output_tokens.sample(rng).max(0.0);
        let ttft = model.first_token_s(rng, turn_no, input);
        let speed = model.speed(turn_no).sample(rng).max(1e-9);
        let correct = solved || {
            let p = if turn_no == 1 { task.first } else { task.retry };
            task.solvable && unit(rng) < p
        };
        let out = model.reply_tokens(rng, out, correct);
        let gen = ttft + out / speed;
        usd += input * model.usd_per_in + out * model.usd_per_out;
        // Same order of additions as `turn`, so the clocks agree to the last bit.
        t = (t + lp.overhead_s) + gen;
        t += lp.test_s.sample(rng).max(0.0);
        if correct {
            return RunRecord {
                stop: Stop::Passed,
                turns: turn_no,
                wall_s: t,
                usd,
                wait_s: 0.0,
                best_passing: None,
                turns_simulated: turn_no,
            };
        }
        solved = false;
    }
    RunRecord {
        stop: Stop::Turns,
        turns: lp.max_turns,
        wall_s: t,
        usd,
        wait_s: 0.0,
        best_passing: None,
        turns_simulated: lp.max_turns,
    }
}

/// `from` for `after` turns, then `to` for the rest of the budget.
pub fn run_escalate<R: Rng + ?Sized>(
    from: &ModelRt,
    to: &ModelRt,
    lp: &LoopRt,
    after: u32,
    rng: &mut R,
    scratch: &mut Scratch,
) -> RunRecord {
    scratch.scores.clear();
    scratch.turns_a.clear();
    let task_from = from.draw_task(rng);
    let task_to = to.draw_task(rng);
    let mut st = LoopState::new();
    run_model(
        from,
        &task_from,
        lp,
        1,
        after.min(lp.max_turns),
        &mut st,
        rng,
        &mut scratch.scores,
        &mut scratch.turns_a,
    );
    if st.stop.is_none() {
        st.model_turns = 0;
        if !(from.has_scores() && to.has_scores()) {
            // The new model cannot read a failing-test count it never had: it starts afresh.
            st.solved = st.failing == Some(0) || st.solved;
            st.failing = None;
        }
        run_model(to, &task_to, lp, 1, lp.max_turns, &mut st, rng, &mut scratch.scores, &mut scratch.turns_a);
    }
    record(&st, lp)
}

/// Two loops on the same task; the first green wins and the other stops.
pub fn run_race<R: Rng + ?Sized>(
    a: &ModelRt,
    b: &ModelRt,
    lp: &LoopRt,
    rng: &mut R,
    scratch: &mut Scratch,
) -> RunRecord {
    scratch.scores.clear();
    scratch.turns_a.clear();
    scratch.turns_b.clear();
    let task_a = a.draw_task(rng);
    let task_b = b.draw_task(rng);
    let mut sa = LoopState::new();
    let mut sb = LoopState::new();
    let mut scores_b = Vec::new();
    run_model(a, &task_a, lp, 1, lp.max_turns, &mut sa, rng, &mut scratch.scores, &mut scratch.turns_a);
    run_model(b, &task_b, lp, 1, lp.max_turns, &mut sb, rng, &mut scores_b, &mut scratch.turns_b);
    let (ra, rb) = (record(&sa, lp), record(&sb, lp));
    let pass_time = |r: &RunRecord| (r.stop == Stop::Passed).then_some(r.wall_s);
    let winner = match (pass_time(&ra), pass_time(&rb)) {
        (Some(x), Some(y)) => Some(if x <= y { (ra, x) } else { (rb, y) }),
        (Some(x), None) => Some((ra, x)),
        (None, Some(y)) => Some((rb, y)),
        (None, None) => None,
    };
    let paid_before = |turns: &[(f64, f64)], t: f64| turns.iter().filter(|(s, _)| *s < t).map(|(_, u)| u).sum::<f64>();
    let simulated = ra.turns + rb.turns;
    match winner {
        Some((w, t)) => RunRecord {
            stop: Stop::Passed,
            turns: w.turns,
            wall_s: t,
            usd: paid_before(&scratch.turns_a, t) + paid_before(&scratch.turns_b, t),
            wait_s: w.wait_s,
            best_passing: None,
            turns_simulated: simulated,
        },
        None => {
            let longer = if ra.wall_s >= rb.wall_s { ra } else { rb };
            let stop = if ra.stop == Stop::Wall || rb.stop == Stop::Wall { Stop::Wall } else { longer.stop };
            RunRecord {
                stop,
                turns: longer.turns,
                wall_s: ra.wall_s.max(rb.wall_s),
                usd: ra.usd + rb.usd,
                wait_s: ra.wait_s + rb.wait_s,
                best_passing: match (ra.best_passing, rb.best_passing) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                },
                turns_simulated: simulated,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Quality, SimLoop, SimModel};
    use loopvel_math::dist::Dist;
    use loopvel_math::ModelProfile;
    use rand::SeedableRng;

    #[test]
    fn the_fast_path_plays_exactly_the_runs_of_the_general_path() {
        let mut m = SimModel::from_profile(&ModelProfile::example());
        m.ttft_s = Dist::LogNormal { median: 1.0, p90: 2.0 };
        m.tokens_per_s = Dist::Gamma { mean: 100.0, sd: 20.0 };
        m.quality = Quality::Hazard {
            p_first: Dist::Beta { mean: 0.3, concentration: 2.0 },
            p_retry: Dist::constant(0.4),
            ceiling: 0.8,
        };
        let lp = SimLoop {
            test_s: Dist::Uniform { min: 1.0, max: 3.0 },
            ..SimLoop::from_profile(&loopvel_math::LoopProfile {
                test_s: 1.0,
                overhead_s: 0.5,
                max_turns: 10,
                tests: 10,
                parallel_tests: true,
            })
        };
        let (model, lp) = (ModelRt::new(&m), LoopRt::new(&lp));
        assert!(is_simple(&model, &lp));
        let mut scratch = Scratch::default();
        for seed in 0..2000 {
            let mut a = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut b = a.clone();
            let fast = run_best_of(&model, &lp, 1, &mut a, &mut scratch);
            let general = run_best_of_general(&model, &lp, 1, &mut b, &mut scratch);
            assert_eq!(fast, general, "seed {seed}");
        }
    }

    #[test]
    fn a_restart_gives_a_stuck_conversation_a_first_attempt_again() {
        // p_first 0.5, p_retry 0: a conversation that failed once never passes.
        // Restart after 1: conversations of 2, then 1, 1, 1, 1 turns over 6, so
        // turns 1, 3, 4, 5, 6 are first attempts: passes 1 − 0.5⁵ = 96.875%; without, 50%.
        let mut m = SimModel::from_profile(&ModelProfile::example());
        m.quality = Quality::Hazard { p_first: Dist::constant(0.5), p_retry: Dist::constant(0.0), ceiling: 1.0 };
        m.input_tokens = 1000.0;
        m.input_growth_tokens = 1000.0;
        m.prefill_tokens_per_s = Some(1000.0);
        let base = SimLoop::from_profile(&loopvel_math::LoopProfile {
            test_s: 1.0,
            overhead_s: 0.0,
            max_turns: 6,
            tests: 1,
            parallel_tests: true,
        });
        let model = ModelRt::new(&m);
        let mut scratch = Scratch::default();
        let mut rate = |restart_after: Option<u32>| {
            let lp = LoopRt::new(&SimLoop { restart_after, ..base.clone() });
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
            let runs = 200_000;
            let (mut passed, mut last_first_token) = (0u32, 0.0);
            for _ in 0..runs {
                let r = run_best_of(&model, &lp, 1, &mut rng, &mut scratch);
                passed += u32::from(r.stop == Stop::Passed);
            }
            // A restarted conversation's first turn waits for a first turn's prompt again.
            // A sixth turn: the fifth was the last of a conversation (restart) or not.
            let mut st = LoopState::new();
            st.turns = 5;
            st.conv_turns = if lp.restart_after.is_some() { 0 } else { 5 };
            let task = Task { solvable: true, first: 0.0, retry: 0.0 };
            turn(&model, &task, &lp, 1, &mut st, &mut rng, &mut Vec::new(), &mut Vec::new());
            last_first_token += st.t;
            (f64::from(passed) / f64::from(runs), last_first_token)
        };
        let (with, fresh_turn_s) = rate(Some(1));
        let (without, sixth_turn_s) = rate(None);
        assert!((with - 0.96875).abs() < 0.004, "{with}");
        assert!((without - 0.5).abs() < 0.004, "{without}");
        assert!(
            sixth_turn_s > fresh_turn_s + 4.0,
            "a sixth turn prefills 5,000 tokens more: {sixth_turn_s} vs {fresh_turn_s}"
        );
    }
}
