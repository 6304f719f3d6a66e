//! # loopvel-harness: real tasks, real edits, real tests
//!
//! Brief overview. A [`task::Task`] is a directory with a `task.toml`: the
//! prompt, which files the model may edit and which it is shown, and the test
//! command. A [`workspace::Workspace`] is a fresh copy of a task in a temporary
//! directory; it is the only code that writes files a model named, and it
//! refuses paths outside the task's `edit` globs, absolute paths, `..` and
//! paths through symlinks. [`edits::parse_edits`] reads a model's reply for
//! whole-file and search/replace edits. [`testrun::run_tests`] runs the test
//! command with `sh -c` in its own process group, kills the whole group at the
//! timeout, caps the captured output, and scrubs API keys from the
//! environment; [`report`] counts passed and total tests from the output
//! (pytest, cargo, go, TAP, JUnit XML, or the exit code). [`grade`] turns a
//! turn's result into PASS / PARTIAL / FAIL / THRASH. [`pyenv`] installs the
//! Python packages a task declares (`requires`) once into a cached virtual
//! environment that the tests get first on their PATH. [`plan`] keys a plan,
//! records it and says which of its runs are still to play; [`pool`] plays
//! them on worker threads; [`run::play_run`] plays one, asking a
//! [`run::Responder`] (a live model through `loopvel-provider`, or a
//! recording, [`replay`]) and recording every turn through `loopvel-store`.
//!
//! Architecture invariant: the harness reaches models only through a
//! `Responder` and the database only through `loopvel-store`; model output
//! reaches the file system only through [`workspace::Workspace::apply`].

pub mod design;
pub mod edits;
pub mod failures;
pub mod grade;
pub mod plan;
pub mod pool;
pub mod pyenv;
pub mod replay;
pub mod replaying;
pub mod report;
pub mod run;
pub mod task;
pub mod testrun;
pub mod workspace;
