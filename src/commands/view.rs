//! `loopvel view`, and `report --run ID --html FILE`: runs turn by turn.

use std::io::Write;
use std::path::{Path, PathBuf};

use loopvel_store::Store;
use loopvel_view::files::TaskSearch;
use loopvel_view::pages::Pages;
use loopvel_view::server::Viewer;

use crate::cli::ViewArgs;
use crate::error::CliError;

/// Serves the database until the process is stopped.
pub fn run(args: &ViewArgs, out: &mut impl Write) -> Result<(), CliError> {
    let store = Store::open_read_only(&args.db)?;
    let viewer = Viewer::bind(args.port)
        .map_err(|e| CliError::Usage(format!("{e}; give another --port (0 picks a free one)")))?;
    let db = args.db.to_string_lossy();
    writeln!(
        out,
        "loopvel view: {} at http://127.0.0.1:{}/ (read-only; reload a page to see new turns; Ctrl-C stops)",
        loopvel_store::shown(&db),
        viewer.port
    )?;
    out.flush()?;
    viewer.serve(Pages::new(&db), store, TaskSearch { dirs: args.tasks.clone() }, 4);
    Ok(())
}

/// One run's transcript as a self-contained page.
pub fn write_run_page(
    db: &Path,
    id: i64,
    tasks: &[PathBuf],
    path: &Path,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let store = Store::open_read_only(db)?;
    let pages = Pages::new(&db.to_string_lossy());
    let search = TaskSearch { dirs: tasks.to_vec() };
    let html = pages.run(&store, id, &search, true).map_err(CliError::Usage)?.ok_or_else(|| {
        CliError::Usage(format!(
            "--run {id}: {} has no run {id}; `loopvel view --db {}` lists them",
            crate::commands::shown(db),
            crate::commands::shown(db)
        ))
    })?;
    std::fs::write(path, html)
        .map_err(|e| CliError::Usage(format!("--html {}: cannot write it: {e}", path.display())))?;
    writeln!(out, "wrote run {id}'s transcript to {}", path.display())?;
    Ok(())
}
