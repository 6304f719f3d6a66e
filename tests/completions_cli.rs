//! End-to-end: `loopvel completions SHELL` prints a script that knows every subcommand.

use std::process::Command;

#[test]
fn each_shell_gets_a_script_naming_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(env!("CARGO_BIN_EXE_loopvel")).args(["completions", shell]).output().expect("run loopvel");
        assert!(o.status.success(), "{shell}: {}", String::from_utf8_lossy(&o.stderr));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        for sub in ["demo", "calc", "simulate", "run", "export", "replay", "report", "predict", "tasks", "completions"]
        {
            assert!(script.contains(sub), "{shell}: no {sub} in the script");
        }
        // Options of a subcommand, not only the names.
        assert!(script.contains("max-turns"), "{shell}: no --max-turns");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_loopvel")).args(["completions", "tcsh"]).output().expect("run loopvel");
    assert_eq!(o.status.code(), Some(2));
}
