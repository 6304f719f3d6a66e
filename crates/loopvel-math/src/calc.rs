//! `loopvel calc`: every model and policy of a scenario through the closed forms, and a verdict.
//!
//! [`evaluate`] takes a validated [`Scenario`] and returns a [`CalcReport`]:
//! one [`ModelReport`] per model, one [`PolicyReport`] per policy, and a
//! [`Verdict`] with the winner, the ratio, the break-even figures and a
//! paragraph for people. It does no I/O; the CLI prints the report.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::breakeven::{
    p_retry_to_tie_time_per_solved, r_to_tie_time_to_target, speed_factor_to_tie_mean_time,
    speed_factor_to_tie_time_to_target,
};
use crate::compounding::{loop_velocity_per_s, turns_to_target};
use crate::cycle::{amdahl_limit, amdahl_speedup, cycle_s, generation_s, is_verification_bound, verification_s};
use crate::hazard::PassModel;
use crate::schedule::{race, LoopSchedule, Outcome};
use crate::units::{count, factor, percent, seconds};
use crate::{LoopProfile, ModelProfile};

/// A loop and the models to compare on it, with the policies to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The loop shared by all models.
    pub loop_profile: LoopProfile,
    /// The models, in the order the scenario lists them.
    pub models: Vec<(String, ModelProfile)>,
    /// Which policies to evaluate.
    pub policies: PolicySpec,
}

/// Policies to evaluate besides the plain loop of each model.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Best-of-k sizes, applied to every model (`k ≥ 2`).
    pub best_of: Vec<u32>,
    /// Pairs of models to race.
    pub race: Vec<(String, String)>,
    /// Escalations from one model to another.
    pub escalate: Vec<EscalateSpec>,
}

/// Model `from` for `after` turns, then model `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalateSpec {
    /// The model that starts.
    pub from: String,
    /// The model that takes over.
    pub to: String,
    /// Turns before switching; `None` picks the best.
    pub after: Option<u32>,
}

impl PolicySpec {
    /// The default set for `names`: best-of-2 and best-of-4 of each model,
    /// a race of every pair, and an escalation each way between every pair.
    pub fn default_for(names: &[String]) -> Self {
        let mut race = Vec::new();
        let mut escalate = Vec::new();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                race.push((a.clone(), b.clone()));
                escalate.push(EscalateSpec { from: a.clone(), to: b.clone(), after: None });
                escalate.push(EscalateSpec { from: b.clone(), to: a.clone(), after: None });
            }
        }
        PolicySpec { best_of: vec![2, 4], race, escalate }
    }
}

/// How the verdict weighs pass rate against speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VerdictRule {
    /// A model competes on speed only if its pass rate is within this many
    /// (absolute) of the best pass rate: the talk's "competent enough".
    pub pass_rate_margin: f64,
}

impl Default for VerdictRule {
    fn default() -> Self {
        VerdictRule { pass_rate_margin: 0.05 }
    }
}

/// Name → value, serialised as a JSON object that keeps the scenario's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<T> Named<T> {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Everything `calc` knows about one model on the scenario's loop.
/// Times in seconds, costs in US dollars, rates and shares in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    /// Cycle time of one turn, s (the first turn's, when a prefill speed
    /// makes later turns with longer prompts slower).
    pub cycle_s: f64,
    /// Generation part of the cycle (first token + decode), s.
    pub generation_s: f64,
    /// Verification part of the cycle (tests + overhead), s.
    pub verification_s: f64,
    /// Share of the cycle spent on tests and overhead.
    pub verification_share: f64,
    /// Napkin math: turns until all tests pass; `None` if never.
    pub turns_to_target: Option<u64>,
    /// Napkin math: the time of `turns_to_target` turns (`turns_to_target · cycle_s`
    /// when every turn takes the same time), s.
    pub time_to_target_s: Option<f64>,
    /// Whether `turns_to_target` fits in `max_turns`.
    pub target_within_max_turns: bool,
    /// E-folds of error removed per second; `None` when infinite (`r = 1`).
    pub velocity_per_s: Option<f64>,
    /// Pass rate within `max_turns`.
    pub pass_rate: f64,
    /// Share of runs that pass on the first turn.
    pub one_shot_rate: f64,
    /// Mean turns to pass among runs that pass.
    pub mean_turns_to_pass: Option<f64>,
    /// Mean time to pass among runs that pass, s.
    pub mean_time_to_pass_s: Option<f64>,
    /// Median time to pass among runs that pass, s.
    pub p50_time_to_pass_s: Option<f64>,
    /// 90th percentile time to pass among runs that pass, s.
    pub p90_time_to_pass_s: Option<f64>,
    /// Mean wall time of a run, passing or not, s.
    pub expected_wall_s: f64,
    /// Wall time per solved task, counting failed runs, s.
    pub time_per_solved_s: Option<f64>,
    /// Mean cost of a run, USD.
    pub usd_per_run: f64,
    /// Cost per solved task, counting failed runs, USD.
    pub usd_per_solved: Option<f64>,
    /// Loop speedup from a 10× faster model (Amdahl).
    pub speedup_from_10x_generation: f64,
    /// Loop speedup from an infinitely fast model; `None` when unbounded (no tests, no overhead).
    pub speedup_ceiling: Option<f64>,
    /// True when tests and overhead take at least half the cycle: the tests, not the model, bound the loop.
    pub tests_bound: bool,
    /// Success-by-time curve: `[t_s, F(t)]` at each jump.
    pub curve: Vec<[f64; 2]>,
}

