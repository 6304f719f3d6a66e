//! End-to-end: loop designs (`run --arm`, `--feedback`, `--files`,
//! `--history window:K`, `--restart-after`) against a fake model, checked in
//! the requests the model received and in what was recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "support/fake_server.rs"]
mod fake_server;
use fake_server::{serve, FakeServer, Step};

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("arms-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn loopvel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel")).args(args).current_dir(dir).env("COLUMNS", "120").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Three checks over A, B and C in calc.sh, reported as TAP with a diagnostic
/// line under each failing one.
fn task(dir: &Path) -> PathBuf {
    let t = dir.join("abc");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("task.toml"),
        "prompt = \"Set A, B and C to 1.\"\nedit = [\"calc.sh\"]\nshow = [\"test.sh\"]\ntest = \"sh test.sh\"\nreport = \"tap\"\n",
    )
    .unwrap();
    std::fs::write(t.join("calc.sh"), "A=0\nB=0\nC=0\n").unwrap();
    std::fs::write(
        t.join("test.sh"),
        ". ./calc.sh\necho 1..3\nn=0\nfor v in A B C; do n=$((n+1)); eval x=\\$$v; if [ \"$x\" = 1 ]; then echo \"ok $n - $v is set\"; \
         else echo \"not ok $n - $v is set\"; echo \"  # $v is $x, want 1\"; fi; done\n",
    )
    .unwrap();
    t
}

fn reply(a: u8, b: u8, c: u8) -> Step {
    Step::Reply { pieces: vec![format!("calc.sh\n```sh\nA={a}\nB={b}\nC={c}\n```\n")], first_ms: 5, gap_ms: 0 }
}

fn config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("loopvel.toml"),
        format!(
            "[models.fake]\napi = \"openai\"\nbase_url = \"{url}\"\nmodel = \"m\"\n\n\
             [arms.lean]\nfeedback = \"failures\"\nhistory = \"last\"\n"
        ),
    )
    .unwrap();
}

/// The messages of each request the server received.
fn requests(server: &FakeServer) -> Vec<Vec<(String, String)>> {
    server
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            let v: Value = serde_json::from_str(body).unwrap();
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .collect()
}

/// Plays one run of the task with `args` against a model that answers `script`.
fn play(name: &str, script: Vec<Step>, args: &[&str]) -> (PathBuf, FakeServer) {
    let dir = scratch(name);
    let t = task(&dir);
    let server = serve(script, false);
    config(&dir, &server.url);
    let mut all = vec!["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "4"];
    all.extend_from_slice(args);
    let o = loopvel(&dir, &all);
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));
    (dir, server)
}

#[test]
fn failures_feedback_names_the_failing_tests_with_their_messages_and_not_the_passing_ones() {
    let (_, raw) = play("raw", vec![reply(1, 0, 0), reply(1, 1, 1)], &[]);
    let (_, failures) = play("failures", vec![reply(1, 0, 0), reply(1, 1, 1)], &["--feedback", "failures"]);
    let last = |r: &Vec<Vec<(String, String)>>| r[1].last().unwrap().1.clone();
    let raw_fb = last(&requests(&raw));
    assert!(raw_fb.contains("ok 1 - A is set"), "raw feedback is the output, passing tests too:\n{raw_fb}");
    let fb = last(&requests(&failures));
    assert!(fb.contains("Failing tests:\n- B is set\n    # B is 0, want 1\n- C is set\n    # C is 0, want 1"), "{fb}");
    assert!(!fb.contains("A is set"), "the passing test is left out:\n{fb}");
}

#[test]
fn targeted_feedback_adds_the_last_edit_and_the_score_move() {
    let (_, server) =
        play("targeted", vec![reply(1, 0, 0), reply(1, 1, 0), reply(1, 1, 1)], &["--feedback", "targeted"]);
    let r = requests(&server);
    let first = r[1].last().unwrap().1.clone();
    assert!(first.contains("Score: 1 of 3 tests pass (the first run of the tests)."), "{first}");
    assert!(first.contains("```diff\n--- calc.sh\n+++ calc.sh\n@@ -1,3 +1,3 @@\n-A=0\n+A=1\n"), "{first}");
    let fb = r[2].last().unwrap().1.clone();
    assert!(fb.contains("Score: 1 → 2 of 3 tests pass (+1 with your last edit)."), "{fb}");
    assert!(fb.contains("-B=0\n+B=1\n") && !fb.contains("-A=0"), "only the last edit:\n{fb}");
    assert!(fb.contains("- C is set") && !fb.contains("- B is set"), "{fb}");
}

