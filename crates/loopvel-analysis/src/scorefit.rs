//! Least-squares fit of the compounding curve
//! `score(n) = 1 − (1 − first_score)(1 − r)^(n − 1)` to observed scores by turn.
//!
//! For a fixed `r` the model is linear in `a = 1 − first_score`, so the best
//! `a` is a closed-form ratio (clamped to [0, 1]) and the fit is a search over
//! `r` alone (variable projection): a grid, then golden-section refinement.
//! One bounded parameter does not justify a general optimiser crate.

/// Observed `(turn, score)` pairs, turn ≥ 1, score in [0, 1].
pub type ScorePoint = (u32, f64);

/// Scores at one turn, summed: all the fit needs, so a bootstrap over runs
/// adds these up instead of refitting every turn of every run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TurnSums {
    /// Observations at this turn.
    pub count: f64,
    /// Sum of the errors `1 − score`.
    pub error: f64,
    /// Sum of the squared errors.
    pub error_sq: f64,
}

/// Sums by turn (`index = turn − 1`) of the points.
pub fn sums(points: &[ScorePoint]) -> Vec<TurnSums> {
    let mut out: Vec<TurnSums> = Vec::new();
    for &(n, s) in points {
        add_point(&mut out, n, s);
    }
    out
}

/// Adds one `(turn, score)` to sums by turn.
pub fn add_point(sums: &mut Vec<TurnSums>, turn: u32, score: f64) {
    let i = turn.max(1) as usize - 1;
    if sums.len() <= i {
        sums.resize(i + 1, TurnSums::default());
    }
    let e = 1.0 - score;
    sums[i].count += 1.0;
    sums[i].error += e;
    sums[i].error_sq += e * e;
}

/// The fitted curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreFit {
    /// Share of tests passing after the first attempt.
    pub first_score: f64,
    /// Share of the remaining failing tests fixed per turn.
    pub r: f64,
    /// Sum of squared residuals at the fit.
    pub sse: f64,
}

/// The least-squares fit; `None` with no points.
///
/// ```
/// use loopvel_analysis::scorefit::fit;
/// let pts: Vec<(u32, f64)> = (1..6).map(|n| (n, 1.0 - 0.6 * 0.5f64.powi(n as i32 - 1))).collect();
/// let f = fit(&pts).unwrap();
/// assert!((f.first_score - 0.4).abs() < 1e-9 && (f.r - 0.5).abs() < 1e-9);
/// ```
pub fn fit(points: &[ScorePoint]) -> Option<ScoreFit> {
    fit_sums(&sums(points))
}

/// The fit from sums by turn; `None` with no observations.
pub fn fit_sums(points: &[TurnSums]) -> Option<ScoreFit> {
    if points.iter().all(|t| t.count == 0.0) {
        return None;
    }
    const GRID: usize = 400;
    let mut best = (0.0, f64::INFINITY);
    for i in 0..=GRID {
        let r = i as f64 / GRID as f64;
        let sse = projected(points, r).1;
        if sse < best.1 {
            best = (r, sse);
        }
    }
    // Golden section on the grid cell either side of the best grid point.
    let step = 1.0 / GRID as f64;
    let (mut lo, mut hi) = ((best.0 - step).max(0.0), (best.0 + step).min(1.0));
    let golden = 0.5 * (5f64.sqrt() - 1.0);
    let mut x1 = hi - golden * (hi - lo);
    let mut x2 = lo + golden * (hi - lo);
    let (mut f1, mut f2) = (projected(points, x1).1, projected(points, x2).1);
    while hi - lo > 1e-14 {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - golden * (hi - lo);
            f1 = projected(points, x1).1;
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + golden * (hi - lo);
            f2 = projected(points, x2).1;
        }
    }
    let mut candidates = [(best.0, best.1), (0.5 * (lo + hi), projected(points, 0.5 * (lo + hi)).1)];
    candidates.sort_by(|a, b| a.1.total_cmp(&b.1));
    let r = candidates[0].0;
    let (a, sse) = projected(points, r);
    Some(ScoreFit { first_score: 1.0 - a, r, sse })
}

/// The best `a = 1 − first_score` for this `r`, and the residual sum of squares.
fn projected(points: &[TurnSums], r: f64) -> (f64, f64) {
    let q = 1.0 - r;
    let (mut ew, mut ww) = (0.0, 0.0);
    for (i, t) in points.iter().enumerate() {
        let w = q.powi(i as i32);
        ew += t.error * w;
        ww += t.count * w * w;
    }
    let a = if ww > 0.0 { (ew / ww).clamp(0.0, 1.0) } else { 0.0 };
    // Σ (e − a·w)² = Σe² − 2a·w·Σe + a²·w²·count, turn by turn.
    let sse = points
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let w = q.powi(i as i32);
            (t.error_sq - 2.0 * a * w * t.error + a * a * w * w * t.count).max(0.0)
        })
        .sum();
    (a, sse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noisy_points_give_a_minimum_no_nearby_pair_beats() {
        let pts: [(u32, f64); 7] = [(1, 0.3), (1, 0.5), (2, 0.6), (2, 0.7), (3, 0.9), (3, 0.75), (4, 1.0)];
        let f = fit(&pts).unwrap();
        let sse = |fs: f64, r: f64| -> f64 {
            pts.iter().map(|&(n, s)| (s - (1.0 - (1.0 - fs) * (1.0 - r).powi(n as i32 - 1))).powi(2)).sum()
        };
        for dfs in [-0.01, 0.0, 0.01] {
            for dr in [-0.01, 0.0, 0.01] {
                assert!(sse(f.first_score + dfs, f.r + dr) >= f.sse - 1e-12);
            }
        }
    }

    #[test]
    fn a_flat_curve_fits_r_zero() {
        let f = fit(&[(1, 0.5), (2, 0.5), (3, 0.5)]).unwrap();
        assert!(f.r < 1e-9 && (f.first_score - 0.5).abs() < 1e-9);
    }
}