/// One policy's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// `best_of`, `race` or `escalate`.
    pub kind: &'static str,
    /// The models involved, in role order.
    pub models: Vec<String>,
    /// Candidates per turn (best-of-k).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Turns on the first model before escalating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// Pass rate, times (s) and costs (USD).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Success-by-time curve: `[t_s, F(t)]` at each jump.
    pub curve: Vec<[f64; 2]>,
    /// Escalation only: the switch point choices and the outcome of every switch point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationChoice>,
}

/// How an escalation's switch point was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationChoice {
    /// The switch point with the lowest mean time to pass among switch points
    /// whose pass rate is within the verdict's margin of the best.
    pub after_min_mean_time: u32,
    /// The switch point with the lowest cost per solved task.
    pub after_min_usd_per_solved: Option<u32>,
    /// Every switch point `m = 0..=max_turns`.
    pub by_after: Vec<EscalationRow>,
}

/// One switch point of an escalation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationRow {
    /// Turns on the first model.
    pub after: u32,
    /// Pass rate within the budget.
    pub pass_rate: f64,
    /// Mean time to pass among passes, s.
    pub mean_time_to_pass_s: Option<f64>,
    /// Cost per solved task, USD.
    pub usd_per_solved: Option<f64>,
}

/// Break-even figures of model `a` against model `b`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakEven {
    /// The model that would change.
    pub a: String,
    /// The model it is compared with.
    pub b: String,
    /// Factor on `a`'s tokens/s to tie `b` on mean time to pass (below 1: `a` could be that much slower).
    pub speed_factor_mean_time: Option<f64>,
    /// Factor on `a`'s tokens/s to tie `b` on napkin time to target.
    pub speed_factor_time_to_target: Option<f64>,
    /// `r` that `a` needs at its speed to tie `b` on time to target (threshold).
    pub r_to_tie_time_to_target: Option<f64>,
    /// `p_retry` that `a` needs at its speed to tie `b` on wall time per solved task.
    pub p_retry_to_tie_time_per_solved: Option<f64>,
}

/// Which model wins, by how much, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The competent model with the lowest mean time to pass.
    pub winner: String,
    /// The next competent model, or the best of the rest.
    pub runner_up: Option<String>,
    /// The metric the winner is chosen on.
    pub metric: &'static str,
    /// Runner-up's mean time to pass over the winner's.
    pub ratio: Option<f64>,
    /// Models whose pass rate is within the margin of the best.
    pub competent: Vec<String>,
    /// The rule used.
    pub rule: VerdictRule,
    /// Napkin math: the model with the least time to target.
    pub napkin_winner: Option<String>,
    /// Napkin math: runner-up time to target over the winner's.
    pub napkin_ratio: Option<f64>,
    /// Models whose loop is bound by tests and overhead.
    pub tests_bound: Vec<String>,
    /// Break-even figures for every ordered pair.
    pub break_even: Vec<BreakEven>,
    /// The policy (or plain model) with the lowest mean time to pass among all
    /// models and policies whose pass rate is within the margin of the best.
    pub best_policy: Option<BestPolicy>,
    /// The verdict as a paragraph for people.
    pub text: String,
}

