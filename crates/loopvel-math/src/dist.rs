//! Distributions as scenario values: their parameters, checks and moments.
//!
//! A scenario value may be a number or a distribution table such as
//! `{ dist = "lognormal", median = 3.0, p90 = 5.0 }`. This module holds the
//! specification (pure numbers); the simulator turns it into a sampler.

use serde::Serialize;

/// The standard normal quantile at 0.9: `Φ⁻¹(0.9)`.
pub const Z90: f64 = 1.281_551_565_544_600_4;

/// A scenario value: a constant or a distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "dist", rename_all = "lowercase")]
pub enum Dist {
    /// Always this value.
    Const {
        /// The value.
        value: f64,
    },
    /// Lognormal given by its median and 90th percentile.
    LogNormal {
        /// Median.
        median: f64,
        /// 90th percentile (≥ median).
        p90: f64,
    },
    /// Gamma given by its mean and standard deviation.
    Gamma {
        /// Mean (> 0).
        mean: f64,
        /// Standard deviation (> 0).
        sd: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower end.
        min: f64,
        /// Upper end (≥ min).
        max: f64,
    },
    /// One of the listed values, each equally likely.
    Empirical {
        /// The values.
        values: Vec<f64>,
    },
    /// Beta given by its mean and concentration (`α + β`).
    Beta {
        /// Mean, in (0, 1).
        mean: f64,
        /// Concentration `α + β` (> 0); small values spread tasks towards 0 and 1.
        concentration: f64,
    },
}

/// What values a field may take, so a distribution can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// ≥ 0 (times, token counts).
    NonNegative,
    /// > 0 (speeds).
    Positive,
    /// In [0, 1].
    Probability,
}

impl Dist {
    /// A constant.
    pub fn constant(value: f64) -> Self {
        Dist::Const { value }
    }

    /// The value, if this is a constant.
    pub fn as_const(&self) -> Option<f64> {
        match self {
            Dist::Const { value } => Some(*value),
            _ => None,
        }
    }

    /// The mean of the distribution.
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Const { value } => *value,
            Dist::LogNormal { median, p90 } => {
                let (mu, sigma) = lognormal_params(*median, *p90);
                (mu + sigma * sigma / 2.0).exp()
            }
            Dist::Gamma { mean, .. } | Dist::Beta { mean, .. } => *mean,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::Empirical { values } => values.iter().sum::<f64>() / values.len().max(1) as f64,
        }
    }

    /// Why these parameters are impossible for `domain`, or `None` when they are fine.
    pub fn problem(&self, domain: Domain) -> Option<String> {
        let in_domain = |x: f64| {
            x.is_finite()
                && match domain {
                    Domain::NonNegative => x >= 0.0,
                    Domain::Positive => x > 0.0,
                    Domain::Probability => (0.0..=1.0).contains(&x),
                }
        };
        let domain_name = match domain {
            Domain::NonNegative => "≥ 0",
            Domain::Positive => "> 0",
            Domain::Probability => "in [0, 1]",
        };
        match self {
            Dist::Const { value } => (!in_domain(*value)).then(|| match domain {
                Domain::NonNegative => {
                    format!("= {value} is negative or not finite; give a number ≥ 0")
                }
                Domain::Positive => format!("= {value} must be a number > 0"),
                Domain::Probability => {
                    format!("= {value} is outside [0, 1]; give a probability from 0 to 1")
                }
            }),
            Dist::LogNormal { median, p90 } => {
                if domain == Domain::Probability {
                    Some("a lognormal is not a probability; use beta, uniform or empirical".into())
                } else if !(median.is_finite() && *median > 0.0) {
                    Some(format!("lognormal median = {median} must be > 0"))
                } else if !(p90.is_finite() && p90 >= median) {
                    Some(format!("lognormal p90 = {p90} must be ≥ the median ({median})"))
                } else {
                    None
                }
            }
            Dist::Gamma { mean, sd } => {
                if domain == Domain::Probability {
                    Some("a gamma is not a probability; use beta, uniform or empirical".into())
                } else if !(mean.is_finite() && *mean > 0.0) {
                    Some(format!("gamma mean = {mean} must be > 0"))
                } else if !(sd.is_finite() && *sd > 0.0) {
                    Some(format!("gamma sd = {sd} must be > 0"))
                } else {
                    None
                }
            }
            Dist::Uniform { min, max } => {
                if !(min.is_finite() && max.is_finite() && min <= max) {
                    Some(format!("uniform min = {min} must be ≤ max = {max}"))
                } else if !in_domain(*min) || !in_domain(*max) {
                    Some(format!("uniform [{min}, {max}] must lie {domain_name}"))
                } else {
                    None
                }
            }
            Dist::Empirical { values } => {
                if values.is_empty() {
                    Some("empirical values = [] is empty; list at least one value".into())
                } else {
                    values
                        .iter()
                        .find(|v| !in_domain(**v))
                        .map(|v| format!("empirical value {v} must be {domain_name}"))
                }
            }
            Dist::Beta { mean, concentration } => {
                if domain != Domain::Probability {
                    Some("a beta distribution is for probabilities; use lognormal, gamma, uniform or empirical".into())
                } else if !(mean.is_finite() && *mean > 0.0 && *mean < 1.0) {
                    Some(format!("beta mean = {mean} must be strictly between 0 and 1"))
                } else if !(concentration.is_finite() && *concentration > 0.0) {
                    Some(format!("beta concentration = {concentration} must be > 0"))
                } else {
                    None
                }
            }
        }
    }
}

