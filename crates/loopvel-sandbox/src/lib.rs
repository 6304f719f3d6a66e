//! Runs a command that model-written code controls, confined.
//!
//! Every turn, loopvel runs a task's tests, and the tests run code a model
//! wrote. That code is hostile until proven otherwise: it must not reach a
//! secret, the results database, the network, anything outside its
//! workspace, or outlive its turn. This crate is the only code that starts
//! such a process. It picks the strongest [`Level`] the machine offers:
//!
//! - [`Level::Bwrap`]: bubblewrap. Read-only root, the workspace the only
//!   writable path, a private `/tmp`, `/run` and home directory (toolchains
//!   re-exposed read-only), the database's and config's folders hidden, no
//!   network namespace, its own pid namespace (everything dies with it),
//!   capabilities dropped, plus the seccomp filter below.
//! - [`Level::Landlock`]: where namespaces are not available. Landlock rules
//!   (read only system and toolchain folders, write only the workspace and
//!   `/dev/null`, TCP bind/connect denied, signals and abstract sockets scoped
//!   to the sandbox) and a seccomp filter (no sockets, `ptrace`,
//!   `process_vm_*`, `io_uring_*`, namespaces, `setsid`/`setpgid`), with
//!   no_new_privs and capabilities dropped.
//! - [`Level::None`]: only when asked for; limits and the kill still apply.
//!
//! At every level: rlimits (CPU time, file size, open files, no core dumps),
//! a memory and a process cap (a cgroup where one is writable, else
//! `RLIMIT_DATA` / `RLIMIT_NPROC`), an environment built from an allow-list, no
//! inherited file descriptors, and a timeout that kills every process the
//! command started and stops reading a pipe that something holds open.
//!
//! ```no_run
//! use loopvel_sandbox::{Job, Limits, Requested, Sandbox};
//! let sandbox = Sandbox::detect(Requested::Auto)?;
//! let ws = std::path::Path::new("/tmp/workspace");
//! let finished = sandbox.run(&Job::new("python3 -m pytest -q", ws))?;
//! println!("{} exited {:?} in {:.2} s", sandbox.level(), finished.exit_code, finished.duration_s);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bwrap;
mod cgroup;
mod detect;
mod env;
mod launch;
mod lockdown;
pub mod probe;
mod spawn;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use detect::find_on_path;
pub use spawn::Finished;

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stop every confined command of this process now (SIGINT/SIGTERM reached
/// loopvel): each one in flight is killed as at its timeout, with everything
/// it started, and a command started after this is killed at once. A signal
/// is process-wide, so this is one flag for the process, not one per job.
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Remove what a loopvel process killed with SIGKILL left of its commands'
/// cgroups, killing anything still in them. Each cgroup's name holds its
/// process's id; only those of processes that are gone are touched. Returns
/// how many were removed.
pub fn sweep_stale_cgroups() -> usize {
    cgroup::sweep_stale()
}

/// How strongly code is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// bubblewrap: namespaces, read-only root, private /tmp, no network.
    Bwrap,
    /// Landlock file and TCP rules plus a seccomp filter, no namespaces.
    Landlock,
    /// No isolation of files or network (limits and the kill still apply).
    None,
}

impl Level {
    /// The name used on the command line and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Bwrap => "bwrap",
            Level::Landlock => "landlock",
            Level::None => "none",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// The strongest level this machine offers; an error when there is none.
    Auto,
    /// This level or an error saying why it is not available.
    Level(Level),
}

/// Why no sandbox could be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The level asked for (or any, for auto) is not available here.
    #[error("{0}")]
    Unavailable(String),
    /// Setting up a confined process failed.
    #[error("the sandbox could not start the command: {0}")]
    Io(#[from] std::io::Error),
}

/// Resource caps for one confined command. Tasks can raise them in `task.toml`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Memory of all processes together, MiB (cgroup; else writable memory per process, RLIMIT_DATA).
    pub memory_mb: u64,
    /// Processes and threads at once (cgroup; else the user's count plus this).
    pub processes: u64,
    /// CPU time per process, s.
    pub cpu_s: u64,
    /// Largest file a process may write, MiB.
    pub file_size_mb: u64,
    /// Open file descriptors per process.
    pub open_files: u64,
    /// Size of the private /tmp (bwrap), MiB.
    pub tmp_mb: u64,
}

