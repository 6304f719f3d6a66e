//! # loopvel-store: every run and turn, in SQLite, as it happens
//!
//! Brief overview. [`Store`] wraps one SQLite file (WAL mode). A run plan
//! (`plans`) names tasks (`tasks`, with a hash of their files) and models
//! (`models`, configuration without secrets). Each (task, model, replicate)
//! is a row of `runs`; each turn a row of `turns` with the model call
//! (`calls`: request, reply text, timings, tokens, retries) and the test
//! execution (`test_execs`). A turn is written in one transaction, so a killed
//! run loses at most the turn in flight; a run left `running` by a kill is
//! cleared and played again on the next start ([`Store::start_run`]).
//!
//! Architecture invariant: the only code that speaks SQL. Nothing here ever
//! sees an API key: callers pass configurations already stripped of secrets.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use loopvel_record::{Grade, Outcome, Run, RunSummary, Turn};
use rusqlite::{params, Connection, OptionalExtension};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database {path}: {source}")]
    Sql {
        /// The file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// No file at the path.
    #[error("no database at {path}: record runs first with `loopvel run --db {path}`, or check the --db path")]
    Missing {
        /// The path.
        path: String,
    },
    /// The file is SQLite (or not) but has no loopvel schema.
    #[error("{path} is not a loopvel database (no loopvel schema in it); give the file `loopvel run --db` wrote")]
    NotLoopvel {
        /// The path.
        path: String,
    },
    /// The file cannot be opened to claim it.
    #[error("database {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another process is writing runs into the file.
    #[error(
        "database {path} is being written by another loopvel process (a run or replay in progress); wait for it \
         to finish, or give another --db (reading it with report, predict or export is fine meanwhile)"
    )]
    Busy {
        /// The file.
        path: String,
    },
    /// The file was made by a newer loopvel.
    #[error("database {path} has schema version {found}; this loopvel knows up to {known}: upgrade loopvel")]
    TooNew {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
}

/// 1: the first schema. 2: `runs.sandbox`, the level the run's tests ran at.
/// 3: `tasks.dir`, where the task's files were when it last ran (for `replay`).
const SCHEMA_VERSION: i64 = 4;

/// A plan as recorded, with the models and tasks its runs used.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInfo {
    /// Plan id.
    pub id: i64,
    /// The command line that made it.
    pub command: String,
    /// Its loop options (JSON; `[options, runs]` in plans from before the
    /// key left out `--runs`, not JSON at all in some replays).
    pub options_json: String,
    /// When it was made (UTC).
    pub created_at: String,
    /// Finished runs.
    pub finished: usize,
    /// Runs in any state.
    pub runs: usize,
    /// `(name, configuration JSON)` of each model its runs used, by name.
    pub models: Vec<(String, String)>,
    /// `(name, files hash)` of each task its runs used, by name.
    pub tasks: Vec<(String, String)>,
}

/// Finished runs at one sandbox level, of one model in one plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxCount {
    /// The level (`None`: not recorded).
    pub level: Option<String>,
    /// Model name.
    pub model: String,
    /// Plan id.
    pub plan: i64,
    /// Finished runs.
    pub runs: usize,
}

/// One recorded model call.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCall {
    /// The turn it answered.
    pub turn: u32,
    /// The messages sent (JSON).
    pub request_json: String,
    /// The reply text.
    pub reply_text: String,
    /// The completion with its timing (JSON).
    pub detail_json: String,
}

const SCHEMA: &str = "
CREATE TABLE plans (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, command TEXT NOT NULL,
    options_json TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, files_hash TEXT NOT NULL, prompt TEXT NOT NULL,
    test TEXT NOT NULL, dir TEXT, UNIQUE(name, files_hash));
CREATE TABLE models (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, config_json TEXT NOT NULL, UNIQUE(name, config_json));
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, plan_id INTEGER NOT NULL REFERENCES plans(id),
    task_id INTEGER NOT NULL REFERENCES tasks(id), model_id INTEGER NOT NULL REFERENCES models(id),
    replicate INTEGER NOT NULL, status TEXT NOT NULL, outcome TEXT, stop_reason TEXT, turns INTEGER,
    time_to_pass_s REAL, wall_s REAL, model_s REAL, test_s REAL, overhead_s REAL, retry_wait_s REAL,
    input_tokens INTEGER, output_tokens INTEGER, usd REAL, error TEXT, sandbox TEXT,
    started_at TEXT NOT NULL DEFAULT (datetime('now')), finished_at TEXT,
    UNIQUE(plan_id, task_id, model_id, replicate));
