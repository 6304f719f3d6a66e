//! `loopvel demo`: math → replay of a real run with real tests → report, offline.

use std::io::Write;
use std::time::Instant;

use loopvel_math::units::{count, percent, seconds};

use crate::cli::{CalcArgs, DemoArgs, ReplayArgs, SandboxArg, SimulateArgs};
use crate::commands::report::{load, Report};
use crate::commands::{calc, replay, simulate};
use crate::error::CliError;
use crate::render;

/// The demo re-runs the tests of code that two local models wrote, as
/// recorded in `demo/local.db` (shipped with loopvel, read before it shipped):
/// in the best sandbox here, and where this machine has none, without one,
/// saying so. `run` and `replay` on a user's own data refuse instead.
fn demo_sandbox() -> SandboxArg {
    match loopvel_sandbox::Sandbox::detect(loopvel_sandbox::Requested::Auto) {
        Ok(_) => SandboxArg::Auto,
        Err(e) => {
            eprintln!(
                "loopvel demo: {e}\nloopvel demo: replaying the shipped recording without a sandbox; install \
                 bubblewrap before running models' code of your own"
            );
            SandboxArg::None
        }
    }
}

fn heading(out: &mut impl Write, step: &str) -> Result<(), CliError> {
    writeln!(out, "\n══ {step} {}", "═".repeat(80usize.saturating_sub(step.chars().count() + 4)))?;
    Ok(())
}

/// Demo.
pub fn run(args: &DemoArgs, out: &mut impl Write) -> Result<(), CliError> {
    let started = Instant::now();
    let layout = render::Layout::detect(args.wide);
    let talk = args.root.join("examples/talk.toml");
    let db = args.root.join("demo/local.db");
    let tasks = args.root.join("tasks/examples");
    for needed in [&talk, &db, &tasks] {
        if !needed.exists() {
            return Err(CliError::Usage(format!(
                "loopvel demo: {} is missing; run it from the loopvel repository (or give --root)",
                needed.display()
            )));
        }
    }
    writeln!(
        out,
        "loopvel demo: the math on the talk's scenario, then a real recorded run replayed with its real tests, then the report."
    )?;

    heading(out, "1. calc: the talk's two models, exact formulas")?;
    calc::run(
        &CalcArgs { scenario: talk.clone(), set: Vec::new(), json: false, pass_rate_margin: 0.05, wide: args.wide },
        out,
    )?;

    heading(out, "2. simulate: the same loop run by run (100,000 runs per model and policy)")?;
    simulate::run(
        &SimulateArgs {
            scenario: talk,
            runs: 100_000,
            seed: 1,
            threads: None,
            set: Vec::new(),
            all_policies: false,
            json: false,
            csv: None,
            plot: None,
            sweep: Vec::new(),
            curve_points: 25,
            pass_rate_margin: 0.05,
            wide: args.wide,
        },
        out,
    )?;

    heading(out, "3. replay: a real run of two local models, recorded replies, real tests")?;
    let scratch = tempfile::tempdir()
        .map_err(|e| CliError::Usage(format!("loopvel demo: cannot make a temporary directory: {e}")))?;
    let replayed = scratch.path().join("replayed.db");
    let result = replay::run(
        &ReplayArgs {
            db: db.clone(),
            into: replayed.clone(),
            tasks: Some(tasks),
            models: Vec::new(),
            model_speed: Vec::new(),
            ttft: Vec::new(),
            test_time: None,
            concurrency: 2,
            json: false,
            sandbox: demo_sandbox(),
        },
        out,
    )?;

    heading(out, "4. report: what the replayed runs say, with 95% intervals")?;
    let plans = crate::commands::plans::select(&replayed, crate::commands::plans::Choice::Latest, "demo")?;
    let runs = load(&replayed, &[], &plans)?;
    let report = Report::new(&replayed, &runs, None).with_sandbox_levels(&replayed, &[], &plans)?;
    if let Some(line) = render::report::sandbox_line(&report) {
        writeln!(out, "{line}")?;
    }
    for grid in [render::report::passing_grid(&report.models), render::report::time_grid(&report.models)] {
        writeln!(out, "{}", grid.render(layout))?;
    }
    let html = render::report::html(&report).map_err(CliError::Usage)?;
    std::fs::write(&args.html, html)
        .map_err(|e| CliError::Usage(format!("--html {}: cannot write it: {e}", args.html.display())))?;
    writeln!(out, "HTML report (charts, fitted parameters, per-turn rates): {}", args.html.display())?;

    heading(out, "What it means")?;
    let exact = result.runs.iter().filter(|r| r.unchanged && r.differences.is_empty()).count();
    let mut lines = vec![format!(
        "The replay re-ran {} recorded runs with their real tests and reproduced {exact} of them exactly (outcome, turns, every grade): the harness is deterministic given the model's replies.",
        result.runs.len()
    )];
    for m in &report.models {
        let retries = m.hazard.iter().skip(1).map(|h| h.passed).sum::<u64>();
        lines.push(format!(
            "{}: passed {} of {} ({}), {} of them on the first turn; {} after a retry. Mean time to a pass {}; tests take {} of a turn, so the {} bounds this loop.",
            m.model,
            m.passes,
            count(m.runs, "run"),
            percent(m.pass_rate),
            m.passes - retries,
            retries,
            m.mean_time_to_pass_s.map_or("n/a".into(), seconds),
            percent(m.time_split.test_share),
            if m.time_split.tests_bound { "tests" } else { "model" },
        ));
    }
    // Said only when the data say it: no model passed after its first turn.
    let any_retry_pass = report.models.iter().any(|m| m.hazard.iter().skip(1).any(|h| h.passed > 0));
    lines.push(if any_retry_pass {
        "Some runs passed after a retry: the loop compounds here, so a faster loop buys more attempts that can pass.".into()
    } else {
        "No run passed after its first turn: these small models do not compound (when the first answer is wrong, later turns repeat it), so a faster loop buys nothing here; the talk's scenario (step 1) is where speed wins.".into()
    });
    lines.push(
        "Try `loopvel replay --db demo/local.db --into whatif.db --model-speed qwen-1.5b=x10` and `loopvel report --db whatif.db`; the three-model experiment (with SmolLM2-135M) is `loopvel report --db demo/experiment.db --by-task`.".into(),
    );
    for l in lines {
        writeln!(out, "{}", render::bullet(&l, layout.text_width()))?;
    }
    writeln!(out, "\nloopvel demo finished in {:.1} s.", started.elapsed().as_secs_f64())?;
    // The hints above name a bare `loopvel`: say how to get it on PATH.
    writeln!(
        out,
        "To run `loopvel` by name: cargo install --path . (into ~/.cargo/bin); then loopvel init and loopvel tasks new NAME start your own."
    )?;
    Ok(())
}
