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

mod db;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use db::DbError;
use db::{args, Db, Lite, Pg, Rows, Value};
use loopvel_record::{Grade, Outcome, Run, RunSummary, Turn};
use rusqlite::Connection;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database {path}: {source}")]
    Sql {
        /// The file, or the URL without its password.
        path: String,
        /// Why.
        source: DbError,
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
    /// A worker's run was claimed by another (its lease ran out).
    #[error(
        "database {path}: run {run} was claimed by another worker after this one's lease ran out; its record is theirs"
    )]
    Lost {
        /// The database.
        path: String,
        /// The run.
        run: i64,
    },
    /// A copy's destination already holds runs.
    #[error("{path} already holds plans; copy into a new, empty database (a new file, or a new PostgreSQL database)")]
    NotEmpty {
        /// The destination.
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
/// 4: `failed_calls`. 5: `runs.claimed_by` and `runs.lease_until`, the queue of workers.
/// 6: `turns.cached_input_tokens`, `turns.cache_write_tokens`, `turns.usd_uncached` (prompt caching).
/// 7: `turns.events`, what the loop did after a turn (a restart).
/// 8: `candidates`, every reply of a turn that asked for several (best-of-k within a turn).
const SCHEMA_VERSION: i64 = 8;

/// Table added in schema 8: the replies of a turn that asked for several at
/// once, in the order asked, each with what its tests found and whether it
/// was the one kept (that one is also the turn's `calls` row, so everything
/// that reads one call per turn still reads the reply the loop went on with).
/// IF NOT EXISTS so a migration can add it.
const CANDIDATES: &str = "
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY, turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, kept INTEGER NOT NULL, reply_text TEXT NOT NULL, detail_json TEXT NOT NULL,
    usd REAL NOT NULL, usd_uncached REAL NOT NULL, edits_applied INTEGER NOT NULL, tests_passed INTEGER,
    tests_total INTEGER, test_s REAL, UNIQUE(turn_id, idx));";

/// Column added in schema 7: the loop's events after a turn (JSON list of
/// strings; NULL when none, and in turns recorded before).
const EVENTS_COLUMNS: &str = "ALTER TABLE turns ADD COLUMN events TEXT;";

/// Columns added in schema 5: which worker holds a run, and until when
/// (seconds since 1970 by the database's clock).
const QUEUE_COLUMNS: &str =
    "ALTER TABLE runs ADD COLUMN claimed_by TEXT; ALTER TABLE runs ADD COLUMN lease_until REAL;";

/// Columns added in schema 6: a turn's cached input tokens as the server
/// reported them, the tokens written to the cache, and its cost had nothing
/// been cached. NULL in turns recorded before (or when the server said nothing).
const CACHE_COLUMNS: &str = "ALTER TABLE turns ADD COLUMN cached_input_tokens INTEGER; \
     ALTER TABLE turns ADD COLUMN cache_write_tokens INTEGER; ALTER TABLE turns ADD COLUMN usd_uncached REAL;";

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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallRecord {
    /// The request body as sent, without headers (no key).
    pub request_json: String,
    /// The reply text (the kept candidate's when the turn asked for several).
    pub reply_text: String,
    /// Timings, tokens, retries, finish reason, as JSON.
    pub detail_json: String,
    /// Every reply of a turn that asked for several to the same request, in
    /// the order asked; empty for a turn of one reply.
    pub candidates: Vec<CandidateRecord>,
}

/// One of several replies a turn asked for, and what its tests found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CandidateRecord {
    /// The reply text.
    pub reply_text: String,
    /// Its completion with timing and tokens (JSON).
    pub detail_json: String,
    /// What it cost, USD.
    pub usd: f64,
    /// What it would have cost with no prompt cache, USD.
    pub usd_uncached: f64,
    /// Edits it applied to its copy of the files.
    pub edits_applied: u32,
    /// Tests passing on its copy (the last result when it changed nothing; `None` when not counted).
    pub tests_passed: Option<u32>,
    /// Tests found.
    pub tests_total: Option<u32>,
    /// Seconds its tests took (`None`: not run, it changed nothing).
    pub test_s: Option<f64>,
    /// Its number among the replies asked, from 0 (a reply that never came
    /// leaves its number unused here; its request is in `failed_calls`).
    pub candidate: u32,
    /// The one the loop went on with.
    pub kept: bool,
}

/// A stored candidate reply, with the turn it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCandidate {
    /// The turn.
    pub turn: u32,
    /// What was recorded.
    pub record: CandidateRecord,
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

/// The columns [`turn_of`] reads, after which come the cache and events columns (`Store::later_turn_columns`).
const TURN_COLUMNS: &str = "u.turn, u.ttft_s, u.tokens_per_s, u.output_tokens, COALESCE(u.model_s, 0),
    COALESCE(u.test_s, 0), COALESCE(u.overhead_s, 0), COALESCE(u.retry_wait_s, 0),
    COALESCE(u.wall_s, 0), COALESCE(u.usd, 0), u.score, u.grade, u.started_s,
    COALESCE(u.output_tokens_estimated, 0), u.input_tokens, COALESCE(u.edits_applied, 0),
    COALESCE(u.edits_refused, 0), u.refusals, u.tests_passed, u.tests_total";

/// A turn from a row of [`TURN_COLUMNS`] and the later columns.
fn turn_of(r: &[Value]) -> Turn {
    Turn {
        turn: r[0].int().unwrap_or(0) as u32,
        ttft_s: r[1].real(),
        tokens_per_s: r[2].real(),
        output_tokens: r[3].int().map(|v| v.max(0) as u64),
        model_s: r[4].real().unwrap_or(0.0),
        test_s: r[5].real().unwrap_or(0.0),
        overhead_s: r[6].real().unwrap_or(0.0),
        retry_wait_s: r[7].real().unwrap_or(0.0),
        wall_s: r[8].real().unwrap_or(0.0),
        usd: r[9].real().unwrap_or(0.0),
        score: r[10].real(),
        // Only the harness writes grades; a name it never wrote reads as a FAIL.
        grade: r[11].text().and_then(|g| Grade::parse(&g)).unwrap_or(Grade::Fail),
        started_s: r[12].real().unwrap_or(0.0),
        output_tokens_estimated: r[13].int() == Some(1),
        input_tokens: r[14].int().map(|v| v.max(0) as u64),
        edits_applied: r[15].int().unwrap_or(0) as u32,
        edits_refused: r[16].int().unwrap_or(0) as u32,
        refusals: r[17].text().and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
        tests_passed: r[18].int().map(|v| v as u32),
        tests_total: r[19].int().map(|v| v as u32),
        cached_input_tokens: r[20].int().map(|v| v.max(0) as u64),
        cache_write_tokens: r[21].int().map(|v| v.max(0) as u64),
        usd_uncached: r[22].real(),
        events: r.get(23).and_then(Value::text).and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
    }
}

/// One run as a list of runs shows it, in any state (a run still playing included).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// Its plan.
    pub plan_id: i64,
    /// Task name.
    pub task: String,
    /// Model name.
    pub model: String,
    /// Replicate, from 0.
    pub replicate: u32,
    /// `queued`, `running`, `done` or `interrupted`.
    pub status: String,
    /// How it ended, once it did.
    pub outcome: Option<Outcome>,
    /// Why it stopped, once it did.
    pub stop_reason: Option<String>,
    /// Wall time of the whole run, s, once it ended.
    pub wall_s: Option<f64>,
    /// Time to pass, s (passes only).
    pub time_to_pass_s: Option<f64>,
    /// The grade of each recorded turn, in order.
    pub grades: Vec<Grade>,
    /// When it started (UTC, as the database's clock wrote it).
    pub started_at: String,
}

/// Everything recorded about one run: what a transcript shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    /// The run as listed.
    pub row: RunRow,
    /// Its turns, in order.
    pub turns: Vec<Turn>,
    /// The model call of each turn.
    pub calls: Vec<StoredCall>,
    /// The test runs, by turn (a turn whose code did not change ran none).
    pub tests: Vec<(u32, TestRecord)>,
    /// Requests that ended without a reply.
    pub failed_calls: Vec<FailedCall>,
    /// The error the run ended with, if any.
    pub error: Option<String>,
    /// The sandbox level its tests ran at.
    pub sandbox: Option<String>,
    /// The task's prompt as recorded.
    pub task_prompt: String,
    /// The task's test command as recorded.
    pub task_test: String,
    /// The hash of the task's files when it ran.
    pub task_files_hash: String,
    /// The folder the task last ran from, if recorded.
    pub task_dir: Option<String>,
    /// The plan's loop options (JSON).
    pub plan_options: String,
}

