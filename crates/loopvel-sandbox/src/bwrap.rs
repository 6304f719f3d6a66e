//! The bubblewrap command line: what the confined command sees of the machine.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::env::toolchain_dirs;

/// Folders that are never masked whole (a database kept in one of them is
/// masked file by file instead): masking them would break the command.
const NEVER_MASK: &[&str] = &["/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt", "/dev", "/proc", "/sys"];

fn arg(args: &mut Vec<OsString>, parts: &[&dyn AsRef<std::ffi::OsStr>]) {
    args.extend(parts.iter().map(|p| p.as_ref().to_owned()));
}

/// Arguments for `bwrap` up to (not including) the command.
///
/// Order matters: bubblewrap applies mounts in order, so the masks come
/// first, then the toolchains are bound back read-only, then the workspace
/// read-write (bwrap makes the mount points it needs inside a mask).
pub(crate) fn args(
    workspace: &Path,
    network: bool,
    hidden: &[PathBuf],
    read: &[PathBuf],
    tmp_mb: u64,
    seccomp_fds: &[i32],
    as_nobody: bool,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    arg(&mut a, &[&"--die-with-parent", &"--new-session"]);
    if as_nobody {
        // loopvel runs as root: no user namespace (uid 0 inside would still be
        // uid 0 to the files outside); the command drops to nobody itself
        // (`setpriv`, given the three capabilities it needs, and only those).
        arg(&mut a, &[&"--unshare-pid", &"--unshare-ipc", &"--unshare-uts", &"--unshare-cgroup-try"]);
        if !network {
            arg(&mut a, &[&"--unshare-net"]);
        }
        arg(&mut a, &[&"--cap-drop", &"ALL", &"--cap-add", &"CAP_SETUID", &"--cap-add", &"CAP_SETGID"]);
        arg(&mut a, &[&"--cap-add", &"CAP_SETPCAP"]);
    } else {
        arg(&mut a, &[&"--unshare-all", &"--cap-drop", &"ALL"]);
        if network {
            arg(&mut a, &[&"--share-net"]);
        }
    }
    arg(&mut a, &[&"--ro-bind", &"/", &"/", &"--dev", &"/dev", &"--proc", &"/proc"]);
    // Kernel settings are not the tests' to change (as root, /proc/sys is writable).
    arg(&mut a, &[&"--ro-bind", &"/proc/sys", &"/proc/sys"]);
    if Path::new("/proc/sysrq-trigger").exists() {
        arg(&mut a, &[&"--ro-bind", &"/dev/null", &"/proc/sysrq-trigger"]);
    }
    let tmp_bytes = tmp_mb.saturating_mul(1024 * 1024).to_string();
    arg(&mut a, &[&"--size", &tmp_bytes, &"--tmpfs", &"/tmp"]);
    // Sockets of local services (a database, Docker, D-Bus) live under /run:
    // a read-only bind does not stop connect(2) on a socket file.
    let mut emptied: Vec<PathBuf> = vec![PathBuf::from("/tmp")];
    for run in ["/run", "/var/run", "/var/tmp"] {
        let p = Path::new(run);
        if p.is_dir() && !p.is_symlink() {
            arg(&mut a, &[&"--tmpfs", &run]);
            emptied.push(p.to_path_buf());
        }
    }
    // The home folder (keys, shell history, cloud credentials) and the folders
    // of the database and config are masked by empty ones.
    let mut masks: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        if home.is_absolute() && home.is_dir() {
            masks.push(home);
        }
    }
    let mut file_masks: Vec<PathBuf> = Vec::new();
    for h in hidden {
        match h.parent() {
            Some(parent) if !NEVER_MASK.iter().any(|n| parent == Path::new(n)) && parent.is_dir() => {
                masks.push(parent.to_path_buf())
            }
            _ => file_masks.push(h.clone()),
        }
    }
    masks.sort();
    masks.dedup();
    // Every mount is kernel work at each start and teardown (at 64 loops that
    // work competes with the loops): no mask inside a folder already masked,
    // no bind inside a folder already bound.
    let masked_already = ["/tmp", "/run", "/var/run", "/var/tmp"];
    let mut made: Vec<PathBuf> = Vec::new();
    for m in &masks {
        let inside_other =
            masks.iter().any(|o| o != m && m.starts_with(o)) || masked_already.iter().any(|t| m.starts_with(t));
        if NEVER_MASK.iter().any(|n| m == Path::new(n)) || inside_other {
            continue;
        }
        arg(&mut a, &[&"--tmpfs", m]);
        made.push(m.clone());
    }
    // Bound back: what a mask covers, and what lies strictly inside an
    // emptied /tmp or /run (a cache or toolchain there; never all of /tmp,
    // which holds other runs' workspaces).
    let mut rebinds: Vec<PathBuf> = toolchain_dirs()
        .into_iter()
        .chain(read.iter().cloned())
        .filter(|d| made.iter().any(|m| d.starts_with(m)) || emptied.iter().any(|e| d.starts_with(e) && d != e))
        .collect();
    rebinds.sort();
    rebinds.dedup();
    let mut parents_made: Vec<PathBuf> = Vec::new();
    for dir in &rebinds {
        if rebinds.iter().any(|o| o != dir && dir.starts_with(o)) {
            continue;
        }
        // bwrap makes the missing folders between a mask and a bind point
        // with mode 0700, which a root-run loopvel's tests (as nobody) cannot
        // pass through (e.g. ~/.cache/loopvel/python/ENV): make them 0755 first.
        let covering = made.iter().chain(&emptied).filter(|m| dir.starts_with(m) && dir != *m);
        if let Some(mask) = covering.max_by_key(|m| m.components().count()) {
            let inside = dir.strip_prefix(mask).unwrap_or(Path::new(""));
            let mut between: Vec<PathBuf> =
                inside.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()).map(|p| mask.join(p)).collect();
            between.reverse();
            for p in between {
                if !parents_made.contains(&p) {
                    arg(&mut a, &[&"--perms", &"0755", &"--dir", &p]);
                    parents_made.push(p);
                }
            }
        }
        arg(&mut a, &[&"--ro-bind-try", dir, dir]);
    }
    // A hidden file that a bound-back toolchain folder holds, or that sits in
    // a folder never masked whole: each of it and its SQLite companions.
    for h in hidden {
        let in_rebound = rebinds.iter().any(|d| h.starts_with(d));
        if in_rebound || file_masks.contains(h) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut f = h.clone().into_os_string();
                f.push(suffix);
                if Path::new(&f).is_file() {
                    arg(&mut a, &[&"--ro-bind", &"/dev/null", &f]);
                }
            }
        }
    }
    // Hash of the shadow password files: readable by uid 0, which a
    // root-run loopvel's sandbox still is (with no capabilities).
    for f in ["/etc/shadow", "/etc/gshadow"] {
        if Path::new(f).is_file() {
            arg(&mut a, &[&"--ro-bind", &"/dev/null", &f]);
        }
    }
    arg(&mut a, &[&"--bind", &workspace, &workspace, &"--chdir", &workspace]);
    for fd in seccomp_fds {
        arg(&mut a, &[&"--add-seccomp-fd", &fd.to_string()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_come_before_the_workspace_and_network_is_off_by_default() {
        let ws = Path::new("/tmp/loopvel-ws-x");
        // A folder outside /tmp (which is masked whole anyway): /dev/shm is on every Linux.
        let results = tempfile::tempdir_in("/dev/shm").unwrap();
        let db = results.path().join("loopvel.db");
        let results = results.path().display().to_string();
        let a: Vec<String> = args(ws, false, &[db], &[], 64, &[7], false)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let pos = |s: &str| a.iter().position(|x| x == s);
        assert!(pos("--share-net").is_none());
        assert!(pos("--unshare-all").is_some());
        let mask = a.windows(2).position(|w| w[0] == "--tmpfs" && w[1] == results).expect("db folder masked");
        let bind = a.windows(2).position(|w| w[0] == "--bind" && w[1] == "/tmp/loopvel-ws-x").expect("ws bound");
        assert!(mask < bind);
        assert!(a.windows(2).any(|w| w[0] == "--add-seccomp-fd" && w[1] == "7"));
        let net: Vec<String> =
            args(ws, true, &[], &[], 64, &[], false).into_iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(net.contains(&"--share-net".to_string()));
    }

    #[test]
    fn a_database_under_tmp_needs_no_mask_of_its_own() {
        let results = tempfile::tempdir().unwrap();
        let db = results.path().join("loopvel.db");
        let a: Vec<String> = args(Path::new("/tmp/ws"), false, &[db], &[], 64, &[], false)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let folder = results.path().display().to_string();
        assert!(a.windows(2).any(|w| w[0] == "--tmpfs" && w[1] == "/tmp"));
        if folder.starts_with("/tmp/") {
            assert!(!a.contains(&folder), "{a:?}");
        }
    }

    #[test]
    fn a_database_in_a_system_folder_is_masked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        // /etc is never masked whole; use a real file to see the file mask.
        let a: Vec<String> = args(dir.path(), false, &[PathBuf::from("/etc/hostname")], &[], 64, &[], false)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(!a.windows(2).any(|w| w[0] == "--tmpfs" && w[1] == "/etc"));
        if Path::new("/etc/hostname").is_file() {
            assert!(a.windows(3).any(|w| w[0] == "--ro-bind" && w[1] == "/dev/null" && w[2] == "/etc/hostname"));
        }
    }

    fn strings(a: Vec<OsString>) -> Vec<String> {
        a.into_iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_read_folder_inside_tmp_is_bound_back_with_passable_parents_but_tmp_never_whole() {
        let cache = tempfile::tempdir_in("/tmp").unwrap();
        let env = cache.path().join("python").join("abc");
        std::fs::create_dir_all(&env).unwrap();
        let a = strings(args(Path::new("/tmp/ws"), false, &[], &[env.clone(), PathBuf::from("/tmp")], 64, &[], false));
        let env_s = env.display().to_string();
        let parent = env.parent().unwrap().display().to_string();
        let bind = a.windows(3).position(|w| w[0] == "--ro-bind-try" && w[1] == env_s).expect("bound back");
        let dir = a.windows(4).position(|w| w == ["--perms", "0755", "--dir", parent.as_str()]).expect("0755 parent");
        assert!(dir < bind, "{a:?}");
        assert!(!a.windows(2).any(|w| w[0] == "--ro-bind-try" && w[1] == "/tmp"), "all of /tmp exposed: {a:?}");
    }

    #[test]
    fn a_read_folder_that_is_itself_masked_makes_no_parents_above_it() {
        let results = tempfile::tempdir_in("/dev/shm").unwrap();
        let db = results.path().join("loopvel.db");
        let a = strings(args(Path::new("/tmp/ws"), false, &[db], &[results.path().to_path_buf()], 64, &[], false));
        assert!(!a.windows(2).any(|w| w[0] == "--dir" && (w[1] == "/" || w[1] == "/dev")), "{a:?}");
    }
}
