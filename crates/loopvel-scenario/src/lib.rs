//! # loopvel-scenario: scenario files in, validated profiles out
//!
//! A scenario is a TOML file with one `[loop]` table, one `[models.NAME]`
//! table per model and an optional `[policies]` table (see
//! `examples/talk.toml`). [`parse_scenario`] reads its text, applies
//! command-line overrides (`--set models.fast.tokens_per_s=1000`), checks
//! every key and value, and returns a [`loopvel_math::calc::Scenario`].
//!
//! Errors name the file (or the `--set` that caused them), the key, what is
//! wrong and what is allowed, because the person reading them has the file
//! open and wants to fix it in one go. This crate never reads files itself:
//! the caller passes the text and the name to quote.
//!
//! ```
//! let text = r#"
//! [loop]
//! test_s = 0.3
//! max_turns = 15
//! tests = 47
//! [models.fast]
//! ttft_s = 0.5
//! tokens_per_s = 1000
//! output_tokens = 2000
//! input_tokens = 6000
//! usd_per_mtok_in = 0.25
//! usd_per_mtok_out = 0.75
//! p_first = 0.35
//! p_retry = 0.6
//! r = 0.2
//! first_score = 0.8
//! "#;
//! let s = loopvel_scenario::parse_scenario(text, "inline.toml", &["models.fast.tokens_per_s=500".into()]).unwrap();
//! assert_eq!(s.models[0].1.tokens_per_s, 500.0);
//! let err = loopvel_scenario::parse_scenario(text, "inline.toml", &["models.fast.p_first=1.5".into()]).unwrap_err();
//! assert!(err.to_string().contains("models.fast.p_first"));
//! ```

mod overrides;
mod reader;

use std::collections::HashSet;

use loopvel_math::calc::{escalation_choice, EscalateSpec, PolicySpec, Scenario, VerdictRule};
use loopvel_math::compounding::target_error;
use loopvel_math::dist::{Dist, Domain};
use loopvel_math::{LoopProfile, ModelProfile};
use loopvel_sim::spec::{Quality, SimLoop, SimModel, SimPolicy, SimScenario};

pub use reader::ScenarioError;
use reader::{Check, Ctx, TableReader};

/// Largest turn budget accepted; the exact sums are linear in it.
pub const MAX_TURNS_LIMIT: u32 = 100_000;
/// Largest best-of-k accepted.
pub const MAX_BEST_OF: u32 = 64;

/// Which command reads the scenario: `calc` needs constants and the fields of
/// both quality views; `simulate` takes distributions and its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Calc,
    Simulate,
}

/// Parse a `calc` scenario: `text` (quoted as `file` in errors), with
/// `overrides` (`dotted.key=value`, value in TOML syntax, bare words taken as
/// strings) applied first, and everything validated.
pub fn parse_scenario(text: &str, file: &str, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let raw = parse_raw(text, file, overrides, Mode::Calc)?;
    let ctx = Ctx { file, overridden: &raw.overridden };
    let mut models = Vec::new();
    for (name, m) in &raw.models {
        let profile =
            m.profile.clone().ok_or_else(|| ctx.invalid(&format!("models.{name}"), "is not a constant profile"))?;
        models.push((name.clone(), profile));
    }
    let loop_profile =
        raw.loop_profile.constant.clone().ok_or_else(|| ctx.invalid("loop.test_s", "must be a number"))?;
    Ok(Scenario { loop_profile, models, policies: raw.policies })
}

