//! Streaming statistics of simulated runs.
//!
//! Every accumulator is an integer (counts, nanoseconds, pico-dollars), so
//! merging partial results is exact and order-free: the same seed gives the
//! same report whatever the number of threads or how rayon splits the work.
//! Memory is fixed per policy (one [`LogHistogram`] and per-turn counters),
//! whatever the number of runs.

use serde::Serialize;

use crate::hist::LogHistogram;

/// Why a run stopped without passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It passed.
    Passed,
    /// `max_turns` used up.
    Turns,
    /// `max_wall_s` reached.
    Wall,
    /// `max_usd` reached.
    Usd,
}

/// What one simulated run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunRecord {
    /// How it ended.
    pub stop: Stop,
    /// Turns taken (for a race: the winner's, or the longer loop's).
    pub turns: u32,
    /// Wall time of the run, s (time to pass if it passed).
    pub wall_s: f64,
    /// Cost of the run, USD.
    pub usd: f64,
    /// Time spent waiting for rate limits, s.
    pub wait_s: f64,
    /// Best score reached (passing tests), when the quality model has scores.
    pub best_passing: Option<u32>,
    /// Turns simulated in total (both loops of a race).
    pub turns_simulated: u32,
}

const NS: f64 = 1e9;
const US: f64 = 1e6;
const PICO: f64 = 1e12;

/// `x·scale` rounded to an integer. Through `u64` (a single instruction) rather
/// than `u128` (a library call); 2⁶⁴ ns is 584 years, 2⁶⁴ pico-dollars $18M per run.
#[inline]
fn fixed(x: f64, scale: f64) -> u128 {
    u128::from((x.max(0.0) * scale + 0.5) as u64)
}

/// Running totals for one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    runs: u64,
    passes: u64,
    one_shot: u64,
    censored_turns: u64,
    censored_wall: u64,
    censored_usd: u64,
    turns_at_pass: Vec<u64>,
    turns_simulated: u64,
    pass_times: LogHistogram,
    pass_ns: u128,
    pass_us_squared: u128,
    wall_ns: u128,
    usd_pico: u128,
    wait_ns: u128,
    failed_with_score: u64,
    failed_best_sum: u64,
    failed_best_max: Option<u32>,
    score_by_turn: Vec<u64>,
    score_runs: u64,
}

impl Stats {
    /// Empty totals for a loop of at most `max_turns` turns.
    pub fn new(max_turns: u32) -> Self {
        let n = max_turns as usize + 1;
        Stats {
            runs: 0,
            passes: 0,
            one_shot: 0,
            censored_turns: 0,
            censored_wall: 0,
            censored_usd: 0,
            turns_at_pass: vec![0; n],
            turns_simulated: 0,
            pass_times: LogHistogram::default(),
            pass_ns: 0,
            pass_us_squared: 0,
            wall_ns: 0,
            usd_pico: 0,
            wait_ns: 0,
            failed_with_score: 0,
            failed_best_sum: 0,
            failed_best_max: None,
            score_by_turn: vec![0; n],
            score_runs: 0,
        }
    }

