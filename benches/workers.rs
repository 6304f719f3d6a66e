//! Throughput of workers on one PostgreSQL queue, and what PostgreSQL costs
//! per turn over SQLite. Against the fake model server of tests/support: a
//! reply takes `REPLY_MS` (200 ms), the tests a few ms, so a run is
//! model-bound and the figures measure the queue and the store, not the CPU.
//!
//! `cargo bench --bench workers` prints:
//! - runs per second with 1 worker process and with 4 (one run at a time each), and the ratio;
//! - wall time per one-turn run of `loopvel run` (one at a time, instant model) on SQLite and
//!   on PostgreSQL, and the difference: what PostgreSQL adds per turn.
//!
//! Needs PostgreSQL at `LOOPVEL_TEST_POSTGRES` (default postgres://root@127.0.0.1:5432/postgres).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "../tests/support/fake_server.rs"]
mod fake_server;
#[path = "../tests/support/pg.rs"]
mod pg;

const REPLY_MS: u64 = 200;

fn loopvel(dir: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(args)
        .current_dir(dir)
        .env_remove("LOOPVEL_DB")
        .output()
        .expect("run loopvel");
    assert!(o.status.success(), "loopvel {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// One task (A=1 passes) and a model that answers with the fix after `reply_ms`.
fn setup(name: &str, reply_ms: u64) -> (PathBuf, PathBuf, fake_server::FakeServer) {
    let dir = std::env::temp_dir().join(format!("loopvel-bench-workers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t = dir.join("tasks/abc");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("task.toml"),
        "prompt = \"Set A to 1.\"\nedit = [\"calc.sh\"]\ntest = \"sh test.sh\"\nreport = \"tap\"\n",
    )
    .unwrap();
    std::fs::write(t.join("calc.sh"), "A=0\n").unwrap();
    std::fs::write(
        t.join("test.sh"),
        ". ./calc.sh\necho 1..1\nif [ \"$A\" = 1 ]; then echo ok; else echo not ok; fi\n",
    )
    .unwrap();
    let server = fake_server::serve_with(
        move |_| {
            Some(fake_server::Step::Reply {
                pieces: vec!["calc.sh\n```sh\nA=1\n```\n".into()],
                first_ms: reply_ms,
                gap_ms: 0,
            })
        },
        false,
    );
    std::fs::write(
        dir.join("loopvel.toml"),
        format!("[models.fake]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-1\"\n", server.url),
    )
    .unwrap();
    (dir.clone(), dir.join("tasks"), server)
}

/// Runs per second of `workers` worker processes (one run at a time each) over `runs` queued runs.
fn throughput(workers: usize, runs: u32) -> f64 {
    let (dir, tasks, _server) = setup(&format!("w{workers}"), REPLY_MS);
    let db = pg::FreshPg::new(&format!("bench_w{workers}")).expect("the bench needs PostgreSQL");
    let runs_s = runs.to_string();
    loopvel(
        &dir,
        &[
            "run",
            "--tasks",
            tasks.to_str().unwrap(),
            "--model",
            "fake",
            "--runs",
            &runs_s,
            "--db",
            &db.url,
            "--enqueue",
        ],
    );
    let started = Instant::now();
    let children: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_loopvel"))
                .args(["worker", "--db", &db.url, "--concurrency", "1"])
                .current_dir(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let rate = f64::from(runs) / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

/// Wall seconds per one-turn run of `loopvel run --concurrency 1` on `db` (instant model).
fn per_run(db: &str, dir: &Path, tasks: &Path, runs: u32) -> f64 {
    let runs_s = runs.to_string();
    let started = Instant::now();
    loopvel(
        dir,
        &[
            "run",
            "--tasks",
            tasks.to_str().unwrap(),
            "--model",
            "fake",
            "--runs",
            &runs_s,
            "--concurrency",
            "1",
            "--db",
            db,
        ],
    );
    started.elapsed().as_secs_f64() / f64::from(runs)
}

fn main() {
    let runs: u32 = std::env::var("LOOPVEL_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let one = throughput(1, runs);
    let four = throughput(4, runs);
    println!("workers on one PostgreSQL queue, {runs} runs, a {REPLY_MS} ms model reply each:");
    println!("  1 worker:  {one:.2} runs/s");
    println!("  4 workers: {four:.2} runs/s  ({:.2}× one worker)", four / one);

    // PostgreSQL against SQLite, one worker, an instant model: the store's share of a turn.
    let (dir, tasks, _server) = setup("store", 0);
    let sqlite = dir.join("bench.db");
    let pg = pg::FreshPg::new("bench_store").expect("the bench needs PostgreSQL");
    // Warm both (schema, page cache) with a plan of their own, then measure a fresh plan each, alternating.
    per_run(sqlite.to_str().unwrap(), &dir, &tasks, 2);
    per_run(&pg.url, &dir, &tasks, 2);
    let mut lite = Vec::new();
    let mut post = Vec::new();
    for round in 0..3 {
        let n = 20 + round; // another --runs each round: a fresh plan's runs, never "already done"
        lite.push(per_run(sqlite.to_str().unwrap(), &dir, &tasks, n));
        post.push(per_run(&pg.url, &dir, &tasks, n));
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    println!("one-turn runs of `loopvel run --concurrency 1` (instant model, 3 rounds of 20–22 runs):");
    println!("  SQLite:     {:.1} ms per run", mean(&lite) * 1e3);
    println!("  PostgreSQL: {:.1} ms per run", mean(&post) * 1e3);
    println!("  PostgreSQL adds {:.1} ms per turn", (mean(&post) - mean(&lite)) * 1e3);
    let _ = std::fs::remove_dir_all(&dir);
}
