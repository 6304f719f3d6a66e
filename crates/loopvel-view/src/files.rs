//! What each turn left in the editable files, rebuilt by playing the
//! recorded replies again into a fresh copy of the task.
//!
//! Why rebuild rather than store: every turn's reply is already in the
//! database, and the one function that turns a reply into file writes
//! ([`loopvel_harness::run::apply_reply`]) is deterministic given the files
//! before it, so replaying it gives the same files the run had, for every
//! database ever recorded (the shipped experiment included), at no cost to a
//! run or to `report` (the 100,000-turn report reads nothing more). The cost:
//! the task's files must be at hand with the hash the run recorded (`view`
//! finds them where the database says they were, under `--tasks`, or in
//! `tasks/examples`), and what the *tests* wrote into an editable file while
//! they ran is not seen (the sandbox lets tests write their workspace; the
//! loop grades the files after the tests, and so would a stored copy). Each
//! rebuilt turn's count of applied edits is checked against the record, and
//! a mismatch is said on the page instead of showing a diff that might lie:
//! on the shipped experiment, 5 of 180 runs, recorded before the edit parser
//! stopped taking a block fenced as another file (```` ```cargo.toml ````)
//! as the only editable file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use loopvel_harness::plan::task_hash;
use loopvel_harness::run::apply_reply;
use loopvel_harness::task::{discover, Task};
use loopvel_harness::workspace::Workspace;

/// The editable files (path → content) before the first turn and after each turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileStates {
    /// As the task gives them.
    pub before: BTreeMap<String, String>,
    /// What turn n began from, at index n − 1: the turn before's files, or
    /// those a restart reset them to.
    pub start: Vec<BTreeMap<String, String>>,
    /// After turn n, at index n − 1 (only turns whose reply was recorded).
    pub after: Vec<BTreeMap<String, String>>,
}

/// Where to look for a run's task.
#[derive(Debug, Clone, Default)]
pub struct TaskSearch {
    /// Folders given with `--tasks` (a task, or a folder of tasks), first.
    pub dirs: Vec<PathBuf>,
}

impl TaskSearch {
    /// The task `name` whose files hash to `files_hash`: from `recorded_dir`
    /// (where the run found it), then each `--tasks` folder, then `tasks/examples`.
    pub fn find(&self, name: &str, files_hash: &str, recorded_dir: Option<&str>) -> Result<Task, String> {
        let mut looked: Vec<String> = Vec::new();
        let candidates = recorded_dir
            .map(PathBuf::from)
            .into_iter()
            .chain(self.dirs.iter().cloned())
            .chain(std::iter::once(PathBuf::from("tasks/examples")));
        let mut changed = false;
        for dir in candidates {
            looked.push(dir.display().to_string());
            let Ok(tasks) = discover(&dir) else { continue };
            for t in tasks.into_iter().filter(|t| t.name == name) {
                if task_hash(&t) == files_hash {
                    return Ok(t);
                }
                changed = true;
            }
        }
        let why = if changed {
            format!("task {name} was found, but its files have changed since the run (their hash differs)")
        } else {
            format!("task {name} was not found")
        };
        Err(format!(
            "{why}; looked in {}. Diffs need the task's files as they were: give --tasks DIR",
            looked.join(", ")
        ))
    }
}

/// Plays `replies` (each with the count of edits the run applied) into a
/// copy of `task`. `Err` says where the replay disagreed with the record.
///
/// A turn whose events hold a restart ([`loopvel_harness::design::restart_target`])
/// is followed by the reset it made, as the loop did: the next turn's diff is
/// against the files it was reset to.
pub fn rebuild(task: &Task, replies: &[(String, u32, Vec<String>)]) -> Result<FileStates, String> {
    let ws =
        Workspace::create(task).map_err(|e| format!("cannot copy task {} to rebuild its files: {e}", task.name))?;
    let before = ws.editable_files();
    let mut after = Vec::with_capacity(replies.len());
    let mut start = Vec::with_capacity(replies.len());
    let mut reset_to: Option<std::collections::BTreeMap<String, String>> = None;
    for (i, (reply, recorded_applied, events)) in replies.iter().enumerate() {
        if let Some(files) = reset_to.take() {
            ws.restore(&files).map_err(|e| format!("cannot replay the restart after turn {i}: {e}"))?;
        }
        start.push(ws.editable_files());
        let done = apply_reply(&ws, reply);
        if done.applied != *recorded_applied {
            return Err(format!(
                "replaying turn {}'s reply applied {} edits where the run applied {}: the task's files or loopvel's \
                 edit rules changed since the run, so no diff is shown",
                i + 1,
                done.applied,
                recorded_applied
            ));
        }
        after.push(ws.editable_files());
        if let Some(target) = events.iter().find_map(|e| loopvel_harness::design::restart_target(e)) {
            reset_to = Some(match target {
                Some(n) => after.get((n as usize).saturating_sub(1)).cloned().unwrap_or_else(|| before.clone()),
                None => before.clone(),
            });
        }
    }
    Ok(FileStates { before, start, after })
}
