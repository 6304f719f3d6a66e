//! Kaplan–Meier estimate of "still not passed" with Greenwood variance and the
//! exponential-Greenwood ("log-log") 95% band, the same estimator and band as
//! Python's `lifelines.KaplanMeierFitter` (checked against it in
//! `tests/fixtures.rs`).
//!
//! Runs are the subjects, "passed" is the event, and a run that stopped without
//! passing (turn or wall budget, error) is censored at the time it stopped: it
//! tells us only that its time to pass is longer than that.

use crate::Z95;

/// One run: when it passed, or when it stopped without passing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Time (s) or turn count at which the run passed or stopped.
    pub time: f64,
    /// True when the run passed at `time`; false when censored there.
    pub passed: bool,
}

/// The estimate just after one distinct time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KmPoint {
    /// The time.
    pub time: f64,
    /// Runs still going just before `time` (censored ones at `time` included).
    pub at_risk: u64,
    /// Runs that passed at `time`.
    pub passed: u64,
    /// Runs censored at `time`.
    pub censored: u64,
    /// Estimated chance a run has not passed by `time`.
    pub survival: f64,
    /// Greenwood's sum `Σ d/(n(n−d))` up to `time`.
    pub greenwood: f64,
    /// Lower end of the 95% band on `survival`.
    pub lower: f64,
    /// Upper end of the 95% band on `survival`.
    pub upper: f64,
}

/// A fitted Kaplan–Meier curve.
///
/// ```
/// use loopvel_analysis::km::{KaplanMeier, Observation};
/// let runs = [Observation { time: 1.0, passed: true }, Observation { time: 2.0, passed: false }];
/// let km = KaplanMeier::fit(&runs);
/// assert_eq!(km.passed_share_at(1.5), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KaplanMeier {
    /// One point per distinct time, in increasing time.
    pub points: Vec<KmPoint>,
    /// Runs in the sample.
    pub runs: usize,
}

impl KaplanMeier {
    /// Fits the curve. Non-finite times are ignored (a run without a time says nothing).
    pub fn fit(observations: &[Observation]) -> Self {
        let mut obs: Vec<Observation> = observations.iter().copied().filter(|o| o.time.is_finite()).collect();
        obs.sort_by(|a, b| a.time.total_cmp(&b.time));
        let runs = obs.len();
        let mut points = Vec::new();
        let mut at_risk = runs as u64;
        let mut survival = 1.0;
        let mut greenwood = 0.0;
        let mut i = 0;
        while i < obs.len() {
            let time = obs[i].time;
            let (mut passed, mut censored) = (0u64, 0u64);
            while i < obs.len() && obs[i].time == time {
                if obs[i].passed {
                    passed += 1;
                } else {
                    censored += 1;
                }
                i += 1;
            }
            if passed > 0 {
                survival *= 1.0 - passed as f64 / at_risk as f64;
                greenwood += if passed == at_risk {
                    f64::INFINITY
                } else {
                    passed as f64 / (at_risk as f64 * (at_risk - passed) as f64)
                };
            }
            let (lower, upper) = log_log_band(survival, greenwood);
            points.push(KmPoint { time, at_risk, passed, censored, survival, greenwood, lower, upper });
            at_risk -= passed + censored;
        }
        KaplanMeier { points, runs }
    }

    /// Estimated chance a run has not passed by `t`.
    pub fn survival_at(&self, t: f64) -> f64 {
        self.point_at(t).map_or(1.0, |p| p.survival)
    }

    /// Estimated share of runs passed by `t`: `1 − S(t)`.
    pub fn passed_share_at(&self, t: f64) -> f64 {
        1.0 - self.survival_at(t)
    }

    /// 95% band on the passed share at `t`.
    pub fn passed_band_at(&self, t: f64) -> (f64, f64) {
        self.point_at(t).map_or((0.0, 0.0), |p| (1.0 - p.upper, 1.0 - p.lower))
    }

    /// The first time by which at least half the runs have passed; `None` when
    /// the curve never gets there ("not reached").
    pub fn median(&self) -> Option<f64> {
        self.quantile(0.5)
    }

