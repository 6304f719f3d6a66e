//! A task's files in a fresh temporary directory, and the only code that
//! writes a file a model named.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};

use crate::edits::{replace_once, Edit, EditOp};
use crate::task::Task;

/// Why an edit was not applied. Recorded with the turn; never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The path is absolute.
    #[error("{0}: absolute paths are refused")]
    Absolute(String),
    /// The path climbs out with `..`.
    #[error("{0}: paths with `..` are refused")]
    ParentDir(String),
    /// The path is not among the task's `edit` globs.
    #[error("{0}: not an editable file of this task")]
    NotEditable(String),
    /// The path runs through a symbolic link.
    #[error("{0}: paths through symbolic links are refused")]
    Symlink(String),
    /// The path is there but is not a regular file (a FIFO, a socket, a device).
    #[error("{0}: not a regular file (model-run tests may have made it); refused")]
    NotRegular(String),
    /// The SEARCH text is not in the file.
    #[error("{0}: the SEARCH text is not in the file")]
    SearchNotFound(String),
    /// The file to search in does not exist.
    #[error("{0}: no such file to search in")]
    NoSuchFile(String),
    /// Writing failed.
    #[error("{0}: cannot write: {1}")]
    Io(String, String),
}

/// Largest file shown to a model, bytes: a source file of a task is far
/// smaller, and a file model-run tests grew (tens of MB, seen) would
/// otherwise be sent whole in every later prompt and stored with it.
pub const MAX_SHOWN_BYTES: u64 = 256 * 1024;

/// The editable files' exact contents by path ([`Workspace::snapshot`]).
pub type Snapshot = std::collections::BTreeMap<String, Vec<u8>>;

/// A task copied into a temporary directory (deleted on drop).
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    task: Task,
}

fn copy_tree(from: &Path, to: &Path, skip_top: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if skip_top.iter().any(|s| name == *s) {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, &[])?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
        // Symbolic links in a task are not copied: a workspace holds plain files only.
    }
    Ok(())
}

/// The plain files under `dir`, relative to `root`, sorted, without build
/// output and hidden folders.
pub(crate) fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(kind) = e.file_type() else { continue };
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Build output and hidden folders are never task files.
        if kind.is_dir() && (name == "target" || name == "__pycache__" || name.starts_with('.')) {
            continue;
        }
        if kind.is_dir() {
            files_under(root, &e.path(), out);
        } else if kind.is_file() {
            if let Ok(rel) = e.path().strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
}

/// Workspaces of this process that exist now: what [`remove_live`] removes
/// when a signal ends the process before their owners can drop them.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// The start of every workspace folder's name; the process id follows, so a
/// later loopvel can tell the leftovers of a killed one ([`sweep_stale`]).
const PREFIX: &str = "loopvel-ws-";

/// Remove every workspace of this process now. For the last moment of a
/// process ended by a signal, when the threads that own them will not run again.
pub fn remove_live() -> usize {
    let dirs = LIVE.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    dirs.iter().filter(|d| std::fs::remove_dir_all(d).is_ok()).count()
}

/// Remove workspaces that a loopvel process killed with SIGKILL left in the
/// temporary folder (`$TMPDIR`): those whose process is gone. Returns how many.
pub fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return 0 };
    let mut removed = 0;
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()?.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && e.file_type().is_ok_and(|k| k.is_dir()) && std::fs::remove_dir_all(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|d| d != self.dir.path());
        }
    }
}

