//! The `calc` report as tables and a verdict paragraph.

use loopvel_math::calc::{CalcReport, ModelReport};
use loopvel_math::units::{count, factor, percent, seconds, turns, usd};

use super::{wrap, Layout, Table};

/// A value that may not exist (nothing passes): `n/a`.
pub(crate) fn opt(x: Option<f64>, f: fn(f64) -> String) -> String {
    x.map_or_else(|| "n/a".to_string(), f)
}

type Row = (&'static str, fn(&ModelReport, &CalcReport) -> String);

const ROWS: &[Row] = &[
    ("cycle time (per turn)", |m, _| seconds(m.cycle_s)),
    ("  generation + tests & overhead", |m, _| format!("{} + {}", seconds(m.generation_s), seconds(m.verification_s))),
    ("turns to target (napkin math)", |m, r| match m.turns_to_target {
        Some(n) if m.target_within_max_turns => count(n, "turn"),
        Some(n) => format!("{} (> {} allowed)", count(n, "turn"), r.loop_profile.max_turns),
        None => "never".into(),
    }),
    ("time to target", |m, _| opt(m.time_to_target_s, seconds)),
    ("loop velocity", |m, _| m.velocity_per_s.map_or("∞ e-folds/s".into(), |v| format!("{v:.3} e-folds/s"))),
    ("pass rate within budget", |m, _| percent(m.pass_rate)),
    ("one-shot pass rate", |m, _| percent(m.one_shot_rate)),
    ("mean turns to pass", |m, _| opt(m.mean_turns_to_pass, turns)),
    ("mean time to pass", |m, _| opt(m.mean_time_to_pass_s, seconds)),
    ("P50 / P90 time to pass", |m, _| {
        format!("{} / {}", opt(m.p50_time_to_pass_s, seconds), opt(m.p90_time_to_pass_s, seconds))
    }),
    ("wall time per solved task", |m, _| opt(m.time_per_solved_s, seconds)),
    ("cost per run", |m, _| usd(m.usd_per_run)),
    ("cost per solved task", |m, _| opt(m.usd_per_solved, usd)),
    ("loop speedup if 10× faster", |m, _| factor(m.speedup_from_10x_generation)),
    ("loop speedup ceiling (∞ faster)", |m, _| m.speedup_ceiling.map_or("unbounded".into(), factor)),
    ("bound by", |m, _| if m.tests_bound { "tests".into() } else { "model".into() }),
];

/// The whole report for a terminal.
pub fn text(report: &CalcReport, layout: Layout) -> String {
    let lp = &report.loop_profile;
    let width = layout.text_width();
    let mut out = wrap(
        &format!(
            "Loop: {} run in {} + {} overhead per turn, up to {}; best-of-k candidates tested {}.",
            count(u64::from(lp.tests), "test"),
            seconds(lp.test_s),
            seconds(lp.overhead_s),
            count(u64::from(lp.max_turns), "turn"),
            if lp.parallel_tests { "at once" } else { "one after another" }
        ),
        width,
    );
    out.push_str("\n\n");

    let mut models =
        Table::new(std::iter::once("model".to_string()).chain(report.models.0.iter().map(|(n, _)| n.clone())));
    for (label, cell) in ROWS {
        let mut row = vec![label.to_string()];
        row.extend(report.models.0.iter().map(|(_, m)| cell(m, report)));
        models.row(row);
    }
    out.push_str(&models.render(layout));
    out.push('\n');
    out.push_str(&wrap(
        "Time to pass counts runs that pass within the budget; wall time and cost per solved task also pay for the runs that fail.",
        width,
    ));
    out.push_str("\n\n");

    if !report.policies.0.is_empty() {
        // Wall time per solved task is left out when narrow: with every policy
        // near a 100% pass rate it repeats the mean time to pass.
        let mut policies = Table::new([
            "policy",
            "pass rate",
            "mean time to pass",
            "P90 time to pass",
            "wall time per solved",
            "cost per solved",
        ])
        .secondary(&[4]);
        for (name, p) in &report.policies.0 {
            let label = match p.after {
                // The switch point goes on a line of its own when narrow, so
                // the policy column stays as wide as the policy's name.
                Some(m) if layout.narrow() => format!("{name}\n  after {}", count(u64::from(m), "turn")),
                Some(m) => format!("{name}, switch after {}", count(u64::from(m), "turn")),
                None => name.clone(),
            };
            let o = &p.outcome;
            policies.row(vec![
                label,
                percent(o.pass_rate),
                opt(o.mean_time_to_pass_s, seconds),
                opt(o.p90_time_to_pass_s, seconds),
                opt(o.time_per_solved_s, seconds),
                opt(o.usd_per_solved, usd),
            ]);
        }
        out.push_str(&policies.render(layout));
        out.push('\n');
        if layout.narrow() {
            out.push_str(&super::simulate::hidden_note(&["wall time per solved task"], width));
        }
        for (name, p) in &report.policies.0 {
            if let Some(e) = &p.escalation {
                let line = format!(
                    "{name}: switching after {} gives the least mean time to pass (among switch points within {} points of the best pass rate); after {}, the least cost per solved task.",
                    count(u64::from(e.after_min_mean_time), "turn"),
                    (100.0 * report.verdict.rule.pass_rate_margin).round(),
                    e.after_min_usd_per_solved.map_or("n/a".into(), |m| count(u64::from(m), "turn")),
                );
                out.push_str(&wrap(&line, width));
                out.push('\n');
            }
        }
        out.push('\n');
    }

    out.push_str("Verdict\n");
    out.push_str(&wrap(&report.verdict.text, width));
    out.push('\n');
    out
}
