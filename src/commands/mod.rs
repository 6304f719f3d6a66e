//! One module per subcommand.

pub mod calc;
pub mod demo;
pub mod export;
pub mod init;
pub mod local;
pub mod plans;
pub mod predict;
pub mod replay;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod simulate;
pub mod tasks;

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Run the command the options name, printing to standard output.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Calc(args) => calc::run(&args, &mut out),
        Command::Demo(args) => demo::run(&args, &mut out),
        Command::Simulate(args) => simulate::run(&args, &mut out),
        Command::Tasks { command } => tasks::run(&command, &mut out),
        Command::Sandbox { command } => sandbox::run(&command, &mut out),
        Command::Local { command } => local::run(&command, &mut out),
        Command::Run(args) => run::run(&args, &mut out),
        Command::Export(args) => export::run(&args, &mut out),
        Command::Report(args) => report::run(&args, &mut out),
        Command::Replay(args) => replay::run(&args, &mut out).map(|_| ()),
        Command::Predict(args) => predict::run(&args, &mut out),
        Command::Completions { shell } => completions(shell, &mut out),
        Command::Init(args) => init::run(&args, &mut out),
    }
}

/// Read an input file, with an error that names it.
pub(crate) fn read_input(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read { path: path.display().to_string(), source })
}

/// Install the Python packages the tasks declare (`requires`) into their
/// cached environments, saying on stderr which interpreter the tests get.
pub(crate) fn prepare_python(tasks: &mut [loopvel_harness::task::Task]) -> Result<(), CliError> {
    let width = crate::render::Layout::detect(false).text_width();
    for line in loopvel_harness::pyenv::prepare(tasks)? {
        eprintln!("{}", crate::render::wrap(&line, width));
    }
    Ok(())
}

/// Print `shell`'s completion script for every subcommand and option.
fn completions(shell: crate::cli::ShellArg, out: &mut impl std::io::Write) -> Result<(), CliError> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = match shell {
        crate::cli::ShellArg::Bash => Shell::Bash,
        crate::cli::ShellArg::Zsh => Shell::Zsh,
        crate::cli::ShellArg::Fish => Shell::Fish,
    };
    // clap_complete panics when its writer fails; into memory it cannot, and a
    // closed pipe (`loopvel completions bash | head`) then stays an ordinary error.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "loopvel", &mut buf);
    out.write_all(&buf)?;
    Ok(())
}
