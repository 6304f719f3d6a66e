//! Terminal tables that fit the terminal they are printed to.
//!
//! Every table-printing command builds a [`Table`] and renders it for a
//! [`Layout`]: the wide layout shows every column on one header line (as wide
//! as it takes); the narrow one, for terminals under 100 columns, leaves out
//! the columns a table marks as secondary, wraps headers onto several lines
//! and, as a last resort, wraps cells so that no line is wider than the terminal.

use std::io::IsTerminal;

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, TableStyle};

/// Below this many columns the narrow layout is used.
pub const WIDE_FROM: usize = 100;

/// How wide the output may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Columns of text available (paragraphs wrap at most at 100 anyway).
    pub width: usize,
    /// Every column, however wide.
    pub wide: bool,
}

impl Layout {
    /// Every column, paragraphs at 100 columns: what `--wide` asks for.
    pub const WIDE: Layout = Layout { width: WIDE_FROM, wide: true };
    /// An 80-column terminal.
    pub const NARROW: Layout = Layout { width: 80, wide: false };

    /// The layout for standard output. `--wide` shows every column. Otherwise
    /// the width is `COLUMNS` when set, else the terminal's width when standard
    /// output is one, else 80. So piped output (a file, `less`, a test) is
    /// narrow unless `COLUMNS` says there is room: a pipe has no width of its
    /// own, and 80 columns is what a pasted block or a log viewer shows
    /// without wrapping. Shells rarely export `COLUMNS`, so
    /// `COLUMNS=200 loopvel … | less` or `--wide` is how to get every column in a pipe.
    pub fn detect(wide: bool) -> Layout {
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|c| *c > 0);
        let tty = || {
            let out = std::io::stdout();
            if out.is_terminal() {
                terminal_size::terminal_size_of(out).map(|(w, _)| usize::from(w.0))
            } else {
                None
            }
        };
        Layout::from_width(columns.or_else(tty).unwrap_or(80), wide)
    }

    /// The layout for a terminal `width` columns wide.
    pub fn from_width(width: usize, wide: bool) -> Layout {
        Layout { width: width.max(20), wide: wide || width >= WIDE_FROM }
    }

    /// Whether secondary columns are left out.
    pub fn narrow(self) -> bool {
        !self.wide
    }

    /// Where paragraphs wrap: the terminal's width, at most 100.
    pub fn text_width(self) -> usize {
        self.width.min(WIDE_FROM)
    }
}

/// A table of strings: a header, rows, which columns matter less, and where
/// the numbers (right-aligned) start.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    secondary: Vec<usize>,
    right_from: usize,
}

