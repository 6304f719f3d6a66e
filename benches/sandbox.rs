//! Sandbox cost per test run: the wall time of `Sandbox::run` (setting up the
//! cgroup and filters, starting the command confined, waiting, cleaning up)
//! at each level this machine offers, against `none` (which still gets the
//! rlimits and the cgroup). Two commands: `true` (the sandbox's own cost and
//! little else) and a real example task's tests (`python3 tap_tests.py` of
//! tasks/examples/slugify_tap), so the cost can be read against a test run.
//! Levels take turns run by run, so a drift in machine load hits all alike.
//!
//! Run: `cargo bench --bench sandbox` (optional argument: runs per level and
//! command, default 60).

use std::path::Path;
use std::time::Duration;

use loopvel_sandbox::{Job, Level, Requested, Sandbox};

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn copy_task(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/examples/slugify_tap");
    for f in ["slug.py", "tap_tests.py"] {
        std::fs::copy(from.join(f), to.join(f)).expect("copy the example task");
    }
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(60);
    let mut levels: Vec<Sandbox> = Vec::new();
    for level in [Level::None, Level::Landlock, Level::Bwrap] {
        match Sandbox::detect(Requested::Level(level)) {
            Ok(s) => levels.push(s),
            Err(e) => println!("{level}: not available here ({e})"),
        }
    }
    println!("caps: {}", levels[0].caps_in_words());
    let ws = tempfile::tempdir().expect("tempdir");
    copy_task(ws.path());
    let commands = [("true", "true"), ("slugify_tap tests", "python3 tap_tests.py")];
    println!(
        "Sandbox cost per test run, {runs} runs per level and command, levels interleaved (wall ms, setup and cleanup included):"
    );
    println!("{:<20} {:>10} {:>12} {:>10} {:>18}", "command", "level", "median ms", "p90 ms", "median − none ms");
    for (label, command) in commands {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); levels.len()];
        for _ in 0..runs {
            for (i, sandbox) in levels.iter().enumerate() {
                let job = Job { timeout: Duration::from_secs(30), ..Job::new(command, ws.path()) };
                let f = sandbox.run(&job).expect("run");
                assert_eq!(f.exit_code, if command == "true" { Some(0) } else { f.exit_code }, "{}", f.output);
                times[i].push(f.duration_s * 1000.0);
            }
        }
        let none = quantile(&times[0], 0.5);
        for (sandbox, t) in levels.iter().zip(&times) {
            let median = quantile(t, 0.5);
            println!(
                "{:<20} {:>10} {:>12.2} {:>10.2} {:>18}",
                label,
                sandbox.level().as_str(),
                median,
                quantile(t, 0.9),
                if sandbox.level() == Level::None { "—".to_string() } else { format!("{:+.2}", median - none) }
            );
        }
    }
}
