//! A fixed-size histogram of times with log-spaced buckets: quantiles and
//! CDF values within ±0.5% (relative) of the exact sample values.
//!
//! Hand-rolled rather than a sketch crate: the simulator needs CDF queries at
//! arbitrary times (the success-by-time curve) and an order-independent merge
//! of integer counts, so that results are identical whatever the number of
//! threads. DDSketch-style crates offer quantiles but not rank queries.

/// Smallest time with its own bucket, s; anything at or below falls in bucket 0.
const MIN_S: f64 = 1e-3;
/// Bucket ratio: bucket `i ≥ 1` holds `(MIN_S·γ^(i−1), MIN_S·γ^i]`.
const GAMMA: f64 = 1.01;
/// `1 / ln γ`, spelled out because `ln` is not a `const fn`.
const INV_LN_GAMMA: f64 = 100.499_170_807_130_44;
/// Covers 1 ms to 10⁷ s (about 4 months); larger times land in the last bucket.
const BUCKETS: usize = 2318;

/// Relative error of a reported quantile: half a bucket, `√γ − 1` ≈ 0.5%.
pub const RELATIVE_ERROR: f64 = 0.004_987_562_112_089;

/// `log₂ v` for `v ≥ 1` to within 4·10⁻⁴, from the float's exponent and a
/// table of `log₂` over the top 12 bits of its mantissa: a first guess of the
/// bucket that [`LogHistogram::index`] then settles exactly against the
/// bucket bounds, with no division and no call to `ln`.
#[inline]
fn approx_log2(v: f64) -> f64 {
    static MANTISSA_LOG2: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = MANTISSA_LOG2.get_or_init(|| (0..4096).map(|k| (1.0 + (k as f64 + 0.5) / 4096.0).log2()).collect());
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    exponent as f64 + table[((bits >> 40) & 0xfff) as usize]
}

/// Upper bounds of the buckets in units of `MIN_S`: bucket `i ≥ 1` holds `(γ^(i−1), γ^i]`.
fn bounds() -> &'static [f64] {
    static BOUNDS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| (0..BUCKETS).map(|i| GAMMA.powi(i as i32)).collect())
}

/// Counts of times in log-spaced buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram { counts: vec![0; BUCKETS], total: 0 }
    }
}

impl LogHistogram {
    fn index(t: f64) -> usize {
        if t.is_nan() || t <= MIN_S {
            return 0;
        }
        let v = t * (1.0 / MIN_S);
        let bounds = bounds();
        if v >= bounds[BUCKETS - 2] {
            return BUCKETS - 1;
        }
        // Guess ⌈log_γ v⌉, then settle it exactly: γ^(i−1) < v ≤ γ^i.
        let mut i = ((approx_log2(v) * (std::f64::consts::LN_2 * INV_LN_GAMMA)) as usize + 1).clamp(1, BUCKETS - 2);
        while i > 1 && v <= bounds[i - 1] {
            i -= 1;
        }
        while v > bounds[i] {
            i += 1;
        }
        i
    }

    /// A representative time of bucket `i`: its geometric midpoint (0 for bucket 0).
    fn value(i: usize) -> f64 {
        if i == 0 {
            0.0
        } else {
            MIN_S * GAMMA.powf(i as f64 - 0.5)
        }
    }

    /// Count one time, in seconds.
    #[inline]
    pub fn add(&mut self, t: f64) {
        self.counts[Self::index(t)] += 1;
        self.total += 1;
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, other: &LogHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// Number of times counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `level` quantile (rank `⌈level·n⌉`), s; `None` when empty.
    pub fn quantile(&self, level: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((level * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        None
    }

    /// How many counted times are at most `t` seconds (to bucket resolution).
    pub fn count_at_most(&self, t: f64) -> u64 {
        let last = Self::index(t);
        self.counts[..=last].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_the_stated_error() {
        let mut h = LogHistogram::default();
        let xs: Vec<f64> = (1..=1000).map(|i| i as f64 * 0.37).collect();
        for &x in &xs {
            h.add(x);
        }
        for (level, exact) in [(0.5, xs[499]), (0.9, xs[899]), (1.0, xs[999]), (0.001, xs[0])] {
            let q = h.quantile(level).unwrap();
            assert!((q / exact - 1.0).abs() <= RELATIVE_ERROR + 1e-12, "{level}: {q} vs {exact}");
        }
        assert_eq!(h.count_at_most(1e9), 1000);
        assert_eq!(h.count_at_most(0.0), 0);
        // 0.37·k ≤ 37.0 for k ≤ 100; the bucket holding 37.0 also holds nothing else here.
        assert_eq!(h.count_at_most(37.0), 100);
    }

    #[test]
    fn merge_adds_counts() {
        let (mut a, mut b) = (LogHistogram::default(), LogHistogram::default());
        a.add(1.0);
        b.add(2.0);
        b.add(0.0);
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.quantile(0.0001), Some(0.0));
        assert!((a.quantile(1.0).unwrap() / 2.0 - 1.0).abs() <= RELATIVE_ERROR);
        assert_eq!(LogHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn buckets_are_exact_against_their_bounds() {
        // Every value lands in the bucket whose bounds hold it, as ⌈log_γ⌉ says.
        let mut t = 0.0011;
        while t < 1e6 {
            let i = LogHistogram::index(t);
            let v = t * (1.0 / MIN_S);
            assert!(v <= bounds()[i] && (i == 1 || v > bounds()[i - 1]), "{t} in bucket {i}");
            let exact = ((v.ln() / GAMMA.ln()).ceil() as usize).clamp(1, BUCKETS - 1);
            assert!(i.abs_diff(exact) <= 1, "{t}: {i} vs {exact}");
            t *= 1.0037;
        }
        for v in [1.0f64, 1.5, 2.0, 3.7, 1e3, 123456.0] {
            assert!((approx_log2(v) - v.log2()).abs() < 4e-4, "{v}");
        }
    }

    #[test]
    fn the_spelled_out_constant_is_right() {
        assert!((INV_LN_GAMMA * GAMMA.ln() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn bucket_count_covers_the_range() {
        // ln(1e7 / 1e-3) / ln(1.01) = 2314.9: buckets 1..=2315 plus bucket 0 fit in 2318.
        assert!(LogHistogram::index(1e7) < BUCKETS - 1);
        assert!(((GAMMA.sqrt() - 1.0) - RELATIVE_ERROR).abs() < 1e-12);
    }
}
