//! Command-line options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Measure and predict the loop velocity of agentic coding: how fast a model
/// gets code from red to green in a try → test → fix loop.
#[derive(Debug, Parser)]
#[command(name = "loopvel", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole job offline in under a minute, no key, no model server: the
    /// math on the talk's scenario, a replay of a real recorded run with the
    /// real tests, and a report (terminal + demo-report.html).
    Demo(DemoArgs),
    /// Compare models on one loop with exact formulas: cycle time, turns and
    /// time to all tests passing, pass rate, time and cost to pass, policies,
    /// break-even, and a verdict.
    Calc(CalcArgs),
    /// Simulate loops run by run (Monte Carlo): distributions of times, task
    /// difficulty, flaky tests, thrash, rate limits, budgets and policies.
    Simulate(SimulateArgs),
    /// Drive real models through fix-until-green loops on real tasks, and record every turn.
    Run(RunArgs),
    /// Write the recorded runs and turns as JSON lines or CSV.
    Export(ExportArgs),
    /// Re-run recorded runs with the recorded model replies and the real tests,
    /// on a virtual clock; with what-ifs, the counterfactual beside the original.
    Replay(ReplayArgs),
    /// What the recorded runs say, with intervals: pass rates, time to pass
    /// (Kaplan–Meier, censoring-aware), where the time goes, fitted loop parameters.
    Report(ReportArgs),
    /// Which model and loop policy to use for a budget, predicted from the
    /// fitted parameters (with their uncertainty) through the simulator.
    Predict(PredictArgs),
    /// Look inside the runs: a local web server (127.0.0.1 only, read-only)
    /// with each run turn by turn — prompt, reply, edits, diffs, tests,
    /// timeline — that shows new turns while a run is recording.
    View(ViewArgs),
    /// Real small code models on this machine: set up (PyPI, checked by SHA-256),
    /// start and stop llama.cpp servers on 127.0.0.1, print their loopvel.toml tables.
    Local {
        /// What to do.
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// Work with task directories (task.toml, files, tests, solution/).
    Tasks {
        /// What to do.
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// The sandbox that model-written code runs in: which level this machine
    /// gets, and a battery of escape probes run inside it.
    Sandbox {
        /// What to do.
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Claim pending runs from a shared database (`run --enqueue`) and play
    /// them, holding each with a lease that a heartbeat extends; exits when the
    /// queue is empty, or waits for more with --follow.
    Worker(WorkerArgs),
    /// The queue of each plan in a database: pending, running (by worker),
    /// stale (a dead worker's), done, errored.
    Status(StatusArgs),
    /// Work with whole databases: copy a SQLite file into PostgreSQL to share
    /// it, or back.
    Db {
        /// What to do.
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Write a commented loopvel.toml with ready model blocks (OpenAI,
    /// Anthropic, Inception Mercury, Groq, Gemini, OpenRouter, Ollama, vLLM,
    /// llama.cpp); keys stay in environment variables.
    Init(InitArgs),
    /// Print a shell completion script: `loopvel completions bash > ~/.local/share/bash-completion/completions/loopvel`,
    /// `loopvel completions zsh > ~/.zfunc/_loopvel`, `loopvel completions fish > ~/.config/fish/completions/loopvel.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: ShellArg,
    },
}

/// `--plan ID` and `--pool`, for the commands that read recorded runs.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Read only the plan with this id (and plans of the same settings). A
    /// database holding plans with different settings (another --max-turns,
    /// model configuration or task files) is read one plan at a time: the
    /// latest by default; the others are listed on stderr with their ids.
    #[arg(long, value_name = "ID", conflicts_with = "pool")]
    pub plan: Option<i64>,
    /// Read the runs of every plan together, even with different settings
    /// (what differs is said on stderr, and under "plans" in JSON).
    #[arg(long)]
    pub pool: bool,
}

impl PlanArgs {
    /// The choice the flags make.
    pub fn choice(&self) -> crate::commands::plans::Choice {
        crate::commands::plans::Choice::from_flags(self.plan, self.pool)
    }
}

/// Options of `loopvel init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it.
    #[arg(default_value = "loopvel.toml")]
    pub path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// The language of a new task's scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LangArg {
    /// Python, tests run by pytest (which loopvel installs).
    Python,
    /// Rust, tests run by cargo.
    Rust,
}

/// `loopvel completions SHELL`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellArg {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `--sandbox`: how model-written code (the tests a turn runs) is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxArg {
    /// The strongest level available: bwrap, else landlock; refuses when there is none.
    Auto,
    /// bubblewrap: namespaces, read-only root, private /tmp and home, no network.
    Bwrap,
    /// Landlock + seccomp: writes only in the workspace, no sockets, no ptrace.
    Landlock,
    /// No isolation (unsafe: the code can read your keys and rewrite results); warns on every run.
    None,
}