impl Workspace {
    /// Copy `task` (all but `task.toml` and `solution/`) into a new temporary directory.
    pub fn create(task: &Task) -> std::io::Result<Workspace> {
        let dir = tempfile::Builder::new().prefix(&format!("{PREFIX}{}-", std::process::id())).tempdir()?;
        if let Ok(mut live) = LIVE.lock() {
            live.push(dir.path().to_path_buf());
        }
        let ws = Workspace { dir, task: task.clone() };
        copy_tree(&task.dir, ws.root(), &["task.toml", "solution"])?;
        Ok(ws)
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Copy the task's `solution/` files over the workspace (for `tasks check`).
    pub fn apply_solution(&self) -> std::io::Result<bool> {
        let solution = self.task.dir.join("solution");
        if !solution.is_dir() {
            return Ok(false);
        }
        copy_tree(&solution, self.root(), &[])?;
        Ok(true)
    }

    /// The safe, normalised form of a path the model wrote, or why it is refused.
    pub fn check_path(&self, raw: &str) -> Result<PathBuf, Refusal> {
        let path = Path::new(raw);
        if path.is_absolute() || raw.starts_with('/') || raw.starts_with('\\') || raw.starts_with('~') {
            return Err(Refusal::Absolute(raw.into()));
        }
        let mut clean = PathBuf::new();
        for c in path.components() {
            match c {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => return Err(Refusal::ParentDir(raw.into())),
                Component::RootDir | Component::Prefix(_) => return Err(Refusal::Absolute(raw.into())),
            }
        }
        if clean.as_os_str().is_empty() || !self.task.may_edit(&clean) {
            return Err(Refusal::NotEditable(raw.into()));
        }
        // No component that exists may be a symbolic link (model-run tests could have made one).
        let mut at = self.root().to_path_buf();
        let parts = clean.components().count();
        for (i, part) in clean.components().enumerate() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Err(Refusal::Symlink(raw.into())),
                // A FIFO in the file's place would block the harness on open.
                Ok(m) if i + 1 == parts && !m.file_type().is_file() => return Err(Refusal::NotRegular(raw.into())),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(clean)
    }

    /// Apply one edit; returns the path written.
    pub fn apply(&self, edit: &Edit) -> Result<PathBuf, Refusal> {
        let rel = self.check_path(&edit.path)?;
        let full = self.root().join(&rel);
        let io = |e: std::io::Error| Refusal::Io(edit.path.clone(), e.to_string());
        let content = match &edit.op {
            EditOp::Whole { content } => content.clone(),
            EditOp::Replace { search, replace } => {
                let current = match std::fs::read_to_string(&full) {
                    Ok(c) => c,
                    Err(_) if search.trim().is_empty() => String::new(),
                    Err(_) => return Err(Refusal::NoSuchFile(edit.path.clone())),
                };
                if search.trim().is_empty() && current.is_empty() {
                    replace.clone()
                } else {
                    replace_once(&current, search, replace).ok_or_else(|| Refusal::SearchNotFound(edit.path.clone()))?
                }
            }
        };
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&full, content).map_err(io)?;
        Ok(rel)
    }

    /// The editable files and their contents (a snapshot a restart can go back to).
    pub fn editable_files(&self) -> std::collections::BTreeMap<String, String> {
        self.visible_files().into_iter().filter(|(_, _, e)| *e).map(|(p, c, _)| (p.display().to_string(), c)).collect()
    }

    /// Put the editable files back to `snapshot` (from [`Workspace::editable_files`]):
    /// each written through [`Workspace::apply`]'s checks, and an editable file
    /// made since (not in the snapshot) removed.
    pub fn restore(&self, snapshot: &std::collections::BTreeMap<String, String>) -> Result<(), Refusal> {
        for path in self.editable_files().keys().filter(|p| !snapshot.contains_key(*p)) {
            let rel = self.check_path(path)?;
            std::fs::remove_file(self.root().join(rel)).map_err(|e| Refusal::Io(path.clone(), e.to_string()))?;
        }
        for (path, content) in snapshot {
            self.apply(&Edit { path: path.clone(), op: EditOp::Whole { content: content.clone() } })?;
        }
        Ok(())
    }

    /// Every editable file's exact bytes, however large and whether text or
    /// not: what a restart goes back to, and what a best-of-k candidate's copy
    /// starts from and hands back ([`Workspace::editable_files`] holds a
    /// note in place of a file too big to show, which must never be written back).
    /// Bounded by the sandbox's file-size limit on what tests can write.
    pub fn snapshot(&self) -> Snapshot {
        let mut paths = Vec::new();
        files_under(self.root(), self.root(), &mut paths);
        paths
            .into_iter()
            .filter(|p| self.task.may_edit(p))
            .filter_map(|p| Some((p.display().to_string(), std::fs::read(self.root().join(&p)).ok()?)))
            .collect()
    }

