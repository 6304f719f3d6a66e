//! A plan: which tasks (by the hash of their files), which models (their
//! configuration without keys) and which loop options; its key, its rows in
//! the store, and which of its runs are still to play (resume).
//!
//! ```
//! use loopvel_harness::plan::plan_key;
//! let key = plan_key(&["a1b2".into()], &[r#"{"name":"fast"}"#.into()], r#"{"max_turns":15}"#);
//! assert_eq!(key.len(), 16);
//! assert_eq!(key, plan_key(&["a1b2".into()], &[r#"{"name":"fast"}"#.into()], r#"{"max_turns":15}"#));
//! ```

use std::collections::HashSet;
use std::path::Path;

use loopvel_store::{Store, StoreError};

use crate::design::LoopDesign;
use crate::run::{Clock, History, RunOptions};
use crate::task::Task;

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions and
/// machines, so a plan's key (and resuming it) survives an upgrade.
/// Hand-rolled: five lines, and no crate offers just this.
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A hash of every file of a task (paths and contents, sorted): a task's
/// identity in a plan, so changed files make another plan, and a replay
/// refuses files that are not the recorded ones.
///
/// Only regular files count, as only they are copied into a workspace: a
/// symbolic link is not followed (a loop of them, or one to `/`, would walk
/// forever) and a FIFO or device is not read (it could block or never end).
/// Each file is read in blocks, so a big one is never held whole.
pub fn task_hash(task: &Task) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, std::path::PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let Ok(kind) = e.file_type() else { continue };
            let p = e.path();
            if kind.is_dir() {
                walk(&p, root, out);
            } else if kind.is_file() {
                out.push((p.strip_prefix(root).unwrap_or(&p).display().to_string(), p));
            }
        }
    }
    let mut files = Vec::new();
    walk(&task.dir, &task.dir, &mut files);
    files.sort();
    let mut h = FNV_OFFSET;
    let mut block = vec![0u8; 64 * 1024];
    for (path, full) in files {
        // O_NONBLOCK: a file swapped for a FIFO since the walk cannot block the open.
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(mut f) =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&full)
        else {
            continue;
        };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        h = fnv1a(path.as_bytes(), h);
        while let Ok(n) = f.read(&mut block) {
            if n == 0 {
                break;
            }
            h = fnv1a(&block[..n], h);
        }
    }
    format!("{h:016x}")
}

/// A plan's key from its tasks' hashes, its models' configurations (JSON,
/// without keys) and its options (JSON). It leaves out the number of runs:
/// the same plan with a larger `--runs` keeps what is done and adds the rest.
pub fn plan_key(task_hashes: &[String], model_json: &[String], options_json: &str) -> String {
    let mut key = FNV_OFFSET;
    for part in task_hashes.iter().chain(model_json).map(String::as_str).chain(std::iter::once(options_json)) {
        key = fnv1a(part.as_bytes(), key);
    }
    format!("{key:016x}")
}

/// The key of a replay's plan in the destination: one per source database,
/// source plan and model name (with or without what-ifs).
pub fn replay_plan_key(source_db: &str, source_plan: i64, model_name: &str) -> String {
    let mut h = fnv1a(b"replay", FNV_OFFSET);
    h = fnv1a(source_db.as_bytes(), h);
    h = fnv1a(&source_plan.to_le_bytes(), h);
    format!("{:016x}", fnv1a(model_name.as_bytes(), h))
}

/// The loop options a plan was recorded with, as stored (`RunOptions`
/// without what is not part of a plan: the sandbox, the clock).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RecordedOptions {
    /// Most turns.
    pub max_turns: u32,
    /// Wall-time budget, s.
    #[serde(default)]
    pub max_wall_s: Option<f64>,
    /// Cost budget, USD.
    #[serde(default)]
    pub max_usd: Option<f64>,
    /// What the model saw of earlier turns.
    pub history: History,
    /// Bytes of test output fed back per turn.
    pub feedback_bytes: usize,
    /// The loop design (absent in plans from before designs: the default).
    #[serde(flatten)]
    pub design: LoopDesign,
}

