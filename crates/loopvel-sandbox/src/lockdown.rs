//! Seccomp filters (both levels) and the Landlock ruleset, built in the
//! parent; the child (`launch.rs`) only enforces them, between clone and exec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
    Scope, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

fn target_arch() -> std::io::Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| std::io::Error::other(format!("seccomp filters are not built for {}", std::env::consts::ARCH)))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, on_match: SeccompAction) -> std::io::Result<BpfProgram> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, target_arch()?)
        .map_err(|e| std::io::Error::other(format!("seccomp filter: {e}")))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| std::io::Error::other(format!("seccomp filter: {e}")))
}

/// The two filters every confined command runs under.
///
/// The first answers EPERM to: reading or writing other processes (`ptrace`,
/// `process_vm_*`), `io_uring_*` (it can open sockets without `socket()`),
/// kernel keyrings, BPF, perf events, `userfaultfd`, new namespaces
/// (`unshare`, `setns`, `clone` with a `CLONE_NEW*` flag), mounts, and
/// leaving the process group (`setsid`, `setpgid`: the timeout kills the
/// group; a test that starts a new session gets EPERM). Without network,
/// every `socket()` too: IP,
/// and Unix sockets, which reach local services through socket files
/// (`socketpair` stays allowed: it connects nothing outside).
///
/// The second makes `clone3` look absent (ENOSYS), so that libc falls back
/// to `clone`, whose flags the first filter can read (clone3 passes them in
/// memory, out of a filter's reach).
///
/// At the Landlock level (`landlock_abi` is `Some`: no mount or pid
/// namespace there) also: `kill(-1, …)`, `truncate` by
/// path where the ABI (< 3) does not cover it, and mode, owner and time
/// changes by path (`chmod`,
/// `fchmodat`, `fchmodat2`, `chown`, `lchown`, `fchownat`, `utime`, `utimes`,
/// `futimesat`, `utimensat` with a path): Landlock would let them change
/// files outside the workspace. The same on a descriptor (`fchmod`,
/// `fchown`, `futimens`) stays allowed: a descriptor needs an open that
/// Landlock checks. Tests that chmod or touch by path get EPERM at this level.
pub(crate) fn seccomp_filters(network: bool, landlock_abi: Option<i32>) -> std::io::Result<[BpfProgram; 2]> {
    let deny_path_metadata = landlock_abi.is_some();
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always = [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        // Every process stays in the group the timeout kills; at bwrap the pid
        // namespace would kill them anyway, but a process that left quietly
        // would leave no trace in the turn's record of why it was killed.
        libc::SYS_setsid,
        libc::SYS_setpgid,
    ];
    for nr in always {
        deny.insert(nr, Vec::new());
    }
    if !network {
        deny.insert(libc::SYS_socket, Vec::new());
    }
    if let Some(abi) = landlock_abi {
        // kill(-1, …) signals every process the user may signal; no test needs it.
        let everyone = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, u64::from(u32::MAX))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        deny.insert(
            libc::SYS_kill,
            vec![SeccompRule::new(vec![everyone]).map_err(|e| std::io::Error::other(e.to_string()))?],
        );
        if abi < 3 {
            // Landlock handles truncate(2) from ABI 3 on; before, refuse it by path.
            deny.insert(libc::SYS_truncate, Vec::new());
        }
    }
    if deny_path_metadata {
        #[cfg(target_arch = "x86_64")]
        for nr in [libc::SYS_chmod, libc::SYS_chown, libc::SYS_lchown] {
            deny.insert(nr, Vec::new());
        }
        for nr in [libc::SYS_fchmodat, libc::SYS_fchmodat2, libc::SYS_fchownat] {
            deny.insert(nr, Vec::new());
        }
        #[cfg(target_arch = "x86_64")]
        for nr in [libc::SYS_utime, libc::SYS_utimes, libc::SYS_futimesat] {
            deny.insert(nr, Vec::new());
        }
        // utimensat with a path; with a NULL path it is futimens, on a descriptor.
        let with_path = SeccompCondition::new(1, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        deny.insert(
            libc::SYS_utimensat,
            vec![SeccompRule::new(vec![with_path]).map_err(|e| std::io::Error::other(e.to_string()))?],
        );
    }
    let namespaces = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];
    let mut clone_rules = Vec::new();
    for flag in namespaces {
        let flag = flag as u64;
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        clone_rules.push(SeccompRule::new(vec![cond]).map_err(|e| std::io::Error::other(e.to_string()))?);
    }
    deny.insert(libc::SYS_clone, clone_rules);
    let first = compile(deny, SeccompAction::Errno(libc::EPERM as u32))?;
    let second = compile(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), SeccompAction::Errno(libc::ENOSYS as u32))?;
    Ok([first, second])
}

/// A seccomp program as the bytes bubblewrap's `--add-seccomp-fd` reads.
pub(crate) fn program_bytes(p: &BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() * 8);
    for f in p {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}

/// The Landlock ruleset: read (and execute) `read`, everything in
/// `workspace`, write `/dev/null`; TCP bind and connect denied unless
/// `network`; signals and abstract Unix sockets scoped to the sandbox.
/// Access rights the kernel does not know are left out (best effort), and
/// `spawn` refuses to run when the result is not enforced at all.
pub(crate) fn landlock_ruleset(workspace: &Path, read: &[PathBuf], network: bool) -> std::io::Result<RulesetCreated> {
    let abi = ABI::V6;
    let err = |e: landlock::RulesetError| std::io::Error::other(format!("Landlock: {e}"));
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort);
    ruleset = ruleset.handle_access(AccessFs::from_all(abi)).map_err(err)?;
    if !network {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp).map_err(err)?;
    }
    ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal).map_err(err)?;
    let created = ruleset
        .create()
        .map_err(err)?
        .add_rules(landlock::path_beneath_rules(read, AccessFs::from_read(abi)))
        .map_err(err)?
        .add_rules(landlock::path_beneath_rules([workspace], AccessFs::from_all(abi)))
        .map_err(err)?
        .add_rules(landlock::path_beneath_rules(["/dev/null"], AccessFs::from_all(abi)))
        .map_err(err)?;
    Ok(created)
}

/// The highest capability number this kernel knows.
pub(crate) fn last_cap() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}
