//! `loopvel tasks import FORMAT SRC DEST`: task directories from public
//! benchmark layouts (HumanEval JSONL, QuixBugs, Exercism as in aider's
//! polyglot benchmark), each of which `loopvel tasks check DEST` passes.
//!
//! Reading the source yields [`Planned`] tasks (names and file contents, in
//! memory); nothing is written until every task of the source has been read
//! and no task directory in DEST would be overwritten (unless `--force`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::ImportFormat;
use crate::error::CliError;

/// One task to write: its directory's name and its files (relative paths).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The task directory's name under DEST.
    pub name: String,
    /// Where it came from (a task id, a file or a folder), for the listing.
    pub from: String,
    /// Relative path and content of every file, task.toml and solution/ included.
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// What reading a source found: the tasks, and what was left out and why.
#[derive(Debug, Default)]
pub struct Imported {
    /// Tasks to write.
    pub tasks: Vec<Planned>,
    /// Items of the source that were not imported, each with the reason.
    pub skipped: Vec<String>,
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

fn read_text(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        usage(format!("{}: cannot read {what} ({e}); check that SRC is the layout the format expects", path.display()))
    })
}

/// The fields of task.toml the importers write.
struct TaskToml<'a> {
    prompt: Prompt<'a>,
    edit: Vec<String>,
    show: Vec<String>,
    requires: &'a [&'a str],
    test: String,
    test_timeout_s: f64,
    report: &'a str,
}

enum Prompt<'a> {
    Inline(&'a str),
    File(&'a str),
}

impl TaskToml<'_> {
    fn render(&self) -> Vec<u8> {
        let mut t = toml::Table::new();
        match self.prompt {
            Prompt::Inline(p) => t.insert("prompt".into(), p.into()),
            Prompt::File(f) => t.insert("prompt_file".into(), f.into()),
        };
        let list = |v: &[String]| toml::Value::Array(v.iter().map(|s| s.as_str().into()).collect());
        t.insert("edit".into(), list(&self.edit));
        if !self.show.is_empty() {
            t.insert("show".into(), list(&self.show));
        }
        if !self.requires.is_empty() {
            t.insert("requires".into(), toml::Value::Array(self.requires.iter().map(|s| (*s).into()).collect()));
        }
        t.insert("test".into(), self.test.as_str().into());
        t.insert("test_timeout_s".into(), self.test_timeout_s.into());
        t.insert("report".into(), self.report.into());
        toml::to_string(&t).unwrap_or_default().into_bytes()
    }
}

const PYTEST: &str = "python3 -m pytest -q -p no:cacheprovider";

/// A folder name made of lowercase letters, digits and `_`: `HumanEval/0` → `humaneval_0`.
pub fn safe_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------- HumanEval

/// The `pass` stub for a HumanEval prompt: the body goes at the indentation of
/// the prompt's last line (its docstring's end), or one level in after a bare `def …:`.
pub fn humaneval_stub(prompt: &str) -> String {
    let last = prompt.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let indent: String = last.chars().take_while(|c| c.is_whitespace()).collect();
    let indent = if last.trim_end().ends_with(':') { format!("{indent}    ") } else { indent };
    let indent = if indent.is_empty() { "    ".to_string() } else { indent };
    format!("{}{indent}pass\n", with_newline(prompt.to_string()))
}

