//! The `report` output: terminal tables, Markdown, JSON and a self-contained HTML page.
//! Each table is built once as a [`Grid`] of strings and rendered in every format,
//! so the formats cannot disagree.

use loopvel_analysis::summary::{ModelSummary, TaskRow};
use loopvel_analysis::Estimate;
use loopvel_math::units::{count, percent, seconds, span, tokens, tokens_per_s, turns, usd, with_interval};
use serde_json::{json, Map, Value};

use crate::commands::report::Report;
use crate::commands::run::ARM_SEPARATOR;
use crate::render::report_plot;
use crate::render::{wrap, Layout, Table};

/// A titled table of strings.
pub struct Grid {
    /// Title above the table.
    pub title: String,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
    /// Columns a narrow terminal leaves out (Markdown and HTML show every column).
    pub secondary: Vec<usize>,
}

impl Grid {
    /// The grid as a terminal table: its title wrapped to the width, then the table.
    pub fn render(&self, layout: Layout) -> String {
        let mut t = Table::new(self.header.clone()).secondary(&self.secondary);
        for r in &self.rows {
            t.row(r.clone());
        }
        format!("{}\n{}", wrap(&self.title, layout.text_width()), t.render(layout))
    }

    /// The headers of the columns a narrow terminal leaves out.
    pub fn hidden(&self, layout: Layout) -> Vec<String> {
        if layout.wide {
            return Vec::new();
        }
        self.secondary.iter().filter_map(|&i| self.header.get(i).cloned()).collect()
    }
}

fn interval(ci: Option<[f64; 2]>, f: fn(f64) -> String) -> String {
    ci.map_or_else(String::new, |[a, b]| format!(" ({})", span(a, b, f)))
}

fn with_ci(value: Option<f64>, ci: Option<[f64; 2]>, f: fn(f64) -> String) -> String {
    value.map_or_else(|| "n/a".into(), |v| with_interval(v, ci, f))
}

fn est(e: Option<Estimate>, f: fn(f64) -> String) -> String {
    e.map_or_else(|| "not fitted".into(), |e| with_ci(Some(e.value), e.ci, f))
}

fn share(x: f64) -> String {
    format!("{:.2}", x)
}

/// The main table: the talk's columns with intervals.
pub fn passing_grid(models: &[ModelSummary]) -> Grid {
    Grid {
        title: "Passing (95% intervals resample tasks, then runs within them: runs of one task are not \
                independent, and the question is how a model does on tasks like these; --wide adds Wilson's \
                over runs, too narrow when tasks differ)"
            .into(),
        header: [
            "model",
            "runs",
            "passed",
            "pass rate",
            "pass rate (Wilson over runs)",
            "one-shot rate",
            "median turns",
            "mean time to pass",
            "P90 time to pass",
            "KM median time to pass",
        ]
        .map(String::from)
        .to_vec(),
        rows: models
            .iter()
            .map(|m| {
                vec![
                    m.model.clone(),
                    m.runs.to_string(),
                    m.passes.to_string(),
                    with_ci(Some(m.pass_rate), m.pass_rate_ci, percent),
                    interval(m.pass_rate_ci_wilson, percent).trim().trim_matches(['(', ')']).to_string(),
                    with_ci(Some(m.one_shot_rate), m.one_shot_rate_ci, percent),
                    m.median_turns.map_or("n/a".into(), turns),
                    with_ci(m.mean_time_to_pass_s, m.mean_time_to_pass_ci, seconds),
                    with_ci(m.p90_time_to_pass_s, m.p90_time_to_pass_ci, seconds),
                    m.km_median_time_to_pass_s.map_or("not reached".into(), seconds),
                ]
            })
            .collect(),
        // Narrow: the rate with its interval, turns, time; counts are in the title line.
        secondary: vec![1, 2, 4, 5, 8],
    }
}

/// pass@k and pass^k per model and k, with the task-aware intervals.
pub fn pass_k_grid(models: &[ModelSummary]) -> Grid {
    Grid {
        title: "pass@k and pass^k (unbiased from each task's runs, mean over tasks; 95% intervals resample tasks, \
                then runs within them, since runs of one task are not independent)"
            .into(),
        header: ["model", "k", "pass@k (any of k runs passes)", "pass^k (all k pass)"].map(String::from).to_vec(),
        rows: models
            .iter()
            .flat_map(|m| {
                m.pass_k.iter().map(move |p| {
                    vec![
                        m.model.clone(),
                        p.k.to_string(),
                        with_ci(Some(p.pass_at_k), p.pass_at_k_ci, percent),
                        with_ci(Some(p.pass_hat_k), p.pass_hat_k_ci, percent),
                    ]
                })
            })
            .collect(),
        secondary: Vec::new(),
    }
}