/// The quickest competent option across models and policies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestPolicy {
    /// A model name (plain loop) or a policy name such as `best_of_4(fast)`.
    pub name: String,
    /// Its pass rate.
    pub pass_rate: f64,
    /// Its mean time to pass, s.
    pub mean_time_to_pass_s: f64,
    /// Its cost per solved task, USD.
    pub usd_per_solved: Option<f64>,
}

/// The whole `calc` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalcReport {
    /// The loop the models run in.
    #[serde(rename = "loop")]
    pub loop_profile: LoopProfile,
    /// Per model.
    pub models: Named<ModelReport>,
    /// Per policy.
    pub policies: Named<PolicyReport>,
    /// The verdict.
    pub verdict: Verdict,
}

fn curve_points(outcome: &Outcome) -> Vec<[f64; 2]> {
    outcome.curve.jumps.iter().map(|&(t, f)| [t, f]).collect()
}

/// Everything `calc` says about one model.
pub fn model_report(model: &ModelProfile, lp: &LoopProfile) -> ModelReport {
    let c = cycle_s(model, lp);
    let g = generation_s(model);
    let v = verification_s(lp);
    let turns = turns_to_target(model.first_score, model.r, lp.tests);
    let pm = PassModel::of(model);
    let outcome = LoopSchedule::plain(model, lp).outcome();
    let velocity = loop_velocity_per_s(model.r, c);
    ModelReport {
        cycle_s: c,
        generation_s: g,
        verification_s: v,
        verification_share: if c > 0.0 { v / c } else { 0.0 },
        turns_to_target: turns,
        time_to_target_s: turns.map(|n| match u32::try_from(n) {
            Ok(n) if model.prefill_tokens_per_s.is_some() => crate::cycle::elapsed_s(model, lp, 1, n),
            _ => n as f64 * c,
        }),
        target_within_max_turns: turns.is_some_and(|n| n <= u64::from(lp.max_turns)),
        velocity_per_s: velocity.is_finite().then_some(velocity),
        pass_rate: outcome.pass_rate,
        one_shot_rate: pm.pass_by_turn(1.min(lp.max_turns)),
        mean_turns_to_pass: pm.mean_turns_given_pass(lp.max_turns),
        mean_time_to_pass_s: outcome.mean_time_to_pass_s,
        p50_time_to_pass_s: outcome.p50_time_to_pass_s,
        p90_time_to_pass_s: outcome.p90_time_to_pass_s,
        expected_wall_s: outcome.expected_wall_s,
        time_per_solved_s: outcome.time_per_solved_s,
        usd_per_run: outcome.usd_per_run,
        usd_per_solved: outcome.usd_per_solved,
        speedup_from_10x_generation: amdahl_speedup(g, v, 10.0),
        speedup_ceiling: amdahl_limit(g, v),
        tests_bound: is_verification_bound(g, v),
        curve: curve_points(&outcome),
    }
}

fn min_by_key<T>(items: impl Iterator<Item = (T, Option<f64>)>) -> Option<(T, f64)> {
    items.filter_map(|(t, v)| v.map(|v| (t, v))).fold(None, |best: Option<(T, f64)>, (t, v)| match best {
        Some((_, bv)) if bv <= v => best,
        _ => Some((t, v)),
    })
}

fn escalation(
    a: &ModelProfile,
    b: &ModelProfile,
    lp: &LoopProfile,
    rule: VerdictRule,
) -> (Vec<Outcome>, EscalationChoice) {
    let outcomes: Vec<Outcome> = (0..=lp.max_turns).map(|m| LoopSchedule::escalate(a, b, lp, m).outcome()).collect();
    let best_rate = outcomes.iter().map(|o| o.pass_rate).fold(0.0, f64::max);
    let competent = |o: &Outcome| o.pass_rate >= best_rate - rule.pass_rate_margin;
    let after_min_mean_time = min_by_key(
        outcomes.iter().enumerate().filter(|(_, o)| competent(o)).map(|(m, o)| (m as u32, o.mean_time_to_pass_s)),
    )
    .map_or(0, |(m, _)| m);
    let after_min_usd_per_solved =
        min_by_key(outcomes.iter().enumerate().map(|(m, o)| (m as u32, o.usd_per_solved))).map(|(m, _)| m);
    let by_after = outcomes
        .iter()
        .enumerate()
        .map(|(m, o)| EscalationRow {
            after: m as u32,
            pass_rate: o.pass_rate,
            mean_time_to_pass_s: o.mean_time_to_pass_s,
            usd_per_solved: o.usd_per_solved,
        })
        .collect();
    (outcomes, EscalationChoice { after_min_mean_time, after_min_usd_per_solved, by_after })
}

