//! Harness overhead per turn: wall − model − test − waiting, for loops run at
//! once against a local server that answers instantly (a test double of a
//! provider, dev tooling only). Every turn is real: the reply is parsed, the
//! edit applied in a real workspace, the tests run as a real subprocess, the
//! turn written to a real SQLite file.
//!
//! Run: `cargo bench --bench harness_overhead` (optional argument: the
//! concurrency levels, default `1,8,64`).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[path = "../tests/support/fake_server.rs"]
mod fake_server;

use loopvel_harness::run::{play_run, Clock, History, Live, RunJob, RunOptions};
use loopvel_harness::task::Task;
use loopvel_provider::{Limiter, ModelConfig};
use loopvel_store::Store;

const REPLIES: [&str; 3] = [
    "calc.sh\n```sh\nA=0\nB=0\nC=0\n```\n",
    "calc.sh\n```sh\nA=1\nB=1\nC=0\n```\n",
    "calc.sh\n<<<<<<< SEARCH\nC=0\n=======\nC=1\n>>>>>>> REPLACE\n",
];

fn handle(mut stream: TcpStream, turn: usize) {
    // A client gone mid-request is no reply to answer.
    let Some((_, text)) = fake_server::try_read_request(&mut stream) else { return };
    // The turn number is the number of assistant messages in the request.
    let k = text.matches("\"role\":\"assistant\"").count().min(2);
    let _ = turn;
    let delta = serde_json::json!({"choices": [{"index": 0, "delta": {"content": REPLIES[k]}}]});
    let payload = format!(
        "data: {delta}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":100,\"completion_tokens\":20}}}}\n\ndata: [DONE]\n\n"
    );
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    );
}

fn task(dir: &Path) -> Task {
    std::fs::write(
        dir.join("task.toml"),
        "prompt = \"Set A, B and C.\"\nedit = [\"calc.sh\"]\nshow = [\"test.sh\"]\ntest = \"sh test.sh\"\ntest_timeout_s = 10\nreport = \"tap\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("calc.sh"), "A=0\nB=0\nC=0\n").expect("write");
    std::fs::write(
        dir.join("test.sh"),
        ". ./calc.sh\necho 1..3\nfor v in A B C; do eval x=\\$$v; if [ \"$x\" = 1 ]; then echo \"ok $v\"; else echo \"not ok $v\"; fi; done\n",
    )
    .expect("write");
    Task::load(dir).expect("task")
}

/// The best level here, or the one `LOOPVEL_BENCH_SANDBOX` names (bwrap, landlock, none).
fn sandbox() -> loopvel_sandbox::Sandbox {
    use loopvel_sandbox::{Level, Requested, Sandbox};
    let requested = match std::env::var("LOOPVEL_BENCH_SANDBOX").as_deref() {
        Ok("bwrap") => Requested::Level(Level::Bwrap),
        Ok("landlock") => Requested::Level(Level::Landlock),
        Ok("none") => Requested::Level(Level::None),
        _ => Requested::Auto,
    };
    Sandbox::detect(requested).expect("a sandbox level")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let levels: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let served = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for stream in listener.incoming().flatten() {
                let n = served.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || handle(stream, n));
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let task = task(dir.path());
        let model = ModelConfig {
            max_tokens: 100,
            max_attempts: 3,
            read_timeout_s: 30.0,
            ..ModelConfig::local("instant", &url)
        };
        let options = RunOptions {
            max_turns: 5,
            max_wall_s: None,
            max_usd: None,
            history: History::Full,
            design: Default::default(),
            feedback_bytes: 8000,
            sandbox: std::sync::Arc::new(sandbox()),
            clock: Clock::Wall,
        };
        let limiter = Limiter::new(None, None);
        println!("Sandbox: {} (its start and cleanup count as test time, not overhead)", options.sandbox.describe());
        println!("Harness overhead per turn (wall − model − test − waiting), 3-turn runs, instant local server:");
        println!(
            "{:>12} {:>8} {:>14} {:>14} {:>14} {:>16} {:>12}",
            "concurrency", "turns", "median ms", "p90 ms", "mean test ms", "harness CPU ms", "turns/s"
        );
        for &level in &levels {
            let db = dir.path().join(format!("bench-{level}.db"));
            let store = Store::open(&db).expect("store");
            let plan = store.plan(&format!("bench-{level}"), "bench", "{}").expect("plan");
            let tid = store.task("abc", "x", "p", "t").expect("task");
            let mid = store.model("instant", "{}").expect("model");
            let runs = (level * 4).max(16);
            let next = AtomicUsize::new(0);
            let overheads = Mutex::new(Vec::new());
            let cpu = Mutex::new(0.0f64);
            let tests = Mutex::new(Vec::new());
            let start = Instant::now();
            std::thread::scope(|inner| {
                for _ in 0..level {
                    inner.spawn(|| {
                        // CPU time of this loop's own thread: the harness's work, without the
                        // test subprocesses and without the fake server's threads.
                        let thread_cpu = || {
                            nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
                                .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
                        };
                        let cpu_start = thread_cpu();
                        loop {
                            let r = next.fetch_add(1, Ordering::SeqCst);
                            if r >= runs {
                                break;
                            }
                            let run_id = store
                                .start_run(plan, tid, mid, r as u32, options.sandbox.level().as_str())
                                .expect("start");
                            let live = Live { model: &model, limiter: &limiter };
                            let job =
                                RunJob { task: &task, responder: &live, store: &store, run_id, options: &options };
                            let on_turn = |t: &loopvel_record::Turn| {
                                overheads.lock().expect("lock").push(t.overhead_s * 1000.0);
                                tests.lock().expect("lock").push(t.test_s * 1000.0);
                            };
                            let summary = play_run(&job, &on_turn);
                            assert_eq!(summary.outcome, loopvel_record::Outcome::Pass, "{summary:?}");
                            store.finish_run(run_id, &summary).expect("finish");
                        }
                        *cpu.lock().expect("lock") += thread_cpu() - cpu_start;
                    });
                }
            });
            let secs = start.elapsed().as_secs_f64();
            let o = overheads.into_inner().expect("lock");
            let t = tests.into_inner().expect("lock");
            let n = o.len();
            let mean_test = t.iter().sum::<f64>() / n as f64;
            let mut sorted = o.clone();
            sorted.sort_by(f64::total_cmp);
            let p90 = sorted[(n * 9 / 10).min(n - 1)];
            // Thread CPU of the loops per turn: the harness's own cost, whatever the queueing.
            let cpu_ms = cpu.into_inner().expect("lock") * 1000.0 / n as f64;
            println!(
                "{:>12} {:>8} {:>14.3} {:>14.3} {:>14.2} {:>16.3} {:>12.0}",
                level,
                n,
                median(o),
                p90,
                mean_test,
                cpu_ms,
                n as f64 / secs
            );
        }
        // Stop the server thread by letting the process end.
        std::process::exit(0);
    });
}
