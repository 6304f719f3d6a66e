//! End-to-end: `run --enqueue` and `loopvel worker` processes on one
//! PostgreSQL database (a fresh one per test on the machine's server),
//! against the fake model server: every planned run played exactly once,
//! also when workers are killed with SIGKILL mid-run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/fake_server.rs"]
mod fake_server;
#[path = "support/pg.rs"]
mod pg;
use fake_server::{serve_with, FakeServer, Step};
use pg::FreshPg;

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("workers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` tasks over A and B in calc.sh, TAP-counted; a model whose first reply
/// fixes A (PARTIAL) and whose later replies fix both, after `reply_ms`.
fn setup(dir: &Path, n: usize, reply_ms: u64) -> (PathBuf, FakeServer) {
    let tasks = dir.join("tasks");
    for i in 0..n {
        let t = tasks.join(format!("t{i}"));
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            t.join("task.toml"),
            "prompt = \"Set A and B to 1.\"\nedit = [\"calc.sh\"]\ntest = \"sh test.sh\"\nreport = \"tap\"\n",
        )
        .unwrap();
        std::fs::write(t.join("calc.sh"), "A=0\nB=0\n").unwrap();
        std::fs::write(
            t.join("test.sh"),
            ". ./calc.sh\necho 1..2\nfor v in A B; do eval x=\\$$v; if [ \"$x\" = 1 ]; then echo ok; else echo not ok; fi; done\n",
        )
        .unwrap();
    }
    let server = serve_with(
        move |body| {
            let text = if body.contains("Tests: ") {
                "calc.sh\n```sh\nA=1\nB=1\n```\n"
            } else {
                "calc.sh\n```sh\nA=1\nB=0\n```\n"
            };
            Some(Step::Reply { pieces: vec![text.into()], first_ms: reply_ms, gap_ms: 0 })
        },
        false,
    );
    std::fs::write(
        dir.join("loopvel.toml"),
        format!("[models.fake]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-1\"\n", server.url),
    )
    .unwrap();
    (tasks, server)
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loopvel"));
    c.args(args).current_dir(dir).env_remove("COLUMNS").env_remove("LOOPVEL_DB");
    c
}