/// The switch points of escalating from `a` to `b`: the one with the least
/// mean time to pass (among those within the rule's margin of the best pass
/// rate), the cheapest per solved task, and the outcome of each.
pub fn escalation_choice(a: &ModelProfile, b: &ModelProfile, lp: &LoopProfile, rule: VerdictRule) -> EscalationChoice {
    escalation(a, b, lp, rule).1
}

/// Every policy of the scenario. Names refer to models of the scenario (the
/// scenario reader checks them); an unknown name is skipped.
pub fn policy_reports(scenario: &Scenario, rule: VerdictRule) -> Named<PolicyReport> {
    let lp = &scenario.loop_profile;
    let model = |name: &str| scenario.models.iter().find(|(n, _)| n == name).map(|(_, m)| m);
    let mut out = Vec::new();
    for (name, m) in &scenario.models {
        for &k in &scenario.policies.best_of {
            let outcome = LoopSchedule::best_of(m, lp, k).outcome();
            out.push((
                format!("best_of_{k}({name})"),
                PolicyReport {
                    kind: "best_of",
                    models: vec![name.clone()],
                    k: Some(k),
                    after: None,
                    curve: curve_points(&outcome),
                    outcome,
                    escalation: None,
                },
            ));
        }
    }
    for (a, b) in &scenario.policies.race {
        let (Some(ma), Some(mb)) = (model(a), model(b)) else {
            continue;
        };
        let outcome = race(&LoopSchedule::plain(ma, lp), &LoopSchedule::plain(mb, lp));
        out.push((
            format!("race({a},{b})"),
            PolicyReport {
                kind: "race",
                models: vec![a.clone(), b.clone()],
                k: None,
                after: None,
                curve: curve_points(&outcome),
                outcome,
                escalation: None,
            },
        ));
    }
    for spec in &scenario.policies.escalate {
        let (Some(ma), Some(mb)) = (model(&spec.from), model(&spec.to)) else {
            continue;
        };
        let (outcomes, choice) = escalation(ma, mb, lp, rule);
        let after = spec.after.unwrap_or(choice.after_min_mean_time).min(lp.max_turns);
        let outcome = outcomes[after as usize].clone();
        // A switch point given makes a policy of its own: keys never collide in --json.
        let name = match spec.after {
            Some(n) => format!("escalate({}->{}, after {n})", spec.from, spec.to),
            None => format!("escalate({}->{})", spec.from, spec.to),
        };
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        out.push((
            name,
            PolicyReport {
                kind: "escalate",
                models: vec![spec.from.clone(), spec.to.clone()],
                k: None,
                after: Some(after),
                curve: curve_points(&outcome),
                outcome,
                escalation: Some(choice),
            },
        ));
    }
    Named(out)
}

fn break_even(a: (&str, &ModelProfile), b: (&str, &ModelReport), lp: &LoopProfile) -> BreakEven {
    let (name_a, ma) = a;
    let (name_b, rb) = b;
    BreakEven {
        a: name_a.to_string(),
        b: name_b.to_string(),
        speed_factor_mean_time: rb.mean_time_to_pass_s.and_then(|t| speed_factor_to_tie_mean_time(ma, lp, t)),
        speed_factor_time_to_target: rb.time_to_target_s.and_then(|t| speed_factor_to_tie_time_to_target(ma, lp, t)),
        r_to_tie_time_to_target: rb.time_to_target_s.and_then(|t| r_to_tie_time_to_target(ma, lp, t)),
        p_retry_to_tie_time_per_solved: rb.time_per_solved_s.and_then(|t| p_retry_to_tie_time_per_solved(ma, lp, t)),
    }
}

