//! Intervals for rates and for statistics of samples: Wilson's score interval,
//! the type-7 quantile (NumPy's default), and a seeded percentile bootstrap.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::Z95;

/// Wilson's 95% score interval for `successes` out of `trials`; `None` with no trials.
///
/// Chosen over the Wald interval because it stays inside [0, 1] and keeps its
/// coverage at 0 or all successes, which small agent experiments hit often.
/// Matches `scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`.
///
/// ```
/// let (lo, hi) = loopvel_analysis::interval::wilson(10, 10).unwrap();
/// assert!(lo > 0.69 && lo < 0.73 && hi == 1.0);
/// ```
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 2.0 * (n + z2);
    let center = (2.0 * n * p + z2) / denom;
    let half = Z95 * (z2 + 4.0 * n * p * (1.0 - p)).sqrt() / denom;
    Some(((center - half).clamp(0.0, 1.0), (center + half).clamp(0.0, 1.0)))
}

/// The `level` quantile of sorted values by linear interpolation (Hyndman–Fan
/// type 7, NumPy's default); `None` for no values.
pub fn quantile_sorted(sorted: &[f64], level: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * level.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// The `level` quantile of unsorted values.
pub fn quantile(values: &[f64], level: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, level)
}

/// Arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Resamples for bootstrap intervals: enough for stable 2.5% / 97.5% ends at
/// the sample sizes agent experiments have, cheap at 100,000 turns.
pub const BOOTSTRAP_REPS: usize = 1000;

/// Seeded percentile bootstrap 95% interval of `stat` over `items` (resampled
/// with replacement, `reps` times). Items are whole runs where the statistic
/// is over turns, so turns of one run stay together. `None` when the
/// statistic is undefined on the sample; resamples where it is undefined are skipped.
pub fn bootstrap<T: Clone + Sync>(
    items: &[T],
    reps: usize,
    seed: u64,
    stat: impl Fn(&[T]) -> Option<f64> + Sync,
) -> Option<(f64, f64)> {
    stat(items)?;
    let [ci] = bootstrap_indexed(items.len(), reps, seed, |idx| {
        let sample: Vec<T> = idx.iter().map(|&i| items[i as usize].clone()).collect();
        [stat(&sample)]
    });
    ci
}

/// The percentile bootstrap of `K` statistics at once, from the same
/// resamples: `stat` gets the indices (into the caller's `n` items) of one
/// resample and returns each statistic, or `None` where it is undefined.
///
/// Resample `rep` draws from its own stream seeded by `(seed, rep)`, so the
/// result is the same with any number of threads; resamples run in parallel.
/// Statistics read the caller's data through the indices instead of a copy,
/// which keeps a report of 100,000 turns under a second.
pub fn bootstrap_indexed<const K: usize>(
    n: usize,
    reps: usize,
    seed: u64,
    stat: impl Fn(&[u32]) -> [Option<f64>; K] + Sync,
) -> [Option<(f64, f64)>; K] {
    use rayon::prelude::*;
    if n == 0 || reps == 0 {
        return [None; K];
    }
    let draws: Vec<[Option<f64>; K]> = (0..reps)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(n),
            |idx: &mut Vec<u32>, rep| {
                let mut rng =
                    Xoshiro256PlusPlus::seed_from_u64(seed ^ (rep as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                idx.clear();
                // Lemire's multiply-shift: an index below n from 64 random bits; the bias,
                // n / 2^64, is far below anything a bootstrap can see.
                idx.extend((0..n).map(|_| ((u128::from(rng.next_u64()) * n as u128) >> 64) as u32));
                stat(idx)
            },
        )
        .collect();
    std::array::from_fn(|k| percentile_95(draws.iter().filter_map(|d| d[k]).collect()).map(|[a, b]| (a, b)))
}

/// The 2.5% and 97.5% points (type 7) of `values`' finite members: a
/// percentile bootstrap's 95% interval from its draws; `None` without any.
pub fn percentile_95(values: Vec<f64>) -> Option<[f64; 2]> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    Some([quantile_sorted(&v, 0.025)?, quantile_sorted(&v, 0.975)?])
}

/// The percentile bootstrap of [`bootstrap_indexed`], resampling in two
/// stages: `groups` (each a list of item indices, e.g. one task's runs) with
/// replacement, then items within each drawn group with replacement. `stat`
/// sees the concatenated indices.
///
/// This is the interval for questions about groups ("how often will it pass
/// on tasks like these?"): runs of one task share its difficulty, so
/// resampling runs alone treats 60 runs of 12 tasks as 60 independent facts
/// and gives intervals too narrow. With one group it is the plain bootstrap.
///
/// ```
/// use loopvel_analysis::interval::bootstrap_clustered;
/// // Two tasks: one always passes (1.0), one never does (0.0).
/// let values = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
/// let groups = vec![vec![0, 1, 2], vec![3, 4, 5]];
/// let [ci] = bootstrap_clustered(&groups, 1000, 7, |idx| {
///     [Some(idx.iter().map(|&i| values[i as usize]).sum::<f64>() / idx.len() as f64)]
/// });
/// // Resampling runs alone would say 0.17–0.83; which tasks were drawn is the uncertainty.
/// assert_eq!(ci, Some((0.0, 1.0)));
/// ```
pub fn bootstrap_clustered<const K: usize>(
    groups: &[Vec<u32>],
    reps: usize,
    seed: u64,
    stat: impl Fn(&[u32]) -> [Option<f64>; K] + Sync,
) -> [Option<(f64, f64)>; K] {
    let cis = bootstrap_clustered_many(groups, reps, seed, K, |idx| stat(idx).to_vec());
    std::array::from_fn(|k| cis.get(k).copied().flatten())
}