/// Read a HumanEval JSONL file (one problem a line; blank lines skipped).
pub fn humaneval(src: &Path) -> Result<Imported, CliError> {
    let text = read_text(src, "the HumanEval JSONL file")?;
    let mut imported = Imported::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", src.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            usage(format!(
                "{at}: not a JSON object ({e}); each line is one problem, {{\"task_id\": …, \"prompt\": …, \
                 \"canonical_solution\": …, \"test\": …, \"entry_point\": …}}"
            ))
        })?;
        let field = |name: &str| -> Result<String, CliError> {
            match value.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(usage(format!("{at}: field {name:?} is not a string; give it as a JSON string"))),
                None => Err(usage(format!(
                    "{at}: field {name:?} is missing; each line needs task_id, prompt, canonical_solution, test \
                     and entry_point"
                ))),
            }
        };
        let task_id = field("task_id")?;
        let prompt = field("prompt")?;
        let solution = field("canonical_solution")?;
        let test = field("test")?;
        let entry = field("entry_point")?;
        if !is_identifier(&entry) {
            return Err(usage(format!(
                "{at}: entry_point = {entry:?} is not a Python function name; give the name the prompt defines"
            )));
        }
        if !test.contains("def check(") {
            return Err(usage(format!(
                "{at}: field \"test\" defines no check(candidate); HumanEval's tests are `def check(candidate): assert …`"
            )));
        }
        let name = safe_name(&task_id);
        if name.is_empty() {
            return Err(usage(format!(
                "{at}: task_id = {task_id:?} gives no usable folder name; use e.g. \"HumanEval/0\""
            )));
        }
        let test_file = format!(
            "# Generated by `loopvel tasks import humaneval` from {task_id}: its check(candidate), run on {entry}.\n\
             from candidate import {entry}\n\n{}\n\ndef test_check():\n    check({entry})\n",
            test.trim_end()
        );
        let prompt_text = format!(
            "Implement `{entry}` in candidate.py so that it does what its docstring says. Keep its name and signature."
        );
        let toml = TaskToml {
            prompt: Prompt::Inline(&prompt_text),
            edit: vec!["candidate.py".into()],
            show: vec![],
            requires: &["pytest"],
            test: format!("{PYTEST} test_candidate.py"),
            test_timeout_s: 30.0,
            report: "pytest",
        };
        imported.tasks.push(Planned {
            name,
            from: task_id,
            files: vec![
                ("task.toml".into(), toml.render()),
                ("candidate.py".into(), humaneval_stub(&prompt).into_bytes()),
                ("test_candidate.py".into(), test_file.into_bytes()),
                (
                    "solution/candidate.py".into(),
                    with_newline(format!("{}{solution}", with_newline(prompt))).into_bytes(),
                ),
            ],
        });
    }
    if imported.tasks.is_empty() {
        return Err(usage(format!(
            "{}: no problems in it; a HumanEval file has one JSON object a line",
            src.display()
        )));
    }
    Ok(imported)
}

// ---------------------------------------------------------------- QuixBugs

/// Parse a QuixBugs `json_testcases/NAME.json`: one `[args, expected]` a line
/// (an `args` that is not a list is one argument, as QuixBugs' tester reads it).
pub fn quixbugs_cases(path: &Path, text: &str) -> Result<Vec<serde_json::Value>, CliError> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| usage(format!("{at}: not JSON ({e}); each line is one test case, [[args…], expected]")))?;
        let serde_json::Value::Array(pair) = value else {
            return Err(usage(format!("{at}: not a list; each line is one test case, [[args…], expected]")));
        };
        let [args, expected] = <[serde_json::Value; 2]>::try_from(pair).map_err(|p| {
            usage(format!("{at}: a list of {} items; each line is [[args…], expected], two items", p.len()))
        })?;
        let args = match args {
            serde_json::Value::Array(a) => serde_json::Value::Array(a),
            one => serde_json::Value::Array(vec![one]),
        };
        cases.push(serde_json::Value::Array(vec![args, expected]));
    }
    if cases.is_empty() {
        return Err(usage(format!("{}: no test cases; each line is one, [[args…], expected]", path.display())));
    }
    Ok(cases)
}

/// The self-contained pytest file for a QuixBugs program with JSON cases.
fn quixbugs_json_test(name: &str, cases: &[serde_json::Value]) -> String {
    let json = serde_json::Value::Array(cases.to_vec()).to_string();
    // A JSON string is a valid Python string literal (serde_json never writes `\/`).
    let literal = serde_json::Value::String(json).to_string();
    format!(
        r#"# Generated by `loopvel tasks import quixbugs` from json_testcases/{name}.json.
import json
import signal
import types

import pytest

from {name} import {name}

CASES = json.loads({literal})


def _plain(value):
    # JSON has lists only: compare tuples and generators as lists.
    if isinstance(value, (tuple, list, types.GeneratorType)):
        return [_plain(v) for v in value]
    return value


def _timeout(signum, frame):
    raise TimeoutError("took over 5 s (an endless loop?)")


@pytest.mark.parametrize("args, expected", CASES)
def test_{name}(args, expected):
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(5)
    try:
        assert _plain({name}(*args)) == expected
    finally:
        signal.alarm(0)
"#
    )
}