/// Pick the winner and explain it.
pub fn verdict(
    scenario: &Scenario,
    reports: &Named<ModelReport>,
    policies: &Named<PolicyReport>,
    rule: VerdictRule,
) -> Verdict {
    let lp = &scenario.loop_profile;
    let best_rate = reports.0.iter().map(|(_, r)| r.pass_rate).fold(0.0, f64::max);
    let competent: Vec<&(String, ModelReport)> =
        reports.0.iter().filter(|(_, r)| r.pass_rate >= best_rate - rule.pass_rate_margin).collect();
    let by_mean = |set: &[&(String, ModelReport)]| {
        let mut v: Vec<(String, f64)> =
            set.iter().filter_map(|(n, r)| r.mean_time_to_pass_s.map(|t| (n.clone(), t))).collect();
        v.sort_by(|x, y| x.1.total_cmp(&y.1));
        v
    };
    let ranked = by_mean(&competent);
    let others: Vec<&(String, ModelReport)> =
        reports.0.iter().filter(|(n, _)| !competent.iter().any(|(c, _)| c == n)).collect();
    let winner = ranked.first().map(|w| w.0.clone()).unwrap_or_else(|| reports.0[0].0.clone());
    let runner = ranked.get(1).cloned().or_else(|| by_mean(&others).first().cloned());
    let ratio = match (ranked.first(), &runner) {
        (Some(w), Some(r)) if w.1 > 0.0 => Some(r.1 / w.1),
        _ => None,
    };
    let mut napkin: Vec<(String, f64)> =
        reports.0.iter().filter_map(|(n, r)| r.time_to_target_s.map(|t| (n.clone(), t))).collect();
    napkin.sort_by(|x, y| x.1.total_cmp(&y.1));
    let napkin_ratio = match (napkin.first(), napkin.get(1)) {
        (Some(w), Some(r)) if w.1 > 0.0 => Some(r.1 / w.1),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (na, ma) in &scenario.models {
        for (nb, rb) in &reports.0 {
            if na != nb {
                pairs.push(break_even((na, ma), (nb, rb), lp));
            }
        }
    }
    let tests_bound: Vec<String> = reports.0.iter().filter(|(_, r)| r.tests_bound).map(|(n, _)| n.clone()).collect();
    let mut v = Verdict {
        winner,
        runner_up: runner.map(|r| r.0),
        metric: "mean_time_to_pass_s",
        ratio,
        competent: competent.iter().map(|(n, _)| n.clone()).collect(),
        rule,
        napkin_winner: napkin.first().map(|w| w.0.clone()),
        napkin_ratio,
        tests_bound,
        break_even: pairs,
        best_policy: best_policy(reports, policies, rule),
        text: String::new(),
    };
    v.text = verdict_text(scenario, reports, &v);
    v
}

fn best_policy(reports: &Named<ModelReport>, policies: &Named<PolicyReport>, rule: VerdictRule) -> Option<BestPolicy> {
    let options: Vec<BestPolicy> = reports
        .0
        .iter()
        .map(|(n, r)| (n, r.pass_rate, r.mean_time_to_pass_s, r.usd_per_solved))
        .chain(policies.0.iter().map(|(n, p)| {
            let o = &p.outcome;
            (n, o.pass_rate, o.mean_time_to_pass_s, o.usd_per_solved)
        }))
        .filter_map(|(n, rate, mean, usd)| {
            mean.map(|m| BestPolicy { name: n.clone(), pass_rate: rate, mean_time_to_pass_s: m, usd_per_solved: usd })
        })
        .collect();
    let best_rate = options.iter().map(|o| o.pass_rate).fold(0.0, f64::max);
    options
        .into_iter()
        .filter(|o| o.pass_rate >= best_rate - rule.pass_rate_margin)
        .min_by(|a, b| a.mean_time_to_pass_s.total_cmp(&b.mean_time_to_pass_s))
}

fn opt_seconds(x: Option<f64>) -> String {
    x.map_or_else(|| "never".to_string(), seconds)
}

fn verdict_text(scenario: &Scenario, reports: &Named<ModelReport>, v: &Verdict) -> String {
    let lp = &scenario.loop_profile;
    let max_turns = count(u64::from(lp.max_turns), "turn");
    let mut s = String::new();
    let Some(w) = reports.get(&v.winner) else {
        return s;
    };
    let Some(runner_name) = &v.runner_up else {
        s.push_str(&format!(
            "Only one model ({}) passes at all: {} of runs within {max_turns}, mean time to pass {}.",
            v.winner,
            percent(w.pass_rate),
            opt_seconds(w.mean_time_to_pass_s)
        ));
        return s;
    };
    let Some(r) = reports.get(runner_name) else {
        return s;
    };
    let runner_competent = v.competent.contains(runner_name);
    if runner_competent {
        s.push_str(&format!(
            "{} reaches green first: mean time to pass {} against {} for {}",
            v.winner,
            opt_seconds(w.mean_time_to_pass_s),
            opt_seconds(r.mean_time_to_pass_s),
            runner_name
        ));
        if let Some(ratio) = v.ratio {
            s.push_str(&format!(" ({} sooner)", factor(ratio)));
        }
        s.push_str(&format!(
            ", and both pass within {max_turns} at a rate within {} points of the best ({} {}, {} {}). ",
            (100.0 * v.rule.pass_rate_margin).round(),
            v.winner,
            percent(w.pass_rate),
            runner_name,
            percent(r.pass_rate)
        ));
    } else {
        s.push_str(&format!(
            "{} is the one to pick: it passes {} of runs within {max_turns} (mean time to pass {}). \
             {} is quicker when it passes ({}) but passes only {}: speed cannot buy back tasks a model cannot solve. ",
            v.winner,
            percent(w.pass_rate),
            opt_seconds(w.mean_time_to_pass_s),
            runner_name,
            opt_seconds(r.mean_time_to_pass_s),
            percent(r.pass_rate)
        ));
        if let Some((_, mr)) = scenario.models.iter().find(|(n, _)| n == runner_name) {
            let pm = PassModel::of(mr);
            let needed_rate = w.pass_rate - v.rule.pass_rate_margin;
            let solvable_rate = if mr.ceiling > 0.0 { pm.pass_rate(lp.max_turns) / mr.ceiling } else { 0.0 };
            let ceiling_needed = if solvable_rate > 0.0 { needed_rate / solvable_rate } else { f64::INFINITY };
            if ceiling_needed <= 1.0 {
                s.push_str(&format!(
                    "To compete, {runner_name} would need a ceiling of at least {ceiling_needed:.2} (now {:.2}); no speed-up changes that. ",
                    mr.ceiling
                ));
            } else {
                s.push_str(&format!(
                    "Even solving every task it could not compete within {max_turns}; it needs better turns, not faster ones. "
                ));
            }
        }
    }
    // Anyone else who fell below the competence line.
    for (name, rep) in &reports.0 {
        if !v.competent.contains(name) && name != runner_name {
            s.push_str(&format!(
                "{name} passes only {} of runs, more than {} points below the best, so its speed does not count. ",
                percent(rep.pass_rate),
                (100.0 * v.rule.pass_rate_margin).round()
            ));
        }
    }
    if let (Some(nw), Some(ratio)) = (&v.napkin_winner, v.napkin_ratio) {
        let agrees = nw == &v.winner;
        let turns_and_time = |name: &str| {
            let r = reports.get(name);
            format!(
                "{} in {} ({})",
                name,
                r.and_then(|x| x.turns_to_target).map_or("? turns".into(), |n| count(n, "turn")),
                opt_seconds(r.and_then(|x| x.time_to_target_s))
            )
        };
        let mut napkin: Vec<&(String, ModelReport)> =
            reports.0.iter().filter(|(_, r)| r.time_to_target_s.is_some()).collect();
        napkin.sort_by(|x, y| {
            x.1.time_to_target_s.unwrap_or(f64::INFINITY).total_cmp(&y.1.time_to_target_s.unwrap_or(f64::INFINITY))
        });
        let second = napkin.get(1).map(|(n, _)| turns_and_time(n)).unwrap_or_default();
        s.push_str(&format!(
            "The napkin math ({} tests, score 1 − (1 − first_score)(1 − r)^(n−1)) {}: all tests pass for {} against {}, {} sooner. ",
            lp.tests,
            if agrees { "agrees" } else { "disagrees" },
            turns_and_time(nw),
            second,
            factor(ratio)
        ));
        if !agrees {
            s.push_str("It assumes every task is solvable and every turn fixes a fixed share; the pass-probability model above includes the ceiling. ");
        }
    }
    // Break-even of the runner-up against the winner, and of the winner against the runner-up.
    let find = |a: &str, b: &str| v.break_even.iter().find(|be| be.a == a && be.b == b);
    let runner_model = scenario.models.iter().find(|(n, _)| n == runner_name).filter(|_| runner_competent);
    if let (Some(be), Some((_, mr))) = (find(runner_name, &v.winner), runner_model) {
        match be.speed_factor_mean_time {
            Some(f) => s.push_str(&format!(
                "Break-even: {runner_name} would need {} its decode speed ({:.0} → {:.0} tokens/s) to tie on mean time to pass",
                factor(f),
                mr.tokens_per_s,
                mr.tokens_per_s * f
            )),
            None => s.push_str(&format!(
                "Break-even: no decode speed lets {runner_name} tie on mean time to pass: its first-token time, tests and overhead alone take longer"
            )),
        }
        match be.p_retry_to_tie_time_per_solved {
            Some(p) if p > 0.0 => s.push_str(&format!(
                "; at its current speed it would need p_retry ≥ {:.3} (now {:.3}) to tie on wall time per solved task. ",
                p, mr.p_retry
            )),
            Some(_) => s.push_str("; at its current speed it already ties on wall time per solved task. "),
            None => s.push_str("; at its current speed no p_retry, not even 1, ties on wall time per solved task. "),
        }
        if v.napkin_winner.as_deref() == Some(v.winner.as_str()) {
            let speed = be.speed_factor_time_to_target.map(|f| {
                format!(
                    "at {} its decode speed ({:.0} → {:.0} tokens/s)",
                    factor(f),
                    mr.tokens_per_s,
                    mr.tokens_per_s * f
                )
            });
            let quality = match be.r_to_tie_time_to_target {
                Some(r) if r > 0.0 => Some(format!("at its current speed with r above {r:.3} (now {:.3})", mr.r)),
                Some(_) => Some("at its current speed, since its first attempt already meets the target".to_string()),
                None => None,
            };
            s.push_str(&match (speed, quality) {
                (Some(a), Some(b)) => format!("On the napkin math {runner_name} would tie {a}, or {b}. "),
                (Some(a), None) => format!(
                    "On the napkin math {runner_name} would tie {a}; no r does it at its current speed, since even a perfect second turn ends at {}. ",
                    seconds(2.0 * crate::cycle::cycle_s(mr, lp))
                ),
                (None, Some(b)) => format!("On the napkin math no decode speed lets {runner_name} tie; it would tie {b}. "),
                (None, None) => format!("On the napkin math neither speed nor r lets {runner_name} tie. "),
            });
        }
    }
    if let Some(be) = find(&v.winner, runner_name).filter(|_| runner_competent) {
        if let Some(f) = be.speed_factor_mean_time {
            if f < 1.0 {
                s.push_str(&format!(
                    "{} keeps the lead until its decode speed falls to {} of what it is. ",
                    v.winner,
                    factor(f)
                ));
            }
        }
    }
    if let Some(bp) = &v.best_policy {
        if bp.name != v.winner {
            s.push_str(&format!(
                "Across policies, {} is quickest: mean time to pass {}, pass rate {}, {} per solved task. ",
                bp.name,
                seconds(bp.mean_time_to_pass_s),
                percent(bp.pass_rate),
                bp.usd_per_solved.map_or("n/a".to_string(), crate::units::usd)
            ));
        }
    }
    for name in &v.tests_bound {
        if let Some(rep) = reports.get(name) {
            s.push_str(&format!(
                "Tests, not the model, bound {name}'s loop: tests and overhead take {} of each turn, so even an infinitely fast model would speed it up at most {}. ",
                percent(rep.verification_share),
                rep.speedup_ceiling.map_or("without bound".to_string(), factor)
            ));
        }
    }
    s.trim_end().to_string()
}

/// Evaluate a scenario: every model, every policy, and the verdict.
///
/// ```
/// use loopvel_math::calc::{evaluate, PolicySpec, Scenario, VerdictRule};
/// use loopvel_math::{LoopProfile, ModelProfile};
/// let lp = LoopProfile { test_s: 0.3, overhead_s: 0.2, max_turns: 15, tests: 47, parallel_tests: true };
/// let names = vec!["a".to_string(), "b".to_string()];
/// let scenario = Scenario {
///     loop_profile: lp,
///     models: vec![("a".into(), ModelProfile::example()),
///                  ("b".into(), ModelProfile { tokens_per_s: 1000.0, ..ModelProfile::example() })],
///     policies: PolicySpec::default_for(&names),
/// };
/// let report = evaluate(&scenario, VerdictRule::default());
/// assert_eq!(report.verdict.winner, "b");
/// ```
pub fn evaluate(scenario: &Scenario, rule: VerdictRule) -> CalcReport {
    let lp = &scenario.loop_profile;
    let models = Named(scenario.models.iter().map(|(n, m)| (n.clone(), model_report(m, lp))).collect());
    let policies = policy_reports(scenario, rule);
    let verdict = verdict(scenario, &models, &policies, rule);
    CalcReport { loop_profile: lp.clone(), models, policies, verdict }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk() -> Scenario {
        let lp = LoopProfile { test_s: 0.3, overhead_s: 0.2, max_turns: 15, tests: 47, parallel_tests: true };
        let fast = ModelProfile {
            ttft_s: 0.5,
            tokens_per_s: 1000.0,
            output_tokens: 2000.0,
            first_score: 0.8,
            r: 0.2,
            p_first: 0.05,
            p_retry: 0.2,
            ..ModelProfile::example()
        };
        let frontier = ModelProfile {
            ttft_s: 4.5,
            tokens_per_s: 80.0,
            output_tokens: 2000.0,
            first_score: 0.95,
            r: 0.9,
            p_first: 0.3,
            p_retry: 0.8,
            ..ModelProfile::example()
        };
        let names = vec!["fast".to_string(), "frontier".to_string()];
        Scenario {
            loop_profile: lp,
            models: vec![("fast".into(), fast), ("frontier".into(), frontier)],
            policies: PolicySpec::default_for(&names),
        }
    }

    #[test]
    fn talk_by_hand() {
        let r = evaluate(&talk(), VerdictRule::default());
        let fast = r.models.get("fast").unwrap();
        let frontier = r.models.get("frontier").unwrap();
        assert!((fast.cycle_s - 3.0).abs() < 1e-12);
        assert!((frontier.cycle_s - 30.0).abs() < 1e-12);
        // Least n with 0.2·0.8^(n−1) < 1/47 is 12: 36 s. Frontier: 2 turns, 60 s.
        assert_eq!(fast.turns_to_target, Some(12));
        assert!((fast.time_to_target_s.unwrap() - 36.0).abs() < 1e-12);
        assert_eq!(frontier.turns_to_target, Some(2));
        assert!((frontier.time_to_target_s.unwrap() - 60.0).abs() < 1e-12);
        // Pass rate of fast: 1 − 0.95·0.8^14.
        assert!((fast.pass_rate - (1.0 - 0.95 * 0.8f64.powi(14))).abs() < 1e-12);
        assert_eq!(r.verdict.winner, "fast");
        assert_eq!(r.verdict.napkin_winner.as_deref(), Some("fast"));
        assert!((r.verdict.napkin_ratio.unwrap() - 60.0 / 36.0).abs() < 1e-12);
        assert!(r.verdict.tests_bound.is_empty());
        assert_eq!(r.policies.0.len(), 2 * 2 + 1 + 2);
    }

    #[test]
    fn the_competence_margin_decides_between_speed_and_pass_rate() {
        let mut s = talk();
        s.models[0].1.ceiling = 0.5;
        let r = evaluate(&s, VerdictRule::default());
        assert_eq!(r.verdict.winner, "frontier");
        assert_eq!(r.verdict.competent, vec!["frontier".to_string()]);
        // With a margin wide enough to forgive the ceiling, speed wins again.
        let r = evaluate(&s, VerdictRule { pass_rate_margin: 0.6 });
        assert_eq!(r.verdict.winner, "fast");
    }

    #[test]
    fn slow_tests_bind_the_loop() {
        let mut s = talk();
        s.loop_profile.test_s = 60.0;
        let r = evaluate(&s, VerdictRule::default());
        assert_eq!(r.verdict.winner, "frontier");
        assert_eq!(r.verdict.tests_bound, vec!["fast".to_string(), "frontier".to_string()]);
        assert!(r.verdict.text.contains("Tests, not the model, bound fast's loop"));
        // (g + v)/v = (2.5 + 60.2)/60.2
        let ceiling = r.models.get("fast").unwrap().speedup_ceiling.unwrap();
        assert!((ceiling - 62.7 / 60.2).abs() < 1e-12);
    }

    #[test]
    fn escalation_choice_is_the_best_switch_point() {
        let s = talk();
        let r = evaluate(&s, VerdictRule::default());
        let p = r.policies.get("escalate(fast->frontier)").unwrap();
        let e = p.escalation.as_ref().unwrap();
        let best = e.by_after[e.after_min_mean_time as usize].mean_time_to_pass_s.unwrap();
        let top_rate = e.by_after.iter().map(|x| x.pass_rate).fold(0.0, f64::max);
        for row in &e.by_after {
            if row.pass_rate >= top_rate - 0.05 {
                assert!(row.mean_time_to_pass_s.unwrap() >= best);
            }
        }
        let cheapest = e.by_after[e.after_min_usd_per_solved.unwrap() as usize].usd_per_solved.unwrap();
        assert!(e.by_after.iter().all(|row| row.usd_per_solved.unwrap() >= cheapest));
    }
}