impl SandboxArg {
    /// The request this option makes.
    pub fn requested(self) -> loopvel_sandbox::Requested {
        use loopvel_sandbox::{Level, Requested};
        match self {
            SandboxArg::Auto => Requested::Auto,
            SandboxArg::Bwrap => Requested::Level(Level::Bwrap),
            SandboxArg::Landlock => Requested::Level(Level::Landlock),
            SandboxArg::None => Requested::Level(Level::None),
        }
    }
}

/// `loopvel worker`
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The shared database: a `postgres://` URL (or a SQLite file, for workers on one machine).
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
    /// Runs played at once by this worker.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// When the queue is empty, wait for more runs instead of exiting.
    #[arg(long)]
    pub follow: bool,
    /// Where this machine's copies of the tasks are (default: the folders the
    /// planner recorded). A task whose files differ from the plan's is refused.
    #[arg(long)]
    pub tasks: Option<PathBuf>,
    /// Seconds a claimed run stays this worker's without a heartbeat (one
    /// every third of it): a worker that dies gives its runs back this long after.
    #[arg(long, default_value_t = 60.0)]
    pub lease_s: f64,
    /// How the tests (model-written code) are confined. Recorded per run.
    #[arg(long, value_enum, default_value = "auto")]
    pub sandbox: SandboxArg,
}

/// `loopvel status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The database: a SQLite file or a `postgres://` URL.
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
}

/// `loopvel db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every plan, run, turn, call and test execution, ids included,
    /// into a new, empty database: `--from runs.db --to postgres://…`.
    Copy {
        /// The database to copy: a SQLite file or a `postgres://` URL.
        #[arg(long)]
        from: PathBuf,
        /// The new database: a file that does not exist yet, or an empty PostgreSQL database.
        #[arg(long)]
        to: PathBuf,
    },
}

