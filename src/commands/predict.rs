//! `loopvel predict`: rank models and policies for a budget from the fitted parameters.

use std::io::Write;

use loopvel_analysis::predict::{self, Change, Prediction, Question, WhatIf, LOOP_FIELDS, MODEL_FIELDS};
use loopvel_analysis::predict_check;
use loopvel_math::units::{count, percent, seconds, usd, with_interval};
use serde_json::json;

use crate::cli::PredictArgs;
use crate::commands::plans::select;
use crate::commands::report::load;
use crate::error::CliError;
use crate::render::{bullet, wrap, Layout, Table};

/// Reads `models.NAME.FIELD=VALUE` or `loop.FIELD=VALUE`; VALUE a number or `xF`.
pub fn parse_what_if(text: &str) -> Result<WhatIf, CliError> {
    let bad = |why: String| CliError::Usage(format!("--what-if {text}: {why}"));
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. models.fast.tokens_per_s=x10 or loop.test_s=30".into()))?;
    let (model, field) = if let Some(rest) = key.strip_prefix("models.") {
        let (name, field) = rest
            .rsplit_once('.')
            .ok_or_else(|| bad("a model key is models.NAME.FIELD, e.g. models.fast.tokens_per_s".into()))?;
        if !MODEL_FIELDS.contains(&field) {
            return Err(bad(format!("unknown model field {field:?}; one of {}", MODEL_FIELDS.join(", "))));
        }
        (Some(name.to_string()), field.to_string())
    } else if let Some(field) = key.strip_prefix("loop.") {
        if !LOOP_FIELDS.contains(&field) {
            return Err(bad(format!("unknown loop field {field:?}; one of {}", LOOP_FIELDS.join(", "))));
        }
        (None, field.to_string())
    } else {
        return Err(bad("the key starts with models.NAME. or loop.".into()));
    };
    let v = value.trim();
    let (scale, number) = match v.strip_prefix('x').or_else(|| v.strip_prefix('×')) {
        Some(f) => (true, f),
        None => (false, v),
    };
    let x: f64 = number.parse().map_err(|_| bad(format!("{v:?} is not a number or xFACTOR (x10, x0.5)")))?;
    if !x.is_finite() || x < 0.0 || (scale && x == 0.0) {
        return Err(bad(format!("{v:?} must be a finite number ≥ 0 (a factor > 0)")));
    }
    let probability = matches!(field.as_str(), "p_first" | "p_retry" | "ceiling");
    if probability && !scale && x > 1.0 {
        return Err(bad(format!("{field} is a probability; give a value from 0 to 1")));
    }
    Ok(WhatIf { model, field, change: if scale { Change::Scale(x) } else { Change::Set(x) } })
}

