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

use loopvel_math::calc::{EscalateSpec, PolicySpec, Scenario};
use loopvel_math::compounding::target_error;
use loopvel_math::{LoopProfile, ModelProfile};

pub use reader::ScenarioError;
use reader::{Check, Ctx, TableReader};

/// Largest turn budget accepted; the exact sums are linear in it.
pub const MAX_TURNS_LIMIT: u32 = 100_000;
/// Largest best-of-k accepted.
pub const MAX_BEST_OF: u32 = 64;

/// Parse scenario `text` (quoted as `file` in errors), apply `overrides`
/// (`dotted.key=value`, value in TOML syntax, bare words taken as strings),
/// and validate everything.
pub fn parse_scenario(
    text: &str,
    file: &str,
    overrides: &[String],
) -> Result<Scenario, ScenarioError> {
    let mut root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ScenarioError::syntax(file, &e.to_string()))?;
    let mut overridden = HashSet::new();
    for raw in overrides {
        overridden.insert(overrides::apply(&mut root, raw, file)?);
    }
    let ctx = Ctx {
        file,
        overridden: &overridden,
    };
    read_root(&root, &ctx)
}

const ROOT_KEYS: &[&str] = &["description", "loop", "models", "policies"];
const LOOP_KEYS: &[&str] = &[
    "test_s",
    "overhead_s",
    "max_turns",
    "tests",
    "parallel_tests",
];
const MODEL_KEYS: &[&str] = &[
    "ttft_s",
    "tokens_per_s",
    "output_tokens",
    "input_tokens",
    "input_growth_tokens",
    "usd_per_mtok_in",
    "usd_per_mtok_out",
    "p_first",
    "p_retry",
    "ceiling",
    "r",
    "first_score",
];
const POLICY_KEYS: &[&str] = &["best_of", "race", "escalate"];

fn read_root(root: &toml::Table, ctx: &Ctx) -> Result<Scenario, ScenarioError> {
    let top = TableReader::new(ctx, "", root, ROOT_KEYS);
    top.check_keys()?;
    let _ = top.string_opt("description")?;
    let loop_table = top.table_req(
        "loop",
        "the loop profile: test_s, max_turns, tests (overhead_s, parallel_tests optional)",
    )?;
    let loop_profile = read_loop(&TableReader::new(ctx, "loop", loop_table, LOOP_KEYS))?;
    let models_table = top.table_req("models", "one [models.NAME] table per model")?;
    let mut models = Vec::new();
    for (name, value) in models_table {
        let path = format!("models.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ctx.invalid(
                &path,
                "is not a usable model name; use letters, digits, '_' and '-' only",
            ));
        }
        let table = value
            .as_table()
            .ok_or_else(|| ctx.invalid(&path, "must be a table of model fields"))?;
        let model = read_model(
            &TableReader::new(ctx, &path, table, MODEL_KEYS),
            &loop_profile,
        )?;
        models.push((name.clone(), model));
    }
    if models.is_empty() {
        return Err(ctx.invalid(
            "models",
            "has no models; add at least one [models.NAME] table",
        ));
    }
    let names: Vec<String> = models.iter().map(|(n, _)| n.clone()).collect();
    let policies = match top.table_opt("policies")? {
        Some(t) => read_policies(
            &TableReader::new(ctx, "policies", t, POLICY_KEYS),
            &names,
            &loop_profile,
        )?,
        None => PolicySpec::default_for(&names),
    };
    Ok(Scenario {
        loop_profile,
        models,
        policies,
    })
}

fn read_loop(t: &TableReader) -> Result<LoopProfile, ScenarioError> {
    t.check_keys()?;
    Ok(LoopProfile {
        test_s: t.f64_req(
            "test_s",
            Check::NonNegative,
            "time to run the tests once, in seconds",
        )?,
        overhead_s: t.f64_opt("overhead_s", 0.0, Check::NonNegative)?,
        max_turns: t.u32_req(
            "max_turns",
            1,
            MAX_TURNS_LIMIT,
            "the most turns a run may take",
        )?,
        tests: t.u32_req(
            "tests",
            1,
            u32::MAX,
            "the number of tests that must all pass",
        )?,
        parallel_tests: t.bool_opt("parallel_tests", true)?,
    })
}