/// The store: a SQLite file, or a PostgreSQL database.
pub struct Store {
    engine: Mutex<Engine>,
    /// The file, or the URL without its password: what messages show.
    path: String,
    /// The SQLite file (`None` on PostgreSQL).
    file: Option<PathBuf>,
    version: i64,
    /// The worker this store writes for ([`Store::write_as_worker`]).
    worker: Option<String>,
}

enum Engine {
    Lite(Connection),
    Pg(Box<postgres::Client>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).field("version", &self.version).finish()
    }
}

/// Whether `--db` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// A database as messages may show it: a URL's password replaced by `***`.
///
/// ```
/// assert_eq!(loopvel_store::shown("postgres://me:s3cret@db:5432/runs"), "postgres://me:***@db:5432/runs");
/// assert_eq!(loopvel_store::shown("postgres://db/runs?user=me&password=s3cret"), "postgres://db/runs?user=me&password=***");
/// assert_eq!(loopvel_store::shown("runs.db"), "runs.db");
/// ```
pub fn shown(db: &str) -> String {
    if !is_postgres_url(db) {
        return db.to_string();
    }
    // A password as a query parameter (`?password=…`) is blanked too.
    let db = &match db.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| if kv.starts_with("password=") { "password=***".to_string() } else { kv.to_string() })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => db.to_string(),
    };
    let (scheme, rest) = db.split_once("://").unwrap_or((db, ""));
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => db.to_string(),
    }
}

/// This process's claim to write runs into a database; released when
/// dropped or when the process ends, however it ends (an flock, which the
/// kernel drops with the descriptor; on PostgreSQL a session advisory lock,
/// which the server drops with the connection).
#[derive(Debug)]
pub struct WriterClaim(Option<std::fs::File>);

impl Drop for WriterClaim {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if let Some(file) = &self.0 {
            // SAFETY: flock on a descriptor this struct owns.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// The advisory lock key of the one writer of a PostgreSQL database.
const PG_WRITER_LOCK: i64 = 0x6c6f_6f70_7665_6c31; // "loopvel1"

impl Store {
    /// Claim the database for writing runs: one writer at a time. Two `run`
    /// processes on one file would each play the same pending runs and
    /// overwrite each other's turns; the second is refused instead. An flock
    /// on the database file itself, which SQLite's own (fcntl) locks ignore.
    pub fn claim_writer(&self) -> Result<WriterClaim, StoreError> {
        use std::os::fd::AsRawFd;
        let Some(path) = &self.file else {
            // A writer that just exited holds the lock until the server ends its
            // session, a moment after: ask for two seconds before saying busy.
            for attempt in 0..20 {
                let got = self.with(|db| db.query("SELECT pg_try_advisory_lock(?1)", args![PG_WRITER_LOCK]))?;
                if got.rows.first().and_then(|r| r.first()).and_then(Value::int) == Some(1) {
                    return Ok(WriterClaim(None));
                }
                if attempt < 19 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
            return Err(StoreError::Busy { path: self.path.clone() });
        };
        let file = std::fs::File::open(path).map_err(|source| StoreError::Io { path: self.path.clone(), source })?;
        // SAFETY: flock on a descriptor we own; LOCK_NB never blocks.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            Ok(WriterClaim(Some(file)))
        } else {
            Err(StoreError::Busy { path: self.path.clone() })
        }
    }

    /// Open (or create) the database at `path`: a SQLite file, or a
    /// PostgreSQL database when `path` is a `postgres://` URL.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(url) = path.to_str().filter(|p| is_postgres_url(p)) {
            return Store::open_postgres(url, true);
        }
        let shown = path.display().to_string();
        let err = |source: rusqlite::Error| StoreError::Sql { path: shown.clone(), source: source.into() };
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
                "BEGIN; {SCHEMA} {FAILED_CALLS} {QUEUE_COLUMNS} {CACHE_COLUMNS} {EVENTS_COLUMNS} {CANDIDATES} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
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
            if version < 5 {
                steps.push_str(QUEUE_COLUMNS);
            }
            if version < 6 {
                steps.push_str(CACHE_COLUMNS);
            }
            if version < 7 {
                steps.push_str(EVENTS_COLUMNS);
            }
            if version < 8 {
                steps.push_str(CANDIDATES);
            }
            if !steps.is_empty() {
                conn.execute_batch(&format!("BEGIN; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
                    .map_err(err)?;
            }
        }
        Ok(Store {
            engine: Mutex::new(Engine::Lite(conn)),
            path: shown,
            file: Some(path.to_path_buf()),
            version: SCHEMA_VERSION,
            worker: None,
        })
    }

