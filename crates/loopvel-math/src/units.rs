//! Numbers with their units, for people. Every figure loopvel prints goes through here.

/// Seconds, with precision that suits the size: `0.305 s`, `3.00 s`, `36.0 s`, `752 s`.
pub fn seconds(x: f64) -> String {
    if !x.is_finite() {
        return "∞ s".to_string();
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0} s")
    } else if a >= 10.0 {
        format!("{x:.1} s")
    } else if a >= 0.1 || a == 0.0 {
        format!("{x:.2} s")
    } else {
        format!("{x:.3} s")
    }
}

/// US dollars with enough digits to tell small amounts apart: `$0.00123`, `$1.23`.
pub fn usd(x: f64) -> String {
    let a = x.abs();
    if a >= 1.0 || a == 0.0 {
        format!("${x:.2}")
    } else if a >= 0.01 {
        format!("${x:.4}")
    } else {
        format!("${x:.6}")
    }
}

/// A share as a percentage: `0.953` → `95.3%`.
pub fn percent(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A ratio: `13.5×`.
pub fn factor(x: f64) -> String {
    if !x.is_finite() {
        "unbounded".to_string()
    } else if x >= 100.0 {
        format!("{x:.0}×")
    } else if x >= 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.2}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(seconds(36.0), "36.0 s");
        assert_eq!(seconds(3.0), "3.00 s");
        assert_eq!(seconds(752.4), "752 s");
        assert_eq!(seconds(0.0123), "0.012 s");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(12.0), "$12.00");
        assert_eq!(percent(0.5), "50.0%");
        assert_eq!(factor(13.46), "13.5×");
        assert_eq!(factor(f64::INFINITY), "unbounded");
    }
}
