//! A cgroup per confined command, where one is writable: it caps memory and
//! processes for all of the command's processes together, and finds every one
//! of them at the end, whatever sessions or groups they made.
//!
//! cgroup v1 (separate `memory` and `pids` hierarchies, as on this project's
//! CI machines) and v2 (one tree; needs a writable, delegated subtree) are
//! both handled; where neither is writable the caller falls back to rlimits.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// How this machine lets loopvel cap a command's processes together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Support {
    /// v1: the `loopvel` folder in each hierarchy that works.
    V1 { memory: Option<PathBuf>, pids: Option<PathBuf> },
    /// v2: the folder (our own cgroup) under which per-command cgroups go.
    V2 { parent: PathBuf, memory: bool, pids: bool },
    /// No writable cgroup: rlimits only.
    None(String),
}

fn v1_parent(controller: &str) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup").join(controller);
    if !root.join("cgroup.procs").is_file() {
        return None;
    }
    let parent = root.join("loopvel");
    if !parent.is_dir() && std::fs::create_dir(&parent).is_err() {
        return None;
    }
    let probe = parent.join(format!("probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok.then_some(parent)
}

fn v2_parent() -> Option<(PathBuf, bool, bool)> {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim().trim_start_matches('/').to_string();
    let parent = Path::new("/sys/fs/cgroup").join(rel);
    let probe = parent.join(format!("loopvel-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    let memory = probe.join("memory.max").is_file();
    let pids = probe.join("pids.max").is_file();
    let _ = std::fs::remove_dir(&probe);
    Some((parent, memory, pids))
}

impl Support {
    pub(crate) fn detect() -> Support {
        // For tests and for users whose cgroups misbehave: the rlimit fallback on purpose.
        if std::env::var_os("LOOPVEL_SANDBOX_NO_CGROUP").is_some_and(|v| v == "1") {
            return Support::None("cgroups turned off by LOOPVEL_SANDBOX_NO_CGROUP=1".into());
        }
        let (memory, pids) = (v1_parent("memory"), v1_parent("pids"));
        if memory.is_some() || pids.is_some() {
            return Support::V1 { memory, pids };
        }
        if let Some((parent, memory, pids)) = v2_parent() {
            // A cgroup we cannot move a process into is no use: try with `true`.
            let support = Support::V2 { parent, memory, pids };
            if let Ok(Some(cg)) = Cgroup::create(&support, &crate::Limits::default()) {
                let joined = crate::spawn::spawn_true_in(&cg);
                cg.remove();
                if joined {
                    return support;
                }
            }
            return Support::None("cgroup v2 here, but no writable delegated subtree".into());
        }
        Support::None("no writable cgroup (run as root, or with a delegated cgroup v2 subtree)".into())
    }

    pub(crate) fn memory(&self) -> bool {
        match self {
            Support::V1 { memory, .. } => memory.is_some(),
            Support::V2 { memory, .. } => *memory,
            Support::None(_) => false,
        }
    }

    pub(crate) fn pids(&self) -> bool {
        match self {
            Support::V1 { pids, .. } => pids.is_some(),
            Support::V2 { pids, .. } => *pids,
            Support::None(_) => false,
        }
    }

    pub(crate) fn in_words(&self) -> String {
        let kind = match self {
            Support::V1 { .. } => "cgroup v1",
            Support::V2 { .. } => "cgroup v2",
            Support::None(why) => return format!("rlimits only ({why})"),
        };
        let memory = if self.memory() { format!("memory by {kind}") } else { "memory by RLIMIT_DATA".into() };
        let pids = if self.pids() { format!("processes by {kind}") } else { "processes by RLIMIT_NPROC".into() };
        format!("{memory}, {pids}")
    }
}

/// The cgroup(s) of one confined command.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
    memory_dir: Option<PathBuf>,
    pids_dir: Option<PathBuf>,
    v2: bool,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// Whether a process with this id exists (kill with signal 0).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The process id in a cgroup folder's name (`run-PID-N`, `loopvel-run-PID-N`).
fn owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("loopvel-").unwrap_or(name).strip_prefix("run-")?;
    rest.split('-').next()?.parse().ok()
}

pub(crate) fn sweep_stale() -> usize {
    let parents: Vec<PathBuf> = match Support::detect() {
        Support::None(_) => Vec::new(),
        Support::V1 { memory, pids } => memory.into_iter().chain(pids).collect(),
        Support::V2 { parent, .. } => vec![parent],
    };
    let mut removed = 0;
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else { continue };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner(&name) else { continue };
            if alive(pid) || !e.path().is_dir() {
                continue;
            }
            let v2 = name.starts_with("loopvel-");
            let dir = e.path();
            let cg = Cgroup { dirs: vec![dir.clone()], memory_dir: None, pids_dir: None, v2 };
            cg.kill_all();
            cg.remove();
            removed += usize::from(!dir.exists());
        }
    }
    removed
}