#[test]
fn changed_files_resend_only_what_changed_and_a_window_keeps_the_latest_exchanges() {
    let (_, server) = play("changed", vec![reply(1, 0, 0), reply(1, 1, 0), reply(1, 1, 1)], &["--files", "changed"]);
    let r = requests(&server);
    let fb = r[1].last().unwrap().1.clone();
    assert!(fb.contains("calc.sh\n```\nA=1\nB=0\nC=0\n```"), "the edited file is sent again:\n{fb}");
    assert!(!fb.contains("echo 1..3"), "the unchanged test file is not:\n{fb}");
    assert!(fb.contains("Unchanged since you last saw them: test.sh."), "{fb}");
    // The first prompt and every exchange stay: a prefix the server can cache.
    assert_eq!(r[2].len(), 6);
    assert_eq!(r[2][..4], r[1][..], "each request extends the one before");

    let (_, window) = play("window", vec![reply(1, 0, 0), reply(1, 1, 0), reply(1, 1, 1)], &["--history", "window:1"]);
    let r = requests(&window);
    assert_eq!(r[2].len(), 4, "system, the task's prompt, the latest exchange");
    assert!(r[2][1].1.starts_with("Set A, B and C to 1."));
    assert!(r[2][2].1.contains("B=1"), "the latest reply, not the first");
}

