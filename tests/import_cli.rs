//! End-to-end: `loopvel tasks import FORMAT SRC DEST` on the fixtures under
//! tests/fixtures/import/, then `loopvel tasks check DEST` must pass. Needs
//! python3 (loopvel installs pytest into its cache, shared with
//! tests/tasks_cli.rs) and cargo for the Rust exercise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loopvel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel")).args(args).current_dir(root()).output().expect("run loopvel")
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("import-cli-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn import_and_check(format: &str, src: &str, names: &[&str]) -> PathBuf {
    let dest = scratch(format);
    let o = loopvel(&["tasks", "import", format, src, dest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for name in names {
        assert!(dest.join(name).join("task.toml").is_file(), "{name}: {}", text(&o));
    }
    let o = loopvel(&["tasks", "check", dest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("All {} tasks check out", names.len())),
        "{}",
        text(&o)
    );
    dest
}

#[test]
fn humaneval_imports_and_checks_out() {
    let dest = import_and_check("humaneval", "tests/fixtures/import/humaneval.jsonl", &["humaneval_0", "humaneval_2"]);
    // An existing task directory is never overwritten without --force.
    let o = loopvel(&["tasks", "import", "humaneval", "tests/fixtures/import/humaneval.jsonl", dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("never overwrites") && text(&o).contains("--force"), "{}", text(&o));
    std::fs::write(dest.join("humaneval_0/candidate.py"), "changed\n").unwrap();
    let o = loopvel(&["tasks", "import", "humaneval", "tests/fixtures/import/humaneval.jsonl", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dest.join("humaneval_0/candidate.py")).unwrap(), "changed\n", "{}", text(&o));
    let o = loopvel(&[
        "tasks",
        "import",
        "humaneval",
        "tests/fixtures/import/humaneval.jsonl",
        dest.to_str().unwrap(),
        "--force",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read_to_string(dest.join("humaneval_0/candidate.py")).unwrap(), "changed\n");
}

#[test]
fn quixbugs_imports_and_checks_out() {
    import_and_check(
        "quixbugs",
        "tests/fixtures/import/quixbugs",
        &["quixbugs_flatten", "quixbugs_gcd", "quixbugs_is_valid_parenthesization"],
    );
}

#[test]
fn exercism_imports_and_checks_out() {
    let dest = import_and_check(
        "exercism",
        "tests/fixtures/import/exercism",
        &["python_leap", "python_reverse_string", "rust_reverse_string"],
    );
    let prompt = std::fs::read_to_string(dest.join("python_reverse_string/PROMPT.md")).unwrap();
    assert!(prompt.contains("reverse a given string") && prompt.contains("third-party"), "{prompt}");
    assert!(!Path::new(&dest.join("rust_reverse_string/.meta")).exists(), "the example stays out of the task");
}

#[test]
fn a_malformed_source_names_the_file_line_and_field() {
    let dir = scratch("malformed");
    let src = dir.join("bad.jsonl");
    std::fs::write(&src, "{\"task_id\": \"HumanEval/0\", \"prompt\": \"def f():\\n\"}\n").unwrap();
    let o = loopvel(&["tasks", "import", "humaneval", src.to_str().unwrap(), dir.join("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o);
    assert!(err.contains("bad.jsonl:1") && err.contains("\"canonical_solution\" is missing"), "{err}");
    assert!(!dir.join("out").exists(), "nothing is written: {err}");
    let o = loopvel(&["tasks", "import", "quixbugs", dir.to_str().unwrap(), dir.join("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("python_programs") && text(&o).contains("QuixBugs checkout"), "{}", text(&o));
    let o = loopvel(&["tasks", "import", "exercism", dir.to_str().unwrap(), dir.join("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("exercises/practice"), "{}", text(&o));
}
