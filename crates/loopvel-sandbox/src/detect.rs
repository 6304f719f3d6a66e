//! What this machine offers: a working bubblewrap, a Landlock ABI, seccomp,
//! writable cgroups. Found by trying, not by reading version numbers.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::cgroup;

pub(crate) struct Found {
    pub bwrap: Result<PathBuf, String>,
    pub landlock: Result<(), String>,
    pub landlock_abi: i32,
    pub cgroups: cgroup::Support,
}

pub(crate) fn probe() -> Found {
    let landlock_abi = landlock_abi();
    Found { bwrap: bwrap(), landlock: landlock(landlock_abi), landlock_abi, cgroups: cgroup::Support::detect() }
}

/// `name` as found on PATH (what a shell would run): the first regular file.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// bubblewrap is there and can make the namespaces loopvel uses (some
/// distributions block unprivileged user namespaces, e.g. Ubuntu 24.04's AppArmor).
fn bwrap() -> Result<PathBuf, String> {
    let Some(path) = find_on_path("bwrap") else {
        return Err("bwrap is not on PATH".into());
    };
    let mut child = Command::new(&path)
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"])
        .args(["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} cannot start: {e}", path.display()))?;
    match child.wait_timeout(Duration::from_secs(10)) {
        Ok(Some(status)) if status.success() => Ok(path),
        Ok(Some(status)) => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            Err(format!(
                "{} cannot create namespaces here ({status}: {}); unprivileged user namespaces may be disabled",
                path.display(),
                err.trim()
            ))
        }
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{} did not finish its probe in 10 s", path.display()))
        }
    }
}

/// The Landlock ABI version, 0 when the kernel has none (or it is off).
pub(crate) fn landlock_abi() -> i32 {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // SAFETY: the version query reads no memory.
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<libc::c_void>(), 0usize, 1u32) };
    i32::try_from(v).unwrap_or(0).max(0)
}

fn landlock(abi: i32) -> Result<(), String> {
    if abi < 1 {
        return Err("this kernel has no Landlock (Linux 5.13 or later, with landlock in the lsm= boot list)".into());
    }
    // SAFETY: PR_GET_SECCOMP only reads this thread's mode.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } < 0 {
        return Err("this kernel has no seccomp".into());
    }
    Ok(())
}

/// Run `true` through `sandbox` exactly as a test run would.
pub(crate) fn trial(sandbox: &crate::Sandbox) -> Result<(), String> {
    let ws = tempfile::Builder::new()
        .prefix("loopvel-trial-")
        .tempdir()
        .map_err(|e| format!("cannot make a trial workspace: {e}"))?;
    let job = crate::Job { timeout: Duration::from_secs(10), ..crate::Job::new("true", ws.path()) };
    match sandbox.run(&job) {
        Ok(f) if f.exit_code == Some(0) => Ok(()),
        Ok(f) => Err(format!(
            "bubblewrap is there, but refused the options loopvel runs tests with ({})",
            f.output.lines().next().unwrap_or("no output").trim()
        )),
        Err(e) => Err(format!("bubblewrap is there, but a trial run failed: {e}")),
    }
}
