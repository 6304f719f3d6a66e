//! End-to-end: `loopvel run` stopped by SIGTERM, SIGINT and `kill -9` at
//! random moments, then resumed: nothing stuck as running, every planned run
//! exactly once, no workspace and no test process left behind, the database
//! intact. Against the local fake provider server (tests/support).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/fake_server.rs"]
mod fake_server;
use fake_server::{serve, serve_with, Step};

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("durability-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A task over A, B, C in calc.sh; its test starts `sleep MARKER` in the
/// background (left for the sandbox to kill) and, while A is not 1, sleeps
/// `hold` seconds in the foreground.
fn task(tasks: &Path, name: &str, marker: &str, hold: &str) -> PathBuf {
    let t = tasks.join(name);
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("task.toml"),
        "prompt = \"Set A, B and C to 1.\"\nedit = [\"calc.sh\"]\nshow = [\"test.sh\"]\ntest = \"sh test.sh\"\ntest_timeout_s = 120\nreport = \"tap\"\n",
    )
    .unwrap();
    std::fs::write(t.join("calc.sh"), "A=0\nB=0\nC=0\n").unwrap();
    std::fs::write(
        t.join("test.sh"),
        format!(
            ". ./calc.sh\nsleep {marker} &\n[ \"$A\" = 1 ] || sleep {hold}\necho 1..3\nfor v in A B C; do eval x=\\$$v; if [ \"$x\" = 1 ]; then echo \"ok $v\"; else echo \"not ok $v\"; fi; done\n"
        ),
    )
    .unwrap();
    t
}

fn config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("loopvel.toml"),
        format!("[models.fake]\napi = \"openai\"\nbase_url = \"{url}\"\nmodel = \"fake-1\"\nmax_attempts = 2\n"),
    )
    .unwrap();
}

fn command(dir: &Path, tmp: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loopvel"));
    // Workspaces go to `tmp`, so the test can see what is left there.
    c.args(args).current_dir(dir).env("TMPDIR", tmp).env_remove("COLUMNS");
    c
}

