//! Lognormal fit (maximum likelihood, location fixed at 0) for positive
//! quantities such as time to first token and decode speed, reported the way
//! the simulator takes them: median and P90, each with a 95% interval.

use crate::{Z90, Z95};

/// A fitted lognormal with intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LognormalFit {
    /// Mean of `ln x`.
    pub mu: f64,
    /// Standard deviation of `ln x` (maximum likelihood: divides by n).
    pub sigma: f64,
    /// Samples used.
    pub n: usize,
}

impl LognormalFit {
    /// Fits the positive, finite values; `None` with fewer than 2.
    ///
    /// Matches `scipy.stats.lognorm.fit(x, floc=0)` (shape = sigma, scale = e^mu).
    pub fn fit(values: &[f64]) -> Option<Self> {
        let logs: Vec<f64> = values.iter().filter(|v| v.is_finite() && **v > 0.0).map(|v| v.ln()).collect();
        if logs.len() < 2 {
            return None;
        }
        let n = logs.len() as f64;
        let mu = logs.iter().sum::<f64>() / n;
        let sigma = (logs.iter().map(|l| (l - mu).powi(2)).sum::<f64>() / n).sqrt();
        Some(LognormalFit { mu, sigma, n: logs.len() })
    }

    /// The median, `e^mu`.
    pub fn median(&self) -> f64 {
        self.mu.exp()
    }

    /// 95% interval of the median: normal interval on `mu`, mapped back.
    pub fn median_ci(&self) -> (f64, f64) {
        let half = Z95 * self.sigma / (self.n as f64).sqrt();
        ((self.mu - half).exp(), (self.mu + half).exp())
    }

    /// The mean, `e^(mu + sigma²/2)`.
    pub fn mean(&self) -> f64 {
        (self.mu + 0.5 * self.sigma * self.sigma).exp()
    }

    /// The mean of `1/x`, `e^(−mu + sigma²/2)`: mean generation time per token when `x` is a speed.
    pub fn mean_reciprocal(&self) -> f64 {
        (-self.mu + 0.5 * self.sigma * self.sigma).exp()
    }

    /// The 90th percentile, `e^(mu + z₀.₉·sigma)`.
    pub fn p90(&self) -> f64 {
        (self.mu + Z90 * self.sigma).exp()
    }

    /// 95% interval of the P90 by the delta method: `Var(mu + zσ) ≈ σ²/n + z²σ²/(2n)`.
    pub fn p90_ci(&self) -> (f64, f64) {
        let n = self.n as f64;
        let se = self.sigma * (1.0 / n + Z90 * Z90 / (2.0 * n)).sqrt();
        let at = self.mu + Z90 * self.sigma;
        ((at - Z95 * se).exp(), (at + Z95 * se).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_median_and_p90_of_a_symmetric_log_sample() {
        let xs: Vec<f64> = [-1.0f64, -0.5, 0.0, 0.5, 1.0].iter().map(|l| (2.0 + l).exp()).collect();
        let f = LognormalFit::fit(&xs).unwrap();
        assert!((f.median() - 2f64.exp()).abs() < 1e-12);
        assert!((f.sigma - 0.5f64.sqrt()).abs() < 1e-12);
        let (lo, hi) = f.median_ci();
        assert!(lo < f.median() && f.median() < hi && f.p90() > f.median());
        assert_eq!(LognormalFit::fit(&[1.0]), None);
    }
}
