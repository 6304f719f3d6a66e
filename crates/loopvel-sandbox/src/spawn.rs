//! Starting a confined command, waiting for it, and making sure nothing it
//! started outlives it.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cgroup::Cgroup;
use crate::launch::{self, Exec, Setup};
use crate::{bwrap, env, lockdown, Job, Level, Sandbox};

/// How long the output may stay open after the command ended and everything
/// it started was killed. Only a process out of the sandbox's reach (at level
/// `none`, without a cgroup) can hold it that long.
const PIPE_GRACE: Duration = Duration::from_millis(300);

/// What a confined command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Exit code; `None` when killed (timeout or signal).
    pub exit_code: Option<i32>,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Wall time, s: from setting up the sandbox to the end of its cleanup
    /// (the command's own run, to exit or to the kill at the timeout, inside it).
    pub duration_s: f64,
    /// Output (stdout and stderr as written), head and tail within the cap,
    /// then one `[loopvel sandbox] …` line per note.
    pub output: String,
    /// What the sandbox did to the command beyond running it (processes left
    /// running and killed, caps reached, output cut off), in words.
    pub notes: Vec<String>,
}

/// Keep the first and last `cap / 2` bytes of what the command writes.
/// Stops at EOF, or when `stop` is set and nothing more is waiting: a pipe
/// that something holds open cannot hold the turn.
fn capture(fd: OwnedFd, cap: usize, stop: Arc<AtomicBool>) -> String {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut file = std::fs::File::from(fd);
    let half = cap / 2;
    let mut head = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut skipped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        // Checked on every read, not only when the pipe is empty: a survivor
        // out of reach that keeps writing must not keep us reading either.
        if stop.load(Ordering::Acquire) {
            break;
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for &b in &buf[..n] {
                    if head.len() < half {
                        head.push(b);
                    } else {
                        tail.push_back(b);
                        if tail.len() > half {
                            tail.pop_front();
                            skipped += 1;
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd { fd: raw, events: libc::POLLIN, revents: 0 };
                // SAFETY: one pollfd on the stack.
                unsafe { libc::poll(&mut pfd, 1, 20) };
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut out = String::from_utf8_lossy(&head).into_owned();
    if skipped > 0 {
        out.push_str(&format!("\n… [{skipped} bytes cut] …\n"));
    }
    out.push_str(&String::from_utf8_lossy(&tail.into_iter().collect::<Vec<u8>>()));
    out
}

/// Processes (threads included) of this user right now: the base that
/// RLIMIT_NPROC counts from, where no cgroup caps processes.
fn user_tasks() -> u64 {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut n = 0;
    for e in entries.filter_map(Result::ok) {
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else { continue };
        let mine = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
            == Some(uid);
        if mine {
            n += status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1);
        }
    }
    n
}

fn rlimits(job: &Job, cgroup: Option<&Cgroup>, sandbox: &Sandbox) -> Vec<(libc::__rlimit_resource_t, u64)> {
    let mib = 1024 * 1024;
    let l = &job.limits;
    let mut r = vec![
        (libc::RLIMIT_CPU, l.cpu_s),
        (libc::RLIMIT_FSIZE, l.file_size_mb.saturating_mul(mib)),
        (libc::RLIMIT_NOFILE, l.open_files),
        (libc::RLIMIT_CORE, 0),
    ];
    let capped_by_cgroup = cgroup.is_some();
    if !(capped_by_cgroup && sandbox.cgroups.memory()) {
        // RLIMIT_DATA, not RLIMIT_AS: runtimes reserve address space they never
        // touch (glibc 64 MiB per malloc arena, V8 gigabytes, PROT_NONE), which
        // RLIMIT_AS counts and RLIMIT_DATA (writable private memory) does not.
        r.push((libc::RLIMIT_DATA, l.memory_mb.saturating_mul(mib)));
    }
    // SAFETY: getuid cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    if !(root || capped_by_cgroup && sandbox.cgroups.pids()) {
        // RLIMIT_NPROC counts every process of the user: allow this many more.
        r.push((libc::RLIMIT_NPROC, user_tasks().saturating_add(l.processes)));
    }
    r
}

/// A pipe holding `bytes`, its read end for the child: how bubblewrap takes a seccomp program.
fn pipe_with(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let (reader, mut writer) = std::io::pipe()?;
    std::io::Write::write_all(&mut writer, bytes)?;
    drop(writer);
    Ok(OwnedFd::from(reader))
}

pub(crate) fn run(sandbox: &Sandbox, job: &Job) -> std::io::Result<crate::Finished> {
    // The sandbox's own cost (cgroup, filters, bubblewrap's start, cleanup)
    // is part of what a test run costs: timed from here to the end of the cleanup.
    let started = Instant::now();
    let ws = std::path::absolute(job.workspace)?;
    let cgroup = Cgroup::create(&sandbox.cgroups, &job.limits)?;
    let result = run_in(sandbox, job, &ws, cgroup.as_ref());
    if let Some(cg) = &cgroup {
        cg.kill_all();
        cg.remove();
    }
    result.map(|mut f| {
        f.duration_s = started.elapsed().as_secs_f64();
        f
    })
}

/// The uid and gid a root-run loopvel's tests run as at the bwrap level.
const NOBODY: u32 = 65534;

/// Give the workspace to `uid` (and its group), links included, so that tests
/// running as nobody can write in it; loopvel (root) still reads and cleans it.
fn chown_tree(dir: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let kind = e.file_type()?;
        std::os::unix::fs::lchown(e.path(), Some(uid), Some(uid))?;
        if kind.is_dir() {
            chown_tree(&e.path(), uid)?;
        }
    }
    Ok(())
}

/// `sh`, as found on PATH (what `sh -c` means to a user), else /bin/sh.
fn shell() -> CString {
    let path = crate::detect::find_on_path("sh").unwrap_or_else(|| PathBuf::from("/bin/sh"));
    CString::new(path.into_os_string().into_encoded_bytes()).unwrap_or_else(|_| c"/bin/sh".to_owned())
}

fn cstring(s: impl Into<Vec<u8>>) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::other("an argument or variable holds a NUL byte"))
}