/// [`bootstrap_clustered`] for `width` statistics known only at run time
/// (one per turn, say): `stat` returns `width` values per resample.
pub fn bootstrap_clustered_many(
    groups: &[Vec<u32>],
    reps: usize,
    seed: u64,
    width: usize,
    stat: impl Fn(&[u32]) -> Vec<Option<f64>> + Sync,
) -> Vec<Option<(f64, f64)>> {
    use rayon::prelude::*;
    let groups: Vec<&Vec<u32>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let total: usize = groups.iter().map(|g| g.len()).sum();
    if groups.is_empty() || reps == 0 {
        return vec![None; width];
    }
    let below = |rng: &mut Xoshiro256PlusPlus, n: usize| ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize;
    let draws: Vec<Vec<Option<f64>>> = (0..reps)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(total * 2),
            |idx: &mut Vec<u32>, rep| {
                let mut rng =
                    Xoshiro256PlusPlus::seed_from_u64(seed ^ (rep as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                idx.clear();
                for _ in 0..groups.len() {
                    let g = groups[below(&mut rng, groups.len())];
                    for _ in 0..g.len() {
                        idx.push(g[below(&mut rng, g.len())]);
                    }
                }
                stat(idx)
            },
        )
        .collect();
    (0..width)
        .map(|k| percentile_95(draws.iter().filter_map(|d| d.get(k).copied().flatten()).collect()).map(|[a, b]| (a, b)))
        .collect()
}

/// The type-7 `level` quantile of `values`, reordering them (linear time, no full sort).
pub fn quantile_select(values: &mut [f64], level: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let h = (values.len() - 1) as f64 * level.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let (_, &mut at_lo, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let at_hi = if h > lo as f64 { above.iter().copied().fold(f64::INFINITY, f64::min) } else { at_lo };
    Some(at_lo + (h - lo as f64) * (at_hi - at_lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_is_inside_unit_interval_and_contains_the_rate() {
        for n in 1..40u64 {
            for k in 0..=n {
                let (lo, hi) = wilson(k, n).unwrap();
                let p = k as f64 / n as f64;
                assert!(0.0 <= lo && lo <= p + 1e-12 && p <= hi + 1e-12 && hi <= 1.0, "{k}/{n}");
            }
        }
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9), Some(9.1));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_estimate() {
        let xs: Vec<f64> = (0..50).map(|i| f64::from(i % 7) + 1.0).collect();
        let a = bootstrap(&xs, 500, 7, mean).unwrap();
        let b = bootstrap(&xs, 500, 7, mean).unwrap();
        assert_eq!(a, b);
        let m = mean(&xs).unwrap();
        assert!(a.0 < m && m < a.1, "{a:?} around {m}");
        let c = bootstrap(&xs, 500, 8, mean).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn the_clustered_bootstrap_is_wider_than_the_plain_one_when_groups_differ() {
        // 12 groups of 5: half always 1, half always 0 (tasks that differ, runs that agree).
        let values: Vec<f64> = (0..60).map(|i| if (i / 5) % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let groups: Vec<Vec<u32>> = (0..12).map(|g| (g * 5..g * 5 + 5).collect()).collect();
        let m = |idx: &[u32]| [mean(&idx.iter().map(|&i| values[i as usize]).collect::<Vec<_>>())];
        let [clustered] = bootstrap_clustered(&groups, 2000, 3, m);
        let [plain] = bootstrap_indexed(60, 2000, 3, m);
        let (c, p) = (clustered.unwrap(), plain.unwrap());
        assert!(c.1 - c.0 > 1.5 * (p.1 - p.0), "clustered {c:?} against plain {p:?}");
        // One group is the plain bootstrap over its items (same spread, up to noise).
        let one = vec![(0..60).collect::<Vec<u32>>()];
        let [single] = bootstrap_clustered(&one, 2000, 3, m);
        let s = single.unwrap();
        assert!(((s.1 - s.0) - (p.1 - p.0)).abs() < 0.05, "{s:?} against {p:?}");
        assert_eq!(bootstrap_clustered(&[], 10, 1, m), [None]);
    }

    #[test]
    fn selection_quantile_equals_the_sorted_one() {
        let xs: Vec<f64> = (0..101).map(|i| f64::from((i * 37) % 101) * 0.5).collect();
        for level in [0.0, 0.1, 0.5, 0.9, 0.975, 1.0] {
            let mut v = xs.clone();
            assert_eq!(quantile_select(&mut v, level), quantile(&xs, level));
        }
    }
}