impl Limits {
    /// Each cap within what the kernel and a test command can work with; the
    /// error names the field and the range.
    pub fn validate(&self) -> Result<(), String> {
        let mut hard_nofile = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit into a local struct.
        let open_files_max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard_nofile) } == 0 {
            hard_nofile.rlim_max
        } else {
            1 << 20
        };
        let fields = [
            ("memory_mb", self.memory_mb, 64, 1 << 30),
            ("processes", self.processes, 8, 4_194_304),
            ("cpu_s", self.cpu_s, 1, 1 << 31),
            ("file_size_mb", self.file_size_mb, 1, 1 << 30),
            ("open_files", self.open_files, 32, open_files_max),
            ("tmp_mb", self.tmp_mb, 1, 1 << 30),
        ];
        for (name, value, least, most) in fields {
            if value < least || value > most {
                return Err(format!(
                    "limits.{name} = {value} is out of range; give {least} to {most} (the larger ones are what this \
                     machine's kernel allows)"
                ));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    /// Generous for a unit-test suite (cargo on 2 cores peaks near 700 MiB and
    /// 60 threads), small enough that a bomb cannot take the machine down.
    fn default() -> Self {
        Limits { memory_mb: 2048, processes: 512, cpu_s: 600, file_size_mb: 256, open_files: 1024, tmp_mb: 512 }
    }
}

/// One command to run confined.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// Run with `sh -c`.
    pub command: &'a str,
    /// The only writable folder, and the working directory.
    pub workspace: &'a Path,
    /// Kill everything after this long.
    pub timeout: Duration,
    /// Let the command reach the network (task.toml `network = true`).
    pub network: bool,
    /// Variables added to the allow-listed environment (task.toml `env`).
    pub env: &'a [(String, String)],
    /// Extra folders the command may read (task.toml `read`).
    pub read: &'a [PathBuf],
    /// Caps.
    pub limits: Limits,
    /// Cap on captured output, bytes (head and tail kept).
    pub output_cap: usize,
}

impl<'a> Job<'a> {
    /// A job with no network, no extra environment, default limits, a 60 s
    /// timeout and a 64 KiB output cap.
    pub fn new(command: &'a str, workspace: &'a Path) -> Job<'a> {
        Job {
            command,
            workspace,
            timeout: Duration::from_secs(60),
            network: false,
            env: &[],
            read: &[],
            limits: Limits::default(),
            output_cap: 64 * 1024,
        }
    }
}

/// What this machine offers, found once, and the paths that must stay hidden.
#[derive(Debug, Clone)]
pub struct Sandbox {
    level: Level,
    bwrap: Option<PathBuf>,
    landlock_abi: i32,
    cgroups: cgroup::Support,
    hidden: Vec<PathBuf>,
    /// Root only: `setpriv`, with which bwrap's command drops to nobody.
    setpriv: Option<PathBuf>,
}