impl RecordedOptions {
    /// Read a plan's stored options. Plans recorded before the key left out
    /// `--runs` stored `[options, runs]`; both read.
    pub fn parse(json: &str) -> Option<RecordedOptions> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Plain(RecordedOptions),
            WithRuns(RecordedOptions, #[allow(dead_code)] serde_json::Value),
        }
        match serde_json::from_str::<Stored>(json).ok()? {
            Stored::Plain(o) | Stored::WithRuns(o, _) => Some(o),
        }
    }

    /// These options with the arm a model variant's configuration records
    /// (its `"arm"` key, written by `run --arm`): the arm's design and history
    /// replace the plan's. Unchanged for a model without one.
    pub fn with_arm_of(mut self, model_json: &str) -> RecordedOptions {
        let arm = serde_json::from_str::<serde_json::Value>(model_json).ok().and_then(|v| v.get("arm").cloned());
        if let Some(arm) = arm {
            if let Ok(design) = serde_json::from_value::<LoopDesign>(arm.clone()) {
                self.design = design;
            }
            if let Some(h) = arm.get("history").and_then(|h| h.as_str()).and_then(|h| History::parse(h).ok()) {
                self.history = h;
            }
        }
        self
    }

    /// The options to play a run with again, in `sandbox` on `clock`.
    pub fn into_run_options(self, sandbox: std::sync::Arc<loopvel_sandbox::Sandbox>, clock: Clock) -> RunOptions {
        RunOptions {
            max_turns: self.max_turns,
            max_wall_s: self.max_wall_s,
            max_usd: self.max_usd,
            history: self.history,
            feedback_bytes: self.feedback_bytes,
            design: self.design,
            sandbox,
            clock,
        }
    }
}

/// A plan's rows in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The plan's id.
    pub plan: i64,
    /// Each task's id, in the order given.
    pub task_ids: Vec<i64>,
    /// Each model's id, in the order given.
    pub model_ids: Vec<i64>,
}

/// Record a plan (or find it, by key) with its tasks (and the folder each
/// is in, so `replay` finds their files) and models.
pub fn register(
    store: &Store,
    key: &str,
    command: &str,
    options_json: &str,
    tasks: &[(&Task, &str)],
    models: &[(&str, &str)],
) -> Result<Registered, StoreError> {
    let plan = store.plan(key, command, options_json)?;
    let mut task_ids = Vec::new();
    for (t, hash) in tasks {
        let id = store.task(&t.name, hash, &t.prompt, &t.test)?;
        // Absolute, so `replay` finds the files from any working directory.
        let dir = std::fs::canonicalize(&t.dir).unwrap_or_else(|_| t.dir.clone());
        store.set_task_dir(id, &dir.display().to_string())?;
        task_ids.push(id);
    }
    let mut model_ids = Vec::new();
    for (name, json) in models {
        model_ids.push(store.model(name, json)?);
    }
    Ok(Registered { plan, task_ids, model_ids })
}

/// One run of a plan still to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRun {
    /// Index of its task in the plan's tasks.
    pub task: usize,
    /// Index of its model in the plan's models.
    pub model: usize,
    /// Replicate, from 0.
    pub replicate: u32,
    /// The task's id in the store.
    pub task_id: i64,
    /// The model's id in the store.
    pub model_id: i64,
}

/// `runs` in an order fixed by the plan's `key` that mixes tasks, models and
/// replicates: a permutation by hash (FNV-1a of key, task, model, replicate),
/// so the same plan shuffles the same way on every resume and machine.
pub fn shuffled(mut runs: Vec<PendingRun>, key: &str) -> Vec<PendingRun> {
    runs.sort_by_cached_key(|r| {
        let h = fnv1a(key.as_bytes(), FNV_OFFSET);
        let h = fnv1a(&r.task_id.to_le_bytes(), h);
        let h = fnv1a(&r.model_id.to_le_bytes(), h);
        fnv1a(&r.replicate.to_le_bytes(), h)
    });
    runs
}

