//! End-to-end: `loopvel tasks check` on the shipped tasks and on broken ones.
//! Needs python3 with pytest and cargo, as the example tasks do (.ci/run installs pytest).

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loopvel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel")).args(args).current_dir(root()).output().expect("run loopvel")
}

#[test]
fn the_example_tasks_check_out() {
    let o = loopvel(&["tasks", "check", "tasks/examples"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("All 12 tasks check out"), "{out}");
    for name in ["bitcount", "quote_approval", "rust_gcd", "rust_duration", "slugify_tap", "wordfreq"] {
        assert!(out.contains(name), "{name} missing from {out}");
    }
}

fn scratch_task(name: &str, toml: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tasks-cli-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("solution")).unwrap();
    std::fs::write(dir.join("task.toml"), toml).unwrap();
    for (path, content) in files {
        std::fs::write(dir.join(path), content).unwrap();
    }
    dir
}

#[test]
fn a_task_with_nothing_to_fix_fails_the_check() {
    let dir = scratch_task(
        "already_green",
        "prompt = \"x\"\nedit = [\"a.sh\"]\ntest = \"sh a.sh\"\nreport = \"exit\"\n",
        &[("a.sh", "exit 0\n"), ("solution/a.sh", "exit 0\n")],
    );
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already pass as given"));
}

#[test]
fn a_solution_that_does_not_pass_fails_the_check() {
    let dir = scratch_task(
        "bad_solution",
        "prompt = \"x\"\nedit = [\"a.sh\"]\ntest = \"sh a.sh\"\nreport = \"exit\"\n",
        &[("a.sh", "exit 1\n"), ("solution/a.sh", "exit 3\n")],
    );
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("with solution/ applied not every test passes"));
}

#[test]
fn an_invalid_task_toml_exits_2_naming_the_file_and_field() {
    let dir = scratch_task("invalid", "prompt = \"x\"\nedit = [\"a.sh\"]\ntest = \"true\"\nreport = \"nose\"\n", &[]);
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("task.toml") && err.contains("report = \"nose\" is not known"), "{err}");
    let dir = scratch_task("no_prompt", "edit = [\"a.sh\"]\ntest = \"true\"\n", &[]);
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("prompt is missing"));
}