    /// Count one run. `scores` are the passing-test counts after each turn, when the model has scores.
    pub fn add(&mut self, run: &RunRecord, scores: Option<&[u32]>) {
        self.runs += 1;
        self.turns_simulated += u64::from(run.turns_simulated);
        let wall_ns = fixed(run.wall_s, NS);
        self.wall_ns += wall_ns;
        self.usd_pico += fixed(run.usd, PICO);
        if run.wait_s > 0.0 {
            self.wait_ns += fixed(run.wait_s, NS);
        }
        match run.stop {
            Stop::Passed => {
                self.passes += 1;
                if run.turns == 1 {
                    self.one_shot += 1;
                }
                let t = run.turns as usize;
                if t < self.turns_at_pass.len() {
                    self.turns_at_pass[t] += 1;
                }
                self.pass_times.add(run.wall_s);
                self.pass_ns += wall_ns;
                let us = fixed(run.wall_s, US);
                // A 64-bit square while it fits (under 71 minutes), else 128-bit.
                self.pass_us_squared += if us < 1 << 32 { u128::from((us as u64) * (us as u64)) } else { us * us };
            }
            Stop::Turns => self.censored_turns += 1,
            Stop::Wall => self.censored_wall += 1,
            Stop::Usd => self.censored_usd += 1,
        }
        if run.stop != Stop::Passed {
            if let Some(best) = run.best_passing {
                self.failed_with_score += 1;
                self.failed_best_sum += u64::from(best);
                self.failed_best_max = Some(self.failed_best_max.map_or(best, |m| m.max(best)));
            }
        }
        if let Some(scores) = scores {
            // A run that stopped carries its last score forward, so every turn averages over all runs.
            self.score_runs += 1;
            let last = scores.last().copied().unwrap_or(0);
            for (i, slot) in self.score_by_turn.iter_mut().enumerate().skip(1) {
                *slot += u64::from(scores.get(i - 1).copied().unwrap_or(last));
            }
        }
    }

    /// Add another set of totals (exact, order-free).
    pub fn merge(mut self, other: Stats) -> Stats {
        self.runs += other.runs;
        self.passes += other.passes;
        self.one_shot += other.one_shot;
        self.censored_turns += other.censored_turns;
        self.censored_wall += other.censored_wall;
        self.censored_usd += other.censored_usd;
        for (a, b) in self.turns_at_pass.iter_mut().zip(&other.turns_at_pass) {
            *a += b;
        }
        self.turns_simulated += other.turns_simulated;
        self.pass_times.merge(&other.pass_times);
        self.pass_ns += other.pass_ns;
        self.pass_us_squared += other.pass_us_squared;
        self.wall_ns += other.wall_ns;
        self.usd_pico += other.usd_pico;
        self.wait_ns += other.wait_ns;
        self.failed_with_score += other.failed_with_score;
        self.failed_best_sum += other.failed_best_sum;
        self.failed_best_max = match (self.failed_best_max, other.failed_best_max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in self.score_by_turn.iter_mut().zip(&other.score_by_turn) {
            *a += b;
        }
        self.score_runs += other.score_runs;
        self
    }

    /// Turns simulated in all runs.
    pub fn turns_simulated(&self) -> u64 {
        self.turns_simulated
    }

    /// Passed runs whose time to pass is at most `t` seconds, as a share of all runs.
    pub fn passed_by(&self, t: f64) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.pass_times.count_at_most(t) as f64 / self.runs as f64
        }
    }

    /// The `level` quantile of time to pass among passes, s.
    pub fn pass_time_quantile(&self, level: f64) -> Option<f64> {
        self.pass_times.quantile(level)
    }

    /// The summary for reports.
    pub fn summary(&self, tests: u32) -> Summary {
        let runs = self.runs.max(1) as f64;
        let passes = self.passes as f64;
        let pass_rate = passes / runs;
        let mean_pass = (self.passes > 0).then(|| self.pass_ns as f64 / NS / passes);
        let se_mean = mean_pass.filter(|_| self.passes > 1).map(|m| {
            let mean_sq = self.pass_us_squared as f64 / (US * US) / passes;
            let var = (mean_sq - m * m).max(0.0) * passes / (passes - 1.0);
            (var / passes).sqrt()
        });
        let median_turns = {
            let target = self.passes.div_ceil(2).max(1);
            let mut seen = 0;
            self.turns_at_pass.iter().enumerate().find_map(|(t, c)| {
                seen += c;
                (self.passes > 0 && seen >= target).then_some(t as u32)
            })
        };
        let mean_turns = (self.passes > 0)
            .then(|| self.turns_at_pass.iter().enumerate().map(|(t, c)| t as f64 * *c as f64).sum::<f64>() / passes);
        let usd_per_run = self.usd_pico as f64 / PICO / runs;
        let wall_per_run = self.wall_ns as f64 / NS / runs;
        let failed = self.failed_with_score as f64;
        let tests_f = f64::from(tests.max(1));
        Summary {
            runs: self.runs,
            passes: self.passes,
            pass_rate,
            pass_rate_se: (pass_rate * (1.0 - pass_rate) / runs).sqrt(),
            one_shot_passes: self.one_shot,
            one_shot_rate: self.one_shot as f64 / runs,
            median_turns,
            mean_turns,
            mean_time_to_pass_s: mean_pass,
            mean_time_to_pass_se_s: se_mean,
            p50_time_to_pass_s: self.pass_times.quantile(0.5),
            p90_time_to_pass_s: self.pass_times.quantile(0.9),
            usd_per_run,
            usd_per_solved: (self.passes > 0).then(|| usd_per_run / pass_rate),
            wall_per_run_s: wall_per_run,
            wall_per_solved_s: (self.passes > 0).then(|| wall_per_run / pass_rate),
            mean_wait_s: self.wait_ns as f64 / NS / runs,
            censored: Censored { turns: self.censored_turns, wall: self.censored_wall, usd: self.censored_usd },
            failed_best_score_mean: (self.failed_with_score > 0)
                .then(|| self.failed_best_sum as f64 / failed / tests_f),
            failed_best_score_max: self.failed_best_max.map(|m| f64::from(m) / tests_f),
            mean_score_by_turn: (self.score_runs > 0).then(|| {
                self.score_by_turn[1..].iter().map(|s| *s as f64 / self.score_runs as f64 / tests_f).collect()
            }),
            turns_simulated: self.turns_simulated,
        }
    }
}

