//! The tests' Python: the packages a task declares (`requires = ["pytest"]`
//! in task.toml) are installed once into a virtual environment under the
//! user's cache folder, keyed by the interpreter and the requirement set, and
//! that environment's `bin/` goes first on the tests' PATH.
//!
//! Why provision instead of asking the user to: a fresh Debian has a bare
//! `python3` (no pytest, often no pip, no `venv` module's pip), a pyenv or
//! conda `python3` shadows the system one so `apt-get install python3-pytest`
//! changes nothing, and a test run must not depend on which of those a user
//! happens to have. One cached environment per (interpreter, requirements)
//! makes every later run start at once and every run use the same packages.
//!
//! How: `python3 -m venv --without-pip DIR` (works without Debian's
//! python3-venv), then pip installs the requirements into it. pip is the
//! interpreter's own (`python3 -m pip --python DIR/bin/python3`, which honours
//! the user's pip configuration and index) when it has one recent enough, else
//! the pip wheel from PyPI, checked against PyPI's SHA-256 and run from the
//! wheel as get-pip does (`get_pip.py`). A lock file serialises loopvel
//! processes that provision the same environment; a marker file written last
//! says it is complete, so an interrupted install is redone, never used.
//!
//! Inside the sandbox the environment is read-only (it is passed as a `read`
//! folder), so model-written code cannot change the packages later runs use.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped when the layout of a provisioned environment changes.
const LAYOUT: &str = "1";
const READY: &str = ".loopvel-ready.json";
const GET_PIP: &str = include_str!("get_pip.py");

/// Why the tests' Python could not be made ready.
#[derive(Debug, thiserror::Error)]
#[error("requires = {requires:?}: {message}")]
pub struct ProvisionError {
    /// The requirement set.
    pub requires: Vec<String>,
    /// What failed, which interpreter, and what to do.
    pub message: String,
}

/// A Python environment the tests use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonEnv {
    /// The virtual environment's root; `None` when the interpreter on PATH
    /// already had the requirements and provisioning could not run.
    pub root: Option<PathBuf>,
    /// The interpreter it was made from, in words (path and version).
    pub base: String,
    /// The requirement set, sorted.
    pub requires: Vec<String>,
    /// Installed distributions, `name version`, sorted.
    pub installed: Vec<String>,
    /// How it came to be: "made now in 8.1 s", "cached", or why the system one is used.
    #[serde(skip)]
    pub how: String,
    /// The base interpreter's installation (`sys.base_prefix`): the venv's
    /// `python3` is a link into it, so the tests must be able to read it.
    /// Always from a fresh probe, never from the cache's marker file.
    #[serde(skip)]
    pub base_prefix: Option<PathBuf>,
}

impl PythonEnv {
    /// The interpreter the tests get as `python3`.
    pub fn python(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join("bin").join("python3"))
    }

    /// One line for the terminal: which interpreter, which packages.
    pub fn describe(&self) -> String {
        let wanted: Vec<&str> = self.requires.iter().map(|r| requirement_name(r)).collect();
        let shown: Vec<&str> = self
            .installed
            .iter()
            .map(String::as_str)
            .filter(|d| wanted.iter().any(|w| normalise(d.split(' ').next().unwrap_or("")) == normalise(w)))
            .collect();
        let python = self.python().map_or_else(|| "python3 on PATH".to_string(), |p| p.display().to_string());
        format!(
            "tests' python3 for requires = {:?}: {python} ({}; {}), {}",
            self.requires,
            self.base,
            if shown.is_empty() { "no packages".to_string() } else { shown.join(", ") },
            self.how
        )
    }
}

/// Where loopvel keeps what it provisions: `$LOOPVEL_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/loopvel`, else `~/.cache/loopvel`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    var("LOOPVEL_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("loopvel")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("loopvel")))
}

/// Checks one requirement as task.toml gives it: a PyPI requirement
/// specifier, never a URL, a path or a pip option (pip would follow those).
pub fn check_requirement(r: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-[],<>=!~*".contains(c);
    let starts_well = r.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if starts_well && r.len() <= 200 && r.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!(
            "requires = [{r:?}]: give PyPI requirement specifiers such as \"pytest\" or \"pytest>=8,<9\" \
             (letters, digits and . _ - [ ] , < > = ! ~ *; no URLs, paths or pip options)"
        ))
    }
}