    /// Connect to a PostgreSQL database; with `create`, make loopvel's
    /// schema in it when it has none (one process at a time: an advisory
    /// lock held while it is made).
    fn open_postgres(url: &str, create: bool) -> Result<Store, StoreError> {
        let path = shown(url);
        let err = |source: DbError| StoreError::Sql { path: path.clone(), source };
        let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| err(e.into()))?;
        // The same promise as SQLite's WAL with synchronous = NORMAL: a killed
        // loopvel loses at most the turn in flight (every commit reached the
        // server); only a crash of the server itself can lose its last commits,
        // never corrupt them. Waiting for each commit's WAL flush would cost a
        // disk sync per turn for a guarantee the SQLite default does not give.
        client.batch_execute("SET synchronous_commit = off").map_err(|e| err(e.into()))?;
        let mut tx = client.transaction().map_err(|e| err(e.into()))?;
        let mut db = Pg(&mut tx);
        db.exec("SELECT pg_advisory_xact_lock(?1)", args![PG_WRITER_LOCK + 1]).map_err(err)?;
        let found = db.query("SELECT to_regclass('loopvel_meta') IS NOT NULL", &[]).map_err(err)?;
        let exists = found.rows.first().and_then(|r| r.first()).and_then(Value::int) == Some(1);
        let version = if exists {
            let v = db.query("SELECT version FROM loopvel_meta", &[]).map_err(err)?;
            v.rows.first().and_then(|r| r.first()).and_then(Value::int).unwrap_or(0)
        } else if create {
            let ddl = db::pg_schema(&format!(
                "{SCHEMA} {FAILED_CALLS} {QUEUE_COLUMNS} {CACHE_COLUMNS} {EVENTS_COLUMNS} {CANDIDATES} CREATE TABLE loopvel_meta (version INTEGER NOT NULL);"
            ));
            for statement in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                db.exec(statement, &[]).map_err(err)?;
            }
            db.exec("INSERT INTO loopvel_meta(version) VALUES (?1)", args![SCHEMA_VERSION]).map_err(err)?;
            SCHEMA_VERSION
        } else {
            return Err(StoreError::NotLoopvel { path });
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path, found: version, known: SCHEMA_VERSION });
        }
        let version = if version < SCHEMA_VERSION && create {
            let added = format!("{QUEUE_COLUMNS} {CACHE_COLUMNS} {EVENTS_COLUMNS} {CANDIDATES}");
            for statement in db::pg_schema(&added).split(';').map(str::trim).filter(|s| !s.is_empty()) {
                db.exec(&statement.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"), &[]).map_err(err)?;
            }
            db.exec("UPDATE loopvel_meta SET version = ?1", args![SCHEMA_VERSION]).map_err(err)?;
            SCHEMA_VERSION
        } else {
            version
        };
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(Store { engine: Mutex::new(Engine::Pg(Box::new(client))), path, file: None, version, worker: None })
    }

    /// Open a database that must already exist (reports never create one):
    /// a missing file, or a file that is not a loopvel database, is an error
    /// that says so and what to do.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        Store::open_existing_as(path, false)
    }

    /// [`Store::open_existing`] that cannot write: SQLite opened read-only, a
    /// PostgreSQL session whose transactions are read-only. For `view`, which
    /// serves pages while a `run` may be writing the same database.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Store::open_existing_as(path, true)
    }

    fn open_existing_as(path: &Path, read_only: bool) -> Result<Store, StoreError> {
        if let Some(url) = path.to_str().filter(|p| is_postgres_url(p)) {
            let store = Store::open_postgres(url, false)?;
            if read_only {
                store.with(|db| db.exec("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", &[]).map(|_| ()))?;
            }
            return Ok(store);
        }
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::Missing { path: shown });
        }
        let err = |source: rusqlite::Error| StoreError::Sql { path: shown.clone(), source: source.into() };
        let mode = if read_only {
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let flags = mode | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |path: &str, flags: rusqlite::OpenFlags| -> rusqlite::Result<(Connection, i64)> {
            let conn = Connection::open_with_flags(path, flags)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            Ok((conn, version))
        };
        let (conn, version) = match open(&path.to_string_lossy(), flags) {
            Ok(found) => found,
            // A WAL database in a folder this process cannot write cannot be read the
            // usual way (SQLite needs its -shm file); nothing can be writing it
            // there, so it is read as an immutable file.
            Err(_) if read_only => {
                let escaped = path.display().to_string().replace('%', "%25").replace('?', "%3f").replace('#', "%23");
                let uri = format!("file:{escaped}?mode=ro&immutable=1");
                let f = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                open(&uri, f).map_err(err)?
            }
            Err(e) => return Err(err(e)),
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: shown, found: version, known: SCHEMA_VERSION });
        }
        if version < 1 {
            return Err(StoreError::NotLoopvel { path: shown });
        }
        // Read as it is: a report never migrates (the shipped databases stay byte-identical).
        Ok(Store {
            engine: Mutex::new(Engine::Lite(conn)),
            path: shown,
            file: Some(path.to_path_buf()),
            version,
            worker: None,
        })
    }

    /// Write only runs that `worker` holds: a turn, a finish or a release of
    /// a run whose lease ran out and another worker claimed (this one cut
    /// off from the database longer than its lease) is refused with
    /// [`StoreError::Lost`], never written over the new holder's.
    pub fn write_as_worker(mut self, worker: &str) -> Store {
        self.worker = Some(worker.to_string());
        self
    }

    /// `Err(Lost)` when this store writes for a worker that no longer holds `run`.
    fn still_held(&self, db: &mut dyn Db, run: i64) -> Result<bool, DbError> {
        let Some(worker) = &self.worker else { return Ok(true) };
        // Locks the row (PostgreSQL) for the rest of the transaction: a claim by
        // another worker either committed before (and this sees it) or waits,
        // skips the row, until this write is done. SQLite's IMMEDIATE
        // transactions serialise writers already.
        let lock = if self.is_postgres() { " FOR UPDATE" } else { "" };
        let found = db.query(
            &format!("SELECT id FROM runs WHERE id = ?1 AND status = 'running' AND claimed_by = ?2{lock}"),
            args![run, worker],
        )?;
        Ok(!found.rows.is_empty())
    }

    /// Whether this store is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.file.is_none()
    }

    /// Run `f` on the engine.
    fn with<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T, DbError>) -> Result<T, StoreError> {
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &mut *engine {
            Engine::Lite(c) => f(&mut Lite(c)),
            Engine::Pg(c) => f(&mut Pg(c.as_mut())),
        };
        result.map_err(|source| StoreError::Sql { path: self.path.clone(), source })
    }

    /// Run `f` in one transaction: all of it is written, or none.
    fn tx<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T, DbError>) -> Result<T, StoreError> {
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &mut *engine {
            // IMMEDIATE: the write lock from the first statement, so a transaction
            // that reads before it writes waits (busy_timeout) instead of failing
            // with SQLITE_BUSY when another process wrote meanwhile.
            Engine::Lite(c) => (|| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let out = f(&mut Lite(&tx))?;
                tx.commit()?;
                Ok(out)
            })(),
            Engine::Pg(c) => (|| {
                let mut tx = c.transaction()?;
                let out = f(&mut Pg(&mut tx))?;
                tx.commit()?;
                Ok(out)
            })(),
        };
        result.map_err(|source| StoreError::Sql { path: self.path.clone(), source })
    }

    /// The `runs.sandbox` column, or NULL in a database from before it.
    fn sandbox_column(&self) -> &'static str {
        if self.version >= 2 {
            "r.sandbox"
        } else {
            "NULL"
        }
    }

    /// The schema-6 cache columns of `turns u`, or NULLs in a database from before them.
    fn cache_columns(&self) -> &'static str {
        if self.version >= 6 {
            "u.cached_input_tokens, u.cache_write_tokens, u.usd_uncached"
        } else {
            "NULL AS cached_input_tokens, NULL AS cache_write_tokens, NULL AS usd_uncached"
        }
    }

    /// The schema-6 cache columns and the schema-7 events column of `turns u`
    /// (NULLs in a database from before them): what [`turn_of`] reads after [`TURN_COLUMNS`].
    fn later_turn_columns(&self) -> String {
        let events = if self.version >= 7 { "u.events" } else { "NULL AS events" };
        format!("{}, {events}", self.cache_columns())
    }

    /// Every finished run with its turns, in run order.
    pub fn read_runs(&self) -> Result<Vec<Run>, StoreError> {
        let sandbox = self.sandbox_column();
        let cache = self.later_turn_columns();
        self.with(|db| {
            let found = db.query(
                &format!(
                    "SELECT r.id, r.plan_id, t.name, m.name, r.replicate, COALESCE(r.outcome, 'error'),
                            COALESCE(r.stop_reason, 'error'), r.time_to_pass_s, COALESCE(r.wall_s, 0), COALESCE(r.usd, 0),
                            t.files_hash, {sandbox}
                     FROM runs r JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
                     WHERE r.status = 'done' ORDER BY r.id",
                ),
                &[],
            )?;
            let mut runs: Vec<Run> = found
                .rows
                .iter()
                .map(|r| Run {
                    run_id: r[0].int().unwrap_or(0),
                    plan_id: r[1].int().unwrap_or(0),
                    task: r[2].text().unwrap_or_default(),
                    model: r[3].text().unwrap_or_default(),
                    replicate: r[4].int().unwrap_or(0) as u32,
                    // A name this version does not know reads as an error: censored where it stopped.
                    outcome: r[5].text().and_then(|o| Outcome::parse(&o)).unwrap_or(Outcome::Error),
                    stop_reason: r[6].text().unwrap_or_default(),
                    time_to_pass_s: r[7].real(),
                    wall_s: r[8].real().unwrap_or(0.0),
                    usd: r[9].real().unwrap_or(0.0),
                    task_files_hash: r[10].text().unwrap_or_default(),
                    sandbox: r[11].text(),
                    turns: Vec::new(),
                })
                .collect();
            let index: HashMap<i64, usize> = runs.iter().enumerate().map(|(i, r)| (r.run_id, i)).collect();
            let turns = db.query(
                &format!(
                    "SELECT u.run_id, {TURN_COLUMNS}, {cache}
                 FROM turns u JOIN runs r ON r.id = u.run_id WHERE r.status = 'done' ORDER BY u.run_id, u.turn"
                ),
                &[],
            )?;
            for r in &turns.rows {
                let Some(&i) = r[0].int().and_then(|id| index.get(&id)) else { continue };
                runs[i].turns.push(turn_of(&r[1..]));
            }
            Ok(runs)
        })
    }

    /// The model calls of one run, in turn order.
    pub fn run_calls(&self, run: i64) -> Result<Vec<StoredCall>, StoreError> {
        let found = self.with(|db| {
            db.query(
                "SELECT u.turn, k.request_json, k.reply_text, k.detail_json FROM calls k JOIN turns u ON u.id = k.turn_id
                 WHERE u.run_id = ?1 ORDER BY u.turn",
                args![run],
            )
        })?;
        Ok(found
            .rows
            .iter()
            .map(|r| StoredCall {
                turn: r[0].int().unwrap_or(0) as u32,
                request_json: r[1].text().unwrap_or_default(),
                reply_text: r[2].text().unwrap_or_default(),
                detail_json: r[3].text().unwrap_or_default(),
            })
            .collect())
    }

    /// The candidate replies of one run's turns that asked for several, by
    /// turn then order asked (none in a database from before schema 8).
    pub fn run_candidates(&self, run: i64) -> Result<Vec<StoredCandidate>, StoreError> {
        if self.version < 8 {
            return Ok(Vec::new());
        }
        let found = self.with(|db| {
            db.query(
                "SELECT u.turn, c.idx, c.kept, c.reply_text, c.detail_json, c.usd, c.usd_uncached, c.edits_applied,
                        c.tests_passed, c.tests_total, c.test_s
                 FROM candidates c JOIN turns u ON u.id = c.turn_id WHERE u.run_id = ?1 ORDER BY u.turn, c.idx",
                args![run],
            )
        })?;
        let count = |v: &Value| v.int().map(|n| n as u32);
        Ok(found
            .rows
            .iter()
            .map(|r| StoredCandidate {
                turn: count(&r[0]).unwrap_or(0),
                record: CandidateRecord {
                    candidate: count(&r[1]).unwrap_or(0),
                    kept: r[2].int() == Some(1),
                    reply_text: r[3].text().unwrap_or_default(),
                    detail_json: r[4].text().unwrap_or_default(),
                    usd: r[5].real().unwrap_or(0.0),
                    usd_uncached: r[6].real().unwrap_or(0.0),
                    edits_applied: count(&r[7]).unwrap_or(0),
                    tests_passed: count(&r[8]),
                    tests_total: count(&r[9]),
                    test_s: r[10].real(),
                },
            })
            .collect())
    }

    /// Every run in any state, newest first, each with its turns' grades.
    pub fn run_rows(&self) -> Result<Vec<RunRow>, StoreError> {
        self.run_rows_where("", &[])
    }

    fn run_rows_where(&self, filter: &str, args: &[Value]) -> Result<Vec<RunRow>, StoreError> {
        self.with(|db| {
            let found = db.query(
                &format!(
                    "SELECT r.id, r.plan_id, t.name, m.name, r.replicate, r.status, r.outcome, r.stop_reason,
                            r.wall_s, r.time_to_pass_s, r.started_at
                     FROM runs r JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
                     {filter} ORDER BY r.id DESC"
                ),
                args,
            )?;
            let mut rows: Vec<RunRow> = found
                .rows
                .iter()
                .map(|r| RunRow {
                    id: r[0].int().unwrap_or(0),
                    plan_id: r[1].int().unwrap_or(0),
                    task: r[2].text().unwrap_or_default(),
                    model: r[3].text().unwrap_or_default(),
                    replicate: r[4].int().unwrap_or(0).max(0) as u32,
                    status: r[5].text().unwrap_or_default(),
                    outcome: r[6].text().and_then(|o| Outcome::parse(&o)),
                    stop_reason: r[7].text(),
                    wall_s: r[8].real(),
                    time_to_pass_s: r[9].real(),
                    grades: Vec::new(),
                    started_at: r[10].text().unwrap_or_default(),
                })
                .collect();
            let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
            let run_filter = if filter.is_empty() { String::new() } else { filter.replace("r.id", "u.run_id") };
            let grades = db.query(
                &format!("SELECT u.run_id, u.grade FROM turns u {run_filter} ORDER BY u.run_id, u.turn"),
                args,
            )?;
            for g in &grades.rows {
                if let Some(&i) = g[0].int().and_then(|id| index.get(&id)) {
                    rows[i].grades.push(g[1].text().and_then(|g| Grade::parse(&g)).unwrap_or(Grade::Fail));
                }
            }
            Ok(rows)
        })
    }

    /// One run with everything recorded about it, in any state; `None` when no run has this id.
    pub fn run_detail(&self, run: i64) -> Result<Option<RunDetail>, StoreError> {
        let Some(row) = self.run_rows_where("WHERE r.id = ?1", args![run])?.into_iter().next() else {
            return Ok(None);
        };
        let sandbox = self.sandbox_column();
        let cache = self.later_turn_columns();
        let failed_table = self.version >= 4;
        let dir = if self.version >= 3 { "t.dir" } else { "NULL" };
        let calls = self.run_calls(run)?;
        self.with(|db| {
            let info = db.query(
                &format!(
                    "SELECT r.error, {sandbox}, t.prompt, t.test, t.files_hash, {dir}, p.options_json
                     FROM runs r JOIN tasks t ON t.id = r.task_id JOIN plans p ON p.id = r.plan_id WHERE r.id = ?1"
                ),
                args![run],
            )?;
            let i = info.rows.into_iter().next().unwrap_or_default();
            let text = |k: usize| i.get(k).and_then(Value::text);
            let turns = db.query(
                &format!("SELECT {TURN_COLUMNS}, {cache} FROM turns u WHERE u.run_id = ?1 ORDER BY u.turn"),
                args![run],
            )?;
            let tests = db.query(
                "SELECT u.turn, e.exit_code, e.timed_out, e.passed, e.total, e.duration_s, e.output
                 FROM test_execs e JOIN turns u ON u.id = e.turn_id WHERE u.run_id = ?1 ORDER BY u.turn, e.id",
                args![run],
            )?;
            let failed = if failed_table {
                db.query(
                    "SELECT turn, error, attempts, retry_wait_s, retries_json, request_json FROM failed_calls
                     WHERE run_id = ?1 ORDER BY id",
                    args![run],
                )?
                .rows
            } else {
                Vec::new()
            };
            Ok(Some(RunDetail {
                row,
                turns: turns.rows.iter().map(Vec::as_slice).map(turn_of).collect(),
                calls,
                tests: tests
                    .rows
                    .iter()
                    .map(|r| {
                        (
                            r[0].int().unwrap_or(0).max(0) as u32,
                            TestRecord {
                                exit_code: r[1].int().map(|c| c as i32),
                                timed_out: r[2].int() == Some(1),
                                passed: r[3].int().map(|v| v.max(0) as u32),
                                total: r[4].int().map(|v| v.max(0) as u32),
                                duration_s: r[5].real().unwrap_or(0.0),
                                output: r[6].text().unwrap_or_default(),
                            },
                        )
                    })
                    .collect(),
                failed_calls: failed
                    .iter()
                    .map(|r| FailedCall {
                        turn: r[0].int().unwrap_or(0).max(0) as u32,
                        error: r[1].text().unwrap_or_default(),
                        attempts: r[2].int().unwrap_or(0).max(0) as u32,
                        retry_wait_s: r[3].real().unwrap_or(0.0),
                        retries_json: r[4].text().unwrap_or_default(),
                        request_json: r[5].text().unwrap_or_default(),
                    })
                    .collect(),
                error: text(0),
                sandbox: text(1),
                task_prompt: text(2).unwrap_or_default(),
                task_test: text(3).unwrap_or_default(),
                task_files_hash: text(4).unwrap_or_default(),
                task_dir: text(5),
                plan_options: text(6).unwrap_or_default(),
            }))
        })
    }

    /// The first column of the first row, if any.
    fn one(&self, sql: &str, args: &[Value]) -> Result<Option<Value>, StoreError> {
        let found = self.with(|db| db.query(sql, args))?;
        Ok(found.rows.into_iter().next().and_then(|r| r.into_iter().next()))
    }

    /// A plan's options as recorded (JSON), if the plan exists.
    pub fn plan_options(&self, plan: i64) -> Result<Option<String>, StoreError> {
        Ok(self.one("SELECT options_json FROM plans WHERE id = ?1", args![plan])?.and_then(|v| v.text()))
    }

    /// A model's configuration as recorded (JSON, without secrets): the latest one of that name.
    pub fn model_config(&self, name: &str) -> Result<Option<String>, StoreError> {
        let sql = "SELECT config_json FROM models WHERE name = ?1 ORDER BY id DESC LIMIT 1";
        Ok(self.one(sql, args![name])?.and_then(|v| v.text()))
    }

    /// The plan with this key, created if new.
    pub fn plan(&self, key: &str, command: &str, options_json: &str) -> Result<i64, StoreError> {
        self.with(|db| {
            db.exec(
                "INSERT INTO plans(key, command, options_json) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO NOTHING",
                args![key, command, options_json],
            )?;
            first_int(db.query("SELECT id FROM plans WHERE key = ?1", args![key])?)
        })
    }

    /// The task row for this name and file hash.
    pub fn task(&self, name: &str, files_hash: &str, prompt: &str, test: &str) -> Result<i64, StoreError> {
        self.with(|db| {
            db.exec(
                "INSERT INTO tasks(name, files_hash, prompt, test) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                args![name, files_hash, prompt, test],
            )?;
            first_int(db.query("SELECT id FROM tasks WHERE name = ?1 AND files_hash = ?2", args![name, files_hash])?)
        })
    }

    /// Remember where a task's files are (an absolute folder), so `replay`
    /// finds them without `--tasks`. The latest run's folder wins.
    pub fn set_task_dir(&self, task: i64, dir: &str) -> Result<(), StoreError> {
        self.with(|db| db.exec("UPDATE tasks SET dir = ?2 WHERE id = ?1", args![task, dir]).map(|_| ()))
    }

    /// The folder each task was last run from, keyed by `(name, files hash)`;
    /// empty for a database from before loopvel recorded it.
    pub fn task_dirs(&self) -> Result<HashMap<(String, String), String>, StoreError> {
        if self.version < 3 {
            return Ok(HashMap::new());
        }
        let found = self.with(|db| db.query("SELECT name, files_hash, dir FROM tasks WHERE dir IS NOT NULL", &[]))?;
        Ok(found
            .rows
            .iter()
            .map(|r| {
                ((r[0].text().unwrap_or_default(), r[1].text().unwrap_or_default()), r[2].text().unwrap_or_default())
            })
            .collect())
    }

    /// Every plan in id order, with the models and tasks of its runs.
    pub fn plans(&self) -> Result<Vec<PlanInfo>, StoreError> {
        self.with(|db| {
            let found = db.query(
                "SELECT p.id, p.command, p.options_json, p.created_at,
                        (SELECT COUNT(*) FROM runs r WHERE r.plan_id = p.id AND r.status = 'done'),
                        (SELECT COUNT(*) FROM runs r WHERE r.plan_id = p.id)
                 FROM plans p ORDER BY p.id",
                &[],
            )?;
            let mut plans: Vec<PlanInfo> = found
                .rows
                .iter()
                .map(|r| PlanInfo {
                    id: r[0].int().unwrap_or(0),
                    command: r[1].text().unwrap_or_default(),
                    options_json: r[2].text().unwrap_or_default(),
                    created_at: r[3].text().unwrap_or_default(),
                    finished: r[4].int().unwrap_or(0) as usize,
                    runs: r[5].int().unwrap_or(0) as usize,
                    models: Vec::new(),
                    tasks: Vec::new(),
                })
                .collect();
            let pairs = |rows: Rows| -> Vec<(String, String)> {
                rows.rows.iter().map(|r| (r[0].text().unwrap_or_default(), r[1].text().unwrap_or_default())).collect()
            };
            for p in &mut plans {
                // Each row once: (name, config) and (name, files hash) are unique in their tables.
                p.models = pairs(db.query(
                    "SELECT m.name, m.config_json FROM models m
                     WHERE m.id IN (SELECT model_id FROM runs WHERE plan_id = ?1) ORDER BY m.name, m.id",
                    args![p.id],
                )?);
                p.tasks = pairs(db.query(
                    "SELECT t.name, t.files_hash FROM tasks t
                     WHERE t.id IN (SELECT task_id FROM runs WHERE plan_id = ?1) ORDER BY t.name, t.id",
                    args![p.id],
                )?);
            }
            Ok(plans)
        })
    }

    /// The model row for this name and (secret-free) configuration.
    pub fn model(&self, name: &str, config_json: &str) -> Result<i64, StoreError> {
        self.with(|db| {
            db.exec(
                "INSERT INTO models(name, config_json) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                args![name, config_json],
            )?;
            first_int(db.query("SELECT id FROM models WHERE name = ?1 AND config_json = ?2", args![name, config_json])?)
        })
    }

    /// `(task_id, model_id, replicate)` of the plan's finished runs; with
    /// `retry_errors`, without those that ended in an error (to play again).
    pub fn finished_runs(&self, plan: i64, retry_errors: bool) -> Result<HashSet<(i64, i64, u32)>, StoreError> {
        let found = self.with(|db| {
            db.query(
                "SELECT task_id, model_id, replicate FROM runs WHERE plan_id = ?1 AND status = 'done'
                 AND NOT (CAST(?2 AS BIGINT) = 1 AND outcome = 'error')",
                args![plan, retry_errors],
            )
        })?;
        Ok(found
            .rows
            .iter()
            .map(|r| (r[0].int().unwrap_or(0), r[1].int().unwrap_or(0), r[2].int().unwrap_or(0) as u32))
            .collect())
    }

    /// The errors of the plan's finished runs that ended in one.
    pub fn run_errors(&self, plan: i64) -> Result<Vec<String>, StoreError> {
        let found = self.with(|db| {
            db.query(
                "SELECT COALESCE(error, stop_reason, '') FROM runs WHERE plan_id = ?1 AND status = 'done'
                 AND outcome = 'error' ORDER BY id",
                args![plan],
            )
        })?;
        Ok(found.rows.iter().map(|r| r[0].text().unwrap_or_default()).collect())
    }

    /// Mark a run interrupted (a signal ended loopvel during it): not done,
    /// so the next start of its plan plays it again from its first turn.
    pub fn interrupt_run(&self, run: i64) -> Result<(), StoreError> {
        self.with(|db| db.exec("UPDATE runs SET status = 'interrupted' WHERE id = ?1", args![run]).map(|_| ()))
    }

    /// Mark every run still `running` as interrupted: those a process killed
    /// without warning left. Only for the writer (see [`Store::claim_writer`]),
    /// which knows no run of its own is in flight. Returns how many.
    pub fn interrupt_running(&self) -> Result<usize, StoreError> {
        // Runs a worker holds are the worker's: its lease says whether it lives.
        self.with(|db| {
            db.exec("UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND claimed_by IS NULL", &[])
        })
        .map(|n| n as usize)
    }

    /// Record a request that ended without a reply.
    pub fn record_failed_call(&self, run: i64, f: &FailedCall) -> Result<(), StoreError> {
        self.tx(|db| {
            if !self.still_held(db, run)? {
                return Ok(());
            }
            db.exec(
                "INSERT INTO failed_calls(run_id, turn, error, attempts, retry_wait_s, retries_json, request_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                args![run, f.turn, &f.error, f.attempts, f.retry_wait_s, &f.retries_json, &f.request_json],
            )
            .map(|_| ())
        })
    }

    /// How many finished runs of a plan passed, so a resumed run's progress
    /// counts the passes recorded before it.
    pub fn passed_runs(&self, plan: i64) -> Result<usize, StoreError> {
        let sql = "SELECT COUNT(*) FROM runs WHERE plan_id = ?1 AND status = 'done' AND outcome = 'pass'";
        Ok(self.one(sql, args![plan])?.and_then(|v| v.int()).unwrap_or(0) as usize)
    }

    /// Forget every run of a plan (`--fresh`).
    pub fn clear_plan(&self, plan: i64) -> Result<(), StoreError> {
        self.with(|db| db.exec("DELETE FROM runs WHERE plan_id = ?1", args![plan]).map(|_| ()))
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
        self.tx(|db| {
            db.exec(
                "DELETE FROM runs WHERE plan_id = ?1 AND task_id = ?2 AND model_id = ?3 AND replicate = ?4
                 AND (status <> 'done' OR outcome = 'error')",
                args![plan, task, model, replicate],
            )?;
            db.insert(
                "INSERT INTO runs(plan_id, task_id, model_id, replicate, status, sandbox)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                args![plan, task, model, replicate, sandbox],
            )
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
        let events = (!t.events.is_empty()).then(|| serde_json::to_string(&t.events).unwrap_or_default());
        let mut lost = false;
        self.tx(|db| {
            if !self.still_held(db, run)? {
                lost = true;
                return Ok(());
            }
            let turn_id = db.insert(
                "INSERT INTO turns(run_id, turn, started_s, ttft_s, gen_s, model_s, output_tokens, output_tokens_estimated,
                  input_tokens, tokens_per_s, retry_wait_s, edits_applied, edits_refused, refusals, test_s, tests_passed,
                  tests_total, score, grade, overhead_s, wall_s, usd, cached_input_tokens, cache_write_tokens, usd_uncached,
                  events)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                         ?22, ?23, ?24, ?25)",
                args![
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
                    &refusals,
                    t.test_s,
                    t.tests_passed,
                    t.tests_total,
                    t.score,
                    t.grade.as_str(),
                    t.overhead_s,
                    t.wall_s,
                    t.usd,
                    t.cached_input_tokens.map(|n| n as i64),
                    t.cache_write_tokens.map(|n| n as i64),
                    t.usd_uncached,
                    &events
                ],
            )?;
            db.exec(
                "INSERT INTO calls(turn_id, request_json, reply_text, detail_json) VALUES (?1, ?2, ?3, ?4)",
                args![turn_id, &call.request_json, &call.reply_text, &call.detail_json],
            )?;
            for c in &call.candidates {
                db.exec(
                    "INSERT INTO candidates(turn_id, idx, kept, reply_text, detail_json, usd, usd_uncached, edits_applied,
                      tests_passed, tests_total, test_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    args![
                        turn_id,
                        c.candidate,
                        c.kept,
                        &c.reply_text,
                        &c.detail_json,
                        c.usd,
                        c.usd_uncached,
                        c.edits_applied,
                        c.tests_passed,
                        c.tests_total,
                        c.test_s
                    ],
                )?;
            }
            if let Some(x) = test {
                db.exec(
                    "INSERT INTO test_execs(turn_id, exit_code, timed_out, passed, total, duration_s, output)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    args![turn_id, x.exit_code, x.timed_out, x.passed, x.total, x.duration_s, &x.output],
                )?;
            }
            Ok(())
        })?;
        if lost {
            return Err(StoreError::Lost { path: self.path.clone(), run });
        }
        Ok(())
    }

    /// Mark a run finished. Only a run still `running`: one a signal marked
    /// interrupted meanwhile stays so (its workspace is gone; it is played again).
    pub fn finish_run(&self, run: i64, s: &RunSummary) -> Result<(), StoreError> {
        let mut lost = false;
        self.tx(|db| {
            if !self.still_held(db, run)? {
                lost = true;
                return Ok(());
            }
            db.exec(
                "UPDATE runs SET status = 'done', outcome = ?2, stop_reason = ?3, turns = ?4, time_to_pass_s = ?5, wall_s = ?6,
                  model_s = ?7, test_s = ?8, overhead_s = ?9, retry_wait_s = ?10, input_tokens = ?11, output_tokens = ?12,
                  usd = ?13, error = ?14, finished_at = datetime('now') WHERE id = ?1 AND status = 'running'",
                args![
                    run,
                    s.outcome.as_str(),
                    &s.stop_reason,
                    s.turns,
                    s.time_to_pass_s,
                    s.wall_s,
                    s.model_s,
                    s.test_s,
                    s.overhead_s,
                    s.retry_wait_s,
                    s.input_tokens as i64,
                    s.output_tokens as i64,
                    s.usd,
                    &s.error
                ],
            )
            .map(|_| ())
        })?;
        if lost {
            return Err(StoreError::Lost { path: self.path.clone(), run });
        }
        Ok(())
    }

    fn rows(&self, sql: &str) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        let found = self.with(|db| db.query(sql, &[]))?;
        Ok(found.rows.iter().map(|r| found.names.iter().cloned().zip(r.iter().map(Value::json)).collect()).collect())
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
        self.rows(&format!(
            "SELECT u.run_id, r.plan_id, t.name AS task, m.name AS model, u.turn, u.ttft_s, u.gen_s, u.output_tokens, u.input_tokens,
                    {}, u.tokens_per_s, u.edits_applied, u.edits_refused, u.test_s, u.tests_passed, u.tests_total, u.score,
                    u.grade, u.retry_wait_s, u.overhead_s, u.wall_s, u.usd, {}
             FROM turns u JOIN runs r ON r.id = u.run_id JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
             WHERE r.status = 'done' ORDER BY u.run_id, u.turn",
            self.cache_columns(),
            if self.version >= 7 { "u.events" } else { "NULL AS events" }
        ))
    }

    /// Finished runs per sandbox level, model and plan (level `None`: not recorded,
    /// a database from before the level was), for the report's provenance line.
    pub fn sandbox_levels(&self) -> Result<Vec<SandboxCount>, StoreError> {
        let sql = format!(
            // NULL (not recorded) first on both engines: SQLite sorts it first, PostgreSQL last.
            "SELECT {col}, m.name, r.plan_id, COUNT(*) FROM runs r JOIN models m ON m.id = r.model_id
             WHERE r.status = 'done' GROUP BY {col}, m.name, r.plan_id
             ORDER BY CASE WHEN {col} IS NULL THEN 0 ELSE 1 END, {col}, m.name, r.plan_id",
            col = self.sandbox_column()
        );
        let found = self.with(|db| db.query(&sql, &[]))?;
        Ok(found
            .rows
            .iter()
            .map(|r| SandboxCount {
                level: r[0].text(),
                model: r[1].text().unwrap_or_default(),
                plan: r[2].int().unwrap_or(0),
                runs: r[3].int().unwrap_or(0) as usize,
            })
            .collect())
    }

    /// Number of runs in any state, and of finished ones (for tests and progress).
    pub fn run_counts(&self) -> Result<(i64, i64), StoreError> {
        let all = self.one("SELECT COUNT(*) FROM runs", &[])?.and_then(|v| v.int()).unwrap_or(0);
        let done = self.one("SELECT COUNT(*) FROM runs WHERE status = 'done'", &[])?.and_then(|v| v.int()).unwrap_or(0);
        Ok((all, done))
    }

    /// Whether a plan with this key exists (for resume messages).
    pub fn has_plan(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.one("SELECT id FROM plans WHERE key = ?1", args![key])?.is_some())
    }
}

