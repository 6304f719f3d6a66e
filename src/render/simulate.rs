//! The simulation as the talk's table, a verdict, the success-by-time curve; and as CSV.

use comfy_table::{CellAlignment, Table};
use loopvel_math::units::{percent, seconds, usd};
use loopvel_sim::spec::SimLoop;
use loopvel_sim::{SimReport, SimVerdict};

use crate::commands::simulate::Sweep;

fn opt(x: Option<f64>, f: fn(f64) -> String) -> String {
    x.map_or_else(|| "n/a".to_string(), f)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn right_align_from(t: &mut Table, first: usize) {
    for i in first..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// The whole simulation for a terminal.
pub fn text(report: &SimReport, verdict: &SimVerdict, elapsed_s: f64, threads: usize, lp: &SimLoop) -> String {
    let mut out = format!(
        "Simulated {} runs per model or policy (seed {}) on {} thread{}: {} turns in {}, {:.1} million turns/s.\n",
        thousands(report.runs),
        report.seed,
        threads,
        if threads == 1 { "" } else { "s" },
        thousands(report.turns_simulated),
        seconds(elapsed_s),
        report.turns_simulated as f64 / elapsed_s.max(1e-9) / 1e6
    );
    let mut budgets = vec![format!("{} turns", lp.max_turns)];
    if let Some(w) = lp.max_wall_s {
        budgets.push(seconds(w));
    }
    if let Some(u) = lp.max_usd {
        budgets.push(usd(u));
    }
    out.push_str(&format!("Budget per run: {}; {} tests must pass.\n\n", budgets.join(", "), lp.tests));

    let mut t = super::calc::table(
        [
            "model / policy",
            "runs passed",
            "pass rate ± s.e.",
            "one-shot passes",
            "median turns",
            "mean time to pass",
            "P90 time to pass",
            "best score of failed runs",
            "cost per solved",
            "stopped by turns / wall / cost",
        ]
        .map(String::from)
        .to_vec(),
    );
    for (name, r) in report.all() {
        let s = &r.summary;
        let label = match r.after {
            Some(m) => format!("{name}, switch after {m}"),
            None => name.clone(),
        };
        t.add_row(vec![
            label,
            format!("{}/{}", thousands(s.passes), thousands(s.runs)),
            format!("{} ± {:.2}%", percent(s.pass_rate), 100.0 * s.pass_rate_se),
            format!("{} ({})", thousands(s.one_shot_passes), percent(s.one_shot_rate)),
            s.median_turns.map_or("n/a".into(), |m| format!("{m} turns")),
            match (s.mean_time_to_pass_s, s.mean_time_to_pass_se_s) {
                (Some(m), Some(se)) => format!("{} ± {}", seconds(m), seconds(se)),
                (m, _) => opt(m, seconds),
            },
            opt(s.p90_time_to_pass_s, seconds),
            match (s.failed_best_score_mean, s.failed_best_score_max) {
                (Some(m), Some(x)) => format!("{} (max {})", percent(m), percent(x)),
                _ => "n/a".into(),
            },
            opt(s.usd_per_solved, usd),
            format!("{} / {} / {}", thousands(s.censored.turns), thousands(s.censored.wall), thousands(s.censored.usd)),
        ]);
    }
    right_align_from(&mut t, 1);
    out.push_str(&t.to_string());
    out.push_str(
        "\nTimes to pass are among runs that pass; P90 is within ±0.5% (log-bucketed). \
         Best score of failed runs needs quality = \"tests\" (n/a for the pass/fail hazard model).\n\n",
    );

    // The success-by-time curve at up to 11 of the grid's times.
    if let Some((_, first)) = report.all().next() {
        let n = first.curve.len();
        let step = n.div_ceil(10).max(1);
        let mut header = vec!["time".to_string()];
        header.extend(report.all().map(|(n, _)| n.clone()));
        let mut c = super::calc::table(header);
        let rows: Vec<usize> = (0..n).step_by(step).chain(std::iter::once(n - 1)).collect();
        let mut last = usize::MAX;
        for i in rows {
            if i == last {
                continue;
            }
            last = i;
            let mut row = vec![seconds(first.curve[i][0])];
            row.extend(report.all().map(|(_, r)| percent(r.curve.get(i).map_or(0.0, |p| p[1]))));
            c.add_row(row);
        }
        right_align_from(&mut c, 0);
        out.push_str("Share of runs passed by each time (success-by-time curve):\n");
        out.push_str(&c.to_string());
        out.push_str("\n\n");
    }
    out.push_str("Verdict\n");
    out.push_str(&super::wrap(&verdict.text, 100));
    out.push('\n');
    out
}

/// The curves as CSV: `t_s` and one column per model or policy (share of runs passed by t).
pub fn csv(report: &SimReport) -> String {
    let mut out = String::from("t_s");
    for (name, _) in report.all() {
        out.push(',');
        out.push_str(&name.replace(',', ";"));
    }
    out.push('\n');
    let n = report.all().next().map_or(0, |(_, r)| r.curve.len());
    for i in 0..n {
        let t = report.all().next().map_or(0.0, |(_, r)| r.curve[i][0]);
        out.push_str(&format!("{t}"));
        for (_, r) in report.all() {
            out.push_str(&format!(",{}", r.curve.get(i).map_or(0.0, |p| p[1])));
        }
        out.push('\n');
    }
    out
}

/// A grid value without float noise: `11.15`, `80`, `0.3`.
fn short(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A sweep as a table: the grid values, the winner and the margin, each model's mean time to pass.
pub fn sweep_text(sweep: &Sweep) -> String {
    let mut header: Vec<String> = sweep.axes.iter().map(|a| a.key.clone()).collect();
    header.push("winner".into());
    header.push("margin (runner-up / winner)".into());
    header.extend(sweep.models.iter().map(|m| format!("{m}: mean time to pass, pass rate")));
    let mut t = super::calc::table(header);
    for p in &sweep.points {
        let mut row: Vec<String> = p.at.iter().map(|v| short(*v)).collect();
        row.push(p.winner.clone().unwrap_or_else(|| "none".into()));
        row.push(p.margin.map_or("n/a".into(), loopvel_math::units::factor));
        for m in &sweep.models {
            let mean = p.mean_time_to_pass_s.get(m).and_then(|v| v.as_f64());
            let rate = p.pass_rate.get(m).and_then(|v| v.as_f64()).unwrap_or(0.0);
            row.push(format!("{}, {}", opt(mean, seconds), percent(rate)));
        }
        t.add_row(row);
    }
    right_align_from(&mut t, 0);
    let mut out = format!(
        "Swept {} points, {} runs per model per point, in {}.\n",
        sweep.points.len(),
        thousands(sweep.runs),
        seconds(sweep.elapsed_s)
    );
    out.push_str(&t.to_string());
    out.push('\n');
    // Where the winner changes along the grid: the break-even.
    let mut changes = Vec::new();
    for w in sweep.points.windows(2) {
        if w[0].winner != w[1].winner && (sweep.axes.len() == 1 || w[0].at[0] == w[1].at[0]) {
            let at: Vec<String> = w[0]
                .at
                .iter()
                .zip(&w[1].at)
                .zip(&sweep.axes)
                .map(|((a, b), axis)| {
                    if a == b {
                        format!("{} = {}", axis.key, short(*a))
                    } else {
                        format!("{} between {} and {}", axis.key, short(*a), short(*b))
                    }
                })
                .collect();
            changes.push(format!(
                "{} → {} at {}",
                w[0].winner.as_deref().unwrap_or("none"),
                w[1].winner.as_deref().unwrap_or("none"),
                at.join(", ")
            ));
        }
    }
    if changes.is_empty() {
        out.push_str("The winner does not change over the grid.\n");
    } else {
        out.push_str("Break-even: the winner changes\n");
        for c in changes {
            out.push_str(&format!("  {c}\n"));
        }
    }
    out
}
