//! The simulation as the talk's table, a verdict, the success-by-time curve; and as CSV.

use loopvel_math::units::{count, distinct_labels, factor, percent, plus_minus, seconds, thousands, usd};
use loopvel_sim::spec::SimLoop;
use loopvel_sim::{SimReport, SimVerdict};

use super::calc::opt;
use super::{wrap, Layout, Table};
use crate::commands::simulate::Sweep;

/// A sentence naming the columns a narrow table left out, or nothing.
pub(crate) fn hidden_note(hidden: &[&str], width: usize) -> String {
    if hidden.is_empty() {
        return String::new();
    }
    let mut s = wrap(&format!("Left out at this width: {} (--wide shows them).", hidden.join(", ")), width);
    s.push('\n');
    s
}

/// The whole simulation for a terminal.
pub fn text(
    report: &SimReport,
    verdict: &SimVerdict,
    elapsed_s: f64,
    threads: usize,
    lp: &SimLoop,
    layout: Layout,
) -> String {
    let width = layout.text_width();
    // Everything that varies from machine to machine (time, threads) is on
    // this first line, so the rest can be compared with a pasted copy.
    let mut out = format!(
        "Simulated {} in {} on {} ({:.1} million turns/s).\n",
        count(report.turns_simulated, "turn"),
        seconds(elapsed_s),
        count(threads as u64, "thread"),
        report.turns_simulated as f64 / elapsed_s.max(1e-9) / 1e6
    );
    let mut budgets = vec![count(u64::from(lp.max_turns), "turn")];
    if let Some(w) = lp.max_wall_s {
        budgets.push(seconds(w));
    }
    if let Some(u) = lp.max_usd {
        budgets.push(usd(u));
    }
    out.push_str(&wrap(
        &format!(
            "{} per model or policy (seed {}). Budget per run: {}; {} must pass.{}",
            count(report.runs, "run"),
            report.seed,
            budgets.join(", "),
            count(u64::from(lp.tests), "test"),
            lp.restart_after
                .map(|k| format!(
                    " The loop restarts after {} without a pass (a fresh conversation: a first attempt, a first \
                     turn's prompt).",
                    count(u64::from(k), "turn")
                ))
                .unwrap_or_default()
        ),
        width,
    ));
    out.push_str("\n\n");

    const HEADER: [&str; 10] = [
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
    ];
    // Narrow: what decides between models (pass rate, turns, time, cost) stays.
    const SECONDARY: [usize; 4] = [1, 3, 7, 9];
    let mut t = Table::new(HEADER).secondary(&SECONDARY);
    for (name, r) in report.all() {
        let s = &r.summary;
        let label = match r.after {
            Some(m) if layout.narrow() => format!("{name}\n  after {}", count(u64::from(m), "turn")),
            Some(m) => format!("{name}, switch after {}", count(u64::from(m), "turn")),
            None => name.clone(),
        };
        t.row(vec![
            label,
            format!("{}/{}", thousands(s.passes), thousands(s.runs)),
            // The s.e. of a rate near 0 or 1 is tiny: two decimals so it does not read 0.
            format!("{:.1} ± {:.2}%", 100.0 * s.pass_rate, 100.0 * s.pass_rate_se),
            format!("{} ({})", thousands(s.one_shot_passes), percent(s.one_shot_rate)),
            s.median_turns.map_or("n/a".into(), |m| count(u64::from(m), "turn")),
            match (s.mean_time_to_pass_s, s.mean_time_to_pass_se_s) {
                (Some(m), Some(se)) => plus_minus(m, se, seconds),
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
    out.push_str(&t.render(layout));
    out.push('\n');
    let mut remark = "Times to pass are among runs that pass; P90 is within ±0.5% (log-bucketed).".to_string();
    if layout.wide {
        remark.push_str(" Best score of failed runs needs quality = \"tests\" (n/a for the pass/fail hazard model).");
    }
    out.push_str(&wrap(&remark, width));
    out.push('\n');
    if layout.narrow() {
        out.push_str(&hidden_note(&SECONDARY.map(|i| HEADER[i]), width));
    }
    out.push('\n');

    // The success-by-time curve at up to 11 of the grid's times.
    if let Some((_, first)) = report.all().next() {
        let n = first.curve.len();
        let step = n.div_ceil(10).max(1);
        let mut c =
            Table::new(std::iter::once("time".to_string()).chain(report.all().map(|(n, _)| n.clone()))).right_from(0);
        let rows: Vec<usize> = (0..n).step_by(step).chain(std::iter::once(n - 1)).collect();
        let mut last = usize::MAX;
        for i in rows {
            if i == last {
                continue;
            }
            last = i;
            let mut row = vec![seconds(first.curve[i][0])];
            row.extend(report.all().map(|(_, r)| percent(r.curve.get(i).map_or(0.0, |p| p[1]))));
            c.row(row);
        }
        out.push_str("Share of runs passed by each time (success-by-time curve):\n");
        out.push_str(&c.render(layout));
        out.push_str("\n\n");
    }
    out.push_str("Verdict\n");
    out.push_str(&wrap(&verdict.text, width));
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

/// A sweep as a table: the grid values, the winner and the margin, each model's mean time to pass.
pub fn sweep_text(sweep: &Sweep, layout: Layout) -> String {
    let width = layout.text_width();
    let labels: Vec<Vec<String>> = sweep.axes.iter().map(|a| distinct_labels(&a.values)).collect();
    // The label of point `p`'s value on axis `a`.
    let label = |a: usize, v: f64| -> String {
        let axis = &sweep.axes[a];
        axis.values
            .iter()
            .position(|x| *x == v)
            .and_then(|i| labels[a].get(i).cloned())
            .unwrap_or_else(|| loopvel_math::units::sig3(v))
    };
    let mut header: Vec<String> = sweep.axes.iter().map(|a| super::plot::with_unit(&a.key)).collect();
    header.push("winner".into());
    header.push("margin over runner-up".into());
    header.extend(sweep.models.iter().map(|m| format!("{m}: mean time to pass, pass rate")));
    let mut t = Table::new(header).right_from(0);
    let mut any_ineligible = false;
    for p in &sweep.points {
        let mut row: Vec<String> = p.at.iter().enumerate().map(|(a, v)| label(a, *v)).collect();
        row.push(p.winner.clone().unwrap_or_else(|| "none".into()));
        row.push(match (&p.winner, p.margin) {
            (None, _) => "n/a".into(),
            (Some(_), None) => "only eligible".into(),
            (Some(_), Some(m)) => factor(m),
        });
        for m in &sweep.models {
            let mean = p.mean_time_to_pass_s.get(m).and_then(|v| v.as_f64());
            let rate = p.pass_rate.get(m).and_then(|v| v.as_f64()).unwrap_or(0.0);
            let mark = if p.eligible.contains(m) {
                ""
            } else {
                any_ineligible = true;
                " *"
            };
            row.push(format!("{}, {}{mark}", opt(mean, seconds), percent(rate)));
        }
        t.row(row);
    }
    let mut out = format!(
        "Swept {}, {} per model per point, in {}.\n",
        count(sweep.points.len() as u64, "point"),
        count(sweep.runs, "run"),
        seconds(sweep.elapsed_s)
    );
    out.push_str(&t.render(layout));
    out.push('\n');
    let points = (100.0 * sweep.pass_rate_margin).round();
    let mut rule = format!(
        "The winner has the lowest mean time to pass among the models whose pass rate is within {points} points of the best at that point; the margin is the runner-up's (the next such model's) mean time to pass over the winner's."
    );
    if any_ineligible {
        rule.push_str(&format!(
            " * pass rate more than {points} points below the best: cannot win there, however quick."
        ));
    }
    out.push_str(&wrap(&rule, width));
    out.push('\n');
    // Where the winner changes along the grid: the break-even.
    let mut changes = Vec::new();
    for w in sweep.points.windows(2) {
        if w[0].winner != w[1].winner && (sweep.axes.len() == 1 || w[0].at[0] == w[1].at[0]) {
            let at: Vec<String> = w[0]
                .at
                .iter()
                .zip(&w[1].at)
                .enumerate()
                .map(|(i, (a, b))| {
                    let key = &sweep.axes[i].key;
                    if a == b {
                        format!("{key} = {}", label(i, *a))
                    } else {
                        format!("{key} between {} and {}", label(i, *a), label(i, *b))
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
