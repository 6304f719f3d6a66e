//! `loopvel calc`: scenario file → closed forms → table and verdict (or JSON).

use std::io::Write;

use loopvel_math::calc::{evaluate, CalcReport, VerdictRule};

use crate::cli::CalcArgs;
use crate::error::CliError;
use crate::render;

/// Read, evaluate and print.
pub fn run(args: &CalcArgs, out: &mut impl Write) -> Result<(), CliError> {
    let report = report(args)?;
    let text =
        if args.json { to_json(&report) } else { render::calc::text(&report, render::Layout::detect(args.wide)) };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The report for these options, without printing it.
pub fn report(args: &CalcArgs) -> Result<CalcReport, CliError> {
    if !(0.0..=1.0).contains(&args.pass_rate_margin) {
        return Err(CliError::Usage(format!(
            "--pass-rate-margin {} is outside [0, 1]; give a share such as 0.05 (5 percentage points)",
            args.pass_rate_margin
        )));
    }
    let text = super::read_input(&args.scenario)?;
    let scenario = loopvel_scenario::parse_scenario(&text, &args.scenario.display().to_string(), &args.set)?;
    Ok(evaluate(&scenario, VerdictRule { pass_rate_margin: args.pass_rate_margin }))
}

/// The report as pretty JSON, newline-terminated.
pub fn to_json(report: &CalcReport) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
