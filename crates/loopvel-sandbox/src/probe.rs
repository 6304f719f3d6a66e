//! Escape probes: `loopvel sandbox check` runs each inside the sandbox (a
//! copy of the loopvel binary in the workspace does the attack, natively, so
//! no interpreter is needed) and judges from outside whether it held.
//!
//! The attacks are those that Codex CLI's and Anthropic's sandbox-runtime
//! test suites use (writes outside, network by address and by name, Unix
//! sockets, ptrace, `process_vm_*`, `io_uring`, namespaces, capabilities,
//! mounts) and the ones found by attacking loopvel itself (a parent's
//! environment and open database, `setsid` survivors, a held-open pipe,
//! bombs of processes, memory, file size and descriptors).

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Job, Limits, Sandbox};

/// One escape attempt.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Its name (`loopvel sandbox probe NAME`).
    pub name: &'static str,
    /// What it tries, in words.
    pub what: &'static str,
}

/// Every probe, in the order `sandbox check` runs them.
pub const PROBES: &[Probe] = &[
    Probe { name: "write-outside", what: "write a file in a folder outside the workspace" },
    Probe { name: "write-home", what: "write a file in your home folder" },
    Probe { name: "write-tmp", what: "write a file in the machine's /tmp" },
    Probe { name: "write-dev-shm", what: "write a file in /dev/shm" },
    Probe { name: "symlink-out", what: "write through a symbolic link from the workspace to outside" },
    Probe { name: "chmod-outside", what: "change the mode of a file outside the workspace" },
    Probe { name: "write-sysctl", what: "write a kernel setting (/proc/sys), with its own value" },
    Probe { name: "read-root-only", what: "read files only root may read (/etc/shadow, private keys)" },
    Probe { name: "read-db", what: "read the results database" },
    Probe { name: "write-db", what: "rewrite the results database" },
    Probe { name: "hardlink-db", what: "hard-link the database into the workspace" },
    Probe { name: "read-environ", what: "find an API key in any process's environment (/proc/*/environ)" },
    Probe { name: "own-env", what: "find an API key in its own environment" },
    Probe { name: "inherited-fd", what: "read the database through a descriptor loopvel left open" },
    Probe { name: "parent-proc", what: "read loopvel's /proc entries (environ, fds, memory)" },
    Probe { name: "parent-cmdline", what: "read loopvel's command line (it names the database)" },
    Probe { name: "tcp-loopback", what: "connect to a server on 127.0.0.1" },
    Probe { name: "tcp-name", what: "connect to a server by name (localhost)" },
    Probe { name: "udp-loopback", what: "send a UDP datagram to 127.0.0.1" },
    Probe { name: "unix-socket", what: "connect to a local service's Unix socket" },
    Probe { name: "setsid-survivor", what: "leave a process running in a new session" },
    Probe { name: "double-fork", what: "leave a daemon running (double fork)" },
    Probe { name: "pipe-held", what: "hold the output open from a child to stretch the turn" },
    Probe { name: "timeout", what: "spin forever past the timeout" },
    Probe { name: "fork-storm", what: "fork 1,000 processes" },
    Probe { name: "memory", what: "allocate and touch 1 GiB" },
    Probe { name: "file-size", what: "write a 64 MiB file" },
    Probe { name: "open-files", what: "open 4,096 descriptors" },
    Probe { name: "ptrace", what: "ptrace-attach to a process outside" },
    Probe { name: "process-vm", what: "read another process's memory with process_vm_readv" },
    Probe { name: "io-uring", what: "set up io_uring (opens sockets and files past filters)" },
    Probe { name: "signal", what: "kill a process outside the sandbox" },
    Probe { name: "user-namespace", what: "create a user namespace (to gain capabilities in it)" },
    Probe { name: "capabilities", what: "hold any effective capability" },
    Probe { name: "mount", what: "mount a tmpfs" },
];

/// What a probe found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// The probe's name.
    pub name: &'static str,
    /// What it tried.
    pub what: &'static str,
    /// The sandbox held.
    pub held: bool,
    /// Why we say so (what it saw, or what we saw from outside).
    pub evidence: String,
}