/// Parse a `simulate` scenario (a superset of `calc`'s): numbers or
/// distribution tables for times and speeds, distributions over tasks for
/// the quality fields, and the simulator's own keys. Policies: the plain loop
/// of every model, plus those in `[policies]`; with `all_policies` and no
/// `[policies]` table, the same default set as `calc`.
pub fn parse_sim_scenario(
    text: &str,
    file: &str,
    overrides: &[String],
    all_policies: bool,
) -> Result<SimScenario, ScenarioError> {
    let raw = parse_raw(text, file, overrides, Mode::Simulate)?;
    let names: Vec<String> = raw.models.iter().map(|(n, _)| n.clone()).collect();
    let none = PolicySpec { best_of: vec![], race: vec![], escalate: vec![] };
    let spec = if raw.policies_given || all_policies { raw.policies.clone() } else { none };
    let mut policies: Vec<SimPolicy> = names.iter().map(|n| SimPolicy::Plain { model: n.clone() }).collect();
    for name in &names {
        for &k in &spec.best_of {
            policies.push(SimPolicy::BestOf { model: name.clone(), k });
        }
    }
    for (a, b) in &spec.race {
        policies.push(SimPolicy::Race { a: a.clone(), b: b.clone() });
    }
    for e in &spec.escalate {
        let after = e.after.unwrap_or_else(|| default_switch_point(&raw, &e.from, &e.to));
        policies.push(SimPolicy::Escalate { from: e.from.clone(), to: e.to.clone(), after });
    }
    let loop_profile = raw.loop_profile.sim.clone();
    let models = raw.models.into_iter().map(|(n, m)| (n, m.sim)).collect();
    Ok(SimScenario { loop_profile, models, policies })
}

/// When an escalation in a simulation has no `after`: the switch point
/// `calc` picks for the mean profile of both models (every distribution
/// replaced by its mean), or half the turn budget when a model has no such
/// profile (`quality = "tests"`).
fn default_switch_point(raw: &Raw, from: &str, to: &str) -> u32 {
    let mean = |name: &str| raw.models.iter().find(|(n, _)| n == name).and_then(|(_, m)| m.mean_profile.clone());
    match (mean(from), mean(to)) {
        (Some(a), Some(b)) => {
            escalation_choice(&a, &b, &raw.loop_profile.mean, VerdictRule::default()).after_min_mean_time
        }
        _ => raw.loop_profile.mean.max_turns / 2,
    }
}

struct RawLoop {
    sim: SimLoop,
    constant: Option<LoopProfile>,
    mean: LoopProfile,
}

struct RawModel {
    sim: SimModel,
    profile: Option<ModelProfile>,
    mean_profile: Option<ModelProfile>,
}

struct Raw {
    loop_profile: RawLoop,
    models: Vec<(String, RawModel)>,
    policies: PolicySpec,
    policies_given: bool,
    overridden: HashSet<String>,
}

fn parse_raw(text: &str, file: &str, overrides: &[String], mode: Mode) -> Result<Raw, ScenarioError> {
    let mut root: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ScenarioError::syntax(file, &e.to_string()))?;
    let mut overridden = HashSet::new();
    for raw in overrides {
        overridden.insert(overrides::apply(&mut root, raw, file)?);
    }
    let ctx = Ctx { file, overridden: &overridden };
    let top = TableReader::new(&ctx, "", &root, ROOT_KEYS);
    top.check_keys()?;
    let _ = top.string_opt("description")?;
    let loop_table =
        top.table_req("loop", "the loop profile: test_s, max_turns, tests (overhead_s, parallel_tests optional)")?;
    let loop_profile = read_loop(&TableReader::new(&ctx, "loop", loop_table, LOOP_KEYS), mode)?;
    let models_table = top.table_req("models", "one [models.NAME] table per model")?;
    let mut models = Vec::new();
    for (name, value) in models_table {
        let path = format!("models.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ctx.invalid(&path, "is not a usable model name; use letters, digits, '_' and '-' only"));
        }
        let table = value.as_table().ok_or_else(|| ctx.invalid(&path, "must be a table of model fields"))?;
        let model = read_model(&TableReader::new(&ctx, &path, table, MODEL_KEYS), &loop_profile, mode)?;
        models.push((name.clone(), model));
    }
    if models.is_empty() {
        return Err(ctx.invalid("models", "has no models; add at least one [models.NAME] table"));
    }
    let names: Vec<String> = models.iter().map(|(n, _)| n.clone()).collect();
    let policies_table = top.table_opt("policies")?;
    let policies = match policies_table {
        Some(t) => read_policies(&TableReader::new(&ctx, "policies", t, POLICY_KEYS), &names, &loop_profile.mean)?,
        None => PolicySpec::default_for(&names),
    };
    let policies_given = policies_table.is_some();
    Ok(Raw { loop_profile, models, policies, policies_given, overridden })
}