/// A run a worker claimed: where it is in its plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The run.
    pub run_id: i64,
    /// Its plan.
    pub plan_id: i64,
    /// Its task's row.
    pub task_id: i64,
    /// Its model's row.
    pub model_id: i64,
    /// Its replicate.
    pub replicate: u32,
}

/// What a worker needs to play a claimed run: its task, model and options as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Task name.
    pub task: String,
    /// The hash of the task's files it was planned with.
    pub files_hash: String,
    /// Where the planner's task files were.
    pub task_dir: Option<String>,
    /// Model name.
    pub model: String,
    /// The model's configuration (JSON, no key).
    pub model_json: String,
    /// The plan's options (JSON).
    pub options_json: String,
}

/// The queue of one plan, by state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueRow {
    /// The plan.
    pub plan: i64,
    /// The command that made it.
    pub command: String,
    /// Waiting for a worker.
    pub pending: usize,
    /// Held by a worker: `(worker, runs)`.
    pub running: Vec<(String, usize)>,
    /// Held by a worker whose lease ran out (it died): claimable again.
    pub stale: usize,
    /// Finished, not in an error.
    pub done: usize,
    /// Finished in an error.
    pub errored: usize,
    /// Interrupted (played again by the next `run`).
    pub interrupted: usize,
}

