//! Reading edits out of a model's reply.
//!
//! Two formats, as the system prompt asks for them:
//!
//! * whole file: a line holding only the path, then a fenced block with the
//!   file's whole new content;
//! * search/replace: a path line, then blocks of `<<<<<<< SEARCH`, the lines to
//!   find, `=======`, the lines to put instead, `>>>>>>> REPLACE` (fenced or not).
//!
//! The reply is untrusted text: the parser never fails, it returns what it
//! could read and a list of problems; paths are only checked (and refused) by
//! the workspace when an edit is applied.

/// What an edit does to its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOp {
    /// Replace the whole file (or create it).
    Whole {
        /// The new content.
        content: String,
    },
    /// Replace the first occurrence of `search` with `replace`.
    Replace {
        /// Lines to find.
        search: String,
        /// Lines to put instead.
        replace: String,
    },
}

/// One edit the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The path as the model wrote it.
    pub path: String,
    /// What to do.
    pub op: EditOp,
}

/// Everything read from one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Edits in the order they appear.
    pub edits: Vec<Edit>,
    /// Things that looked like edits but could not be read.
    pub problems: Vec<String>,
}

/// The edit-format instructions for the system prompt.
pub const FORMAT_INSTRUCTIONS: &str = "\
To change a file, either give its whole new content: a line holding only the file's path, then a fenced code block with the complete file.
Or give search/replace blocks: a line holding only the path, then
<<<<<<< SEARCH
exact lines from the current file
=======
the lines to put instead
>>>>>>> REPLACE
Only edit the files you are allowed to edit. Do not explain at length; the tests decide.";

/// A reply that uses both edit styles, for the docs (`run --help`, README);
/// a test below checks that it parses into exactly the edits it shows.
pub const EXAMPLE_REPLY: &str = "\
The median takes the middle value only for odd counts; fix the even case.

