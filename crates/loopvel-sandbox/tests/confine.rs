//! The sandbox at each level this machine offers, through its public API:
//! what a command can and cannot do, and that nothing it starts outlives it.
//! (`loopvel sandbox check` and tests/escape_cli.rs attack it harder.)

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use loopvel_sandbox::{Job, Level, Limits};
use support::{all_levels, confining_levels, kill_survivors, settle};

#[test]
fn a_timeout_kills_every_process_even_one_in_a_new_session() {
    for sb in all_levels() {
        let ws = tempfile::tempdir().unwrap();
        // Unique sleep lengths mark this test's processes on the machine.
        let cmd = "(setsid sleep 4711 &) ; (sleep 4712 &) ; exec sleep 4713";
        let start = Instant::now();
        let f = sb.run(&Job { timeout: Duration::from_millis(500), ..Job::new(cmd, ws.path()) }).unwrap();
        assert!(f.timed_out, "{}: {f:?}", sb.level());
        assert!(start.elapsed() < Duration::from_secs(3), "{}: took {:?}", sb.level(), start.elapsed());
        settle();
        let survivors = kill_survivors("sleep 471");
        assert_eq!(survivors, 0, "{}: {survivors} process(es) outlived the timeout", sb.level());
    }
}

#[test]
fn a_child_holding_the_output_open_cannot_stretch_the_run() {
    for sb in all_levels() {
        let ws = tempfile::tempdir().unwrap();
        let cmd = "(setsid sh -c 'sleep 4721' &) ; sleep 4722 & echo started";
        let start = Instant::now();
        let f = sb.run(&Job { timeout: Duration::from_secs(20), ..Job::new(cmd, ws.path()) }).unwrap();
        let took = start.elapsed();
        assert!(!f.timed_out, "{}: {f:?}", sb.level());
        assert!(f.output.contains("started"), "{}: {}", sb.level(), f.output);
        assert!(took < Duration::from_secs(3), "{}: the held pipe held the run for {took:?}", sb.level());
        settle();
        let survivors = kill_survivors("sleep 472");
        // At `none` a new session escapes the process group; only a cgroup finds it.
        if sb.level() != Level::None || sb.caps_in_words().contains("cgroup") {
            assert_eq!(survivors, 0, "{}: {survivors} process(es) outlived the run", sb.level());
        }
    }
}

#[test]
fn the_environment_is_an_allow_list_and_home_is_the_workspace() {
    // SAFETY of intent: set before any command starts; this test reads it back only through the child.
    std::env::set_var("CONFINE_TEST_API_KEY", "sk-confine-secret");
    std::env::set_var("CONFINE_TEST_PASSWORD", "hunter2");
    for sb in all_levels() {
        let ws = tempfile::tempdir().unwrap();
        let env = [("TASK_SETTING".to_string(), "on".to_string())];
        let f = sb.run(&Job { env: &env, ..Job::new("env", ws.path()) }).unwrap();
        assert!(!f.output.contains("sk-confine-secret") && !f.output.contains("hunter2"), "{}", f.output);
        assert!(f.output.contains("TASK_SETTING=on"), "{}", f.output);
        let home = format!("HOME={}", std::path::absolute(ws.path()).unwrap().display());
        assert!(f.output.lines().any(|l| l == home), "{}: {}", sb.level(), f.output);
    }
}

#[test]
fn writes_land_in_the_workspace_and_nowhere_else() {
    for sb in confining_levels() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("escaped");
        let cmd =
            format!("echo in > inside.txt; echo out > '{}'; echo out > /tmp/confine-test-escaped", target.display());
        let f = sb.run(&Job::new(&cmd, ws.path())).unwrap();
        assert_eq!(std::fs::read_to_string(ws.path().join("inside.txt")).unwrap(), "in\n", "{}", sb.level());
        assert!(!target.exists(), "{}: wrote outside: {}", sb.level(), f.output);
        assert!(!std::path::Path::new("/tmp/confine-test-escaped").exists(), "{}: wrote /tmp", sb.level());
        // The refusal is in the output, so the turn records why.
        assert!(
            ["Permission denied", "Read-only file system", "No such file", "nonexistent"]
                .iter()
                .any(|w| f.output.contains(w)),
            "{}: {}",
            sb.level(),
            f.output
        );
    }
}

