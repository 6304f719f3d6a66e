//! `loopvel`: options → command → output. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = loopvel::cli::Cli::parse();
    match loopvel::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`loopvel export | head`): not an error.
        Err(loopvel::error::CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loopvel: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
