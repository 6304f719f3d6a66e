//! `loopvel local`: set up, start, stop and configure real local models.

use std::io::Write;
use std::time::Duration;

use loopvel_local::{Home, LocalModel, MODELS};

use crate::cli::LocalCommand;
use crate::error::CliError;

fn pick(names: &[String]) -> Result<Vec<&'static LocalModel>, CliError> {
    if names.is_empty() {
        return Ok(MODELS.iter().collect());
    }
    names.iter().map(|n| loopvel_local::model(n).map_err(CliError::from)).collect()
}

/// Local.
pub fn run(command: &LocalCommand, out: &mut impl Write) -> Result<(), CliError> {
    let home = Home::default_location();
    match command {
        LocalCommand::Setup { models } => {
            let models = pick(models)?;
            let mut log = std::io::stderr();
            loopvel_local::setup(&home, &models, &mut log)?;
            writeln!(
                out,
                "set up in {}: {}",
                home.0.display(),
                models.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            )?;
        }
        LocalCommand::Start { models, port, wait_s } => {
            let models: Vec<&'static LocalModel> = if models.is_empty() {
                MODELS.iter().filter(|m| home.gguf(m).exists()).collect()
            } else {
                pick(models)?
            };
            if models.is_empty() {
                return Err(CliError::Usage("no local model is set up; run `loopvel local setup` first".into()));
            }
            if port.is_some() && models.len() != 1 {
                return Err(CliError::Usage("--port needs exactly one model".into()));
            }
            for m in models {
                let r = loopvel_local::start(&home, m, port.unwrap_or(m.port), Duration::from_secs(*wait_s))?;
                writeln!(out, "{} serving on http://127.0.0.1:{}/v1 (pid {})", r.model, r.port, r.pid)?;
            }
        }
        LocalCommand::Stop { models } => {
            let only = if models.is_empty() { Vec::new() } else { pick(models)? };
            let stopped = loopvel_local::stop(&home, &only);
            if stopped.is_empty() {
                writeln!(out, "no server loopvel started is running")?;
            }
            for r in stopped {
                writeln!(out, "stopped {} (pid {}, port {})", r.model, r.pid, r.port)?;
            }
        }
        LocalCommand::Config { models } => {
            let running = loopvel_local::running(&home);
            let chosen: Vec<(&LocalModel, u16)> = pick(models)?
                .into_iter()
                .map(|m| (m, running.iter().find(|r| r.model == m.name).map_or(m.port, |r| r.port)))
                .collect();
            write!(out, "{}", loopvel_local::config_toml(&chosen))?;
        }
        LocalCommand::Status => {
            let running = loopvel_local::running(&home);
            writeln!(out, "local models in {}", home.0.display())?;
            for m in MODELS.iter() {
                let state = match running.iter().find(|r| r.model == m.name) {
                    Some(r) => format!("running on port {} (pid {})", r.port, r.pid),
                    None if home.gguf(m).exists() => "set up, stopped".into(),
                    None => "not set up".into(),
                };
                writeln!(out, "  {:<12} {state:<32} {}", m.name, m.about)?;
            }
        }
    }
    Ok(())
}