impl Store {
    /// Put a plan's run in the queue as pending, for workers to claim,
    /// unless it is queued, held or finished already (an errored one is
    /// queued again when `retry_errors`). Returns whether it was queued.
    pub fn enqueue_run(
        &self,
        plan: i64,
        task: i64,
        model: i64,
        replicate: u32,
        retry_errors: bool,
    ) -> Result<bool, StoreError> {
        self.tx(|db| {
            db.exec(
                "DELETE FROM runs WHERE plan_id = ?1 AND task_id = ?2 AND model_id = ?3 AND replicate = ?4
                 AND ((status = 'done' AND outcome = 'error' AND CAST(?5 AS BIGINT) = 1) OR status = 'interrupted')",
                args![plan, task, model, replicate, retry_errors],
            )?;
            let n = db.exec(
                "INSERT INTO runs(plan_id, task_id, model_id, replicate, status) VALUES (?1, ?2, ?3, ?4, 'pending')
                 ON CONFLICT(plan_id, task_id, model_id, replicate) DO NOTHING",
                args![plan, task, model, replicate],
            )?;
            Ok(n > 0)
        })
    }

    /// Claim the oldest pending run, or one whose worker's lease ran out,
    /// for `worker` until `lease_s` seconds from now (by the database's
    /// clock). What an earlier holder recorded of it (partial turns, failed
    /// calls) is discarded in the same transaction: the run plays from its
    /// start. On PostgreSQL, `FOR UPDATE SKIP LOCKED`: concurrent workers
    /// never wait on, or take, the same row; SQLite serialises writers.
    pub fn claim_run(&self, worker: &str, lease_s: f64, sandbox: &str) -> Result<Option<Claimed>, StoreError> {
        let lock = if self.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
        self.tx(|db| {
            let found = db.query(
                &format!(
                    "SELECT id, plan_id, task_id, model_id, replicate FROM runs
                     WHERE status = 'pending' OR (status = 'running' AND claimed_by IS NOT NULL AND lease_until < loopvel_now())
                     ORDER BY id LIMIT 1{lock}"
                ),
                &[],
            )?;
            let Some(r) = found.rows.first() else { return Ok(None) };
            let claimed = Claimed {
                run_id: r[0].int().unwrap_or(0),
                plan_id: r[1].int().unwrap_or(0),
                task_id: r[2].int().unwrap_or(0),
                model_id: r[3].int().unwrap_or(0),
                replicate: r[4].int().unwrap_or(0) as u32,
            };
            db.exec("DELETE FROM turns WHERE run_id = ?1", args![claimed.run_id])?;
            db.exec("DELETE FROM failed_calls WHERE run_id = ?1", args![claimed.run_id])?;
            db.exec(
                "UPDATE runs SET status = 'running', claimed_by = ?2, lease_until = loopvel_now() + ?3, sandbox = ?4,
                  started_at = datetime('now') WHERE id = ?1",
                args![claimed.run_id, worker, lease_s, sandbox],
            )?;
            Ok(Some(claimed))
        })
    }