/// The wall-clock budgets the table of pass@k within a budget shows: the
/// quartiles and the largest of every passing run's time to pass (all models
/// pooled, so the columns are the same for every model). Empty without passes.
pub fn budgets_s(models: &[ModelSummary]) -> Vec<f64> {
    let times = passing_times(models);
    let mut b: Vec<f64> =
        [0.25, 0.5, 0.75, 1.0].iter().filter_map(|&q| loopvel_analysis::interval::quantile(&times, q)).collect();
    b.dedup();
    b
}

/// Every passing run's time to pass, over all models, s.
pub fn passing_times(models: &[ModelSummary]) -> Vec<f64> {
    models.iter().flat_map(|m| m.task_times.iter().flatten().flatten().copied()).collect()
}

/// pass@k within a wall-clock budget T: k loops started together, any green by T.
pub fn pass_k_within_grid(models: &[ModelSummary]) -> Option<Grid> {
    let budgets = budgets_s(models);
    if budgets.is_empty() {
        return None;
    }
    let mut header = vec!["model".to_string(), "k".to_string()];
    header.extend(budgets.iter().map(|b| format!("by {}", seconds(*b))));
    let rows = models
        .iter()
        .flat_map(|m| {
            let budgets = budgets.clone();
            m.pass_k.iter().map(move |p| {
                let mut row = vec![m.model.clone(), p.k.to_string()];
                row.extend(budgets.iter().map(|&t| {
                    loopvel_analysis::passk::pass_at_k_within(&m.task_times, p.k, t).map_or("n/a".into(), percent)
                }));
                row
            })
        })
        .collect();
    Some(Grid {
        title: "pass@k within a wall-clock budget: k loops started together on a task, any green by then (mean \
                over tasks; budgets are the quartiles and the largest of all passing runs' times)"
            .into(),
        header,
        rows,
        secondary: Vec::new(),
    })
}

/// Where a turn's time goes.
pub fn time_grid(models: &[ModelSummary]) -> Grid {
    Grid {
        title: "Where the time goes (mean per turn, 95% intervals resampling tasks, then runs)".into(),
        header: ["model", "model call", "tests", "harness overhead", "retry wait", "tests' share", "bound by"]
            .map(String::from)
            .to_vec(),
        rows: models
            .iter()
            .map(|m| {
                let t = &m.time_split;
                vec![
                    m.model.clone(),
                    est(Some(t.model_s), seconds),
                    est(Some(t.test_s), seconds),
                    est(Some(t.overhead_s), seconds),
                    est(Some(t.retry_wait_s), seconds),
                    percent(t.test_share),
                    if t.tests_bound { "tests".into() } else { "model".into() },
                ]
            })
            .collect(),
        secondary: vec![3, 4],
    }
}

/// Prompt caching per model, where a server reported it: the share of input
/// read from the cache and the spend with and without it. `None` when no
/// model's server reported a cached count.
pub fn cache_grid(models: &[ModelSummary]) -> Option<Grid> {
    if models.iter().all(|m| m.cache.is_none()) {
        return None;
    }
    Some(Grid {
        title: "Prompt cache (input tokens the server read from its cache, as it reported them; cost as billed \
                with cached tokens at the cached price, and as it would be with every input token at the \
                uncached price; cached share's 95% interval resamples tasks, then runs)"
            .into(),
        header: [
            "model",
            "input",
            "cached share",
            "cache writes",
            "cost",
            "cost without cache",
            "saved",
            "turns reporting",
        ]
        .map(String::from)
        .to_vec(),
        rows: models
            .iter()
            .map(|m| match &m.cache {
                None => vec![
                    m.model.clone(),
                    "not reported".into(),
                    "n/a".into(),
                    "n/a".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    "0".into(),
                ],
                Some(c) => vec![
                    m.model.clone(),
                    tokens(c.input_tokens as f64),
                    est(Some(c.cached_share), percent),
                    tokens(c.cache_write_tokens as f64),
                    usd(c.usd),
                    usd(c.usd_uncached),
                    if c.usd_uncached > 0.0 { percent(1.0 - c.usd / c.usd_uncached) } else { "n/a".into() },
                    format!("{} of {}", c.turns_reporting, c.turns),
                ],
            })
            .collect(),
        secondary: vec![3, 7],
    })
}

