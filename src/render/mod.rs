//! Output for people: tables and wrapped paragraphs. Every number carries its unit.

pub mod calc;
pub mod plot;
pub mod report;
pub mod report_plot;
pub mod simulate;

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

/// Wrap `text` at `width` columns on spaces.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wraps_on_spaces() {
        assert_eq!(super::wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(super::wrap("", 5), "");
    }

    #[test]
    fn spans_write_the_unit_once() {
        use loopvel_math::units::{percent, seconds, usd};
        assert_eq!(super::span(7.76, 12.2, seconds), "7.76–12.2 s");
        assert_eq!(super::span(0.15, 0.85, percent), "15.0–85.0%");
        assert_eq!(super::span(0.5, 2.0, usd), "$0.5000–$2.00");
    }
}