/// `loopvel sandbox …`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Print the level this machine gets, then run every escape probe inside
    /// it (writes outside, keys, the database, network, survivors, bombs,
    /// ptrace, …), each held or ESCAPED. Exits 1 on any escape.
    Check {
        /// The level to check.
        #[arg(long, value_enum, default_value = "auto")]
        sandbox: SandboxArg,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One probe's attack, run inside the sandbox by `sandbox check`.
    #[command(hide = true)]
    Probe {
        /// The probe.
        name: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// `loopvel local …`
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Make the venv under the cache dir, install xllamacpp, download and check
    /// the models (default: all of qwen-0.5b, qwen-1.5b, smollm-135m).
    Setup {
        /// Models to set up.
        models: Vec<String>,
    },
    /// Start servers (default: all set-up models) and wait until they answer.
    Start {
        /// Models to start.
        models: Vec<String>,
        /// Port (only with one model; default: the model's own port).
        #[arg(long)]
        port: Option<u16>,
        /// Seconds to wait for each server to answer /health.
        #[arg(long, default_value_t = 180)]
        wait_s: u64,
    },
    /// Stop the servers loopvel started (default: all).
    Stop {
        /// Models to stop.
        models: Vec<String>,
    },
    /// Print the [models.*] tables for loopvel.toml (default: all models).
    Config {
        /// Models to include.
        models: Vec<String>,
    },
    /// List the known models, whether they are set up, and which servers run.
    Status,
}

/// `loopvel tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Verify tasks: their tests fail as given, pass with solution/ applied,
    /// and how long they take.
    Check {
        /// A task directory, or a folder of task directories.
        dir: PathBuf,
        /// How the tests are confined.
        #[arg(long, value_enum, default_value = "auto")]
        sandbox: SandboxArg,
    },
    /// Start a task: DIR/NAME with task.toml, a small buggy example, its tests
    /// and solution/, which `tasks check` passes as written. Replace the
    /// example with your code, tests and fix, and check again.
    New {
        /// The task's name (its folder's name): letters, digits, `_` and `-`.
        name: String,
        /// The folder to create it in.
        #[arg(long, default_value = "tasks")]
        dir: PathBuf,
        /// The scaffold's language.
        #[arg(long, value_enum, default_value = "python")]
        lang: LangArg,
    },
    /// Write task directories from a benchmark's own layout: HumanEval JSONL,
    /// a QuixBugs checkout, or Exercism exercises (Python, Rust) as in aider's
    /// polyglot benchmark. Each gets its tests, solution/ and task.toml, so
    /// `tasks check DEST` passes; an existing task directory is never
    /// overwritten without --force.
    Import {
        /// The source's layout.
        #[arg(value_enum)]
        format: ImportFormat,
        /// The source: a .jsonl file (humaneval), or a checkout's folder.
        src: PathBuf,
        /// The folder to write the task directories in.
        dest: PathBuf,
        /// Replace task directories that exist in DEST (otherwise nothing is written).
        #[arg(long)]
        force: bool,
    },
}

/// The layouts `loopvel tasks import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// HumanEval: a JSONL file, one problem a line (task_id, prompt, canonical_solution, test, entry_point).
    Humaneval,
    /// QuixBugs: python_programs/, correct_python_programs/, json_testcases/ or python_testcases/.
    Quixbugs,
    /// Exercism: exercises/practice/NAME/ with .docs/ and .meta/config.json (Python and Rust).
    Exercism,
}

/// Options of `loopvel calc`.
#[derive(Debug, Args)]
pub struct CalcArgs {
    /// Scenario file (TOML) with [loop] and one [models.NAME] table per model.
    pub scenario: PathBuf,
    /// Override a value of the scenario, e.g. --set models.fast.tokens_per_s=1000
    /// (repeatable; the value is TOML, bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the report as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// A model competes on speed only if its pass rate is within this share of
    /// the best (0.05 = 5 percentage points).
    #[arg(long, default_value_t = 0.05, value_name = "SHARE")]
    pub pass_rate_margin: f64,
    /// Show every column of the tables, however wide. Default: fit the
    /// terminal (COLUMNS, else its width; 80 when output is piped), leaving
    /// out secondary columns under 100 columns.
    #[arg(long)]
    pub wide: bool,
}

/// Options of `loopvel simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML): any `calc` scenario, or one with distributions and simulator keys.
    pub scenario: PathBuf,
    /// Runs per model or policy.
    #[arg(long, default_value_t = 100_000)]
    pub runs: u64,
    /// Random seed; the same seed gives the same result whatever the number of threads.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Override a value of the scenario, e.g. --set models.fast.tokens_per_s=1000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Without a [policies] table, also simulate calc's default policies
    /// (best-of-2 and -4, races, escalations), not only the plain loops.
    #[arg(long)]
    pub all_policies: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write the success-by-time curves as CSV (t_s, then one column per model or policy).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw the success-by-time curves (or, with --sweep, the sweep) as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Sweep a value over a grid, e.g. --sweep models.fast.tokens_per_s=100..2000:20
    /// (20 points from 100 to 2000); give it twice for a two-axis grid.
    #[arg(long, value_name = "KEY=FROM..TO:POINTS")]
    pub sweep: Vec<String>,
    /// Points on the success-by-time curve.
    #[arg(long, default_value_t = 25)]
    pub curve_points: usize,
    /// A model competes on speed only if its pass rate is within this share of the best.
    #[arg(long, default_value_t = 0.05, value_name = "SHARE")]
    pub pass_rate_margin: f64,
    /// Show every column of the tables, however wide. Default: fit the
    /// terminal (COLUMNS, else its width; 80 when output is piped), leaving
    /// out secondary columns under 100 columns.
    #[arg(long)]
    pub wide: bool,
}