/// Fitted parameters, one column per model.
pub fn fit_grid(models: &[ModelSummary]) -> Grid {
    type Row = (&'static str, fn(&ModelSummary) -> String);
    let rows: [Row; 13] = [
        ("p_first (first attempt passes, share)", |m| est(m.fit.p_first, share)),
        ("p_retry (a later turn passes, share)", |m| est(m.fit.p_retry, share)),
        ("ceiling (share of tasks solvable)", |m| est(m.fit.ceiling, share)),
        ("r (share of failing tests fixed per turn)", |m| est(m.fit.r, share)),
        ("first_score (share passing after turn 1)", |m| est(m.fit.first_score, share)),
        ("TTFT median", |m| est(m.fit.ttft_median_s, seconds)),
        ("TTFT P90", |m| est(m.fit.ttft_p90_s, seconds)),
        ("decode speed median", |m| est(m.fit.tokens_per_s_median, tokens_per_s)),
        ("decode speed P90", |m| est(m.fit.tokens_per_s_p90, tokens_per_s)),
        ("output per turn (mean)", |m| est(m.fit.output_tokens_mean, tokens)),
        ("cost per turn (mean)", |m| est(m.fit.usd_per_turn, usd)),
        ("cost per solved task", |m| est(m.usd_per_solved, usd)),
        ("median turns to pass (KM)", |m| m.km_median_turns.map_or("not reached".into(), turns)),
    ];
    let mut header = vec!["parameter".to_string()];
    header.extend(models.iter().map(|m| m.model.clone()));
    Grid {
        title: "Fitted loop parameters (95% intervals: profile likelihood for p_first/p_retry/ceiling and lognormal for TTFT and speed, both treating runs and turns as independent; tasks then runs resampled for r, first_score, tokens and costs)".into(),
        header,
        rows: rows
            .iter()
            .map(|(name, f)| {
                let mut row = vec![name.to_string()];
                row.extend(models.iter().map(f));
                row
            })
            .collect(),
        secondary: Vec::new(),
    }
}

/// Per-turn pass rate among runs still going.
pub fn hazard_grid(models: &[ModelSummary]) -> Grid {
    let max_turn = models.iter().map(|m| m.hazard.len()).max().unwrap_or(0);
    let mut header = vec!["turn".to_string()];
    header.extend(models.iter().map(|m| format!("{} passed / going", m.model)));
    Grid {
        title: "Per-turn pass rate among runs still going (95% intervals resample tasks, then runs)".into(),
        header,
        rows: (0..max_turn)
            .map(|i| {
                let mut row = vec![(i + 1).to_string()];
                row.extend(models.iter().map(|m| {
                    m.hazard.get(i).map_or(String::new(), |h| {
                        format!("{}/{} {}", h.passed, h.at_risk, with_interval(h.rate, h.ci, percent))
                    })
                }));
                row
            })
            .collect(),
        secondary: Vec::new(),
    }
}

/// THRASH share, first-token time and prompt cache by turn number: whether
/// later turns go wrong more often, and whether they get slower as prompts grow.
pub fn turn_grid(models: &[ModelSummary]) -> Grid {
    let mut rows = Vec::new();
    for m in models {
        for t in &m.by_turn {
            rows.push(vec![
                m.model.clone(),
                t.turn.to_string(),
                t.turns.to_string(),
                format!("{} {}", t.thrash, with_interval(t.thrash_share.value, t.thrash_share.ci, percent)),
                t.ttft_s.map_or("not reported".into(), |e| est(Some(e), seconds)),
                t.input_tokens.map_or("not reported".into(), tokens),
                t.cached_share.map_or("not reported".into(), |e| est(Some(e), percent)),
            ]);
        }
        if let Some(all) = m.thrash_share {
            let turns: u64 = m.by_turn.iter().map(|t| t.turns).sum();
            let thrash: u64 = m.by_turn.iter().map(|t| t.thrash).sum();
            rows.push(vec![
                m.model.clone(),
                "all".into(),
                turns.to_string(),
                format!("{thrash} {}", with_interval(all.value, all.ci, percent)),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    Grid {
        title: "By turn: THRASH share (fewer tests passing than before, or files back in a state already tried), \
                time to first token, prompt size and the share of it read from the server's cache (95% intervals \
                resample tasks, then runs)"
            .into(),
        header: ["model", "turn", "turns", "THRASH", "mean TTFT", "mean prompt", "cached share"]
            .map(String::from)
            .to_vec(),
        rows,
        secondary: vec![5, 6],
    }
}

/// Hold-out coverage.
pub fn check_grid(check: &[loopvel_analysis::check::Coverage]) -> Grid {
    let pct = |a: usize, b: usize| {
        if b == 0 {
            "n/a".to_string()
        } else {
            format!("{a}/{b} ({})", percent(a as f64 / b as f64))
        }
    };
    Grid {
        title: "Hold-out check: fit on a random half of the runs (or of the tasks), predict the other (95% \
                prediction intervals; far below 95% by task means the tasks differ more than the runs show)"
            .into(),
        header: [
            "model",
            "splits",
            "held-out pass rate inside",
            "held-out mean time to pass inside",
            "pass rate inside, split by task",
        ]
        .map(String::from)
        .to_vec(),
        rows: check
            .iter()
            .map(|c| {
                vec![
                    c.model.clone(),
                    c.splits.to_string(),
                    pct(c.pass_rate_inside, c.splits),
                    pct(c.time_inside, c.time_checked),
                    pct(c.task_pass_rate_inside, c.task_splits),
                ]
            })
            .collect(),
        secondary: Vec::new(),
    }
}

fn grids(report: &Report) -> Vec<Grid> {
    let mut g = vec![passing_grid(&report.models), pass_k_grid(&report.models)];
    g.extend(pass_k_within_grid(&report.models));
    g.push(time_grid(&report.models));
    g.extend(cache_grid(&report.models));
    g.extend([fit_grid(&report.models), hazard_grid(&report.models), turn_grid(&report.models)]);
    if let Some(rows) = &report.by_task {
        g.push(by_task_grid(rows));
    }
    if let Some(c) = &report.compare {
        g.push(compare_grid(c));
    }
    if let Some(c) = &report.check {
        g.push(check_grid(c));
    }
    g
}

/// Two models side by side: per task, then overall with paired task-aware intervals.
pub fn compare_grid(c: &loopvel_analysis::compare::Comparison) -> Grid {
    let signed = |x: f64, f: fn(f64) -> String| if x > 0.0 { format!("+{}", f(x)) } else { f(x) };
    let points = |x: f64| format!("{:.1} points", x * 100.0);
    let mut rows: Vec<Vec<String>> = c
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.task.clone(),
                format!("{}/{}", t.a[0], t.a[1]),
                format!("{}/{}", t.b[0], t.b[1]),
                signed(t.pass_rate_diff, points),
                t.time_to_pass_diff_s.map_or("n/a".into(), |d| signed(d, seconds)),
            ]
        })
        .collect();
    let ci = |ci: Option<[f64; 2]>, f: fn(f64) -> String| {
        ci.map_or(String::new(), |[lo, hi]| format!(" ({} to {})", f(lo), f(hi)))
    };
    rows.push(vec![
        "all tasks (mean, 95%)".into(),
        String::new(),
        String::new(),
        format!("{}{}", signed(c.pass_rate_diff, points), ci(c.pass_rate_diff_ci, points)),
        c.time_to_pass_diff_s
            .map_or("n/a".into(), |d| format!("{}{}", signed(d, seconds), ci(c.time_to_pass_diff_ci, seconds))),
    ]);
    Grid {
        title: format!(
            "{a} against {b} on the {n} tasks both ran: {a} passes more often on {} tasks, {b} on {}, tied on {} \
             (exact sign test p = {:.3}); pass rate and time to pass differences are {a} − {b}, intervals paired \
             (tasks resampled, then runs)",
            c.a_more,
            c.b_more,
            c.tied,
            c.sign_test_p,
            a = c.a,
            b = c.b,
            n = c.tasks.len()
        ),
        header: vec![
            "task".into(),
            format!("{} passed", c.a),
            format!("{} passed", c.b),
            "pass rate difference".into(),
            "time to pass difference".into(),
        ],
        rows,
        secondary: Vec::new(),
    }
}

const BY_TASK_TITLE: &str =
    "By task (passed / runs with Wilson 95% interval; mean time to pass over passing runs, bootstrap 95%)";

/// The by-task table whose pass cells link to the commands that write
/// their runs' transcripts, listed after it (a static page cannot run them;
/// `loopvel view` serves the same pages).
fn by_task_html(g: &Grid, rows: &[TaskRow], db: &str) -> String {
    // Columns: task, then per model "passed" (1 + 2m) and "mean time" (2 + 2m).
    let anchor = |i: usize, m: usize| format!("runs-{i}-{m}");
    let mut s = html_table_linked(g, &|i, j| {
        (j % 2 == 1 && rows.get(i).and_then(|r| r.cells.get(j / 2)).is_some_and(|c| c.runs > 0))
            .then(|| format!("#{}", anchor(i, j / 2)))
    });
    s.push_str(&format!(
        "<h2>Transcripts</h2>\n<p>Each run turn by turn (prompt, reply, edits, diffs, tests, timeline): <code>loopvel view \
         --db {db}</code> serves them all; each command below writes one as a page of its own.</p>\n<table>\n\
         <thead><tr><th>task</th><th>model</th><th>commands</th></tr></thead>\n<tbody>\n",
        db = esc(db)
    ));
    for (i, r) in rows.iter().enumerate() {
        for (m, c) in r.cells.iter().enumerate().filter(|(_, c)| !c.run_ids.is_empty()) {
            let commands: Vec<String> = c
                .run_ids
                .iter()
                .map(|id| format!("<code>loopvel report --db {} --run {id} --html run-{id}.html</code>", esc(db)))
                .collect();
            s.push_str(&format!(
                "<tr id=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                anchor(i, m),
                esc(&r.task),
                esc(&c.model),
                commands.join("<br>")
            ));
        }
    }
    s.push_str("</tbody>\n</table>\n");
    s
}

/// Per task: each model's passes (Wilson 95%) and mean time to pass (bootstrap 95%).
pub fn by_task_grid(rows: &[TaskRow]) -> Grid {
    let mut header = vec!["task".to_string()];
    let cells = rows.first().map_or(&[][..], |r| &r.cells[..]);
    for c in cells {
        header.push(format!("{} passed", c.model));
        header.push(format!("{} mean time to pass", c.model));
    }
    // Narrow, with several models: passes only (where each model wins); the times need --wide.
    let secondary = if cells.len() > 1 { (0..cells.len()).map(|i| 2 + 2 * i).collect() } else { Vec::new() };
    Grid {
        title: BY_TASK_TITLE.into(),
        header,
        rows: rows
            .iter()
            .map(|r| {
                let mut row = vec![r.task.clone()];
                for c in &r.cells {
                    row.push(if c.runs == 0 {
                        "not run".into()
                    } else {
                        format!("{}/{}{}", c.passes, c.runs, interval(c.pass_rate_ci, percent))
                    });
                    row.push(match (c.runs, c.passes) {
                        (0, _) => String::new(),
                        (_, 1) => format!("{} (1 pass)", with_ci(c.mean_time_to_pass_s, None, seconds)),
                        _ => with_ci(c.mean_time_to_pass_s, c.mean_time_to_pass_ci, seconds),
                    });
                }
                row
            })
            .collect(),
        secondary,
    }
}

fn notes(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in &report.models {
        out.extend(m.notes.iter().map(|n| format!("{}: {n}", m.model)));
        if m.time_split.tests_bound {
            out.push(format!(
                "{}: the tests take longer than the model each turn ({} of turn time): a faster model cannot even halve this loop",
                m.model,
                percent(m.time_split.test_share)
            ));
        }
    }
    if let Some(check) = &report.check {
        for c in check {
            if c.time_checked > 0 && (c.time_inside as f64) < 0.85 * c.time_checked as f64 {
                out.push(format!(
                    "{}: only {} of held-out mean times to pass fell inside their 95% intervals: too few passes, or times that vary by task more than by chance; trust the time intervals less",
                    c.model,
                    percent(c.time_inside as f64 / c.time_checked as f64)
                ));
            }
            if c.splits > 0 {
                let share = c.pass_rate_inside as f64 / c.splits as f64;
                if share < 0.85 {
                    out.push(format!(
                        "{}: only {} of held-out pass rates fell inside their 95% intervals: the runs may not be independent (same tasks, cached replies); trust the intervals less",
                        c.model,
                        percent(share)
                    ));
                }
            }
        }
    }
    out
}

const HOW_TO_READ: &str = "How to read it: a pass rate's interval is where the true rate lies with 95% confidence given these runs; runs that did not pass count as censored where they stopped, so the Kaplan–Meier median uses them honestly ('not reached' means fewer than half passed). Mean and P90 time to pass are over passing runs only; compare them together with the pass rate.";

/// Where the runs' tests ran, in words: "sandbox: bwrap (50 runs)". Runs
/// at `none` are called out: their code could have changed their own results.
pub fn sandbox_line(report: &Report) -> Option<String> {
    if report.sandbox.is_empty() {
        return None;
    }
    let parts: Vec<String> = report
        .sandbox
        .iter()
        .map(|(level, n)| match level.as_deref() {
            None => {
                format!("not recorded for {} (made before loopvel recorded the sandbox level)", count(*n as u64, "run"))
            }
            Some("none") => format!(
                "NONE for {} (unconfined: their code could have changed their own results)",
                count(*n as u64, "run")
            ),
            Some(l) => format!("{l} for {}", count(*n as u64, "run")),
        })
        .collect();
    Some(format!("Tests ran in the sandbox: {}.", parts.join("; ")))
}

/// `300 runs of 2 models on 10 tasks`; with arms, `108 runs of 1 model in 3
/// model / arm rows on 12 tasks` (a row per arm is not another model).
fn counts(report: &Report) -> String {
    let rows = report.models.len();
    let models: std::collections::BTreeSet<&str> =
        report.models.iter().map(|m| m.model.split(ARM_SEPARATOR).next().unwrap_or(&m.model)).collect();
    let of = if models.len() == rows {
        count(rows as u64, "model")
    } else {
        format!("{} in {rows} model / arm rows", count(models.len() as u64, "model"))
    };
    format!("{} of {of} on {}", count(report.runs as u64, "run"), count(report.tasks as u64, "task"))
}

/// The report for a terminal.
pub fn text(report: &Report, layout: Layout) -> String {
    let width = layout.text_width();
    let mut s = format!("{}\n", wrap(&format!("loopvel report — {}: {}", report.db, counts(report)), width));
    if let Some(line) = sandbox_line(report) {
        s.push_str(&format!("{}\n", wrap(&line, width)));
    }
    let mut hidden = Vec::new();
    for g in grids(report) {
        s.push_str(&format!("\n{}\n", g.render(layout)));
        hidden.extend(g.hidden(layout));
    }
    if !hidden.is_empty() {
        hidden.dedup();
        let names: Vec<&str> = hidden.iter().map(String::as_str).collect();
        s.push('\n');
        s.push_str(&super::simulate::hidden_note(&names, width));
    }
    let notes = notes(report);
    if !notes.is_empty() {
        s.push_str("\nNotes\n");
        for n in notes {
            s.push_str(&format!("{}\n", super::bullet(&n, width)));
        }
    }
    s.push_str(&format!("\n{}\n", wrap(HOW_TO_READ, width)));
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The report as Markdown, for a pull request.
pub fn markdown(report: &Report) -> String {
    let mut s = format!("### loopvel report — `{}`: {}\n", report.db, counts(report));
    if let Some(line) = sandbox_line(report) {
        s.push_str(&format!("\n{line}\n"));
    }
    for g in grids(report) {
        s.push_str(&format!(
            "\n**{}**\n\n| {} |\n|",
            g.title,
            g.header.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | ")
        ));
        for i in 0..g.header.len() {
            s.push_str(if i == 0 { ":---|" } else { "---:|" });
        }
        s.push('\n');
        for r in &g.rows {
            s.push_str(&format!("| {} |\n", r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")));
        }
    }
    let notes = notes(report);
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s.push_str(&format!("\n{HOW_TO_READ}\n"));
    s
}

/// The report as data: `models.NAME.{…}` with every fitted entry `{value, ci}`.
pub fn json(report: &Report) -> Value {
    let mut models = Map::new();
    for m in &report.models {
        models.insert(m.model.clone(), serde_json::to_value(m).unwrap_or(Value::Null));
    }
    let sandbox: Map<String, Value> = report
        .sandbox
        .iter()
        .map(|(level, n)| (level.clone().unwrap_or_else(|| "not recorded".into()), json!(n)))
        .collect();
    let mut root = json!({
        "db": report.db, "runs": report.runs, "tasks": report.tasks, "sandbox": sandbox, "models": models
    });
    if let Some(c) = &report.check {
        root["check"] = json!({ "splits": report.splits, "models": c });
    }
    if let Some(c) = &report.compare {
        root["compare"] = serde_json::to_value(c).unwrap_or(Value::Null);
    }
    // pass@k within a wall-clock budget, at each budget the table shows.
    let budgets = budgets_s(&report.models);
    let within: serde_json::Map<String, Value> = report
        .models
        .iter()
        .map(|m| {
            let rows: Vec<Value> = m
                .pass_k
                .iter()
                .map(|p| {
                    let values: Vec<Value> = budgets
                        .iter()
                        .map(|&t| {
                            loopvel_analysis::passk::pass_at_k_within(&m.task_times, p.k, t)
                                .map_or(Value::Null, Value::from)
                        })
                        .collect();
                    serde_json::json!({ "k": p.k, "pass_at_k": values })
                })
                .collect();
            (m.model.clone(), Value::from(rows))
        })
        .collect();
    root["pass_k_within"] = serde_json::json!({ "budgets_s": budgets, "models": within });
    if let Some(rows) = &report.by_task {
        root["by_task"] = serde_json::to_value(rows).unwrap_or(Value::Null);
    }
    root
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_table(g: &Grid) -> String {
    html_table_linked(g, &|_, _| None)
}

/// [`html_table`] with cell (row, column) a link to `link(row, column)` where that is `Some`.
fn html_table_linked(g: &Grid, link: &dyn Fn(usize, usize) -> Option<String>) -> String {
    let mut s = format!("<h2>{}</h2>\n<table>\n<thead><tr>", esc(&g.title));
    for h in &g.header {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for (i, r) in g.rows.iter().enumerate() {
        s.push_str("<tr>");
        for (j, c) in r.iter().enumerate() {
            match link(i, j) {
                Some(href) => s.push_str(&format!("<td><a href=\"{}\">{}</a></td>", esc(&href), esc(c))),
                None => s.push_str(&format!("<td>{}</td>", esc(c))),
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
    s
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.1em;margin-top:2em}table{border-collapse:collapse;font-size:0.85em;width:100%}\
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:right}th:first-child,td:first-child{text-align:left}\
thead th{background:#f4f4f4}figure{margin:2em 0}figcaption{font-size:0.9em;color:#444;margin-top:0.3em}\
svg{max-width:100%;height:auto}.notes li{margin:0.3em 0}";

/// The self-contained HTML page: tables, charts, notes. No scripts, no network.
pub fn html(report: &Report) -> Result<String, String> {
    let mut body = String::new();
    if let Some(line) = sandbox_line(report) {
        body.push_str(&format!("<p>{}</p>\n", esc(&line)));
    }
    let g = grids(report);
    body.push_str(&html_table(&g[0]));
    let mut charts = report_plot::all(&report.models)?;
    if let Some(c) = report.compare.as_ref().map(report_plot::compare_bars).transpose()?.flatten() {
        charts.push(("chart-compare", c));
    }
    for (id, chart) in charts {
        body.push_str(&format!(
            "<figure id=\"{id}\">\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
            chart.svg,
            esc(&chart.caption)
        ));
    }
    for t in &g[1..] {
        match &report.by_task {
            Some(rows) if t.title == BY_TASK_TITLE => body.push_str(&by_task_html(t, rows, &report.db)),
            _ => body.push_str(&html_table(t)),
        }
    }
    let notes = notes(report);
    if !notes.is_empty() {
        body.push_str("<h2>Notes</h2>\n<ul class=\"notes\">\n");
        for n in notes {
            body.push_str(&format!("<li>{}</li>\n", esc(&n)));
        }
        body.push_str("</ul>\n");
    }
    body.push_str(&format!("<p>{}</p>\n", esc(HOW_TO_READ)));
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>loopvel report — {db}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>loopvel report</h1>\n<p>{db}: {counts}. Made by loopvel {version}.</p>\n{body}</body>\n</html>\n",
        db = esc(&report.db),
        counts = counts(report),
        version = env!("CARGO_PKG_VERSION"),
    ))
}