/// Rewrite a QuixBugs `python_testcases/test_NAME.py` to import the program
/// from NAME.py beside it: `from python_programs.NAME import …` (and
/// `correct_python_programs.`) become `from NAME import …`, and an
/// `if pytest.use_correct: … else: …` choice keeps its `else` branch.
pub fn quixbugs_rewrite_test(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("if pytest.use_correct") && !line.starts_with(char::is_whitespace) {
            // Drop the `if` branch, then keep the `else:` branch one level out.
            while lines.peek().is_some_and(|l| l.starts_with(char::is_whitespace) || l.trim().is_empty()) {
                lines.next();
            }
            if lines.peek().is_some_and(|l| l.trim() == "else:") {
                lines.next();
                while let Some(l) = lines.next_if(|l| l.starts_with(char::is_whitespace) || l.trim().is_empty()) {
                    out.push(l.trim_start().to_string());
                }
            }
            continue;
        }
        out.push(line.to_string());
    }
    let out: Vec<String> = out
        .iter()
        .map(|l| l.replace("from correct_python_programs.", "from ").replace("from python_programs.", "from "))
        .collect();
    with_newline(out.join("\n"))
}

/// Read a QuixBugs checkout: `python_programs/NAME.py` (buggy),
/// `correct_python_programs/NAME.py` (fixed), and tests from
/// `json_testcases/NAME.json` or else `python_testcases/test_NAME.py`.
pub fn quixbugs(src: &Path) -> Result<Imported, CliError> {
    let programs = src.join("python_programs");
    let entries = std::fs::read_dir(&programs).map_err(|e| {
        usage(format!(
            "{}: cannot read ({e}); SRC is a QuixBugs checkout with python_programs/, correct_python_programs/ \
             and json_testcases/ or python_testcases/",
            programs.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".py")).map(String::from))
        .collect();
    names.sort();
    let mut imported = Imported::default();
    for name in names {
        if name == "node" || name == "__init__" || name.ends_with("_test") || name.starts_with("test_") {
            continue; // helpers and the old layout's tests, not programs
        }
        let buggy_path = programs.join(format!("{name}.py"));
        if !is_identifier(&name) {
            imported.skipped.push(format!("{}: not a Python module name", buggy_path.display()));
            continue;
        }
        let correct_path = src.join("correct_python_programs").join(format!("{name}.py"));
        if !correct_path.is_file() {
            return Err(usage(format!(
                "{}: missing; every program in python_programs/ needs its fixed version there (or remove {})",
                correct_path.display(),
                buggy_path.display()
            )));
        }
        let json_path = src.join("json_testcases").join(format!("{name}.json"));
        let py_test_path = src.join("python_testcases").join(format!("test_{name}.py"));
        let test = if json_path.is_file() {
            let cases = quixbugs_cases(&json_path, &read_text(&json_path, "the test cases")?)?;
            quixbugs_json_test(&name, &cases)
        } else if py_test_path.is_file() {
            let text = read_text(&py_test_path, "the tests")?;
            if text.contains("load_testdata") || text.contains("node import") || text.contains("import node") {
                imported.skipped.push(format!(
                    "{name}: {} needs QuixBugs' helpers (load_testdata, node.py) and there is no {}",
                    py_test_path.display(),
                    json_path.display()
                ));
                continue;
            }
            quixbugs_rewrite_test(&text)
        } else {
            imported.skipped.push(format!("{name}: no {} nor {}", json_path.display(), py_test_path.display()));
            continue;
        };
        let buggy = read_text(&buggy_path, "the buggy program")?;
        let correct = read_text(&correct_path, "the fixed program")?;
        let prompt = format!(
            "{name}.py has a bug on one line. Fix it so that the tests in test_{name}.py pass, changing as little as you can."
        );
        let toml = TaskToml {
            prompt: Prompt::Inline(&prompt),
            edit: vec![format!("{name}.py")],
            show: vec![format!("test_{name}.py")],
            requires: &["pytest"],
            test: format!("{PYTEST} test_{name}.py"),
            test_timeout_s: 60.0,
            report: "pytest",
        };
        imported.tasks.push(Planned {
            name: format!("quixbugs_{name}"),
            from: buggy_path.display().to_string(),
            files: vec![
                ("task.toml".into(), toml.render()),
                (format!("{name}.py").into(), buggy.into_bytes()),
                (format!("test_{name}.py").into(), test.into_bytes()),
                (format!("solution/{name}.py").into(), correct.into_bytes()),
            ],
        });
    }
    if imported.tasks.is_empty() {
        return Err(usage(format!(
            "{}: no program with tests found{}",
            src.display(),
            if imported.skipped.is_empty() { String::new() } else { format!(" ({})", imported.skipped.join("; ")) }
        )));
    }
    Ok(imported)
}

// ---------------------------------------------------------------- Exercism

/// The `files` of an exercise's `.meta/config.json`.
#[derive(Debug, PartialEq)]
pub struct ExerciseFiles {
    /// The files the student edits (stubs).
    pub solution: Vec<String>,
    /// The test files.
    pub test: Vec<String>,
    /// The reference solution's files.
    pub example: Vec<String>,
}

/// Parse `.meta/config.json`, naming the file and field when one is missing.
pub fn exercise_files(path: &Path, text: &str) -> Result<ExerciseFiles, CliError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| usage(format!("{}: not JSON ({e}); it is the exercise's Exercism config", path.display())))?;
    let list = |key: &str| -> Result<Vec<String>, CliError> {
        let v = value.get("files").and_then(|f| f.get(key)).ok_or_else(|| {
            usage(format!(
                "{}: files.{key} is missing; Exercism's config lists files.solution, files.test and files.example",
                path.display()
            ))
        })?;
        let items = v.as_array().map(|a| a.iter().map(|s| s.as_str().map(String::from)).collect::<Option<Vec<_>>>());
        match items {
            Some(Some(items)) if !items.is_empty() => {
                for item in &items {
                    let p = Path::new(item);
                    if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                        return Err(usage(format!(
                            "{}: files.{key} names {item:?}; give paths inside the exercise",
                            path.display()
                        )));
                    }
                }
                Ok(items)
            }
            _ => Err(usage(format!(
                "{}: files.{key} is not a non-empty list of paths; give e.g. [\"src/lib.rs\"]",
                path.display()
            ))),
        }
    };
    Ok(ExerciseFiles { solution: list("solution")?, test: list("test")?, example: list("example")? })
}

