//! End-to-end: `loopvel view` serves what `loopvel run` recorded. Runs are
//! recorded against a fake model server; `view` is started on a free port
//! and its pages fetched over HTTP and in headless Chromium: the run list,
//! a run's turns with grades and timings, an applied and a refused edit, a
//! diff, hostile model output shown as text, and turns appearing while a run
//! is still recording. `report --run ID --html` writes the same transcript.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/abc_task.rs"]
mod abc_task;
use abc_task::abc_task as task;
#[path = "support/fake_server.rs"]
mod fake_server;
use fake_server::{serve, Step};

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("view-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn loopvel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loopvel")).args(args).current_dir(dir).output().expect("run loopvel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Hostile text a model might write: markup that would run or link out if it were not escaped.
const HOSTILE: &str = "<script>alert('pwned')</script> <img src=x onerror=alert(1)> \
                       <a href=\"javascript:alert(2)\">click</a>";

fn reply(a: u8, b: u8, c: u8, extra: &str) -> Step {
    let body = format!("{extra}\n\ncalc.sh\n```sh\nA={a}\nB={b}\nC={c}\n```\n");
    Step::Reply { pieces: vec![body], first_ms: 20, gap_ms: 0 }
}

fn config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("loopvel.toml"),
        format!("[models.fake]\napi = \"openai\"\nbase_url = \"{url}\"\nmodel = \"m\"\n"),
    )
    .unwrap();
}

/// `loopvel view` on a free port, and the port it printed.
struct View {
    child: Child,
    port: u16,
}

impl View {
    fn start(dir: &Path, db: &str) -> View {
        View::try_start(dir, db).unwrap_or_else(|why| panic!("{why}"))
    }

    /// `Err` with what it said when `view` did not start (e.g. the database not made yet).
    fn try_start(dir: &Path, db: &str) -> Result<View, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loopvel"))
            .args(["view", "--db", db, "--port", "0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loopvel view");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.split("http://127.0.0.1:").nth(1).and_then(|rest| rest.split('/').next()).and_then(|p| p.parse().ok());
        match port {
            Some(port) => Ok(View { child, port }),
            None => {
                let _ = child.wait();
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                Err(format!("no URL in {line:?}; it said {err:?}"))
            }
        }
    }

    /// Status code and body of GET `path`.
    fn get(&self, path: &str) -> (u16, String) {
        self.get_as(path, &format!("127.0.0.1:{}", self.port))
    }

