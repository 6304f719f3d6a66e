/// The median of a non-empty slice.
pub fn median(values: &[f64]) -> f64 {
    let mut ordered = values.to_vec();
    ordered.sort_by(|a, b| a.total_cmp(b));
    ordered[ordered.len() / 2]
}
