//! End-to-end: drive the real `loopvel simulate` on the shipped scenarios and on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loopvel(args: &[&str]) -> Output {
    // Tables fit 80 columns unless COLUMNS says otherwise: pin it.
    Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(args)
        .current_dir(root())
        .env_remove("COLUMNS")
        .output()
        .expect("run loopvel")
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
        "--wide",
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

/// The speedy/thinker case of issue 14: the quick model's pass rate is below
/// the bar everywhere but at ceiling 1, so the table names the other model the
/// winner; the chart must say the same (not "the lowest line wins").
#[test]
fn a_sweep_chart_marks_the_winner_the_table_names() {
    let svg_path = scratch("ceiling.svg");
    let args = [
        "simulate",
        "examples/low-ceiling.toml",
        "--runs",
        "4000",
        "--sweep",
        "models.fast.ceiling=0.5..1:6",
        "--plot",
        svg_path.to_str().unwrap(),
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let v = json(&with_json);
    let points = v["points"].as_array().unwrap();
    for p in &points[..5] {
        assert_eq!(p["winner"], "frontier", "{p}");
        assert_eq!(p["eligible"], serde_json::json!(["frontier"]), "{p}");
        // fast's line is lower (quicker passes) yet it cannot win.
        assert!(p["mean_time_to_pass_s"]["fast"].as_f64() < p["mean_time_to_pass_s"]["frontier"].as_f64(), "{p}");
        assert!(p["margin"].is_null(), "no eligible runner-up, no margin: {p}");
    }
    assert_eq!(points[5]["winner"], "fast");
    for p in points {
        if let Some(m) = p["margin"].as_f64() {
            assert!(m >= 1.0, "a margin is winner against eligible runner-up, ≥ 1×: {p}");
        }
    }
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(!svg.contains("lowest line wins"), "the old caption contradicted the table");
    assert!(
        svg.contains("fast — dashed: pass rate &gt; 5 points below the best, cannot win"),
        "legend marks fast as ineligible"
    );
    assert!(
        svg.contains("shaded: frontier wins here") && svg.contains("shaded: fast wins here"),
        "legend names the shaded winners"
    );
    assert!(svg.contains("the shading is the winner at each value, as in the table"), "caption");
    // Dashed: many short strokes in fast's colour (#1F77B4), against one stroke per solid segment.
    let fast_strokes = svg.matches("stroke=\"#1F77B4\"").count();
    assert!(fast_strokes > 30, "fast's ineligible stretch is drawn dashed ({fast_strokes} strokes)");
    // Readable at 100% zoom: no text under 12 px.
    for size in svg.split("font-size=\"").skip(1).filter_map(|r| r.split('"').next()) {
        let px: f64 = size.parse().unwrap();
        assert!(px >= 12.0, "font-size {px} px");
    }

    let out = String::from_utf8_lossy(&loopvel(&args).stdout).into_owned();
    assert!(out.contains("only eligible") && out.contains("% *"), "{out}");
    assert!(out.contains("cannot win there, however quick"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
}

#[test]
fn turn_axes_have_whole_ticks() {
    let svg_path = scratch("turns.svg");
    let o = loopvel(&[
        "simulate",
        "examples/talk.toml",
        "--runs",
        "1000",
        "--sweep",
        "loop.max_turns=1..12:12",
        "--plot",
        svg_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    // Tick labels are <text> elements whose content is a number alone.
    let numbers: Vec<String> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t.parse::<f64>().is_ok())
        .collect();
    assert!(numbers.iter().any(|n| n == "12"), "{numbers:?}");
    assert!(!numbers.iter().any(|n| n.contains(".5")), "a turn axis has no half turns: {numbers:?}");
}

/// The sweep chart in headless Chromium, as a person sees it: it renders to
/// a screenshot of the asked size. Skipped without Chromium, unless
/// LOOPVEL_REQUIRE_CHROMIUM is set (as in CI).
#[test]
fn the_sweep_chart_renders_in_headless_chromium() {
    let svg = scratch("chromium-sweep.svg");
    let o = loopvel(&[
        "simulate",
        "examples/low-ceiling.toml",
        "--runs",
        "2000",
        "--sweep",
        "models.fast.ceiling=0.5..1:6",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let Some(bin) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        assert!(
            std::env::var_os("LOOPVEL_REQUIRE_CHROMIUM").is_none(),
            "LOOPVEL_REQUIRE_CHROMIUM is set but no chromium runs here"
        );
        eprintln!("SKIPPED: no chromium on this machine (Debian: apt-get install chromium); .ci/run installs it");
        return;
    };
    let png = scratch("chromium-sweep.png");
    let _ = std::fs::remove_file(&png);
    let profile = scratch("chromium-profile");
    let o = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1000,700")
        .arg(format!("file://{}", svg.display()))
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert_eq!(&bytes[1..4], b"PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let dim = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!((dim(16), dim(20)), (1000, 700));
    assert!(bytes.len() > 10_000, "a chart, not a blank page ({} bytes)", bytes.len());
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
