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
    edit_set: GlobSet,
    show_set: GlobSet,
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
            (None, Some(f)) => std::fs::read_to_string(dir.join(&f)).map_err(|e| {
                invalid(format!("prompt_file = \"{f}\" cannot be read ({e}); give a file in the task directory"))
            })?,
            (Some(_), Some(_)) => return Err(invalid("give either prompt or prompt_file, not both".into())),
            (None, None) => {
                return Err(invalid("prompt is missing; add prompt = \"…\" or prompt_file = \"PROMPT.md\"".into()))
            }
        };
        if t.edit.is_empty() {
            return Err(invalid("edit = [] names no file; list the files (globs) the model may change".into()));
        }
        if !(t.test_timeout_s.is_finite() && t.test_timeout_s > 0.0) {
            return Err(invalid(format!("test_timeout_s = {} must be a number of seconds > 0", t.test_timeout_s)));
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
            env: t.env.into_iter().collect(),
            read: t.read,
            limits: t.limits,
        })
    }

    /// Whether the model may write `relative` (a path relative to the workspace root).
    pub fn may_edit(&self, relative: &Path) -> bool {
        self.edit_set.is_match(relative)
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