    /// Extend `worker`'s leases on `runs` to `lease_s` seconds from now.
    pub fn heartbeat(&self, worker: &str, runs: &[i64], lease_s: f64) -> Result<(), StoreError> {
        for &run in runs {
            self.with(|db| {
                db.exec(
                    "UPDATE runs SET lease_until = loopvel_now() + ?3 WHERE id = ?1 AND claimed_by = ?2 AND status = 'running'",
                    args![run, worker, lease_s],
                )
            })?;
        }
        Ok(())
    }

    /// Give a held run back to the queue (a worker stopping): pending again,
    /// what it recorded of it discarded.
    pub fn release_run(&self, run: i64) -> Result<(), StoreError> {
        self.tx(|db| {
            // Never what another worker holds now.
            if !self.still_held(db, run)? {
                return Ok(());
            }
            db.exec("DELETE FROM turns WHERE run_id = ?1", args![run])?;
            db.exec("DELETE FROM failed_calls WHERE run_id = ?1", args![run])?;
            db.exec(
                "UPDATE runs SET status = 'pending', claimed_by = NULL, lease_until = NULL WHERE id = ?1 AND status = 'running'",
                args![run],
            )
            .map(|_| ())
        })
    }

    /// Give back every run `worker` holds (its last moment at a signal).
    pub fn release_worker(&self, worker: &str) -> Result<usize, StoreError> {
        let held = self
            .with(|db| db.query("SELECT id FROM runs WHERE claimed_by = ?1 AND status = 'running'", args![worker]))?;
        let ids: Vec<i64> = held.rows.iter().filter_map(|r| r[0].int()).collect();
        for &id in &ids {
            self.release_run(id)?;
        }
        Ok(ids.len())
    }

