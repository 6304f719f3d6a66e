//! The fallback where no cgroup is writable (most users' machines run as a
//! normal user without a delegated cgroup v2 subtree): memory by RLIMIT_AS,
//! survivors by the process group (`setsid` and `setpgid` refused by
//! seccomp at the Landlock level). Its own test binary, since the switch is
//! an environment variable read when a sandbox is detected.

mod support;

use std::time::{Duration, Instant};

use loopvel_sandbox::{Job, Level, Limits};
use support::{all_levels, kill_survivors, settle};

fn levels_without_cgroups() -> Vec<loopvel_sandbox::Sandbox> {
    // SAFETY of intent: every test in this binary sets the same value first.
    std::env::set_var("LOOPVEL_SANDBOX_NO_CGROUP", "1");
    let levels = all_levels();
    for sb in &levels {
        assert!(sb.caps_in_words().starts_with("rlimits only"), "{}", sb.caps_in_words());
    }
    levels
}

#[test]
fn memory_is_capped_by_rlimit_as() {
    let limits = Limits { memory_mb: 256, ..Limits::default() };
    let cmd = "python3 -c \"b = bytearray(1024 * 1024 * 1024); print('allocated')\"";
    for sb in levels_without_cgroups() {
        let ws = tempfile::tempdir().unwrap();
        let f = sb.run(&Job { limits, ..Job::new(cmd, ws.path()) }).unwrap();
        assert!(!f.output.contains("allocated"), "{}: {}", sb.level(), f.output);
        assert!(f.output.contains("MemoryError"), "{}: {}", sb.level(), f.output);
    }
}

#[test]
fn survivors_die_with_the_process_group() {
    for sb in levels_without_cgroups() {
        let ws = tempfile::tempdir().unwrap();
        let cmd = "(setsid sleep 4741 &) ; (sleep 4742 &) ; echo done";
        let start = Instant::now();
        let f = sb.run(&Job { timeout: Duration::from_secs(20), ..Job::new(cmd, ws.path()) }).unwrap();
        assert!(start.elapsed() < Duration::from_secs(3), "{}: {:?}", sb.level(), start.elapsed());
        settle();
        let survivors = kill_survivors("sleep 474");
        if sb.level() == Level::None {
            // Unconfined and without a cgroup, a new session is out of reach: the
            // honest result is that one survives, and the run still ends on time.
            assert!(survivors <= 1, "{survivors}");
        } else {
            assert_eq!(survivors, 0, "{}: {}", sb.level(), f.output);
        }
    }
}
