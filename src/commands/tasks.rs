//! `loopvel tasks check DIR`: each task's tests fail as given and pass with `solution/`.

use std::io::Write;

use loopvel_harness::task::{discover, Task};
use loopvel_harness::testrun::{run_tests, TestRun, TestSpec};
use loopvel_harness::workspace::Workspace;
use loopvel_math::units::seconds;
use loopvel_sandbox::Sandbox;

use crate::cli::TasksCommand;
use crate::error::CliError;
use crate::render;

/// Run a `tasks` subcommand.
pub fn run(command: &TasksCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        TasksCommand::Check { dir, sandbox } => {
            let sandbox = super::sandbox::open(*sandbox, &[], "tasks check")?;
            check(dir, &sandbox, out)
        }
        TasksCommand::New { name, dir, lang } => super::init::new_task(name, dir, *lang, out),
        TasksCommand::Import { format, src, dest, force } => super::import_tasks::run(*format, src, dest, *force, out),
    }
}

/// What checking one task found.
struct Checked {
    task: Task,
    given: std::io::Result<TestRun>,
    solved: Option<std::io::Result<TestRun>>,
    problem: Option<String>,
}

fn tests(task: &Task, ws: &Workspace, sandbox: &Sandbox) -> std::io::Result<TestRun> {
    run_tests(ws.root(), &TestSpec::for_task(task, sandbox))
}

fn check_one(task: Task, sandbox: &Sandbox) -> Checked {
    let ws = match Workspace::create(&task) {
        Ok(ws) => ws,
        Err(e) => {
            let problem = Some(format!("cannot copy into a workspace: {e}"));
            return Checked { task, given: Err(e), solved: None, problem };
        }
    };
    let given = tests(&task, &ws, sandbox);
    let patterns = task.pattern_problems();
    let mut problem = match &given {
        _ if !patterns.is_empty() => Some(patterns.join("\n")),
        Err(e) => Some(format!("the test command cannot start: {e}")),
        Ok(r) if missing_module(&r.output).is_some_and(|m| !own_module(&task, m)) => {
            Some(missing_module_problem(&task, &r.output))
        }
        Ok(r) if r.all_passed() => Some("its tests already pass as given: nothing to fix".into()),
        Ok(_) => None,
    };
    let solved = match ws.apply_solution() {
        Ok(true) => Some(tests(&task, &ws, sandbox)),
        Ok(false) => {
            problem.get_or_insert("has no solution/ to check against; add the fixed files under solution/".into());
            None
        }
        Err(e) => {
            problem.get_or_insert(format!("cannot apply solution/: {e}"));
            None
        }
    };
    if let Some(Ok(r)) = &solved {
        if !r.all_passed() && problem.is_none() && missing_module(&r.output).is_some_and(|m| !own_module(&task, m)) {
            problem = Some(missing_module_problem(&task, &r.output));
        } else if !r.all_passed() && problem.is_none() {
            let why = if r.timed_out { "timed out".to_string() } else { "not every test passes".to_string() };
            let tail: String =
                r.output.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            problem = Some(format!("with solution/ applied {why}:\n{tail}"));
        }
    }
    Checked { task, given, solved, problem }
}

/// The module Python said it lacks (`No module named pytest`): the tests
/// could not run, which is the environment's fault, never the solution's.
fn missing_module(output: &str) -> Option<&str> {
    let at = output.find("No module named ")?;
    let rest = &output[at + "No module named ".len()..];
    let name = rest.split(|c: char| c.is_whitespace()).next()?.trim_matches(|c| c == '\'' || c == '"');
    Some(name).filter(|n| !n.is_empty())
}

/// A module the task itself provides, or that the model is to write (a task
/// whose fix creates `parser.py` fails as given with `No module named
/// 'parser'`, which is the task working, not the environment failing).
fn own_module(task: &Task, module: &str) -> bool {
    let top = module.split('.').next().unwrap_or(module);
    let candidates = [format!("{top}.py"), format!("{top}/__init__.py")];
    candidates.iter().any(|c| {
        let rel = std::path::Path::new(c);
        task.may_edit(rel) || task.dir.join(rel).exists() || task.dir.join("solution").join(rel).exists()
    }) || task.dir.join(top).is_dir()
}

fn missing_module_problem(task: &Task, output: &str) -> String {
    let module = missing_module(output).unwrap_or("?");
    let python = task.python.as_ref().map_or_else(
        || match loopvel_sandbox::find_on_path("python3") {
            Some(p) => format!("python3 on PATH ({})", p.display()),
            None => "python3 (not on PATH)".to_string(),
        },
        |p| p.python().map_or_else(|| format!("python3 on PATH ({})", p.base), |x| x.display().to_string()),
    );
    let declared = task
        .requires
        .iter()
        .any(|r| r.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).next() == Some(module));
    if declared {
        return format!(
            "the tests cannot import {module} although requires names it: {python} says `No module named {module}`; \
             check that the tests run `python3` (the provisioned one comes first on PATH), not a fixed path"
        );
    }
    format!(
        "the tests cannot run: {python} says `No module named {module}`. Declare what the tests need in \
         task.toml, e.g. requires = [\"{module}\"] (loopvel installs it once into a cached environment; \
         give the PyPI name if it differs from the module's)"
    )
}

fn counts(r: &std::io::Result<TestRun>) -> String {
    match r {
        Ok(r) if r.timed_out => "timed out".into(),
        Ok(r) => r.counts.map_or("no count".into(), |c| format!("{}/{}", c.passed, c.total)),
        Err(_) => "did not run".into(),
    }
}

fn check(dir: &std::path::Path, sandbox: &Sandbox, out: &mut impl Write) -> Result<(), CliError> {
    let mut tasks = discover(dir)?;
    super::prepare_python(&mut tasks)?;
    // Six short columns: fits 80 columns with the longest example names
    // ("solved": with solution/ applied; test time: as given / solved).
    let mut table =
        render::Table::new(["task", "report", "passing", "solved", "test time", "check"]).right_from(usize::MAX);
    let mut failures = Vec::new();
    let n = tasks.len();
    for task in tasks {
        let c = check_one(task, sandbox);
        let time = |r: &std::io::Result<TestRun>| r.as_ref().map_or("n/a".into(), |r| seconds(r.duration_s));
        table.row(vec![
            c.task.name.clone(),
            c.task.report.to_string(),
            counts(&c.given),
            c.solved.as_ref().map_or("n/a".into(), counts),
            format!("{} / {}", time(&c.given), c.solved.as_ref().map_or("n/a".into(), time))
                .replacen(" s / ", " / ", 1),
            if c.problem.is_some() { "FAIL".into() } else { "ok".into() },
        ]);
        if let Some(p) = c.problem {
            failures.push(format!("{}: {p}", c.task.dir.display()));
        }
    }
    writeln!(out, "{}", table.render(render::Layout::detect(false)))?;
    writeln!(out, "passing: as given; solved: with solution/ applied; test time: given / solved")?;
    if failures.is_empty() {
        let all = if n == 1 {
            "The task checks out: its tests fail".to_string()
        } else {
            format!("All {n} tasks check out: their tests fail")
        };
        writeln!(out, "{all} as given and pass with solution/ applied.")?;
        Ok(())
    } else {
        for f in &failures {
            writeln!(out, "{f}")?;
        }
        Err(CliError::CheckFailed(format!("{} of {n} tasks failed the check (see above)", failures.len())))
    }
}