stats.py
<<<<<<< SEARCH
    return ordered[len(ordered) // 2]
=======
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
>>>>>>> REPLACE

helpers.py
```python
def mean(values):
    return sum(values) / len(values)
```
";

/// The edit format in words, for `run --help` and the README.
pub fn format_help() -> String {
    format!(
        "THE EDIT FORMAT\n\
         The model is told (in the system prompt) which files it may edit and how to write edits. Its reply may \
         hold prose and any number of edits, each in one of two styles:\n\
         \n  * search/replace: a line holding only the file's path, then one or more blocks of\n    \
         <<<<<<< SEARCH / exact lines of the current file / ======= / the new lines / >>>>>>> REPLACE\n    \
         (the first occurrence is replaced; a search that matches nothing is refused and said so next turn);\n  \
         * whole file: a line holding only the file's path, then a fenced code block with the complete new content \
         (creates the file if the task lets the model edit it).\n\
         \nWhen the task has exactly one editable file, a reply that is one bare fenced block is taken as that file's \
         whole new content. Edits to files outside the task's `edit` globs, absolute paths, `..` and paths through \
         symlinks are refused. A worked reply with both styles:\n\n{}",
        EXAMPLE_REPLY.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    )
}

const SEARCH: &str = "<<<<<<< SEARCH";
const DIVIDER: &str = "=======";
const REPLACE: &str = ">>>>>>> REPLACE";

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// How many backticks open a fence (3 or more).
fn fence_len(line: &str) -> usize {
    line.trim_start().chars().take_while(|c| *c == '`').count()
}

/// The line that closes a fence opened with `len` backticks: as in
/// CommonMark, only backticks, at least as many. So a four-backtick fence can
/// hold a three-backtick block (a file that is itself Markdown) whole.
fn closes(line: &str, len: usize) -> bool {
    let t = line.trim();
    t.len() >= len && t.chars().all(|c| c == '`')
}

/// A path named in a fence's info string, in the forms models write it:
/// the first word ("```conftest.py"), after the language and a colon
/// ("```python:src/a.py"), or as an attribute ("```python title=\"a.py\"",
/// `file=`, `filename=`, `path=`). Nothing else: in "```text output of
/// stats.py" the words are prose, and the block is not stats.py's.
/// A bare language ("```python") names nothing: it has no `.` or `/`.
fn info_path(line: &str) -> Option<String> {
    let info = line.trim_start().trim_start_matches('`');
    let mut words = info.split_whitespace();
    let first = words.next()?;
    let named = match first.split_once(':') {
        Some((_, path)) => as_path(path),
        None => as_path(first),
    };
    named.or_else(|| {
        words.find_map(|w| {
            let (key, value) = w.split_once('=')?;
            ["title", "file", "filename", "path"].contains(&key).then(|| as_path(value)).flatten()
        })
    })
}

/// The problem recorded for a fenced block that no path names: it is not
/// applied, and the model is told how to name it.
pub const UNNAMED_BLOCK: &str =
    "a code block with no path line above it was not applied: put the file's path on the line before its fence";

/// The index of the line closing the fence opened at `open`, if any.
fn closing(lines: &[&str], open: usize) -> Option<usize> {
    let len = fence_len(lines[open]);
    lines[open + 1..].iter().position(|l| closes(l, len)).map(|p| p + open + 1)
}

/// A line that holds only a file path (maybe in backticks or bold, maybe after `File:`).
fn as_path(line: &str) -> Option<String> {
    let mut s = line.trim();
    for prefix in ["File:", "file:", "Path:", "path:", "###", "##", "#"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim();
        }
    }
    // Models often copy the listing's annotation: "a.py (editable)".
    let s = match s.rfind(" (") {
        Some(at) if s.ends_with(')') => s[..at].trim(),
        _ => s,
    };
    let s = s.trim_end_matches(':').trim_matches(|c| c == '`' || c == '*' || c == '"' || c == '\'').trim();
    let plausible = !s.is_empty()
        && s.len() < 256
        && !s.chars().any(char::is_whitespace)
        && (s.contains('.') || s.contains('/'))
        && !s.starts_with("```")
        && !s.starts_with("<<<<<<<")
        && !s.starts_with("=====")
        && !s.starts_with(">>>>>>>")
        && s.chars().any(|c| c.is_alphanumeric());
    plausible.then(|| s.to_string())
}

fn join(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    if !lines.is_empty() {
        s.push('\n');
    }
    s
}

/// Parse search/replace blocks in `lines`, starting with `path` as the current file.
fn parse_blocks(lines: &[&str], mut path: Option<String>, out: &mut Parsed) {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == SEARCH {
            let Some(div) = lines[i + 1..].iter().position(|l| l.trim() == DIVIDER).map(|p| p + i + 1) else {
                out.problems.push("a SEARCH block without `=======`".into());
                return;
            };
            let Some(end) = lines[div + 1..].iter().position(|l| l.trim() == REPLACE).map(|p| p + div + 1) else {
                out.problems.push("a SEARCH block without `>>>>>>> REPLACE`".into());
                return;
            };
            match &path {
                Some(p) => out.edits.push(Edit {
                    path: p.clone(),
                    op: EditOp::Replace { search: join(&lines[i + 1..div]), replace: join(&lines[div + 1..end]) },
                }),
                None => out.problems.push("a search/replace block with no file path line before it".into()),
            }
            i = end + 1;
            continue;
        }
        if let Some(p) = as_path(line) {
            path = Some(p);
        }
        i += 1;
    }
}