CREATE TABLE turns (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, turn INTEGER NOT NULL,
    started_s REAL NOT NULL, ttft_s REAL, gen_s REAL, model_s REAL, output_tokens INTEGER,
    output_tokens_estimated INTEGER, input_tokens INTEGER, tokens_per_s REAL, retry_wait_s REAL,
    edits_applied INTEGER, edits_refused INTEGER, refusals TEXT, test_s REAL, tests_passed INTEGER,
    tests_total INTEGER, score REAL, grade TEXT NOT NULL, overhead_s REAL, wall_s REAL, usd REAL,
    UNIQUE(run_id, turn));
CREATE TABLE calls (
    id INTEGER PRIMARY KEY, turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    request_json TEXT NOT NULL, reply_text TEXT NOT NULL, detail_json TEXT NOT NULL);
CREATE TABLE test_execs (
    id INTEGER PRIMARY KEY, turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    exit_code INTEGER, timed_out INTEGER NOT NULL, passed INTEGER, total INTEGER, duration_s REAL NOT NULL,
    output TEXT NOT NULL);
";

/// Requests that ended without a reply (gave up, refused, out of the wall
/// budget): what they waited and why, so a run that ended there still shows
/// its retries. Added in schema 4; IF NOT EXISTS so a migration can add it.
const FAILED_CALLS: &str = "
CREATE TABLE IF NOT EXISTS failed_calls (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, turn INTEGER NOT NULL,
    error TEXT NOT NULL, attempts INTEGER NOT NULL, retry_wait_s REAL NOT NULL, retries_json TEXT NOT NULL,
    request_json TEXT NOT NULL);";

/// A request that ended without a reply, for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedCall {
    /// The turn it was for, 1-based.
    pub turn: u32,
    /// Why it ended.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// Seconds spent waiting and on failed attempts.
    pub retry_wait_s: f64,
    /// The retries, as JSON.
    pub retries_json: String,
    /// The request, as JSON.
    pub request_json: String,
}

/// The model call of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// The request body as sent, without headers (no key).
    pub request_json: String,
    /// The reply text.
    pub reply_text: String,
    /// Timings, tokens, retries, finish reason, as JSON.
    pub detail_json: String,
}

/// The test execution of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord {
    /// Exit code; `None` when killed.
    pub exit_code: Option<i32>,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Tests passing, if counted.
    pub passed: Option<u32>,
    /// Tests found, if counted.
    pub total: Option<u32>,
    /// Seconds.
    pub duration_s: f64,
    /// Output, trimmed.
    pub output: String,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: String,
    version: i64,
}

/// This process's claim to write runs into a database; released when
/// dropped or when the process ends, however it ends (an flock, which the
/// kernel drops with the descriptor).
#[derive(Debug)]
pub struct WriterClaim(std::fs::File);