/// Predict.
pub fn run(args: &PredictArgs, out: &mut impl Write) -> Result<(), CliError> {
    if !(1..=8).contains(&args.max_k) {
        return Err(CliError::Usage(format!("--max-k {}: give 1 to 8", args.max_k)));
    }
    for (flag, v) in [("--max-wall-s", args.max_wall_s), ("--max-usd", args.max_usd)] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                return Err(CliError::Usage(format!("{flag} {v}: give a number > 0")));
            }
        }
    }
    if args.max_turns == Some(0) {
        return Err(CliError::Usage("--max-turns 0: give at least 1".into()));
    }
    if args.resamples == 0 || args.runs == 0 {
        return Err(CliError::Usage("--resamples and --runs must be at least 1".into()));
    }
    let what_ifs = args.what_if.iter().map(|w| parse_what_if(w)).collect::<Result<Vec<_>, _>>()?;
    let plans = select(&args.db, args.plans.choice(), "predict")?;
    let runs = load(&args.db, &[], &plans)?;
    for line in &plans.notes {
        eprintln!("{line}");
    }
    // The budget the runs were recorded under, not the most turns one happened to take.
    let max_turns = args.max_turns.or(plans.max_turns);
    let question = |what_ifs: Vec<WhatIf>| Question {
        max_turns,
        max_wall_s: args.max_wall_s,
        max_usd: args.max_usd,
        resamples: args.resamples,
        runs: args.runs,
        seed: args.seed,
        max_k: args.max_k,
        what_ifs,
    };
    if args.check && !(1..=1000).contains(&args.splits) {
        return Err(CliError::Usage(format!("--splits {}: give 1 to 1,000", args.splits)));
    }
    let err = |e: predict::PredictError| CliError::Usage(format!("{}: {e}", crate::commands::shown(&args.db)));
    let baseline = predict::predict(&runs, &question(Vec::new())).map_err(err)?;
    let changed =
        if what_ifs.is_empty() { None } else { Some(predict::predict(&runs, &question(what_ifs)).map_err(err)?) };
    let check = args.check.then(|| {
        let fitted: Vec<&str> = baseline.models.iter().map(|m| m.model.as_str()).collect();
        let mine: Vec<loopvel_analysis::trace::Run> =
            runs.iter().filter(|r| fitted.contains(&r.model.as_str())).cloned().collect();
        predict_check::check(
            &mine,
            &predict_check::CheckQuestion {
                splits: args.splits,
                // Fewer resamples and runs per split than a prediction: each split is one of many.
                resamples: args.resamples.min(20),
                runs: args.runs.min(2000),
                seed: args.seed,
                max_turns: baseline.max_turns,
                max_wall_s: args.max_wall_s,
            },
        )
    });
    if args.json {
        let v = json!({ "db": crate::commands::shown(&args.db).to_string(), "plans": plans.json, "as_recorded": baseline, "what_if": changed.as_ref().map(|c| json!({ "changes": args.what_if, "prediction": c })), "check": check });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
        return Ok(());
    }
    let layout = Layout::detect(args.wide);
    let budget = format!(
        "{}, {}, {}",
        count(u64::from(baseline.max_turns), "turn"),
        args.max_wall_s.map_or("no wall-time budget".into(), |s| format!("{} wall time", seconds(s))),
        args.max_usd.map_or("no cost budget".into(), |u| format!("{} per run", usd(u)))
    );
    let intro = format!(
        "loopvel predict — {}: budget per run {budget}; {} × {} per policy",
        crate::commands::shown(&args.db),
        count(args.resamples as u64, "parameter resample"),
        count(args.runs, "simulated run")
    );
    writeln!(out, "{}\n", wrap(&intro, layout.text_width()))?;
    match &changed {
        None => write!(out, "{}", text(&baseline, "As recorded", layout))?,
        Some(c) => {
            write!(out, "{}", answers(&baseline, "As recorded", layout))?;
            writeln!(out)?;
            write!(out, "{}", text(c, &format!("What if {}", args.what_if.join(", ")), layout))?;
        }
    }
    write!(out, "\n{}", fitted_text(&baseline, layout))?;
    if let Some(c) = &check {
        write!(out, "\n{}", check_text(c, args.splits, layout))?;
    }
    Ok(())
}

/// What was fitted per model: the pass model over tasks, time by turn, and
/// the plain loop as predicted against as recorded.
fn fitted_text(p: &Prediction, layout: Layout) -> String {
    let width = layout.text_width();
    let mut t = Table::new(["model", "pass rate recorded", "predicted", "mean time to pass recorded", "predicted"]);
    for m in &p.models {
        let row = p.policies.iter().find(|r| r.policy == m.model);
        t.row(vec![
            m.model.clone(),
            percent(m.observed_pass_rate),
            row.map_or("n/a".into(), |r| range(Some(r.pass_rate), percent)),
            m.observed_mean_time_to_pass_s.map_or("n/a".into(), seconds),
            row.map_or("n/a".into(), |r| range(r.mean_time_to_pass_s, seconds)),
        ]);
    }
    let mut s = format!(
        "{}\n{}\n",
        wrap("Predicted against recorded: each model's plain loop as it ran (95% prediction intervals)", width),
        t.render(layout)
    );
    let mut by_turn =
        Table::new(["model", "turn", "prompt", "first token fitted", "recorded", "model time fitted", "recorded"]);
    for m in &p.models {
        for turn in &m.turns {
            by_turn.row(vec![
                m.model.clone(),
                turn.turn.to_string(),
                loopvel_math::units::tokens(turn.input_tokens),
                seconds(turn.ttft_s),
                turn.recorded_ttft_s.map_or("n/a".into(), seconds),
                seconds(turn.model_s),
                turn.recorded_model_s
                    .map_or("n/a".into(), |x| format!("{} ({})", seconds(x), count(turn.recorded as u64, "turn"))),
            ]);
        }
    }
    s.push_str(&format!(
        "\n{}\n{}\n",
        wrap(
            "Time by turn: the prompt fitted by turn, the first token waiting for its prefill, a failing reply's decode (means; recorded: every turn at that index)",
            width
        ),
        by_turn.render(layout)
    ));
    for m in &p.models {
        let [p_first, p_retry, ceiling] = m.pass_model;
        let line = format!(
            "{}: over tasks, {} of tasks solvable; on those, the first attempt passes {} of the time and a later turn {}; {}; replies of {} when they fail{}.",
            m.model,
            percent(ceiling),
            percent(p_first),
            percent(p_retry),
            m.prefill_tokens_per_s.map_or("the first token does not wait longer for a longer prompt".into(), |v| format!("prompts prefill at {}", loopvel_math::units::tokens_per_s(v))),
            m.output_tokens[0].map_or("n/a".into(), loopvel_math::units::tokens),
            m.output_tokens[1].map_or(String::new(), |n| format!(", {} when they pass", loopvel_math::units::tokens(n)))
        );
        s.push_str(&format!("{}\n", bullet(&line, width)));
    }
    s
}

