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
    use std::io::Write as _;
    // create_new: an existing file is never replaced, even one that appears
    // between a check and the write.
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(args.force)
        .create_new(!args.force)
        .open(&args.path);
    let mut file = match opened {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::Usage(format!(
                "{} exists; loopvel init leaves it as it is (give --force to overwrite it, or another path)",
                args.path.display()
            )))
        }
        other => other.map_err(|e| CliError::Usage(format!("{}: cannot write ({e})", args.path.display())))?,
    };
    file.write_all(CONFIG_TEMPLATE.as_bytes())
        .map_err(|e| CliError::Usage(format!("{}: cannot write ({e})", args.path.display())))?;
    let names: Vec<&str> =
        CONFIG_TEMPLATE.lines().filter_map(|l| l.strip_prefix("[models.")?.split(']').next()).collect();
    writeln!(out, "Wrote {} with {} models: {}.", args.path.display(), names.len(), names.join(", "))?;
    writeln!(
        out,
        "Keys stay in environment variables (export OPENAI_API_KEY=… for gpt, and so on); prices are 0 until you set them."
    )?;
    writeln!(
        out,
        "Next: loopvel tasks new NAME, loopvel tasks check tasks/NAME, then loopvel run --tasks tasks/NAME --model gpt"
    )?;
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
        // Without the key variables (this test sets no environment): the
        // blocks must parse and resolve; which variable each names is checked apart.
        let keyless: String =
            CONFIG_TEMPLATE.lines().filter(|l| !l.starts_with("api_key_env")).map(|l| format!("{l}\n")).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loopvel.toml");
        std::fs::write(&path, keyless).unwrap();
        let names: Vec<String> = CONFIG_TEMPLATE
            .lines()
            .filter_map(|l| l.strip_prefix("[models.")?.split(']').next())
            .map(String::from)
            .collect();
        assert_eq!(names.len(), 9, "{names:?}");
        let models = crate::config::resolve_models(Some(&path), &names).unwrap();
        assert_eq!(models.len(), 9);
        assert!(models.iter().all(|m| m.base_url.starts_with("http")));
        let keys: Vec<&str> = CONFIG_TEMPLATE.lines().filter_map(|l| l.strip_prefix("api_key_env = ")).collect();
        assert_eq!(keys.len(), 6, "six hosted providers name their key's variable: {keys:?}");
        assert!(keys.iter().all(|k| k.trim_matches('"').ends_with("_API_KEY")));
    }
}
