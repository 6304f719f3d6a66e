//! The failing tests in a test run's output: names, assertion messages and
//! the lines they point at, per report format. What `failures` and
//! `targeted` feedback send back instead of the raw output, so the model sees
//! what failed and not the passing tests' noise.
//!
//! Hand-rolled per format (as `report.rs` counts them): each test tool has
//! its own layout and no crate reads all five; each reader is small, and a
//! format it cannot read falls back to the raw output (trimmed).

use std::path::Path;

use crate::report::ReportFormat;

/// One failing test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The test's name as the tool prints it.
    pub name: String,
    /// What the tool said about it: the assertion, the values, the line.
    pub detail: Vec<String>,
}

/// Most detail lines kept per failing test (the assertion and the lines around it).
const DETAIL_LINES: usize = 12;

/// Failing tests in `output` (or, for JUnit, the report file under `workspace`).
/// Empty when the format has no names (`exit`) or none could be read.
pub fn failures(format: &ReportFormat, output: &str, workspace: &Path) -> Vec<Failure> {
    let mut found = match format {
        ReportFormat::Pytest => pytest(output),
        ReportFormat::Cargo => cargo(output),
        ReportFormat::Go => go(output),
        ReportFormat::Tap => tap(output),
        ReportFormat::Junit(path) => {
            crate::report::read_report_file(&workspace.join(path)).map(|x| junit(&x)).unwrap_or_default()
        }
        ReportFormat::Exit => Vec::new(),
    };
    for f in &mut found {
        f.detail.truncate(DETAIL_LINES);
    }
    found
}

/// pytest: the `FAILED path::name - message` summary lines, and for each the
/// `E` lines and `file:line:` of its section (`____ name ____`).
fn pytest(output: &str) -> Vec<Failure> {
    let lines: Vec<&str> = output.lines().collect();
    let mut out: Vec<Failure> = Vec::new();
    for l in &lines {
        let Some(rest) = l.strip_prefix("FAILED ").or_else(|| l.strip_prefix("ERROR ")) else { continue };
        let (id, message) = rest.split_once(" - ").unwrap_or((rest, ""));
        let short = id.rsplit("::").next().unwrap_or(id);
        // Its section: a line of underscores around the test's short name.
        let section: Vec<String> = lines
            .iter()
            .position(|s| s.starts_with('_') && s.trim_matches('_').trim() == short)
            .map(|start| {
                lines[start + 1..]
                    .iter()
                    .take_while(|s| !(s.starts_with("____") || s.starts_with("====")))
                    .filter(|s| s.starts_with("E ") || s.starts_with(">") || is_file_line(s))
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let detail = if section.is_empty() && !message.is_empty() { vec![message.to_string()] } else { section };
        out.push(Failure { name: id.to_string(), detail });
    }
    out
}

/// `path.py:12: AssertionError` or `src/lib.rs:3:5`.
fn is_file_line(s: &str) -> bool {
    let mut parts = s.trim().splitn(3, ':');
    let (Some(file), Some(line)) = (parts.next(), parts.next()) else { return false };
    file.contains('.') && !file.contains(' ') && !line.is_empty() && line.chars().all(|c| c.is_ascii_digit())
}

/// cargo test: `---- name stdout ----` sections (the panic message and its
/// location), named by the `failures:` list.
fn cargo(output: &str) -> Vec<Failure> {
    let lines: Vec<&str> = output.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l.strip_prefix("---- ").and_then(|r| r.strip_suffix(" stdout ----")) else { continue };
        let detail = lines[i + 1..]
            .iter()
            .take_while(|s| !s.starts_with("---- ") && !s.starts_with("failures:"))
            .filter(|s| !s.trim().is_empty() && !s.starts_with("note: run with"))
            .map(|s| s.to_string())
            .collect();
        out.push(Failure { name: name.to_string(), detail });
    }
    if out.is_empty() {
        // Only the list (`test x ... FAILED`): names without messages.
        for l in &lines {
            if let Some(name) = l.strip_prefix("test ").and_then(|r| r.strip_suffix(" ... FAILED")) {
                out.push(Failure { name: name.to_string(), detail: Vec::new() });
            }
        }
    }
    out
}

/// go test -v: `--- FAIL: Name (0.00s)` and the indented `file_test.go:12: message` lines after it.
fn go(output: &str) -> Vec<Failure> {
    let lines: Vec<&str> = output.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim_start().strip_prefix("--- FAIL: ") else { continue };
        let name = rest.split(" (").next().unwrap_or(rest).to_string();
        let detail = lines[i + 1..]
            .iter()
            .take_while(|s| s.starts_with("    ") && !s.trim_start().starts_with("--- "))
            .map(|s| s.trim().to_string())
            .collect();
        out.push(Failure { name, detail });
    }
    // go prints a test's log lines before its `--- FAIL` when not verbose-ordered; those
    // are found above as well when indented under `=== RUN`.
    out
}

/// TAP: `not ok N - name` and its diagnostics (`# …` lines, a YAML block).
fn tap(output: &str) -> Vec<Failure> {
    let lines: Vec<&str> = output.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim_start().strip_prefix("not ok") else { continue };
        let name = rest.trim().trim_start_matches(|c: char| c.is_ascii_digit()).trim().trim_start_matches("- ");
        let detail = lines[i + 1..]
            .iter()
            .take_while(|s| {
                let t = s.trim_start();
                !(t.starts_with("ok") || t.starts_with("not ok") || t.starts_with("1.."))
            })
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        out.push(Failure { name: name.to_string(), detail });
    }
    out
}