fn read_model(t: &TableReader, lp: &LoopProfile) -> Result<ModelProfile, ScenarioError> {
    t.check_keys()?;
    let model = ModelProfile {
        ttft_s: t.f64_req(
            "ttft_s",
            Check::NonNegative,
            "time to first token, in seconds",
        )?,
        tokens_per_s: t.f64_req(
            "tokens_per_s",
            Check::Positive,
            "decode speed, in tokens per second",
        )?,
        output_tokens: t.f64_req(
            "output_tokens",
            Check::NonNegative,
            "output tokens per attempt",
        )?,
        input_tokens: t.f64_req(
            "input_tokens",
            Check::NonNegative,
            "prompt tokens of the first attempt",
        )?,
        input_growth_tokens: t.f64_opt("input_growth_tokens", 0.0, Check::NonNegative)?,
        usd_per_mtok_in: t.f64_req(
            "usd_per_mtok_in",
            Check::NonNegative,
            "input price, US dollars per million tokens",
        )?,
        usd_per_mtok_out: t.f64_req(
            "usd_per_mtok_out",
            Check::NonNegative,
            "output price, US dollars per million tokens",
        )?,
        p_first: t.f64_req(
            "p_first",
            Check::Probability,
            "chance the first attempt passes",
        )?,
        p_retry: t.f64_req(
            "p_retry",
            Check::Probability,
            "chance a later turn passes, given no pass yet",
        )?,
        ceiling: t.f64_opt("ceiling", 1.0, Check::Probability)?,
        r: t.f64_req(
            "r",
            Check::Probability,
            "share of the remaining error fixed per turn",
        )?,
        first_score: t.f64_req(
            "first_score",
            Check::Probability,
            "share of tests passing after the first attempt",
        )?,
    };
    if model.r == 0.0 && 1.0 - model.first_score >= target_error(lp.tests) {
        return Err(t.invalid(
            "r",
            &format!(
                "= 0 never converges: first_score {} leaves more than 1/{} of the tests failing and no turn fixes any; \
                 give r > 0 (the share of remaining error fixed per turn)",
                model.first_score, lp.tests
            ),
        ));
    }
    Ok(model)
}

fn read_policies(
    t: &TableReader,
    names: &[String],
    lp: &LoopProfile,
) -> Result<PolicySpec, ScenarioError> {
    t.check_keys()?;
    let known = |key: &str, name: &str| -> Result<String, ScenarioError> {
        if names.iter().any(|n| n == name) {
            Ok(name.to_string())
        } else {
            Err(t.invalid(
                key,
                &format!(
                    "names model `{name}`, which the scenario does not have; models are: {}",
                    names.join(", ")
                ),
            ))
        }
    };
    let mut best_of = Vec::new();
    for (i, v) in t.array_opt("best_of")?.iter().enumerate() {
        let key = format!("best_of[{i}]");
        match v.as_integer() {
            Some(k) if (2..=i64::from(MAX_BEST_OF)).contains(&k) => best_of.push(k as u32),
            _ => {
                return Err(t.invalid(
                    &key,
                    &format!("= {v} is not allowed; give a whole number from 2 to {MAX_BEST_OF}"),
                ))
            }
        }
    }
    let mut race = Vec::new();
    for (i, v) in t.array_opt("race")?.iter().enumerate() {
        let key = format!("race[{i}]");
        let pair = v
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_str()?, a[1].as_str()?)));
        let Some((a, b)) = pair else {
            return Err(t.invalid(
                &key,
                "must be a pair of model names, e.g. [\"fast\", \"frontier\"]",
            ));
        };
        if a == b {
            return Err(t.invalid(
                &key,
                "races a model against itself; name two different models",
            ));
        }
        race.push((known(&key, a)?, known(&key, b)?));
    }
    let mut escalate = Vec::new();
    for (i, v) in t.array_opt("escalate")?.iter().enumerate() {
        let key = format!("escalate[{i}]");
        let Some(table) = v.as_table() else {
            return Err(t.invalid(&key, "must be a table like { from = \"fast\", to = \"frontier\", after = 3 } (after optional)"));
        };
        let sub = TableReader::new(
            t.ctx,
            &format!("policies.{key}"),
            table,
            &["from", "to", "after"],
        );
        sub.check_keys()?;
        let from = known(&key, &sub.string_req("from", "the model that starts")?)?;
        let to = known(&key, &sub.string_req("to", "the model that takes over")?)?;
        if from == to {
            return Err(t.invalid(
                &key,
                "escalates a model to itself; name two different models",
            ));
        }
        let after = sub.u32_opt("after", 0, lp.max_turns)?;
        escalate.push(EscalateSpec { from, to, after });
    }
    Ok(PolicySpec {
        best_of,
        race,
        escalate,
    })
}

#[cfg(test)]
mod tests;
