//! Tasks: a directory with `task.toml`, the files, and optionally `solution/`.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use loopvel_sandbox::Limits;

use crate::report::ReportFormat;

/// A task that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// `task.toml` cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `task.toml` is not valid or misses a field.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskToml {
    prompt: Option<String>,
    prompt_file: Option<String>,
    edit: Vec<String>,
    #[serde(default)]
    show: Vec<String>,
    test: String,
    #[serde(default = "default_timeout")]
    test_timeout_s: f64,
    #[serde(default = "default_report")]
    report: String,
    /// The tests may use the network (off by default: the sandbox has none).
    #[serde(default)]
    network: bool,
    /// Variables added to the tests' environment (which is otherwise an allow-list).
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    /// Folders outside the workspace the tests may read (absolute paths).
    #[serde(default)]
    read: Vec<PathBuf>,
    /// Caps on the tests' resources (defaults in `loopvel_sandbox::Limits`).
    #[serde(default)]
    limits: Limits,
    /// Python packages the tests need (PyPI specifiers), provisioned by loopvel.
    #[serde(default)]
    requires: Vec<String>,
}

fn default_timeout() -> f64 {
    60.0
}

fn default_report() -> String {
    "exit".into()
}

/// A validated task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Name: the directory's name.
    pub name: String,
    /// The task directory.
    pub dir: PathBuf,
    /// What the model is asked to do.
    pub prompt: String,
    /// Globs of files the model may change or create.
    pub edit: Vec<String>,
    /// Globs of read-only files shown to the model.
    pub show: Vec<String>,
    /// The test command, run with `sh -c` in the workspace root.
    pub test: String,
    /// Seconds before the tests are killed.
    pub test_timeout_s: f64,
    /// How tests are counted.
    pub report: ReportFormat,
    /// The tests may use the network.
    pub network: bool,
    /// Variables added to the tests' environment.
    pub env: Vec<(String, String)>,
    /// Folders outside the workspace the tests may read.
    pub read: Vec<PathBuf>,
    /// Caps on the tests' resources.
    pub limits: Limits,
    /// Python packages the tests need (`requires`), sorted.
    pub requires: Vec<String>,
    /// The Python environment the tests use, once [`crate::pyenv::prepare`] made it.
    pub python: Option<crate::pyenv::PythonEnv>,
    edit_set: GlobSet,
    show_set: GlobSet,
}

/// The task's variables, plus defaults it does not set. Python must not
/// cache bytecode in the workspace: its cache is keyed by the source's
/// mtime in whole seconds and its size, so an edit of the same size within
/// the second after a test run (a model's one-character fix, `solution/` in
/// `tasks check`) would run the stale code.
fn with_defaults(env: std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env.into_iter().collect();
    if !out.iter().any(|(k, _)| k == "PYTHONDONTWRITEBYTECODE") {
        out.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    }
    out
}

fn glob_set(globs: &[String], path: &Path, field: &str) -> Result<GlobSet, TaskError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| TaskError::Invalid {
            path: path.to_path_buf(),
            message: format!("{field}: `{g}` is not a valid glob ({e}); write e.g. \"src/*.py\""),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| TaskError::Invalid { path: path.to_path_buf(), message: format!("{field}: {e}") })
}

