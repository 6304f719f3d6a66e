//! End-to-end: `loopvel run` against a local HTTP server in this file that
//! speaks the OpenAI streaming wire format (and Anthropic's), with scripted
//! replies and injected delays (tests/support/fake_server.rs: test doubles for
//! paid services live there only).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

#[path = "support/abc_task.rs"]
mod abc_task;
use abc_task::abc_task as task;
#[path = "support/fake_server.rs"]
mod fake_server;
use fake_server::{serve, Step};

const KEY: &str = "sk-e2e-secret-4242-do-not-store";

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("run-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn loopvel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(args)
        .current_dir(dir)
        .env("LOOPVEL_E2E_KEY", KEY)
        // Tables fit 80 columns unless COLUMNS says otherwise: pin it.
        .env_remove("COLUMNS")
        .output()
        .expect("run loopvel")
}

fn config(dir: &Path, url: &str, api: &str) {
    std::fs::write(
        dir.join("loopvel.toml"),
        format!(
            "[models.fake]\napi = \"{api}\"\nbase_url = \"{url}\"\nmodel = \"fake-1\"\napi_key_env = \"LOOPVEL_E2E_KEY\"\nusd_per_mtok_in = 1.0\nusd_per_mtok_out = 2.0\nmax_attempts = 4\n"
        ),
    )
    .unwrap();
}

