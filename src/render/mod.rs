//! Output for people: tables and wrapped paragraphs. Every number carries its unit.

pub mod calc;
pub mod plot;
pub mod report;
pub mod report_plot;
pub mod run;
pub mod simulate;
pub mod table;

pub use table::{Layout, Table};

/// Units that stay on the line of the number before them (`6.57 s`, not `6.57` / `s`).
const UNITS: [&str; 8] = ["s", "ms", "tokens/s", "tokens", "turns", "turn", "e-folds/s", "points"];

/// Wrap `text` at `width` columns on spaces, never between a number and its unit.
pub fn wrap(text: &str, width: usize) -> String {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let bare = word.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '/');
        let after_number = words.last().is_some_and(|w| w.ends_with(|c: char| c.is_ascii_digit()));
        match words.last_mut() {
            Some(last) if after_number && UNITS.contains(&bare) => {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    let mut out = String::new();
    let mut line_len = 0;
    for word in &words {
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

/// A list item: `- ` and `text` wrapped so that no line is wider than `width`,
/// continuation lines indented under the text.
pub fn bullet(text: &str, width: usize) -> String {
    let text = text.strip_prefix("- ").unwrap_or(text);
    format!("- {}", wrap(text, width.saturating_sub(2).max(20)).replace('\n', "\n  "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bullets_hang_within_the_width() {
        assert_eq!(
            super::bullet("aaa bbb ccc ddd eee fff ggg hhh iii", 24),
            "- aaa bbb ccc ddd eee\n  fff ggg hhh iii"
        );
        assert!(super::bullet(&"word ".repeat(40), 30).lines().all(|l| l.chars().count() <= 30));
    }

    #[test]
    fn wraps_on_spaces() {
        assert_eq!(super::wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(super::wrap("", 5), "");
        assert_eq!(super::wrap("pass 6.57 s, and 80 tokens/s.", 8), "pass\n6.57 s,\nand\n80 tokens/s.");
    }
}
