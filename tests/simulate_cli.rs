//! End-to-end: drive the real `loopvel simulate` on the shipped scenarios and on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loopvel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel")).args(args).current_dir(root()).output().expect("run loopvel")
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = loopvel(args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn json_has_the_fixed_keys_and_agrees_with_calc() {
    let sim = json(&["simulate", "examples/talk.toml", "--runs", "40000", "--json"]);
    let calc = json(&["calc", "examples/talk.toml", "--json"]);
    for model in ["fast", "frontier"] {
        let s = &sim["models"][model];
        for key in [
            "pass_rate",
            "one_shot_rate",
            "median_turns",
            "mean_time_to_pass_s",
            "p90_time_to_pass_s",
            "usd_per_solved",
            "curve",
        ] {
            assert!(s.get(key).is_some(), "models.{model}.{key} missing");
        }
        let c = &calc["models"][model];
        let (rate, exact) = (s["pass_rate"].as_f64().unwrap(), c["pass_rate"].as_f64().unwrap());
        let se = (exact * (1.0 - exact) / 40000.0).sqrt();
        assert!((rate - exact).abs() <= 4.0 * se + 1e-12, "{model}: {rate} vs {exact}");
        let (mean, exact_mean) =
            (s["mean_time_to_pass_s"].as_f64().unwrap(), c["mean_time_to_pass_s"].as_f64().unwrap());
        let mean_se = s["mean_time_to_pass_se_s"].as_f64().unwrap();
        assert!((mean - exact_mean).abs() <= 4.0 * mean_se, "{model}: {mean} vs {exact_mean}");
        let curve = s["curve"].as_array().unwrap();
        assert_eq!(curve.len(), 25);
        // F(t) rises.
        let values: Vec<f64> = curve.iter().map(|p| p[1].as_f64().unwrap()).collect();
        assert!(values.windows(2).all(|w| w[1] >= w[0]));
    }
    assert_eq!(sim["verdict"]["winner"], "fast");
}

#[test]
fn the_same_seed_gives_the_same_output_with_one_and_two_threads() {
    let run = |threads: &str| {
        let o = loopvel(&[
            "simulate",
            "examples/realities.toml",
            "--runs",
            "5000",
            "--seed",
            "7",
            "--threads",
            threads,
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // Only the clock and the thread count may differ.
        v["elapsed_s"] = serde_json::Value::Null;
        v["threads"] = serde_json::Value::Null;
        v
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn csv_and_plot_are_written() {
    let csv = scratch("curve.csv");
    let svg = scratch("curve.svg");
    let o = loopvel(&[
        "simulate",
        "examples/realities.toml",
        "--runs",
        "3000",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("t_s,fast,frontier,best_of_4(fast)"), "{header}");
    assert_eq!(text.lines().count(), 26);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
    for label in
        ["time since the run started (s)", "runs passed (% of all runs)", "race(fast,frontier)", "How to read it"]
    {
        assert!(svg.contains(label), "chart lacks {label:?}");
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("best score of failed runs"), "{out}");
    assert!(out.contains("Verdict"), "{out}");
}

#[test]
fn a_sweep_finds_where_the_winner_changes() {
    let svg = scratch("sweep.svg");
    let v = json(&[
        "simulate",
        "examples/talk.toml",
        "--runs",
        "3000",
        "--sweep",
        "loop.test_s=0.3..60:5",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    assert_eq!(points[0]["winner"], "fast");
    assert_eq!(points[4]["winner"], "frontier");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("Mean time to pass as loop.test_s varies"));
    let o = loopvel(&["simulate", "examples/talk.toml", "--runs", "2000", "--sweep", "loop.test_s=0.3..60:5"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Break-even: the winner changes"));
}

fn assert_bad(args: &[&str], needles: &[&str]) {
    let o = loopvel(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
}

#[test]
fn impossible_distributions_and_bad_options_exit_2_with_the_reason() {
    let f = "examples/talk-realistic.toml";
    assert_bad(
        &["simulate", f, "--set", "models.fast.ttft_s={ dist = \"lognormal\", median = 0, p90 = 1 }"],
        &[f, "models.fast.ttft_s", "median = 0 must be > 0"],
    );
    assert_bad(
        &["simulate", f, "--set", "models.fast.ttft_s={ dist = \"lognormal\", median = 3, p90 = 2 }"],
        &["p90 = 2 must be ≥ the median"],
    );
    assert_bad(
        &["simulate", f, "--set", "models.fast.p_retry={ dist = \"beta\", mean = 0.4, concentration = 0 }"],
        &["models.fast.p_retry", "concentration = 0 must be > 0"],
    );
    assert_bad(
        &["simulate", f, "--set", "models.fast.ttft_s={ dist = \"normal\", mean = 1 }"],
        &["dist = \"normal\"; known: lognormal"],
    );
    assert_bad(&["simulate", f, "--set", "models.fast.quality=\"magic\""], &["\"magic\" is not a quality model"]);
    assert_bad(&["simulate", f, "--runs", "0"], &["--runs 0"]);
    assert_bad(&["simulate", f, "--sweep", "loop.test_s=1-2"], &["--sweep loop.test_s=1-2: write KEY=FROM..TO:POINTS"]);
    assert_bad(&["simulate", f, "--plot", "x.png"], &["name the file *.svg"]);
    // calc refuses what only simulate understands.
    assert_bad(&["calc", f], &["loop.test_s is a distribution; calc's closed forms need a number"]);
    assert_bad(&["calc", "examples/realities.toml"], &["is used by `loopvel simulate` only"]);
}