fn export(dir: &Path) -> Vec<serde_json::Value> {
    try_export(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// [`export`], or what it said: while `run` is starting, the file can exist
/// before its schema does ("not a loopvel database").
fn try_export(dir: &Path) -> Result<Vec<serde_json::Value>, String> {
    let o = loopvel(dir, &["export", "--db", "loopvel.db", "--format", "jsonl"]);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

fn reply(lines: &str) -> Vec<String> {
    // Three pieces, so there is a first token and a last token apart.
    let n = lines.len() / 3;
    let mut cut1 = n;
    while !lines.is_char_boundary(cut1) {
        cut1 += 1;
    }
    let mut cut2 = 2 * n;
    while !lines.is_char_boundary(cut2) {
        cut2 += 1;
    }
    vec![lines[..cut1].to_string(), lines[cut1..cut2].to_string(), lines[cut2..].to_string()]
}

#[test]
fn a_loop_goes_fail_partial_pass_with_timing_refusals_and_no_key_on_disk() {
    let dir = scratch("openai");
    let t = task(&dir);
    let server = serve(
        vec![
            Step::Reply {
                pieces: reply("calc.sh\n```sh\nA=0\nB=0\nC=0\n```\n../outside.txt\n```\npwned\n```\n/tmp/loopvel-e2e-abs.txt\n```\npwned\n```\n"),
                first_ms: 300,
                gap_ms: 100,
            },
            Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=1\nC=0\n```\n"), first_ms: 50, gap_ms: 10 },
            Step::Reply { pieces: reply("calc.sh\n<<<<<<< SEARCH\nC=0\n=======\nC=1\n>>>>>>> REPLACE\n"), first_ms: 50, gap_ms: 10 },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "5"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("runs") && stdout.contains("passed") && stdout.contains("1/1"), "{stdout}");
    assert!(stdout.lines().all(|l| l.chars().count() <= 80), "the end-of-run table fits 80 columns:\n{stdout}");
    // The outcome is said once: "pass after 3 turns (… s)", not "(… s, pass)".
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr.lines().find(|l| l.starts_with("[1/1]")).unwrap_or_default();
    assert!(line.contains("pass after 3 turns (") && !line.contains(", pass)"), "{stderr}");
    // The within-turn progress is for a terminal only, never in a pipe.
    assert!(!stderr.contains("first token") && !stderr.contains("so far …"), "{stderr}");

    let records = export(&dir);
    let turns: Vec<&serde_json::Value> = records.iter().filter(|r| r["record"] == "turn").collect();
    let grades: Vec<&str> = turns.iter().map(|t| t["grade"].as_str().unwrap()).collect();
    assert_eq!(grades, ["FAIL", "PARTIAL", "PASS"]);
    let scores: Vec<f64> = turns.iter().map(|t| t["score"].as_f64().unwrap()).collect();
    assert!((scores[1] - 2.0 / 3.0).abs() < 1e-9);
    // Injected: first piece after 300 ms, two more 100 ms apart.
    let ttft = turns[0]["ttft_s"].as_f64().unwrap();
    let gen = turns[0]["gen_s"].as_f64().unwrap();
    // Never shorter than injected; within 20 ms of it when nothing else runs
    // (.ci/run's timing step runs this test alone with LOOPVEL_TIMING_STRICT=1),
    // within a second under the load of the whole suite on 2 cores.
    let slack = if std::env::var_os("LOOPVEL_TIMING_STRICT").is_some() { 0.02 } else { 1.0 };
    assert!(ttft >= 0.3 - 0.005 && ttft - 0.3 < slack, "ttft {ttft}");
    assert!(gen >= 0.5 - 0.005 && gen - 0.5 < slack, "gen {gen}");
    assert_eq!(turns[0]["edits_refused"], 2);
    assert_eq!(turns[0]["input_tokens"], 120);
    let run = records.iter().find(|r| r["record"] == "run").unwrap();
    assert_eq!(run["outcome"], "pass");
    assert_eq!(run["turns"], 3);
    // $1/M in, $2/M out, 3 turns of 120 in and 30 out.
    assert!((run["usd"].as_f64().unwrap() - 3.0 * (120.0 + 60.0) / 1e6).abs() < 1e-12);

    // Nothing outside the workspace changed; the key was sent but never stored.
    assert!(!Path::new("/tmp/loopvel-e2e-abs.txt").exists());
    assert!(!std::env::temp_dir().join("outside.txt").exists());
    let reqs = server.requests.lock().unwrap();
    assert!(reqs[0].0.to_ascii_lowercase().contains(&format!("authorization: bearer {}", KEY.to_ascii_lowercase())));
    assert!(reqs[0].1.contains("\"stream\":true") && reqs[0].1.contains("include_usage"));
    drop(reqs);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("loopvel.db") {
            let bytes = std::fs::read(&p).unwrap();
            assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "{} holds the key", p.display());
        }
    }

    // The same command again: the run is done, nothing is replayed or duplicated.
    let again = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "5"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("1 already done"));
    assert_eq!(export(&dir).iter().filter(|r| r["record"] == "run").count(), 1);
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

#[test]
fn a_429_with_retry_after_is_waited_out_and_recorded_as_retry_wait() {
    let dir = scratch("429");
    let t = task(&dir);
    let server = serve(
        vec![
            Step::Status { code: 429, retry_after_s: 1 },
            Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"), first_ms: 100, gap_ms: 20 },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = export(&dir);
    let turn = records.iter().find(|r| r["record"] == "turn").unwrap();
    assert_eq!(turn["grade"], "PASS");
    let wait = turn["retry_wait_s"].as_f64().unwrap();
    assert!((1.0..1.5).contains(&wait), "retry wait {wait}");
    // Time to first token counts from the successful request, not from the 429.
    let ttft = turn["ttft_s"].as_f64().unwrap();
    assert!((ttft - 0.1).abs() < 0.02, "ttft {ttft}");
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn anthropic_streaming_works_too() {
    let dir = scratch("anthropic");
    let t = task(&dir);
    let server = serve(
        vec![Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"), first_ms: 200, gap_ms: 50 }],
        true,
    );
    config(&dir, &server.url, "anthropic");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = export(&dir);
    let turn = records.iter().find(|r| r["record"] == "turn").unwrap();
    assert_eq!(turn["grade"], "PASS");
    assert_eq!(turn["output_tokens"], 30);
    assert!((turn["ttft_s"].as_f64().unwrap() - 0.2).abs() < 0.02);
    let reqs = server.requests.lock().unwrap();
    assert!(reqs[0].0.to_ascii_lowercase().contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())));
    assert!(reqs[0].1.contains("\"system\""));
}

#[test]
fn a_missing_key_is_named_without_printing_any_value() {
    let dir = scratch("nokey");
    let t = task(&dir);
    std::fs::write(
        dir.join("loopvel.toml"),
        "[models.fake]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\napi_key_env = \"LOOPVEL_E2E_UNSET_KEY\"\n",
    )
    .unwrap();
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("LOOPVEL_E2E_UNSET_KEY, which is not set"), "{err}");
}

#[test]
fn killing_a_run_mid_way_and_running_again_loses_and_duplicates_nothing() {
    let dir = scratch("kill");
    let tasks = dir.join("tasks");
    for name in ["one", "two"] {
        let t = task(&tasks);
        std::fs::rename(&t, tasks.join(name)).unwrap();
    }
    let pass = || Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"), first_ms: 20, gap_ms: 5 };
    // Run 1 passes at once; run 2's reply hangs (the kill lands there); the re-run gets a fast reply.
    let server = serve(
        vec![pass(), Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\n```\n"), first_ms: 30_000, gap_ms: 5 }, pass()],
        false,
    );
    config(&dir, &server.url, "openai");
    let args = ["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(args)
        .current_dir(&dir)
        .env("LOOPVEL_E2E_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for run 1 to be recorded and run 2 to be in flight, then kill.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(std::time::Instant::now() < deadline, "run 1 never finished");
        if dir.join("loopvel.db").exists()
            && try_export(&dir).is_ok_and(|records| records.iter().filter(|r| r["record"] == "run").count() == 1)
            && server.requests.lock().unwrap().len() == 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let again = loopvel(&dir, &args);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("1 already done"));
    let records = export(&dir);
    let runs: Vec<&serde_json::Value> = records.iter().filter(|r| r["record"] == "run").collect();
    let mut tasks_done: Vec<&str> = runs.iter().map(|r| r["task"].as_str().unwrap()).collect();
    tasks_done.sort();
    assert_eq!(tasks_done, ["one", "two"], "{runs:?}");
    assert!(runs.iter().all(|r| r["outcome"] == "pass"));
    // Exactly one turn per run: the interrupted attempt left nothing behind.
    assert_eq!(records.iter().filter(|r| r["record"] == "turn").count(), 2);
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

#[test]
fn a_bare_code_block_is_taken_as_the_only_editable_file() {
    let dir = scratch("bare");
    let t = task(&dir);
    let server = serve(
        vec![Step::Reply { pieces: reply("Here:\n```sh\nA=1\nB=1\nC=1\n```\n"), first_ms: 10, gap_ms: 5 }],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let turn = export(&dir).into_iter().find(|r| r["record"] == "turn").unwrap();
    assert_eq!(turn["grade"], "PASS");
    assert_eq!(turn["edits_applied"], 1);
    // Singulars where there is one of a thing.
    assert!(err.contains("loopvel run: 1 task × 1 model × 1 run = 1 run;"), "{err}");
    assert!(err.contains(": pass after 1 turn ("), "{err}");
}

#[test]
fn a_plan_whose_every_run_ended_in_an_error_exits_1_and_some_errors_exit_3_with_their_causes() {
    let dir = scratch("allerror");
    let t = task(&dir);
    // Nothing listens on port 9 (discard) here: every request is refused.
    std::fs::write(
        dir.join("loopvel.toml"),
        "[models.nowhere]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\nmax_attempts = 1\n",
    )
    .unwrap();
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "nowhere", "--runs", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "every run of this plan (2 of 2) ended in an error, so nothing was measured: 2 × nowhere: gave up"
        ),
        "{err}"
    );
    assert!(err.contains("connection to http://127.0.0.1:9/v1/chat/completions"), "{err}");
    // Recorded all the same.
    assert_eq!(export(&dir).iter().filter(|r| r["record"] == "run" && r["outcome"] == "error").count(), 2);
    // The same command again plays the errored runs again (the cause may be gone) ...
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "nowhere", "--runs", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("playing again 2 runs that ended in an error before (2 × nowhere: gave up"), "{err}");
    assert!(err.contains("every run of this plan (2 of 2) ended in an error"), "{err}");
    // ... unless told to keep them: then it plays nothing, and still fails: nothing was measured.
    let o = loopvel(
        &dir,
        &["run", "--tasks", t.to_str().unwrap(), "--model", "nowhere", "--runs", "2", "--no-retry-errors"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("every run of this plan (2 of 2) ended in an error"), "{err}");
    assert!(err.contains("without --no-retry-errors"), "{err}");
    // Each planned run once, however often it was played.
    assert_eq!(export(&dir).iter().filter(|r| r["record"] == "run").count(), 2);
    // Runs that never reached the model are not the model's failures: report leaves them out and says so.
    let o = loopvel(&dir, &["report"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("before the model answered"), "{err}");

    // One pass and one error: results with an error among them, exit 3 and the cause.
    let dir = scratch("someerror");
    let tasks = dir.join("tasks");
    for name in ["one", "two"] {
        let t = task(&tasks);
        std::fs::rename(&t, tasks.join(name)).unwrap();
    }
    let mut script =
        vec![Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"), first_ms: 10, gap_ms: 5 }];
    script.extend((0..4).map(|_| Step::Status { code: 500, retry_after_s: 0 }));
    let server = serve(script, false);
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("1 of 2 runs of this plan ended in an error: 1 × fake: gave up after 4 attempts; last: HTTP 500"),
        "{err}"
    );
    // Resumed, the errored run is played again and errors again: still results with an error among them.
    let again = loopvel(&dir, &["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake"]);
    let err_again = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(3), "{err_again}");
    assert!(err_again.contains("1 of 2 runs of this plan ended in an error"), "{err_again}");
    // The report rates the run that reached the model, and names the one left out.
    let o = loopvel(&dir, &["report", "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 run ended in an error before the model answered"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["models"]["fake"]["runs"], 1, "{}", v["models"]["fake"]);
}

#[test]
fn a_test_that_sleeps_forever_is_killed_at_its_timeout_with_its_children() {
    let dir = scratch("sleepy");
    let t = dir.join("sleepy");
    std::fs::create_dir_all(&t).unwrap();
    let marker = dir.join("grandchild-survived");
    std::fs::write(
        t.join("task.toml"),
        "prompt = \"x\"\nedit = [\"calc.sh\"]\ntest = \"sh test.sh\"\ntest_timeout_s = 1\nreport = \"tap\"\n",
    )
    .unwrap();
    std::fs::write(t.join("calc.sh"), "A=0\n").unwrap();
    std::fs::write(t.join("test.sh"), format!("(sleep 3; touch {}) &\nsleep 1000\n", marker.display())).unwrap();
    let server =
        serve(vec![Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\n```\n"), first_ms: 10, gap_ms: 5 }], false);
    config(&dir, &server.url, "openai");
    let start = std::time::Instant::now();
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    let turn = export(&dir).into_iter().find(|r| r["record"] == "turn").unwrap();
    assert_eq!(turn["grade"], "FAIL");
    let test_s = turn["test_s"].as_f64().unwrap();
    assert!((0.9..2.0).contains(&test_s), "test time {test_s}");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!marker.exists(), "a child of the killed test outlived it");
}

/// Two recorded runs: FAIL → PARTIAL → PASS, and a one-shot PASS.
fn record_two_runs(dir: &Path) {
    task(dir);
    let step = |text: &str| Step::Reply { pieces: reply(text), first_ms: 200, gap_ms: 100 };
    let server = serve(
        vec![
            step("calc.sh\n```sh\nA=0\nB=0\nC=0\n```\n"),
            step("calc.sh\n```sh\nA=1\nB=1\nC=0\n```\n"),
            step("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"),
            step("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"),
        ],
        false,
    );
    config(dir, &server.url, "openai");
    let o = loopvel(dir, &["run", "--tasks", "abc", "--model", "fake", "--runs", "2", "--max-turns", "5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sql_f64(db: &Path, sql: &str) -> Vec<f64> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c.prepare(sql).unwrap();
    s.query_map([], |r| r.get::<_, f64>(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn an_unchanged_replay_reproduces_every_run_exactly_on_a_virtual_clock() {
    let dir = scratch("replay");
    record_two_runs(&dir);
    let started = std::time::Instant::now();
    let o = loopvel(&dir, &["replay", "--db", "loopvel.db", "--into", "replay.db", "--tasks", ".", "--json"]);
    let took = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["differences"].as_array().unwrap().len(), 0, "{r}");
        assert_eq!(r["outcome"][0], r["outcome"][1]);
        assert_eq!(r["turns"][0], r["turns"][1]);
    }
    let turns: Vec<u64> = runs.iter().map(|r| r["turns"][1].as_u64().unwrap()).collect();
    assert_eq!(turns, vec![3, 1]);
    // The virtual clock counts the recorded model time (≥ 0.4 s per reply)…
    let model = sql_f64(&dir.join("replay.db"), "SELECT SUM(gen_s) FROM turns");
    let wall = sql_f64(&dir.join("replay.db"), "SELECT SUM(wall_s) FROM runs");
    assert!(model[0] >= 4.0 * 0.4 - 0.05, "recorded model time {model:?}");
    assert!(wall[0] >= model[0], "virtual wall {wall:?} includes model time {model:?}");
    // …without waiting for it.
    assert!(took < model[0] + 1.0, "replay took {took} s for {} s of recorded model time", model[0]);
}

#[test]
fn what_ifs_recompute_the_timeline_beside_the_original() {
    let dir = scratch("whatif");
    record_two_runs(&dir);
    let o = loopvel(
        &dir,
        &[
            "replay",
            "--db",
            "loopvel.db",
            "--into",
            "whatif.db",
            "--tasks",
            ".",
            "--test-time",
            "30",
            "--model-speed",
            "fake=x10",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2 of 2"), "{out}");
    let db = dir.join("whatif.db");
    let original = sql_f64(&db, "SELECT r.time_to_pass_s FROM runs r JOIN models m ON m.id = r.model_id WHERE m.name = 'fake' ORDER BY r.replicate");
    let changed = sql_f64(
        &db,
        "SELECT r.time_to_pass_s FROM runs r JOIN models m ON m.id = r.model_id WHERE m.name = 'fake (x10 speed, tests 30 s)' ORDER BY r.replicate",
    );
    assert_eq!((original.len(), changed.len()), (2, 2), "{original:?} {changed:?}");
    // Run 1 ran its tests three times, run 2 once: 30 s each, plus a little model and harness time.
    assert!((90.0..91.5).contains(&changed[0]), "{changed:?}");
    assert!((30.0..30.8).contains(&changed[1]), "{changed:?}");
    assert!(original[0] < 5.0 && original[1] < 2.0, "{original:?}");
    let o = loopvel(&dir, &["report", "--db", "whatif.db"]);
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(report.contains("fake (x10 speed, tests 30 s)") && report.contains("tests"), "{report}");
}

#[test]
fn the_replay_provider_answers_from_the_record_and_a_miss_is_an_error() {
    let dir = scratch("replayprovider");
    record_two_runs(&dir);
    let o = loopvel(
        &dir,
        &["run", "--tasks", "abc", "--model", "replay:loopvel.db#fake", "--runs", "2", "--db", "again.db"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let outcomes = {
        let c = rusqlite::Connection::open(dir.join("again.db")).unwrap();
        let mut s = c.prepare("SELECT outcome, turns FROM runs ORDER BY replicate").unwrap();
        s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes, vec![("pass".to_string(), 3), ("pass".to_string(), 1)]);
    // A third replicate has no recording: an error, never a live call.
    let o = loopvel(
        &dir,
        &["run", "--tasks", "abc", "--model", "replay:loopvel.db#fake", "--runs", "3", "--db", "third.db"],
    );
    let c = rusqlite::Connection::open(dir.join("third.db")).unwrap();
    let errors: String = c
        .query_row("SELECT group_concat(error) FROM runs WHERE outcome = 'error'", [], |r| r.get(0))
        .unwrap_or_default();
    assert!(errors.contains("replay miss"), "{errors} / {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_run_that_ended_in_an_error_replays_to_the_same_error() {
    let dir = scratch("replayerror");
    task(&dir);
    let server = serve(
        vec![
            Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=0\nC=0\n```\n"), first_ms: 50, gap_ms: 10 },
            Step::Status { code: 500, retry_after_s: 0 },
            Step::Status { code: 500, retry_after_s: 0 },
            Step::Status { code: 500, retry_after_s: 0 },
            Step::Status { code: 500, retry_after_s: 0 },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", "abc", "--model", "fake", "--max-turns", "5"]);
    // Its only run ended in an error: recorded, and the command says it measured nothing.
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let o = loopvel(&dir, &["replay", "--db", "loopvel.db", "--into", "replay.db", "--tasks", ".", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["runs"][0];
    assert_eq!(r["outcome"][0], "error", "{r}");
    assert_eq!(r["outcome"][1], "error", "{r}");
    assert_eq!(r["differences"].as_array().unwrap().len(), 0, "{r}");
}

fn json_of(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_second_plan_in_one_database_is_announced_and_never_pooled_silently() {
    let dir = scratch("plans");
    task(&dir);
    let pass = || Step::Reply { pieces: reply("calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n"), first_ms: 10, gap_ms: 5 };
    let server = serve((0..11).map(|_| pass()).collect(), false);
    config(&dir, &server.url, "openai");
    let first = ["run", "--tasks", "abc", "--model", "fake", "--runs", "6", "--max-turns", "5"];
    let o = loopvel(&dir, &first);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("new plan"), "the first plan is not news");

    // One flag changed: said before the run starts, naming what differs.
    let o = loopvel(&dir, &["run", "--tasks", "abc", "--model", "fake", "--runs", "5", "--max-turns", "3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let notice = err.find("make a new plan").unwrap_or_else(|| panic!("no notice: {err}"));
    assert!(notice < err.find("loopvel run: 1 task").unwrap(), "the notice comes first: {err}");
    assert!(err.contains("max_turns 3 (was 5)"), "{err}");
    assert_eq!(server.requests.lock().unwrap().len(), 11);

    // report reads the latest plan and names the other, with how to read it.
    let o = loopvel(&dir, &["report", "--json"]);
    let v = json_of(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(v["runs"], 5, "{v}");
    assert_eq!(v["plans"]["others"][0]["plan"], 1);
    assert!(err.contains("max_turns 5 (plan 2: 3)") && err.contains("--plan ID") && err.contains("--pool"), "{err}");
    assert_eq!(json_of(&loopvel(&dir, &["report", "--json", "--plan", "1"]))["runs"], 6);
    let o = loopvel(&dir, &["report", "--json", "--pool"]);
    assert_eq!(json_of(&o)["runs"], 11);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pooling 2 plans") && err.contains("max_turns 5 (plan 2: 3)"), "{err}");
    let o = loopvel(&dir, &["report", "--plan", "9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("plan 9 in loopvel.db does not exist; its plans with runs: plan 2")
    );

    // export, likewise.
    assert_eq!(export(&dir).iter().filter(|r| r["record"] == "run").count(), 5);
    let o = loopvel(&dir, &["export", "--pool", "--records", "runs"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 11);

    // predict: the plan's --max-turns (3), not the most turns a run took (1); and
    // every policy of one model that always passes at once ties on pass rate.
    let o = loopvel(&dir, &["predict", "--resamples", "3", "--runs", "200"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("budget per run 3 turns"), "{out}");
    let line = out.lines().find(|l| l.contains("highest pass rate")).unwrap();
    assert!(line.contains("tie with") && !line.contains("best in 0.0%"), "{line}");
    let v = json_of(&loopvel(&dir, &["predict", "--resamples", "3", "--runs", "200", "--json", "--plan", "1"]));
    assert_eq!(v["as_recorded"]["max_turns"], 5, "plan 1's budget");

    // The first command again: its plan exists, so no notice, and nothing to do.
    let o = loopvel(&dir, &first);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("new plan") && err.contains("6 already done"), "{err}");
}

#[test]
fn replay_finds_the_recorded_tasks_without_tasks_and_names_a_folder_that_is_gone() {
    let dir = scratch("replaytasks");
    record_two_runs(&dir);
    // From another working directory, with no --tasks: the database knows where the task is.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let db = dir.join("loopvel.db");
    let o = loopvel(&elsewhere, &["replay", "--db", db.to_str().unwrap(), "--into", "replay.db", "--json"]);
    let v = json_of(&o);
    assert_eq!(v["runs"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["skipped"].as_array().unwrap().is_empty(), "{v}");

    // The task moved: a clear error naming the folder and the fix; --tasks still overrides.
    std::fs::create_dir_all(dir.join("moved")).unwrap();
    std::fs::rename(dir.join("abc"), dir.join("moved").join("abc")).unwrap();
    let o = loopvel(&elsewhere, &["replay", "--db", db.to_str().unwrap(), "--into", "again.db"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let gone = std::fs::canonicalize(&dir).unwrap().join("abc");
    assert!(err.contains(&format!("was recorded in {}, which is gone", gone.display())), "{err}");
    assert!(err.contains("--tasks DIR"), "{err}");
    let moved = dir.join("moved");
    let o = loopvel(
        &elsewhere,
        &["replay", "--db", db.to_str().unwrap(), "--into", "again.db", "--tasks", moved.to_str().unwrap(), "--json"],
    );
    assert_eq!(json_of(&o)["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn a_malformed_shorthand_is_refused_before_anything_runs_with_its_form_shown() {
    let dir = scratch("shorthand");
    let t = task(&dir);
    for (spec, bad_part) in [
        ("openai:", "the model after `openai:` is empty"),
        ("OpenAI:gpt-4o", "providers are lower case: openai:gpt-4o"),
        ("openai/gpt-4o", "not `/`: openai:gpt-4o"),
        ("replay:loopvel.db", "has no `#MODEL`"),
    ] {
        let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", spec]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{spec}: {err}");
        assert!(
            err.contains(bad_part) && err.contains("PROVIDER:MODEL") && err.contains("e.g. openai:gpt-4o-mini"),
            "{spec}: {err}"
        );
    }
    assert!(!dir.join("loopvel.db").exists(), "nothing was recorded");
}

#[test]
fn config_numbers_out_of_range_are_refused_before_any_request() {
    // No panic on 1e300, no "transient" retries of a URL that is not one.
    for (line, want) in [
        ("read_timeout_s = 1e300", "models.m.read_timeout_s = 1e300: give"),
        ("rps = 1e-300", "models.m.rps = 1e-300: give"),
        ("max_attempts = 0", "models.m.max_attempts = 0: give"),
        ("usd_per_mtok_out = -1", "models.m.usd_per_mtok_out = -1.0: give"),
    ] {
        let dir = scratch("bounds");
        let t = task(&dir);
        let server = serve(Vec::new(), false);
        std::fs::write(
            dir.join("loopvel.toml"),
            format!("[models.m]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"x\"\n{line}\n", server.url),
        )
        .unwrap();
        let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "m"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains(want), "{line}: {err}");
        assert!(server.requests.lock().unwrap().is_empty(), "{line}: a request was sent");
    }
    let dir = scratch("badurl");
    let t = task(&dir);
    std::fs::write(dir.join("loopvel.toml"), "[models.m]\napi = \"openai\"\nbase_url = \"not a url\"\nmodel = \"x\"\n")
        .unwrap();
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "m"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("models.m.base_url = \"not a url\"") && err.contains("http://"), "{err}");
}

#[test]
fn a_second_run_on_a_database_being_written_is_refused_and_nothing_is_lost() {
    let dir = scratch("twowriters");
    let t = task(&dir);
    // Slow replies: the first run is still writing when the second starts.
    let fix = "calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n";
    let server = serve((0..4).map(|_| Step::Reply { pieces: reply(fix), first_ms: 1500, gap_ms: 5 }).collect(), false);
    config(&dir, &server.url, "openai");
    let first = Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--runs", "2"])
        .current_dir(&dir)
        .env("LOOPVEL_E2E_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first has claimed the database (it exists and a request arrived).
    let started = std::time::Instant::now();
    while server.requests.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--runs", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is being written by another loopvel process"), "{err}");
    let done = first.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let runs: Vec<_> = export(&dir).into_iter().filter(|r| r["record"] == "run").collect();
    assert_eq!(runs.len(), 2, "every planned run exactly once");
    assert!(runs.iter().all(|r| r["outcome"] == "pass"), "{runs:?}");
    assert_eq!(server.requests.lock().unwrap().len(), 2, "the refused run sent nothing");
}

#[test]
fn a_json_reply_to_a_stream_request_is_read_and_an_error_event_is_retried() {
    let fix = "calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n";
    // A server that ignores `stream: true` and sends one JSON body.
    let dir = scratch("jsonreply");
    let t = task(&dir);
    let body = serde_json::json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": fix}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30}
    })
    .to_string();
    let server = serve(vec![Step::Raw { content_type: "application/json".into(), body }], false);
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs: Vec<_> = export(&dir).into_iter().filter(|r| r["record"] == "run").collect();
    assert_eq!(runs[0]["outcome"], "pass", "{runs:?}");

    // A stream that breaks off with an error event: retried, not graded as the model's reply.
    let dir = scratch("errorevent");
    let t = task(&dir);
    let cut = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"calc.sh\\n```sh\\nA=\"}}]}\n\n\
               data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";
    let server = serve(
        vec![
            Step::Raw { content_type: "text/event-stream".into(), body: cut.into() },
            Step::Reply { pieces: reply(fix), first_ms: 5, gap_ms: 1 },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = export(&dir);
    let run = rows.iter().find(|r| r["record"] == "run").unwrap();
    assert_eq!(run["outcome"], "pass", "{run}");
    assert_eq!(run["turns"], 1, "the cut reply was not a turn: {run}");
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn a_huge_reply_is_cut_at_one_mebibyte_and_the_cut_is_recorded() {
    let dir = scratch("hugereply");
    let t = task(&dir);
    // 3 MiB of text in 48 pieces: loopvel keeps 1 MiB, closes the stream and says why.
    let piece = "x".repeat(64 * 1024);
    let server = serve(
        vec![
            Step::Reply { pieces: vec![piece; 48], first_ms: 5, gap_ms: 0 },
            Step::Reply { pieces: reply("no edit this time"), first_ms: 5, gap_ms: 0 },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let (len, detail): (i64, String) = c
        .query_row("SELECT length(reply_text), detail_json FROM calls ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(len, 1024 * 1024, "kept exactly the cap");
    assert!(detail.contains("reply cut at 1 MiB"), "{detail}");
    // The second turn's request carries the cut reply, not 3 MiB.
    let requests = server.requests.lock().unwrap();
    assert!(requests.iter().all(|(_, body)| body.len() < 2 * 1024 * 1024), "a request grew past the cap");
}

#[test]
fn a_refused_key_exits_1_and_the_run_is_played_again_on_resume() {
    let dir = scratch("401");
    let t = task(&dir);
    let fix = "calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n";
    let server = serve(
        vec![
            // A proxy that echoes the key it refused.
            Step::Refuse { code: 401, body: format!("{{\"error\": {{\"message\": \"invalid api key {KEY}\"}}}}") },
            Step::Reply { pieces: reply(fix), first_ms: 10, gap_ms: 5 },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let args = ["run", "--tasks", t.to_str().unwrap(), "--model", "fake"];
    let o = loopvel(&dir, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("HTTP 401 from") && err.contains("invalid api key ***"), "{err}");
    assert!(!err.contains(KEY), "the key never prints");
    for file in ["loopvel.db", "loopvel.db-wal"] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the key is in {file}");
    }
    // Refused for good: one request, no retries.
    assert_eq!(server.requests.lock().unwrap().len(), 1);
    // The key is fixed (here: the server takes it now); the same command plays the run again.
    let o = loopvel(&dir, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("playing again 1 run that ended in an error before"), "{err}");
    let runs: Vec<_> = export(&dir).into_iter().filter(|r| r["record"] == "run").collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "pass");
}

#[test]
fn a_wait_past_the_wall_budget_ends_the_run_censored_at_once_and_a_wait_within_it_is_shown() {
    let dir = scratch("retryafter");
    let t = task(&dir);
    let server = serve(vec![Step::Status { code: 429, retry_after_s: 100_000 }], false);
    config(&dir, &server.url, "openai");
    let started = std::time::Instant::now();
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-wall-s", "60"]);
    let err = String::from_utf8_lossy(&o.stderr);
    // Not an error: the budget ended the run, as it would have.
    assert!(o.status.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    let runs: Vec<_> = export(&dir).into_iter().filter(|r| r["record"] == "run").collect();
    assert_eq!(runs[0]["outcome"], "fail", "{runs:?}");
    assert_eq!(runs[0]["stop_reason"], "max_wall", "{runs:?}");
    assert_eq!(runs[0]["turns"], 0, "{runs:?}");
    // The request that ended it is on record, with its reason.
    let c = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let (error, attempts): (String, u32) =
        c.query_row("SELECT error, attempts FROM failed_calls", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert!(error.contains("HTTP 429") && error.contains("past the wall budget"), "{error}");
    assert_eq!(attempts, 1);

    // A wait within the budget is waited, and said while it lasts (a log gets a line).
    let dir = scratch("retryshown");
    let t = task(&dir);
    let fix = "calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n";
    let server = serve(
        vec![Step::Status { code: 429, retry_after_s: 2 }, Step::Reply { pieces: reply(fix), first_ms: 10, gap_ms: 5 }],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-wall-s", "60"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("turn 1: HTTP 429: waiting 2.00 s before attempt 2 of 4"), "{err}");
}

#[test]
fn a_run_that_gave_up_records_its_waits_and_the_request_that_failed() {
    let dir = scratch("gaveup");
    let t = task(&dir);
    let server = serve((0..4).map(|_| Step::Status { code: 503, retry_after_s: 1 }).collect(), false);
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let runs: Vec<_> = export(&dir).into_iter().filter(|r| r["record"] == "run").collect();
    assert_eq!(runs[0]["outcome"], "error");
    // Three waits of 1 s between four attempts.
    let waited = runs[0]["retry_wait_s"].as_f64().unwrap();
    assert!((3.0..6.0).contains(&waited), "retry_wait_s {waited}");
    let c = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let (attempts, wait, retries, request): (u32, f64, String, String) = c
        .query_row("SELECT attempts, retry_wait_s, retries_json, request_json FROM failed_calls", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(attempts, 4);
    assert!((wait - waited).abs() < 1e-9);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&retries).unwrap().as_array().unwrap().len(), 3, "{retries}");
    assert!(request.contains("Set A, B and C"), "{request}");
    assert!(!request.contains(KEY));
}

#[test]
fn a_block_written_for_another_file_is_never_taken_as_the_editable_one() {
    let dir = scratch("misattributed");
    let t = task(&dir);
    // One editable file (calc.sh). The reply's only block names conftest.py in
    // its first line; a later turn names it in the fence's info string.
    let server = serve(
        vec![
            Step::Reply { pieces: reply("```sh\n# conftest.py\nA=1\nB=1\nC=1\n```\n"), first_ms: 10, gap_ms: 5 },
            Step::Reply { pieces: reply("```python title=conftest.py\nA=1\nB=1\nC=1\n```\n"), first_ms: 10, gap_ms: 5 },
            Step::Reply {
                pieces: reply("Add this to `conftest.py`:\n```sh\nA=1\nB=1\nC=1\n```\n"),
                first_ms: 10,
                gap_ms: 5,
            },
        ],
        false,
    );
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let turns: Vec<_> = export(&dir).into_iter().filter(|r| r["record"] == "turn").collect();
    assert_eq!(turns.len(), 3);
    for t in &turns {
        assert_eq!(t["edits_applied"], 0, "{t}");
        assert_ne!(t["grade"], "PASS", "calc.sh was never overwritten: {t}");
    }
    let c = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let mut st = c.prepare("SELECT refusals FROM turns ORDER BY turn").unwrap();
    let said: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert!(said[0].contains("names conftest.py in its first line"), "{}", said[0]);
    // Refused under its own name, not calc.sh's.
    assert!(said[1].contains("conftest.py: not an editable file"), "{}", said[1]);
    assert!(!said[1].contains("calc.sh"), "{}", said[1]);
    assert!(said[2].contains("the line before the only code block names conftest.py"), "{}", said[2]);
}

#[test]
fn hostile_reply_text_is_read_as_written_mixed_styles_nested_fences_and_a_lone_surrogate() {
    let dir = scratch("hostiletext");
    let t = task(&dir);
    // Two editable files: calc.sh and notes.md.
    let toml = std::fs::read_to_string(t.join("task.toml"))
        .unwrap()
        .replace("edit = [\"calc.sh\"]", "edit = [\"calc.sh\", \"notes.md\"]");
    std::fs::write(t.join("task.toml"), toml).unwrap();
    // One streamed reply, as raw events: an unfenced search/replace for calc.sh,
    // then a whole notes.md in a four-backtick fence holding a three-backtick
    // block, then another search/replace whose chunk holds a lone surrogate escape.
    let first = serde_json::json!({"choices": [{"delta": {"content":
        "calc.sh\n<<<<<<< SEARCH\nA=0\n=======\nA=1\n>>>>>>> REPLACE\n\nnotes.md\n````markdown\n# Notes\n```sh\nB=0\n```\n````\n\n"}}]});
    let second = r#"{"choices":[{"delta":{"content":"calc.sh\n<<<<<<< SEARCH\nB=0\nC=0\n=======\nB=1\n# \ud800\nC=1\n>>>>>>> REPLACE\n"}}]}"#;
    let body = format!("data: {first}\n\ndata: {second}\n\ndata: [DONE]\n\n");
    let server = serve(vec![Step::Raw { content_type: "text/event-stream".into(), body }], false);
    config(&dir, &server.url, "openai");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let turn = export(&dir).into_iter().find(|r| r["record"] == "turn").unwrap();
    // Three edits, each to the file it was written for: calc.sh ends A=1 B=1 C=1.
    assert_eq!(turn["edits_applied"], 3, "{turn}");
    assert_eq!(turn["grade"], "PASS", "{turn}");
    let c = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let (refusals, reply): (String, String) = c
        .query_row("SELECT t.refusals, c.reply_text FROM turns t JOIN calls c ON c.turn_id = t.id", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(refusals, "[]");
    // The surrogate became U+FFFD; the chunk was kept, not dropped.
    assert!(reply.contains("# \u{fffd}\nC=1"), "{reply}");
}