    /// Put the editable files back to `snapshot` (from [`Workspace::snapshot`]):
    /// each path checked as an edit's is, and an editable file made since removed.
    pub fn restore_snapshot(&self, snapshot: &Snapshot) -> Result<(), Refusal> {
        for (path, _) in self.snapshot().iter().filter(|(p, _)| !snapshot.contains_key(*p)) {
            let rel = self.check_path(path)?;
            std::fs::remove_file(self.root().join(rel)).map_err(|e| Refusal::Io(path.clone(), e.to_string()))?;
        }
        for (path, bytes) in snapshot {
            let rel = self.check_path(path)?;
            let full = self.root().join(rel);
            let io = |e: std::io::Error| Refusal::Io(path.clone(), e.to_string());
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&full, bytes).map_err(io)?;
        }
        Ok(())
    }

    /// Files shown to the model: `(path, content, editable)`, editable first.
    pub fn visible_files(&self) -> Vec<(PathBuf, String, bool)> {
        let mut all = Vec::new();
        files_under(self.root(), self.root(), &mut all);
        let mut out: Vec<(PathBuf, String, bool)> = all
            .into_iter()
            .filter_map(|p| {
                let editable = self.task.may_edit(&p);
                if !(editable || self.task.is_shown(&p)) {
                    return None;
                }
                let full = self.root().join(&p);
                // Model-run tests can grow a file without bound; a prompt must not follow.
                let size = std::fs::metadata(&full).ok()?.len();
                if size > MAX_SHOWN_BYTES {
                    let note = format!(
                        "[loopvel: this file is {size} bytes, over the {MAX_SHOWN_BYTES} bytes a prompt shows; not shown]\n"
                    );
                    return Some((p, note, editable));
                }
                let content = std::fs::read_to_string(full).ok()?;
                Some((p, content, editable))
            })
            .collect();
        out.sort_by_key(|(p, _, editable)| (!*editable, p.clone()));
        out
    }

    /// A hash of the editable files' names and contents: equal hashes mean the
    /// model has brought the code back to a state already tested.
    pub fn state_hash(&self) -> u64 {
        // Only the editable files: reading the read-only ones too (as `visible_files`
        // does) would be wasted I/O on every turn.
        let mut paths = Vec::new();
        files_under(self.root(), self.root(), &mut paths);
        paths.retain(|p| self.task.may_edit(p));
        paths.sort();
        let mut h = DefaultHasher::new();
        for p in paths {
            if let Ok(content) = std::fs::read_to_string(self.root().join(&p)) {
                p.hash(&mut h);
                content.hash(&mut h);
            }
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edits::parse_edits;

    fn task_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("task.toml"),
            "prompt = \"fix\"\nedit = [\"a.py\", \"pkg/*.py\"]\nshow = [\"test_a.py\"]\ntest = \"true\"\n",
        )
        .unwrap();
        std::fs::write(d.path().join("a.py"), "x = 1\n").unwrap();
        std::fs::write(d.path().join("test_a.py"), "def test(): pass\n").unwrap();
        std::fs::write(d.path().join("secret.txt"), "hidden\n").unwrap();
        std::fs::create_dir(d.path().join("solution")).unwrap();
        std::fs::write(d.path().join("solution/a.py"), "x = 2\n").unwrap();
        d
    }

    #[test]
    fn a_snapshot_carries_files_too_big_to_show_and_bytes_that_are_not_text() {
        let d = task_dir();
        let task = Task::load(d.path()).unwrap();
        let ws = Workspace::create(&task).unwrap();
        let big = "y = 0\n".repeat(MAX_SHOWN_BYTES as usize / 6 + 10);
        std::fs::write(ws.root().join("a.py"), &big).unwrap();
        std::fs::create_dir_all(ws.root().join("pkg")).unwrap();
        std::fs::write(ws.root().join("pkg/b.py"), [0xff, 0xfe, 0x00]).unwrap();
        assert!(ws.editable_files()["a.py"].starts_with("[loopvel: this file is"), "shown as a note");
        let snap = ws.snapshot();
        let other = Workspace::create(&task).unwrap();
        std::fs::create_dir_all(other.root().join("pkg")).unwrap();
        std::fs::write(other.root().join("pkg/made_since.py"), "z = 1\n").unwrap();
        other.restore_snapshot(&snap).unwrap();
        assert_eq!(std::fs::read_to_string(other.root().join("a.py")).unwrap(), big, "the real contents, not the note");
        assert_eq!(std::fs::read(other.root().join("pkg/b.py")).unwrap(), [0xff, 0xfe, 0x00]);
        assert!(!other.root().join("pkg/made_since.py").exists(), "an editable file made since is removed");
        assert_eq!(std::fs::read_to_string(other.root().join("secret.txt")).unwrap(), "hidden\n");
    }

    #[test]
    fn copies_the_task_without_solution_and_shows_only_listed_files() {
        let d = task_dir();
        let ws = Workspace::create(&Task::load(d.path()).unwrap()).unwrap();
        assert!(ws.root().join("a.py").exists());
        assert!(!ws.root().join("solution").exists());
        assert!(!ws.root().join("task.toml").exists());
        let shown: Vec<String> = ws.visible_files().iter().map(|(p, _, _)| p.display().to_string()).collect();
        assert_eq!(shown, vec!["a.py", "test_a.py"]);
        assert!(ws.apply_solution().unwrap());
        assert_eq!(std::fs::read_to_string(ws.root().join("a.py")).unwrap(), "x = 2\n");
    }

    #[test]
    fn hostile_edits_change_nothing_outside_the_workspace() {
        let d = task_dir();
        let ws = Workspace::create(&Task::load(d.path()).unwrap()).unwrap();
        let outside = ws.root().parent().unwrap().join("outside.txt");
        let _ = std::fs::remove_file(&outside);
        let reply =
            "../outside.txt\n```\npwned\n```\n/tmp/loopvel-abs.txt\n```\npwned\n```\nsecret.txt\n```\npwned\n```\n";
        let parsed = parse_edits(reply);
        let results: Vec<_> = parsed.edits.iter().map(|e| ws.apply(e)).collect();
        assert!(matches!(results[0], Err(Refusal::ParentDir(_))));
        assert!(matches!(results[1], Err(Refusal::Absolute(_))));
        assert!(matches!(results[2], Err(Refusal::NotEditable(_))));
        assert!(!outside.exists());
        assert!(!Path::new("/tmp/loopvel-abs.txt").exists());
        assert_eq!(std::fs::read_to_string(ws.root().join("secret.txt")).unwrap(), "hidden\n");
    }

    #[test]
    fn symlinks_are_refused_even_when_tests_made_them() {
        let d = task_dir();
        let ws = Workspace::create(&Task::load(d.path()).unwrap()).unwrap();
        let target = tempfile::tempdir().unwrap();
        // As if model-written test code had replaced the editable file and a directory by links.
        std::fs::remove_file(ws.root().join("a.py")).unwrap();
        std::os::unix::fs::symlink(target.path().join("victim.py"), ws.root().join("a.py")).unwrap();
        std::os::unix::fs::symlink(target.path(), ws.root().join("pkg")).unwrap();
        for path in ["a.py", "pkg/mod.py"] {
            let edit = Edit { path: path.into(), op: EditOp::Whole { content: "pwned".into() } };
            assert!(matches!(ws.apply(&edit), Err(Refusal::Symlink(_))), "{path}");
        }
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_fifo_in_place_of_a_file_is_refused_without_blocking() {
        let d = task_dir();
        let ws = Workspace::create(&Task::load(d.path()).unwrap()).unwrap();
        // As if model-written test code had replaced the editable file by a FIFO.
        std::fs::remove_file(ws.root().join("a.py")).unwrap();
        let fifo = std::ffi::CString::new(ws.root().join("a.py").into_os_string().into_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        for op in [
            EditOp::Whole { content: "x = 2\n".into() },
            EditOp::Replace { search: "x = 1\n".into(), replace: "x = 2\n".into() },
        ] {
            let edit = Edit { path: "a.py".into(), op };
            assert!(matches!(ws.apply(&edit), Err(Refusal::NotRegular(_))));
        }
        assert!(ws.visible_files().iter().all(|(p, _, _)| p != Path::new("a.py")));
    }

    #[test]
    fn a_file_grown_past_the_cap_is_not_shown() {
        let d = task_dir();
        let ws = Workspace::create(&Task::load(d.path()).unwrap()).unwrap();
        std::fs::write(ws.root().join("a.py"), "x".repeat(MAX_SHOWN_BYTES as usize + 1)).unwrap();
        let shown = ws.visible_files();
        let (_, content, _) = shown.iter().find(|(p, _, _)| p == Path::new("a.py")).unwrap();
        assert!(content.starts_with("[loopvel: this file is") && content.len() < 200, "{}", &content[..100]);
    }

    #[test]
    fn search_replace_and_state_hash() {
        let d = task_dir();
        let ws = Workspace::create(&Task::load(d.path()).unwrap()).unwrap();
        let before = ws.state_hash();
        let e =
            Edit { path: "./a.py".into(), op: EditOp::Replace { search: "x = 1\n".into(), replace: "x = 3\n".into() } };
        assert_eq!(ws.apply(&e), Ok(PathBuf::from("a.py")));
        assert_ne!(ws.state_hash(), before);
        let back = Edit { path: "a.py".into(), op: EditOp::Whole { content: "x = 1\n".into() } };
        ws.apply(&back).unwrap();
        assert_eq!(ws.state_hash(), before);
        let missing =
            Edit { path: "a.py".into(), op: EditOp::Replace { search: "nope\n".into(), replace: "y\n".into() } };
        assert!(matches!(ws.apply(&missing), Err(Refusal::SearchNotFound(_))));
        let new_file = Edit { path: "pkg/new.py".into(), op: EditOp::Whole { content: "z = 1\n".into() } };
        assert_eq!(ws.apply(&new_file), Ok(PathBuf::from("pkg/new.py")));
    }
}