impl Sandbox {
    /// Find the level to use. `Auto` takes bubblewrap when its probe works,
    /// else Landlock + seccomp, else refuses with how to get one.
    pub fn detect(requested: Requested) -> Result<Sandbox, SandboxError> {
        let mut found = detect::probe();
        let setpriv = if env::is_root() { detect::find_on_path("setpriv") } else { None };
        if let Ok(bwrap) = &found.bwrap {
            found.bwrap = if env::is_root() && setpriv.is_none() {
                Err("loopvel runs as root and setpriv (util-linux) is not on PATH: the tests would run as root \
                     inside bubblewrap; install util-linux or run loopvel as a normal user"
                    .into())
            } else {
                // A trial with every option a real run passes (--size, seccomp by
                // descriptor, the uid drop): an older or setuid bubblewrap that
                // refuses one must not be chosen, or every test run would fail.
                let trial = Sandbox {
                    level: Level::Bwrap,
                    bwrap: Some(bwrap.clone()),
                    landlock_abi: found.landlock_abi,
                    cgroups: found.cgroups.clone(),
                    hidden: Vec::new(),
                    setpriv: setpriv.clone(),
                };
                detect::trial(&trial).map(|()| bwrap.clone())
            };
        }
        let level = match requested {
            Requested::Auto => {
                if found.bwrap.is_ok() {
                    Level::Bwrap
                } else if found.landlock.is_ok() {
                    Level::Landlock
                } else {
                    return Err(SandboxError::Unavailable(format!(
                        "no sandbox is available on this machine, and loopvel will not run model-written code \
                         unconfined unless told to. bubblewrap: {}. Landlock: {}. Install bubblewrap \
                         (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap), or pass \
                         --sandbox none to run without isolation (unsafe: the code can read your keys and \
                         rewrite the results)",
                        found.bwrap.as_ref().err().map_or("", String::as_str),
                        found.landlock.as_ref().err().map_or("", String::as_str),
                    )));
                }
            }
            Requested::Level(Level::Bwrap) => {
                if let Err(why) = &found.bwrap {
                    return Err(SandboxError::Unavailable(format!(
                        "--sandbox bwrap: {why}; install bubblewrap (apt-get install bubblewrap) or leave \
                         --sandbox out to use the best level available"
                    )));
                }
                Level::Bwrap
            }
            Requested::Level(Level::Landlock) => {
                if let Err(why) = &found.landlock {
                    return Err(SandboxError::Unavailable(format!(
                        "--sandbox landlock: {why}; leave --sandbox out to use the best level available"
                    )));
                }
                Level::Landlock
            }
            Requested::Level(Level::None) => Level::None,
        };
        Ok(Sandbox {
            level,
            bwrap: found.bwrap.ok(),
            landlock_abi: found.landlock_abi,
            cgroups: found.cgroups,
            hidden: Vec::new(),
            setpriv: if level == Level::Bwrap { setpriv } else { None },
        })
    }

    /// The level every command runs at.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The Landlock ABI the kernel offers (0: none).
    pub fn landlock_abi(&self) -> i32 {
        self.landlock_abi
    }

    /// How memory and processes are capped here, in words.
    pub fn caps_in_words(&self) -> String {
        self.cgroups.in_words()
    }

    /// Keep `path` (the results database, the config) out of the sandbox's
    /// sight: bwrap mounts an empty folder over its folder; Landlock never
    /// grants it (see [`Sandbox::exposed`]).
    pub fn hide(&mut self, path: &Path) {
        let p = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if !self.hidden.contains(&p) {
            self.hidden.push(p);
        }
    }

    /// Hidden paths that this level would still let a command read, with why.
    /// Empty at `bwrap`; at `landlock`, a hidden path inside a folder it must
    /// grant (a toolchain, a system folder) is listed; at `none`, all of them.
    pub fn exposed(&self, read: &[PathBuf]) -> Vec<PathBuf> {
        match self.level {
            Level::Bwrap => Vec::new(),
            Level::None => self.hidden.clone(),
            Level::Landlock => {
                let roots = env::read_roots(read);
                self.hidden.iter().filter(|h| roots.iter().any(|r| h.starts_with(r))).cloned().collect()
            }
        }
    }

    /// One line for the start of `run`, `replay` and `tasks check`.
    pub fn describe(&self) -> String {
        let what = match self.level {
            Level::Bwrap if self.setpriv.is_some() => "bubblewrap: read-only root, writable workspace only, private /tmp and home, no network, own pid namespace, seccomp, run as nobody",
            Level::Bwrap => "bubblewrap: read-only root, writable workspace only, private /tmp and home, no network, own pid namespace, seccomp",
            Level::Landlock if self.landlock_abi >= 6 => {
                "Landlock + seccomp: writes only in the workspace, no sockets, no ptrace, signals scoped"
            }
            Level::Landlock => {
                "Landlock + seccomp: writes only in the workspace, no sockets, no ptrace; signals NOT scoped \
                 (kernel Landlock ABI below 6: a test can signal loopvel)"
            }
            Level::None => "NONE: model-written code runs with your privileges, can read your keys and rewrite the results (--sandbox none)",
        };
        format!("sandbox: {} ({what}); caps: {}", self.level, self.cgroups.in_words())
    }

    /// Run `job.command` confined; wait for it (or kill it at the timeout),
    /// kill whatever it left running, and return what it did.
    pub fn run(&self, job: &Job) -> Result<Finished, SandboxError> {
        Ok(spawn::run(self, job)?)
    }
}
