//! `loopvel report`: read the runs, compute the statistics, print them.

use std::io::Write;

use loopvel_analysis::check::{self, Coverage};
use loopvel_analysis::summary::{self, ModelSummary, TaskRow};
use loopvel_analysis::trace::{Outcome, Run};
use loopvel_store::Store;

use crate::cli::ReportArgs;
use crate::commands::plans::{select, Selection};
use crate::error::CliError;
use crate::render;

/// Seed of the hold-out splits (fixed so `--check` reproduces).
const CHECK_SEED: u64 = 20_261_128;

/// The runs of the selected plans of a database as the statistics see them.
pub fn load(db: &std::path::Path, models: &[String], plans: &Selection) -> Result<Vec<Run>, CliError> {
    let store = Store::open_existing(db)?;
    let all: Vec<Run> = store
        .read_runs()?
        .into_iter()
        .filter(|r| plans.has(r.plan_id) && (models.is_empty() || models.contains(&r.model)))
        .collect();
    // A run that ended in an error before any turn (no server at the address,
    // a refused key) measured the endpoint, not the model: it is left out of
    // every rate and time, and said so. An error after a turn stays in, as a
    // run that did not pass, censored where it stopped (the summary notes it).
    let (unmeasured, runs): (Vec<Run>, Vec<Run>) =
        all.into_iter().partition(|r| r.outcome == Outcome::Error && r.turns.is_empty());
    if !unmeasured.is_empty() {
        let mut by_model: Vec<String> = unmeasured.iter().map(|r| r.model.clone()).collect();
        by_model.sort();
        by_model.dedup();
        eprintln!(
            "{}: {} ended in an error before the model answered ({}); left out: they measure the endpoint, not \
             the model (fix the cause, then run the same `loopvel run` again: it plays them again)",
            crate::commands::shown(db),
            loopvel_math::units::count(unmeasured.len() as u64, "run"),
            by_model.join(", ")
        );
    }
    if runs.is_empty() && !unmeasured.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: every run ended in an error before the model answered, so there is nothing to report; the first: \
             see `loopvel export --db {} --records runs`",
            crate::commands::shown(db),
            crate::commands::shown(db)
        )));
    }
    if runs.is_empty() {
        let mut which = if models.is_empty() { String::new() } else { format!(" for --model {}", models.join(", ")) };
        if plans.plans.is_some() {
            which.push_str(" in the plan read (--pool reads every plan)");
        }
        return Err(CliError::Usage(format!(
            "{}: no finished runs{which}; record some with `loopvel run --db {}`",
            crate::commands::shown(db),
            crate::commands::shown(db)
        )));
    }
    Ok(runs)
}

/// What `report` computed, for every output format.
pub struct Report {
    /// The database, as given.
    pub db: String,
    /// Runs read.
    pub runs: usize,
    /// Distinct tasks.
    pub tasks: usize,
    /// Per model.
    pub models: Vec<ModelSummary>,
    /// Hold-out coverage, with `--check`.
    pub check: Option<Vec<Coverage>>,
    /// Splits asked for.
    pub splits: usize,
    /// Per task and model, with `--by-task`.
    pub by_task: Option<Vec<TaskRow>>,
    /// Runs per sandbox level their tests ran at (`None`: not recorded).
    pub sandbox: Vec<(Option<String>, usize)>,
    /// Two models side by side, with `--compare A B`.
    pub compare: Option<loopvel_analysis::compare::Comparison>,
}

impl Report {
    /// Everything `report` computes from `runs` of `db`; `check_splits` runs the hold-out check.
    pub fn new(db: &std::path::Path, runs: &[Run], check_splits: Option<usize>) -> Report {
        let tasks = loopvel_analysis::trace::task_names(runs);
        Report {
            db: crate::commands::shown(db).to_string(),
            runs: runs.len(),
            tasks: tasks.len(),
            models: summary::summarize(runs),
            check: check_splits.map(|n| check::holdout(runs, n, CHECK_SEED)),
            splits: check_splits.unwrap_or(0),
            by_task: None,
            sandbox: Vec::new(),
            compare: None,
        }
    }

    /// Fill in the sandbox levels the runs of `models` (all when empty) in the
    /// selected plans were recorded at.
    pub fn with_sandbox_levels(
        mut self,
        db: &std::path::Path,
        models: &[String],
        plans: &Selection,
    ) -> Result<Report, CliError> {
        let store = Store::open_existing(db)?;
        let mut levels: Vec<(Option<String>, usize)> = Vec::new();
        for c in store.sandbox_levels()? {
            if (!models.is_empty() && !models.contains(&c.model)) || !plans.has(c.plan) {
                continue;
            }
            let (level, n) = (c.level, c.runs);
            match levels.iter_mut().find(|(l, _)| *l == level) {
                Some((_, count)) => *count += n,
                None => levels.push((level, n)),
            }
        }
        self.sandbox = levels;
        Ok(self)
    }
}

/// Report.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> Result<(), CliError> {
    if let (Some(id), Some(path)) = (args.run, &args.html) {
        return crate::commands::view::write_run_page(&args.db, id, &args.tasks, path, out);
    }
    let plans = select(&args.db, args.plans.choice(), "report")?;
    let runs = load(&args.db, &args.models, &plans)?;
    let mut report = Report::new(&args.db, &runs, args.check.then_some(args.splits)).with_sandbox_levels(
        &args.db,
        &args.models,
        &plans,
    )?;
    for line in &plans.notes {
        eprintln!("{line}");
    }
    if args.by_task {
        report.by_task = Some(summary::by_task(&runs));
    }
    if let Some([a, b]) = args.compare.as_deref() {
        let names = loopvel_analysis::trace::model_names(&runs);
        for m in [a, b] {
            if !names.contains(&m.as_str()) {
                return Err(CliError::Usage(format!(
                    "--compare {a} {b}: no runs of {m} in {}; models: {}",
                    crate::commands::shown(&args.db),
                    names.join(", ")
                )));
            }
        }
        let seed = summary::seed_of(&format!("{a}\u{1f}{b}"), 51);
        report.compare = Some(
            loopvel_analysis::compare::compare(&runs, a, b, seed)
                .ok_or_else(|| CliError::Usage(format!("--compare {a} {b}: the two models ran no task in common")))?,
        );
    }
    if let Some(path) = &args.html {
        let html = render::report::html(&report).map_err(CliError::Usage)?;
        std::fs::write(path, html)
            .map_err(|e| CliError::Usage(format!("--html {}: cannot write it: {e}", path.display())))?;
    }
    if args.json {
        let mut v = render::report::json(&report);
        if let Some(o) = v.as_object_mut() {
            o.insert("plans".into(), plans.json.clone());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
    } else if args.markdown {
        write!(out, "{}", render::report::markdown(&report))?;
    } else {
        write!(out, "{}", render::report::text(&report, render::Layout::detect(args.wide)))?;
        if let Some(path) = &args.html {
            writeln!(out, "\nHTML report: {}", path.display())?;
        }
    }
    Ok(())
}