/// The distribution name a requirement names (`pytest>=8` → `pytest`).
fn requirement_name(r: &str) -> &str {
    let end = r.find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c))).unwrap_or(r.len());
    &r[..end]
}

/// PyPI's name normalisation (PEP 503): case and runs of `-_.` do not matter.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if "-_.".contains(c) { '-' } else { c.to_ascii_lowercase() };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// What `python3` on PATH is.
#[derive(Debug, Deserialize)]
struct Interpreter {
    executable: String,
    base_executable: String,
    base_prefix: String,
    version: String,
    installed: Vec<String>,
    pip: Option<String>,
}

const PROBE: &str = r#"
import json, sys, platform, importlib.metadata as m
try:
    import pip; pip_version = pip.__version__
except Exception:
    pip_version = None
print(json.dumps({
    "executable": sys.executable,
    "base_executable": getattr(sys, "_base_executable", sys.executable),
    "base_prefix": sys.base_prefix,
    "version": platform.python_version(),
    "installed": sorted({f'{d.metadata["Name"]} {d.version}' for d in m.distributions() if d.metadata["Name"]}),
    "pip": pip_version,
}))
"#;

fn probe(python: &Path) -> Result<Interpreter, String> {
    let mut cmd = Command::new(python);
    // Not in the user's folder: a json.py there would be imported instead.
    cmd.args(["-c", PROBE]).current_dir(neutral_dir());
    let out = cmd.output().map_err(|e| format!("{} cannot start ({e})", python.display()))?;
    if !out.status.success() {
        return Err(format!("{} -c … failed: {}", python.display(), tail(&out.stderr, 5)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{} printed no description ({e})", python.display()))
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let kept: Vec<&str> = text.lines().rev().take(lines).collect();
    kept.into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn has_all(installed: &[String], requires: &[String]) -> bool {
    requires.iter().all(|r| {
        let want = normalise(requirement_name(r));
        installed.iter().any(|d| normalise(d.split(' ').next().unwrap_or("")) == want)
    })
}

/// Where provisioning commands run: not the user's folder, whose files
/// (a `json.py`, a `pytest.tar.gz`) Python or pip would pick up.
fn neutral_dir() -> PathBuf {
    cache_dir().filter(|d| d.is_dir()).unwrap_or_else(std::env::temp_dir)
}

/// pip and venv run outside the sandbox (they need the network), so they get
/// only what they need: no API keys, whatever their names. Their children
/// die with loopvel, so a killed provisioning leaves no pip writing into an
/// environment the next loopvel is remaking.
fn confined(cmd: &mut Command) -> &mut Command {
    const KEEP: &[&str] = &[
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TMPDIR",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "PYENV_ROOT",
        "PYENV_VERSION",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "LOOPVEL_PIP_JSON_URL",
    ];
    let kept: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            KEEP.contains(&k.as_ref()) || k.starts_with("PIP_") || k.to_ascii_lowercase().ends_with("_proxy")
        })
        .collect();
    cmd.env_clear().envs(kept).current_dir(neutral_dir());
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

fn run_logged(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = confined(cmd).output().map_err(|e| format!("{what} cannot start ({e})"))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut both = out.stdout;
        both.extend_from_slice(&out.stderr);
        Err(format!("{what} failed ({}):\n{}", out.status, tail(&both, 12)))
    }
}

/// An exclusive lock held while one environment is made (flock: released
/// by the kernel if loopvel dies, so a killed provisioning never blocks the next).
struct Lock(std::fs::File);

impl Lock {
    fn take(path: &Path, waiting: &str) -> std::io::Result<Lock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a descriptor this struct owns; no memory is shared.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Lock(f));
        }
        eprintln!("{waiting}");
        loop {
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The environment for `requires` (sorted, non-empty), made from `python3`
/// on PATH: found in the cache, or made now. If it cannot be made but
/// `python3` on PATH already has every requirement, that interpreter is used
/// and [`PythonEnv::how`] says why.
pub fn provision(requires: &[String]) -> Result<PythonEnv, ProvisionError> {
    let mut requires = requires.to_vec();
    requires.sort();
    requires.dedup();
    let fail = |message: String| ProvisionError { requires: requires.clone(), message };
    let python = loopvel_sandbox::find_on_path("python3").ok_or_else(|| {
        fail("the tests need Python, and python3 is not on PATH; install it (Debian: apt-get install python3)".into())
    })?;
    let base = probe(&python).map_err(fail)?;
    let base_words = if base.executable == python.display().to_string() {
        format!("Python {} at {}", base.version, base.executable)
    } else {
        format!("Python {} at {} (python3 on PATH: {})", base.version, base.executable, python.display())
    };
    match make(&python, &base, &base_words, &requires) {
        Ok(env) => Ok(env),
        Err(why) if has_all(&base.installed, &requires) => {
            let unchecked =
                if requires.iter().any(|r| requirement_name(r) != r) { " (names checked, not versions)" } else { "" };
            Ok(PythonEnv {
                root: None,
                base: base_words,
                requires: requires.clone(),
                installed: base.installed.clone(),
                how: format!("used as it is{unchecked}: a cached environment could not be made ({})", first_line(&why)),
                base_prefix: None,
            })
        }
        Err(why) => {
            let index = if base.pip.as_deref().is_some_and(pip_has_python_option) {
                "or set PIP_INDEX_URL to a mirror"
            } else {
                "this python3 has no pip, so loopvel fetches pip's wheel from PyPI's JSON API first; \
                 LOOPVEL_PIP_JSON_URL names a mirror of https://pypi.org/pypi/pip/json"
            };
            Err(fail(format!(
                "the tests' environment cannot be made from {base_words}, which lacks {}: {why}\n\
                 Fix: let loopvel reach PyPI ({index}), or install them for that interpreter \
                 ({} -m pip install …).",
                missing(&base.installed, &requires).join(", "),
                python.display()
            )))
        }
    }
}

/// Provision every requirement set the tasks declare, once each, and point
/// the tasks at their environment. Returns one line per environment for the
/// terminal. The error names the first task that declared a set that failed.
pub fn prepare(tasks: &mut [crate::task::Task]) -> Result<Vec<String>, crate::task::TaskError> {
    let mut made: Vec<PythonEnv> = Vec::new();
    let mut lines = Vec::new();
    for task in tasks.iter_mut().filter(|t| !t.requires.is_empty()) {
        let env = match made.iter().find(|e| e.requires == task.requires) {
            Some(e) => e.clone(),
            None => {
                let e = provision(&task.requires).map_err(|e| crate::task::TaskError::Invalid {
                    path: task.dir.join("task.toml"),
                    message: e.to_string(),
                })?;
                lines.push(e.describe());
                made.push(e.clone());
                e
            }
        };
        task.use_python(env);
    }
    Ok(lines)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn missing(installed: &[String], requires: &[String]) -> Vec<String> {
    requires.iter().filter(|r| !has_all(installed, std::slice::from_ref(r))).cloned().collect()
}

fn key(base: &Interpreter, requires: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [LAYOUT, &base.base_executable, &base.version].into_iter().chain(requires.iter().map(String::as_str)) {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn make(python: &Path, base: &Interpreter, base_words: &str, requires: &[String]) -> Result<PythonEnv, String> {
    let cache = cache_dir().ok_or("no cache folder: set HOME, XDG_CACHE_HOME or LOOPVEL_CACHE_DIR")?;
    let envs = cache.join("python");
    std::fs::create_dir_all(&envs).map_err(|e| format!("{}: cannot create ({e})", envs.display()))?;
    let key = key(base, requires);
    let root = envs.join(&key);
    let waiting = format!("waiting for another loopvel that is making {} …", root.display());
    let _lock = Lock::take(&envs.join(format!("{key}.lock")), &waiting)
        .map_err(|e| format!("{}: cannot lock ({e})", envs.display()))?;
    let ready = root.join(READY);
    let base_prefix = Some(PathBuf::from(&base.base_prefix)).filter(|p| p.is_absolute() && p.is_dir());
    if let Ok(text) = std::fs::read_to_string(&ready) {
        if let Ok(mut env) = serde_json::from_str::<PythonEnv>(&text) {
            // The folder is where this key lives, whatever the marker says: a
            // marker that named another folder would be read by the sandbox.
            env.root = Some(root.clone());
            if env.python().is_some_and(|p| p.exists()) {
                env.how = "cached".into();
                env.base_prefix = base_prefix;
                return Ok(env);
            }
        }
    }
    let started = std::time::Instant::now();
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .map_err(|e| format!("{}: cannot clear an unfinished one ({e})", root.display()))?;
    }
    run_logged(
        Command::new(python).args(["-m", "venv", "--without-pip"]).arg(&root),
        &format!("{} -m venv --without-pip", python.display()),
    )?;
    let venv_python = root.join("bin").join("python3");
    // A few retries, not pip's five at 15 s each: offline, the error comes in under a minute.
    let install_args = [
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--retries",
        "2",
        "--timeout",
        "20",
        "-q",
    ];
    if base.pip.as_deref().is_some_and(pip_has_python_option) {
        run_logged(
            Command::new(python).args(["-m", "pip", "--python"]).arg(&venv_python).args(install_args).args(requires),
            &format!("{} -m pip install {}", python.display(), requires.join(" ")),
        )?;
    } else {
        let wheel = pip_wheel(&venv_python, &envs)?;
        run_logged(
            Command::new(&venv_python).arg(wheel.join("pip")).args(install_args).args(requires),
            &format!("pip (from {}) install {}", wheel.display(), requires.join(" ")),
        )?;
    }
    let made = probe(&venv_python)?;
    if !has_all(&made.installed, requires) {
        return Err(format!(
            "pip finished, but {} is not installed in {}",
            missing(&made.installed, requires).join(", "),
            root.display()
        ));
    }
    let env = PythonEnv {
        root: Some(root.clone()),
        base: base_words.to_string(),
        requires: requires.to_vec(),
        installed: made.installed,
        how: format!("made now in {:.1} s", started.elapsed().as_secs_f64()),
        base_prefix,
    };
    let json = serde_json::to_string_pretty(&env).map_err(|e| e.to_string())?;
    std::fs::write(&ready, json).map_err(|e| format!("{}: cannot write ({e})", ready.display()))?;
    Ok(env)
}

/// `pip --python` arrived in pip 22.3.
fn pip_has_python_option(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (22, 3)
}

/// The pip wheel, fetched from PyPI once and kept beside the environments.
fn pip_wheel(venv_python: &Path, envs: &Path) -> Result<PathBuf, String> {
    let out = confined(Command::new(venv_python).args(["-I", "-c", GET_PIP]).arg(envs))
        .output()
        .map_err(|e| format!("{} cannot start ({e})", venv_python.display()))?;
    if !out.status.success() {
        return Err(format!("fetching pip from PyPI failed: {}", tail(&out.stderr, 6)));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("fetching pip from PyPI left no wheel at {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_specifiers_not_urls_paths_or_options() {
        for ok in ["pytest", "pytest>=8,<9", "hypothesis[cli]==6.1", "pytest-timeout~=2.1"] {
            assert!(check_requirement(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-e .", "--index-url=http://x", "pkg @ https://x/p.whl", "./local", "../x", "a\nb", "/abs"] {
            let e = check_requirement(bad).unwrap_err();
            assert!(e.contains("no URLs, paths or pip options"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_compare_as_pypi_does() {
        assert_eq!(requirement_name("pytest>=8"), "pytest");
        assert_eq!(requirement_name("hypothesis[cli]"), "hypothesis");
        assert_eq!(normalise("Pytest_Timeout"), "pytest-timeout");
        assert!(has_all(&["pytest 8.3.4".into(), "pytest-timeout 2.3".into()], &["PyTest>=8".into()]));
        assert!(!has_all(&["pytest-timeout 2.3".into()], &["pytest".into()]));
    }

    #[test]
    fn pip_versions_with_the_python_option() {
        assert!(pip_has_python_option("23.2.1"));
        assert!(pip_has_python_option("22.3"));
        assert!(!pip_has_python_option("22.2.2"));
        assert!(!pip_has_python_option("9.0.1"));
    }
}
