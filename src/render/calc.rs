//! The `calc` report as tables and a verdict paragraph.

use comfy_table::{CellAlignment, LineStyle, Table, TableStyle};
use loopvel_math::calc::{CalcReport, ModelReport};
use loopvel_math::units::{factor, percent, seconds, usd};

fn opt(x: Option<f64>, f: fn(f64) -> String) -> String {
    x.map_or_else(|| "n/a".to_string(), f)
}

pub(crate) fn table(header: Vec<String>) -> Table {
    let mut t = Table::new();
    let rule = LineStyle::none().fill('─').junction('─');
    t.load_style(TableStyle::new().top_border(rule).header_separator(rule).bottom_border(rule)).set_header(header);
    t
}

fn right_align_from(t: &mut Table, first: usize) {
    for i in first..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

type Row = (&'static str, fn(&ModelReport, &CalcReport) -> String);

const ROWS: &[Row] = &[
    ("cycle time (per turn)", |m, _| seconds(m.cycle_s)),
    ("  generation + tests & overhead", |m, _| format!("{} + {}", seconds(m.generation_s), seconds(m.verification_s))),
    ("turns to target (napkin math)", |m, r| match m.turns_to_target {
        Some(n) if m.target_within_max_turns => format!("{n} turns"),
        Some(n) => format!("{n} turns (> {} allowed)", r.loop_profile.max_turns),
        None => "never".into(),
    }),
    ("time to target", |m, _| opt(m.time_to_target_s, seconds)),
    ("loop velocity", |m, _| m.velocity_per_s.map_or("∞ e-folds/s".into(), |v| format!("{v:.3} e-folds/s"))),
    ("pass rate within budget", |m, _| percent(m.pass_rate)),
    ("one-shot pass rate", |m, _| percent(m.one_shot_rate)),
    ("mean turns to pass", |m, _| m.mean_turns_to_pass.map_or("n/a".into(), |t| format!("{t:.2} turns"))),
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
pub fn text(report: &CalcReport) -> String {
    let lp = &report.loop_profile;
    let mut out = format!(
        "Loop: {} tests run in {} + {} overhead per turn, up to {} turns; best-of-k candidates tested {}.\n\n",
        lp.tests,
        seconds(lp.test_s),
        seconds(lp.overhead_s),
        lp.max_turns,
        if lp.parallel_tests { "at once" } else { "one after another" }
    );

    let mut header = vec!["model".to_string()];
    header.extend(report.models.0.iter().map(|(n, _)| n.clone()));
    let mut models = table(header);
    for (label, cell) in ROWS {
        let mut row = vec![label.to_string()];
        row.extend(report.models.0.iter().map(|(_, m)| cell(m, report)));
        models.add_row(row);
    }
    right_align_from(&mut models, 1);
    out.push_str(&models.to_string());
    out.push_str(
        "\nTime to pass counts runs that pass within the budget; wall time and cost per solved task also pay for the runs that fail.\n\n",
    );

    if !report.policies.0.is_empty() {
        let mut policies = table(
            ["policy", "pass rate", "mean time to pass", "P90 time to pass", "wall time per solved", "cost per solved"]
                .map(String::from)
                .to_vec(),
        );
        for (name, p) in &report.policies.0 {
            let label = match p.after {
                Some(m) => format!("{name}, switch after {m} turns"),
                None => name.clone(),
            };
            let o = &p.outcome;
            policies.add_row(vec![
                label,
                percent(o.pass_rate),
                opt(o.mean_time_to_pass_s, seconds),
                opt(o.p90_time_to_pass_s, seconds),
                opt(o.time_per_solved_s, seconds),
                opt(o.usd_per_solved, usd),
            ]);
        }
        right_align_from(&mut policies, 1);
        out.push_str(&policies.to_string());
        out.push('\n');
        for (name, p) in &report.policies.0 {
            if let Some(e) = &p.escalation {
                out.push_str(&format!(
                    "{name}: switching after {} turns gives the least mean time to pass (among switch points within {} points of the best pass rate); after {} turns, the least cost per solved task.\n",
                    e.after_min_mean_time,
                    (100.0 * report.verdict.rule.pass_rate_margin).round(),
                    e.after_min_usd_per_solved.map_or("n/a".into(), |m| m.to_string()),
                ));
            }
        }
        out.push('\n');
    }

    out.push_str("Verdict\n");
    out.push_str(&super::wrap(&report.verdict.text, 100));
    out.push('\n');
    out
}