const ROOT_KEYS: &[&str] = &["description", "loop", "models", "policies"];
const LOOP_KEYS: &[&str] = &[
    "test_s",
    "overhead_s",
    "max_turns",
    "tests",
    "parallel_tests",
    "flaky",
    "max_wall_s",
    "max_usd",
    "restart_after",
];
const SIM_ONLY_LOOP_KEYS: &[&str] = &["flaky", "max_wall_s", "max_usd", "restart_after"];
const MODEL_KEYS: &[&str] = &[
    "ttft_s",
    "prefill_tokens_per_s",
    "tokens_per_s",
    "output_tokens",
    "input_tokens",
    "input_growth_tokens",
    "usd_per_mtok_in",
    "usd_per_mtok_out",
    "cached_share",
    "usd_per_mtok_cached_in",
    "p_first",
    "p_retry",
    "ceiling",
    "r",
    "first_score",
    "quality",
    "thrash",
    "rate_limit_rps",
    "max_concurrent",
];
const SIM_ONLY_MODEL_KEYS: &[&str] = &["quality", "thrash", "rate_limit_rps", "max_concurrent"];
const POLICY_KEYS: &[&str] = &["best_of", "race", "escalate"];

/// In `calc`, refuse what only the simulator understands.
fn refuse_sim_only(t: &TableReader, keys: &[&str], mode: Mode) -> Result<(), ScenarioError> {
    if mode == Mode::Calc {
        if let Some(k) = keys.iter().find(|k| t.has(k)) {
            return Err(t.invalid(
                k,
                "is used by `loopvel simulate` only: calc's closed forms have no place for it; \
                 remove it, or run `loopvel simulate` on this file",
            ));
        }
    }
    Ok(())
}

/// A field that `simulate` lets be a distribution; `calc` needs a number.
fn param(t: &TableReader, key: &str, domain: Domain, what: &str, mode: Mode) -> Result<Dist, ScenarioError> {
    let d = t.dist_req(key, domain, what)?;
    constant_in_calc(t, key, d, mode)
}

fn param_opt(t: &TableReader, key: &str, domain: Domain, mode: Mode) -> Result<Option<Dist>, ScenarioError> {
    t.dist_opt(key, domain)?.map(|d| constant_in_calc(t, key, d, mode)).transpose()
}

fn constant_in_calc(t: &TableReader, key: &str, d: Dist, mode: Mode) -> Result<Dist, ScenarioError> {
    if mode == Mode::Calc && d.as_const().is_none() {
        return Err(t.invalid(
            key,
            "is a distribution; calc's closed forms need a number (its mean or median); \
             `loopvel simulate` takes distributions",
        ));
    }
    Ok(d)
}

fn read_loop(t: &TableReader, mode: Mode) -> Result<RawLoop, ScenarioError> {
    t.check_keys()?;
    refuse_sim_only(t, SIM_ONLY_LOOP_KEYS, mode)?;
    let test_s = param(t, "test_s", Domain::NonNegative, "time to run the tests once, in seconds", mode)?;
    let overhead_s = t.f64_opt("overhead_s", 0.0, Check::NonNegative)?;
    let max_turns = t.u32_req("max_turns", 1, MAX_TURNS_LIMIT, "the most turns a run may take")?;
    let tests = t.u32_req("tests", 1, u32::MAX, "the number of tests that must all pass")?;
    let parallel_tests = t.bool_opt("parallel_tests", true)?;
    let budget = |key: &str| -> Result<Option<f64>, ScenarioError> {
        let v = t.f64_opt(key, f64::INFINITY, Check::Positive)?;
        Ok(v.is_finite().then_some(v))
    };
    let sim = SimLoop {
        test_s: test_s.clone(),
        overhead_s,
        max_turns,
        tests,
        parallel_tests,
        flaky: t.f64_opt("flaky", 0.0, Check::Probability)?,
        max_wall_s: budget("max_wall_s")?,
        max_usd: budget("max_usd")?,
        // 0 (the default) never restarts, so a sweep can start from the plain loop.
        restart_after: t.u32_opt("restart_after", 0, MAX_TURNS_LIMIT)?.filter(|k| *k > 0),
    };
    let profile = |test_s: f64| LoopProfile { test_s, overhead_s, max_turns, tests, parallel_tests };
    Ok(RawLoop { constant: test_s.as_const().map(profile), mean: profile(test_s.mean()), sim })
}