#[test]
fn a_restart_resets_the_files_to_the_best_state_and_begins_the_conversation_afresh() {
    // Turn 1: 1 of 3. Turn 2: 0 of 3, no improvement: restart after 1. Turn 3 sees turn 1's files, fresh.
    let (dir, server) =
        play("restart", vec![reply(1, 0, 0), reply(0, 0, 0), reply(1, 1, 1)], &["--restart-after", "1"]);
    let r = requests(&server);
    assert_eq!(r.len(), 3);
    assert_eq!(r[2].len(), 2, "a fresh conversation: system and one prompt");
    let prompt = &r[2][1].1;
    assert!(prompt.contains("calc.sh\n```\nA=1\nB=0\nC=0\n```"), "files back to turn 1's:\n{prompt}");
    assert!(prompt.contains("[loopvel] A fresh start"), "{prompt}");
    assert!(prompt.contains("Tests: 0 of 3 pass"), "what the last attempt got back:\n{prompt}");
    // Recorded on the turn after which it happened, and shown in its transcript.
    let o = loopvel(&dir, &["report", "--run", "1", "--html", "run.html"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(dir.join("run.html")).unwrap();
    assert!(
        page.contains("After this turn: restart after 1 turns without improvement: files reset to turn 1&#x27;s files (1 of 3 tests)"),
        "{page}"
    );
    // A replay plays the same design: the restart comes at the same turn, every grade the same.
    let o = loopvel(&dir, &["replay", "--db", "loopvel.db", "--into", "again.db"]);
    assert!(
        text(&o.stdout).contains("reproduce the record exactly (outcome, turns, every grade): 1 of 1"),
        "{}",
        text(&o.stdout)
    );
    // The diff of turn 3 is against the reset files (A=1 stays), not against turn 2's.
    assert!(
        page.contains("<div class=\"del\">-B=0</div>")
            && !page.contains("<div class=\"add\">+A=1</div><div class=\"add\">+B=1"),
        "{page}"
    );
}

#[test]
fn arms_are_a_plan_dimension_labelled_model_slash_arm() {
    let dir = scratch("dimension");
    let t = task(&dir);
    let server = serve((0..4).map(|_| reply(1, 1, 1)).collect(), false);
    config(&dir, &server.url);
    let args = [
        "run",
        "--tasks",
        t.to_str().unwrap(),
        "--model",
        "fake",
        "--arm",
        "raw",
        "--arm",
        "lean",
        "--arm",
        "tgt:feedback=targeted,restart_after=2",
        "--runs",
        "1",
    ];
    let o = loopvel(&dir, &args[..]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("1 task × 3 models × 1 run"), "{}", text(&o.stderr));
    let o = loopvel(&dir, &["report", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&String> = v["models"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["fake / raw", "fake / lean", "fake / tgt"]);
    // The text report counts one model, not one per arm.
    let o = loopvel(&dir, &["report"]);
    assert!(text(&o.stdout).contains("3 runs of 1 model in 3 model / arm rows on 1 task"), "{}", text(&o.stdout));
    // Each variant's recorded configuration holds its arm (replay and workers play it with it).
    let o = loopvel(&dir, &["export", "--records", "runs"]);
    assert_eq!(text(&o.stdout).lines().filter(|l| l.contains("\"model\":\"fake / tgt\"")).count(), 1);
    // Mixing --arm with the flags it replaces is refused, as are unknown arms and keys.
    for (bad, says) in [
        (
            vec!["--arm", "raw", "--feedback", "failures"],
            "give --history, --feedback, --files, --restart-after and --candidates inside the arms",
        ),
        (vec!["--arm", "nope"], "has no [arms.nope]"),
        (vec!["--arm", "x:feedbak=raw"], "unknown field `feedbak`"),
        (vec!["--arm", "x:files=changed,history=last"], "files = \"changed\" needs history = \"full\""),
    ] {
        let mut a = vec!["run", "--tasks", t.to_str().unwrap(), "--model", "fake"];
        a.extend(bad);
        let o = loopvel(&dir, &a);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(says), "{}", text(&o.stderr));
    }
}

#[test]
fn temperature_rises_after_a_thrash_turn_and_think_first_closes_every_prompt() {
    // Turn 1: 1 of 3. Turn 2: the same files again (THRASH): the temperature steps up for turn 3.
    let (_, server) = play(
        "temperature",
        vec![reply(1, 0, 0), reply(1, 0, 0), reply(1, 1, 1)],
        &["--arm", "hot:temperature=0.2,temperature_step=0.4,think_first=true"],
    );
    let bodies: Vec<Value> =
        server.requests.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    let temps: Vec<f64> = bodies.iter().map(|b| b["temperature"].as_f64().unwrap()).collect();
    assert_eq!(temps.len(), 3);
    assert!((temps[0] - 0.2).abs() < 1e-9 && (temps[1] - 0.2).abs() < 1e-9, "{temps:?}");
    assert!((temps[2] - 0.6).abs() < 1e-9, "raised after the THRASH turn: {temps:?}");
    for r in requests(&server) {
        assert!(r.last().unwrap().1.ends_with("Then give your edits."), "{:?}", r.last());
    }
}

#[test]
fn shuffle_plays_every_run_of_the_plan_once_in_a_mixed_order() {
    let dir = scratch("shuffle");
    let t = task(&dir);
    let server = serve((0..6).map(|_| reply(1, 1, 1)).collect(), false);
    config(&dir, &server.url);
    let args = [
        "run",
        "--tasks",
        t.to_str().unwrap(),
        "--model",
        "fake",
        "--arm",
        "raw",
        "--arm",
        "lean",
        "--arm",
        "x:feedback=targeted",
        "--runs",
        "2",
        "--shuffle",
    ];
    let o = loopvel(&dir, &args[..]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = loopvel(&dir, &["export", "--records", "runs"]);
    let runs: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut played: Vec<(String, u64)> =
        runs.iter().map(|r| (r["model"].as_str().unwrap().to_string(), r["replicate"].as_u64().unwrap())).collect();
    let plan_order: Vec<(String, u64)> =
        ["raw", "lean", "x"].iter().flat_map(|a| (0..2).map(move |r| (format!("fake / {a}"), r))).collect();
    assert_ne!(played, plan_order, "shuffled, not in plan order");
    played.sort();
    played.dedup();
    assert_eq!(played.len(), 6, "each of 3 arms × 2 replicates once");
    // The same command again finds the plan done (the order does not change the plan).
    let o = loopvel(&dir, &args[..]);
    assert!(text(&o.stderr).contains("(6 already done, resuming)"), "{}", text(&o.stderr));
}

#[test]
fn best_of_k_tests_each_reply_on_its_own_files_and_keeps_the_best_scoring_one() {
    // Turn 1 asks three replies at once (the server answers them in any order): 1, 2 and 0
    // of 3 tests. Turn 2 goes on from the 2-of-3 files; two of its three replies pass.
    let script = vec![reply(1, 0, 0), reply(1, 1, 0), reply(0, 0, 0), reply(1, 1, 1), reply(0, 0, 0), reply(1, 1, 1)];
    let (dir, server) = play("best-of", script, &["--candidates", "3"]);
    let r = requests(&server);
    assert_eq!(r.len(), 6, "three replies a turn, two turns");
    assert!(r[0] == r[1] && r[1] == r[2], "the same request, three times");
    let next = r[3].last().unwrap().1.clone();
    assert!(next.contains("calc.sh\n```\nA=1\nB=1\nC=0\n```"), "turn 2 sees the best reply's files:\n{next}");
    assert!(next.contains("Tests: 2 of 3 pass"), "{next}");
    let db = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let (passed, output_tokens, events): (u32, i64, String) = db
        .query_row("SELECT tests_passed, output_tokens, events FROM turns WHERE turn = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(passed, 2);
    assert!(events.contains("best of 3 replies") && events.contains("2 of 3"), "{events}");
    let each: Vec<(i64, bool, Option<u32>, String)> = db
        .prepare(
            "SELECT c.idx, c.kept, c.tests_passed, c.reply_text FROM candidates c JOIN turns u ON u.id = c.turn_id
             WHERE u.turn = 1 ORDER BY c.idx",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(each.len(), 3);
    let mut counts: Vec<Option<u32>> = each.iter().map(|c| c.2).collect();
    counts.sort();
    assert_eq!(counts, [Some(0), Some(1), Some(2)], "each reply tested on its own copy");
    let kept: Vec<_> = each.iter().filter(|c| c.1).collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].2, Some(2), "the kept one passes the most");
    let call: String = db
        .query_row("SELECT k.reply_text FROM calls k JOIN turns u ON u.id = k.turn_id WHERE u.turn = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(call, kept[0].3, "the turn's call is the kept reply");
    // The turn paid for every reply: its output tokens are the three replies' together.
    let one: i64 = db
        .query_row("SELECT json_extract(detail_json, '$.output_tokens') FROM candidates LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(output_tokens >= 3 * one - 2 && one > 0, "{output_tokens} vs {one} a reply");
    let (outcome, turns): (String, u32) =
        db.query_row("SELECT outcome, turns FROM runs", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((outcome.as_str(), turns), ("pass", 2));
    // A replay answers each candidate with its own recorded reply: the same turns, grades and choice.
    let o = loopvel(&dir, &["replay", "--db", "loopvel.db", "--into", "again.db"]);
    assert!(
        text(&o.stdout).contains("reproduce the record exactly (outcome, turns, every grade): 1 of 1"),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let again = rusqlite::Connection::open(dir.join("again.db")).unwrap();
    let kept_again: i64 = again
        .query_row(
            "SELECT c.idx FROM candidates c JOIN turns u ON u.id = c.turn_id WHERE u.turn = 1 AND c.kept = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept_again, kept[0].0);
    // A copy of the database carries every reply.
    let o = loopvel(&dir, &["db", "copy", "--from", "loopvel.db", "--to", "copy.db"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let copied: i64 = rusqlite::Connection::open(dir.join("copy.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM candidates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(copied, 6);
    // Out of range is refused with the range.
    let t = dir.join("abc");
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--candidates", "17"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--candidates 17: give 1 to 16"), "{}", text(&o.stderr));
}

#[test]
fn a_candidate_without_a_reply_leaves_the_others_to_choose_from_and_fails_again_in_a_replay() {
    let refuse = Step::Refuse { code: 400, body: "{\"error\":{\"message\":\"no\"}}".into() };
    let (dir, _) = play("best-of-failed", vec![refuse, reply(1, 1, 1)], &["--candidates", "2"]);
    let db = rusqlite::Connection::open(dir.join("loopvel.db")).unwrap();
    let (outcome, turns): (String, u32) =
        db.query_row("SELECT outcome, turns FROM runs", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((outcome.as_str(), turns), ("pass", 1), "the reply that came passes");
    let events: String = db.query_row("SELECT events FROM turns", [], |r| r.get(0)).unwrap();
    assert!(events.contains("best of 2 replies (1 got no reply)") && events.contains("3 of 3"), "{events}");
    let failed: i64 = db.query_row("SELECT COUNT(*) FROM failed_calls", [], |r| r.get(0)).unwrap();
    assert_eq!(failed, 1, "the refused request is recorded");
    let (rows, kept): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(idx) FROM candidates WHERE kept = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(rows, 1);
    let o = loopvel(&dir, &["replay", "--db", "loopvel.db", "--into", "again.db"]);
    assert!(
        text(&o.stdout).contains("reproduce the record exactly (outcome, turns, every grade): 1 of 1"),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let again = rusqlite::Connection::open(dir.join("again.db")).unwrap();
    let kept_again: i64 = again.query_row("SELECT idx FROM candidates WHERE kept = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(kept_again, kept, "the same candidate number answers");
}
