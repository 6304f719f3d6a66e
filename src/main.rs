//! `loopvel`: options → command → output. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = loopvel::cli::Cli::parse();
    match loopvel::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loopvel: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
