//! The environment a confined command gets (an allow-list, never the
//! parent's) and the folders it may read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Passed through when set: locale and time zone, and the variables that
/// tell toolchains where they live. Nothing else of loopvel's environment
/// reaches the command (API keys included, whatever their names).
const PASSED: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "RUSTUP_TOOLCHAIN",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "JAVA_HOME",
    "GOROOT",
    "GOTOOLCHAIN",
    "NODE_PATH",
];

/// Toolchain homes that default to a folder under `$HOME`: since `HOME` is
/// the workspace inside, each is set to where it really is, so `cargo`
/// (rustup's proxy), pyenv's shims and `pip install --user` packages work.
const HOME_DEFAULTS: &[(&str, &str)] = &[
    ("RUSTUP_HOME", ".rustup"),
    ("CARGO_HOME", ".cargo"),
    ("PYENV_ROOT", ".pyenv"),
    ("PYTHONUSERBASE", ".local"),
    ("GOPATH", "go"),
];

fn real_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute() && h != Path::new("/"))
}

/// Toolchain folders the command must be able to read: the homes above and
/// the folders of PATH, canonical, without `/` or the home folder itself.
pub(crate) fn toolchain_dirs() -> Vec<PathBuf> {
    let home = real_home();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (var, default) in HOME_DEFAULTS {
        let dir = std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)));
        let Some(d) = dir.filter(|d| d.is_dir()) else { continue };
        match *var {
            // Cargo's home holds the crates.io token (credentials.toml): everything else.
            "CARGO_HOME" => dirs.extend(children_except(&d, &["credentials", "credentials.toml"])),
            // ~/.local also holds ~/.local/share (keyrings, histories): only code.
            "PYTHONUSERBASE" => dirs.extend(["bin", "lib"].iter().map(|s| d.join(s)).filter(|p| p.is_dir())),
            _ => dirs.push(d),
        }
    }
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX", "JAVA_HOME", "GOROOT"] {
        if let Some(d) = std::env::var_os(var).map(PathBuf::from).filter(|d| d.is_dir()) {
            dirs.push(d);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path).filter(|d| d.is_absolute() && d.is_dir()) {
            // A Python venv or conda env on PATH (not activated) needs its whole
            // folder: the interpreter finds its packages beside bin/.
            if let Some(env_root) =
                d.parent().filter(|p| p.join("pyvenv.cfg").is_file() || p.join("conda-meta").is_dir())
            {
                dirs.push(env_root.to_path_buf());
            }
            dirs.push(d);
        }
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let d = d.canonicalize().unwrap_or(d);
        if d == Path::new("/") || home.as_deref() == Some(d.as_path()) || out.contains(&d) {
            continue;
        }
        out.push(d);
    }
    out
}

/// The entries of `dir` but `secret` ones: `dir` itself when it has none of them.
fn children_except(dir: &Path, secret: &[&str]) -> Vec<PathBuf> {
    let has_secret = secret.iter().any(|s| dir.join(s).exists());
    if !has_secret {
        return vec![dir.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.filter_map(Result::ok).filter(|e| !secret.iter().any(|s| e.file_name() == **s)).map(|e| e.path()).collect()
}

/// System folders readable at the Landlock level. Not `/home`, `/root`,
/// `/tmp`, `/var` or `/run`: that is where databases, keys and sockets live.
/// Of `/proc`, only machine-wide files: no `/proc/PID` folder, so loopvel's
/// command line (which names the database) stays unread. Landlock cannot
/// grant a process its own `/proc/self` (every process has another folder);
/// tools that want it fall back (Python's subprocess closes descriptors by
/// trying them, Rust asks the kernel for its CPUs).
pub(crate) const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/nix",
    "/sys",
    "/dev",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/loadavg",
    "/proc/uptime",
    "/proc/version",
    "/proc/filesystems",
    "/proc/sys",
];

/// Whether loopvel runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// The parts of `dir` every user may read: `dir` itself when all of it is,
/// else its readable parts, folder by folder. Why: a root-run command reads
/// any file by ownership, so at the Landlock level `/etc` is granted only as
/// far as a normal user could read it (no `/etc/shadow`, no private keys).
fn world_readable(dir: &Path, out: &mut Vec<PathBuf>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let mut whole = true;
    let mut parts = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Ok(meta) = e.path().symlink_metadata() else {
            whole = false;
            continue;
        };
        if meta.file_type().is_symlink() {
            continue; // a link grants nothing by itself; its target is checked where it lies
        }
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            if mode & 0o005 != 0o005 {
                whole = false;
                continue;
            }
            let mut inner = Vec::new();
            if world_readable(&e.path(), &mut inner) {
                parts.push(e.path());
            } else {
                whole = false;
                out.extend(inner);
            }
        } else if mode & 0o004 != 0 {
            parts.push(e.path());
        } else {
            whole = false;
        }
    }
    if !whole {
        out.extend(parts);
    }
    whole
}

