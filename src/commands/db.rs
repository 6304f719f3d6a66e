//! `loopvel db copy`: a whole database from one engine to the other.

use std::io::Write;

use loopvel_math::units::count;
use loopvel_store::Store;

use crate::cli::DbCommand;
use crate::commands::shown;
use crate::error::CliError;

/// Run a `db` subcommand.
pub fn run(command: &DbCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        DbCommand::Copy { from, to } => {
            let is_url = |p: &std::path::Path| p.to_str().is_some_and(loopvel_store::is_postgres_url);
            // A file destination must be new: copying never merges into (or overwrites) recorded runs.
            if !is_url(to) && to.exists() {
                return Err(CliError::Usage(format!(
                    "--to {}: the file exists; give a new file (a copy never merges into recorded runs)",
                    shown(to)
                )));
            }
            let source = Store::open_existing(from)?;
            let target = Store::open(to)?;
            let _writer = target.claim_writer()?;
            let copied = source.copy_into(&target)?;
            let rows = |table: &str| copied.iter().find(|(t, _)| *t == table).map_or(0, |(_, n)| *n as u64);
            writeln!(
                out,
                "copied {}, {}, {} and {} from {} to {}",
                count(rows("plans"), "plan"),
                count(rows("runs"), "run"),
                count(rows("turns"), "turn"),
                count(rows("calls"), "model call"),
                shown(from),
                shown(to)
            )?;
            Ok(())
        }
    }
}
