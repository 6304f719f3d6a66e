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

/// At least three significant figures, without noise digits or trailing zeros:
/// `469.0` → `469`, `52.5625` → `52.6`, `0.3` → `0.3`, `1234.4` → `1234`, `7.7625` → `7.76`.
/// Whole digits are never rounded away (`1234`, not `1230`): they read as a count.
pub fn sig3(x: f64) -> String {
    sig(x, 3)
}

/// `x` to `digits` significant figures (at least), trailing zeros trimmed.
pub fn sig(x: f64, digits: u32) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "n/a".into()
        } else if x > 0.0 {
            "∞".into()
        } else {
            "−∞".into()
        };
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (digits as i32 - 1 - magnitude).clamp(0, 12) as usize;
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Grid values as short as they can be while every value still reads differently
/// from its neighbours: `0.3, 7.76, 15.2, …` (3 significant figures, more only where needed).
pub fn distinct_labels(values: &[f64]) -> Vec<String> {
    for digits in 3..=12 {
        let labels: Vec<String> = values.iter().map(|v| sig(*v, digits)).collect();
        if labels.windows(2).all(|w| w[0] != w[1]) {
            return labels;
        }
    }
    values.iter().map(|v| format!("{v}")).collect()
}

/// A decode speed: `469 tokens/s`.
pub fn tokens_per_s(x: f64) -> String {
    format!("{} tokens/s", sig3(x))
}

/// A count of tokens: `1,500 tokens`.
pub fn tokens(x: f64) -> String {
    let n = x.round();
    let word = if n == 1.0 { "token" } else { "tokens" };
    if (0.0..1e15).contains(&n) {
        format!("{} {word}", thousands(n as u64))
    } else {
        format!("{n:.0} {word}")
    }
}

/// A number of turns, whole or fractional: `1 turn`, `2 turns`, `4.56 turns`.
pub fn turns(x: f64) -> String {
    if x == 1.0 {
        "1 turn".into()
    } else if x.fract() == 0.0 {
        format!("{} turns", sig3(x))
    } else {
        format!("{x:.2} turns")
    }
}

/// `n` things, with the right plural: `count(1, "turn")` → `1 turn`,
/// `count(2, "pass")` → `2 passes`, `count(1200, "run")` → `1,200 runs`.
pub fn count(n: u64, word: &str) -> String {
    format!("{} {}", thousands(n), plural(n, word))
}

/// `word` as it goes with `n`: `plural(2, "task")` → `tasks`. Regular English
/// plurals only (`-s`, or `-es` after s, x, ch, sh), which covers every word loopvel counts.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else if ["s", "x", "ch", "sh"].iter().any(|end| word.ends_with(end)) {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}

/// An integer with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `low–high unit`: the unit written once when both ends share it
/// (`7.76–12.2 s`, `15.0–85.0%`, `$0.01–$0.02`).
pub fn span(low: f64, high: f64, f: fn(f64) -> String) -> String {
    let (lo, hi) = (f(low), f(high));
    let unit = |s: &str| -> Option<String> {
        match s.rfind(' ') {
            Some(i) => Some(s[i..].to_string()),
            None => s.ends_with('%').then(|| "%".to_string()),
        }
    };
    match (unit(&lo), unit(&hi)) {
        (Some(u), Some(v)) if u == v => format!("{}–{hi}", lo.strip_suffix(u.as_str()).unwrap_or(&lo)),
        _ => format!("{lo}–{hi}"),
    }
}

/// A value and its standard error, the unit written once when both share it:
/// `13.6 ± 0.028 s`, `98.2 ± 0.04%`.
pub fn plus_minus(value: f64, se: f64, f: fn(f64) -> String) -> String {
    span(value, se, f).replacen('–', " ± ", 1)
}

/// A value with its interval in brackets: `12.0 s (7.76–15.2 s)`. An interval
/// that prints as the value alone (zero width at this precision) is left out:
/// `$0.000385`, not `$0.000385 ($0.000385–$0.000385)`.
pub fn with_interval(value: f64, interval: Option<[f64; 2]>, f: fn(f64) -> String) -> String {
    let shown = f(value);
    match interval {
        Some([lo, hi]) if !(f(lo) == shown && f(hi) == shown) => format!("{shown} ({})", span(lo, hi, f)),
        _ => shown,
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_figures_without_noise() {
        assert_eq!(sig3(469.0), "469");
        assert_eq!(sig3(52.5625), "52.6");
        assert_eq!(sig3(7.7625), "7.76");
        assert_eq!(sig3(0.3), "0.3");
        assert_eq!(sig3(60.0), "60");
        assert_eq!(sig3(1234.4), "1234");
        assert_eq!(sig3(0.012345), "0.0123");
        assert_eq!(sig3(-0.0001), "-0.0001");
        assert_eq!(sig3(0.0), "0");
        assert_eq!(tokens_per_s(469.04), "469 tokens/s");
        assert_eq!(tokens_per_s(80.0), "80 tokens/s");
        assert_eq!(tokens(1500.2), "1,500 tokens");
        assert_eq!(tokens(1.0), "1 token");
    }

    #[test]
    fn grid_labels_stay_distinct() {
        let grid: Vec<f64> = (0..9).map(|i| 0.3 + (60.0 - 0.3) * f64::from(i) / 8.0).collect();
        assert_eq!(distinct_labels(&grid), ["0.3", "7.76", "15.2", "22.7", "30.2", "37.6", "45.1", "52.5", "60"]);
        // 3 figures would print 1000 twice; the labels grow until they differ.
        assert_eq!(distinct_labels(&[1000.0, 1000.2, 1000.4]), ["1000", "1000.2", "1000.4"]);
    }

    #[test]
    fn plurals() {
        assert_eq!(count(1, "turn"), "1 turn");
        assert_eq!(count(2, "turn"), "2 turns");
        assert_eq!(count(0, "task"), "0 tasks");
        assert_eq!(count(1, "pass"), "1 pass");
        assert_eq!(count(3, "pass"), "3 passes");
        assert_eq!(count(12_000, "run"), "12,000 runs");
        assert_eq!(turns(1.0), "1 turn");
        assert_eq!(turns(4.0), "4 turns");
        assert_eq!(turns(4.5612), "4.56 turns");
    }

    #[test]
    fn intervals_print_once_when_they_have_no_width() {
        assert_eq!(with_interval(0.000385, Some([0.000385, 0.000385]), usd), "$0.000385");
        // Zero width at the printed precision counts as zero width.
        assert_eq!(with_interval(12.0, Some([11.999, 12.001]), seconds), "12.0 s");
        assert_eq!(with_interval(12.0, Some([7.76, 15.2]), seconds), "12.0 s (7.76–15.2 s)");
        assert_eq!(with_interval(0.5, None, percent), "50.0%");
        assert_eq!(span(7.76, 12.2, seconds), "7.76–12.2 s");
        assert_eq!(span(0.15, 0.85, percent), "15.0–85.0%");
        assert_eq!(span(0.5, 2.0, usd), "$0.5000–$2.00");
        assert_eq!(plus_minus(13.6, 0.028, seconds), "13.6 ± 0.028 s");
        assert_eq!(plus_minus(0.5, 0.25, percent), "50.0 ± 25.0%");
        assert_eq!(plus_minus(0.5, 0.25, usd), "$0.5000 ± $0.2500");
    }

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