fn read_model(t: &TableReader, lp: &RawLoop, mode: Mode) -> Result<RawModel, ScenarioError> {
    t.check_keys()?;
    refuse_sim_only(t, SIM_ONLY_MODEL_KEYS, mode)?;
    let ttft_s = param(t, "ttft_s", Domain::NonNegative, "time to first token, in seconds", mode)?;
    let tokens_per_s = param(t, "tokens_per_s", Domain::Positive, "decode speed, in tokens per second", mode)?;
    // Prompt processing: the first token of turn n also waits input(n) / prefill_tokens_per_s.
    let prefill = t.f64_opt("prefill_tokens_per_s", f64::INFINITY, Check::Positive)?;
    let prefill_tokens_per_s = prefill.is_finite().then_some(prefill);
    let output_tokens = param(t, "output_tokens", Domain::NonNegative, "output tokens per attempt", mode)?;
    let input_tokens = t.f64_req("input_tokens", Check::NonNegative, "prompt tokens of the first attempt")?;
    let input_growth_tokens = t.f64_opt("input_growth_tokens", 0.0, Check::NonNegative)?;
    let usd_per_mtok_in =
        t.f64_req("usd_per_mtok_in", Check::NonNegative, "input price, US dollars per million tokens")?;
    let usd_per_mtok_out =
        t.f64_req("usd_per_mtok_out", Check::NonNegative, "output price, US dollars per million tokens")?;
    // Without a cached price, cached tokens cost what any input token costs (no saving is assumed).
    let cached_share = t.f64_opt("cached_share", 0.0, Check::Probability)?;
    let usd_per_mtok_cached_in = t.f64_opt("usd_per_mtok_cached_in", usd_per_mtok_in, Check::NonNegative)?;
    let ceiling = t.f64_opt("ceiling", 1.0, Check::Probability)?;
    let quality_kind = t.string_opt("quality")?.unwrap_or("hazard");
    let (hazard_needed, tests_needed) = match (mode, quality_kind) {
        (Mode::Calc, _) => (true, true),
        (Mode::Simulate, "hazard") => (true, false),
        (Mode::Simulate, "tests") => (false, true),
        (_, other) => {
            return Err(t.invalid(
                "quality",
                &format!(
                    "= \"{other}\" is not a quality model; use \"hazard\" (p_first, p_retry, ceiling) \
                     or \"tests\" (first_score, r)"
                ),
            ))
        }
    };
    let quality_field = |key: &str, needed: bool, what: &str| -> Result<Option<Dist>, ScenarioError> {
        if needed {
            param(t, key, Domain::Probability, what, mode).map(Some)
        } else {
            param_opt(t, key, Domain::Probability, mode)
        }
    };
    let p_first = quality_field("p_first", hazard_needed, "chance the first attempt passes")?;
    let p_retry = quality_field("p_retry", hazard_needed, "chance a later turn passes, given no pass yet")?;
    let r = quality_field("r", tests_needed, "share of the remaining error fixed per turn")?;
    let first_score = quality_field("first_score", tests_needed, "share of tests passing after the first attempt")?;
    let quality = match (quality_kind, &p_first, &p_retry, &first_score, &r) {
        ("tests", _, _, Some(fs), Some(r)) => Quality::Tests { first_score: fs.clone(), r: r.clone(), ceiling },
        (_, Some(p1), Some(p2), _, _) => Quality::Hazard { p_first: p1.clone(), p_retry: p2.clone(), ceiling },
        _ => return Err(t.invalid("quality", "is missing the fields it needs")),
    };
    let rate_limit_rps = t.f64_opt("rate_limit_rps", f64::INFINITY, Check::Positive)?;
    // The calc view: every field a number. Also its mean view, for default escalation switch points.
    let profile_with = |value: &dyn Fn(&Dist) -> Option<f64>| -> Option<ModelProfile> {
        Some(ModelProfile {
            ttft_s: value(&ttft_s)?,
            prefill_tokens_per_s,
            tokens_per_s: value(&tokens_per_s)?,
            output_tokens: value(&output_tokens)?,
            input_tokens,
            input_growth_tokens,
            usd_per_mtok_in,
            usd_per_mtok_out,
            cached_share,
            usd_per_mtok_cached_in,
            p_first: value(p_first.as_ref()?)?,
            p_retry: value(p_retry.as_ref()?)?,
            ceiling,
            r: r.as_ref().and_then(value).unwrap_or(0.0),
            first_score: first_score.as_ref().and_then(value).unwrap_or(0.0),
        })
    };
    let profile = profile_with(&|d: &Dist| d.as_const());
    let mean_profile = if quality_kind == "hazard" { profile_with(&|d: &Dist| Some(d.mean())) } else { None };
    if mode == Mode::Calc {
        if let Some(m) = &profile {
            if m.r == 0.0 && 1.0 - m.first_score >= target_error(lp.mean.tests) {
                return Err(t.invalid(
                    "r",
                    &format!(
                        "= 0 never converges: first_score {} leaves more than 1/{} of the tests failing and no turn \
                         fixes any; give r > 0 (the share of remaining error fixed per turn)",
                        m.first_score, lp.mean.tests
                    ),
                ));
            }
        }
    }
    let sim = SimModel {
        ttft_s,
        prefill_tokens_per_s,
        ttft_by_turn: Vec::new(),
        tokens_per_s_by_turn: Vec::new(),
        output_tokens_on_pass: None,
        tokens_per_s,
        output_tokens,
        input_tokens,
        input_growth_tokens,
        usd_per_mtok_in,
        usd_per_mtok_out,
        cached_share,
        usd_per_mtok_cached_in,
        quality,
        thrash: t.f64_opt("thrash", 0.0, Check::Probability)?,
        rate_limit_rps: rate_limit_rps.is_finite().then_some(rate_limit_rps),
        max_concurrent: t.u32_opt("max_concurrent", 1, 1_000_000)?,
        profile: profile.clone(),
    };
    Ok(RawModel { sim, profile, mean_profile })
}

