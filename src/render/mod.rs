//! Output for people: tables and wrapped paragraphs. Every number carries its unit.

pub mod calc;
pub mod plot;
pub mod simulate;

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
}
