//! End-to-end on PostgreSQL: the real binary against the machine's server
//! (a fresh database per test), and the fake model server of tests/support.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/fake_server.rs"]
mod fake_server;
#[path = "support/pg.rs"]
mod pg;
use fake_server::{serve_with, Step};
use pg::FreshPg;

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn loopvel(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loopvel"));
    c.args(args).current_dir(dir).env_remove("COLUMNS").env_remove("LOOPVEL_DB");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run loopvel")
}

/// `report --json` without the field that names the database.
fn report_json(dir: &Path, db: &str) -> serde_json::Value {
    let o = loopvel(dir, &["report", "--db", db, "--json"], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_object_mut().unwrap().remove("db");
    v
}

#[test]
fn the_shipped_experiment_copied_into_postgres_and_back_reports_the_same() {
    let dir = scratch("copy");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sqlite = root.join("demo/experiment.db");
    let Some(pg) = FreshPg::new("copy") else { return };
    let o = loopvel(&dir, &["db", "copy", "--from", sqlite.to_str().unwrap(), "--to", &pg.url], &[]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(said.contains("copied 1 plan, 180 runs, 967 turns and 967 model calls"), "{said}");
    let original = report_json(&dir, sqlite.to_str().unwrap());
    assert_eq!(report_json(&dir, &pg.url), original, "the same data gives the same report on both engines");
    // A run's transcript (report --run, as `view` serves it) is the same from either engine.
    let examples = root.join("tasks/examples");
    let page = |db: &str, file: &str| {
        let args = ["report", "--db", db, "--run", "8", "--html", file, "--tasks", examples.to_str().unwrap()];
        let o = loopvel(&dir, &args, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(dir.join(file)).unwrap()
    };
    let from_sqlite = page(sqlite.to_str().unwrap(), "run-8-sqlite.html");
    assert!(from_sqlite.contains("THRASH") && from_sqlite.contains("<div class=\"add\">"), "{from_sqlite}");
    assert_eq!(page(&pg.url, "run-8-pg.html"), from_sqlite);
    // And back into a new file.
    let back = dir.join("back.db");
    let o = loopvel(&dir, &["db", "copy", "--from", &pg.url, "--to", back.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(report_json(&dir, back.to_str().unwrap()), original);
    // A copy never merges into recorded runs.
    let o = loopvel(&dir, &["db", "copy", "--from", sqlite.to_str().unwrap(), "--to", &pg.url], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds plans"));
    let o = loopvel(&dir, &["db", "copy", "--from", &pg.url, "--to", back.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_records_into_postgres_resumes_there_and_never_prints_the_password() {
    let dir = scratch("run");
    let tasks = dir.join("tasks");
    for name in ["one", "two"] {
        let t = tasks.join(name);
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            t.join("task.toml"),
            "prompt = \"Set A to 1.\"\nedit = [\"calc.sh\"]\ntest = \"sh test.sh\"\nreport = \"tap\"\n",
        )
        .unwrap();
        std::fs::write(t.join("calc.sh"), "A=0\n").unwrap();
        std::fs::write(
            t.join("test.sh"),
            ". ./calc.sh\necho 1..1\nif [ \"$A\" = 1 ]; then echo ok 1; else echo not ok 1; fi\n",
        )
        .unwrap();
    }
    let server = serve_with(
        |_| Some(Step::Reply { pieces: vec!["calc.sh\n```sh\nA=1\n```\n".into()], first_ms: 5, gap_ms: 0 }),
        false,
    );
    std::fs::write(
        dir.join("loopvel.toml"),
        format!("[models.fake]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-1\"\n", server.url),
    )
    .unwrap();
    let Some(pg) = FreshPg::new("run") else { return };
    // A password in the URL (the server's trust auth ignores it) must never print.
    let url = pg.url.replacen("root@", "root:pw-4242-secret@", 1);
    let args = ["run", "--tasks", tasks.to_str().unwrap(), "--model", "fake", "--runs", "2"];
    // --db from the environment.
    let o = loopvel(&dir, &args, &[("LOOPVEL_DB", &url)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("recording into postgres://root:***@127.0.0.1"), "{err}");
    assert!(!err.contains("pw-4242-secret") && !String::from_utf8_lossy(&o.stdout).contains("pw-4242-secret"));
    // Nor is it recorded with the plan's command line, nor shown by --help.
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let command: String = c.query_one("SELECT command FROM plans", &[]).unwrap().get(0);
    assert!(!command.contains("pw-4242-secret"), "{command}");
    let help = loopvel(&dir, &["run", "--help"], &[("LOOPVEL_DB", &url)]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains("pw-4242-secret"));
    // The same command resumes from PostgreSQL: nothing left to play.
    let o = loopvel(&dir, &args, &[("LOOPVEL_DB", &url)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("(4 already done, resuming)"), "{err}");
    assert_eq!(server.requests.lock().unwrap().len(), 4);
    let o = loopvel(&dir, &["export", "--db", &url, "--format", "jsonl"], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.iter().filter(|r| r["record"] == "run" && r["outcome"] == "pass").count(), 4);
    // The report on PostgreSQL equals the report on a SQLite copy.
    let copy = dir.join("copy.db");
    assert!(loopvel(&dir, &["db", "copy", "--from", &url, "--to", copy.to_str().unwrap()], &[]).status.success());
    assert_eq!(report_json(&dir, &url), report_json(&dir, copy.to_str().unwrap()));
}
