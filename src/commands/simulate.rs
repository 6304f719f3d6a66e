//! `loopvel simulate`: scenario file → Monte Carlo runs → table, verdict, curves (or JSON, CSV, SVG).
//! With `--sweep`, the same for every point of a grid of values.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use loopvel_sim::{simulate, SimReport, SimVerdict};
use serde::Serialize;

use crate::cli::SimulateArgs;
use crate::error::CliError;
use crate::render;

/// The most runs per policy accepted (a guard against a typo, not a limit of the engine).
const MAX_RUNS: u64 = 10_000_000_000;

/// A simulation with how long it took.
#[derive(Debug, Serialize)]
pub struct SimOutput {
    /// The result.
    #[serde(flatten)]
    pub report: SimReportJson,
    /// The verdict.
    pub verdict: SimVerdict,
    /// Wall time of the simulation itself, s.
    pub elapsed_s: f64,
    /// Worker threads used.
    pub threads: usize,
}

/// `SimReport` with its named lists as JSON objects.
#[derive(Debug, Serialize)]
pub struct SimReportJson {
    runs: u64,
    seed: u64,
    turns_simulated: u64,
    quantile_relative_error: f64,
    models: serde_json::Map<String, serde_json::Value>,
    policies: serde_json::Map<String, serde_json::Value>,
}

fn as_json(report: &SimReport) -> SimReportJson {
    let map = |v: &[(String, loopvel_sim::PolicyResult)]| {
        v.iter().map(|(n, r)| (n.clone(), serde_json::to_value(r).unwrap_or(serde_json::Value::Null))).collect()
    };
    SimReportJson {
        runs: report.runs,
        seed: report.seed,
        turns_simulated: report.turns_simulated,
        quantile_relative_error: report.quantile_relative_error,
        models: map(&report.models),
        policies: map(&report.policies),
    }
}

/// One axis of a sweep: `KEY=FROM..TO:POINTS`.
#[derive(Debug, Clone, Serialize)]
pub struct Axis {
    /// The dotted key.
    pub key: String,
    /// The grid values.
    pub values: Vec<f64>,
}

impl Axis {
    fn parse(raw: &str) -> Result<Axis, CliError> {
        let bad = || {
            CliError::Usage(format!(
                "--sweep {raw}: write KEY=FROM..TO:POINTS, e.g. --sweep models.fast.tokens_per_s=100..2000:20"
            ))
        };
        let (key, range) = raw.split_once('=').ok_or_else(bad)?;
        let (span, points) = range.split_once(':').ok_or_else(bad)?;
        let (from, to) = span.split_once("..").ok_or_else(bad)?;
        let from: f64 = from.trim().parse().map_err(|_| bad())?;
        let to: f64 = to.trim().parse().map_err(|_| bad())?;
        let points: usize = points.trim().parse().map_err(|_| bad())?;
        if !(2..=1000).contains(&points) || !from.is_finite() || !to.is_finite() {
            return Err(CliError::Usage(format!("--sweep {raw}: give 2 to 1000 points between two finite numbers")));
        }
        let values = (0..points).map(|i| from + (to - from) * i as f64 / (points - 1) as f64).collect();
        Ok(Axis { key: key.trim().to_string(), values })
    }
}

/// One point of a sweep.
#[derive(Debug, Serialize)]
pub struct SweepPoint {
    /// The value of each axis.
    pub at: Vec<f64>,
    /// The winner there: the lowest mean time to pass among the eligible models.
    pub winner: Option<String>,
    /// The eligible model with the next lowest mean time to pass.
    pub runner_up: Option<String>,
    /// The runner-up's mean time to pass over the winner's (≥ 1); `None`
    /// when fewer than two models are eligible.
    pub margin: Option<f64>,
    /// Models whose pass rate is within the pass-rate margin of the best here:
    /// only these can win, whatever their times.
    pub eligible: Vec<String>,
    /// Mean time to pass per model, s.
    pub mean_time_to_pass_s: serde_json::Map<String, serde_json::Value>,
    /// Pass rate per model.
    pub pass_rate: serde_json::Map<String, serde_json::Value>,
}

/// A whole sweep.
#[derive(Debug, Serialize)]
pub struct Sweep {
    /// The axes.
    pub axes: Vec<Axis>,
    /// The models compared.
    pub models: Vec<String>,
    /// Every grid point, first axis slowest.
    pub points: Vec<SweepPoint>,
    /// Runs per model per point.
    pub runs: u64,
    /// How far below the best pass rate a model may be and still win (share).
    pub pass_rate_margin: f64,
    /// Wall time, s.
    pub elapsed_s: f64,
}