/// Options of `loopvel run`.
#[derive(Debug, Args)]
#[command(after_long_help = loopvel_harness::edits::format_help())]
pub struct RunArgs {
    /// A task directory, or a folder of tasks.
    #[arg(long)]
    pub tasks: PathBuf,
    /// A model: a name from loopvel.toml, or a shorthand PROVIDER:MODEL: openai:gpt-4o-mini,
    /// anthropic:MODEL, ollama:qwen2.5-coder:1.5b, replay:DATABASE#MODEL (repeatable).
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Replicates per task and model.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Most turns per run.
    #[arg(long, default_value_t = 15)]
    pub max_turns: u32,
    /// Wall-time budget per run, seconds. Checked after each turn: a turn that
    /// started inside the budget finishes, so a run can end past it.
    #[arg(long)]
    pub max_wall_s: Option<f64>,
    /// Cost budget per run, US dollars.
    #[arg(long)]
    pub max_usd: Option<f64>,
    /// What the model sees of earlier turns: `full` (the whole conversation),
    /// `last` (only the latest files and feedback) or `window:K` (the task's
    /// prompt and the latest K exchanges).
    #[arg(long, default_value = "full", value_parser = loopvel_harness::run::History::parse)]
    pub history: loopvel_harness::run::History,
    /// What is fed back after the tests: `raw` (their trimmed output),
    /// `failures` (only the failing tests: names, messages, lines) or
    /// `targeted` (failures, the diff of the last edit and how the score moved).
    #[arg(long, value_enum, default_value = "raw")]
    pub feedback: FeedbackArg,
    /// Which files follow the feedback: `all` again, or only those `changed`
    /// since the model last saw them (a stable prompt prefix servers cache; needs --history full).
    #[arg(long, value_enum, default_value = "all")]
    pub files: FilesArg,
    /// After K turns in a row that were THRASH or passed no more tests than
    /// the best so far, reset the files to the best state and begin the conversation afresh.
    #[arg(long, value_name = "K")]
    pub restart_after: Option<u32>,
    /// Best-of-k within a turn: ask for K replies to each prompt at once, test
    /// each on its own copy of the files and keep the one passing the most
    /// tests (1 to 16; every reply is paid for).
    #[arg(long, value_name = "K")]
    pub candidates: Option<u32>,
    /// Loop designs to compare, a plan dimension like --model: a name from
    /// `[arms.NAME]` in loopvel.toml (`raw`, the plain loop, needs none) or
    /// inline `NAME:feedback=failures,history=last,files=changed,restart_after=2`.
    /// Runs are labelled `MODEL / NAME`. Replaces --history, --feedback, --files, --restart-after, --candidates.
    #[arg(long = "arm", value_name = "NAME")]
    pub arms: Vec<String>,
    /// Play the pending runs in a shuffled order (the same for the same plan)
    /// instead of task by task: a server's prompt cache outlives a run, so in
    /// plan order the first model or arm on each task always pays a cold
    /// first prompt and the others find it cached.
    #[arg(long)]
    pub shuffle: bool,
    /// Loops at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// The database to record into: a SQLite file, or a PostgreSQL database
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/NAME`) to share.
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
    /// Start over instead of resuming the same plan. (Other settings, e.g. another
    /// --max-turns, make another plan in the same database: run says so first, and
    /// report, predict and export read one plan at a time unless told --pool.)
    #[arg(long)]
    pub fresh: bool,
    /// On resume, keep runs that ended in an error (no reply from the server,
    /// a refused key) as they are. By default they are played again.
    #[arg(long)]
    pub no_retry_errors: bool,
    /// Write the plan's runs as pending and return: `loopvel worker` processes
    /// (on this machine or others, on the same --db) claim and play them.
    #[arg(long)]
    pub enqueue: bool,
    /// Model configuration file (default: ./loopvel.toml when present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Bytes of test output fed back to the model per turn (head and tail kept).
    #[arg(long, default_value_t = 8000)]
    pub feedback_bytes: usize,
    /// How the tests (model-written code) are confined. Recorded per run.
    #[arg(long, value_enum, default_value = "auto")]
    pub sandbox: SandboxArg,
    /// Show every column of the tables, however wide. Default: fit the
    /// terminal (COLUMNS, else its width; 80 when output is piped), leaving
    /// out secondary columns under 100 columns.
    #[arg(long)]
    pub wide: bool,
}

/// `--feedback`
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FeedbackArg {
    /// The tests' trimmed output.
    Raw,
    /// Only the failing tests.
    Failures,
    /// Failures, the last edit's diff and the score's move.
    Targeted,
}

/// `--files`
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FilesArg {
    /// Every file again.
    All,
    /// Only files changed since the model last saw them.
    Changed,
}

/// Options of `loopvel export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The database: a SQLite file or a `postgres://` URL.
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
    /// jsonl (one object per line, with "record": "run" or "turn") or csv.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
    /// Which records: runs, turns, or all (all needs jsonl).
    #[arg(long, value_enum, default_value = "all")]
    pub records: ExportRecords,
    /// Which plans of the database to read.
    #[command(flatten)]
    pub plans: PlanArgs,
}

