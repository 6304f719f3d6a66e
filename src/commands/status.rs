//! `loopvel status`: the queue of each plan in a database.

use std::io::Write;

use loopvel_store::Store;

use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::render::{Layout, Table};

/// Print the queue.
pub fn run(args: &StatusArgs, out: &mut impl Write) -> Result<(), CliError> {
    let store = Store::open_existing(&args.db)?;
    let queue = store.queue()?;
    if queue.is_empty() {
        writeln!(out, "{}: no runs yet", crate::commands::shown(&args.db))?;
        return Ok(());
    }
    let mut t = Table::new(["plan", "pending", "running", "stale", "done", "errored", "interrupted"]);
    for q in &queue {
        let running = if q.running.is_empty() {
            "0".to_string()
        } else {
            q.running.iter().map(|(w, n)| format!("{n} ({w})")).collect::<Vec<_>>().join(", ")
        };
        t.row(vec![
            q.plan.to_string(),
            q.pending.to_string(),
            running,
            q.stale.to_string(),
            q.done.to_string(),
            q.errored.to_string(),
            q.interrupted.to_string(),
        ]);
    }
    writeln!(out, "Runs by state in {}", crate::commands::shown(&args.db))?;
    writeln!(out, "{}", t.render(Layout::detect(false)))?;
    writeln!(out, "running: held by a worker (host:pid); stale: its lease ran out, claimable again")?;
    Ok(())
}
