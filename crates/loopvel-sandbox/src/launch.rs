//! Starting the confined process: `clone(CLONE_VM | CLONE_VFORK)`, the way
//! `posix_spawn` starts one, instead of `fork`.
//!
//! Why not `std::process::Command` with `pre_exec`: a `pre_exec` hook makes
//! the standard library `fork`, and `fork` of a process with many threads
//! copies its page tables under the memory-map lock and leaves every page
//! copy-on-write until the child execs. Measured with 64 loops at once
//! (`LOOPVEL_BENCH_SANDBOX=none cargo bench --bench harness_overhead`, the
//! same busy machine): median harness overhead per turn 6.3 ms with `fork`
//! against 3.2–4.8 ms without; on a quiet machine with this launcher,
//! 0.66–0.92 ms. A
//! `CLONE_VM` child shares the parent's memory and the parent thread waits
//! until it has exec'd: nothing is copied. The price is that the child may
//! only make system calls on data prepared here (no allocation, no locks,
//! no panics): `child_main` keeps to that.

use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::{AsRawFd, OwnedFd};

use seccompiler::BpfProgram;

/// What the child does before exec, all prepared by the parent.
pub(crate) struct Setup {
    pub cgroup_procs: Vec<CString>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    /// Descriptors the command must keep (bubblewrap's seccomp programs).
    pub keep_fds: Vec<c_int>,
    /// Landlock level: the ruleset to enforce, the filters, the highest capability.
    pub lockdown: Option<(OwnedFd, [BpfProgram; 2], c_int)>,
}

/// The command to exec.
pub(crate) struct Exec {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
}

/// Steps the child reports a failure at, by number.
const STEPS: &[&str] = &[
    "setpgid",
    "joining the cgroup",
    "setrlimit",
    "redirecting stdin, stdout and stderr",
    "changing to the workspace",
    "dropping capabilities",
    "setting no_new_privs",
    "enforcing Landlock",
    "loading the seccomp filter",
    "exec",
];

/// Everything `child_main` reads: raw pointers into data the parent keeps alive.
struct Plan<'a> {
    exec_program: *const c_char,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    cwd: *const c_char,
    stdin: c_int,
    stdout: c_int,
    report: c_int,
    setup: &'a Setup,
    filters: Vec<libc::sock_fprog>,
}