impl Table {
    /// A table with these column headers; numbers right-aligned from column 1.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            secondary: Vec::new(),
            right_from: 1,
        }
    }

    /// Add a row.
    pub fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Columns the narrow layout leaves out (the wide one and the JSON keep them).
    pub fn secondary(mut self, columns: &[usize]) -> Table {
        self.secondary = columns.to_vec();
        self
    }

    /// Right-align the columns from `first` on (numbers).
    pub fn right_from(mut self, first: usize) -> Table {
        self.right_from = first;
        self
    }

    /// The table as text for `layout`, without a trailing newline, and
    /// without the padding comfy-table leaves at the end of each row.
    pub fn render(&self, layout: Layout) -> String {
        self.render_padded(layout).lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
    }

    fn render_padded(&self, layout: Layout) -> String {
        let keep: Vec<usize> = (0..self.header.len()).filter(|i| layout.wide || !self.secondary.contains(i)).collect();
        let pick =
            |row: &[String]| -> Vec<String> { keep.iter().map(|&i| row.get(i).cloned().unwrap_or_default()).collect() };
        let header = pick(&self.header);
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| pick(r)).collect();
        if layout.wide {
            return self.build(header, rows, &keep).to_string();
        }
        // A header is often far wider than its numbers: wrap it to the widest
        // cell below it (8 columns at least, so it stays readable).
        let header: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(c, h)| {
                let widest = rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .flat_map(|cell| cell.lines())
                    .map(|l| l.chars().count())
                    .max()
                    .unwrap_or(0);
                super::wrap(&breakable(h), widest.max(8))
            })
            .collect();
        let fits = |t: &comfy_table::Table| widest_line(&t.to_string()) <= layout.width;
        let t = self.build(header.clone(), rows.clone(), &keep);
        if fits(&t) {
            return t.to_string();
        }
        // Then policy names such as escalate(fast->frontier), which set the
        // width of the first column: break them at their brackets, just
        // enough to make up the overflow.
        let longest = |r: &[String]| r.first().map_or(0, |n| widest_line(n));
        let names = rows.iter().map(|r| longest(r)).max().unwrap_or(0);
        let over = widest_line(&t.to_string()).saturating_sub(layout.width);
        let name_width = names.saturating_sub(over).max(NAME_WIDTH);
        let split: Vec<Vec<String>> = rows
            .into_iter()
            .map(|mut r| {
                if let Some(name) = r.first_mut() {
                    *name = name.lines().map(|l| split_name(l, name_width)).collect::<Vec<_>>().join("\n");
                }
                r
            })
            .collect();
        let t = self.build(header.clone(), split.clone(), &keep);
        if fits(&t) {
            return t.to_string();
        }
        // Then intervals, `12.3 s (10.1–14.6 s)`, on a line of their own under the value.
        let stacked: Vec<Vec<String>> = split
            .into_iter()
            .map(|r| {
                let mut r = r.into_iter();
                r.next().into_iter().chain(r.map(|c| c.replacen(" (", "\n(", 1))).collect()
            })
            .collect();
        let mut t = self.build(header, stacked, &keep);
        if !fits(&t) {
            // Still too wide (many models): wrap within the cells rather than
            // let the terminal wrap whole lines.
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(u16::try_from(layout.width).unwrap_or(u16::MAX));
        }
        t.to_string()
    }

    fn build(&self, header: Vec<String>, rows: Vec<Vec<String>>, keep: &[usize]) -> comfy_table::Table {
        let mut t = base(header);
        for r in rows {
            t.add_row(r);
        }
        let first = keep.iter().position(|&i| i >= self.right_from).unwrap_or(keep.len());
        for i in first..t.column_count() {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        t
    }
}

fn widest_line(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// The house style: rules above, below and under the header; no vertical lines.
fn base(header: Vec<String>) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    let rule = LineStyle::none().fill('─').junction('─');
    t.load_style(TableStyle::new().top_border(rule).header_separator(rule).bottom_border(rule)).set_header(header);
    t
}

/// The narrowest a narrow table's first column is made by breaking names.
const NAME_WIDTH: usize = 14;

