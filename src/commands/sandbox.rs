//! `loopvel sandbox check`, and the sandbox every command that runs
//! model-written code (`run`, `replay`, `tasks check`) opens the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

use loopvel_sandbox::probe::{self, ProbeResult};
use loopvel_sandbox::{Level, Sandbox};

use crate::cli::{SandboxArg, SandboxCommand};
use crate::error::CliError;
use crate::render;

/// The sandbox for a command that runs model-written code: detected, with
/// `hide` (the database, the config) kept out of its sight, announced on
/// standard error. Refuses a Landlock level that could not hide them.
pub(crate) fn open(arg: SandboxArg, hide: &[&Path], command: &str) -> Result<Sandbox, CliError> {
    let mut sandbox = Sandbox::detect(arg.requested())?;
    // A PostgreSQL database is no file to hide: the sandbox's network rules keep tests from it.
    for p in hide.iter().filter(|p| !p.to_str().is_some_and(loopvel_store::is_postgres_url)) {
        sandbox.hide(p);
    }
    if sandbox.level() == Level::Landlock {
        let exposed = sandbox.exposed(&[]);
        if !exposed.is_empty() {
            return Err(CliError::Usage(format!(
                "{command}: at the landlock level the tests may read {}, which holds {}: that folder is on PATH \
                 or is a toolchain or system folder. Keep the database and config elsewhere (--db, --config), \
                 or use bubblewrap (apt-get install bubblewrap)",
                exposed[0].parent().map_or_else(|| exposed[0].display().to_string(), |p| p.display().to_string()),
                exposed[0].display()
            )));
        }
    }
    let mut err = std::io::stderr();
    let width = crate::render::Layout::detect(false).text_width();
    let _ = writeln!(err, "{}", crate::render::wrap(&format!("loopvel {command}: {}", sandbox.describe()), width));
    if sandbox.level() == Level::None {
        let _ = writeln!(
            err,
            "WARNING: --sandbox none: the tests run model-written code with your privileges; it can read API keys, \
             rewrite the results database and reach the network. Every run is recorded as sandbox = none."
        );
    }
    Ok(sandbox)
}

/// The config file `run` reads, if any: kept out of the sandbox's sight.
pub(crate) fn config_to_hide(given: Option<&Path>) -> Option<PathBuf> {
    crate::config::config_path(given)
}

/// Run a `sandbox` subcommand.
pub fn run(command: &SandboxCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        SandboxCommand::Check { sandbox, json } => check(*sandbox, *json, out),
        SandboxCommand::Probe { name, args } => {
            if !probe::PROBES.iter().any(|p| p.name == name) {
                return Err(CliError::Usage(format!("sandbox probe {name}: no such probe")));
            }
            let code = probe::attack(name, args);
            std::process::exit(code);
        }
    }
}

fn check(arg: SandboxArg, json: bool, out: &mut impl Write) -> Result<(), CliError> {
    let sandbox = Sandbox::detect(arg.requested())?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("sandbox check: cannot find the loopvel binary to probe with: {e}")))?;
    if !json {
        let width = render::Layout::detect(false).text_width();
        writeln!(out, "{}", render::wrap(&sandbox.describe(), width))?;
        writeln!(out, "Landlock ABI: {}", sandbox.landlock_abi())?;
        let running = format!(
            "Running {} escape probes inside it (the attacker is this binary, copied into the workspace)…",
            probe::PROBES.len()
        );
        writeln!(out, "{}", render::wrap(&running, width))?;
        out.flush()?;
    }
    let mut err = std::io::stderr();
    let results = probe::check(&sandbox, &exe, &mut |r: &ProbeResult| {
        if !json {
            let _ = writeln!(err, "  {:<16} {}", r.name, if r.held { "held" } else { "ESCAPED" });
        }
    })?;
    let escaped: Vec<&ProbeResult> = results.iter().filter(|r| !r.held).collect();
    if json {
        let v = serde_json::json!({
            "level": sandbox.level().as_str(),
            "landlock_abi": sandbox.landlock_abi(),
            "caps": sandbox.caps_in_words(),
            "probes": results,
            "held": results.len() - escaped.len(),
            "escaped": escaped.len(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
    } else {
        let mut table = render::Table::new(["probe", "result", "evidence"]).right_from(usize::MAX);
        for r in &results {
            table.row(vec![
                r.name.to_string(),
                if r.held { "held".into() } else { "ESCAPED".into() },
                r.evidence.clone(),
            ]);
        }
        writeln!(out, "{}", table.render(render::Layout::detect(false)))?;
        writeln!(
            out,
            "{} probes at level {}: {} held, {} escaped.",
            results.len(),
            sandbox.level(),
            results.len() - escaped.len(),
            escaped.len()
        )?;
    }
    if escaped.is_empty() {
        Ok(())
    } else {
        let names: Vec<&str> = escaped.iter().map(|r| r.name).collect();
        Err(CliError::CheckFailed(format!(
            "{} of {} probes escaped the {} sandbox: {}",
            escaped.len(),
            results.len(),
            sandbox.level(),
            names.join(", ")
        )))
    }
}
