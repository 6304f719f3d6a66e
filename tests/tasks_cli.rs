//! End-to-end: `loopvel tasks check` on the shipped tasks and on broken ones.
//! Needs python3 (loopvel installs the tasks' pytest itself, from PyPI, into
//! its cache) and cargo, as the example tasks do. `.ci/run` runs this with a
//! `python3` that has no pytest, so the provisioning is what makes it pass.

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

#[test]
fn an_edit_pattern_that_matches_no_file_fails_the_check() {
    // `stat.py` for `stats.py`: every reply that writes stats.py would be refused.
    let dir = scratch_task(
        "misspelt_edit",
        "prompt = \"x\"\nedit = [\"stat.py\"]\nshow = [\"tests.sh\", \"docs/*.md\"]\ntest = \"sh tests.sh\"\n",
        &[("stats.py", "x = 1\n"), ("tests.sh", "grep -q 'x = 2' stats.py\n"), ("solution/stats.py", "x = 2\n")],
    );
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("edit = [\"stat.py\"] matches no file"), "{out}");
    assert!(out.contains("stats.py"), "the message lists the task's files: {out}");
    assert!(out.contains("show = [\"docs/*.md\"] matches no file"), "{out}");
    assert!(out.contains("solution/stats.py is a file the model may not write"), "{out}");
}

#[test]
fn a_module_the_tests_lack_is_named_with_the_interpreter_never_blamed_on_the_solution() {
    let dir = scratch_task(
        "missing_module",
        "prompt = \"x\"\nedit = [\"a.py\"]\ntest = \"python3 -c 'import loopvel_no_such_module'\"\n",
        &[("a.py", "x = 1\n"), ("solution/a.py", "x = 2\n")],
    );
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("the tests cannot run") && out.contains("No module named loopvel_no_such_module"), "{out}");
    assert!(out.contains("python3 on PATH (/"), "names the interpreter by its path: {out}");
    assert!(out.contains("requires = [\"loopvel_no_such_module\"]"), "{out}");
    assert!(!out.contains("with solution/ applied not every test passes"), "{out}");
}

#[test]
fn a_requirement_that_is_a_url_or_an_option_is_refused_naming_the_field() {
    for bad in ["--index-url=http://127.0.0.1:9/x", "pkg @ https://127.0.0.1:9/p.whl", "../local"] {
        let dir = scratch_task(
            "bad_requires",
            &format!("prompt = \"x\"\nedit = [\"a.py\"]\nrequires = [{bad:?}]\ntest = \"true\"\n"),
            &[],
        );
        let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("task.toml") && err.contains("requires = [") && err.contains("no URLs"), "{err}");
    }
}

#[test]
fn the_tests_get_the_provisioned_python_and_cannot_change_it() {
    // The tests see the cached environment's python3 first on PATH, with
    // pytest, and the environment is read-only to them (at every real level).
    let dir = scratch_task(
        "provisioned",
        "prompt = \"x\"\nedit = [\"a.py\"]\nrequires = [\"pytest\"]\ntest = \"python3 check.py\"\n",
        &[
            ("a.py", "x = 1\n"),
            ("solution/a.py", "x = 2\n"),
            (
                "check.py",
                "import os, sys, pytest, a\n\
                 assert os.environ['VIRTUAL_ENV'] in sys.prefix, sys.prefix\n\
                 print('PREFIX', sys.prefix)\n\
                 try:\n    open(os.path.join(sys.prefix, 'planted.txt'), 'w')\n    print('WROTE')\n\
                 except OSError:\n    pass\n\
                 sys.exit(0 if a.x == 2 else 1)\n",
            ),
        ],
    );
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    // The line is wrapped to the terminal's width: read it as one.
    let err = String::from_utf8_lossy(&o.stderr).replace('\n', " ");
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("tests' python3 for requires = [\"pytest\"]") && err.contains("pytest "), "{err}");
    let python = err.split("]: ").nth(1).and_then(|s| s.split(' ').next()).expect("the interpreter's path");
    let root = std::path::Path::new(python).parent().and_then(|b| b.parent()).expect("the environment");
    let sandboxed = !err.contains("sandbox: none");
    if sandboxed {
        assert!(!root.join("planted.txt").exists(), "a test wrote into the shared environment");
    }
}

#[test]
fn tasks_new_scaffolds_tasks_that_check_out_in_both_languages_and_never_overwrite() {
    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tasks-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    for lang in ["python", "rust"] {
        let name = format!("median_{lang}");
        let o = loopvel(&["tasks", "new", &name, "--lang", lang, "--dir", parent.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let dir = parent.join(&name);
        let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{lang}: {out}\n{}", String::from_utf8_lossy(&o.stderr));
        assert!(out.contains("The task checks out"), "{out}");
        // A second `tasks new` with the same name leaves the task as it is.
        std::fs::write(dir.join("mine.txt"), "kept").unwrap();
        let o = loopvel(&["tasks", "new", &name, "--lang", lang, "--dir", parent.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
        assert!(dir.join("mine.txt").is_file());
    }
    let o = loopvel(&["tasks", "new", "../escape", "--dir", parent.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("letters, digits, _ and -"));
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn run_help_documents_the_edit_format_with_a_worked_reply() {
    let o = loopvel(&["run", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for needle in ["THE EDIT FORMAT", "<<<<<<< SEARCH", ">>>>>>> REPLACE", "whole file", "stats.py", "helpers.py"] {
        assert!(out.contains(needle), "run --help lacks {needle:?}");
    }
}

#[test]
fn a_module_the_model_is_to_write_is_not_blamed_on_the_environment() {
    // The fix creates mymodule.py: as given, the tests fail with "No module named 'mymodule'".
    let dir = scratch_task(
        "new_module",
        "prompt = \"x\"\nedit = [\"mymodule.py\"]\ntest = \"python3 -c 'import mymodule; assert mymodule.x == 1'\"\n",
        &[("solution/mymodule.py", "x = 1\n")],
    );
    let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("cannot run"), "{out}");
}

#[test]
fn task_numbers_out_of_range_and_a_prompt_file_outside_the_task_are_refused() {
    let outside = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("outside-{}.txt", std::process::id()));
    std::fs::write(&outside, "a secret the model must never see").unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("test_timeout_s = 1e300".into(), "test_timeout_s = 1e300: give a number of seconds"),
        ("test_timeout_s = 0".into(), "test_timeout_s = 0.0: give"),
        ("test_timeout_s = -5".into(), "test_timeout_s = -5.0: give"),
        (
            format!("prompt_file = {:?}", format!("../../{}", outside.file_name().unwrap().to_str().unwrap())),
            "is not a file inside the task directory",
        ),
        (format!("prompt_file = {:?}", outside.display().to_string()), "is not a file inside the task directory"),
    ];
    for (line, want) in cases {
        let prompt = if line.starts_with("prompt_file") { "" } else { "prompt = \"x\"\n" };
        let dir = scratch_task("bounds", &format!("{prompt}edit = [\"a.sh\"]\ntest = \"true\"\n{line}\n"), &[]);
        let o = loopvel(&["tasks", "check", dir.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains("task.toml") && err.contains(want), "{line}: {err}");
        assert!(!err.contains("secret"), "{err}");
    }
    let _ = std::fs::remove_file(outside);
}