fn check(args: &SimulateArgs) -> Result<(), CliError> {
    if args.runs == 0 || args.runs > MAX_RUNS {
        return Err(CliError::Usage(format!("--runs {} is outside 1 to {MAX_RUNS}", args.runs)));
    }
    if args.threads == Some(0) {
        return Err(CliError::Usage("--threads 0: give at least 1 thread".into()));
    }
    if !(0.0..=1.0).contains(&args.pass_rate_margin) {
        return Err(CliError::Usage(format!(
            "--pass-rate-margin {} is outside [0, 1]; give a share such as 0.05",
            args.pass_rate_margin
        )));
    }
    if args.sweep.len() > 2 {
        return Err(CliError::Usage("--sweep takes at most two axes".into()));
    }
    if let Some(plot) = &args.plot {
        if plot.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(CliError::Usage(format!("--plot {}: the chart is SVG; name the file *.svg", plot.display())));
        }
    }
    Ok(())
}

/// Read, simulate and print.
pub fn run(args: &SimulateArgs, out: &mut impl Write) -> Result<(), CliError> {
    check(args)?;
    if let Some(n) = args.threads {
        // Fails only if a pool was built before, which this process never does.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let text = super::read_input(&args.scenario)?;
    let file = args.scenario.display().to_string();
    if !args.sweep.is_empty() {
        return run_sweep(args, &text, &file, out);
    }
    let scenario = loopvel_scenario::parse_sim_scenario(&text, &file, &args.set, args.all_policies)?;
    let started = Instant::now();
    let report = simulate(&scenario, args.runs, args.seed, args.curve_points);
    let elapsed_s = started.elapsed().as_secs_f64();
    let verdict = report.verdict(args.pass_rate_margin);
    let threads = rayon::current_num_threads();
    if let Some(path) = &args.csv {
        write_file(path, &render::simulate::csv(&report))?;
    }
    if let Some(path) = &args.plot {
        let svg = render::plot::curves(&report, &file).map_err(CliError::Usage)?;
        write_file(path, &svg)?;
    }
    let output = SimOutput { report: as_json(&report), verdict, elapsed_s, threads };
    let printed = if args.json {
        json(&output)
    } else {
        let layout = render::Layout::detect(args.wide);
        render::simulate::text(&report, &output.verdict, elapsed_s, threads, &scenario.loop_profile, layout)
    };
    out.write_all(printed.as_bytes())?;
    Ok(())
}

fn json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

fn write_file(path: &Path, content: &str) -> Result<(), CliError> {
    std::fs::write(path, content).map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

fn run_sweep(args: &SimulateArgs, text: &str, file: &str, out: &mut impl Write) -> Result<(), CliError> {
    let axes: Vec<Axis> = args.sweep.iter().map(|s| Axis::parse(s)).collect::<Result<_, _>>()?;
    let grid: Vec<Vec<f64>> = match axes.as_slice() {
        [a] => a.values.iter().map(|&x| vec![x]).collect(),
        [a, b] => a.values.iter().flat_map(|&x| b.values.iter().map(move |&y| vec![x, y])).collect(),
        _ => Vec::new(),
    };
    let started = Instant::now();
    let mut points = Vec::with_capacity(grid.len());
    let mut models = Vec::new();
    for at in grid {
        let mut sets = args.set.clone();
        sets.extend(axes.iter().zip(&at).map(|(axis, v)| format!("{}={v}", axis.key)));
        // Sweeps compare the plain loops; policies would multiply the work per point.
        let scenario = loopvel_scenario::parse_sim_scenario(text, file, &sets, false)?;
        let report = simulate(&scenario, args.runs, args.seed, 2);
        let verdict = report.verdict(args.pass_rate_margin);
        models = report.models.iter().map(|(n, _)| n.clone()).collect();
        let per_model = |f: &dyn Fn(&loopvel_sim::stats::Summary) -> Option<f64>| {
            report.models.iter().map(|(n, r)| (n.clone(), serde_json::json!(f(&r.summary)))).collect()
        };
        // The verdict's runner-up may be a model below the pass-rate bar (its
        // ratio then reads below 1×); a sweep compares the winner with the
        // next eligible model only, so its margin is ≥ 1× or absent.
        let mean_of =
            |name: &str| report.models.iter().find(|(n, _)| n == name).and_then(|(_, r)| r.summary.mean_time_to_pass_s);
        let runner_up = verdict.competent.iter().find(|n| Some(*n) != verdict.winner.as_ref()).cloned();
        let margin = match (verdict.winner.as_deref().and_then(mean_of), runner_up.as_deref().and_then(mean_of)) {
            (Some(w), Some(r)) if w > 0.0 => Some(r / w),
            _ => None,
        };
        points.push(SweepPoint {
            at,
            winner: verdict.winner.clone(),
            runner_up,
            margin,
            eligible: verdict.competent.clone(),
            mean_time_to_pass_s: per_model(&|s| s.mean_time_to_pass_s),
            pass_rate: per_model(&|s| Some(s.pass_rate)),
        });
    }
    let sweep = Sweep {
        axes,
        models,
        points,
        runs: args.runs,
        pass_rate_margin: args.pass_rate_margin,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    if let Some(path) = &args.plot {
        let svg = render::plot::sweep(&sweep).map_err(CliError::Usage)?;
        write_file(path, &svg)?;
    }
    let printed =
        if args.json { json(&sweep) } else { render::simulate::sweep_text(&sweep, render::Layout::detect(args.wide)) };
    out.write_all(printed.as_bytes())?;
    Ok(())
}
