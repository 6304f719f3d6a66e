//! Loop policies as exact timelines.
//!
//! A [`LoopSchedule`] lists the turns a loop may take: when each starts and
//! ends, what it costs, and the (unconditional) probability that the run
//! passes during it, at which instants. Every policy — plain loop, best-of-k,
//! escalate — is such a list; a race combines two. From a schedule follow its
//! success-by-time curve F(t) ([`StepCurve`]), its mean and quantile time to
//! pass, and its expected cost ([`Outcome`]), all as exact finite sums.
//!
//! Assumption, stated once: when two models meet in one policy (race,
//! escalate), whether each can solve a task is independent of the other, as
//! in the race formula `F(t) = 1 − (1 − F_A(t))(1 − F_B(t))`. When hard tasks
//! are hard for every model this is optimistic; the simulator models task
//! heterogeneity for that case.

use serde::Serialize;

use crate::cycle::{elapsed_s, generation_s, generation_s_at};
use crate::hazard::PassModel;
use crate::{pow_q, LoopProfile, ModelProfile};

/// One turn of a loop on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledTurn {
    /// When the turn starts, seconds after the run starts.
    pub start_s: f64,
    /// When a failing turn ends, in seconds.
    pub end_s: f64,
    /// Cost of the turn when it is started, in US dollars.
    pub usd: f64,
    /// `(time_s, probability)`: the run passes at `time_s` during this turn
    /// with this unconditional probability.
    pub passes: Vec<(f64, f64)>,
}

/// A loop policy as a list of turns. Build one with [`LoopSchedule::plain`],
/// [`LoopSchedule::best_of`] or [`LoopSchedule::escalate`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoopSchedule {
    /// The turns, in order.
    pub turns: Vec<ScheduledTurn>,
}

/// A success-by-time curve: `F(t)` = probability the run has passed by time `t`.
/// A right-continuous step function given by its jumps.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StepCurve {
    /// `(time_s, F(time_s))` at each jump, times increasing.
    pub jumps: Vec<(f64, f64)>,
}

impl StepCurve {
    fn from_masses(mut masses: Vec<(f64, f64)>) -> Self {
        masses.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut jumps: Vec<(f64, f64)> = Vec::with_capacity(masses.len());
        let mut total = 0.0;
        for (t, p) in masses {
            if p <= 0.0 {
                continue;
            }
            total += p;
            match jumps.last_mut() {
                Some(last) if last.0 == t => last.1 = total,
                _ => jumps.push((t, total)),
            }
        }
        StepCurve { jumps }
    }

    /// `F(t)`: probability of having passed by `t` seconds.
    pub fn at(&self, t: f64) -> f64 {
        let idx = self.jumps.partition_point(|&(time, _)| time <= t);
        if idx == 0 {
            0.0
        } else {
            self.jumps[idx - 1].1
        }
    }

    /// Probability of passing at all (the curve's last value).
    pub fn final_value(&self) -> f64 {
        self.jumps.last().map_or(0.0, |j| j.1)
    }

    /// Mean time to pass among runs that pass, in seconds; `None` if none pass.
    pub fn mean_given_pass(&self) -> Option<f64> {
        let total = self.final_value();
        if total <= 0.0 {
            return None;
        }
        let mut prev = 0.0;
        let mut sum = 0.0;
        for &(t, f) in &self.jumps {
            sum += t * (f - prev);
            prev = f;
        }
        Some(sum / total)
    }

    /// The least jump time whose conditional CDF `F(t)/F(end)` reaches `level`.
    pub fn quantile_given_pass(&self, level: f64) -> Option<f64> {
        let total = self.final_value();
        if total <= 0.0 {
            return None;
        }
        self.jumps.iter().find(|&&(_, f)| f >= level * total * (1.0 - 1e-12)).map(|j| j.0)
    }

    /// The curve at each of `times`, as `[t, F(t)]` pairs.
    pub fn sample(&self, times: &[f64]) -> Vec<[f64; 2]> {
        times.iter().map(|&t| [t, self.at(t)]).collect()
    }
}