// ---------------------------------------------------------------- inside

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map_or("", String::as_str)
}

fn marker_sleep(marker: &str, new_session: bool) -> std::io::Result<std::process::Child> {
    let mut c = std::process::Command::new("sleep");
    c.arg0(marker).arg("30");
    if new_session {
        // SAFETY: setsid in the child before exec.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    c.spawn()
}

/// The attack, run inside the sandbox. Prints `ESCAPED …` when it got
/// through, `held …` when it was stopped; exit code 0 either way.
pub fn attack(name: &str, args: &[String]) -> i32 {
    let a0 = arg(args, 0);
    match name {
        "write-outside" | "write-home" | "write-tmp" | "write-dev-shm" => match std::fs::write(a0, "escaped\n") {
            Ok(()) => say(&format!("ESCAPED wrote {a0}")),
            Err(e) => say(&format!("held: {a0}: {e}")),
        },
        "symlink-out" => {
            let _ = std::os::unix::fs::symlink(a0, "link-out");
            match std::fs::write("link-out/through-link", "escaped\n") {
                Ok(()) => say("ESCAPED wrote through link-out"),
                Err(e) => say(&format!("held: {e}")),
            }
        }
        "chmod-outside" => {
            use std::os::unix::fs::PermissionsExt;
            match std::fs::set_permissions(a0, std::fs::Permissions::from_mode(0o666)) {
                Ok(()) => say(&format!("ESCAPED changed the mode of {a0}")),
                Err(e) => say(&format!("held: {e}")),
            }
        }
        "write-sysctl" => {
            // Its own value back: an escape must not change the machine.
            let path = "/proc/sys/kernel/printk_ratelimit_burst";
            match std::fs::read_to_string(path) {
                Ok(value) => match std::fs::write(path, value.trim()) {
                    Ok(()) => say(&format!("ESCAPED wrote {path}")),
                    Err(e) => say(&format!("held: {path}: {e}")),
                },
                Err(e) => say(&format!("held: {path}: {e}")),
            }
        }
        "read-root-only" => {
            let mut read = Vec::new();
            let mut paths: Vec<PathBuf> = ["/etc/shadow", "/etc/gshadow"].iter().map(PathBuf::from).collect();
            let mut last_err = String::from("none of them exists here");
            for dir in ["/etc/ssl/private", "/etc/ssh"] {
                match std::fs::read_dir(dir) {
                    Ok(entries) => paths.extend(entries.filter_map(Result::ok).map(|e| e.path())),
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => last_err = format!("{dir}: {e}"),
                    Err(_) => {}
                }
            }
            for p in paths {
                use std::os::unix::fs::PermissionsExt;
                // Only files a normal user could not read count.
                let private = std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o004 == 0);
                if !private {
                    continue;
                }
                match std::fs::read(&p) {
                    Ok(bytes) if !bytes.is_empty() => read.push(format!("{} ({} bytes)", p.display(), bytes.len())),
                    Ok(_) => {}
                    Err(e) => last_err = format!("{}: {e}", p.display()),
                }
            }
            if read.is_empty() {
                say(&format!("held: {last_err}"));
            } else {
                say(&format!("ESCAPED read {}", read.join(", ")));
            }
        }
        "read-db" => match std::fs::read_to_string(a0) {
            Ok(text) => say(&format!("ESCAPED read: {text}")),
            Err(e) => say(&format!("held: {e}")),
        },
        "write-db" => match std::fs::OpenOptions::new().append(true).open(a0) {
            Ok(mut f) => match f.write_all(b"FORGED") {
                Ok(()) => say("ESCAPED appended to the database"),
                Err(e) => say(&format!("held: {e}")),
            },
            Err(e) => say(&format!("held: {e}")),
        },
        "hardlink-db" => match std::fs::hard_link(a0, "stolen.db") {
            Ok(()) => say(&format!("ESCAPED linked: {}", std::fs::read_to_string("stolen.db").unwrap_or_default())),
            Err(e) => say(&format!("held: {e}")),
        },
        "read-environ" => {
            let mut found = 0;
            for e in std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok) {
                if let Ok(bytes) = std::fs::read(e.path().join("environ")) {
                    let text = String::from_utf8_lossy(&bytes);
                    if text.contains(a0) {
                        found += 1;
                        say(&format!("ESCAPED {} has {a0}", e.path().display()));
                    }
                }
            }
            if found == 0 {
                say("held: no process environment readable here holds the key");
            }
        }
        "own-env" => {
            let leaked: Vec<String> =
                std::env::vars().filter(|(k, v)| v.contains(a0) || k.ends_with("_API_KEY")).map(|(k, _)| k).collect();
            if leaked.is_empty() {
                say("held: no key in the environment");
            } else {
                say(&format!("ESCAPED {leaked:?}"));
            }
        }
        "inherited-fd" => {
            let mut hit = false;
            for e in std::fs::read_dir("/proc/self/fd").into_iter().flatten().filter_map(Result::ok) {
                let fd: i32 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
                if fd <= 2 {
                    continue;
                }
                let mut buf = vec![0u8; 4096];
                // SAFETY: pread on a descriptor number into our buffer.
                let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 && String::from_utf8_lossy(&buf[..n as usize]).contains(a0) {
                    hit = true;
                    say(&format!("ESCAPED fd {fd} reads the database"));
                }
            }
            if !hit {
                say("held: no inherited descriptor reaches the database");
            }
        }
        "parent-proc" => {
            // Listing /proc/PID/fd shows only numbers; what they point to, the
            // environment and the memory are what must stay out of reach.
            let base = PathBuf::from(format!("/proc/{a0}"));
            let mut escaped = false;
            match std::fs::read(base.join("environ")) {
                Ok(bytes) => {
                    escaped = true;
                    let has = String::from_utf8_lossy(&bytes).contains(arg(args, 1));
                    say(&format!(
                        "ESCAPED read loopvel's environ ({} bytes, key {})",
                        bytes.len(),
                        if has { "found" } else { "absent" }
                    ));
                }
                Err(e) => say(&format!("environ: {e}")),
            }
            let links = std::fs::read_dir(base.join("fd"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .count();
            if links > 0 {
                escaped = true;
                say(&format!("ESCAPED resolved {links} of loopvel's descriptors"));
            }
            if std::fs::File::open(base.join("mem")).is_ok() {
                escaped = true;
                say("ESCAPED opened loopvel's memory");
            }
            if !escaped {
                say("held: loopvel's environ, descriptors and memory are out of reach");
            }
        }
        "parent-cmdline" => match std::fs::read(format!("/proc/{a0}/cmdline")) {
            Ok(bytes) => say(&format!("ESCAPED read: {}", String::from_utf8_lossy(&bytes).replace('\0', " "))),
            Err(e) => say(&format!("held: {e}")),
        },
        "tcp-loopback" | "tcp-name" => match TcpStream::connect_timeout(
            &match std::net::ToSocketAddrs::to_socket_addrs(a0).ok().and_then(|mut i| i.next()) {
                Some(addr) => addr,
                None => {
                    say(&format!("held: {a0} does not resolve"));
                    return 0;
                }
            },
            Duration::from_secs(2),
        ) {
            Ok(mut s) => {
                let _ = s.write_all(b"escaped");
                say(&format!("ESCAPED connected to {a0}"));
            }
            Err(e) => say(&format!("held: {a0}: {e}")),
        },
        "udp-loopback" => match UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"escaped", a0)) {
            Ok(_) => say(&format!("sent to {a0}")),
            Err(e) => say(&format!("held: {e}")),
        },
        "unix-socket" => match std::os::unix::net::UnixStream::connect(a0) {
            Ok(mut s) => {
                let _ = s.write_all(b"escaped");
                say(&format!("ESCAPED connected to {a0}"));
            }
            Err(e) => say(&format!("held: {e}")),
        },
        "setsid-survivor" | "double-fork" | "pipe-held" => {
            let setsid = name != "double-fork";
            match marker_sleep(a0, setsid) {
                Ok(child) => say(&format!("started {} (pid {})", a0, child.id())),
                Err(e) => say(&format!("held: {e}")),
            }
            // Exit without waiting: the child is orphaned, and (pipe-held) keeps our stdout.
        }
        "timeout" => {
            say("spinning");
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "fork-storm" => {
            let mut made = 0;
            for _ in 0..1000 {
                // SAFETY: the child only sleeps and exits.
                match unsafe { libc::fork() } {
                    0 => unsafe {
                        libc::sleep(5);
                        libc::_exit(0);
                    },
                    n if n > 0 => made += 1,
                    _ => break,
                }
            }
            say(&format!("forked {made}"));
        }
        "memory" => {
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            for i in 1..=64 {
                let mut v = Vec::new();
                if v.try_reserve_exact(16 << 20).is_err() {
                    say(&format!("held: allocation refused at {} MiB", (i - 1) * 16));
                    return 0;
                }
                v.resize(16 << 20, 1u8);
                blocks.push(v);
                say(&format!("allocated {} MiB", i * 16));
            }
        }
        "file-size" => {
            // SAFETY: ignore SIGXFSZ so that a too-large write fails with EFBIG instead of killing us.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            let Ok(mut f) = std::fs::File::create("big.bin") else { return 0 };
            let chunk = vec![0u8; 1 << 20];
            for i in 1..=64 {
                if let Err(e) = f.write_all(&chunk) {
                    say(&format!("held at {} MiB: {e}", i - 1));
                    return 0;
                }
                say(&format!("wrote {i} MiB"));
            }
        }
        "open-files" => {
            let mut files = Vec::new();
            for _ in 0..4096 {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => files.push(f),
                    Err(e) => {
                        say(&format!("opened {} ({e})", files.len()));
                        return 0;
                    }
                }
            }
            say(&format!("opened {}", files.len()));
        }
        "ptrace" => {
            let pid: i32 = a0.parse().unwrap_or(0);
            // SAFETY: PTRACE_ATTACH to the victim (a `sleep` the checker started); detached at once.
            let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            if r == 0 {
                unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
                say(&format!("ESCAPED attached to {pid}"));
            } else {
                say(&format!("held: {}", errno()));
            }
        }
        "process-vm" => {
            let pid: i32 = a0.parse().unwrap_or(0);
            let mut buf = [0u8; 16];
            let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
            // Any address of the victim: its first mapping when visible, else a typical one.
            let addr = std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .ok()
                .and_then(|m| usize::from_str_radix(m.split('-').next()?, 16).ok())
                .unwrap_or(0x40_0000);
            let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
            // SAFETY: reads into our own buffer.
            let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            let err = std::io::Error::last_os_error();
            if n > 0 || err.raw_os_error() == Some(libc::EFAULT) {
                say(&format!("ESCAPED process_vm_readv reached {pid}"));
            } else {
                say(&format!("held: {err}"));
            }
        }
        "io-uring" => {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_setup with a zeroed params struct of the kernel's size.
            let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
            if fd >= 0 {
                unsafe { libc::close(fd as i32) };
                say("ESCAPED io_uring_setup succeeded");
            } else {
                say(&format!("held: {}", errno()));
            }
        }
        "signal" => {
            let pid: i32 = a0.parse().unwrap_or(0);
            // SAFETY: kill(2) aimed at the checker's own victim process.
            let r = unsafe { libc::kill(pid, libc::SIGKILL) };
            say(&if r == 0 { format!("sent SIGKILL to {pid}") } else { format!("held: {}", errno()) });
        }
        "user-namespace" => {
            // SAFETY: unshare in this process only.
            if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
                say("ESCAPED made a user namespace");
            } else {
                say(&format!("held: {}", errno()));
            }
        }
        "capabilities" => {
            // capget(2), not /proc/self/status: Landlock may hide /proc.
            let header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
            let mut data = [0u32; 6]; // two {effective, permitted, inheritable}
                                      // SAFETY: capget into our own buffers of the kernel's layout.
            let r = unsafe { libc::syscall(libc::SYS_capget, header.as_ptr(), data.as_mut_ptr()) };
            let effective = (u64::from(data[3]) << 32) | u64::from(data[0]);
            if r != 0 {
                say(&format!("capget failed: {}", errno()));
            } else if effective == 0 {
                say("held: no effective capability");
            } else {
                say(&format!("ESCAPED effective capabilities {effective:#x}"));
            }
        }
        "mount" => {
            let _ = std::fs::create_dir_all("mnt");
            let (src, target, fs) = (c"none", c"mnt", c"tmpfs");
            // SAFETY: mount(2) with constant strings.
            let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
            if r == 0 {
                unsafe { libc::umount(target.as_ptr()) };
                say("ESCAPED mounted a tmpfs");
            } else {
                say(&format!("held: {}", errno()));
            }
        }
        other => {
            say(&format!("unknown probe {other}"));
            return 2;
        }
    }
    0
}

