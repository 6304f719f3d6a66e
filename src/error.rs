//! Errors of the command-line tool and their exit codes.

use loopvel_scenario::ScenarioError;

/// What stops a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An input file cannot be read.
    #[error("cannot read {path}: {source}; check the path")]
    Read {
        /// The path as given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The scenario is not usable.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A command-line value is not usable.
    #[error("{0}")]
    Usage(String),
    /// A task directory is not usable.
    #[error(transparent)]
    Task(#[from] loopvel_harness::task::TaskError),
    /// Local model setup or servers.
    #[error(transparent)]
    Local(#[from] loopvel_local::LocalError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] loopvel_store::StoreError),
    /// A check ran and found problems (already reported on standard output).
    #[error("{0}")]
    CheckFailed(String),
    /// The plan ran, and some of its runs ended in an error (recorded; played
    /// again on resume): exit 3, so a script sees it.
    #[error("{0}")]
    SomeRunsErrored(String),
    /// A signal (SIGINT 2, SIGTERM 15) stopped the command: exit 128 + the signal.
    #[error("{1}")]
    Interrupted(i32, String),
    /// No sandbox for model-written code (or not the one asked for).
    #[error(transparent)]
    Sandbox(#[from] loopvel_sandbox::SandboxError),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// 2 for bad input (as for usage errors), 3 for a plan with runs that
    /// ended in an error, 128 + the signal for a signal, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::SomeRunsErrored(_) => 3,
            CliError::Interrupted(signal, _) => u8::try_from(128 + signal).unwrap_or(1),
            CliError::Read { .. } | CliError::Scenario(_) | CliError::Usage(_) | CliError::Task(_) => 2,
            CliError::Store(
                loopvel_store::StoreError::Missing { .. } | loopvel_store::StoreError::NotLoopvel { .. },
            ) => 2,
            CliError::Local(loopvel_local::LocalError::UnknownModel(_) | loopvel_local::LocalError::NotSetUp(_)) => 2,
            CliError::Output(_)
            | CliError::CheckFailed(_)
            | CliError::Store(_)
            | CliError::Local(_)
            | CliError::Sandbox(_) => 1,
        }
    }
}