/// Where each example file goes: the solution file with its extension when
/// there is exactly one, else `.meta/X` → `X`.
pub fn example_targets(files: &ExerciseFiles) -> Option<Vec<(String, String)>> {
    files
        .example
        .iter()
        .map(|ex| {
            let ext = Path::new(ex).extension();
            let same: Vec<&String> = files.solution.iter().filter(|s| Path::new(s).extension() == ext).collect();
            match same.as_slice() {
                [one] => Some((ex.clone(), (*one).clone())),
                _ => ex
                    .strip_prefix(".meta/")
                    .filter(|s| files.solution.iter().any(|f| f == s))
                    .map(|s| (ex.clone(), s.to_string())),
            }
        })
        .collect()
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "__pycache__" {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if path.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// The exercise folders of SRC: `SRC/exercises/practice/*` (a track), or
/// `SRC/*/exercises/practice/*` (aider's polyglot benchmark: one folder a track).
fn exercise_dirs(src: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut practice = Vec::new();
    if src.join("exercises/practice").is_dir() {
        practice.push(src.join("exercises/practice"));
    } else {
        let entries = std::fs::read_dir(src).map_err(|e| usage(format!("{}: cannot read ({e})", src.display())))?;
        let mut tracks: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("exercises/practice"))
            .filter(|p| p.is_dir())
            .collect();
        tracks.sort();
        practice = tracks;
    }
    if practice.is_empty() {
        return Err(usage(format!(
            "{}: no exercises/practice/ in it nor in a folder of it; SRC is an Exercism track checkout \
             (exercises/practice/NAME/) or aider's polyglot benchmark (LANG/exercises/practice/NAME/)",
            src.display()
        )));
    }
    let mut dirs = Vec::new();
    for p in practice {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
            .map_err(|e| usage(format!("{}: cannot read ({e})", p.display())))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    Ok(dirs)
}

/// Read Exercism exercises (Python with pytest, Rust with cargo).
pub fn exercism(src: &Path) -> Result<Imported, CliError> {
    let mut imported = Imported::default();
    for dir in exercise_dirs(src)? {
        let slug = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let config_path = dir.join(".meta/config.json");
        let files = exercise_files(&config_path, &read_text(&config_path, "the exercise's config")?)?;
        let rust = dir.join("Cargo.toml").is_file() || files.solution.iter().any(|f| f.ends_with(".rs"));
        let python = files.solution.iter().all(|f| f.ends_with(".py"));
        let lang = match (rust, python) {
            (true, _) => "rust",
            (false, true) => "python",
            _ => {
                imported.skipped.push(format!("{}: not Python or Rust ({})", dir.display(), files.solution.join(", ")));
                continue;
            }
        };
        let Some(targets) = example_targets(&files) else {
            return Err(usage(format!(
                "{}: cannot tell which solution file each of files.example = {:?} replaces; give one solution file \
                 per extension, or put the example at .meta/PATH for solution file PATH",
                config_path.display(),
                files.example
            )));
        };
        for f in files.solution.iter().chain(&files.test) {
            if !dir.join(f).is_file() {
                return Err(usage(format!(
                    "{}: missing, though {} lists it; add the file or fix the list",
                    dir.join(f).display(),
                    config_path.display()
                )));
            }
        }
        let docs = dir.join(".docs/instructions.md");
        let mut prompt = with_newline(read_text(&docs, "the instructions")?);
        let append = dir.join(".docs/instructions.append.md");
        if append.is_file() {
            prompt = format!("{prompt}\n{}", with_newline(read_text(&append, "the instructions' appendix")?));
        }
        let edit: Vec<String> = targets.iter().map(|(_, to)| to.clone()).collect();
        prompt.push_str(&format!(
            "\nUse the above instructions to modify {}, so that the tests in {} pass. Keep the names of existing \
             functions, types and modules, as the tests use them. Use only the standard library.\n",
            edit.join(", "),
            files.test.join(", ")
        ));
        let mut paths = Vec::new();
        collect_files(&dir, &dir, &mut paths).map_err(|e| usage(format!("{}: cannot read ({e})", dir.display())))?;
        let mut out = vec![("PROMPT.md".into(), prompt.into_bytes())];
        for p in &paths {
            let text = std::fs::read(dir.join(p))
                .map_err(|e| usage(format!("{}: cannot read ({e})", dir.join(p).display())))?;
            out.push((p.clone(), text));
        }
        for (from, to) in &targets {
            let path = dir.join(from);
            let text = std::fs::read(&path).map_err(|e| {
                usage(format!("{}: cannot read the example ({e}); {} lists it", path.display(), config_path.display()))
            })?;
            out.push((Path::new("solution").join(to), text));
        }
        let mut show: Vec<String> = files.test.clone();
        show.extend(files.solution.iter().filter(|s| !edit.contains(s)).cloned());
        let (test, report, requires, timeout): (String, _, &[&str], _) = if lang == "rust" {
            ("cargo test --offline --quiet -- --include-ignored 2>&1".into(), "cargo", &[], 120.0)
        } else {
            (format!("{PYTEST} {}", files.test.join(" ")), "pytest", &["pytest"], 60.0)
        };
        let toml =
            TaskToml { prompt: Prompt::File("PROMPT.md"), edit, show, requires, test, test_timeout_s: timeout, report };
        out.insert(0, ("task.toml".into(), toml.render()));
        imported.tasks.push(Planned {
            name: format!("{lang}_{}", safe_name(&slug)),
            from: dir.display().to_string(),
            files: out,
        });
    }
    if imported.tasks.is_empty() {
        return Err(usage(format!("{}: no Python or Rust exercise found", src.display())));
    }
    Ok(imported)
}

// ---------------------------------------------------------------- writing

/// Import SRC in FORMAT into DEST: refuse before writing anything when a task
/// directory exists (unless `force`: then it is replaced).
pub fn run(format: ImportFormat, src: &Path, dest: &Path, force: bool, out: &mut impl Write) -> Result<(), CliError> {
    let imported = match format {
        ImportFormat::Humaneval => humaneval(src)?,
        ImportFormat::Quixbugs => quixbugs(src)?,
        ImportFormat::Exercism => exercism(src)?,
    };
    let mut seen = std::collections::BTreeMap::new();
    for t in &imported.tasks {
        if let Some(first) = seen.insert(t.name.clone(), t.from.clone()) {
            return Err(usage(format!(
                "{} and {first} both become task {}; give them distinct ids (nothing was written)",
                t.from, t.name
            )));
        }
    }
    let existing: Vec<String> = imported
        .tasks
        .iter()
        .map(|t| dest.join(&t.name))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        return Err(usage(format!(
            "{} exist{}; tasks import never overwrites a task (nothing was written): remove {}, choose another DEST, \
             or give --force to replace {}",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
            if existing.len() == 1 { "it" } else { "them" },
        )));
    }
    for t in &imported.tasks {
        let root = dest.join(&t.name);
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| usage(format!("{}: cannot replace ({e})", root.display())))?;
        }
        for (path, content) in &t.files {
            let target = root.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| usage(format!("{}: cannot create ({e})", parent.display())))?;
            }
            std::fs::write(&target, content).map_err(|e| usage(format!("{}: cannot write ({e})", target.display())))?;
        }
    }
    let n = imported.tasks.len();
    writeln!(out, "Imported {n} task{} into {}:", if n == 1 { "" } else { "s" }, dest.display())?;
    let width = imported.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &imported.tasks {
        writeln!(out, "  {:width$}  from {}", t.name, t.from)?;
    }
    for s in &imported.skipped {
        writeln!(out, "skipped {s}")?;
    }
    writeln!(out, "Next: loopvel tasks check {}", dest.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_folder_names() {
        assert_eq!(safe_name("HumanEval/0"), "humaneval_0");
        assert_eq!(safe_name("reverse-string"), "reverse_string");
        assert_eq!(safe_name("../x//y"), "x_y");
        assert_eq!(safe_name("///"), "");
    }

    #[test]
    fn the_stub_is_indented_like_the_docstring_and_fails() {
        let s = humaneval_stub("def f(x):\n    \"\"\" doc\n    \"\"\"\n");
        assert!(s.ends_with("    \"\"\"\n    pass\n"), "{s}");
        assert_eq!(humaneval_stub("def f(x):"), "def f(x):\n    pass\n");
        assert!(humaneval_stub("class A:\n    def f(self):\n").ends_with("        pass\n"));
    }

    fn jsonl(lines: &str) -> Result<Imported, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("he.jsonl");
        std::fs::write(&path, lines).unwrap();
        humaneval(&path)
    }

    #[test]
    fn a_humaneval_line_becomes_a_task() {
        let line = r#"{"task_id":"HumanEval/7","prompt":"def f(x):\n    \"\"\"d\"\"\"\n","canonical_solution":"    return x\n","test":"def check(candidate):\n    assert candidate(1) == 1\n","entry_point":"f"}"#;
        let got = jsonl(&format!("\n{line}\n")).unwrap();
        let t = &got.tasks[0];
        assert_eq!(t.name, "humaneval_7");
        let file =
            |p: &str| String::from_utf8(t.files.iter().find(|(q, _)| q == Path::new(p)).unwrap().1.clone()).unwrap();
        assert!(file("test_candidate.py").contains("from candidate import f\n"));
        assert!(file("candidate.py").ends_with("    pass\n"));
        assert!(file("solution/candidate.py").ends_with("\"\"\"d\"\"\"\n    return x\n"));
        let toml = file("task.toml");
        assert!(toml.contains("requires = [\"pytest\"]") && toml.contains("report = \"pytest\""), "{toml}");
        assert!(toml.contains("edit = [\"candidate.py\"]"), "{toml}");
    }

    #[test]
    fn a_bad_humaneval_line_names_the_line_and_field() {
        let err = jsonl("{\"task_id\":\"HumanEval/1\"}\n").unwrap_err().to_string();
        assert!(err.contains("he.jsonl:1") && err.contains("\"prompt\" is missing"), "{err}");
        let err = jsonl("\n{not json\n").unwrap_err().to_string();
        assert!(err.contains("he.jsonl:2") && err.contains("not a JSON object"), "{err}");
        let bad =
            r#"{"task_id":"H/1","prompt":"","canonical_solution":"","test":"def check(c): pass","entry_point":"a b"}"#;
        let err = jsonl(bad).unwrap_err().to_string();
        assert!(err.contains("entry_point = \"a b\""), "{err}");
        let bad = r#"{"task_id":"H/1","prompt":"","canonical_solution":"","test":3,"entry_point":"f"}"#;
        assert!(jsonl(bad).unwrap_err().to_string().contains("\"test\" is not a string"));
    }

    #[test]
    fn quixbugs_cases_wrap_a_single_argument_and_name_bad_lines() {
        let p = Path::new("json_testcases/x.json");
        let cases = quixbugs_cases(p, "[127, 7]\n\n[[1, 2], 3]\n").unwrap();
        assert_eq!(serde_json::Value::Array(cases).to_string(), "[[[127],7],[[1,2],3]]");
        let err = quixbugs_cases(p, "[1, 2]\n[1]\n").unwrap_err().to_string();
        assert!(err.contains("x.json:2") && err.contains("1 items"), "{err}");
        let err = quixbugs_cases(p, "[1, 2\n").unwrap_err().to_string();
        assert!(err.contains("x.json:1") && err.contains("not JSON"), "{err}");
    }

    #[test]
    fn quixbugs_tests_import_the_program_beside_them() {
        let text = "import pytest\n\nif pytest.use_correct:\n    from correct_python_programs.gcd import gcd\nelse:\n    from python_programs.gcd import gcd\n\n\ndef test_a():\n    assert gcd(1, 1) == 1\n";
        let got = quixbugs_rewrite_test(text);
        assert!(got.contains("\nfrom gcd import gcd\n"), "{got}");
        assert!(!got.contains("use_correct") && !got.contains("else:"), "{got}");
        assert!(got.contains("def test_a():\n    assert gcd(1, 1) == 1\n"), "{got}");
        assert_eq!(quixbugs_rewrite_test("from python_programs.a import a\n"), "from a import a\n");
    }

    #[test]
    fn exercism_config_maps_examples_to_solution_files() {
        let p = Path::new(".meta/config.json");
        let f = exercise_files(
            p,
            r#"{"files":{"solution":["src/lib.rs","Cargo.toml"],"test":["tests/x.rs"],"example":[".meta/example.rs"]}}"#,
        )
        .unwrap();
        assert_eq!(example_targets(&f).unwrap(), vec![(".meta/example.rs".into(), "src/lib.rs".into())]);
        let f = ExerciseFiles {
            solution: vec!["a.py".into(), "b.py".into()],
            test: vec!["a_test.py".into()],
            example: vec![".meta/b.py".into()],
        };
        assert_eq!(example_targets(&f).unwrap(), vec![(".meta/b.py".into(), "b.py".into())]);
        let err = exercise_files(p, r#"{"files":{"solution":["a.py"],"test":["t.py"]}}"#).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("files.example is missing"), "{err}");
        let err = exercise_files(p, r#"{"files":{"solution":["../a.py"],"test":["t"],"example":["e"]}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("inside the exercise"), "{err}");
    }
}
