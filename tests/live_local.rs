//! A live end-to-end test with a real local model (ignored by default; needs
//! `loopvel local setup qwen-0.5b` first): `cargo test -- --ignored live`.
//! It asserts the loop's mechanics, not that the model succeeds.

use std::process::Command;

fn loopvel(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel")).args(args).current_dir(dir).output().expect("run loopvel")
}

#[test]
#[ignore = "needs a real local model: loopvel local setup qwen-0.5b"]
fn live_qwen_half_b_runs_one_real_loop_on_a_real_task() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let o = loopvel(&root, &["local", "start", "qwen-0.5b"]);
    assert!(o.status.success(), "start: {}", String::from_utf8_lossy(&o.stderr));
    let o = loopvel(&root, &["local", "config", "qwen-0.5b"]);
    std::fs::write(dir.path().join("loopvel.toml"), &o.stdout).unwrap();
    let task = root.join("tasks/examples/fizzbuzz");
    let db = dir.path().join("live.db");
    let o = loopvel(
        dir.path(),
        &[
            "run",
            "--tasks",
            task.to_str().unwrap(),
            "--model",
            "qwen-0.5b",
            "--max-turns",
            "2",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("{stderr}");
    assert!(o.status.success(), "{stderr}");
    let c = rusqlite::Connection::open(&db).unwrap();
    // A real streamed reply: text, a first token, tokens per second.
    let (reply, ttft, tps): (String, f64, f64) = c
        .query_row(
            "SELECT k.reply_text, u.ttft_s, u.tokens_per_s FROM calls k JOIN turns u ON u.id = k.turn_id WHERE u.turn = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(!reply.trim().is_empty() && ttft > 0.0 && tps > 0.0, "{reply:?} {ttft} {tps}");
    // An edit applied, or refused with a reason.
    let (applied, refused, refusals): (u32, u32, String) = c
        .query_row("SELECT edits_applied, edits_refused, refusals FROM turns WHERE turn = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(applied > 0 || (refused + refusals.len() as u32) > 0, "neither applied nor refused with a reason");
    // Real tests ran and the turn was graded and recorded.
    let (test_s, grade, total): (f64, String, Option<u32>) = c
        .query_row("SELECT test_s, grade, tests_total FROM turns WHERE turn = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(test_s > 0.0 && ["PASS", "PARTIAL", "FAIL", "THRASH"].contains(&grade.as_str()), "{test_s} {grade}");
    assert!(total.is_some_and(|t| t > 0), "pytest counted tests");
    let runs: u32 = c.query_row("SELECT COUNT(*) FROM runs WHERE status = 'done'", [], |r| r.get(0)).unwrap();
    assert_eq!(runs, 1);
    eprintln!(
        "live turn 1: grade {grade}, TTFT {ttft:.2} s, {tps:.1} tokens/s, tests {test_s:.2} s, edits applied {applied}"
    );
}
