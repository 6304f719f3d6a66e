//! A task of three shell checks over variables A, B, C in calc.sh, counted as
//! TAP: a scripted model fixes them one reply at a time. Shared by the
//! end-to-end tests that drive `loopvel run` against fake servers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes the task under `dir/abc` and returns its folder.
pub fn abc_task(dir: &Path) -> PathBuf {
    let t = dir.join("abc");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("task.toml"),
        "prompt = \"Set A, B and C so every check passes.\"\nedit = [\"calc.sh\"]\nshow = [\"test.sh\"]\ntest = \"sh test.sh\"\ntest_timeout_s = 10\nreport = \"tap\"\n",
    )
    .unwrap();
    std::fs::write(t.join("calc.sh"), "A=0\nB=0\nC=0\n").unwrap();
    std::fs::write(
        t.join("test.sh"),
        ". ./calc.sh\necho 1..3\nfor v in A B C; do eval x=\\$$v; if [ \"$x\" = 1 ]; then echo \"ok $v\"; else echo \"not ok $v\"; fi; done\n",
    )
    .unwrap();
    t
}
