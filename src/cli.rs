//! Command-line options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Measure and predict the loop velocity of agentic coding: how fast a model
/// gets code from red to green in a try → test → fix loop.
#[derive(Debug, Parser)]
#[command(name = "loopvel", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare models on one loop with exact formulas: cycle time, turns and
    /// time to all tests passing, pass rate, time and cost to pass, policies,
    /// break-even, and a verdict.
    Calc(CalcArgs),
}

/// Options of `loopvel calc`.
#[derive(Debug, Args)]
pub struct CalcArgs {
    /// Scenario file (TOML) with [loop] and one [models.NAME] table per model.
    pub scenario: PathBuf,
    /// Override a value of the scenario, e.g. --set models.fast.tokens_per_s=1000
    /// (repeatable; the value is TOML, bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the report as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// A model competes on speed only if its pass rate is within this share of
    /// the best (0.05 = 5 percentage points).
    #[arg(long, default_value_t = 0.05, value_name = "SHARE")]
    pub pass_rate_margin: f64,
}