/// `/etc` as the Landlock level grants it (computed once).
fn etc_roots() -> &'static [PathBuf] {
    static ETC: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    ETC.get_or_init(|| {
        let etc = Path::new("/etc");
        if !is_root() {
            return vec![etc.to_path_buf()];
        }
        let mut parts = Vec::new();
        if world_readable(etc, &mut parts) {
            vec![etc.to_path_buf()]
        } else {
            parts
        }
    })
}

/// Everything a Landlock-confined command may read (besides its workspace).
pub(crate) fn read_roots(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> =
        SYSTEM_READ.iter().filter(|p| **p != "/etc").map(PathBuf::from).filter(|p| p.exists()).collect();
    roots.extend(etc_roots().iter().cloned());
    roots.extend(toolchain_dirs());
    roots.extend(extra.iter().cloned());
    roots
}

/// The command's environment. `HOME` is the workspace; `TMPDIR` is `tmp`.
pub(crate) fn build(workspace: &Path, tmp: &Path, extra: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for name in PASSED {
        if let Some(v) = std::env::var_os(name) {
            env.push((name.into(), v));
        }
    }
    let home = real_home();
    for (var, default) in HOME_DEFAULTS {
        let dir = std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)));
        if let Some(d) = dir.filter(|d| d.is_dir()) {
            env.push((var.into(), d.into_os_string()));
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    env.push(("HOME".into(), workspace.as_os_str().to_owned()));
    env.push(("TMPDIR".into(), tmp.as_os_str().to_owned()));
    env.push(("LOOPVEL_SANDBOXED".into(), "1".into()));
    for (k, v) in extra {
        env.retain(|(name, _)| name != k.as_str());
        env.push((k.into(), v.into()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_pass_and_home_is_the_workspace() {
        std::env::set_var("SANDBOX_TEST_API_KEY", "sk-should-not-pass");
        std::env::set_var("SANDBOX_TEST_TOKEN", "tok-should-not-pass");
        let ws = Path::new("/tmp/ws");
        let env = build(ws, Path::new("/tmp"), &[("EXTRA".into(), "1".into())]);
        let names: Vec<String> = env.iter().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.starts_with("SANDBOX_TEST")), "{names:?}");
        assert!(env.iter().any(|(k, v)| k == "HOME" && v == "/tmp/ws"));
        assert!(env.iter().any(|(k, v)| k == "EXTRA" && v == "1"));
        assert!(names.contains(&"PATH".to_string()));
    }

    #[test]
    fn a_cargo_token_is_left_out() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("registry")).unwrap();
        std::fs::write(home.path().join("credentials.toml"), "token = \"secret\"").unwrap();
        let kept = children_except(home.path(), &["credentials", "credentials.toml"]);
        assert_eq!(kept, vec![home.path().join("registry")]);
        let plain = tempfile::tempdir().unwrap();
        assert_eq!(children_except(plain.path(), &["credentials.toml"]), vec![plain.path().to_path_buf()]);
    }

    #[test]
    fn read_roots_leave_out_home_tmp_and_var() {
        let roots = read_roots(&[]);
        for r in &roots {
            assert_ne!(r, Path::new("/"));
            assert!(!r.starts_with("/tmp") && !r.starts_with("/var") && !r.starts_with("/run"), "{}", r.display());
        }
        if let Some(home) = real_home() {
            assert!(!roots.contains(&home));
        }
    }
}