/// `(μ, σ)` of the lognormal with this median and 90th percentile:
/// `μ = ln median`, `σ = ln(p90/median)/Φ⁻¹(0.9)`.
///
/// ```
/// let (mu, sigma) = loopvel_math::dist::lognormal_params(3.0, 5.0);
/// assert!((mu - 3f64.ln()).abs() < 1e-15);
/// assert!(((mu + 1.2815515655446004 * sigma).exp() - 5.0).abs() < 1e-12);
/// ```
pub fn lognormal_params(median: f64, p90: f64) -> (f64, f64) {
    (median.ln(), (p90 / median).ln() / Z90)
}

/// `(α, β)` of the beta with this mean and concentration `α + β`.
pub fn beta_params(mean: f64, concentration: f64) -> (f64, f64) {
    (mean * concentration, (1.0 - mean) * concentration)
}

/// `(shape, scale)` of the gamma with this mean and standard deviation.
pub fn gamma_params(mean: f64, sd: f64) -> (f64, f64) {
    let shape = (mean / sd).powi(2);
    (shape, mean / shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_by_hand() {
        let (a, b) = beta_params(0.4, 2.0);
        assert!((a - 0.8).abs() < 1e-15 && (b - 1.2).abs() < 1e-15);
        let (k, theta) = gamma_params(10.0, 5.0);
        assert!((k - 4.0).abs() < 1e-12 && (theta - 2.5).abs() < 1e-12);
        // Lognormal mean exp(μ + σ²/2).
        let (mu, sigma) = lognormal_params(3.0, 5.0);
        let m = Dist::LogNormal { median: 3.0, p90: 5.0 }.mean();
        assert!((m - (mu + sigma * sigma / 2.0).exp()).abs() < 1e-12);
        assert_eq!(Dist::Uniform { min: 1.0, max: 3.0 }.mean(), 2.0);
        assert_eq!(Dist::Empirical { values: vec![1.0, 2.0, 6.0] }.mean(), 3.0);
    }

    #[test]
    fn impossible_parameters_are_refused_with_the_reason() {
        let p = |d: Dist, dom| d.problem(dom).unwrap_or_default();
        assert!(p(Dist::LogNormal { median: 0.0, p90: 1.0 }, Domain::NonNegative).contains("median = 0 must be > 0"));
        assert!(
            p(Dist::LogNormal { median: 3.0, p90: 2.0 }, Domain::NonNegative).contains("p90 = 2 must be ≥ the median")
        );
        assert!(p(Dist::Beta { mean: 0.4, concentration: 0.0 }, Domain::Probability)
            .contains("concentration = 0 must be > 0"));
        assert!(p(Dist::Beta { mean: 1.0, concentration: 2.0 }, Domain::Probability).contains("strictly between"));
        assert!(p(Dist::Beta { mean: 0.5, concentration: 2.0 }, Domain::NonNegative).contains("for probabilities"));
        assert!(p(Dist::Uniform { min: 2.0, max: 1.0 }, Domain::NonNegative).contains("≤ max"));
        assert!(p(Dist::Uniform { min: 0.0, max: 1.0 }, Domain::Positive).contains("> 0"));
        assert!(p(Dist::Empirical { values: vec![] }, Domain::NonNegative).contains("empty"));
        assert!(p(Dist::Gamma { mean: 1.0, sd: -1.0 }, Domain::NonNegative).contains("sd = -1"));
        assert_eq!(Dist::LogNormal { median: 3.0, p90: 3.0 }.problem(Domain::Positive), None);
        assert_eq!(Dist::Beta { mean: 0.4, concentration: 2.0 }.problem(Domain::Probability), None);
    }
}
