//! Statistics on loopvel's recorded traces. Pure: takes runs and turns as
//! values, returns estimates with intervals; the store reads them and the CLI
//! prints them.
//!
//! - [`km`]: Kaplan–Meier "passed by time / by turn" with Greenwood bands.
//! - [`interval`]: Wilson intervals, quantiles, the seeded bootstrap.
//! - [`passfit`]: censored maximum likelihood of `p_first`, `p_retry`, `ceiling`.
//! - [`scorefit`]: least squares of the compounding curve (`first_score`, `r`).
//! - [`lognormal`]: TTFT and decode-speed distributions.
//! - [`summary`]: all of it per model, the numbers `loopvel report` prints.
//! - [`check`]: hold-out check of the intervals.
//! - [`predict`]: fitted parameters, with their uncertainty, through the simulator.

pub mod check;
pub mod compare;
pub mod interval;
pub mod km;
pub mod lognormal;
pub mod passfit;
pub mod passk;
pub mod plan_table;
pub mod predict;
pub mod predict_check;
pub mod scorefit;
pub mod summary;
pub mod taskfit;
pub mod trace;
pub mod turntime;

/// The standard normal 97.5% point, `scipy.stats.norm.ppf(0.975)`; 95% two-sided intervals.
pub const Z95: f64 = 1.959963984540054;
/// The standard normal 90% point, `scipy.stats.norm.ppf(0.9)`; P90 of a lognormal.
pub const Z90: f64 = 1.2815515655446004;
/// The 95% point of chi-square with one degree of freedom, `scipy.stats.chi2.ppf(0.95, 1)`.
pub const CHI2_1_95: f64 = 3.841458820694124;

/// Fewest passes before the tool fits pass-model and score parameters
/// (below it, it says so instead of printing a confident number).
pub const MIN_PASSES_TO_FIT: u64 = 5;

/// An estimate with its 95% interval (`None` where the data cannot give one).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The point estimate.
    pub value: f64,
    /// The 95% interval `[low, high]`.
    pub ci: Option<[f64; 2]>,
}

impl Estimate {
    /// An estimate with an interval.
    pub fn new(value: f64, ci: Option<(f64, f64)>) -> Self {
        Estimate { value, ci: ci.map(|(a, b)| [a, b]) }
    }
}
