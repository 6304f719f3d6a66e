//! `loopvel report` on a large database: builds a SQLite file of synthetic
//! runs (about 100,000 turns by default, through the real store) and times
//! the real binary reading it, fitting everything and printing the report.
//!
//! Run: `cargo bench --bench report` (optional argument: turns, default 100000).

#[path = "../tests/support/synthetic_db.rs"]
mod synthetic_db;

use std::process::Command;
use std::time::Instant;

fn main() {
    let target: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    // LOOPVEL_BENCH_DB keeps the database at that path (for profiling).
    let db = std::env::var_os("LOOPVEL_BENCH_DB").map_or_else(|| dir.path().join("big.db"), std::path::PathBuf::from);
    let _ = std::fs::remove_file(&db);
    let started = Instant::now();
    // About 3.5 turns per run with these models and a 15-turn budget.
    let runs_per_model = (target as f64 / (2.0 * 3.5)).ceil() as u32;
    let turns = synthetic_db::write(&db, &synthetic_db::two_models(), runs_per_model, 15, 7);
    println!(
        "database: {} runs, {turns} turns, {:.1} MB, written in {:.1} s",
        2 * runs_per_model,
        std::fs::metadata(&db).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0),
        started.elapsed().as_secs_f64()
    );
    let bin = env!("CARGO_BIN_EXE_loopvel");
    let mut times = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let out = Command::new(bin).args(["report", "--db"]).arg(&db).output().expect("run loopvel report");
        let s = t.elapsed().as_secs_f64();
        assert!(out.status.success(), "report failed: {}", String::from_utf8_lossy(&out.stderr));
        if i == 0 {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("{}", text.lines().take(8).collect::<Vec<_>>().join("\n"));
        }
        times.push(s);
    }
    let t = Instant::now();
    let html = dir.path().join("big.html");
    let out = Command::new(bin).args(["report", "--db"]).arg(&db).arg("--html").arg(&html).output().expect("run");
    assert!(out.status.success());
    let html_s = t.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "loopvel report on {turns} turns: median {:.3} s, min {:.3} s, max {:.3} s over 5 runs (floor: 2 s); with --html: {html_s:.3} s",
        times[2], times[0], times[4]
    );
}