#[test]
fn a_hidden_database_is_out_of_sight() {
    for mut sb in confining_levels() {
        let ws = tempfile::tempdir().unwrap();
        let results = tempfile::tempdir().unwrap();
        let db = results.path().join("results.db");
        std::fs::write(&db, "pretend database: secret-row").unwrap();
        sb.hide(&db);
        let f = sb
            .run(&Job::new(&format!("cat '{}'; echo forged >> '{}'", db.display(), db.display()), ws.path()))
            .unwrap();
        assert!(!f.output.contains("secret-row"), "{}: {}", sb.level(), f.output);
        assert_eq!(std::fs::read_to_string(&db).unwrap(), "pretend database: secret-row", "{}", sb.level());
        assert!(sb.exposed(&[]).is_empty(), "{}", sb.level());
    }
}

#[test]
fn no_network_unless_the_task_asks() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let cmd = format!(
        "python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {port}), 2); s.sendall(b'hi'); print('connected')\""
    );
    for sb in confining_levels() {
        let ws = tempfile::tempdir().unwrap();
        let f = sb.run(&Job::new(&cmd, ws.path())).unwrap();
        assert!(!f.output.contains("connected"), "{}: {}", sb.level(), f.output);
        assert!(listener.accept().is_err(), "{}: the listener saw a connection", sb.level());
        // With `network = true` the same command gets through (the bwrap level keeps
        // the host's network namespace; Landlock and seccomp let sockets be).
        let f = sb.run(&Job { network: true, ..Job::new(&cmd, ws.path()) }).unwrap();
        assert!(f.output.contains("connected"), "{} with network: {}", sb.level(), f.output);
        let mut got = None;
        for _ in 0..100 {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = String::new();
                s.set_nonblocking(false).unwrap();
                let _ = s.read_to_string(&mut buf);
                got = Some(buf);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got.as_deref(), Some("hi"), "{}", sb.level());
    }
}

#[test]
fn caps_stop_a_file_bomb_and_a_fork_bomb() {
    let limits = Limits { file_size_mb: 4, processes: 32, ..Limits::default() };
    for sb in all_levels() {
        let ws = tempfile::tempdir().unwrap();
        let f = sb
            .run(&Job { limits, ..Job::new("head -c 16777216 /dev/zero > big.bin; echo exit=$?", ws.path()) })
            .unwrap();
        let size = std::fs::metadata(ws.path().join("big.bin")).map_or(0, |m| m.len());
        assert!(size <= 4 << 20, "{}: the file reached {size} bytes: {}", sb.level(), f.output);
        if sb.caps_in_words().contains("processes by cgroup") || unsafe { libc::getuid() } != 0 {
            // 64 background sleeps against a cap of 32: some forks must fail.
            let cmd = "i=0; ok=0; while [ $i -lt 64 ]; do sleep 4731 & [ $? -eq 0 ] && ok=$((ok+1)); i=$((i+1)); done; echo started=$ok";
            let f = sb.run(&Job { limits, ..Job::new(cmd, ws.path()) }).unwrap();
            let started: u64 = f
                .output
                .lines()
                .find_map(|l| l.strip_prefix("started="))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            assert!(started < 64, "{}: {started} of 64 forks succeeded under a cap of 32: {}", sb.level(), f.output);
            settle();
            assert_eq!(kill_survivors("sleep 4731"), 0, "{}", sb.level());
        }
    }
}

#[test]
fn the_example_tasks_python_and_cargo_work_inside() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks/examples");
    for sb in confining_levels() {
        for (task, files, cmd) in [
            ("slugify_tap", &["slug.py", "tap_tests.py"][..], "python3 tap_tests.py"),
            ("rust_gcd", &["Cargo.toml", "src/lib.rs", "tests/gcd.rs"][..], "cargo test --offline --quiet 2>&1"),
        ] {
            let ws = tempfile::tempdir().unwrap();
            for f in files {
                let to = ws.path().join(f);
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(root.join(task).join(f), &to).unwrap();
            }
            let f = sb.run(&Job { timeout: Duration::from_secs(120), ..Job::new(cmd, ws.path()) }).unwrap();
            // The tasks fail as given; what matters is that their tests ran and reported.
            let ran = f.output.contains("not ok") || f.output.contains("test result:");
            assert!(ran, "{} at {}: {}", task, sb.level(), f.output);
        }
    }
}