/// Read every edit in a reply.
///
/// ```
/// let reply = "bitcount.py\n```python\ndef bitcount(n):\n    return bin(n).count('1')\n```\n";
/// let parsed = loopvel_harness::edits::parse_edits(reply);
/// assert_eq!(parsed.edits.len(), 1);
/// assert_eq!(parsed.edits[0].path, "bitcount.py");
/// ```
pub fn parse_edits(reply: &str) -> Parsed {
    let lines: Vec<&str> = reply.lines().collect();
    let mut out = Parsed::default();
    let mut path: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_fence(line) {
            let Some(close) = closing(&lines, i) else {
                out.problems.push("a code block that is never closed".into());
                break;
            };
            let body = &lines[i + 1..close];
            // A path line above the fence wins over one in its info string.
            let named = path.take().or_else(|| info_path(line));
            if body.iter().any(|l| l.trim() == SEARCH) {
                parse_blocks(body, named, &mut out);
            } else if let Some(p) = named {
                out.edits.push(Edit { path: p, op: EditOp::Whole { content: join(body) } });
            } else {
                out.problems.push(UNNAMED_BLOCK.into());
            }
            i = close + 1;
            continue;
        }
        if line.trim() == SEARCH {
            // Unfenced blocks run until the next fence or the end, and end at
            // their last REPLACE marker: what follows (a path line, then a
            // fenced whole file) is another edit, never more of this file's.
            let end = lines[i..].iter().position(|l| is_fence(l)).map_or(lines.len(), |p| p + i);
            let end = lines[i..end].iter().rposition(|l| l.trim() == REPLACE).map_or(end, |p| p + i + 1);
            parse_blocks(&lines[i..end], path.clone(), &mut out);
            path = None;
            i = end;
            continue;
        }
        if let Some(p) = as_path(line) {
            path = Some(p);
        } else if !line.trim().is_empty() {
            path = None;
        }
        i += 1;
    }
    out
}

/// The path a block's first line names in a comment ("# conftest.py",
/// "// file: src/lib.rs"), if it names one: such a block was written for
/// that file, and is never taken as another file's content.
pub fn first_line_path(block: &str) -> Option<String> {
    let first = block.lines().find(|l| !l.trim().is_empty())?.trim();
    let rest = ["#", "//", "--", "/*", "<!--", ";"].iter().find_map(|m| first.strip_prefix(m))?;
    let rest = rest.trim().trim_end_matches("*/").trim_end_matches("-->").trim();
    // "#!/bin/sh" is a shebang, not a name.
    if rest.starts_with('!') {
        return None;
    }
    as_path(rest).filter(|p| file_like(p))
}

/// Whether `word` reads as a file name in prose: path characters only, and
/// a name with an extension ("conftest.py", "src/a.rs"), so "Fixed.",
/// "include<x.h>" and "e.g." are not taken for one.
fn file_like(word: &str) -> bool {
    let name = word.rsplit('/').next().unwrap_or(word);
    let ext_ok = name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric())
    });
    let abbreviation = ["e.g", "i.e", "a.k.a", "etc"].contains(&word.to_ascii_lowercase().as_str());
    ext_ok && !abbreviation && word.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

/// The file names a line of prose mentions ("Add this to `conftest.py`:").
pub fn mentioned_paths(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(|w| w.trim_matches(|c: char| "`*\"':;!?".contains(c)).trim_end_matches('.'))
        .filter(|w| file_like(w))
        .map(str::to_string)
        .collect()
}

/// The prose line just before the reply's first fence, if there is one.
pub fn line_before_first_fence(reply: &str) -> Option<&str> {
    let lines: Vec<&str> = reply.lines().collect();
    let fence = lines.iter().position(|l| is_fence(l))?;
    lines[..fence].iter().rev().find(|l| !l.trim().is_empty()).copied()
}

/// Whether `named` (as a model wrote it) is the file `path`: the same path,
/// or the same file name (`stats.py` for `src/stats.py`).
pub fn same_file(named: &str, path: &str) -> bool {
    let named = named.trim_start_matches("./");
    named == path || path.rsplit('/').next() == Some(named) || path.ends_with(&format!("/{named}"))
}