/// The plan's runs not yet finished, tasks × models × `runs` replicates in
/// that order; with `retry_errors`, runs that ended in an error count as not
/// finished. Also returns how many are finished.
pub fn pending(
    store: &Store,
    plan: &Registered,
    runs: u32,
    retry_errors: bool,
) -> Result<(Vec<PendingRun>, usize), StoreError> {
    let done: HashSet<(i64, i64, u32)> = store.finished_runs(plan.plan, retry_errors)?;
    let mut out = Vec::new();
    let mut finished = 0;
    for (task, &task_id) in plan.task_ids.iter().enumerate() {
        for (model, &model_id) in plan.model_ids.iter().enumerate() {
            for replicate in 0..runs {
                if done.contains(&(task_id, model_id, replicate)) {
                    finished += 1;
                } else {
                    out.push(PendingRun { task, model, replicate, task_id, model_id });
                }
            }
        }
    }
    Ok((out, finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_fixed_permutation_that_mixes_models_on_a_task() {
        let runs: Vec<PendingRun> = (0..4)
            .flat_map(|t| {
                (0..3).flat_map(move |m| {
                    (0..2).map(move |r| PendingRun {
                        task: t,
                        model: m,
                        replicate: r,
                        task_id: t as i64 + 1,
                        model_id: m as i64 + 1,
                    })
                })
            })
            .collect();
        let a = shuffled(runs.clone(), "plan-key");
        assert_eq!(a, shuffled(runs.clone(), "plan-key"), "the same plan, the same order");
        let mut sorted = a.clone();
        sorted.sort_by_key(|r| (r.task, r.model, r.replicate));
        assert_eq!(sorted, runs, "a permutation");
        // On some task, the first run played is not the first model's.
        let first_on_task = |t: usize| a.iter().find(|r| r.task == t).map(|r| r.model);
        assert!((0..4).any(|t| first_on_task(t) != Some(0)), "{a:?}");
        assert_ne!(a, shuffled(runs, "another plan"));
    }

    #[test]
    fn a_task_hash_reads_regular_files_only_and_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("sub")).unwrap();
        std::fs::write(t.join("task.toml"), "prompt = \"p\"\nedit = [\"a.py\"]\ntest = \"true\"\nreport = \"exit\"\n")
            .unwrap();
        std::fs::write(t.join("a.py"), "x = 1\n").unwrap();
        std::fs::write(t.join("sub/b.txt"), "b\n").unwrap();
        let task = Task::load(&t).unwrap();
        let before = task_hash(&task);
        // A loop of links and a FIFO (a database can name such a folder): ignored, and no hang.
        std::os::unix::fs::symlink(".", t.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink("/", t.join("root")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(t.join("pipe")).status().unwrap().success());
        assert_eq!(task_hash(&task), before);
        std::fs::write(t.join("a.py"), "x = 2\n").unwrap();
        assert_ne!(task_hash(&task), before, "a changed file changes the hash");
    }

    #[test]
    fn recorded_options_read_in_both_stored_shapes() {
        let plain = r#"{"max_turns":5,"max_wall_s":null,"max_usd":0.5,"history":"last","feedback_bytes":8000}"#;
        let o = RecordedOptions::parse(plain).unwrap();
        assert_eq!((o.max_turns, o.max_usd, o.history, o.feedback_bytes), (5, Some(0.5), History::Last, 8000));
        let old = format!("[{plain}, 3]");
        assert_eq!(RecordedOptions::parse(&old), Some(o));
        assert_eq!(RecordedOptions::parse("replay"), None);
    }

    #[test]
    fn the_key_is_stable_across_versions() {
        // A plan's key must not change with an upgrade: resuming depends on it.
        assert_eq!(fnv1a(b"", FNV_OFFSET), FNV_OFFSET);
        assert_eq!(format!("{:016x}", fnv1a(b"a", FNV_OFFSET)), "af63dc4c8601ec8c");
        assert_ne!(plan_key(&["a".into()], &[], "{}"), plan_key(&["b".into()], &[], "{}"));
        assert_ne!(replay_plan_key("x.db", 1, "m"), replay_plan_key("x.db", 2, "m"));
    }
}