impl Cgroup {
    pub(crate) fn create(support: &Support, limits: &crate::Limits) -> std::io::Result<Option<Cgroup>> {
        let name = format!("run-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let bytes = limits.memory_mb.saturating_mul(1024 * 1024).to_string();
        let pids = limits.processes.to_string();
        let cg = match support {
            Support::None(_) => return Ok(None),
            Support::V1 { memory, pids: pids_parent } => {
                let mut cg = Cgroup { dirs: Vec::new(), memory_dir: None, pids_dir: None, v2: false };
                if let Some(parent) = memory {
                    let dir = parent.join(&name);
                    std::fs::create_dir(&dir)?;
                    cg.dirs.push(dir.clone());
                    write(&dir.join("memory.limit_in_bytes"), &bytes)?;
                    // Where swap accounting is on, swap counts too (else the cap only moves pages to swap).
                    let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &bytes);
                    cg.memory_dir = Some(dir);
                }
                if let Some(parent) = pids_parent {
                    let dir = parent.join(&name);
                    std::fs::create_dir(&dir)?;
                    cg.dirs.push(dir.clone());
                    write(&dir.join("pids.max"), &pids)?;
                    cg.pids_dir = Some(dir);
                }
                cg
            }
            Support::V2 { parent, memory, pids: has_pids } => {
                let dir = parent.join(format!("loopvel-{name}"));
                std::fs::create_dir(&dir)?;
                let mut cg = Cgroup { dirs: vec![dir.clone()], memory_dir: None, pids_dir: None, v2: true };
                if *memory {
                    write(&dir.join("memory.max"), &bytes)?;
                    let _ = write(&dir.join("memory.swap.max"), "0");
                    cg.memory_dir = Some(dir.clone());
                }
                if *has_pids {
                    write(&dir.join("pids.max"), &pids)?;
                    cg.pids_dir = Some(dir);
                }
                cg
            }
        };
        Ok(Some(cg))
    }

    /// `cgroup.procs` of each folder, for the child to write its pid into before exec.
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok())
            .collect()
    }

    fn pids_now(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else { return Vec::new() };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Processes still in the cgroup once those already on their way out
    /// have left (bubblewrap's outer process can exit a moment before the
    /// namespace's init does): waits up to `settle` for the count to reach 0.
    /// `except`: the command itself, exited but not yet reaped.
    pub(crate) fn count_settled(&self, settle: Duration, except: i32) -> usize {
        let start = std::time::Instant::now();
        loop {
            let n = self.pids_now().into_iter().filter(|p| *p != except).count();
            if n == 0 || start.elapsed() >= settle {
                return n;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILL every process in the cgroup until none is left (a fork storm
    /// is bounded by the process cap, so this ends). Returns how many were killed.
    pub(crate) fn kill_all(&self) -> usize {
        if self.v2 {
            if let Some(dir) = self.dirs.first() {
                let _ = write(&dir.join("cgroup.kill"), "1");
            }
        }
        let mut killed = 0;
        for _ in 0..200 {
            let pids = self.pids_now();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid read from our own cgroup.
                if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                    killed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        killed
    }

    /// What the caps stopped, in words, for the turn's record.
    pub(crate) fn events(&self, limits: &crate::Limits) -> Vec<String> {
        let mut notes = Vec::new();
        let field = |text: &str, key: &str| -> u64 {
            text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
        };
        if let Some(dir) = &self.memory_dir {
            let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            let kills = field(&text, "oom_kill ");
            if kills > 0 {
                notes.push(format!(
                    "the memory cap ({} MiB) was reached: the kernel killed {kills} process(es)",
                    limits.memory_mb
                ));
            }
        }
        if let Some(dir) = &self.pids_dir {
            let text = std::fs::read_to_string(dir.join("pids.events")).unwrap_or_default();
            let refused = field(&text, "max ");
            if refused > 0 {
                notes.push(format!("the process cap ({}) refused {refused} fork(s)", limits.processes));
            }
        }
        notes
    }

    /// Remove the folders once their processes are gone (zombies take a moment).
    pub(crate) fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
