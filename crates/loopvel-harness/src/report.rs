//! Counting tests from what a test command printed (or wrote).

use std::path::{Path, PathBuf};

/// How a task's tests are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportFormat {
    /// pytest's summary line (`3 failed, 5 passed in 0.12s`).
    Pytest,
    /// `cargo test`'s `test result:` lines, summed.
    Cargo,
    /// `go test -v`'s `--- PASS` / `--- FAIL` lines.
    Go,
    /// TAP: `ok` / `not ok` lines and the `1..N` plan.
    Tap,
    /// A JUnit XML file the command writes, relative to the workspace.
    Junit(PathBuf),
    /// One test: the exit code.
    Exit,
}

impl std::fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportFormat::Pytest => write!(f, "pytest"),
            ReportFormat::Cargo => write!(f, "cargo"),
            ReportFormat::Go => write!(f, "go"),
            ReportFormat::Tap => write!(f, "tap"),
            ReportFormat::Junit(p) => write!(f, "junit:{}", p.display()),
            ReportFormat::Exit => write!(f, "exit"),
        }
    }
}

impl ReportFormat {
    /// Parse `report = "…"` of a task.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pytest" => ReportFormat::Pytest,
            "cargo" => ReportFormat::Cargo,
            "go" => ReportFormat::Go,
            "tap" => ReportFormat::Tap,
            "exit" => ReportFormat::Exit,
            other => match other.strip_prefix("junit:") {
                Some(p) if !p.is_empty() => ReportFormat::Junit(PathBuf::from(p)),
                _ => {
                    return Err(format!(
                        "report = \"{other}\" is not known; use pytest, cargo, go, tap, junit:PATH or exit"
                    ))
                }
            },
        })
    }
}

/// Tests counted from one run of the test command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u32,
    /// Tests found (passed, failed or errored).
    pub total: u32,
}

/// Count tests. `None` when the output holds no count (the tests crashed
/// before reporting, or did not run).
pub fn count(format: &ReportFormat, output: &str, exit_ok: bool, workspace: &Path) -> Option<Counts> {
    match format {
        ReportFormat::Pytest => pytest(output),
        ReportFormat::Cargo => cargo(output),
        ReportFormat::Go => go(output),
        ReportFormat::Tap => tap(output),
        ReportFormat::Junit(path) => read_report_file(&workspace.join(path)).and_then(|x| junit(&x)),
        ReportFormat::Exit => Some(Counts { passed: u32::from(exit_ok), total: 1 }),
    }
}

/// Largest JUnit report read, bytes.
const REPORT_CAP: u64 = 16 * 1024 * 1024;

/// The report file the tests wrote, read safely: model-run tests could have
/// made it a FIFO (an open would block), a link (to /dev/zero, say) or huge.
pub(crate) fn read_report_file(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(REPORT_CAP).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The number before `word` in `text` (`"5 passed"` → 5).
fn number_before(text: &str, word: &str) -> u32 {
    let mut total = 0;
    let tokens: Vec<&str> =
        text.split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|t| !t.is_empty()).collect();
    for w in tokens.windows(2) {
        if w[1].trim_end_matches(['.', ',']) == word {
            if let Ok(n) = w[0].parse::<u32>() {
                total += n;
            }
        }
    }
    total
}

fn pytest(output: &str) -> Option<Counts> {
    // The last line that reports timing is the summary: "2 failed, 3 passed in 0.05s" (maybe framed by '=').
    let line = output.lines().rev().find(|l| {
        let l = l.trim().trim_matches('=').trim();
        (l.contains(" passed") || l.contains(" failed") || l.contains(" error")) && l.contains(" in ")
    })?;
    let passed = number_before(line, "passed");
    let failed = number_before(line, "failed");
    let errors = number_before(line, "error") + number_before(line, "errors");
    Some(Counts { passed, total: passed + failed + errors })
}

fn cargo(output: &str) -> Option<Counts> {
    let mut found = false;
    let (mut passed, mut failed) = (0, 0);
    for line in output.lines().filter(|l| l.trim_start().starts_with("test result:")) {
        found = true;
        passed += number_before(line, "passed");
        failed += number_before(line, "failed");
    }
    found.then_some(Counts { passed, total: passed + failed })
}

fn go(output: &str) -> Option<Counts> {
    let passed = output.lines().filter(|l| l.trim_start().starts_with("--- PASS")).count() as u32;
    let failed = output.lines().filter(|l| l.trim_start().starts_with("--- FAIL")).count() as u32;
    (passed + failed > 0).then_some(Counts { passed, total: passed + failed })
}