/// `predict --check`: coverage of the held-out statistics.
fn check_text(c: &[predict_check::PredictCoverage], splits: usize, layout: Layout) -> String {
    let mut t = Table::new(["model", "policy", "held out", "inside, by run", "inside, by task"]);
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for x in c {
        let k = (x.model.as_str(), x.policy.as_str(), x.metric.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let cell = |k: &(&str, &str, &str), split: &str| {
        c.iter().find(|x| (x.model.as_str(), x.policy.as_str(), x.metric.as_str()) == *k && x.split == split).map_or(
            "n/a".to_string(),
            |x| {
                if x.checked == 0 {
                    "n/a".into()
                } else {
                    format!("{}/{} ({})", x.inside, x.checked, percent(x.inside as f64 / x.checked as f64))
                }
            },
        )
    };
    for k in &keys {
        let policy = if k.1 == "plain" { "plain loop".to_string() } else { k.1.replace('_', "-") };
        t.row(vec![k.0.to_string(), policy, k.2.to_string(), cell(k, "runs"), cell(k, "tasks")]);
    }
    format!(
        "{}\n{}\n",
        wrap(
            &format!(
                "Hold-out check of predict: {splits} splits of each kind, fit on the rest, predict what the held-out part shows; by run holds out half of each task's runs, by task half of the tasks. A 95% prediction interval should hold about 95% (splits whose held-out part has no pass do not count for the mean time)."
            ),
            layout.text_width()
        ),
        t.render(layout)
    )
}

/// One answer: `- lowest mean time to pass: fast, 12.3 s (10.1–14.6 s); best in 80.0% of resamples`.
/// A tie is exact equality in a resample (such a resample has no winner); the
/// answer says "tie" where the best policy tied with others in every resample,
/// and how often it tied otherwise.
fn best_line(
    p: &Prediction,
    name: &Option<String>,
    tied_with: &[String],
    what: &str,
    width: usize,
    metric: impl Fn(&predict::PolicyPrediction) -> (String, f64, f64),
) -> String {
    let line = match name.as_ref().and_then(|n| p.policies.iter().find(|r| &r.policy == n)) {
        None => format!("- {what}: n/a (no policy passes)"),
        Some(r) => {
            let (shown, share, tied) = metric(r);
            let verdict = if !tied_with.is_empty() {
                let named = tied_with.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
                let more = match tied_with.len().saturating_sub(3) {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                format!("tie with {named}{more}: equal in every resample")
            } else if tied > 0.0 {
                format!("best in {} of resamples, tied for best in {}", percent(share), percent(tied))
            } else {
                format!("best in {} of resamples", percent(share))
            };
            format!("- {what}: {}, {shown}; {verdict}", r.policy)
        }
    };
    format!("{}\n", bullet(&line, width))
}

fn range(p: Option<predict::Predicted>, f: fn(f64) -> String) -> String {
    p.map_or("n/a".into(), |p| with_interval(p.value, Some(p.interval), f))
}

/// The three answers.
fn answers(p: &Prediction, heading: &str, layout: Layout) -> String {
    let width = layout.text_width();
    let mut s = format!("{heading} — median over resamples (95% prediction interval):\n");
    s.push_str(&best_line(p, &p.best_pass_rate, &p.best_pass_rate_tied_with, "highest pass rate", width, |r| {
        (range(Some(r.pass_rate), percent), r.best_pass_rate_share, r.tied_best_pass_rate_share)
    }));
    s.push_str(&best_line(p, &p.best_time, &p.best_time_tied_with, "lowest mean time to pass", width, |r| {
        (range(r.mean_time_to_pass_s, seconds), r.best_time_share, r.tied_best_time_share)
    }));
    let all_free = p.policies.iter().all(|r| r.usd_per_solved.is_none_or(|c| c.interval[1] == 0.0));
    if all_free {
        let line =
            "- lowest cost per solved task: n/a: every policy costs $0.00 here (no prices recorded, e.g. local models)";
        s.push_str(&format!("{}\n", bullet(line, width)));
    } else {
        s.push_str(&best_line(p, &p.best_cost, &p.best_cost_tied_with, "lowest cost per solved task", width, |r| {
            (range(r.usd_per_solved, usd), r.best_cost_share, r.tied_best_cost_share)
        }));
    }
    s
}

/// The answers, every policy, and what bounds each loop.
fn text(p: &Prediction, heading: &str, layout: Layout) -> String {
    let width = layout.text_width();
    let mut s = answers(p, heading, layout);
    let all_free = p.policies.iter().all(|r| r.usd_per_solved.is_none_or(|c| c.interval[1] == 0.0));
    // Narrow: who wins how often is in the answers above; a cost column of
    // $0.00 everywhere (local models) says nothing.
    let secondary: &[usize] = if all_free { &[3, 4] } else { &[4] };
    let mut t =
        Table::new(["policy", "pass rate", "mean time to pass", "cost per solved task", "best: pass / time / cost"])
            .secondary(secondary);
    for r in &p.policies {
        t.row(vec![
            r.policy.clone(),
            range(Some(r.pass_rate), percent),
            range(r.mean_time_to_pass_s, seconds),
            range(r.usd_per_solved, usd),
            format!(
                "{} / {} / {}",
                percent(r.best_pass_rate_share),
                percent(r.best_time_share),
                percent(r.best_cost_share)
            ),
        ]);
    }
    let title = if layout.wide {
        "Every policy (95% prediction intervals; 'best' = share of resamples it won; a resample where policies tie exactly has no winner)"
    } else {
        "Every policy (95% prediction intervals)"
    };
    s.push_str(&format!("\n{title}\n{}\n", t.render(layout)));
    if layout.narrow() {
        let hidden: Vec<&str> = secondary
            .iter()
            .map(|&i| {
                [
                    "policy",
                    "pass rate",
                    "mean time to pass",
                    "cost per solved task",
                    "share of resamples each policy won",
                ][i]
            })
            .collect();
        s.push_str(&crate::render::simulate::hidden_note(&hidden, width));
    }
    s.push_str("\nWhat bounds each loop\n");
    for m in &p.models {
        let line = if m.tests_bound {
            format!(
                "- {}: the tests bound this loop: {} of tests against {} of model per turn; even an infinitely fast model speeds the turn up at most {}.",
                m.model,
                seconds(m.test_s_per_turn),
                seconds(m.model_s_per_turn),
                m.amdahl_limit.map_or("unboundedly".into(), loopvel_math::units::factor)
            )
        } else {
            format!(
                "- {}: the model bounds this loop: {} of model against {} of tests per turn, so a faster model shortens it.",
                m.model,
                seconds(m.model_s_per_turn),
                seconds(m.test_s_per_turn)
            )
        };
        s.push_str(&format!("{}\n", bullet(&line, width)));
    }
    s.push_str(&format!(
        "{}\n",
        bullet(
            "best-of-k and race assume the candidates generate in parallel, each at the model's own speed (true of hosted APIs, not of one local server that answers one request at a time).",
            width
        )
    ));
    for n in &p.notes {
        s.push_str(&format!("{}\n", bullet(n, width)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ifs_parse_with_dotted_model_names() {
        let w = parse_what_if("models.qwen-0.5b.tokens_per_s=x10").unwrap();
        assert_eq!(w.model.as_deref(), Some("qwen-0.5b"));
        assert_eq!(w.field, "tokens_per_s");
        assert_eq!(w.change, Change::Scale(10.0));
        assert_eq!(parse_what_if("loop.test_s=30").unwrap().change, Change::Set(30.0));
        for bad in [
            "loop.test_s",
            "loop.speed=3",
            "models.a.p_first=2",
            "models.a.ttft_s=fast",
            "models.tokens_per_s=x2",
            "x=1",
        ] {
            assert!(parse_what_if(bad).is_err(), "{bad}");
        }
    }
}