fn errno() -> c_int {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The child's work. Returns only on failure, with the step and errno.
///
/// # Safety
/// Runs in a `CLONE_VM` child: system calls only, no allocation, no panic.
unsafe fn child_steps(p: &Plan) -> (c_int, c_int) {
    let s = p.setup;
    if libc::setpgid(0, 0) != 0 {
        return (0, errno());
    }
    for path in &s.cgroup_procs {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return (1, errno());
        }
        // "0" moves the writing process (cgroup v1 and v2 alike).
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        let e = errno();
        libc::close(fd);
        if written != 1 {
            return (1, e);
        }
    }
    // Many loops on few cores: the harness's short bookkeeping goes first.
    libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    for &(resource, value) in &s.rlimits {
        let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
        if libc::setrlimit(resource, &limit) != 0 {
            return (2, errno());
        }
    }
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
    if libc::dup2(p.stdin, 0) < 0 || libc::dup2(p.stdout, 1) < 0 || libc::dup2(p.stdout, 2) < 0 {
        return (3, errno());
    }
    if libc::chdir(p.cwd) != 0 {
        return (4, errno());
    }
    // Every descriptor loopvel has open (the database among them) closes at exec.
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
        for fd in 3..65536 {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    for &fd in &s.keep_fds {
        libc::fcntl(fd, libc::F_SETFD, 0);
    }
    if let Some((ruleset, _, last_cap)) = &s.lockdown {
        for cap in 0..=*last_cap {
            // EPERM for a normal user: there is nothing to drop.
            libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0);
        let header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
        let data = [0u32; 6];
        if libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) != 0 {
            return (5, errno());
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return (6, errno());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
            return (7, errno());
        }
        for f in &p.filters {
            let prog: *const libc::sock_fprog = f;
            if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, prog) != 0 {
                return (8, errno());
            }
        }
    }
    // The parent blocked every signal around clone; the command starts with
    // default handlers (Rust ignores SIGPIPE, for one) and nothing blocked.
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let empty: u64 = 0;
    libc::syscall(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        std::ptr::null_mut::<u64>(),
        8usize,
    );
    libc::execve(p.exec_program, p.argv.as_ptr(), p.envp.as_ptr());
    (9, errno())
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Plan` the parent keeps alive until exec (CLONE_VFORK).
    unsafe {
        let p = &*(arg as *const Plan);
        let (step, e) = child_steps(p);
        let report = [step, e];
        libc::write(p.report, report.as_ptr().cast(), std::mem::size_of_val(&report));
        libc::_exit(127)
    }
}

/// `fd` itself when it is above 2, else a close-on-exec copy that is.
fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor we own; the new one is owned below.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor no one else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) })
}

/// Start `exec` confined by `setup`, its stdin `/dev/null`, its stdout and
/// stderr `stdout`. Returns the pid; the caller reaps it.
pub(crate) fn spawn(exec: &Exec, setup: &Setup, stdout: &OwnedFd) -> std::io::Result<libc::pid_t> {
    // Above 2, so that the child's dup2 onto 0, 1 and 2 cannot clobber one
    // with another (loopvel started with a standard descriptor closed).
    let null = above_stdio(OwnedFd::from(std::fs::File::open("/dev/null")?))?;
    let stdout = above_stdio(stdout.try_clone()?)?;
    let (mut report_read, report_write) = std::io::pipe()?;
    let report_write = above_stdio(OwnedFd::from(report_write))?;
    let ptrs = |v: &[CString]| v.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let filters = match &setup.lockdown {
        Some((_, programs, _)) => programs
            .iter()
            .map(|p| libc::sock_fprog { len: p.len() as u16, filter: p.as_ptr() as *mut libc::sock_filter })
            .collect(),
        None => Vec::new(),
    };
    let plan = Plan {
        exec_program: exec.program.as_ptr(),
        argv: ptrs(&exec.argv),
        envp: ptrs(&exec.envp),
        cwd: exec.cwd.as_ptr(),
        stdin: null.as_raw_fd(),
        stdout: stdout.as_raw_fd(),
        report: report_write.as_raw_fd(),
        setup,
        filters,
    };
    let mut stack = vec![0u8; 256 * 1024];
    // SAFETY: the stack outlives the child's use of it (the parent waits until
    // exec); the top is 16-byte aligned as the ABI wants.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        // No signal handler of ours may run in the child, on our memory. The raw
        // system call, as posix_spawn does: pthread_sigmask leaves glibc's own
        // signals (32, 33) unblocked.
        let all: u64 = !0;
        let mut old: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all as *const u64, &mut old as *mut u64, 8usize);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &plan as *const Plan as *mut c_void,
        );
        let e = errno();
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        if pid < 0 {
            return Err(std::io::Error::from_raw_os_error(e));
        }
        pid
    };
    drop(stack);
    drop(report_write);
    let mut buf = [0u8; 8];
    let n = loop {
        match std::io::Read::read(&mut report_read, &mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // SAFETY: the child is ours; kill and reap it rather than leave it unsupervised.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                reap(pid);
                return Err(e);
            }
            Ok(n) => break n,
        }
    };
    if n == 0 {
        return Ok(pid); // exec closed the report pipe: the command runs
    }
    reap(pid);
    let step = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let e = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let what = usize::try_from(step).ok().and_then(|s| STEPS.get(s)).copied().unwrap_or("setting up");
    let err = std::io::Error::from_raw_os_error(e);
    Err(std::io::Error::new(err.kind(), format!("{what} failed: {err}")))
}

/// Wait up to `timeout` for `pid` to exit, without reaping it: its pid (the
/// process group's id) stays taken until [`reap`], so the group can be
/// killed afterwards without hitting a reused id. Waits on a pidfd (Linux ≥
/// 5.3), else polls.
pub(crate) fn wait_exited(pid: libc::pid_t, timeout: std::time::Duration) -> std::io::Result<bool> {
    let start = std::time::Instant::now();
    // SAFETY: pidfd_open of our own child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as c_int;
    let result = loop {
        // SAFETY: a zeroed siginfo for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: non-reaping, non-blocking wait for our own child.
        let r = unsafe {
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break Err(std::io::Error::last_os_error());
        }
        // SAFETY: si_pid is set when waitid found a child (else it stays 0).
        if unsafe { info.si_pid() } == pid {
            break Ok(true);
        }
        let left = timeout.saturating_sub(start.elapsed());
        // An interrupt ends the wait as a timeout does: the caller kills the group.
        if left.is_zero() || crate::interrupted() {
            break Ok(false);
        }
        // Short polls, so an interrupt is seen within 100 ms.
        let ms = left.as_millis().clamp(1, 100) as c_int;
        if pidfd >= 0 {
            let mut pfd = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one pollfd on the stack.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        } else {
            std::thread::sleep(std::time::Duration::from_millis(ms.min(5) as u64));
        }
    };
    if pidfd >= 0 {
        // SAFETY: closing the pidfd opened above.
        unsafe { libc::close(pidfd) };
    }
    result
}

/// Reap `pid` (blocking); its wait status.
pub(crate) fn reap(pid: libc::pid_t) -> c_int {
    let mut status = 0;
    loop {
        // SAFETY: blocking reap of our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid || (r < 0 && errno() != libc::EINTR) {
            return status;
        }
    }
}