/// JUnit XML: each `testcase` with a `failure` or `error`: its message attribute and text.
fn junit(xml: &str) -> Vec<Failure> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out: Vec<Failure> = Vec::new();
    let mut case: Option<String> = None;
    let mut in_failure = false;
    let attr = |e: &quick_xml::events::BytesStart, key: &str| -> Option<String> {
        e.attributes().flatten().find(|a| a.key.as_ref() == key).map(|a| {
            quick_xml::escape::unescape(&a.value).map(|v| v.into_owned()).unwrap_or_else(|_| a.value.to_string())
        })
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().into_inner() == "testcase" => {
                let name = attr(&e, "name").unwrap_or_default();
                case = Some(match attr(&e, "classname") {
                    Some(c) if !c.is_empty() => format!("{c}.{name}"),
                    _ => name,
                });
            }
            Ok(ev @ (Event::Start(_) | Event::Empty(_))) => {
                let (e, opens) = match &ev {
                    Event::Start(e) => (e, true),
                    Event::Empty(e) => (e, false),
                    _ => continue,
                };
                if let (true, Some(name)) = (matches!(e.name().into_inner(), "failure" | "error"), &case) {
                    let message = attr(e, "message").filter(|m| !m.is_empty());
                    out.push(Failure { name: name.clone(), detail: message.into_iter().collect() });
                    in_failure = opens;
                }
            }
            Ok(Event::Text(t)) if in_failure => {
                if let Some(last) = out.last_mut() {
                    let text = t.xml10_content();
                    last.detail.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()));
                }
            }
            Ok(Event::End(e)) if matches!(e.name().into_inner(), "failure" | "error") => in_failure = false,
            Ok(Event::End(e)) if e.name().into_inner() == "testcase" => case = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_failures_with_their_assertions() {
        let out = "\
..F.F
=================================== FAILURES ===================================
_________________________________ test_three __________________________________

    def test_three():
>       assert fizzbuzz(3) == ['1', '2', 'Fizz']
E       AssertionError: assert ['1', '2'] == ['1', '2', 'Fizz']
E         Right contains one more item: 'Fizz'

test_fizz.py:9: AssertionError
_________________________________ test_five ___________________________________

    def test_five():
>       assert len(fizzbuzz(5)) == 5
E       assert 4 == 5

test_fizz.py:12: AssertionError
=========================== short test summary info ============================
FAILED test_fizz.py::test_three - AssertionError: assert ['1', '2'] == ['1', ...
FAILED test_fizz.py::test_five - assert 4 == 5
2 failed, 3 passed in 0.05s
";
        let f = failures(&ReportFormat::Pytest, out, Path::new("."));
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "test_fizz.py::test_three");
        assert!(f[0].detail.iter().any(|l| l.contains("Right contains one more item: 'Fizz'")), "{f:?}");
        assert!(f[0].detail.iter().any(|l| l == "test_fizz.py:9: AssertionError"), "{f:?}");
        assert!(!f[0].detail.iter().any(|l| l.contains("len(fizzbuzz(5))")), "only its own section");
        assert_eq!(f[1].name, "test_fizz.py::test_five");
        assert!(f[1].detail.iter().any(|l| l.contains("assert 4 == 5")));
    }

    #[test]
    fn cargo_go_tap_and_junit_failures() {
        let cargo_out = "running 3 tests\ntest a ... ok\ntest tests::b ... FAILED\n\nfailures:\n\n---- tests::b stdout ----\n\nthread 'tests::b' panicked at src/lib.rs:9:5:\nassertion `left == right` failed\n  left: 3\n right: 4\nnote: run with `RUST_BACKTRACE=1`\n\nfailures:\n    tests::b\n\ntest result: FAILED. 2 passed; 1 failed\n";
        let f = failures(&ReportFormat::Cargo, cargo_out, Path::new("."));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "tests::b");
        assert!(f[0].detail.iter().any(|l| l.contains("left: 3")), "{f:?}");

        let go_out = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    b_test.go:12: got 3, want 4\n--- FAIL: TestB (0.00s)\n    b_test.go:14: also wrong\nFAIL\n";
        let f = failures(&ReportFormat::Go, go_out, Path::new("."));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "TestB");
        assert_eq!(f[0].detail, ["b_test.go:14: also wrong"]);

        let tap_out = "1..3\nok 1 - adds\nnot ok 2 - subtracts\n  # got 1, expected 2\nok 3 - multiplies\n";
        let f = failures(&ReportFormat::Tap, tap_out, Path::new("."));
        assert_eq!(f, [Failure { name: "subtracts".into(), detail: vec!["# got 1, expected 2".into()] }]);

        let xml = r#"<testsuite><testcase classname="m" name="ok"/><testcase classname="m" name="bad"><failure message="expected 2">trace line</failure></testcase></testsuite>"#;
        let f = junit(xml);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "m.bad");
        assert_eq!(f[0].detail, ["expected 2", "trace line"]);
        assert!(failures(&ReportFormat::Exit, "boom", Path::new(".")).is_empty());
    }
}