/// What a policy achieves: pass rate, time and cost. Times in seconds, costs in US dollars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Share of runs that pass within the budget.
    pub pass_rate: f64,
    /// Mean time to pass among runs that pass, seconds.
    pub mean_time_to_pass_s: Option<f64>,
    /// Median time to pass among runs that pass, seconds.
    pub p50_time_to_pass_s: Option<f64>,
    /// 90th percentile of time to pass among runs that pass, seconds.
    pub p90_time_to_pass_s: Option<f64>,
    /// Mean wall time of a run, passing or not, seconds.
    pub expected_wall_s: f64,
    /// Wall time spent per solved task, counting failed runs: `expected_wall_s / pass_rate`.
    pub time_per_solved_s: Option<f64>,
    /// Mean cost of a run, US dollars.
    pub usd_per_run: f64,
    /// Cost per solved task, counting failed runs: `usd_per_run / pass_rate`.
    pub usd_per_solved: Option<f64>,
    /// Time at which a run that never passes gives up, seconds.
    pub horizon_s: f64,
    /// The success-by-time curve.
    #[serde(skip)]
    pub curve: StepCurve,
}

impl Outcome {
    fn new(curve: StepCurve, horizon_s: f64, usd_per_run: f64) -> Self {
        let pass_rate = curve.final_value();
        let mut passed_time = 0.0;
        let mut prev = 0.0;
        for &(t, f) in &curve.jumps {
            passed_time += t * (f - prev);
            prev = f;
        }
        let expected_wall_s = passed_time + (1.0 - pass_rate) * horizon_s;
        let per_solved = |x: f64| {
            if pass_rate > 0.0 {
                Some(x / pass_rate)
            } else {
                None
            }
        };
        Outcome {
            pass_rate,
            mean_time_to_pass_s: curve.mean_given_pass(),
            p50_time_to_pass_s: curve.quantile_given_pass(0.5),
            p90_time_to_pass_s: curve.quantile_given_pass(0.9),
            expected_wall_s,
            time_per_solved_s: per_solved(expected_wall_s),
            usd_per_run,
            usd_per_solved: per_solved(usd_per_run),
            horizon_s,
            curve,
        }
    }
}

impl LoopSchedule {
    /// The plain loop: one model, one candidate per turn, up to `max_turns`.
    pub fn plain(model: &ModelProfile, lp: &LoopProfile) -> Self {
        Self::best_of(model, lp, 1)
    }

    /// Best-of-k: `k` candidates per turn, the turn passes when any does.
    ///
    /// The candidates are generated at once; with constant times the slowest
    /// of `k` takes as long as one. Tests run at once (`parallel_tests`) or one
    /// after another; then a failing turn pays `k·test_s`, and a passing turn
    /// stops at the first green candidate (the `j`-th with chance
    /// `p(1−p)^(j−1)`). Cost is `k` attempts per turn.
    pub fn best_of(model: &ModelProfile, lp: &LoopProfile, k: u32) -> Self {
        Self::best_of_from(model, lp, k, 1)
    }

    /// [`LoopSchedule::best_of`] whose first turn is overall turn
    /// `first_turn` (an escalation's second model): the prompt, and with a
    /// prefill speed the time to first token, are those of the overall turn.
    fn best_of_from(model: &ModelProfile, lp: &LoopProfile, k: u32, first_turn: u32) -> Self {
        let k = k.max(1);
        let kf = f64::from(k);
        let tests_s = if lp.parallel_tests { lp.test_s } else { kf * lp.test_s };
        // Without a prefill speed every turn takes the same time, and the start of
        // turn t is (t − 1)·turn_s exactly (no running sum's rounding).
        let constant = model.prefill_tokens_per_s.is_none();
        let before_tests_at = |t: u32| lp.overhead_s + generation_s_at(model, first_turn + t - 1);
        let mut turns = Vec::with_capacity(lp.max_turns as usize);
        let mut solvable_unpassed = 1.0; // P(no pass yet | task solvable)
        let mut next_start = 0.0;
        for t in 1..=lp.max_turns {
            let before_tests = if constant { lp.overhead_s + generation_s(model) } else { before_tests_at(t) };
            let turn_s = before_tests + tests_s;
            let start_s = if constant { f64::from(t - 1) * turn_s } else { next_start };
            next_start = start_s + turn_s;
            let p = if t == 1 { model.p_first } else { model.p_retry };
            let mut passes = Vec::new();
            if lp.parallel_tests || k == 1 {
                let p_turn = 1.0 - pow_q(p, kf);
                passes.push((start_s + turn_s, model.ceiling * solvable_unpassed * p_turn));
            } else {
                for j in 1..=k {
                    let p_j = p * pow_q(p, f64::from(j - 1));
                    let at = start_s + before_tests + f64::from(j) * lp.test_s;
                    passes.push((at, model.ceiling * solvable_unpassed * p_j));
                }
            }
            solvable_unpassed *= pow_q(p, kf);
            turns.push(ScheduledTurn {
                start_s,
                end_s: start_s + turn_s,
                usd: kf * model.usd_of_turn(first_turn + t - 1),
                passes,
            });
        }
        LoopSchedule { turns }
    }

