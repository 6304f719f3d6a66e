//! `loopvel view`'s HTTP server: 127.0.0.1 only, GET and HEAD only, every
//! page read from the database as it is now (a reload shows new turns).

use std::io::Cursor;
use std::sync::Arc;

use loopvel_store::Store;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::files::TaskSearch;
use crate::pages::{Pages, RunFilter};

/// What a page request gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// HTML.
    pub body: String,
}

fn page(status: u16, title: &str, text: &str) -> Answer {
    // Escaped by hand: this one page is built without the templates.
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Answer {
        status,
        body: format!(
            "<!doctype html><meta charset=\"utf-8\"><title>{}</title><p><a href=\"/\">plans</a></p><h1>{}</h1><p>{}</p>",
            esc(title),
            esc(title),
            esc(text)
        ),
    }
}

/// The page at `url` (path and query).
pub fn answer(pages: &Pages, store: &Store, search: &TaskSearch, url: &str) -> Answer {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let result = match path {
        "/" => pages.index(store).map(Some),
        "/runs" => pages.runs(store, &RunFilter::parse(query)).map(Some),
        p => match p.strip_prefix("/run/").map(str::parse::<i64>) {
            Some(Ok(id)) => pages.run(store, id, search, false),
            _ => return page(404, "Not found", &format!("loopvel view has no page {path}; start at /")),
        },
    };
    match result {
        Ok(Some(body)) => Answer { status: 200, body },
        Ok(None) => page(404, "No such run", &format!("the database has no run {}", path.trim_start_matches("/run/"))),
        Err(e) => page(500, "The database could not be read", &e),
    }
}

/// True when the request names this server as 127.0.0.1 or localhost on its
/// port. Anything else is refused: a web page whose domain an attacker points
/// at 127.0.0.1 (DNS rebinding) would otherwise be same-origin with these
/// pages and could read every prompt and reply.
fn host_is_local(request: &Request, port: u16) -> bool {
    let host = request.headers().iter().find(|h| h.field.equiv("Host")).map(|h| h.value.as_str().to_ascii_lowercase());
    host.is_some_and(|h| h == format!("127.0.0.1:{port}") || h == format!("localhost:{port}"))
}

fn respond(pages: &Pages, store: &Store, search: &TaskSearch, port: u16, request: Request) {
    let a = match request.method() {
        _ if !host_is_local(&request, port) => page(
            421,
            "Wrong host",
            &format!("loopvel view answers http://127.0.0.1:{port}/ and http://localhost:{port}/ only"),
        ),
        Method::Get | Method::Head => answer(pages, store, search, request.url()),
        _ => page(405, "Read-only", "loopvel view only reads: GET and HEAD"),
    };
    let body = a.body.into_bytes();
    let length = body.len();
    let mut response = Response::new(a.status.into(), Vec::new(), Cursor::new(body), Some(length), None);
    for (k, v) in [
        ("Content-Type", "text/html; charset=utf-8"),
        // Nothing on these pages may run or load anything: no scripts, no requests out.
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ] {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    // A client that went away is no error of ours.
    let _ = request.respond(response);
}

/// A server bound to 127.0.0.1:`port` (0: any free port).
pub struct Viewer {
    server: Arc<Server>,
    /// The port it listens on.
    pub port: u16,
}

impl Viewer {
    /// Binds the port; only 127.0.0.1, so nothing beyond this machine can read the runs.
    pub fn bind(port: u16) -> Result<Viewer, String> {
        let server =
            Server::http(("127.0.0.1", port)).map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(port);
        Ok(Viewer { server: Arc::new(server), port })
    }

    /// Serves until the process ends, with `threads` workers.
    pub fn serve(self, pages: Pages, store: Store, search: TaskSearch, threads: usize) {
        let shared = Arc::new((pages, store, search));
        let port = self.port;
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let (server, shared) = (Arc::clone(&self.server), Arc::clone(&shared));
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        let (pages, store, search) = &*shared;
                        respond(pages, store, search, port, request);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
    }
}
