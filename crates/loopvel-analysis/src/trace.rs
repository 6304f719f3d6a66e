//! Recorded runs as the statistics see them: [`loopvel_record::Run`] with
//! its turns (read from the store by the CLI), and helpers over many.

pub use loopvel_record::{Grade, Outcome, Run, Turn};

/// The models of `runs`, in order of first appearance.
pub fn model_names(runs: &[Run]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.model.as_str()) {
            names.push(&r.model);
        }
    }
    names
}

/// The distinct tasks of `runs`, sorted by name (tables list tasks alphabetically).
pub fn task_names<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Vec<&'a str> {
    let mut names: Vec<&str> = runs.into_iter().map(|r| r.task.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}