    /// Escalate: model `a` for `after` turns, then model `b` for the rest of
    /// `max_turns`. `b`'s first turn is its first attempt (`p_first`); the
    /// prompt keeps growing by turn number overall. `after = 0` is `b` alone,
    /// `after = max_turns` is `a` alone.
    pub fn escalate(a: &ModelProfile, b: &ModelProfile, lp: &LoopProfile, after: u32) -> Self {
        let after = after.min(lp.max_turns);
        let a_loop = LoopProfile { max_turns: after, ..lp.clone() };
        let mut schedule = Self::plain(a, &a_loop);
        let a_survival = 1.0 - PassModel::of(a).pass_by_turn(after);
        let shift = elapsed_s(a, lp, 1, after);
        let b_loop = LoopProfile { max_turns: lp.max_turns - after, ..lp.clone() };
        for mut turn in Self::best_of_from(b, &b_loop, 1, after + 1).turns {
            turn.start_s += shift;
            turn.end_s += shift;
            for pass in &mut turn.passes {
                pass.0 += shift;
                pass.1 *= a_survival;
            }
            schedule.turns.push(turn);
        }
        schedule
    }

    /// When a run that never passes ends, in seconds.
    pub fn horizon_s(&self) -> f64 {
        self.turns.last().map_or(0.0, |t| t.end_s)
    }

    /// The success-by-time curve F(t).
    pub fn curve(&self) -> StepCurve {
        StepCurve::from_masses(self.turns.iter().flat_map(|t| t.passes.iter().copied()).collect())
    }

    /// Chance that each turn is started (no pass in earlier turns).
    fn started(&self) -> Vec<f64> {
        let mut passed = 0.0;
        self.turns
            .iter()
            .map(|t| {
                let s = 1.0 - passed;
                passed += t.passes.iter().map(|p| p.1).sum::<f64>();
                s
            })
            .collect()
    }

    /// Expected cost of a run, in US dollars: each turn's cost times the chance it is started.
    pub fn expected_usd(&self) -> f64 {
        self.started().iter().zip(&self.turns).map(|(s, t)| s * t.usd).sum()
    }

    /// Pass rate, times and cost of this schedule.
    pub fn outcome(&self) -> Outcome {
        Outcome::new(self.curve(), self.horizon_s(), self.expected_usd())
    }
}