impl Task {
    /// Read and check `DIR/task.toml`.
    pub fn load(dir: &Path) -> Result<Task, TaskError> {
        let path = dir.join("task.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| TaskError::Read { path: path.clone(), source })?;
        let invalid = |message: String| TaskError::Invalid { path: path.clone(), message };
        let t: TaskToml = toml::from_str(&text).map_err(|e| invalid(e.to_string().trim().to_string()))?;
        let prompt = match (t.prompt, t.prompt_file) {
            (Some(p), None) => p,
            (None, Some(f)) => {
                // Inside the task only: the prompt goes to the model, and a path
                // such as ../../.ssh/id_rsa must not send a file from elsewhere.
                let inside = dir
                    .join(&f)
                    .canonicalize()
                    .ok()
                    .filter(|p| dir.canonicalize().is_ok_and(|d| p.starts_with(&d)) && p.is_file());
                let Some(file) = inside else {
                    return Err(invalid(format!(
                        "prompt_file = \"{f}\" is not a file inside the task directory; give a path relative to \
                         it, e.g. prompt_file = \"PROMPT.md\""
                    )));
                };
                std::fs::read_to_string(&file).map_err(|e| {
                    invalid(format!(
                        "prompt_file = \"{f}\" cannot be read ({e}); give a UTF-8 text file in the task directory"
                    ))
                })?
            }
            (Some(_), Some(_)) => return Err(invalid("give either prompt or prompt_file, not both".into())),
            (None, None) => {
                return Err(invalid("prompt is missing; add prompt = \"…\" or prompt_file = \"PROMPT.md\"".into()))
            }
        };
        if t.edit.is_empty() {
            return Err(invalid("edit = [] names no file; list the files (globs) the model may change".into()));
        }
        if !(t.test_timeout_s.is_finite() && t.test_timeout_s > 0.0 && t.test_timeout_s <= 86_400.0) {
            return Err(invalid(format!(
                "test_timeout_s = {:?}: give a number of seconds above 0 and at most 86,400 (a day)",
                t.test_timeout_s
            )));
        }
        let report = ReportFormat::parse(&t.report).map_err(invalid)?;
        t.limits.validate().map_err(invalid)?;
        for (k, v) in &t.env {
            let bad_name = k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0');
            if bad_name {
                return Err(invalid(format!(
                    "env.{k:?}: a variable name is non-empty and has no '=' or NUL (nor has its value a NUL)"
                )));
            }
        }
        for p in &t.read {
            if !p.is_absolute() || !p.is_dir() {
                return Err(invalid(format!(
                    "read = [\"{}\"]: give absolute paths of existing folders the tests may read",
                    p.display()
                )));
            }
        }
        for r in &t.requires {
            crate::pyenv::check_requirement(r).map_err(&invalid)?;
        }
        let mut requires = t.requires;
        requires.sort();
        requires.dedup();
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        Ok(Task {
            name,
            dir: dir.to_path_buf(),
            prompt,
            edit_set: glob_set(&t.edit, &path, "edit")?,
            show_set: glob_set(&t.show, &path, "show")?,
            edit: t.edit,
            show: t.show,
            test: t.test,
            test_timeout_s: t.test_timeout_s,
            report,
            network: t.network,
            env: with_defaults(t.env),
            read: t.read,
            limits: t.limits,
            requires,
            python: None,
        })
    }

    /// The tests use `env`: its `bin/` first on their PATH, its folder
    /// readable (read-only) in the sandbox.
    pub fn use_python(&mut self, env: crate::pyenv::PythonEnv) {
        if let Some(root) = &env.root {
            let bin = root.join("bin").display().to_string();
            let inherited = self
                .env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
            self.env.retain(|(k, _)| k != "PATH" && k != "VIRTUAL_ENV");
            self.env.push(("PATH".into(), format!("{bin}:{inherited}")));
            self.env.push(("VIRTUAL_ENV".into(), root.display().to_string()));
            self.read.push(root.clone());
            // The venv's python3 links into the base installation (pyenv, uv,
            // a prefix under home): readable too, unless it would uncover the
            // home folder itself.
            let home = std::env::var_os("HOME").map(PathBuf::from);
            if let Some(base) = env.base_prefix.as_ref().filter(|b| b.is_absolute() && b.is_dir()) {
                if !home.as_ref().is_some_and(|h| h.starts_with(base)) && !self.read.contains(base) {
                    self.read.push(base.clone());
                }
            }
        }
        self.python = Some(env);
    }

    /// Whether the model may write `relative` (a path relative to the workspace root).
    pub fn may_edit(&self, relative: &Path) -> bool {
        self.edit_set.is_match(relative)
    }

    /// What makes the task unsolvable as written: an `edit` pattern that
    /// matches no file in the task or its `solution/` (a misspelt name means
    /// every reply is refused), a `show` pattern that matches no file, and a
    /// `solution/` file the model may not write.
    pub fn pattern_problems(&self) -> Vec<String> {
        let mut given = Vec::new();
        crate::workspace::files_under(&self.dir, &self.dir, &mut given);
        given.retain(|p| p != Path::new("task.toml") && !p.starts_with("solution"));
        let solution_dir = self.dir.join("solution");
        let mut solution = Vec::new();
        crate::workspace::files_under(&solution_dir, &solution_dir, &mut solution);
        let listed = || {
            let names: Vec<String> = given.iter().take(8).map(|p| p.display().to_string()).collect();
            let more = if given.len() > 8 { format!(" and {} more", given.len() - 8) } else { String::new() };
            format!("{}{more}", names.join(", "))
        };
        let matches = |pattern: &str, files: &[&PathBuf]| {
            Glob::new(pattern).map(|g| g.compile_matcher()).is_ok_and(|m| files.iter().any(|f| m.is_match(f)))
        };
        let all: Vec<&PathBuf> = given.iter().chain(&solution).collect();
        let given_only: Vec<&PathBuf> = given.iter().collect();
        let mut problems = Vec::new();
        for g in &self.edit {
            if !matches(g, &all) {
                problems.push(format!(
                    "edit = [\"{g}\"] matches no file in the task or its solution/, so every reply that \
                     writes the intended file is refused; the task's files: {}",
                    listed()
                ));
            }
        }
        for g in &self.show {
            if !matches(g, &given_only) {
                problems.push(format!("show = [\"{g}\"] matches no file in the task; the task's files: {}", listed()));
            }
        }
        for f in solution.iter().filter(|f| !self.may_edit(f)) {
            problems.push(format!(
                "solution/{} is a file the model may not write (not in edit = {:?}): the model cannot make \
                 this change; add it to edit or remove it from solution/",
                f.display(),
                self.edit
            ));
        }
        problems
    }

    /// Whether `relative` is shown to the model read-only.
    pub fn is_shown(&self, relative: &Path) -> bool {
        self.show_set.is_match(relative)
    }
}

/// The tasks under `dir`: `dir` itself if it has a `task.toml`, else every
/// direct subdirectory that has one, sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<Task>, TaskError> {
    if dir.join("task.toml").is_file() {
        return Ok(vec![Task::load(dir)?]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| TaskError::Read { path: dir.to_path_buf(), source })?;
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("task.toml").is_file()).collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(TaskError::Invalid {
            path: dir.to_path_buf(),
            message: "has no task.toml, and no subdirectory has one; point at a task or a folder of tasks".into(),
        });
    }
    dirs.iter().map(|d| Task::load(d)).collect()
}
