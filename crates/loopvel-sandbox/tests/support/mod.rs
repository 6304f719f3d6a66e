//! Shared by the sandbox's integration tests.

use std::time::Duration;

use loopvel_sandbox::{Level, Requested, Sandbox};

/// The confining levels this machine offers. A level that is missing is
/// skipped with a note, unless `LOOPVEL_REQUIRE_SANDBOX=1` (CI sets it)
/// makes it a failure.
pub fn confining_levels() -> Vec<Sandbox> {
    let require = std::env::var_os("LOOPVEL_REQUIRE_SANDBOX").is_some_and(|v| v == "1");
    let mut out = Vec::new();
    for level in [Level::Bwrap, Level::Landlock] {
        match Sandbox::detect(Requested::Level(level)) {
            Ok(s) => out.push(s),
            Err(e) if require => panic!("LOOPVEL_REQUIRE_SANDBOX=1 but {level} is not available: {e}"),
            Err(e) => eprintln!("SKIPPED at {level}: {e}"),
        }
    }
    assert!(
        !out.is_empty(),
        "no sandbox level here: install bubblewrap (apt-get install bubblewrap) or use a kernel with Landlock"
    );
    out
}

/// Every level, `none` included.
pub fn all_levels() -> Vec<Sandbox> {
    let mut v = confining_levels();
    v.push(Sandbox::detect(Requested::Level(Level::None)).expect("none is always available"));
    v
}

/// Processes on the machine whose command line holds `needle`; killed, counted.
pub fn kill_survivors(needle: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == std::process::id() as i32 {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                // SAFETY: kill(2) of a process that carries this test's marker.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                n += 1;
            }
        }
    }
    n
}

/// Let processes killed a moment ago leave /proc.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}