/// Race: both loops start together; the first green wins and the other is
/// stopped. `F(t) = 1 − (1 − F_A(t))(1 − F_B(t))`. Cost counts every turn of
/// either loop that starts before the winner passes (a started turn is paid in
/// full); a run where neither passes ends when the slower loop gives up.
pub fn race(a: &LoopSchedule, b: &LoopSchedule) -> Outcome {
    let (fa, fb) = (a.curve(), b.curve());
    let mut times: Vec<f64> = fa.jumps.iter().chain(&fb.jumps).map(|j| j.0).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let jumps = times.iter().map(|&t| (t, 1.0 - (1.0 - fa.at(t)) * (1.0 - fb.at(t)))).collect();
    let curve = StepCurve { jumps };
    let paid = |own: &LoopSchedule, other: &StepCurve| -> f64 {
        own.started().iter().zip(&own.turns).map(|(s, t)| s * (1.0 - other.at(t.start_s)) * t.usd).sum()
    };
    let usd = paid(a, &fb) + paid(b, &fa);
    Outcome::new(curve, a.horizon_s().max(b.horizon_s()), usd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cycle::cycle_s;
    use proptest::prelude::*;

    fn lp(max_turns: u32) -> LoopProfile {
        LoopProfile { test_s: 1.0, overhead_s: 0.0, max_turns, tests: 10, parallel_tests: true }
    }

    fn model(p_first: f64, p_retry: f64, ceiling: f64, gen_s: f64) -> ModelProfile {
        ModelProfile {
            ttft_s: gen_s,
            output_tokens: 0.0,
            input_tokens: 1e6,
            input_growth_tokens: 0.0,
            usd_per_mtok_in: 1.0,
            usd_per_mtok_out: 0.0,
            p_first,
            p_retry,
            ceiling,
            ..ModelProfile::example()
        }
    }

    #[test]
    fn plain_by_hand() {
        // c = 2 s, p1 = p2 = 0.5, N = 2: F(2) = .5, F(4) = .75; mean = (2·.5 + 4·.25)/.75 = 8/3.
        let o = LoopSchedule::plain(&model(0.5, 0.5, 1.0, 1.0), &lp(2)).outcome();
        assert_eq!(o.curve.jumps, vec![(2.0, 0.5), (4.0, 0.75)]);
        assert!((o.mean_time_to_pass_s.unwrap() - 8.0 / 3.0).abs() < 1e-15);
        assert_eq!(o.p50_time_to_pass_s, Some(2.0));
        assert_eq!(o.p90_time_to_pass_s, Some(4.0));
        // Wall: 2·.5 + 4·.25 + 4·.25 = 3; $1 per turn, 1.5 turns → $1.5; per solved 2.
        assert!((o.expected_wall_s - 3.0).abs() < 1e-15);
        assert!((o.usd_per_run - 1.5).abs() < 1e-15);
        assert!((o.usd_per_solved.unwrap() - 2.0).abs() < 1e-15);
    }

    #[test]
    fn race_by_hand() {
        // A: c = 1 s, p1 = .5, one turn. B: c = 2 s, p1 = 1, one turn.
        // F(1) = .5, F(2) = 1. Mean = 1.5. A always starts ($1); B starts at 0 ($1): $2.
        let a = LoopSchedule::plain(&model(0.5, 0.0, 1.0, 0.0), &lp(1));
        let b = LoopSchedule::plain(&model(1.0, 0.0, 1.0, 1.0), &lp(1));
        let o = race(&a, &b);
        assert_eq!(o.curve.jumps, vec![(1.0, 0.5), (2.0, 1.0)]);
        assert_eq!(o.mean_time_to_pass_s, Some(1.5));
        assert_eq!(o.usd_per_run, 2.0);
        // Two turns of A: its 2nd turn starts at 1 s only if A failed (.5) and B has not passed (1): $1.5 + $1.
        let a2 = LoopSchedule::plain(&model(0.5, 0.5, 1.0, 0.0), &lp(2));
        assert!((race(&a2, &b).usd_per_run - 2.5).abs() < 1e-15);
    }

    #[test]
    fn serial_best_of_stops_at_first_green() {
        // k = 2, p1 = .5, gen 0, tests 1 s each, serial, one turn:
        // green at 1 s w.p. .5, at 2 s w.p. .25.
        let serial = LoopProfile { parallel_tests: false, ..lp(1) };
        let o = LoopSchedule::best_of(&model(0.5, 0.0, 1.0, 0.0), &serial, 2).outcome();
        assert_eq!(o.curve.jumps, vec![(1.0, 0.5), (2.0, 0.75)]);
        assert_eq!(o.horizon_s, 2.0);
        assert_eq!(o.usd_per_run, 2.0);
    }

    #[test]
    fn escalate_by_hand() {
        // A (c = 1 s, p = .5 each turn) for 1 turn, then B (c = 3 s, p1 = 1) for 1 turn.
        // F(1) = .5, F(4) = 1. Cost: $1 + .5·$1.
        let a = model(0.5, 0.5, 1.0, 0.0);
        let b = model(1.0, 1.0, 1.0, 2.0);
        let o = LoopSchedule::escalate(&a, &b, &lp(2), 1).outcome();
        assert_eq!(o.curve.jumps, vec![(1.0, 0.5), (4.0, 1.0)]);
        assert_eq!(o.usd_per_run, 1.5);
    }

    fn arb_model() -> impl Strategy<Value = ModelProfile> {
        (0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..20.0, 0.0f64..3.0).prop_map(|(p1, p2, c, g, growth)| {
            ModelProfile { input_growth_tokens: growth * 1e5, ..model(p1, p2, c, g) }
        })
    }

    fn arb_loop() -> impl Strategy<Value = LoopProfile> {
        (0.0f64..10.0, 0.0f64..2.0, 1u32..25, any::<bool>()).prop_map(|(test_s, overhead_s, max_turns, par)| {
            LoopProfile { test_s, overhead_s, max_turns, tests: 10, parallel_tests: par }
        })
    }

    proptest! {
        #[test]
        fn curves_rise_within_ceiling(m in arb_model(), l in arb_loop(), k in 1u32..5, t in 0.0f64..500.0, dt in 0.0f64..100.0) {
            let c = LoopSchedule::best_of(&m, &l, k).curve();
            prop_assert!(c.at(t + dt) >= c.at(t));
            prop_assert!(c.at(t) >= 0.0);
            prop_assert!(c.at(t) <= m.ceiling + 1e-12);
        }

        #[test]
        fn plain_schedule_matches_closed_forms(m in arb_model(), l in arb_loop()) {
            let o = LoopSchedule::plain(&m, &l).outcome();
            let pm = PassModel::of(&m);
            let c = cycle_s(&m, &l);
            prop_assert!((o.pass_rate - pm.pass_rate(l.max_turns)).abs() < 1e-12);
            if o.pass_rate > 1e-9 && c > 0.0 {
                let mean = pm.mean_turns_given_pass(l.max_turns).unwrap() * c;
                prop_assert!((o.mean_time_to_pass_s.unwrap() - mean).abs() < 1e-9 * mean.max(1.0));
                let p90 = f64::from(pm.turn_quantile_given_pass(0.9, l.max_turns).unwrap()) * c;
                prop_assert!((o.p90_time_to_pass_s.unwrap() - p90).abs() < 1e-9 * p90.max(1.0));
            }
            let a = m.usd_of_turn(1);
            let b = m.usd_of_turn(2) - a;
            let usd = pm.expected_usd_per_run(l.max_turns, a, b);
            prop_assert!((o.usd_per_run - usd).abs() < 1e-9 * usd.max(1.0));
            let wall = pm.expected_turns_run(l.max_turns) * c;
            prop_assert!((o.expected_wall_s - wall).abs() < 1e-9 * wall.max(1.0));
        }

        #[test]
        fn parallel_best_of_is_plain_with_boosted_chances(m in arb_model(), l in arb_loop(), k in 1u32..8) {
            let l = LoopProfile { parallel_tests: true, ..l };
            let o = LoopSchedule::best_of(&m, &l, k).outcome();
            let pm = PassModel::of(&m).best_of(k);
            prop_assert!((o.pass_rate - pm.pass_rate(l.max_turns)).abs() < 1e-12);
            if o.pass_rate > 1e-9 && cycle_s(&m, &l) > 0.0 {
                let mean = pm.mean_turns_given_pass(l.max_turns).unwrap() * cycle_s(&m, &l);
                prop_assert!((o.mean_time_to_pass_s.unwrap() - mean).abs() < 1e-9 * mean.max(1.0));
            }
            let usd = f64::from(k) * pm.expected_usd_per_run(l.max_turns, m.usd_of_turn(1), m.usd_of_turn(2) - m.usd_of_turn(1));
            prop_assert!((o.usd_per_run - usd).abs() < 1e-9 * usd.max(1.0));
        }

        #[test]
        fn race_is_never_slower_than_either_loop(a in arb_model(), b in arb_model(), l in arb_loop(), t in 0.0f64..500.0) {
            let (sa, sb) = (LoopSchedule::plain(&a, &l), LoopSchedule::plain(&b, &l));
            let o = race(&sa, &sb);
            prop_assert!(o.curve.at(t) + 1e-12 >= sa.curve().at(t));
            prop_assert!(o.curve.at(t) + 1e-12 >= sb.curve().at(t));
            prop_assert!(o.pass_rate + 1e-12 >= sa.outcome().pass_rate.max(sb.outcome().pass_rate));
        }

        #[test]
        fn escalate_endpoints_are_the_single_models(a in arb_model(), b in arb_model(), l in arb_loop()) {
            let b_alone = LoopSchedule::plain(&b, &l);
            let a_alone = LoopSchedule::plain(&a, &l);
            prop_assert_eq!(LoopSchedule::escalate(&a, &b, &l, 0), b_alone);
            prop_assert_eq!(LoopSchedule::escalate(&a, &b, &l, l.max_turns), a_alone);
        }
    }
}