fn tap(output: &str) -> Option<Counts> {
    let mut plan = None;
    let (mut passed, mut seen) = (0u32, 0u32);
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("1..") {
            plan = rest.split_whitespace().next().and_then(|n| n.parse::<u32>().ok());
        } else if line.starts_with("not ok") {
            seen += 1;
        } else if line.starts_with("ok") {
            seen += 1;
            passed += 1;
        }
    }
    // Tests the plan announced but never reported count as failed.
    let total = plan.map_or(seen, |p| p.max(seen));
    (total > 0).then_some(Counts { passed, total })
}

fn junit(xml: &str) -> Option<Counts> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut total, mut bad) = (0u32, 0u32);
    let mut in_case = false;
    let mut case_bad = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().into_inner() == "testcase" => {
                in_case = true;
                case_bad = false;
                total += 1;
            }
            Ok(Event::Empty(e)) if e.name().into_inner() == "testcase" => total += 1,
            Ok(Event::Start(e) | Event::Empty(e))
                if in_case && matches!(e.name().into_inner(), "failure" | "error") =>
            {
                case_bad = true;
            }
            Ok(Event::End(e)) if e.name().into_inner() == "testcase" => {
                if case_bad {
                    bad += 1;
                }
                in_case = false;
            }
            Ok(Event::Eof) => break,
            Err(_) => return None,
            _ => {}
        }
    }
    (total > 0).then_some(Counts { passed: total - bad, total })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_junit_report_that_is_a_fifo_or_a_link_is_not_read() {
        let ws = tempfile::tempdir().unwrap();
        let format = ReportFormat::Junit(PathBuf::from("report.xml"));
        let fifo = std::ffi::CString::new(ws.path().join("report.xml").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo in a fresh temporary folder.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        assert_eq!(count(&format, "", true, ws.path()), None, "a FIFO must not block or count");
        std::fs::remove_file(ws.path().join("report.xml")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", ws.path().join("report.xml")).unwrap();
        assert_eq!(count(&format, "", true, ws.path()), None, "a link is not followed");
    }

    use super::*;

    #[test]
    fn pytest_summary_lines() {
        assert_eq!(pytest("....F\n1 failed, 4 passed in 0.05s\n"), Some(Counts { passed: 4, total: 5 }));
        assert_eq!(pytest("==== 3 passed in 0.01s ====\n"), Some(Counts { passed: 3, total: 3 }));
        assert_eq!(pytest("2 failed, 1 passed, 1 error in 0.2s"), Some(Counts { passed: 1, total: 4 }));
        assert_eq!(pytest("ERROR collecting\n1 error in 0.1s"), Some(Counts { passed: 0, total: 1 }));
        assert_eq!(pytest("Traceback: boom"), None);
    }

    #[test]
    fn cargo_sums_every_binary() {
        let out =
            "test result: ok. 3 passed; 0 failed; 0 ignored\n\ntest result: FAILED. 1 passed; 2 failed; 0 ignored\n";
        assert_eq!(cargo(out), Some(Counts { passed: 4, total: 6 }));
        assert_eq!(cargo("error[E0425]: cannot find value"), None);
    }

    #[test]
    fn tap_counts_and_plans() {
        assert_eq!(tap("1..4\nok 1\nnot ok 2\nok 3 - x\n"), Some(Counts { passed: 2, total: 4 }));
        assert_eq!(tap("ok 1\nok 2\n"), Some(Counts { passed: 2, total: 2 }));
        assert_eq!(tap("nothing"), None);
    }

    #[test]
    fn go_and_junit() {
        assert_eq!(go("=== RUN A\n--- PASS: A\n--- FAIL: B\n"), Some(Counts { passed: 1, total: 2 }));
        let xml = r#"<testsuites><testsuite><testcase name="a"/><testcase name="b"><failure message="x"/></testcase><testcase name="c"></testcase></testsuite></testsuites>"#;
        assert_eq!(junit(xml), Some(Counts { passed: 2, total: 3 }));
    }

    #[test]
    fn formats_parse() {
        assert_eq!(ReportFormat::parse("junit:out.xml"), Ok(ReportFormat::Junit("out.xml".into())));
        assert!(ReportFormat::parse("junit:").is_err());
        assert!(ReportFormat::parse("nose").unwrap_err().contains("use pytest, cargo"));
    }
}