impl Drop for WriterClaim {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this struct owns.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Store {
    /// Claim the database for writing runs: one writer at a time. Two `run`
    /// processes on one file would each play the same pending runs and
    /// overwrite each other's turns; the second is refused instead. An flock
    /// on the database file itself, which SQLite's own (fcntl) locks ignore.
    pub fn claim_writer(&self) -> Result<WriterClaim, StoreError> {
        use std::os::fd::AsRawFd;
        let file =
            std::fs::File::open(&self.path).map_err(|source| StoreError::Io { path: self.path.clone(), source })?;
        // SAFETY: flock on a descriptor we own; LOCK_NB never blocks.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            Ok(WriterClaim(file))
        } else {
            Err(StoreError::Busy { path: self.path.clone() })
        }
    }

    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let err = |source| StoreError::Sql { path: shown.clone(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // In WAL mode NORMAL survives a killed process (every commit is in the
        // log); only a power cut can lose the last commits. That is the promise:
        // a killed run loses at most the turn in flight.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: shown, found: version, known: SCHEMA_VERSION });
        }
        if version < 1 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} {FAILED_CALLS} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(err)?;
        } else {
            // Rows recorded before keep NULL: their level, their folder were not recorded.
            let mut steps = String::new();
            if version < 2 {
                steps.push_str("ALTER TABLE runs ADD COLUMN sandbox TEXT;");
            }
            if version < 3 {
                steps.push_str("ALTER TABLE tasks ADD COLUMN dir TEXT;");
            }
            if version < 4 {
                steps.push_str(FAILED_CALLS);
            }
            if !steps.is_empty() {
                conn.execute_batch(&format!("BEGIN; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
                    .map_err(err)?;
            }
        }
        Ok(Store { conn: Mutex::new(conn), path: shown, version: SCHEMA_VERSION })
    }

    /// Open a database that must already exist (reports never create one):
    /// a missing file, or a file that is not a loopvel database, is an error
    /// that says so and what to do.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::Missing { path: shown });
        }
        let err = |source| StoreError::Sql { path: shown.clone(), source };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: shown, found: version, known: SCHEMA_VERSION });
        }
        if version < 1 {
            return Err(StoreError::NotLoopvel { path: shown });
        }
        // Read as it is: a report never migrates (the shipped databases stay byte-identical).
        Ok(Store { conn: Mutex::new(conn), path: shown, version })
    }

    /// The `runs.sandbox` column, or NULL in a database from before it.
    fn sandbox_column(&self) -> &'static str {
        if self.version >= 2 {
            "r.sandbox"
        } else {
            "NULL"
        }
    }

    /// Every finished run with its turns, in run order.
    pub fn read_runs(&self) -> Result<Vec<Run>, StoreError> {
        let sandbox = self.sandbox_column();
        self.with(|c| {
            let mut runs: Vec<Run> = c
                .prepare(&format!(
                    "SELECT r.id, r.plan_id, t.name, m.name, r.replicate, COALESCE(r.outcome, 'error'),
                            COALESCE(r.stop_reason, 'error'), r.time_to_pass_s, COALESCE(r.wall_s, 0), COALESCE(r.usd, 0),
                            t.files_hash, {sandbox}
                     FROM runs r JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
                     WHERE r.status = 'done' ORDER BY r.id",
                ))?
                .query_map([], |r| {
                    // A name this version does not know reads as an error: censored where it stopped.
                    let outcome: String = r.get(5)?;
                    Ok(Run {
                        run_id: r.get(0)?,
                        plan_id: r.get(1)?,
                        task: r.get(2)?,
                        model: r.get(3)?,
                        replicate: r.get(4)?,
                        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Error),
                        stop_reason: r.get(6)?,
                        time_to_pass_s: r.get(7)?,
                        wall_s: r.get(8)?,
                        usd: r.get(9)?,
                        task_files_hash: r.get(10)?,
                        sandbox: r.get(11)?,
                        turns: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let index: std::collections::HashMap<i64, usize> =
                runs.iter().enumerate().map(|(i, r)| (r.run_id, i)).collect();
            let mut stmt = c.prepare(
                "SELECT u.run_id, u.turn, u.ttft_s, u.tokens_per_s, u.output_tokens, COALESCE(u.model_s, 0),
                        COALESCE(u.test_s, 0), COALESCE(u.overhead_s, 0), COALESCE(u.retry_wait_s, 0),
                        COALESCE(u.wall_s, 0), COALESCE(u.usd, 0), u.score, u.grade, u.started_s,
                        COALESCE(u.output_tokens_estimated, 0), u.input_tokens, COALESCE(u.edits_applied, 0),
                        COALESCE(u.edits_refused, 0), u.refusals, u.tests_passed, u.tests_total
                 FROM turns u JOIN runs r ON r.id = u.run_id WHERE r.status = 'done' ORDER BY u.run_id, u.turn",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let run_id: i64 = r.get(0)?;
                let Some(&i) = index.get(&run_id) else { continue };
                let grade: String = r.get(12)?;
                let refusals: Option<String> = r.get(18)?;
                runs[i].turns.push(Turn {
                    turn: r.get(1)?,
                    ttft_s: r.get(2)?,
                    tokens_per_s: r.get(3)?,
                    output_tokens: r.get::<_, Option<i64>>(4)?.map(|v| v.max(0) as u64),
                    model_s: r.get(5)?,
                    test_s: r.get(6)?,
                    overhead_s: r.get(7)?,
                    retry_wait_s: r.get(8)?,
                    wall_s: r.get(9)?,
                    usd: r.get(10)?,
                    score: r.get(11)?,
                    // Only the harness writes grades; a name it never wrote reads as a FAIL.
                    grade: Grade::parse(&grade).unwrap_or(Grade::Fail),
                    started_s: r.get(13)?,
                    output_tokens_estimated: r.get(14)?,
                    input_tokens: r.get::<_, Option<i64>>(15)?.map(|v| v.max(0) as u64),
                    edits_applied: r.get(16)?,
                    edits_refused: r.get(17)?,
                    refusals: refusals.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
                    tests_passed: r.get(19)?,
                    tests_total: r.get(20)?,
                });
            }
            Ok(runs)
        })
    }

    /// The model calls of one run, in turn order.
    pub fn run_calls(&self, run: i64) -> Result<Vec<StoredCall>, StoreError> {
        self.with(|c| {
            c.prepare(
                "SELECT u.turn, k.request_json, k.reply_text, k.detail_json FROM calls k JOIN turns u ON u.id = k.turn_id
                 WHERE u.run_id = ?1 ORDER BY u.turn",
            )?
            .query_map([run], |r| {
                Ok(StoredCall { turn: r.get(0)?, request_json: r.get(1)?, reply_text: r.get(2)?, detail_json: r.get(3)? })
            })?
            .collect()
        })
    }

    /// A plan's options as recorded (JSON), if the plan exists.
    pub fn plan_options(&self, plan: i64) -> Result<Option<String>, StoreError> {
        self.with(|c| c.query_row("SELECT options_json FROM plans WHERE id = ?1", [plan], |r| r.get(0)).optional())
    }

    /// A model's configuration as recorded (JSON, without secrets): the latest one of that name.
    pub fn model_config(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT config_json FROM models WHERE name = ?1 ORDER BY id DESC LIMIT 1", [name], |r| r.get(0))
                .optional()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| StoreError::Sql { path: self.path.clone(), source })
    }

    /// The plan with this key, created if new.
    pub fn plan(&self, key: &str, command: &str, options_json: &str) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO plans(key, command, options_json) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO NOTHING",
                params![key, command, options_json],
            )?;
            c.query_row("SELECT id FROM plans WHERE key = ?1", [key], |r| r.get(0))
        })
    }

    /// The task row for this name and file hash.
    pub fn task(&self, name: &str, files_hash: &str, prompt: &str, test: &str) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tasks(name, files_hash, prompt, test) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![name, files_hash, prompt, test],
            )?;
            c.query_row("SELECT id FROM tasks WHERE name = ?1 AND files_hash = ?2", params![name, files_hash], |r| {
                r.get(0)
            })
        })
    }

    /// Remember where a task's files are (an absolute folder), so `replay`
    /// finds them without `--tasks`. The latest run's folder wins.
    pub fn set_task_dir(&self, task: i64, dir: &str) -> Result<(), StoreError> {
        self.with(|c| c.execute("UPDATE tasks SET dir = ?2 WHERE id = ?1", params![task, dir]).map(|_| ()))
    }

    /// The folder each task was last run from, keyed by `(name, files hash)`;
    /// empty for a database from before loopvel recorded it.
    pub fn task_dirs(&self) -> Result<HashMap<(String, String), String>, StoreError> {
        if self.version < 3 {
            return Ok(HashMap::new());
        }
        self.with(|c| {
            let mut st = c.prepare("SELECT name, files_hash, dir FROM tasks WHERE dir IS NOT NULL")?;
            let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Every plan in id order, with the models and tasks of its runs.
    pub fn plans(&self) -> Result<Vec<PlanInfo>, StoreError> {
        self.with(|c| {
            let mut plans: Vec<PlanInfo> = c
                .prepare(
                    "SELECT p.id, p.command, p.options_json, p.created_at,
                            (SELECT COUNT(*) FROM runs r WHERE r.plan_id = p.id AND r.status = 'done'),
                            (SELECT COUNT(*) FROM runs r WHERE r.plan_id = p.id)
                     FROM plans p ORDER BY p.id",
                )?
                .query_map([], |r| {
                    Ok(PlanInfo {
                        id: r.get(0)?,
                        command: r.get(1)?,
                        options_json: r.get(2)?,
                        created_at: r.get(3)?,
                        finished: r.get::<_, i64>(4)? as usize,
                        runs: r.get::<_, i64>(5)? as usize,
                        models: Vec::new(),
                        tasks: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            for p in &mut plans {
                p.models = c
                    .prepare(
                        "SELECT DISTINCT m.name, m.config_json FROM runs r JOIN models m ON m.id = r.model_id
                         WHERE r.plan_id = ?1 ORDER BY m.name, m.id",
                    )?
                    .query_map([p.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                p.tasks = c
                    .prepare(
                        "SELECT DISTINCT t.name, t.files_hash FROM runs r JOIN tasks t ON t.id = r.task_id
                         WHERE r.plan_id = ?1 ORDER BY t.name, t.id",
                    )?
                    .query_map([p.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(plans)
        })
    }

    /// The model row for this name and (secret-free) configuration.
    pub fn model(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO models(name, config_json) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![name, config_json],
            )?;
            c.query_row("SELECT id FROM models WHERE name = ?1 AND config_json = ?2", params![name, config_json], |r| {
                r.get(0)
            })
        })
    }

    /// `(task_id, model_id, replicate)` of the plan's finished runs; with
    /// `retry_errors`, without those that ended in an error (to play again).
    pub fn finished_runs(&self, plan: i64, retry_errors: bool) -> Result<HashSet<(i64, i64, u32)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT task_id, model_id, replicate FROM runs WHERE plan_id = ?1 AND status = 'done'
                 AND NOT (?2 AND outcome = 'error')",
            )?;
            let rows = st.query_map(params![plan, retry_errors], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// The errors of the plan's finished runs that ended in one.
    pub fn run_errors(&self, plan: i64) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT COALESCE(error, stop_reason, '') FROM runs WHERE plan_id = ?1 AND status = 'done'
                 AND outcome = 'error' ORDER BY id",
            )?;
            let rows = st.query_map([plan], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Mark a run interrupted (a signal ended loopvel during it): not done,
    /// so the next start of its plan plays it again from its first turn.
    pub fn interrupt_run(&self, run: i64) -> Result<(), StoreError> {
        self.with(|c| c.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?1", [run]).map(|_| ()))
    }

    /// Mark every run still `running` as interrupted: those a process killed
    /// without warning left. Only for the writer (see [`Store::claim_writer`]),
    /// which knows no run of its own is in flight. Returns how many.
    pub fn interrupt_running(&self) -> Result<usize, StoreError> {
        self.with(|c| c.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'", []))
    }

    /// Record a request that ended without a reply.
    pub fn record_failed_call(&self, run: i64, f: &FailedCall) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO failed_calls(run_id, turn, error, attempts, retry_wait_s, retries_json, request_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run, f.turn, f.error, f.attempts, f.retry_wait_s, f.retries_json, f.request_json],
            )
            .map(|_| ())
        })
    }

    /// How many finished runs of a plan passed, so a resumed run's progress
    /// counts the passes recorded before it.
    pub fn passed_runs(&self, plan: i64) -> Result<usize, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM runs WHERE plan_id = ?1 AND status = 'done' AND outcome = 'pass'",
                [plan],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
        })
    }

    /// Forget every run of a plan (`--fresh`).
    pub fn clear_plan(&self, plan: i64) -> Result<(), StoreError> {
        self.with(|c| c.execute("DELETE FROM runs WHERE plan_id = ?1", [plan]).map(|_| ()))
    }

    /// Start a run, clearing what a killed or interrupted earlier attempt
    /// left of it, or an earlier attempt that ended in an error (played again
    /// on resume); `sandbox` is the level its tests run at.
    pub fn start_run(
        &self,
        plan: i64,
        task: i64,
        model: i64,
        replicate: u32,
        sandbox: &str,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM runs WHERE plan_id = ?1 AND task_id = ?2 AND model_id = ?3 AND replicate = ?4
                 AND (status <> 'done' OR outcome = 'error')",
                params![plan, task, model, replicate],
            )?;
            tx.execute(
                "INSERT INTO runs(plan_id, task_id, model_id, replicate, status, sandbox)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                params![plan, task, model, replicate, sandbox],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    /// Record one turn with its call and test execution, in one transaction.
    pub fn record_turn(
        &self,
        run: i64,
        t: &Turn,
        call: &CallRecord,
        test: Option<&TestRecord>,
    ) -> Result<(), StoreError> {
        let refusals = serde_json::to_string(&t.refusals).unwrap_or_else(|_| "[]".into());
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO turns(run_id, turn, started_s, ttft_s, gen_s, model_s, output_tokens, output_tokens_estimated,
                  input_tokens, tokens_per_s, retry_wait_s, edits_applied, edits_refused, refusals, test_s, tests_passed,
                  tests_total, score, grade, overhead_s, wall_s, usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
                params![
                    run,
                    t.turn,
                    t.started_s,
                    t.ttft_s,
                    t.model_s,
                    t.output_tokens.map(|n| n as i64),
                    t.output_tokens_estimated,
                    t.input_tokens.map(|n| n as i64),
                    t.tokens_per_s,
                    t.retry_wait_s,
                    t.edits_applied,
                    t.edits_refused,
                    refusals,
                    t.test_s,
                    t.tests_passed,
                    t.tests_total,
                    t.score,
                    t.grade.as_str(),
                    t.overhead_s,
                    t.wall_s,
                    t.usd
                ],
            )?;
            let turn_id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO calls(turn_id, request_json, reply_text, detail_json) VALUES (?1, ?2, ?3, ?4)",
                params![turn_id, call.request_json, call.reply_text, call.detail_json],
            )?;
            if let Some(x) = test {
                tx.execute(
                    "INSERT INTO test_execs(turn_id, exit_code, timed_out, passed, total, duration_s, output)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![turn_id, x.exit_code, x.timed_out, x.passed, x.total, x.duration_s, x.output],
                )?;
            }
            tx.commit()
        })
    }

    /// Mark a run finished. Only a run still `running`: one a signal marked
    /// interrupted meanwhile stays so (its workspace is gone; it is played again).
    pub fn finish_run(&self, run: i64, s: &RunSummary) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = 'done', outcome = ?2, stop_reason = ?3, turns = ?4, time_to_pass_s = ?5, wall_s = ?6,
                  model_s = ?7, test_s = ?8, overhead_s = ?9, retry_wait_s = ?10, input_tokens = ?11, output_tokens = ?12,
                  usd = ?13, error = ?14, finished_at = datetime('now') WHERE id = ?1 AND status = 'running'",
                params![
                    run, s.outcome.as_str(), s.stop_reason, s.turns, s.time_to_pass_s, s.wall_s, s.model_s, s.test_s, s.overhead_s,
                    s.retry_wait_s, s.input_tokens as i64, s.output_tokens as i64, s.usd, s.error
                ],
            )
            .map(|_| ())
        })
    }

    fn rows(&self, sql: &str) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(sql)?;
            let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
            let rows = st.query_map([], |r| {
                let mut m = serde_json::Map::new();
                for (i, n) in names.iter().enumerate() {
                    let v = match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                        rusqlite::types::ValueRef::Integer(x) => x.into(),
                        rusqlite::types::ValueRef::Real(x) => x.into(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                        rusqlite::types::ValueRef::Blob(_) => serde_json::Value::Null,
                    };
                    m.insert(n.clone(), v);
                }
                Ok(m)
            })?;
            rows.collect()
        })
    }

    /// One record per finished run, for export and reports.
    pub fn export_runs(&self) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        self.rows(&format!(
            "SELECT r.id AS run_id, r.plan_id, t.name AS task, m.name AS model, r.replicate, r.outcome, r.stop_reason, r.turns,
                    r.time_to_pass_s, r.wall_s, r.model_s, r.test_s, r.overhead_s, r.retry_wait_s, r.input_tokens,
                    r.output_tokens, r.usd, r.error, {} AS sandbox
             FROM runs r JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
             WHERE r.status = 'done' ORDER BY r.id",
            self.sandbox_column()
        ))
    }

    /// One record per turn of a finished run.
    pub fn export_turns(&self) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        self.rows(
            "SELECT u.run_id, r.plan_id, t.name AS task, m.name AS model, u.turn, u.ttft_s, u.gen_s, u.output_tokens, u.input_tokens,
                    u.tokens_per_s, u.edits_applied, u.edits_refused, u.test_s, u.tests_passed, u.tests_total, u.score,
                    u.grade, u.retry_wait_s, u.overhead_s, u.wall_s, u.usd
             FROM turns u JOIN runs r ON r.id = u.run_id JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
             WHERE r.status = 'done' ORDER BY u.run_id, u.turn",
        )
    }

    /// Finished runs per sandbox level, model and plan (level `None`: not recorded,
    /// a database from before the level was), for the report's provenance line.
    pub fn sandbox_levels(&self) -> Result<Vec<SandboxCount>, StoreError> {
        let sql = format!(
            "SELECT {}, m.name, r.plan_id, COUNT(*) FROM runs r JOIN models m ON m.id = r.model_id
             WHERE r.status = 'done' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            self.sandbox_column()
        );
        self.with(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], |r| {
                Ok(SandboxCount {
                    level: r.get(0)?,
                    model: r.get(1)?,
                    plan: r.get(2)?,
                    runs: r.get::<_, i64>(3)? as usize,
                })
            })?;
            rows.collect()
        })
    }

    /// Number of runs in any state, and of finished ones (for tests and progress).
    pub fn run_counts(&self) -> Result<(i64, i64), StoreError> {
        self.with(|c| {
            let all = c.query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))?;
            let done = c.query_row("SELECT COUNT(*) FROM runs WHERE status = 'done'", [], |r| r.get(0))?;
            Ok((all, done))
        })
    }

    /// Whether a plan with this key exists (for resume messages).
    pub fn has_plan(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row("SELECT id FROM plans WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
                .optional()
                .map(|x| x.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(n: u32, grade: Grade) -> Turn {
        Turn {
            turn: n,
            started_s: 0.0,
            ttft_s: Some(0.1),
            model_s: 0.5,
            output_tokens: Some(10),
            output_tokens_estimated: false,
            input_tokens: Some(100),
            tokens_per_s: Some(20.0),
            retry_wait_s: 0.0,
            edits_applied: 1,
            edits_refused: 0,
            refusals: vec!["x.py: refused".into()],
            test_s: 0.2,
            tests_passed: Some(1),
            tests_total: Some(2),
            score: Some(0.5),
            grade,
            overhead_s: 0.01,
            wall_s: 0.7,
            usd: 0.001,
        }
    }

    #[test]
    fn a_version_1_database_is_read_as_is_and_migrated_only_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let s = Store::open(&path).unwrap();
        let plan = s.plan("k", "cmd", "{}").unwrap();
        let task = s.task("t", "h", "fix", "pytest").unwrap();
        let model = s.model("m", "{}").unwrap();
        let run = s.start_run(plan, task, model, 0, "landlock").unwrap();
        let summary = RunSummary { outcome: Outcome::Fail, stop_reason: "max_turns".into(), ..RunSummary::default() };
        s.finish_run(run, &summary).unwrap();
        drop(s);
        // Make it a version-1 file, as loopvel wrote before the sandbox column.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "ALTER TABLE runs DROP COLUMN sandbox; ALTER TABLE tasks DROP COLUMN dir; PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(c);
        let old = Store::open_existing(&path).unwrap();
        assert_eq!(old.read_runs().unwrap()[0].sandbox, None);
        assert!(old.export_runs().unwrap()[0]["sandbox"].is_null());
        drop(old);
        let c = Connection::open(&path).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 1, "a report must not migrate the file");
        drop(c);
        let s = Store::open(&path).unwrap();
        let run = s.start_run(plan, task, model, 1, "bwrap").unwrap();
        s.finish_run(run, &summary).unwrap();
        let levels: Vec<Option<String>> = s.read_runs().unwrap().into_iter().map(|r| r.sandbox).collect();
        assert_eq!(levels, vec![None, Some("bwrap".to_string())]);
    }

    #[test]
    fn plans_list_their_models_and_tasks_and_task_folders_survive_from_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let s = Store::open(&path).unwrap();
        let done = RunSummary { outcome: Outcome::Pass, stop_reason: "pass".into(), ..RunSummary::default() };
        let first = s.plan("k1", "run --max-turns 5", r#"{"max_turns":5}"#).unwrap();
        let second = s.plan("k2", "run --max-turns 4", r#"{"max_turns":4}"#).unwrap();
        let (t, m) = (s.task("abc", "h1", "fix", "sh").unwrap(), s.model("fake", "{\"t\":1}").unwrap());
        s.set_task_dir(t, "/somewhere/abc").unwrap();
        let run = s.start_run(first, t, m, 0, "bwrap").unwrap();
        s.finish_run(run, &done).unwrap();
        s.start_run(second, t, m, 0, "bwrap").unwrap();
        let plans = s.plans().unwrap();
        assert_eq!(
            plans.iter().map(|p| (p.id, p.finished, p.runs)).collect::<Vec<_>>(),
            [(first, 1, 1), (second, 0, 1)]
        );
        assert_eq!(plans[0].models, [("fake".to_string(), "{\"t\":1}".to_string())]);
        assert_eq!(plans[0].tasks, [("abc".to_string(), "h1".to_string())]);
        assert_eq!(plans[1].options_json, r#"{"max_turns":4}"#);
        let levels = s.sandbox_levels().unwrap();
        assert_eq!(levels.len(), 1);
        assert_eq!((levels[0].plan, levels[0].runs), (first, 1));
        let dirs = s.task_dirs().unwrap();
        assert_eq!(dirs.get(&("abc".to_string(), "h1".to_string())).map(String::as_str), Some("/somewhere/abc"));
        drop(s);
        // A version-2 file: read as it is (no folders), migrated when written.
        let c = Connection::open(&path).unwrap();
        c.execute_batch("ALTER TABLE tasks DROP COLUMN dir; PRAGMA user_version = 2;").unwrap();
        drop(c);
        assert!(Store::open_existing(&path).unwrap().task_dirs().unwrap().is_empty());
        let s = Store::open(&path).unwrap();
        s.set_task_dir(t, "/elsewhere/abc").unwrap();
        assert_eq!(s.task_dirs().unwrap().len(), 1);
        assert_eq!(s.read_runs().unwrap().len(), 1, "nothing recorded is lost by the migration");
    }

    #[test]
    fn a_turn_and_a_run_read_back_as_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        let plan = s.plan("k", "cmd", "{}").unwrap();
        let (task, model) = (s.task("abc", "h", "fix", "sh").unwrap(), s.model("fast", "{}").unwrap());
        let run = s.start_run(plan, task, model, 2, "bwrap").unwrap();
        let call = CallRecord { request_json: "{}".into(), reply_text: "r".into(), detail_json: "{}".into() };
        let written = turn(1, Grade::Thrash);
        s.record_turn(run, &written, &call, None).unwrap();
        let summary = RunSummary {
            outcome: Outcome::Fail,
            stop_reason: "max_turns".into(),
            turns: 1,
            wall_s: 0.7,
            usd: 0.001,
            ..RunSummary::default()
        };
        s.finish_run(run, &summary).unwrap();
        let runs = s.read_runs().unwrap();
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(
            (r.outcome, r.stop_reason.as_str(), r.replicate, r.sandbox.as_deref()),
            (Outcome::Fail, "max_turns", 2, Some("bwrap"))
        );
        assert_eq!(r.turns, vec![written], "one record type: the turn reads back field for field");
    }

    #[test]
    fn a_killed_run_is_cleared_and_played_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = Store::open(&path).unwrap();
        let plan = s.plan("k", "cmd", "{}").unwrap();
        assert_eq!(s.plan("k", "cmd", "{}").unwrap(), plan);
        let task = s.task("bitcount", "abc", "fix", "pytest").unwrap();
        let model = s.model("fast", "{}").unwrap();
        let call = CallRecord { request_json: "{}".into(), reply_text: "r".into(), detail_json: "{}".into() };
        let run = s.start_run(plan, task, model, 0, "bwrap").unwrap();
        s.record_turn(run, &turn(1, Grade::Partial), &call, None).unwrap();
        // Killed here. Reopen and start the same run again.
        drop(s);
        let s = Store::open(&path).unwrap();
        assert!(s.finished_runs(plan, true).unwrap().is_empty());
        assert_eq!(s.passed_runs(plan).unwrap(), 0);
        let run = s.start_run(plan, task, model, 0, "bwrap").unwrap();
        s.record_turn(run, &turn(1, Grade::Pass), &call, None).unwrap();
        let summary = RunSummary {
            outcome: Outcome::Pass,
            stop_reason: "pass".into(),
            turns: 1,
            time_to_pass_s: Some(0.7),
            wall_s: 0.7,
            model_s: 0.5,
            test_s: 0.2,
            overhead_s: 0.01,
            retry_wait_s: 0.0,
            input_tokens: 100,
            output_tokens: 10,
            usd: 0.001,
            error: None,
        };
        s.finish_run(run, &summary).unwrap();
        assert_eq!(s.run_counts().unwrap(), (1, 1));
        assert_eq!(s.export_turns().unwrap().len(), 1);
        assert_eq!(s.export_turns().unwrap()[0]["grade"], "PASS");
        let runs = s.export_runs().unwrap();
        assert_eq!(runs[0]["task"], "bitcount");
        assert_eq!(runs[0]["outcome"], "pass");
        assert!(s.finished_runs(plan, true).unwrap().contains(&(task, model, 0)));
        assert_eq!(s.passed_runs(plan).unwrap(), 1);
    }
}
