//! Running a task's tests: `sh -c` in the workspace, inside the sandbox
//! (`loopvel-sandbox`), killed with everything it started at the timeout,
//! output capped, then counted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loopvel_sandbox::{Job, Limits, Sandbox, SandboxError};

use crate::report::{count, Counts, ReportFormat};
use crate::task::Task;

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
    /// Captured output (stdout and stderr as written), head and tail kept
    /// within the cap, then a `[loopvel sandbox] …` line for whatever the
    /// sandbox stopped or killed.
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
    /// Cap on captured bytes.
    pub output_cap: usize,
    /// Where the command runs: the test command runs model-written code.
    pub sandbox: &'a Sandbox,
    /// The task allows network access (`network = true`).
    pub network: bool,
    /// Variables the task adds to the environment.
    pub env: &'a [(String, String)],
    /// Folders outside the workspace the task's tests may read.
    pub read: &'a [PathBuf],
    /// The task's caps.
    pub limits: Limits,
}

impl<'a> TestSpec<'a> {
    /// The spec `task.toml` gives, confined by `sandbox`.
    pub fn for_task(task: &'a Task, sandbox: &'a Sandbox) -> TestSpec<'a> {
        TestSpec {
            command: &task.test,
            report: &task.report,
            timeout: Duration::from_secs_f64(task.test_timeout_s),
            output_cap: OUTPUT_CAP,
            sandbox,
            network: task.network,
            env: &task.env,
            read: &task.read,
            limits: task.limits,
        }
    }
}

/// Run the tests in `dir`, confined by the spec's sandbox.
pub fn run_tests(dir: &Path, spec: &TestSpec) -> std::io::Result<TestRun> {
    // A report left by an earlier run must not be counted again.
    if let ReportFormat::Junit(path) = spec.report {
        let _ = std::fs::remove_file(dir.join(path));
    }
    let job = Job {
        command: spec.command,
        workspace: dir,
        timeout: spec.timeout,
        network: spec.network,
        env: spec.env,
        read: spec.read,
        limits: spec.limits,
        output_cap: spec.output_cap,
    };
    let f = spec.sandbox.run(&job).map_err(|e| match e {
        SandboxError::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    })?;
    let counts = if f.timed_out { None } else { count(spec.report, &f.output, f.exit_code == Some(0), dir) };
    Ok(TestRun { exit_code: f.exit_code, timed_out: f.timed_out, duration_s: f.duration_s, counts, output: f.output })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loopvel_sandbox::{Level, Requested};
    use std::time::Instant;

    /// The tests' own level: `none` here, so these unit tests exercise the
    /// runner (timeouts, caps, counting) on any machine; the sandbox's
    /// isolation has its own tests (crates/loopvel-sandbox, tests/escape_cli.rs).
    fn sandbox() -> Sandbox {
        Sandbox::detect(Requested::Level(Level::None)).unwrap()
    }

    fn spec<'a>(command: &'a str, report: &'a ReportFormat, timeout_ms: u64, sb: &'a Sandbox) -> TestSpec<'a> {
        TestSpec {
            command,
            report,
            timeout: Duration::from_millis(timeout_ms),
            output_cap: OUTPUT_CAP,
            sandbox: sb,
            network: false,
            env: &[],
            read: &[],
            limits: Limits::default(),
        }
    }

    #[test]
    fn exit_code_and_counts() {
        let sb = sandbox();
        let dir = tempfile::tempdir().unwrap();
        let r =
            run_tests(dir.path(), &spec("echo '1 failed, 2 passed in 0.1s'; exit 1", &ReportFormat::Pytest, 5000, &sb))
                .unwrap();
        assert_eq!(r.exit_code, Some(1));
        assert_eq!(r.counts, Some(Counts { passed: 2, total: 3 }));
        assert!(!r.all_passed());
        let ok = run_tests(dir.path(), &spec("true", &ReportFormat::Exit, 5000, &sb)).unwrap();
        assert!(ok.all_passed());
    }

    #[test]
    fn a_test_that_sleeps_forever_is_killed_with_its_children() {
        let sb = sandbox();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        // A background grandchild that would write a file after 2 s, and a foreground sleep.
        let cmd = format!("(sleep 2; touch {}) & sleep 1000", marker.display());
        let start = Instant::now();
        let r = run_tests(dir.path(), &spec(&cmd, &ReportFormat::Exit, 300, &sb)).unwrap();
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
        assert!((0.25..1.5).contains(&r.duration_s), "{}", r.duration_s);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild survived the kill");
    }

    #[test]
    fn output_is_capped_with_head_and_tail() {
        let sb = sandbox();
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("seq 1 100000; echo LAST-LINE", &ReportFormat::Exit, 5000, &sb);
        s.output_cap = 1000;
        let r = run_tests(dir.path(), &s).unwrap();
        assert!(r.output.starts_with("1\n2\n"));
        assert!(r.output.contains("bytes cut"));
        assert!(r.output.trim_end().ends_with("LAST-LINE"));
        assert!(r.output.len() < 1100);
    }

    #[test]
    fn the_environment_is_an_allow_list() {
        let sb = sandbox();
        let dir = tempfile::tempdir().unwrap();
        // SAFETY of intent: this test process sets its own variables before spawning.
        std::env::set_var("LOOPVEL_TEST_SECRET", "s3cret-value");
        std::env::set_var("SOME_API_KEY", "k3y-value");
        let env = [("TASK_VAR".to_string(), "from-task".to_string())];
        let s = TestSpec { env: &env, ..spec("env", &ReportFormat::Exit, 5000, &sb) };
        let r = run_tests(dir.path(), &s).unwrap();
        assert!(!r.output.contains("s3cret-value"));
        assert!(!r.output.contains("k3y-value"));
        assert!(r.output.contains("PATH="));
        assert!(r.output.contains("TASK_VAR=from-task"));
        assert!(r.output.contains(&format!("HOME={}", dir.path().display())));
    }
}