/// Runs stopped by each budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Censored {
    /// By `max_turns`.
    pub turns: u64,
    /// By `max_wall_s`.
    pub wall: u64,
    /// By `max_usd`.
    pub usd: u64,
}

/// What a policy achieved over all simulated runs. Times in seconds, costs in US dollars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Runs simulated.
    pub runs: u64,
    /// Runs that passed.
    pub passes: u64,
    /// `passes / runs`.
    pub pass_rate: f64,
    /// Monte Carlo standard error of the pass rate.
    pub pass_rate_se: f64,
    /// Runs that passed on the first turn.
    pub one_shot_passes: u64,
    /// `one_shot_passes / runs`.
    pub one_shot_rate: f64,
    /// Median turns to pass among passes.
    pub median_turns: Option<u32>,
    /// Mean turns to pass among passes.
    pub mean_turns: Option<f64>,
    /// Mean time to pass among passes, s.
    pub mean_time_to_pass_s: Option<f64>,
    /// Monte Carlo standard error of that mean, s.
    pub mean_time_to_pass_se_s: Option<f64>,
    /// Median time to pass among passes, s (±0.5%).
    pub p50_time_to_pass_s: Option<f64>,
    /// 90th percentile of time to pass among passes, s (±0.5%).
    pub p90_time_to_pass_s: Option<f64>,
    /// Mean cost of a run, USD.
    pub usd_per_run: f64,
    /// Cost per solved task, failed runs included, USD.
    pub usd_per_solved: Option<f64>,
    /// Mean wall time of a run, s.
    pub wall_per_run_s: f64,
    /// Wall time per solved task, failed runs included, s.
    pub wall_per_solved_s: Option<f64>,
    /// Mean time a run waited for rate limits, s.
    pub mean_wait_s: f64,
    /// Runs stopped by each budget.
    pub censored: Censored,
    /// Mean best score (share of tests passing) of failed runs, when the model has scores.
    pub failed_best_score_mean: Option<f64>,
    /// Highest score any failed run reached.
    pub failed_best_score_max: Option<f64>,
    /// Mean score after each turn, runs that stopped carrying their last score.
    pub mean_score_by_turn: Option<Vec<f64>>,
    /// Turns simulated.
    pub turns_simulated: u64,
}
