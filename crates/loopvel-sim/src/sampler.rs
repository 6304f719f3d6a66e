//! Scenario distributions turned into samplers.

use loopvel_math::dist::{beta_params, gamma_params, lognormal_params, Dist};
use rand::Rng;
use rand_distr::{Beta, Distribution, Gamma, LogNormal, Normal};

/// A ready-to-sample scenario value.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// Always this value.
    Const(f64),
    /// Lognormal.
    LogNormal(LogNormal<f64>),
    /// Gamma.
    Gamma(Gamma<f64>),
    /// Uniform on `[min, min + width]`.
    Uniform {
        /// Lower end.
        min: f64,
        /// `max − min`.
        width: f64,
    },
    /// One of these values.
    Empirical(Vec<f64>),
    /// Beta.
    Beta(Beta<f64>),
}

impl Sampler {
    /// A sampler for a validated distribution. Parameters that `Dist::problem`
    /// accepts always build; should a library refuse one anyway, the mean is
    /// used as a constant rather than panicking.
    pub fn new(dist: &Dist) -> Self {
        let fallback = Sampler::Const(dist.mean());
        match dist {
            Dist::Const { value } => Sampler::Const(*value),
            Dist::LogNormal { median, p90 } => {
                let (mu, sigma) = lognormal_params(*median, *p90);
                if sigma == 0.0 {
                    return Sampler::Const(*median);
                }
                LogNormal::new(mu, sigma).map_or(fallback, Sampler::LogNormal)
            }
            Dist::Gamma { mean, sd } => {
                let (shape, scale) = gamma_params(*mean, *sd);
                Gamma::new(shape, scale).map_or(fallback, Sampler::Gamma)
            }
            Dist::Uniform { min, max } => Sampler::Uniform {
                min: *min,
                width: max - min,
            },
            Dist::Empirical { values } => Sampler::Empirical(values.clone()),
            Dist::Beta {
                mean,
                concentration,
            } => {
                let (a, b) = beta_params(*mean, *concentration);
                Beta::new(a, b).map_or(fallback, Sampler::Beta)
            }
        }
    }

    /// One draw.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Sampler::Const(v) => *v,
            Sampler::LogNormal(d) => d.sample(rng),
            Sampler::Gamma(d) => d.sample(rng),
            Sampler::Uniform { min, width } => min + width * unit(rng),
            Sampler::Empirical(values) => {
                let i = ((unit(rng) * values.len() as f64) as usize).min(values.len() - 1);
                values[i]
            }
            Sampler::Beta(d) => d.sample(rng),
        }
    }
}

/// A uniform draw in `[0, 1)` with 53 random bits.
#[inline]
pub fn unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal draw (used by tests of the lognormal parametrisation).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    Normal::new(0.0, 1.0).map_or(0.0, |n| n.sample(rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::SeedableRng;

    fn quantile(mut xs: Vec<f64>, q: f64) -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[((q * xs.len() as f64).ceil() as usize).saturating_sub(1)]
    }

    #[test]
    fn lognormal_from_median_and_p90_has_that_median_and_p90() {
        let s = Sampler::new(&Dist::LogNormal {
            median: 3.0,
            p90: 5.0,
        });
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let xs: Vec<f64> = (0..200_000).map(|_| s.sample(&mut rng)).collect();
        // Sample quantiles of 200k draws: standard error well under 1%.
        let (m, p90) = (quantile(xs.clone(), 0.5), quantile(xs, 0.9));
        assert!((m - 3.0).abs() < 0.03, "median {m}");
        assert!((p90 - 5.0).abs() < 0.06, "p90 {p90}");
    }

    #[test]
    fn other_distributions_have_their_means() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for (d, tol) in [
            (
                Dist::Gamma {
                    mean: 10.0,
                    sd: 5.0,
                },
                0.1,
            ),
            (Dist::Uniform { min: 1.0, max: 3.0 }, 0.01),
            (
                Dist::Empirical {
                    values: vec![1.0, 2.0, 6.0],
                },
                0.03,
            ),
            (
                Dist::Beta {
                    mean: 0.4,
                    concentration: 2.0,
                },
                0.005,
            ),
        ] {
            let s = Sampler::new(&d);
            let n = 100_000;
            let mean = (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((mean - d.mean()).abs() < tol, "{d:?}: {mean}");
        }
        let e = Sampler::new(&Dist::Empirical {
            values: vec![1.0, 2.0],
        });
        assert!((0..1000).all(|_| [1.0, 2.0].contains(&e.sample(&mut rng))));
        assert!(standard_normal(&mut rng).is_finite());
    }
}