    /// Runs a worker holds now (its lease running or run out): a worker
    /// with nothing to claim waits for these rather than leave a dead
    /// worker's runs behind.
    pub fn held_by_workers(&self) -> Result<usize, StoreError> {
        let sql = "SELECT COUNT(*) FROM runs WHERE status = 'running' AND claimed_by IS NOT NULL";
        Ok(self.one(sql, &[])?.and_then(|v| v.int()).unwrap_or(0) as usize)
    }

    /// A plan's runs that are queued or held by a worker: a plain `run` of
    /// the plan must not play them too.
    pub fn queued_runs(&self, plan: i64) -> Result<usize, StoreError> {
        let sql = "SELECT COUNT(*) FROM runs WHERE plan_id = ?1
                   AND (status = 'pending' OR (status = 'running' AND claimed_by IS NOT NULL))";
        Ok(self.one(sql, args![plan])?.and_then(|v| v.int()).unwrap_or(0) as usize)
    }

    /// What a worker needs to play run `run`.
    pub fn run_spec(&self, run: i64) -> Result<Option<RunSpec>, StoreError> {
        let found = self.with(|db| {
            db.query(
                "SELECT t.name, t.files_hash, t.dir, m.name, m.config_json, p.options_json
                 FROM runs r JOIN tasks t ON t.id = r.task_id JOIN models m ON m.id = r.model_id
                 JOIN plans p ON p.id = r.plan_id WHERE r.id = ?1",
                args![run],
            )
        })?;
        Ok(found.rows.first().map(|r| RunSpec {
            task: r[0].text().unwrap_or_default(),
            files_hash: r[1].text().unwrap_or_default(),
            task_dir: r[2].text(),
            model: r[3].text().unwrap_or_default(),
            model_json: r[4].text().unwrap_or_default(),
            options_json: r[5].text().unwrap_or_default(),
        }))
    }

    /// The queue per plan: pending, held (by worker), stale, done, errored.
    pub fn queue(&self) -> Result<Vec<QueueRow>, StoreError> {
        // A database from before the queue (read as it is) has no worker columns: nobody held its runs.
        let (holder, stale) = if self.version >= 5 {
            (
                "COALESCE(r.claimed_by, '')",
                "CASE WHEN r.lease_until IS NOT NULL AND r.lease_until < loopvel_now() THEN 1 ELSE 0 END",
            )
        } else {
            ("''", "0")
        };
        let found = self.with(|db| {
            db.query(
                &format!(
                    "SELECT r.plan_id, p.command, r.status, COALESCE(r.outcome, ''), {holder}, {stale}, COUNT(*)
                     FROM runs r JOIN plans p ON p.id = r.plan_id
                     GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 5"
                ),
                &[],
            )
        })?;
        let mut rows: Vec<QueueRow> = Vec::new();
        for r in &found.rows {
            let plan = r[0].int().unwrap_or(0);
            if rows.last().is_none_or(|q| q.plan != plan) {
                rows.push(QueueRow { plan, command: r[1].text().unwrap_or_default(), ..QueueRow::default() });
            }
            let Some(q) = rows.last_mut() else { continue };
            let n = r[6].int().unwrap_or(0) as usize;
            match (r[2].text().as_deref(), r[3].text().as_deref()) {
                (Some("pending"), _) => q.pending += n,
                (Some("running"), _) if r[5].int() == Some(1) => q.stale += n,
                (Some("running"), _) => {
                    let who = r[4].text().filter(|w| !w.is_empty()).unwrap_or_else(|| "loopvel run".into());
                    q.running.push((who, n));
                }
                (Some("done"), Some("error")) => q.errored += n,
                (Some("done"), _) => q.done += n,
                _ => q.interrupted += n,
            }
        }
        Ok(rows)
    }
}