/// Open a long column name at its brackets, commas and arrows, so it can
/// wrap as a header: `escalate(fast->frontier)` → `escalate (fast-> frontier)`.
fn breakable(name: &str) -> String {
    if name.chars().count() <= 10 {
        return name.to_string();
    }
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => out.push_str(" ("),
            ',' => out.push_str(", "),
            '>' if out.ends_with('-') => out.push_str("> "),
            // A dotted key (models.fast.ceiling), not a decimal point (qwen-0.5b).
            '.' if chars.peek().is_some_and(|n| n.is_alphabetic())
                && out.chars().rev().take_while(|p| p.is_alphanumeric() || *p == '_').count() > 1 =>
            {
                out.push_str(". ")
            }
            _ => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A policy name on lines of at most `width`, broken at its spaces, brackets,
/// commas and arrows: `escalate(fast->frontier)` → `escalate\n(fast->\nfrontier)`.
/// An indented line (a sub-label) is left as it is.
fn split_name(line: &str, width: usize) -> String {
    if line.chars().count() <= width || line.starts_with(char::is_whitespace) {
        return line.to_string();
    }
    // Pieces, each with whether a space stood before it.
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut current = String::new();
    let mut spaced = false;
    let mut previous = ' ';
    for c in line.chars() {
        if c == ' ' {
            if !current.is_empty() {
                pieces.push((std::mem::take(&mut current), spaced));
            }
            spaced = true;
            previous = c;
            continue;
        }
        if c == '(' && !current.is_empty() {
            pieces.push((std::mem::take(&mut current), spaced));
            spaced = false;
        }
        current.push(c);
        if c == ',' || (c == '>' && previous == '-') {
            pieces.push((std::mem::take(&mut current), spaced));
            spaced = false;
        }
        previous = c;
    }
    if !current.is_empty() {
        pieces.push((current, spaced));
    }
    let mut lines: Vec<String> = Vec::new();
    for (piece, spaced) in pieces {
        match lines.last_mut() {
            Some(last) if last.chars().count() + usize::from(spaced) + piece.chars().count() <= width => {
                if spaced {
                    last.push(' ');
                }
                last.push_str(&piece);
            }
            _ => lines.push(piece),
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t =
            Table::new(["model", "pass rate within the budget", "an unimportant column that is wide"]).secondary(&[2]);
        t.row(vec!["fast".into(), "98.2%".into(), "something long enough to matter".into()]);
        t
    }

    fn widest(s: &str) -> usize {
        s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn narrow_drops_secondary_columns_and_wraps_headers() {
        let wide = sample().render(Layout::WIDE);
        assert!(wide.contains("an unimportant column that is wide") && wide.contains("pass rate within the budget"));
        let narrow = sample().render(Layout::NARROW);
        assert!(!narrow.contains("unimportant"), "{narrow}");
        assert!(narrow.contains("pass") && narrow.contains("budget"), "{narrow}");
        assert!(!narrow.contains("pass rate within the budget"), "the header wraps: {narrow}");
        assert!(widest(&narrow) < widest(&wide));
    }

    #[test]
    fn nothing_is_wider_than_the_terminal() {
        let mut t = Table::new((0..8).map(|i| format!("model number {i}")));
        t.row((0..8).map(|i| format!("{i}23.4 s ± 0.5 s")).collect());
        for width in [40, 60, 80, 99] {
            let out = t.render(Layout::from_width(width, false));
            assert!(widest(&out) <= width, "{width}: {out}");
        }
    }

    #[test]
    fn the_width_decides_the_layout() {
        assert!(Layout::from_width(80, false).narrow());
        assert!(Layout::from_width(99, false).narrow());
        assert!(!Layout::from_width(100, false).narrow());
        assert!(!Layout::from_width(80, true).narrow());
        assert_eq!(Layout::from_width(80, true).text_width(), 80);
        assert_eq!(Layout::from_width(250, false).text_width(), 100);
    }

    #[test]
    fn long_names_break_at_brackets() {
        assert_eq!(breakable("escalate(fast->frontier)"), "escalate (fast-> frontier)");
        assert_eq!(split_name("escalate(fast->frontier)", 14), "escalate\n(fast->\nfrontier)");
        assert_eq!(split_name("best_of_4(frontier)", 14), "best_of_4\n(frontier)");
        assert_eq!(split_name("qwen-0.5b", 14), "qwen-0.5b");
        assert_eq!(split_name("  generation + tests & overhead", 14), "  generation + tests & overhead");
        assert_eq!(
            split_name("escalate(qwen-0.5b->qwen-1.5b after 1)", 14),
            "escalate\n(qwen-0.5b->\nqwen-1.5b\nafter 1)"
        );
        assert_eq!(split_name("race(fast,frontier)", 14), "race(fast,\nfrontier)");
        assert_eq!(breakable("race(fast,frontier)"), "race (fast, frontier)");
        assert_eq!(breakable("fast"), "fast");
        assert_eq!(breakable("models.fast.ceiling (share)"), "models. fast. ceiling (share)");
        assert_eq!(breakable("qwen-0.5b passed"), "qwen-0.5b passed");
        assert_eq!(breakable("pass rate ± s.e."), "pass rate ± s.e.");
    }
}