/// The contents of every closed fenced block, in order.
pub fn fenced_blocks(reply: &str) -> Vec<String> {
    let lines: Vec<&str> = reply.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if is_fence(lines[i]) {
            match closing(&lines, i) {
                Some(close) => {
                    out.push(join(&lines[i + 1..close]));
                    i = close + 1;
                    continue;
                }
                None => break,
            }
        }
        i += 1;
    }
    out
}

/// Apply a search/replace to `content`: the first exact match, else the first
/// match line by line ignoring trailing whitespace. `None` when not found.
pub fn replace_once(content: &str, search: &str, replace: &str) -> Option<String> {
    if search.is_empty() {
        return None;
    }
    if let Some(at) = content.find(search) {
        return Some(format!("{}{}{}", &content[..at], replace, &content[at + search.len()..]));
    }
    let file: Vec<&str> = content.lines().collect();
    let want: Vec<&str> = search.lines().map(str::trim_end).collect();
    if want.is_empty() || want.len() > file.len() {
        return None;
    }
    let start = (0..=file.len() - want.len())
        .find(|&s| file[s..s + want.len()].iter().zip(&want).all(|(a, b)| a.trim_end() == *b))?;
    let mut out: Vec<String> = file[..start].iter().map(|s| s.to_string()).collect();
    out.extend(replace.lines().map(str::to_string));
    out.extend(file[start + want.len()..].iter().map(|s| s.to_string()));
    let mut s = out.join("\n");
    if content.ends_with('\n') {
        s.push('\n');
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_file_with_decorated_path() {
        let reply = "Here is the fix.\n\n**src/a.py**\n```python\nx = 1\ny = 2\n```\nDone.";
        let p = parse_edits(reply);
        assert_eq!(
            p.edits,
            vec![Edit { path: "src/a.py".into(), op: EditOp::Whole { content: "x = 1\ny = 2\n".into() } }]
        );
        assert!(p.problems.is_empty());
    }

    #[test]
    fn an_annotated_path_line_still_names_the_file() {
        let p = parse_edits("binsearch.py (editable)\n```\nx = 1\n```\n");
        assert_eq!(p.edits.len(), 1);
        assert_eq!(p.edits[0].path, "binsearch.py");
    }

    #[test]
    fn search_replace_fenced_and_bare() {
        let reply = "a.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n\nb.py\n<<<<<<< SEARCH\ny\n=======\nz\n>>>>>>> REPLACE\n";
        let p = parse_edits(reply);
        assert_eq!(p.edits.len(), 2, "{p:?}");
        assert_eq!(p.edits[0].path, "a.py");
        assert_eq!(
            p.edits[1],
            Edit { path: "b.py".into(), op: EditOp::Replace { search: "y\n".into(), replace: "z\n".into() } }
        );
    }

    #[test]
    fn code_without_a_path_is_not_an_edit_and_broken_blocks_are_problems() {
        let p = parse_edits("Try this:\n```python\nprint(1)\n```\n");
        assert!(p.edits.is_empty());
        let p = parse_edits("a.py\n<<<<<<< SEARCH\nx\n");
        assert!(p.edits.is_empty());
        assert_eq!(p.problems.len(), 1);
        let p = parse_edits("```\nnever closed");
        assert_eq!(p.problems, vec!["a code block that is never closed".to_string()]);
        assert_eq!(parse_edits(""), Parsed::default());
    }

    #[test]
    fn hostile_paths_are_parsed_for_the_workspace_to_refuse() {
        let p = parse_edits("../outside.txt\n```\npwned\n```\n/etc/passwd\n```\nroot\n```\n");
        let paths: Vec<&str> = p.edits.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["../outside.txt", "/etc/passwd"]);
    }

    #[test]
    fn fenced_blocks_are_listed() {
        assert_eq!(fenced_blocks("a\n```py\nx\n```\nb\n```\ny\nz\n```\n"), vec!["x\n", "y\nz\n"]);
        assert!(fenced_blocks("```\nopen").is_empty());
    }

    #[test]
    fn replace_exact_then_ignoring_trailing_spaces() {
        assert_eq!(replace_once("a\nb\nc\n", "b\n", "B\n").as_deref(), Some("a\nB\nc\n"));
        assert_eq!(replace_once("a  \nb\n", "a\nb\n", "x\n").as_deref(), Some("x\n"));
        assert_eq!(replace_once("a\n", "zzz\n", "x\n"), None);
        assert_eq!(replace_once("a\n", "", "x\n"), None);
    }

    #[test]
    fn the_documented_example_reply_parses_into_the_edits_it_shows() {
        let parsed = parse_edits(EXAMPLE_REPLY);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.edits.len(), 2, "{:?}", parsed.edits);
        assert_eq!(parsed.edits[0].path, "stats.py");
        match &parsed.edits[0].op {
            EditOp::Replace { search, replace } => {
                assert_eq!(search.trim(), "return ordered[len(ordered) // 2]");
                assert!(replace.contains("(ordered[middle - 1] + ordered[middle]) / 2"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed.edits[1].path, "helpers.py");
        assert_eq!(
            parsed.edits[1].op,
            EditOp::Whole { content: "def mean(values):\n    return sum(values) / len(values)\n".into() }
        );
        assert!(format_help().contains("<<<<<<< SEARCH"));
    }

    #[test]
    fn a_four_backtick_fence_holds_a_three_backtick_block_and_the_next_edit_survives() {
        let reply =
            "README.md\n````markdown\n# Title\n```python\nx = 1\n```\nend\n````\n\nb.py\n```python\ny = 2\n```\n";
        let p = parse_edits(reply);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.edits.len(), 2, "{p:?}");
        assert_eq!(p.edits[0].path, "README.md");
        assert_eq!(p.edits[0].op, EditOp::Whole { content: "# Title\n```python\nx = 1\n```\nend\n".into() });
        assert_eq!(p.edits[1], Edit { path: "b.py".into(), op: EditOp::Whole { content: "y = 2\n".into() } });
    }

    #[test]
    fn a_path_in_the_fence_info_string_names_the_file() {
        for fence in ["```conftest.py", "```python:conftest.py", "```python title=\"conftest.py\"", "``` conftest.py"] {
            let p = parse_edits(&format!("Add a fixture.\n{fence}\nimport pytest\n```\n"));
            assert_eq!(p.edits.len(), 1, "{fence}: {p:?}");
            assert_eq!(p.edits[0].path, "conftest.py", "{fence}");
            assert!(p.problems.is_empty(), "{fence}: {:?}", p.problems);
        }
        // A bare language names nothing; the unnamed block is a recorded problem, not an edit.
        let p = parse_edits("```python\nx = 1\n```\n");
        assert!(p.edits.is_empty());
        assert_eq!(p.problems, vec![UNNAMED_BLOCK.to_string()]);
        // The path line above the fence wins.
        let p = parse_edits("a.py\n```python:b.py\nx\n```\n");
        assert_eq!(p.edits[0].path, "a.py");
    }

    #[test]
    fn a_first_line_comment_names_the_file_a_block_was_written_for() {
        assert_eq!(first_line_path("# conftest.py\nimport pytest\n").as_deref(), Some("conftest.py"));
        assert_eq!(first_line_path("\n// file: src/lib.rs\nfn x() {}\n").as_deref(), Some("src/lib.rs"));
        assert_eq!(first_line_path("<!-- docs/a.md -->\n# A\n").as_deref(), Some("docs/a.md"));
        assert_eq!(first_line_path("#!/bin/sh\necho hi\n"), None);
        assert_eq!(first_line_path("# compute the median\n"), None);
        assert_eq!(first_line_path("def f():\n    pass\n"), None);
        assert_eq!(first_line_path("# Fixed.\nx = 1\n"), None);
        assert_eq!(first_line_path("#include<x.h>\nint x;\n"), None);
        assert!(same_file("stats.py", "src/stats.py") && same_file("./a.py", "a.py") && !same_file("b.py", "a.py"));
        assert_eq!(mentioned_paths("Add this to `conftest.py`:"), vec!["conftest.py".to_string()]);
        assert!(mentioned_paths("Here is the fix, e.g. for the median.").is_empty());
        assert_eq!(line_before_first_fence("Intro\n\nAdd to a.py:\n```\nx\n```\n"), Some("Add to a.py:"));
    }

    #[test]
    fn only_the_first_word_or_an_attribute_of_the_info_string_names_a_file() {
        for prose in ["```text output of stats.py", "```console $ python stats.py"] {
            let p = parse_edits(&format!("{prose}\n$ ok\n```\n"));
            assert!(p.edits.is_empty(), "{prose}: {p:?}");
        }
        let p = parse_edits("```python file=src/a.py\nx\n```\n");
        assert_eq!(p.edits[0].path, "src/a.py");
    }
    use proptest::prelude::*;

    /// Lines a hostile reply is made of: paths, fences of every length,
    /// markers, prose, NULs, odd Unicode.
    fn hostile_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a.py".to_string()),
            Just("b.py".to_string()),
            Just("```".to_string()),
            Just("````".to_string()),
            Just("```python".to_string()),
            Just(SEARCH.to_string()),
            Just(DIVIDER.to_string()),
            Just(REPLACE.to_string()),
            Just("x = 1".to_string()),
            Just("".to_string()),
            Just("\u{0}\u{feff}\u{202e}".to_string()),
            ".{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Arbitrary text never panics the parser.
        #[test]
        fn arbitrary_text_never_panics(reply in "(?s).{0,400}") {
            let _ = parse_edits(&reply);
            let _ = fenced_blocks(&reply);
        }

        /// Every edit is attributed to a path the reply wrote on a line of its
        /// own before it, and its content is text the reply holds.
        #[test]
        fn edits_name_only_paths_the_reply_wrote_before_them(lines in proptest::collection::vec(hostile_line(), 0..40)) {
            let reply = lines.join("\n");
            let parsed = parse_edits(&reply);
            // Line endings are read as lines: CRLF counts as one.
            let reply = reply.replace("\r\n", "\n");
            for e in &parsed.edits {
                let named = lines.iter().position(|l| {
                    as_path(l).as_deref() == Some(e.path.as_str())
                        || (is_fence(l) && info_path(l).as_deref() == Some(e.path.as_str()))
                });
                prop_assert!(named.is_some(), "{} was never written as a path in {reply:?}", e.path);
                match &e.op {
                    EditOp::Whole { content } => prop_assert!(reply.contains(content.trim_end_matches('\n'))),
                    EditOp::Replace { search, replace } => {
                        prop_assert!(reply.contains(search.trim_end_matches('\n')));
                        prop_assert!(reply.contains(replace.trim_end_matches('\n')));
                    }
                }
            }
        }

        /// No block is dropped without a word: every closed top-level fenced
        /// block becomes a whole-file edit, holds search/replace blocks (each
        /// an edit or a problem), or is recorded as unnamed.
        #[test]
        fn every_fenced_block_is_an_edit_or_a_recorded_problem(lines in proptest::collection::vec(hostile_line(), 0..40)) {
            let reply = lines.join("\n");
            let parsed = parse_edits(&reply);
            let blocks = fenced_blocks(&reply);
            let whole = parsed.edits.iter().filter(|e| matches!(e.op, EditOp::Whole { .. })).count();
            let unnamed = parsed.problems.iter().filter(|p| *p == UNNAMED_BLOCK).count();
            let searching = blocks.iter().filter(|b| b.lines().any(|l| l.trim() == SEARCH)).count();
            prop_assert_eq!(whole + unnamed + searching, blocks.len(), "{:?} -> {:?}", reply, parsed);
        }
    }
}