fn spawn(dir: &Path, tmp: &Path, args: &[&str]) -> Child {
    command(dir, tmp, args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn run(dir: &Path, tmp: &Path, args: &[&str]) -> Output {
    command(dir, tmp, args).output().unwrap()
}

/// Processes whose command line is `sleep MARKER`: test processes of this test.
fn processes_with(marker: &str) -> Vec<i32> {
    let want = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `child` to exit (at most `limit`), returning its output.
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("loopvel did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn workspaces_in(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("loopvel-ws-"))
        .collect()
}

fn sql<T: rusqlite::types::FromSql>(db: &Path, q: &str) -> Vec<T> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c.prepare(q).unwrap();
    s.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

const PASS: &str = "calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n";
const HALF: &str = "calc.sh\n```sh\nA=0\nB=1\nC=1\n```\n";

fn step(text: &str, first_ms: u64) -> Step {
    Step::Reply { pieces: vec![text.to_string()], first_ms, gap_ms: 0 }
}

#[test]
fn sigterm_during_a_test_kills_it_removes_the_workspace_and_the_run_is_played_again() {
    let dir = scratch("sigterm");
    let tmp = scratch("sigterm-tmp");
    let marker = "41.5";
    let t = task(&dir.join("tasks"), "abc", "7.0001", marker);
    // The first reply leaves A at 0: the test holds in `sleep 41.5`.
    let server = serve(vec![step(HALF, 10), step(PASS, 10)], false);
    config(&dir, &server.url);
    let args = ["run", "--tasks", t.parent().unwrap().to_str().unwrap(), "--model", "fake"];
    let child = spawn(&dir, &tmp, &args);
    wait_for("the test to start", Duration::from_secs(60), || !processes_with(marker).is_empty());
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = finish(child, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{err}");
    assert!(sent.elapsed() < Duration::from_secs(10), "took {:?} to stop", sent.elapsed());
    assert!(err.contains("SIGTERM received"), "{err}");
    assert!(processes_with(marker).is_empty() && processes_with("7.0001").is_empty(), "test processes left");
    assert_eq!(workspaces_in(&tmp), Vec::<String>::new());
    let db = dir.join("loopvel.db");
    assert_eq!(sql::<String>(&db, "SELECT status FROM runs"), ["interrupted"]);
    // Resumed: played again from its first turn, once.
    let o = run(&dir, &tmp, &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sql::<String>(&db, "SELECT outcome FROM runs"), ["pass"]);
    assert_eq!(sql::<i64>(&db, "SELECT COUNT(*) FROM turns"), [1]);
}

#[test]
fn sigint_during_a_slow_model_request_stops_within_the_grace_and_marks_the_run() {
    let dir = scratch("sigint");
    let tmp = scratch("sigint-tmp");
    let t = task(&dir.join("tasks"), "abc", "7.0002", "0");
    // A reply that takes a minute to start: the request cannot be cut short.
    let server = serve(vec![step(PASS, 60_000)], false);
    config(&dir, &server.url);
    let args = ["run", "--tasks", t.parent().unwrap().to_str().unwrap(), "--model", "fake"];
    let child = spawn(&dir, &tmp, &args);
    wait_for("the request", Duration::from_secs(60), || !server.requests.lock().unwrap().is_empty());
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = finish(child, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(sent.elapsed() < Duration::from_secs(10), "took {:?} to stop", sent.elapsed());
    assert!(err.contains("1 run(s) in flight marked interrupted"), "{err}");
    assert_eq!(workspaces_in(&tmp), Vec::<String>::new());
    assert_eq!(sql::<String>(&dir.join("loopvel.db"), "SELECT status FROM runs"), ["interrupted"]);
}

/// The soak: a plan killed with SIGKILL twenty times at random moments
/// (mid-request, mid-test, mid-write), then run to its end.
#[test]
fn twenty_kill_9_at_random_moments_then_resume_leave_one_of_each_run_and_nothing_behind() {
    use rand::{RngExt, SeedableRng};
    let dir = scratch("soak");
    let tmp = scratch("soak-tmp");
    let marker = "7.31337";
    let tasks = dir.join("tasks");
    for name in ["t1", "t2", "t3", "t4"] {
        task(&tasks, name, marker, "0.15");
    }
    // First turns fix two of three; later turns (their prompt holds test feedback) fix all.
    let server = serve_with(|body| Some(step(if body.contains("Tests: ") { PASS } else { HALF }, 40)), false);
    config(&dir, &server.url);
    let args = ["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake", "--runs", "3", "--concurrency", "2"];
    let seed: u64 = std::env::var("LOOPVEL_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("soak seed {seed} (LOOPVEL_SOAK_SEED={seed} repeats it)");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let db = dir.join("loopvel.db");
    for _ in 0..20 {
        let mut child = spawn(&dir, &tmp, &args);
        std::thread::sleep(Duration::from_millis(rng.random_range(30..900)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let o = run(&dir, &tmp, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "seed {seed}: {err}");
    assert_eq!(sql::<String>(&db, "PRAGMA integrity_check"), ["ok"], "seed {seed}");
    // Every planned run exactly once, finished, each with as many turns as it says.
    assert_eq!(sql::<i64>(&db, "SELECT COUNT(*) FROM runs"), [12], "seed {seed}");
    assert_eq!(
        sql::<i64>(&db, "SELECT COUNT(DISTINCT task_id || '/' || replicate) FROM runs WHERE status = 'done'"),
        [12]
    );
    assert_eq!(sql::<String>(&db, "SELECT DISTINCT outcome FROM runs"), ["pass"], "seed {seed}");
    assert_eq!(
        sql::<i64>(
            &db,
            "SELECT COUNT(*) FROM runs r WHERE r.turns <> (SELECT COUNT(*) FROM turns u WHERE u.run_id = r.id)"
        ),
        [0],
        "seed {seed}"
    );
    assert_eq!(sql::<i64>(&db, "SELECT COUNT(*) FROM turns WHERE run_id NOT IN (SELECT id FROM runs)"), [0]);
    // Nothing left behind: no workspace, no test process.
    assert_eq!(workspaces_in(&tmp), Vec::<String>::new(), "seed {seed}");
    wait_for("leftover test processes to go", Duration::from_secs(5), || processes_with(marker).is_empty());
}
