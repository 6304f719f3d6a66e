//! `loopvel view`'s pages on the shipped experiment (demo/experiment.db: 180
//! runs, 967 turns), fetched over HTTP from a server in this process: the
//! plans page, the run list (all, and filtered), and every run's transcript
//! (which rebuilds its files from the task and the recorded replies), three
//! times each. Prints the median, P90 and slowest time per kind of page; the
//! floor is 200 ms a page (docs/view.md).
//!
//! `cargo bench --bench view`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Instant;

use loopvel_store::Store;
use loopvel_view::files::TaskSearch;
use loopvel_view::pages::Pages;
use loopvel_view::server::Viewer;

fn get(port: u16, path: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), raw.len())
}

fn main() {
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/experiment.db");
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("cd to the repository");
    let store = Store::open_read_only(&db).expect("open demo/experiment.db");
    let ids: Vec<i64> = store.run_rows().expect("runs").iter().map(|r| r.id).collect();
    let viewer = Viewer::bind(0).expect("bind");
    let port = viewer.port;
    let pages = Pages::new(&db.to_string_lossy());
    std::thread::spawn(move || viewer.serve(pages, store, TaskSearch::default(), 1));
    let kinds: Vec<(&str, Vec<String>)> = vec![
        ("plans (/)", vec!["/".into()]),
        ("run list (/runs, all 180)", vec!["/runs".into()]),
        ("run list (/runs?grade=THRASH)", vec!["/runs?grade=THRASH".into()]),
        ("transcript (/run/ID, each of 180)", ids.iter().map(|id| format!("/run/{id}")).collect()),
    ];
    println!("loopvel view on demo/experiment.db, over HTTP on 127.0.0.1, 3 fetches of each page");
    println!("{:<36} {:>6} {:>10} {:>10} {:>10} {:>10}", "page", "pages", "median", "P90", "slowest", "size");
    let mut slowest_all = 0.0f64;
    for (kind, paths) in kinds {
        let mut times = Vec::new();
        let mut biggest = 0;
        for path in &paths {
            for _ in 0..3 {
                let t = Instant::now();
                let (code, size) = get(port, path);
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(code, 200, "{path}");
                biggest = biggest.max(size);
            }
        }
        times.sort_by(f64::total_cmp);
        let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        slowest_all = slowest_all.max(q(1.0));
        println!(
            "{kind:<36} {:>6} {:>7.1} ms {:>7.1} ms {:>7.1} ms {:>7} KB",
            paths.len(),
            q(0.5),
            q(0.9),
            q(1.0),
            biggest / 1024
        );
    }
    println!("slowest page: {slowest_all:.1} ms (floor 200 ms)");
}
