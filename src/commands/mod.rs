//! One module per subcommand.

pub mod calc;
pub mod db;
pub mod demo;
pub mod export;
pub mod import_tasks;
pub mod init;
pub mod local;
pub mod plans;
pub mod predict;
pub mod replay;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod simulate;
pub mod status;
pub mod tasks;
pub mod view;
pub mod worker;

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
        Command::View(args) => view::run(&args, &mut out),
        Command::Completions { shell } => completions(shell, &mut out),
        Command::Init(args) => init::run(&args, &mut out),
        Command::Db { command } => db::run(&command, &mut out),
        Command::Worker(args) => worker::run(&args, &mut out),
        Command::Status(args) => status::run(&args, &mut out),
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

/// How long runs in flight get to end by themselves after SIGINT/SIGTERM
/// (tests are killed at once; a model request cannot be cut short) before
/// loopvel marks them interrupted, removes their workspaces and exits.
const INTERRUPT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The signal that stopped a command that plays runs, once one came.
pub(crate) struct Interrupt(std::sync::Arc<std::sync::atomic::AtomicI32>);

impl Interrupt {
    /// The signal received (2 SIGINT, 15 SIGTERM), if one came.
    pub(crate) fn signal(&self) -> Option<i32> {
        Some(self.0.load(std::sync::atomic::Ordering::SeqCst)).filter(|s| *s != 0)
    }
}

/// Catch SIGINT and SIGTERM for a command that records runs into `store`.
/// The first signal stops every test in flight (the sandbox kills it with all
/// it started) and lets each run end, marked interrupted; runs still in a
/// model request after [`INTERRUPT_GRACE`], or a second signal, get the same
/// at once: the store marks them interrupted (played again on resume), their
/// workspaces are removed, and the process exits with 128 + the signal.
pub(crate) fn on_interrupt(
    store: std::sync::Arc<loopvel_store::Store>,
    command: &'static str,
) -> Result<Interrupt, CliError> {
    on_interrupt_with(
        store,
        command,
        "marked interrupted (played again when the same command runs again)",
        |s: &loopvel_store::Store| s.interrupt_running().unwrap_or(0),
    )
}

/// [`on_interrupt`], with `give_back` doing what becomes of the runs in
/// flight at the last moment (a worker gives them back to the queue), said as `given_back`.
pub(crate) fn on_interrupt_with(
    store: std::sync::Arc<loopvel_store::Store>,
    command: &'static str,
    given_back: &'static str,
    give_back: impl Fn(&loopvel_store::Store) -> usize + Send + Sync + 'static,
) -> Result<Interrupt, CliError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use std::sync::atomic::Ordering;
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| CliError::Usage(format!("cannot catch SIGINT/SIGTERM: {e}")))?;
    let received = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let seen = received.clone();
    std::thread::spawn(move || {
        let force = std::sync::Arc::new(move |store: &loopvel_store::Store, signal: i32| -> ! {
            let marked = give_back(store);
            let removed = loopvel_harness::workspace::remove_live();
            eprintln!(
                "loopvel {command}: stopped by signal {signal}: {marked} run(s) in flight {given_back}, {removed} \
                 workspace(s) removed"
            );
            std::process::exit(128 + signal);
        });
        for signal in signals.forever() {
            if seen.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                loopvel_sandbox::interrupt();
                eprintln!(
                    "loopvel {command}: {} received: stopping; tests in flight are killed and their runs \
                     {given_back} (a second signal stops at once)",
                    if signal == SIGINT { "SIGINT" } else { "SIGTERM" }
                );
                let (store, force) = (store.clone(), force.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(INTERRUPT_GRACE);
                    force(&store, signal)
                });
            } else {
                force(&store, signal);
            }
        }
    });
    Ok(Interrupt(received))
}

/// What a loopvel killed without warning (SIGKILL, a power cut) left: runs
/// marked `running` in `store` (now interrupted, played again), workspaces in
/// the temporary folder, test cgroups. For a command that holds the store's
/// writer claim, before it plays anything. Said on standard error when there was any.
pub(crate) fn clean_up_after_a_kill(store: &loopvel_store::Store, command: &str) -> Result<(), CliError> {
    let runs = store.interrupt_running()?;
    let workspaces = loopvel_harness::workspace::sweep_stale();
    let cgroups = loopvel_sandbox::sweep_stale_cgroups();
    if runs + workspaces + cgroups > 0 {
        eprintln!(
            "loopvel {command}: an earlier loopvel was killed mid-run: {runs} run(s) it left running will be played \
             again; removed {workspaces} workspace(s) and {cgroups} test cgroup(s) it left"
        );
    }
    Ok(())
}

/// A `--db` as messages show it: a file's path, or a URL without its password.
pub(crate) fn shown(db: impl AsRef<std::path::Path>) -> String {
    loopvel_store::shown(&db.as_ref().to_string_lossy())
}