// ---------------------------------------------------------------- outside

/// Processes on the machine whose command line holds `marker`; killed.
fn kill_marked(marker: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(marker) {
                // SAFETY: kill(2) of a process that carries our marker.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                n += 1;
            }
        }
    }
    n
}

fn flag_listener_tcp() -> std::io::Result<(String, Arc<AtomicBool>)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let hit = Arc::new(AtomicBool::new(false));
    let h = hit.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            if s.is_ok() {
                h.store(true, Ordering::Release);
            }
        }
    });
    Ok((format!("127.0.0.1:{port}"), hit))
}

fn last_number(text: &str, prefix: &str) -> u64 {
    text.lines().filter_map(|l| l.strip_prefix(prefix)?.split_whitespace().next()?.parse().ok()).max().unwrap_or(0)
}

/// Caps `sandbox check` runs under: small, so that the bombs are quick.
pub const CHECK_LIMITS: Limits =
    Limits { memory_mb: 256, processes: 64, cpu_s: 10, file_size_mb: 16, open_files: 256, tmp_mb: 64 };

/// Run every probe inside `sandbox` with `exe` (a loopvel binary) as the
/// attacker, and judge each. `on_result` sees each result as it comes.
pub fn check(
    sandbox: &Sandbox,
    exe: &Path,
    on_result: &mut dyn FnMut(&ProbeResult),
) -> std::io::Result<Vec<ProbeResult>> {
    let pid = std::process::id();
    let outside = tempfile::Builder::new().prefix("loopvel-check-outside-").tempdir()?;
    let ws = tempfile::Builder::new().prefix("loopvel-check-ws-").tempdir()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let canary = format!("sk-loopvel-canary-{pid}-{nanos}");
    let db = outside.path().join("results.db");
    std::fs::write(&db, format!("SQLite format 3 pretend database {canary}"))?;
    let mut sandbox = sandbox.clone();
    sandbox.hide(&db);
    // The canary plays an API key in loopvel's own environment.
    // SAFETY (of intent): set before any probe process starts; read by none of our threads.
    std::env::set_var("LOOPVEL_CHECK_API_KEY", &canary);
    // A descriptor left open without close-on-exec, as a careless library might.
    let db_c = std::ffi::CString::new(db.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: open(2) of our own file; closed at the end.
    let leaked_fd = unsafe { libc::open(db_c.as_ptr(), libc::O_RDONLY) };
    let probe_exe = ws.path().join("loopvel-probe");
    std::fs::copy(exe, &probe_exe)?;
    let (tcp_addr, tcp_hit) = flag_listener_tcp()?;
    let (name_addr, name_hit) = flag_listener_tcp()?;
    let name_addr = name_addr.replace("127.0.0.1", "localhost");
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_millis(300)))?;
    let udp_addr = udp.local_addr()?.to_string();
    let sock_path = outside.path().join("service.sock");
    let unix = UnixListener::bind(&sock_path)?;
    unix.set_nonblocking(true)?;
    let mut victim = std::process::Command::new("sleep").arg("120").spawn()?;
    let victim_pid = victim.id().to_string();
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_dir());
    let home_target = home.as_ref().map(|h| h.join(format!(".loopvel-check-{pid}")));
    let tmp_target = PathBuf::from(format!("/tmp/loopvel-check-{pid}"));
    let shm_target = PathBuf::from(format!("/dev/shm/loopvel-check-{pid}"));
    let outside_target = outside.path().join("written-from-inside");
    let mode_target = outside.path().join("private-file");
    std::fs::write(&mode_target, "mode 0600\n")?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&mode_target, std::fs::Permissions::from_mode(0o600))?;
    }
    let marker = format!("loopvel-check-marker-{pid}");
    let mut results = Vec::new();
    for probe in PROBES {
        let args: Vec<String> = match probe.name {
            "write-outside" => vec![outside_target.display().to_string()],
            "write-home" => match &home_target {
                Some(t) => vec![t.display().to_string()],
                None => continue,
            },
            "write-tmp" => vec![tmp_target.display().to_string()],
            "write-dev-shm" => vec![shm_target.display().to_string()],
            "symlink-out" => vec![outside.path().display().to_string()],
            "chmod-outside" => vec![mode_target.display().to_string()],
            "read-db" | "write-db" | "hardlink-db" => vec![db.display().to_string()],
            "read-environ" | "own-env" | "inherited-fd" => vec![canary.clone()],
            "parent-proc" => vec![pid.to_string(), canary.clone()],
            "parent-cmdline" => vec![pid.to_string()],
            "tcp-loopback" => vec![tcp_addr.clone()],
            "tcp-name" => vec![name_addr.clone()],
            "udp-loopback" => vec![udp_addr.clone()],
            "unix-socket" => vec![sock_path.display().to_string()],
            "setsid-survivor" | "double-fork" | "pipe-held" => vec![format!("{marker}-{}", probe.name)],
            "ptrace" | "process-vm" | "signal" => vec![victim_pid.clone()],
            _ => Vec::new(),
        };
        let mut command = format!("./loopvel-probe sandbox probe {}", probe.name);
        for a in &args {
            command.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        }
        let timeout = if probe.name == "timeout" { Duration::from_secs(1) } else { Duration::from_secs(10) };
        let db_before = std::fs::read(&db)?;
        let started = Instant::now();
        let job = Job { timeout, limits: CHECK_LIMITS, ..Job::new(&command, ws.path()) };
        let ran = sandbox.run(&job);
        let wall = started.elapsed().as_secs_f64();
        let (output, timed_out) = match &ran {
            Ok(f) => (f.output.clone(), f.timed_out),
            Err(e) => (format!("the probe did not start: {e}"), false),
        };
        let said_escaped = output.lines().any(|l| l.starts_with("ESCAPED"));
        let first =
            |o: &str| o.lines().find(|l| !l.trim().is_empty()).unwrap_or("").chars().take(160).collect::<String>();
        let (held, evidence): (bool, String) = match probe.name {
            "write-outside" | "write-tmp" | "write-dev-shm" | "write-home" => {
                let target = match probe.name {
                    "write-outside" => outside_target.clone(),
                    "write-tmp" => tmp_target.clone(),
                    "write-dev-shm" => shm_target.clone(),
                    _ => home_target.clone().unwrap_or_default(),
                };
                let exists = target.exists();
                let _ = std::fs::remove_file(&target);
                let evidence = if exists {
                    format!("{} was written", target.display())
                } else if said_escaped {
                    // bwrap: the write landed in the sandbox's private, throwaway view of that folder.
                    format!(
                        "only the sandbox's private view of {} was written",
                        target.parent().unwrap_or(&target).display()
                    )
                } else {
                    first(&output)
                };
                (!exists, evidence)
            }
            "symlink-out" => {
                let t = outside.path().join("through-link");
                let exists = t.exists();
                let _ = std::fs::remove_file(&t);
                let evidence = if exists {
                    "a file appeared outside".into()
                } else if said_escaped {
                    "the link led into the sandbox's private view; nothing appeared outside".into()
                } else {
                    first(&output)
                };
                (!exists, evidence)
            }
            "read-db" | "hardlink-db" | "read-environ" | "own-env" | "inherited-fd" | "parent-proc" => {
                let leaked = output.contains(&canary) || said_escaped;
                (!leaked, if leaked { "the canary key or database was read".into() } else { first(&output) })
            }
            "chmod-outside" => {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&mode_target)?.permissions().mode() & 0o777;
                std::fs::set_permissions(&mode_target, std::fs::Permissions::from_mode(0o600))?;
                (mode == 0o600, if mode == 0o600 { first(&output) } else { format!("the mode became {mode:o}") })
            }
            "write-db" => {
                let changed = std::fs::read(&db)? != db_before;
                std::fs::write(&db, &db_before)?;
                (!changed, if changed { "the database changed".into() } else { first(&output) })
            }
            "tcp-loopback" | "tcp-name" => {
                std::thread::sleep(Duration::from_millis(50));
                let hit = if probe.name == "tcp-loopback" { &tcp_hit } else { &name_hit };
                let reached = hit.swap(false, Ordering::AcqRel);
                (!reached, if reached { "the server saw a connection".into() } else { first(&output) })
            }
            "udp-loopback" => {
                let mut buf = [0u8; 16];
                let got = udp.recv(&mut buf).is_ok();
                (!got, if got { "the datagram arrived".into() } else { first(&output) })
            }
            "unix-socket" => {
                let got = unix.accept().is_ok();
                (!got, if got { "the service saw a connection".into() } else { first(&output) })
            }
            "setsid-survivor" | "double-fork" | "pipe-held" => {
                let survivors = kill_marked(&format!("{marker}-{}", probe.name));
                let slow = probe.name == "pipe-held" && wall > 5.0;
                let held = survivors == 0 && !slow;
                let evidence = if survivors > 0 {
                    format!("{survivors} process(es) outlived the run")
                } else if slow {
                    format!("the held pipe stretched the run to {wall:.1} s")
                } else {
                    format!("nothing outlived the run; it took {wall:.2} s")
                };
                (held, evidence)
            }
            "timeout" => {
                let held = timed_out && wall < 3.0;
                (held, format!("killed after {wall:.2} s (timeout 1 s)"))
            }
            "fork-storm" => {
                let made = last_number(&output, "forked ");
                let held = made <= CHECK_LIMITS.processes;
                (held, format!("{made} forks succeeded (cap {})", CHECK_LIMITS.processes))
            }
            "memory" => {
                let mib = last_number(&output, "allocated ");
                let held = mib <= CHECK_LIMITS.memory_mb;
                (held, format!("reached {mib} MiB of 1024 (cap {} MiB)", CHECK_LIMITS.memory_mb))
            }
            "file-size" => {
                let size = std::fs::metadata(ws.path().join("big.bin")).map_or(0, |m| m.len()) >> 20;
                let _ = std::fs::remove_file(ws.path().join("big.bin"));
                let held = size <= CHECK_LIMITS.file_size_mb;
                (held, format!("the file reached {size} MiB (cap {} MiB)", CHECK_LIMITS.file_size_mb))
            }
            "open-files" => {
                let n = last_number(&output, "opened ");
                let held = n <= CHECK_LIMITS.open_files;
                (held, format!("{n} descriptors opened (cap {})", CHECK_LIMITS.open_files))
            }
            "signal" => {
                let alive = matches!(victim.try_wait(), Ok(None));
                if !alive {
                    victim = std::process::Command::new("sleep").arg("120").spawn()?;
                }
                (alive, if alive { first(&output) } else { "the process outside was killed".into() })
            }
            // Judged by what the attack saw: it must say it was stopped. A probe
            // that crashed or printed nothing is not evidence of a held line.
            _ => {
                let said_held = output.lines().any(|l| l.starts_with("held"));
                let held = said_held && !said_escaped;
                (
                    held,
                    if said_held || said_escaped {
                        first(&output)
                    } else {
                        format!("inconclusive: {}", first(&output))
                    },
                )
            }
        };
        let r = ProbeResult { name: probe.name, what: probe.what, held, evidence };
        on_result(&r);
        results.push(r);
    }
    let _ = victim.kill();
    let _ = victim.wait();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(leaked_fd) };
    std::env::remove_var("LOOPVEL_CHECK_API_KEY");
    Ok(results)
}
