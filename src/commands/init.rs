//! `loopvel init` and `loopvel tasks new`: the files a new user starts from.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{InitArgs, LangArg};
use crate::error::CliError;

/// The commented loopvel.toml `init` writes.
pub const CONFIG_TEMPLATE: &str = include_str!("../templates/loopvel.toml");

const PYTHON_TASK: &[(&str, &str)] = &[
    ("task.toml", include_str!("../templates/python/task.toml")),
    ("stats.py", include_str!("../templates/python/stats.py")),
    ("test_stats.py", include_str!("../templates/python/test_stats.py")),
    ("solution/stats.py", include_str!("../templates/python/solution/stats.py")),
];

const RUST_TASK: &[(&str, &str)] = &[
    ("task.toml", include_str!("../templates/rust/task.toml")),
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("tests/median.rs", include_str!("../templates/rust/tests/median.rs")),
    ("solution/src/lib.rs", include_str!("../templates/rust/solution/src/lib.rs")),
];

/// Write loopvel.toml (never over an existing file without `--force`).
pub fn run(args: &InitArgs, out: &mut impl Write) -> Result<(), CliError> {
    if args.path.exists() && !args.force {
        return Err(CliError::Usage(format!(
            "{} exists; loopvel init leaves it as it is (give --force to overwrite it, or another path)",
            args.path.display()
        )));
    }
    std::fs::write(&args.path, CONFIG_TEMPLATE)
        .map_err(|e| CliError::Usage(format!("{}: cannot write ({e})", args.path.display())))?;
    let names: Vec<&str> =
        CONFIG_TEMPLATE.lines().filter_map(|l| l.strip_prefix("[models.")?.split(']').next()).collect();
    writeln!(out, "Wrote {} with {} models: {}.", args.path.display(), names.len(), names.join(", "))?;
    writeln!(
        out,
        "Keys stay in environment variables (export OPENAI_API_KEY=… for gpt, and so on); prices are 0 until you set them."
    )?;
    writeln!(out, "Next: loopvel tasks new NAME, then loopvel run --tasks tasks/NAME --model gpt")?;
    Ok(())
}

/// Scaffold DIR/NAME.
pub fn new_task(name: &str, dir: &Path, lang: LangArg, out: &mut impl Write) -> Result<(), CliError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if !valid {
        return Err(CliError::Usage(format!(
            "tasks new {name:?}: a task's name is its folder's name: letters, digits, _ and - (e.g. parse_dates)"
        )));
    }
    let root: PathBuf = dir.join(name);
    if root.exists() {
        return Err(CliError::Usage(format!(
            "{} exists; choose another name, or --dir for another folder (nothing was written)",
            root.display()
        )));
    }
    let files = match lang {
        LangArg::Python => PYTHON_TASK,
        LangArg::Rust => RUST_TASK,
    };
    for (path, content) in files {
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::Usage(format!("{}: cannot create ({e})", parent.display())))?;
        }
        std::fs::write(&target, content)
            .map_err(|e| CliError::Usage(format!("{}: cannot write ({e})", target.display())))?;
    }
    writeln!(out, "Wrote {} ({} files):", root.display(), files.len())?;
    for (path, _) in files {
        writeln!(out, "  {}", root.join(path).display())?;
    }
    writeln!(
        out,
        "It is a working example (a median with a bug, its tests, the fix under solution/). Replace it with your code, \
         tests and fix, then: loopvel tasks check {}",
        root.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_block_of_the_template_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loopvel.toml");
        std::fs::write(&path, CONFIG_TEMPLATE).unwrap();
        let names: Vec<String> = CONFIG_TEMPLATE
            .lines()
            .filter_map(|l| l.strip_prefix("[models.")?.split(']').next())
            .map(String::from)
            .collect();
        assert_eq!(names.len(), 9, "{names:?}");
        for var in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "INCEPTION_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY"] {
            std::env::set_var(var, "test-key-not-real");
        }
        std::env::set_var("OPENROUTER_API_KEY", "test-key-not-real");
        let models = crate::config::resolve_models(Some(&path), &names).unwrap();
        assert_eq!(models.len(), 9);
        assert!(models.iter().all(|m| m.base_url.starts_with("http")));
    }
}
