//! Running a task's tests: `sh -c` in the workspace, in a process group of its
//! own that is killed as a whole at the timeout, output capped, secrets scrubbed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

use crate::report::{count, Counts, ReportFormat};

/// Default cap on captured output per stream, in bytes.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// What one run of the test command did.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRun {
    /// Exit code; `None` when killed (timeout or signal).
    pub exit_code: Option<i32>,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Wall time from start to exit (or kill), seconds.
    pub duration_s: f64,
    /// Tests counted from the output; `None` when nothing could be counted.
    pub counts: Option<Counts>,
    /// Captured output (stdout and stderr as written), head and tail kept within the cap.
    pub output: String,
}

impl TestRun {
    /// All tests found passed, and at least one was found.
    pub fn all_passed(&self) -> bool {
        !self.timed_out && self.counts.is_some_and(|c| c.total > 0 && c.passed == c.total)
    }
}

/// How to run tests.
#[derive(Debug, Clone)]
pub struct TestSpec<'a> {
    /// The command, run with `sh -c`.
    pub command: &'a str,
    /// How to count tests.
    pub report: &'a ReportFormat,
    /// Kill after this long.
    pub timeout: Duration,
    /// Environment variables to remove (every model's `api_key_env`).
    pub scrub_env: &'a [String],
    /// Cap on captured bytes.
    pub output_cap: usize,
}

/// Keep the first and last `cap / 2` bytes of a stream, noting what was cut.
fn capture(mut stream: impl Read, cap: usize) -> String {
    let half = cap / 2;
    let mut head = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut skipped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if head.len() < half {
                head.push(b);
            } else {
                tail.push_back(b);
                if tail.len() > half {
                    tail.pop_front();
                    skipped += 1;
                }
            }
        }
    }
    let mut out = String::from_utf8_lossy(&head).into_owned();
    if skipped > 0 {
        out.push_str(&format!("\n… [{skipped} bytes cut] …\n"));
    }
    out.push_str(&String::from_utf8_lossy(&tail.into_iter().collect::<Vec<u8>>()));
    out
}

/// Whether an environment variable must not reach model-written code.
fn is_secret(name: &str, scrub: &[String]) -> bool {
    scrub.iter().any(|s| s == name) || name.ends_with("_API_KEY")
}

/// Run the tests in `dir`.
pub fn run_tests(dir: &Path, spec: &TestSpec) -> std::io::Result<TestRun> {
    // A report left by an earlier run must not be counted again.
    if let ReportFormat::Junit(path) = spec.report {
        let _ = std::fs::remove_file(dir.join(path));
    }
    // Tests run at a lower CPU priority (nice 10; `nice` execs `sh`, same process):
    // when many loops share few cores, the harness's short bookkeeping goes first
    // instead of queueing behind other loops' test suites.
    let mut cmd = Command::new("nice");
    // One pipe for stdout and stderr: the output reads in the order it was written,
    // and one reader thread serves both.
    let (reader, writer) = std::io::pipe()?;
    cmd.args(["-n", "10", "sh", "-c"])
        .arg(spec.command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    // A new process group led by the shell: the timeout kills it and every child it started.
    cmd.process_group(0);
    for (name, _) in std::env::vars_os() {
        if let Some(n) = name.to_str() {
            if is_secret(n, spec.scrub_env) {
                cmd.env_remove(n);
            }
        }
    }
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let group = Pid::from_raw(child.id() as i32);
    let cap = spec.output_cap;
    // Our copies of the write end are gone with `cmd`: the reader sees EOF when the group exits.
    drop(cmd);
    let out_reader = std::thread::spawn(move || capture(reader, cap));
    let (status, timed_out) = match child.wait_timeout(spec.timeout)? {
        Some(status) => (Some(status), false),
        None => {
            let _ = killpg(group, Signal::SIGKILL);
            (child.wait().ok(), true)
        }
    };
    let duration_s = start.elapsed().as_secs_f64();
    // Children left running in the background would hold the pipes open: end them too.
    let _ = killpg(group, Signal::SIGKILL);
    let output = out_reader.join().unwrap_or_default();
    let exit_code = if timed_out { None } else { status.and_then(|s| s.code()) };
    let counts = if timed_out { None } else { count(spec.report, &output, exit_code == Some(0), dir) };
    Ok(TestRun { exit_code, timed_out, duration_s, counts, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(command: &'a str, report: &'a ReportFormat, timeout_ms: u64) -> TestSpec<'a> {
        TestSpec { command, report, timeout: Duration::from_millis(timeout_ms), scrub_env: &[], output_cap: OUTPUT_CAP }
    }

    #[test]
    fn exit_code_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let r = run_tests(dir.path(), &spec("echo '1 failed, 2 passed in 0.1s'; exit 1", &ReportFormat::Pytest, 5000))
            .unwrap();
        assert_eq!(r.exit_code, Some(1));
        assert_eq!(r.counts, Some(Counts { passed: 2, total: 3 }));
        assert!(!r.all_passed());
        let ok = run_tests(dir.path(), &spec("true", &ReportFormat::Exit, 5000)).unwrap();
        assert!(ok.all_passed());
    }

    #[test]
    fn a_test_that_sleeps_forever_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        // A background grandchild that would write a file after 2 s, and a foreground sleep.
        let cmd = format!("(sleep 2; touch {}) & sleep 1000", marker.display());
        let start = Instant::now();
        let r = run_tests(dir.path(), &spec(&cmd, &ReportFormat::Exit, 300)).unwrap();
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
        assert!((0.25..1.5).contains(&r.duration_s), "{}", r.duration_s);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild survived the kill");
    }

    #[test]
    fn output_is_capped_with_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("seq 1 100000; echo LAST-LINE", &ReportFormat::Exit, 5000);
        s.output_cap = 1000;
        let r = run_tests(dir.path(), &s).unwrap();
        assert!(r.output.starts_with("1\n2\n"));
        assert!(r.output.contains("bytes cut"));
        assert!(r.output.trim_end().ends_with("LAST-LINE"));
        assert!(r.output.len() < 1100);
    }

    #[test]
    fn api_keys_are_scrubbed_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY of intent: this test process sets its own variables before spawning.
        std::env::set_var("LOOPVEL_TEST_SECRET", "s3cret-value");
        std::env::set_var("SOME_API_KEY", "k3y-value");
        let scrub = vec!["LOOPVEL_TEST_SECRET".to_string()];
        let s = TestSpec { scrub_env: &scrub, ..spec("env", &ReportFormat::Exit, 5000) };
        let r = run_tests(dir.path(), &s).unwrap();
        assert!(!r.output.contains("s3cret-value"));
        assert!(!r.output.contains("k3y-value"));
        assert!(r.output.contains("PATH="));
    }
}