    /// The first time by which a share `level` of runs has passed.
    pub fn quantile(&self, level: f64) -> Option<f64> {
        self.points.iter().find(|p| p.survival <= 1.0 - level).map(|p| p.time)
    }

    /// The curve as `[time, passed share, band low, band high]` steps.
    pub fn passed_steps(&self) -> Vec<[f64; 4]> {
        self.points.iter().map(|p| [p.time, 1.0 - p.survival, 1.0 - p.upper, 1.0 - p.lower]).collect()
    }

    fn point_at(&self, t: f64) -> Option<&KmPoint> {
        let idx = self.points.partition_point(|p| p.time <= t);
        idx.checked_sub(1).map(|i| &self.points[i])
    }
}

/// The exponential Greenwood band: a normal interval on `log(−log S)`,
/// mapped back. At `S = 1` nothing has happened yet and the band is `[1, 1]`
/// (lifelines fills the same); at `S = 0` it is `[0, 0]`.
fn log_log_band(survival: f64, greenwood: f64) -> (f64, f64) {
    if survival >= 1.0 {
        return (1.0, 1.0);
    }
    if survival <= 0.0 || !greenwood.is_finite() {
        return (0.0, 0.0);
    }
    let v = survival.ln();
    let spread = Z95 * greenwood.sqrt() / v;
    let lower = (-((-v).ln() - spread).exp()).exp();
    let upper = (-((-v).ln() + spread).exp()).exp();
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(list: &[(f64, bool)]) -> Vec<Observation> {
        list.iter().map(|&(time, passed)| Observation { time, passed }).collect()
    }

    #[test]
    fn censored_runs_leave_the_risk_set_without_a_step() {
        let km = KaplanMeier::fit(&obs(&[(1.0, true), (2.0, false), (3.0, true), (4.0, false)]));
        // 4 at risk at t=1: S = 3/4; t=2 censored; 2 at risk at t=3: S = 3/4·1/2.
        assert_eq!(km.survival_at(1.0), 0.75);
        assert_eq!(km.survival_at(2.5), 0.75);
        assert_eq!(km.survival_at(3.0), 0.375);
        assert_eq!(km.median(), Some(3.0));
        assert_eq!(km.survival_at(0.5), 1.0);
    }

    #[test]
    fn all_passed_ends_at_zero_with_a_closed_band() {
        let km = KaplanMeier::fit(&obs(&[(1.0, true), (2.0, true)]));
        assert_eq!(km.passed_share_at(2.0), 1.0);
        assert_eq!(km.passed_band_at(2.0), (1.0, 1.0));
    }

    #[test]
    fn nothing_passed_means_no_median() {
        let km = KaplanMeier::fit(&obs(&[(1.0, false), (2.0, false)]));
        assert_eq!(km.median(), None);
        assert_eq!(km.passed_share_at(10.0), 0.0);
    }

    proptest! {
        #[test]
        fn survival_never_increases_and_the_band_holds_it(
            runs in proptest::collection::vec((0u32..50, any::<bool>()), 1..80)
        ) {
            let o: Vec<Observation> = runs.iter().map(|&(t, p)| Observation { time: f64::from(t), passed: p }).collect();
            let km = KaplanMeier::fit(&o);
            let mut last = 1.0;
            for p in &km.points {
                prop_assert!(p.survival <= last);
                prop_assert!(p.lower <= p.survival + 1e-12 && p.survival <= p.upper + 1e-12);
                last = p.survival;
            }
        }

        #[test]
        fn without_censoring_it_is_the_empirical_cdf(times in proptest::collection::vec(0u32..40, 1..100)) {
            let o: Vec<Observation> = times.iter().map(|&t| Observation { time: f64::from(t), passed: true }).collect();
            let km = KaplanMeier::fit(&o);
            for probe in 0..41 {
                let t = f64::from(probe);
                let ecdf = times.iter().filter(|&&x| f64::from(x) <= t).count() as f64 / times.len() as f64;
                prop_assert!((km.passed_share_at(t) - ecdf).abs() < 1e-12);
            }
        }
    }
}