/// What [`Store::copy_into`] copied: rows per table, in copy order.
pub type Copied = Vec<(&'static str, usize)>;

/// Tables in the order their rows can be inserted (parents first).
const TABLES: [&str; 9] =
    ["plans", "tasks", "models", "runs", "turns", "calls", "test_execs", "failed_calls", "candidates"];

impl Store {
    /// Copy every row of this database into `dst`, an empty one (made by
    /// [`Store::open`]), ids included, in one transaction: a SQLite file into
    /// PostgreSQL, or back. Values take the destination column's type
    /// (PostgreSQL's are strict, SQLite's are not). A table this database
    /// predates (an older schema) copies as empty.
    pub fn copy_into(&self, dst: &Store) -> Result<Copied, StoreError> {
        if dst.one("SELECT COUNT(*) FROM plans", &[])?.and_then(|v| v.int()).unwrap_or(0) > 0 {
            return Err(StoreError::NotEmpty { path: dst.path.clone() });
        }
        // One snapshot of the source (a live database may be written meanwhile).
        let pg = self.is_postgres();
        let version = self.version;
        let tables = self.tx(|db| {
            if pg {
                db.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", &[])?;
            }
            let mut tables = Vec::new();
            for table in TABLES {
                if (table == "failed_calls" && version < 4) || (table == "candidates" && version < 8) {
                    tables.push((table, Rows::default()));
                    continue;
                }
                tables.push((table, db.query(&format!("SELECT * FROM {table} ORDER BY id"), &[])?));
            }
            Ok(tables)
        })?;
        let kinds = dst.column_kinds()?;
        dst.tx(|db| {
            let mut copied = Vec::new();
            for (table, rows) in &tables {
                let columns = rows.names.join(", ");
                let marks: Vec<String> = (1..=rows.names.len()).map(|i| format!("?{i}")).collect();
                let sql = format!("INSERT INTO {table}({columns}) VALUES ({})", marks.join(", "));
                for row in &rows.rows {
                    let values: Vec<Value> = rows
                        .names
                        .iter()
                        .zip(row)
                        .map(|(name, v)| match kinds.get(&(table.to_string(), name.clone())).map(String::as_str) {
                            Some("bigint") => Value::Int(v.int()),
                            Some("double precision") => Value::Real(v.real()),
                            Some("text") => Value::Text(v.text()),
                            _ => v.clone(),
                        })
                        .collect();
                    db.exec(&sql, &values)?;
                }
                copied.push((*table, rows.rows.len()));
            }
            Ok(copied)
        })
        .and_then(|copied| {
            // Ids were written as they were: move each sequence past them.
            if dst.is_postgres() {
                for table in TABLES {
                    dst.with(|db| {
                        db.query(
                            &format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"),
                            &[],
                        )
                    })?;
                }
            }
            Ok(copied)
        })
    }

    /// `(table, column) → type` on PostgreSQL (empty on SQLite, whose columns take any value).
    fn column_kinds(&self) -> Result<HashMap<(String, String), String>, StoreError> {
        if !self.is_postgres() {
            return Ok(HashMap::new());
        }
        let found = self.with(|db| {
            db.query(
                "SELECT table_name, column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema()",
                &[],
            )
        })?;
        Ok(found
            .rows
            .iter()
            .map(|r| {
                ((r[0].text().unwrap_or_default(), r[1].text().unwrap_or_default()), r[2].text().unwrap_or_default())
            })
            .collect())
    }
}

/// The integer in the first column of the first row (an id just written).
fn first_int(rows: Rows) -> Result<i64, DbError> {
    Ok(rows.rows.first().and_then(|r| r.first()).and_then(Value::int).unwrap_or(0))
}

// One helper for a fresh PostgreSQL database per test, shared with the
// end-to-end tests (skips where no server runs, fails under LOOPVEL_REQUIRE_POSTGRES).
#[cfg(test)]
#[path = "../../../tests/support/pg.rs"]
mod test_pg;

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
            cached_input_tokens: Some(60),
            cache_write_tokens: Some(5),
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
            usd_uncached: Some(0.0012),
            events: vec![
                "restart after 2 turns without improvement: files reset to turn 1's files, conversation begun afresh"
                    .into(),
            ],
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
            "ALTER TABLE turns DROP COLUMN cached_input_tokens; ALTER TABLE turns DROP COLUMN cache_write_tokens; ALTER TABLE turns DROP COLUMN usd_uncached; ALTER TABLE turns DROP COLUMN events; ALTER TABLE runs DROP COLUMN sandbox; ALTER TABLE tasks DROP COLUMN dir; ALTER TABLE runs DROP COLUMN claimed_by; ALTER TABLE runs DROP COLUMN lease_until; PRAGMA user_version = 1;",
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
        c.execute_batch("ALTER TABLE turns DROP COLUMN cached_input_tokens; ALTER TABLE turns DROP COLUMN cache_write_tokens; ALTER TABLE turns DROP COLUMN usd_uncached; ALTER TABLE turns DROP COLUMN events; ALTER TABLE tasks DROP COLUMN dir; ALTER TABLE runs DROP COLUMN claimed_by; ALTER TABLE runs DROP COLUMN lease_until; PRAGMA user_version = 2;").unwrap();
        drop(c);
        assert!(Store::open_existing(&path).unwrap().task_dirs().unwrap().is_empty());
        let s = Store::open(&path).unwrap();
        s.set_task_dir(t, "/elsewhere/abc").unwrap();
        assert_eq!(s.task_dirs().unwrap().len(), 1);
        assert_eq!(s.read_runs().unwrap().len(), 1, "nothing recorded is lost by the migration");
    }

    use crate::test_pg::FreshPg;

    #[test]
    fn a_turn_and_a_run_read_back_as_they_were_written_in_postgres_too() {
        let Some(pg) = FreshPg::new("store_readback") else { return };
        read_back(&Store::open(Path::new(&pg.url)).unwrap());
        // A second open finds the schema made; a report opens it as it is.
        let again = Store::open_existing(Path::new(&pg.url)).unwrap();
        assert_eq!(again.read_runs().unwrap().len(), 1);
        assert!(again.is_postgres());
    }

    #[test]
    fn a_killed_run_is_cleared_and_played_again_in_postgres_too() {
        let Some(pg) = FreshPg::new("store_killed") else { return };
        killed_run(|| Store::open(Path::new(&pg.url)).unwrap());
    }

    #[test]
    fn one_writer_at_a_time_on_postgres_too() {
        let Some(pg) = FreshPg::new("store_writer") else { return };
        let a = Store::open(Path::new(&pg.url)).unwrap();
        let b = Store::open(Path::new(&pg.url)).unwrap();
        let claim = a.claim_writer().unwrap();
        assert!(matches!(b.claim_writer(), Err(StoreError::Busy { .. })));
        drop(claim);
        drop(a);
        // The lock goes with the connection (the server ends that session a moment after the client closes it).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while b.claim_writer().is_err() {
            assert!(std::time::Instant::now() < deadline, "the lock outlived its connection");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_database_without_loopvel_in_it_is_named_not_made_by_a_report() {
        let Some(pg) = FreshPg::new("store_missing") else { return };
        assert!(matches!(Store::open_existing(Path::new(&pg.url)), Err(StoreError::NotLoopvel { .. })));
        let nowhere = "postgres://root:hunter2@127.0.0.1:9/nothing";
        let err = Store::open_existing(Path::new(nowhere)).unwrap_err().to_string();
        assert!(err.contains("postgres://root:***@127.0.0.1:9/nothing") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_queue_hands_each_run_to_one_worker_and_takes_back_what_a_dead_one_held() {
        let dir = tempfile::tempdir().unwrap();
        queue(&Store::open(&dir.path().join("q.db")).unwrap());
        let Some(pg) = FreshPg::new("store_queue") else { return };
        queue(&Store::open(Path::new(&pg.url)).unwrap());
    }

    #[test]
    fn a_worker_that_lost_its_lease_never_writes_over_the_new_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        stolen_lease(|w| Store::open(&path).unwrap().write_as_worker(w));
        let Some(pg) = FreshPg::new("store_lease") else { return };
        stolen_lease(|w| Store::open(Path::new(&pg.url)).unwrap().write_as_worker(w));
    }

    fn stolen_lease(open: impl Fn(&str) -> Store) {
        let (a, b) = (open("a"), open("b"));
        let plan = a.plan("k", "run --enqueue", "{}").unwrap();
        let (task, model) = (a.task("abc", "h", "fix", "sh").unwrap(), a.model("fast", "{}").unwrap());
        a.enqueue_run(plan, task, model, 0, true).unwrap();
        let run = a.claim_run("a", 0.0, "bwrap").unwrap().unwrap().run_id;
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(b.claim_run("b", 60.0, "bwrap").unwrap().unwrap().run_id, run, "a's lease ran out");
        let call = CallRecord {
            request_json: "{}".into(),
            reply_text: "r".into(),
            detail_json: "{}".into(),
            candidates: Vec::new(),
        };
        b.record_turn(run, &turn(1, Grade::Partial), &call, None).unwrap();
        // a comes back: nothing it writes lands.
        assert!(matches!(a.record_turn(run, &turn(1, Grade::Pass), &call, None), Err(StoreError::Lost { .. })));
        let done = RunSummary { outcome: Outcome::Pass, stop_reason: "pass".into(), turns: 1, ..RunSummary::default() };
        assert!(matches!(a.finish_run(run, &done), Err(StoreError::Lost { .. })));
        a.release_run(run).unwrap();
        let q = b.queue().unwrap();
        assert_eq!(q[0].running, vec![("b".to_string(), 1)], "still b's");
        b.finish_run(
            run,
            &RunSummary { outcome: Outcome::Fail, stop_reason: "max_turns".into(), turns: 1, ..RunSummary::default() },
        )
        .unwrap();
        let runs = b.read_runs().unwrap();
        assert_eq!((runs[0].outcome, runs[0].turns.len(), runs[0].turns[0].grade), (Outcome::Fail, 1, Grade::Partial));
    }

    fn queue(s: &Store) {
        let plan = s.plan("k", "run --enqueue", "{}").unwrap();
        let (task, model) = (s.task("abc", "h", "fix", "sh").unwrap(), s.model("fast", "{}").unwrap());
        assert!(s.enqueue_run(plan, task, model, 0, true).unwrap());
        assert!(s.enqueue_run(plan, task, model, 1, true).unwrap());
        assert!(!s.enqueue_run(plan, task, model, 1, true).unwrap(), "queued once");
        let a = s.claim_run("a", 60.0, "bwrap").unwrap().unwrap();
        let b = s.claim_run("b", 0.0, "bwrap").unwrap().unwrap();
        assert_ne!(a.run_id, b.run_id);
        let call = CallRecord {
            request_json: "{}".into(),
            reply_text: "r".into(),
            detail_json: "{}".into(),
            candidates: Vec::new(),
        };
        s.record_turn(b.run_id, &turn(1, Grade::Partial), &call, None).unwrap();
        // b's lease (0 s) ran out: its run is claimable again, its partial turn discarded.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let q = s.queue().unwrap();
        assert_eq!((q[0].pending, q[0].stale, q[0].running.clone()), (0, 1, vec![("a".to_string(), 1)]));
        let c = s.claim_run("c", 60.0, "bwrap").unwrap().unwrap();
        assert_eq!(c.run_id, b.run_id);
        assert!(s.claim_run("d", 60.0, "bwrap").unwrap().is_none(), "a live lease is never taken");
        let summary = RunSummary { outcome: Outcome::Pass, stop_reason: "pass".into(), ..RunSummary::default() };
        s.finish_run(c.run_id, &summary).unwrap();
        assert!(s.read_runs().unwrap()[0].turns.is_empty(), "no partial turn of the dead worker is left");
        assert_eq!(s.release_worker("a").unwrap(), 1);
        let q = s.queue().unwrap();
        assert_eq!((q[0].pending, q[0].done, q[0].running.len()), (1, 1, 0));
        assert_eq!(s.run_spec(a.run_id).unwrap().unwrap().task, "abc");
    }

    #[test]
    fn a_turn_and_a_run_read_back_as_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        read_back(&Store::open(&dir.path().join("t.db")).unwrap());
    }

    fn read_back(s: &Store) {
        let plan = s.plan("k", "cmd", "{}").unwrap();
        let (task, model) = (s.task("abc", "h", "fix", "sh").unwrap(), s.model("fast", "{}").unwrap());
        let run = s.start_run(plan, task, model, 2, "bwrap").unwrap();
        let call = CallRecord {
            request_json: "{}".into(),
            reply_text: "r".into(),
            detail_json: "{}".into(),
            candidates: Vec::new(),
        };
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
        killed_run(|| Store::open(&path).unwrap());
    }

    fn killed_run(open: impl Fn() -> Store) {
        let s = open();
        let plan = s.plan("k", "cmd", "{}").unwrap();
        assert_eq!(s.plan("k", "cmd", "{}").unwrap(), plan);
        let task = s.task("bitcount", "abc", "fix", "pytest").unwrap();
        let model = s.model("fast", "{}").unwrap();
        let call = CallRecord {
            request_json: "{}".into(),
            reply_text: "r".into(),
            detail_json: "{}".into(),
            candidates: Vec::new(),
        };
        let run = s.start_run(plan, task, model, 0, "bwrap").unwrap();
        s.record_turn(run, &turn(1, Grade::Partial), &call, None).unwrap();
        // Killed here. Reopen and start the same run again.
        drop(s);
        let s = open();
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