fn read_policies(t: &TableReader, names: &[String], lp: &LoopProfile) -> Result<PolicySpec, ScenarioError> {
    t.check_keys()?;
    let known = |key: &str, name: &str| -> Result<String, ScenarioError> {
        if names.iter().any(|n| n == name) {
            Ok(name.to_string())
        } else {
            Err(t.invalid(
                key,
                &format!("names model `{name}`, which the scenario does not have; models are: {}", names.join(", ")),
            ))
        }
    };
    let mut best_of = Vec::new();
    for (i, v) in t.array_opt("best_of")?.iter().enumerate() {
        let key = format!("best_of[{i}]");
        match v.as_integer() {
            Some(k) if (2..=i64::from(MAX_BEST_OF)).contains(&k) => best_of.push(k as u32),
            _ => {
                return Err(
                    t.invalid(&key, &format!("= {v} is not allowed; give a whole number from 2 to {MAX_BEST_OF}"))
                )
            }
        }
    }
    let mut race = Vec::new();
    for (i, v) in t.array_opt("race")?.iter().enumerate() {
        let key = format!("race[{i}]");
        let pair = v.as_array().filter(|a| a.len() == 2).and_then(|a| Some((a[0].as_str()?, a[1].as_str()?)));
        let Some((a, b)) = pair else {
            return Err(t.invalid(&key, "must be a pair of model names, e.g. [\"fast\", \"frontier\"]"));
        };
        if a == b {
            return Err(t.invalid(&key, "races a model against itself; name two different models"));
        }
        race.push((known(&key, a)?, known(&key, b)?));
    }
    let mut escalate = Vec::new();
    for (i, v) in t.array_opt("escalate")?.iter().enumerate() {
        let key = format!("escalate[{i}]");
        let Some(table) = v.as_table() else {
            return Err(t.invalid(
                &key,
                "must be a table like { from = \"fast\", to = \"frontier\", after = 3 } (after optional)",
            ));
        };
        let sub = TableReader::new(t.ctx, &format!("policies.{key}"), table, &["from", "to", "after"]);
        sub.check_keys()?;
        let from = known(&key, &sub.string_req("from", "the model that starts")?)?;
        let to = known(&key, &sub.string_req("to", "the model that takes over")?)?;
        if from == to {
            return Err(t.invalid(&key, "escalates a model to itself; name two different models"));
        }
        let after = sub.u32_opt("after", 0, lp.max_turns)?;
        escalate.push(EscalateSpec { from, to, after });
    }
    Ok(PolicySpec { best_of, race, escalate })
}

#[cfg(test)]
mod tests;