    /// [`View::get`] with this Host header.
    fn get_as(&self, path: &str, host: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let raw = text(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(head.contains("Content-Security-Policy: default-src 'none'"), "{head}");
        (code, body.to_string())
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DOM headless Chromium builds from `url`, or `None` where no Chromium runs.
fn chromium_dom(url: &str) -> Option<String> {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(bin) = bin else {
        assert!(
            std::env::var_os("LOOPVEL_REQUIRE_CHROMIUM").is_none(),
            "LOOPVEL_REQUIRE_CHROMIUM is set but no chromium runs here"
        );
        eprintln!("SKIPPED the Chromium half: no chromium on this machine (Debian: apt-get install chromium)");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    Some(text(&o.stdout))
}

fn assert_hostile_is_text(page: &str) {
    assert!(page.contains("&lt;script&gt;alert("), "the script tag shows as text");
    assert!(!page.contains("<script"), "no script element");
    assert!(!page.contains("<img"), "no img element");
    assert!(!page.to_lowercase().contains("<a href=\"javascript:"), "no javascript: link");
}

#[test]
fn view_shows_runs_turn_by_turn_with_hostile_text_as_text() {
    let dir = scratch("turns");
    let t = task(&dir);
    // Turn 1: a hostile paragraph, A fixed (applied) and an edit of test.sh,
    // which the task does not let the model edit (refused). Turn 2: all fixed.
    let refused = "test.sh\n```sh\necho 1..1\necho ok forged\n```\n";
    let server = serve(vec![reply(1, 0, 0, &format!("{HOSTILE}\n\n{refused}")), reply(1, 1, 1, "")], false);
    config(&dir, &server.url);
    let o = loopvel(&dir, &["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "3"]);
    assert!(o.status.success(), "{}\n{}", text(&o.stdout), text(&o.stderr));

    let view = View::start(&dir, "loopvel.db");
    let (code, index) = view.get("/");
    assert_eq!(code, 200);
    assert!(index.contains("loopvel run") && index.contains(">fake</a>"), "{index}");
    let (code, list) = view.get("/runs?model=fake");
    assert_eq!(code, 200);
    assert!(list.contains("href=\"/run/1\""), "{list}");
    assert!(list.contains("title=\"turn 1: PARTIAL\"") && list.contains("title=\"turn 2: PASS\""), "{list}");
    let (_, none) = view.get("/runs?model=nobody");
    assert!(!none.contains("href=\"/run/1\""), "the filter leaves the run out");

    let (code, page) = view.get("/run/1");
    assert_eq!(code, 200, "{page}");
    for want in [
        "Turn 1 · <span class=\"g partial\">PARTIAL</span> · 1 of 3 tests",
        "Turn 2 · <span class=\"g pass\">PASS</span> · 3 of 3 tests",
        "Edits: 1 applied, 1 refused",
        "test.sh",
        "<div class=\"del\">-A=0</div>",
        "<div class=\"add\">+A=1</div>",
        "<div class=\"add\">+C=1</div>",
        "class=\"ttft\"",
        "first token: ",
        "ok A",
        "new this turn",
    ] {
        assert!(page.contains(want), "{want:?} missing from the run page:\n{page}");
    }
    assert_hostile_is_text(&page);
    assert_eq!(view.get("/run/99").0, 404);
    // DNS rebinding: a page served from another name that resolves here gets nothing.
    let (code, refused) = view.get_as("/runs", &format!("rebind.attacker.example:{}", view.port));
    assert_eq!(code, 421);
    assert!(!refused.contains("/run/1"), "{refused}");
    assert_eq!(view.get_as("/", &format!("localhost:{}", view.port)).0, 200);
    assert_eq!(view.get("/etc/passwd").0, 404);

    if let Some(dom) = chromium_dom(&format!("http://127.0.0.1:{}/run/1", view.port)) {
        assert!(dom.contains("Turn 2"), "Chromium rendered the run:\n{dom}");
        assert_hostile_is_text(&dom);
    }

    // The same transcript as one file, with no links to the server's pages.
    let o = loopvel(&dir, &["report", "--db", "loopvel.db", "--run", "1", "--html", "run-1.html"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let file = std::fs::read_to_string(dir.join("run-1.html")).unwrap();
    assert!(file.contains("<div class=\"add\">+A=1</div>") && !file.contains("href=\"/runs"), "{file}");
    assert_hostile_is_text(&file);
    // The report's by-task cells link to the commands that write their runs' transcripts.
    let o = loopvel(&dir, &["report", "--db", "loopvel.db", "--by-task", "--html", "report.html"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(report.contains("<td><a href=\"#runs-0-0\">1/1"), "{report}");
    assert!(report.contains("<tr id=\"runs-0-0\"><td>abc</td><td>fake</td>"), "{report}");
    assert!(report.contains("loopvel report --db loopvel.db --run 1 --html run-1.html"), "{report}");
    let o = loopvel(&dir, &["report", "--db", "loopvel.db", "--run", "7", "--html", "x.html"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("has no run 7"), "{}", text(&o.stderr));
}

#[test]
fn view_shows_turns_as_a_run_records_them() {
    let dir = scratch("live");
    let t = task(&dir);
    // The second reply takes 4 s: long enough to see turn 1 while the run is still going.
    let slow = Step::Reply { pieces: vec!["calc.sh\n```sh\nA=1\nB=1\nC=1\n```\n".into()], first_ms: 4000, gap_ms: 0 };
    let server = serve(vec![reply(1, 0, 0, ""), slow], false);
    config(&dir, &server.url);
    let mut run = Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(["run", "--tasks", t.to_str().unwrap(), "--model", "fake", "--max-turns", "3"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.join("loopvel.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !db.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The file exists a moment before `run` has written its schema: until then `view`
    // says it is not a loopvel database, and is started again.
    let view = loop {
        match View::try_start(&dir, "loopvel.db") {
            Ok(v) => break v,
            Err(why) if Instant::now() < deadline && why.contains("not a loopvel database") => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(why) => panic!("{why}"),
        }
    };
    let mut saw_live = false;
    while Instant::now() < deadline {
        let (_, page) = view.get("/run/1");
        if page.contains("In progress") && page.contains("id=\"turn-1\"") && !page.contains("id=\"turn-2\"") {
            assert!(page.contains("http-equiv=\"refresh\""), "a page in progress reloads itself");
            saw_live = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(saw_live, "turn 1 was shown while the run was recording");
    assert!(run.wait().unwrap().success());
    let (_, page) = view.get("/run/1");
    assert!(page.contains("id=\"turn-2\"") && !page.contains("In progress"), "{page}");
    assert!(page.contains("<span class=\"g pass\">pass</span>"), "{page}");
}