fn run_in(sandbox: &Sandbox, job: &Job, ws: &Path, cgroup: Option<&Cgroup>) -> std::io::Result<crate::Finished> {
    let mut keep = Vec::new();
    let mut seccomp_pipes = Vec::new();
    let sh_c = |program: CString, mut argv: Vec<CString>| -> std::io::Result<(CString, Vec<CString>)> {
        argv.extend([cstring("sh")?, cstring("-c")?, cstring(job.command)?]);
        Ok((program, argv))
    };
    let ((program, argv), tmp, lockdown) = match sandbox.level {
        Level::Bwrap => {
            let bwrap = sandbox.bwrap.clone().ok_or_else(|| std::io::Error::other("bwrap went missing"))?;
            for p in lockdown::seccomp_filters(job.network, None)? {
                let fd = pipe_with(&lockdown::program_bytes(&p))?;
                keep.push(fd.as_raw_fd());
                seccomp_pipes.push(fd);
            }
            let as_nobody = sandbox.setpriv.is_some();
            if as_nobody {
                chown_tree(ws, NOBODY)?;
            }
            let mut argv = vec![cstring("bwrap")?];
            let args = bwrap::args(ws, job.network, &sandbox.hidden, job.read, job.limits.tmp_mb, &keep, as_nobody);
            for a in args {
                argv.push(cstring(a.into_encoded_bytes())?);
            }
            argv.push(cstring("--")?);
            if let Some(setpriv) = &sandbox.setpriv {
                argv.push(cstring(setpriv.clone().into_os_string().into_encoded_bytes())?);
                for a in
                    ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]
                {
                    argv.push(cstring(a)?);
                }
            }
            (sh_c(cstring(bwrap.into_os_string().into_encoded_bytes())?, argv)?, PathBuf::from("/tmp"), None)
        }
        Level::Landlock => {
            // No private /tmp without a mount namespace: a folder in the workspace instead.
            let tmp = ws.join(".tmp");
            std::fs::create_dir_all(&tmp)?;
            let ruleset = lockdown::landlock_ruleset(ws, &env::read_roots(job.read), job.network)?;
            let fd: Option<OwnedFd> = ruleset.into();
            let fd = fd.ok_or_else(|| std::io::Error::other("Landlock is not enforced by this kernel"))?;
            let lock = (fd, lockdown::seccomp_filters(job.network, Some(sandbox.landlock_abi))?, lockdown::last_cap());
            (sh_c(shell(), Vec::new())?, tmp, Some(lock))
        }
        Level::None => {
            let tmp = ws.join(".tmp");
            std::fs::create_dir_all(&tmp)?;
            (sh_c(shell(), Vec::new())?, tmp, None)
        }
    };
    let mut envp = Vec::new();
    for (k, v) in env::build(ws, &tmp, job.env) {
        let mut kv = k.into_encoded_bytes();
        kv.push(b'=');
        kv.extend(v.into_encoded_bytes());
        envp.push(cstring(kv)?);
    }
    let exec = Exec { program, argv, envp, cwd: cstring(ws.as_os_str().as_encoded_bytes())? };
    let setup = Setup {
        cgroup_procs: cgroup.map(Cgroup::procs_files).unwrap_or_default(),
        rlimits: rlimits(job, cgroup, sandbox),
        keep_fds: keep,
        lockdown,
    };
    // One pipe for stdout and stderr: the output reads in the order it was written.
    let (reader, writer) = std::io::pipe()?;
    let writer = OwnedFd::from(writer);
    let pid = launch::spawn(&exec, &setup, &writer)?;
    drop(writer);
    drop(seccomp_pipes);
    let group = pid;
    let stop = Arc::new(AtomicBool::new(false));
    let cap = job.output_cap;
    let stop_reader = stop.clone();
    let out_reader = std::thread::spawn(move || capture(OwnedFd::from(reader), cap, stop_reader));
    // The leader is waited for but not reaped until the group is killed: while
    // it is a zombie its pid, the group's id, cannot go to another loop's test.
    let exited = match launch::wait_exited(pid, job.timeout) {
        Ok(exited) => exited,
        Err(e) => {
            kill_group(group);
            launch::reap(pid);
            return Err(e);
        }
    };
    let timed_out = !exited;
    if timed_out {
        kill_group(group);
    }
    let duration_s = 0.0; // set by `run`, which times the whole of it
    let mut notes = Vec::new();
    // Whatever the command left running ends with it. Only a cgroup can count
    // them (a process group's member may be in a new session, or a zombie).
    let left = cgroup.map_or(0, |cg| cg.count_settled(Duration::from_millis(200), pid));
    kill_group(group);
    if let Some(cg) = cgroup {
        cg.kill_all();
        notes.extend(cg.events(&job.limits));
    }
    let status = launch::reap(pid);
    if left > 0 && !timed_out {
        notes.push(format!("{left} process(es) still running after the test command exited were killed"));
    }
    // A timeout is not a note: `timed_out` records it, and the feedback says so.
    let grace = Instant::now();
    while !out_reader.is_finished() && grace.elapsed() < PIPE_GRACE {
        std::thread::sleep(Duration::from_millis(2));
    }
    if !out_reader.is_finished() {
        stop.store(true, Ordering::Release);
        notes.push("the output was still held open by a process out of the sandbox's reach; reading stopped".into());
    }
    let mut output = out_reader.join().unwrap_or_default();
    for n in &notes {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&format!("[loopvel sandbox] {n}\n"));
    }
    let exit_code = if timed_out || !libc::WIFEXITED(status) { None } else { Some(libc::WEXITSTATUS(status)) };
    Ok(crate::Finished { exit_code, timed_out, duration_s, output, notes })
}

fn kill_group(group: i32) {
    // SAFETY: kill(2) on the process group we created.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Whether `/bin/true` can be started inside `cg` (cgroup detection).
pub(crate) fn spawn_true_in(cg: &Cgroup) -> bool {
    let files = cg.procs_files();
    let mut cmd = Command::new("true");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: open/write/close only.
    unsafe {
        cmd.pre_exec(move || {
            for path in &files {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    cmd.status().is_ok_and(|s| s.success())
}