/// `--format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// JSON lines.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
}

/// `--records`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportRecords {
    /// One per run.
    Runs,
    /// One per turn.
    Turns,
    /// Both.
    All,
}

/// Options of `loopvel report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The database `loopvel run` recorded into: a SQLite file or a `postgres://` URL.
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
    /// Only these models (repeatable; default: all).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Print the report as one JSON object.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the report as Markdown tables (for a pull request).
    #[arg(long)]
    pub markdown: bool,
    /// Also write a self-contained HTML report (inline SVG charts, no network) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write one run's transcript (turn by turn, as `loopvel view` shows it)
    /// to the --html file instead of the report.
    #[arg(long, value_name = "ID", requires = "html")]
    pub run: Option<i64>,
    /// Where the tasks are, for a transcript's diffs when the folder the run
    /// recorded is gone (a task, or a folder of tasks).
    #[arg(long = "tasks", value_name = "DIR", requires = "run")]
    pub tasks: Vec<PathBuf>,
    /// Hold out random halves of the runs and report how often the held-out
    /// pass rate and mean time to pass fall inside the predicted intervals.
    #[arg(long)]
    pub check: bool,
    /// Random halvings for --check.
    #[arg(long, default_value_t = 200, requires = "check")]
    pub splits: usize,
    /// Add a table per task: each model's passes and mean time to pass there,
    /// with intervals (where a model wins, and where not).
    #[arg(long)]
    pub by_task: bool,
    /// Two models side by side on the tasks both ran: per task the difference
    /// in pass rate and time to pass, overall paired task-aware intervals,
    /// and an exact sign test over tasks.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub compare: Option<Vec<String>>,
    /// Which plans of the database to read.
    #[command(flatten)]
    pub plans: PlanArgs,
    /// Show every column of the tables, however wide. Default: fit the
    /// terminal (COLUMNS, else its width; 80 when output is piped), leaving
    /// out secondary columns under 100 columns.
    #[arg(long)]
    pub wide: bool,
}

/// Options of `loopvel view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The database to show: a SQLite file or a `postgres://` URL. Opened read-only.
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
    /// Port on 127.0.0.1 (0: any free one; the URL is printed).
    #[arg(long, default_value_t = 8470)]
    pub port: u16,
    /// Where the tasks are, for diffs when the folder a run recorded is gone
    /// (a task, or a folder of tasks; repeatable; `tasks/examples` is always tried).
    #[arg(long = "tasks", value_name = "DIR")]
    pub tasks: Vec<PathBuf>,
}

