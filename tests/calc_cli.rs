//! End-to-end: drive the real `loopvel` binary on the shipped scenarios and on bad input.

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = loopvel(args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

#[test]
fn talk_scenario_prints_the_talks_figures_and_a_verdict() {
    let o = loopvel(&["calc", "examples/talk.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // The frontier's two 30 s iterations, the fast model's 12 turns and 36 s.
    assert!(out.contains("60.0 s"), "{out}");
    assert!(out.contains("12 turns"), "{out}");
    assert!(out.contains("36.0 s"), "{out}");
    assert!(out.contains("Verdict\nfast reaches green first"), "{out}");
    assert!(out.contains("race(fast,frontier)"), "{out}");
}

#[test]
fn json_has_the_fixed_keys_and_the_hand_worked_numbers() {
    let v = json(&["calc", "examples/talk.toml", "--json"]);
    let fast = &v["models"]["fast"];
    let frontier = &v["models"]["frontier"];
    for key in [
        "cycle_s",
        "turns_to_target",
        "time_to_target_s",
        "velocity_per_s",
        "pass_rate",
        "mean_time_to_pass_s",
        "p90_time_to_pass_s",
        "usd_per_solved",
    ] {
        assert!(fast.get(key).is_some(), "models.fast.{key} missing");
    }
    assert!((fast["cycle_s"].as_f64().unwrap() - 3.0).abs() < 1e-9);
    assert_eq!(fast["turns_to_target"], 12);
    assert!((fast["time_to_target_s"].as_f64().unwrap() - 36.0).abs() < 1e-9);
    assert!((frontier["time_to_target_s"].as_f64().unwrap() - 60.0).abs() < 1e-9);
    // Velocity −ln(0.8)/3 by hand.
    assert!((fast["velocity_per_s"].as_f64().unwrap() - 0.8f64.ln().abs() / 3.0).abs() < 1e-12);
    assert_eq!(v["verdict"]["winner"], "fast");
    assert!(v["policies"]["best_of_2(fast)"]["pass_rate"].as_f64().is_some());
    assert!(v["policies"]["escalate(fast->frontier)"]["escalation"]["by_after"].as_array().unwrap().len() == 16);
}

#[test]
fn overrides_can_flip_the_verdict() {
    // A frontier model that decodes at 100,000 tokens/s and a fast one that fails often.
    let v = json(&[
        "calc",
        "examples/talk.toml",
        "--json",
        "--set",
        "models.frontier.tokens_per_s=100000",
        "--set",
        "models.frontier.ttft_s=0.1",
    ]);
    assert_eq!(v["verdict"]["winner"], "frontier");
}

#[test]
fn slow_tests_make_fast_lose_and_say_so() {
    let o = loopvel(&["calc", "examples/slow-tests.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Verdict\nfrontier reaches green first"), "{out}");
    // The verdict is wrapped for the terminal; read it as one paragraph.
    let verdict = out.split("Verdict\n").nth(1).unwrap_or_default().replace('\n', " ");
    assert!(verdict.contains("Tests, not the model, bound fast's loop"), "{out}");
}

#[test]
fn low_ceiling_makes_fast_lose_and_says_why() {
    let v = json(&["calc", "examples/low-ceiling.toml", "--json"]);
    assert_eq!(v["verdict"]["winner"], "frontier");
    assert!(v["verdict"]["text"].as_str().unwrap().contains("speed cannot buy back tasks"));
}

fn assert_bad_input(args: &[&str], needles: &[&str]) {
    let o = loopvel(args);
    assert_eq!(o.status.code(), Some(2), "exit code for {args:?}: {}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr for {args:?} lacks {n:?}: {err}");
    }
}

#[test]
fn bad_input_exits_2_naming_file_key_and_fix() {
    let dir = tempdir();
    let talk = std::fs::read_to_string(root().join("examples/talk.toml")).unwrap();
    let missing = dir.join("missing.toml");
    std::fs::write(&missing, talk.replace("ttft_s = 4.5\n", "")).unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, talk.replace("ttft_s = 4.5", "ttft = 4.5")).unwrap();
    let (m, u) = (missing.to_str().unwrap(), unknown.to_str().unwrap());
    assert_bad_input(&["calc", m], &[m, "models.frontier.ttft_s is missing", "time to first token"]);
    assert_bad_input(&["calc", u], &[u, "models.frontier.ttft is not a known key", "did you mean `ttft_s`"]);
    assert_bad_input(
        &["calc", "examples/talk.toml", "--set", "models.fast.p_retry=1.5"],
        &["models.fast.p_retry = 1.5 is outside [0, 1]"],
    );
    assert_bad_input(&["calc", "examples/talk.toml", "--set", "loop.test_s=-2"], &["loop.test_s = -2 is negative"]);
    assert_bad_input(
        &["calc", "examples/talk.toml", "--set", "models.fast.r=0"],
        &["models.fast.r = 0 never converges"],
    );
    assert_bad_input(&["calc", "no/such/file.toml"], &["cannot read no/such/file.toml"]);
    assert_bad_input(
        &["calc", "examples/talk.toml", "--pass-rate-margin", "2"],
        &["--pass-rate-margin 2 is outside [0, 1]"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tables_fit_the_terminal_and_wide_shows_every_column() {
    let narrow = stdout(&loopvel(&["calc", "examples/talk.toml"]));
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    // best_of_2(fast): pass rate, mean, P90, [wall time per solved,] cost.
    let fields = |out: &str| {
        out.lines().find(|l| l.trim_start().starts_with("best_of_2(fast)")).map(|l| l.split_whitespace().count())
    };
    assert_eq!(fields(&narrow), Some(7), "{narrow}");
    assert!(narrow.contains("Left out at this width: wall time per solved task (--wide shows them)"), "{narrow}");
    for wide in [
        stdout(&loopvel(&["calc", "examples/talk.toml", "--wide"])),
        stdout(
            &Command::new(env!("CARGO_BIN_EXE_loopvel"))
                .args(["calc", "examples/talk.toml"])
                .current_dir(root())
                .env("COLUMNS", "120")
                .output()
                .expect("run loopvel"),
        ),
    ] {
        assert_eq!(fields(&wide), Some(9), "{wide}");
        assert!(wide.contains("escalate(fast->frontier), switch after 15 turns"), "{wide}");
        assert!(wide.lines().any(|l| l.chars().count() > 100), "{wide}");
    }
    // Plurals: a one-turn budget is "1 turn".
    let one = stdout(&loopvel(&["calc", "examples/talk.toml", "--set", "loop.max_turns=1"]));
    assert!(one.contains("up to 1 turn;"), "{one}");
    assert!(!one.contains(" 1 turns"), "{one}");
}

/// A fresh directory under the target dir (no tempfile dependency for one use).
fn tempdir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("calc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