fn loopvel(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

fn worker(dir: &Path, db: &str, extra: &[&str]) -> Child {
    let mut args = vec!["worker", "--db", db];
    args.extend_from_slice(extra);
    command(dir, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn sql_i64(url: &str, q: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(q, &[]).unwrap().get::<_, i64>(0)
}

fn enqueue(dir: &Path, tasks: &Path, db: &str, runs: &str) {
    let o = loopvel(
        dir,
        &["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake", "--runs", runs, "--db", db, "--enqueue"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("queued in postgres://"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Every planned run exactly once, finished, with as many turns as it says and no partial ones.
fn assert_each_run_once(url: &str, planned: i64) {
    assert_eq!(sql_i64(url, "SELECT COUNT(*) FROM runs"), planned);
    assert_eq!(sql_i64(url, "SELECT COUNT(*) FROM runs WHERE status = 'done' AND outcome = 'pass'"), planned);
    assert_eq!(
        sql_i64(url, "SELECT COUNT(*) FROM (SELECT DISTINCT task_id, model_id, replicate FROM runs) d"),
        planned
    );
    assert_eq!(
        sql_i64(
            url,
            "SELECT COUNT(*) FROM runs r WHERE r.turns <> (SELECT COUNT(*) FROM turns u WHERE u.run_id = r.id)"
        ),
        0,
        "no partial turns left"
    );
}

#[test]
fn enqueued_runs_are_played_by_two_workers_each_exactly_once() {
    let dir = scratch("two");
    let (tasks, server) = setup(&dir, 2, 20);
    let Some(pg) = FreshPg::new("two") else { return };
    enqueue(&dir, &tasks, &pg.url, "4");
    let o = loopvel(&dir, &["status", "--db", &pg.url]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && said.contains("pending"), "{said}");
    assert_eq!(sql_i64(&pg.url, "SELECT COUNT(*) FROM runs WHERE status = 'pending'"), 8);
    let a = worker(&dir, &pg.url, &["--concurrency", "2"]);
    let b = worker(&dir, &pg.url, &["--concurrency", "2"]);
    for w in [a, b] {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("the queue is empty"));
    }
    assert_each_run_once(&pg.url, 8);
    // Two turns per run (PARTIAL, then PASS): 16 requests, none twice.
    assert_eq!(server.requests.lock().unwrap().len(), 16);
    // Enqueueing again queues nothing: every run is done.
    enqueue(&dir, &tasks, &pg.url, "4");
    assert_eq!(sql_i64(&pg.url, "SELECT COUNT(*) FROM runs WHERE status = 'pending'"), 0);
}

#[test]
fn a_plain_run_never_plays_what_is_queued_for_workers() {
    let dir = scratch("plain");
    let (tasks, server) = setup(&dir, 1, 5);
    let Some(pg) = FreshPg::new("plain") else { return };
    enqueue(&dir, &tasks, &pg.url, "2");
    let args = ["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake", "--runs", "2", "--db", &pg.url];
    let o = loopvel(&dir, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("2 runs queued for workers or held by one"), "{err}");
    assert!(server.requests.lock().unwrap().is_empty(), "nothing was played");
    assert_eq!(sql_i64(&pg.url, "SELECT COUNT(*) FROM runs WHERE status = 'pending'"), 2);
}

#[test]
fn workers_share_a_sqlite_file_on_one_machine_too() {
    let dir = scratch("sqlite");
    let (tasks, server) = setup(&dir, 2, 20);
    let db = dir.join("queue.db");
    let db = db.to_str().unwrap();
    let o = loopvel(
        &dir,
        &["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake", "--runs", "3", "--db", db, "--enqueue"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let workers: Vec<Child> = (0..3).map(|_| worker(&dir, db, &["--concurrency", "2"])).collect();
    for w in workers {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let c = rusqlite::Connection::open(db).unwrap();
    let count = |q: &str| c.query_row(q, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM runs WHERE status = 'done' AND outcome = 'pass'"), 6);
    assert_eq!(
        count("SELECT COUNT(*) FROM runs r WHERE r.turns <> (SELECT COUNT(*) FROM turns u WHERE u.run_id = r.id)"),
        0
    );
    assert_eq!(server.requests.lock().unwrap().len(), 12);
}

#[test]
fn four_workers_two_killed_with_sigkill_every_run_ends_exactly_once() {
    use rand::{RngExt, SeedableRng};
    let dir = scratch("kill");
    let (tasks, _server) = setup(&dir, 3, 200);
    let Some(pg) = FreshPg::new("kill") else { return };
    enqueue(&dir, &tasks, &pg.url, "8");
    let seed: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill seed {seed}");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut workers: Vec<Child> =
        (0..4).map(|_| worker(&dir, &pg.url, &["--concurrency", "1", "--lease-s", "2"])).collect();
    // The first victim dies at a random moment; the second in the middle of a
    // run with a turn already recorded (the partial turn a new holder must discard).
    std::thread::sleep(Duration::from_millis(rng.random_range(150..1500)));
    let _ = workers[0].kill(); // SIGKILL
    let _ = workers[0].wait();
    let mid_run = format!(
        "SELECT COUNT(*) FROM turns u JOIN runs r ON r.id = u.run_id WHERE r.status = 'running' AND r.claimed_by LIKE '%:{}-%'",
        workers[1].id()
    );
    let started = Instant::now();
    while sql_i64(&pg.url, &mid_run) == 0 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(sql_i64(&pg.url, &mid_run) > 0, "seed {seed}: worker 2 never held a run with a turn recorded");
    let _ = workers[1].kill();
    let _ = workers[1].wait();
    for w in workers.drain(2..) {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // What the killed ones held is claimable once their leases (2 s) run out: one more worker finishes it.
    std::thread::sleep(Duration::from_millis(2200));
    let o = worker(&dir, &pg.url, &["--concurrency", "2", "--lease-s", "2"]).wait_with_output().unwrap();
    assert!(o.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&o.stderr));
    assert_each_run_once(&pg.url, 24);
}

#[test]
fn sigterm_gives_a_workers_runs_back_to_the_queue() {
    let dir = scratch("term");
    let (tasks, server) = setup(&dir, 1, 60_000);
    let Some(pg) = FreshPg::new("term") else { return };
    enqueue(&dir, &tasks, &pg.url, "1");
    let w = worker(&dir, &pg.url, &["--concurrency", "1"]);
    let started = Instant::now();
    while server.requests.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no request");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sql_i64(&pg.url, "SELECT COUNT(*) FROM runs WHERE status = 'running'"), 1);
    assert!(Command::new("kill").args(["-TERM", &w.id().to_string()]).status().unwrap().success());
    let o = w.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sql_i64(&pg.url, "SELECT COUNT(*) FROM runs WHERE status = 'pending' AND claimed_by IS NULL"), 1);
}
