//! End-to-end: the README's quick start, word for word, in a fresh folder.
//! Every `loopvel …` line of the block is run as written; `export NAME=…`
//! sets the variable to a dummy key. The one deviation: the `gpt` block that
//! `loopvel init` wrote points at a local fake server (tests/support) instead
//! of api.openai.com, since tests talk to no model service but 127.0.0.1
//! (pytest for the task comes from PyPI once, as for any user, unless cached).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/fake_server.rs"]
mod fake_server;
use fake_server::{serve, Step};

fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let at = readme.find("<!-- quick-start").expect("README has a quick-start block");
    let open = at + readme[at..].find("```sh\n").expect("a sh fence") + "```sh\n".len();
    let close = open + readme[open..].find("```").expect("closed");
    let lines: Vec<String> = readme[open..close]
        .lines()
        .map(|l| l.split("  #").next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() <= 30, "the quick start stays under 30 lines");
    lines
}

/// The model's reply: the fix, as a search/replace block.
const FIX: &str = "The even case needs the mean of the two middle values.\n\nstats.py\n<<<<<<< SEARCH\n    return ordered[len(ordered) // 2]\n=======\n    middle = len(ordered) // 2\n    if len(ordered) % 2 == 1:\n        return ordered[middle]\n    return (ordered[middle - 1] + ordered[middle]) / 2\n>>>>>>> REPLACE\n";

fn point_gpt_at(dir: &Path, url: &str) {
    let path = dir.join("loopvel.toml");
    let text = std::fs::read_to_string(&path).expect("init wrote loopvel.toml");
    let at = text.find("[models.gpt]").expect("a gpt block");
    let line = at + text[at..].find("base_url = ").expect("its base_url");
    let end = line + text[line..].find('\n').unwrap();
    let patched = format!("{}base_url = \"{url}\"{}", &text[..line], &text[end..]);
    std::fs::write(&path, patched).unwrap();
}

#[test]
fn the_readme_quick_start_works_word_for_word() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let replies: Vec<Step> =
        // In pieces, as a real server streams: the decode speed is measured.
        (0..60)
            .map(|_| Step::Reply { pieces: FIX.split_inclusive('\n').map(String::from).collect(), first_ms: 5, gap_ms: 2 })
            .collect();
    let server = serve(replies, false);
    let mut env: Vec<(String, String)> = Vec::new();
    let mut ran = Vec::new();
    for line in quick_start() {
        if let Some(assign) = line.strip_prefix("export ") {
            let (name, _) = assign.split_once('=').expect("export NAME=VALUE");
            env.push((name.to_string(), "sk-quickstart-test-not-a-real-key".to_string()));
            continue;
        }
        let args: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(args[0], "loopvel", "the quick start runs loopvel only: {line}");
        let out = Command::new(env!("CARGO_BIN_EXE_loopvel"))
            .args(&args[1..])
            .current_dir(&dir)
            .env_remove("COLUMNS")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run loopvel");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "`{line}` failed:\n{stdout}\n{stderr}");
        assert!(!stdout.contains("sk-quickstart") && !stderr.contains("sk-quickstart"), "the key was printed");
        if args[1] == "init" {
            point_gpt_at(&dir, &server.url);
        }
        ran.push((line, stdout, stderr));
    }
    let said = |cmd: &str| ran.iter().find(|(l, _, _)| l.starts_with(cmd)).map(|(_, o, e)| format!("{o}{e}"));
    assert!(said("loopvel init").is_some_and(|o| o.contains("9 models")));
    assert!(said("loopvel tasks check").is_some_and(|o| o.contains("The task checks out")));
    let run = said("loopvel run").expect("the quick start runs a model");
    assert!(run.contains("5 runs") && run.contains("5 passed so far"), "{run}");
    let report = said("loopvel report").expect("a report");
    assert!(report.contains("gpt") && report.contains("100.0%"), "{report}");
    assert!(dir.join("report.html").is_file());
    assert!(said("loopvel predict").is_some_and(|o| o.contains("gpt")));
    assert!(server.requests.lock().unwrap().len() >= 5, "every run asked the model");
    let db = std::fs::read(dir.join("loopvel.db")).unwrap();
    assert!(!db.windows(12).any(|w| w == b"sk-quickstar"), "the key reached the database");
    let _ = std::fs::remove_dir_all(&dir);
}