/// Options of `loopvel predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The database `loopvel run` recorded into: a SQLite file or a `postgres://` URL.
    #[arg(long, env = "LOOPVEL_DB", hide_env_values = true, default_value = "loopvel.db")]
    pub db: PathBuf,
    /// Wall-time budget per run, s.
    #[arg(long)]
    pub max_wall_s: Option<f64>,
    /// Cost budget per run, USD.
    #[arg(long)]
    pub max_usd: Option<f64>,
    /// Turn budget per run (default: the --max-turns the plan was recorded
    /// with; the most turns a recorded run took where no plan recorded one).
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Change the fitted world: models.NAME.FIELD=VALUE or loop.FIELD=VALUE;
    /// VALUE is a number, or xF to multiply (models.fast.tokens_per_s=x10).
    /// Model fields: tokens_per_s, ttft_s, prefill_tokens_per_s, output_tokens,
    /// usd_per_turn, p_first, p_retry, ceiling; loop fields: test_s, overhead_s. Repeatable.
    #[arg(long = "what-if", value_name = "KEY=VALUE")]
    pub what_if: Vec<String>,
    /// Largest k for best-of-k (1 to 8).
    #[arg(long, default_value_t = 8)]
    pub max_k: u32,
    /// Parameter resamples (bootstrap) behind each prediction interval.
    #[arg(long, default_value_t = 100)]
    pub resamples: usize,
    /// Simulated runs per policy and resample.
    #[arg(long, default_value_t = 4000)]
    pub runs: u64,
    /// Seed for resampling and simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also check the predictions against held-out runs: fit on part of the
    /// runs (half of each task's runs; half of the tasks), predict the rest,
    /// and count how often what happened falls inside the 95% interval.
    #[arg(long)]
    pub check: bool,
    /// Splits of each kind for --check.
    #[arg(long, default_value_t = 50, requires = "check")]
    pub splits: usize,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Which plans of the database to read.
    #[command(flatten)]
    pub plans: PlanArgs,
    /// Show every column of the tables, however wide. Default: fit the
    /// terminal (COLUMNS, else its width; 80 when output is piped), leaving
    /// out secondary columns under 100 columns.
    #[arg(long)]
    pub wide: bool,
}

/// Options of `loopvel replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The database to replay from: a SQLite file or a `postgres://` URL.
    #[arg(long)]
    pub db: PathBuf,
    /// The database to record the replayed runs into (resumed if it has them).
    #[arg(long)]
    pub into: PathBuf,
    /// Where the recorded tasks are (matched by name and content hash).
    /// Default: the folder each task was recorded from (databases from before
    /// loopvel recorded it: the run's --tasks as recorded, then tasks/examples).
    #[arg(long)]
    pub tasks: Option<PathBuf>,
    /// Only these models (repeatable; default: all).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// What if NAME generated F times faster: NAME=xF (repeatable).
    #[arg(long = "model-speed", value_name = "NAME=xF")]
    pub model_speed: Vec<String>,
    /// What if NAME's time to first token were S seconds: NAME=S (repeatable).
    #[arg(long = "ttft", value_name = "NAME=S")]
    pub ttft: Vec<String>,
    /// What if every test run took S seconds.
    #[arg(long, value_name = "S")]
    pub test_time: Option<f64>,
    /// Runs replayed at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// How the re-run tests (recorded model-written code) are confined. Recorded per run.
    #[arg(long, value_enum, default_value = "auto")]
    pub sandbox: SandboxArg,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `loopvel demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The loopvel repository (it needs examples/, demo/ and tasks/examples/).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Where to write the HTML report.
    #[arg(long, default_value = "demo-report.html")]
    pub html: PathBuf,
    /// Show every column of the tables, however wide. Default: fit the
    /// terminal (COLUMNS, else its width; 80 when output is piped), leaving
    /// out secondary columns under 100 columns.
    #[arg(long)]
    pub wide: bool,
}
