//! The README and docs/ paste real output. Every fenced block right after a
//! marker line
//!
//! ```text
//! <!-- output: ARGS [| head N] [| from TEXT] [| skip N] -->
//! ```
//!
//! must be what `loopvel ARGS` prints today (run in the repository root).
//! Markdown that loopvel prints (`--markdown`) is pasted unfenced, to render
//! as tables, between `<!-- output-md: ARGS [| …] -->` and `<!-- end output -->`.
//! Options:
//! `head N` keeps the first N lines, `from TEXT` starts at the first line
//! holding TEXT, `skip N` leaves the first N lines out of the comparison
//! (a wall time that differs per run). Relative links in those files must
//! point at files that exist.
//!
//! After a change to an output, `LOOPVEL_UPDATE_DOCS=1 cargo test --test
//! docs_outputs` rewrites the blocks; review the diff like any other.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

struct Marker {
    args: Vec<String>,
    head: Option<usize>,
    from: Option<String>,
    skip: usize,
}

/// Where a marker's pasted text ends: a closing fence, or for unfenced
/// markdown the end marker.
const END_MD: &str = "<!-- end output -->";

fn parse_marker(line: &str) -> Option<(Marker, bool)> {
    let line = line.trim();
    let (inner, markdown) = match line.strip_prefix("<!-- output-md:") {
        Some(rest) => (rest, true),
        None => (line.strip_prefix("<!-- output:")?, false),
    };
    let inner = inner.strip_suffix("-->")?;
    let mut parts = inner.split(" | ");
    let args = parts.next()?.split_whitespace().map(String::from).collect();
    let mut m = Marker { args, head: None, from: None, skip: 0 };
    for p in parts {
        let p = p.trim();
        if let Some(n) = p.strip_prefix("head ") {
            m.head = Some(n.parse().expect("head N"));
        } else if let Some(t) = p.strip_prefix("from ") {
            m.from = Some(t.to_string());
        } else if let Some(n) = p.strip_prefix("skip ") {
            m.skip = n.parse().expect("skip N");
        } else {
            panic!("unknown marker option {p:?} in {line:?}");
        }
    }
    Some((m, markdown))
}

fn produce(m: &Marker) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_loopvel"))
        .args(&m.args)
        .current_dir(root())
        .env("COLUMNS", "80")
        .output()
        .expect("run loopvel");
    assert!(out.status.success(), "loopvel {:?} failed: {}", m.args, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<String> = text.trim_end().lines().map(|l| l.trim_end().to_string()).collect();
    if let Some(t) = &m.from {
        let at = lines.iter().position(|l| l.contains(t.as_str())).unwrap_or_else(|| panic!("no {t:?} in {text}"));
        lines.drain(..at);
    }
    if let Some(n) = m.head {
        lines.truncate(n);
    }
    lines
}

#[test]
fn pasted_outputs_are_what_the_binary_prints() {
    let update = std::env::var_os("LOOPVEL_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut rewritten: Vec<String> = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            rewritten.push(lines[i].to_string());
            let Some((m, markdown)) = parse_marker(lines[i]) else {
                i += 1;
                continue;
            };
            let open = i + 1;
            let close = if markdown {
                // The pasted markdown sits between blank lines, so it renders on its own.
                open + lines[open..].iter().position(|l| l.trim() == END_MD).expect("an end-of-output marker")
            } else {
                assert!(
                    lines.get(open).is_some_and(|l| l.starts_with("```")),
                    "{}:{}: a fence must follow",
                    doc.display(),
                    open
                );
                open + 1 + lines[open + 1..].iter().position(|l| l.starts_with("```")).expect("closed fence")
            };
            // Fenced: the lines inside the fences. Markdown: every line up to the end marker.
            let first = if markdown { open } else { open + 1 };
            let pasted: Vec<String> = lines[first..close].iter().map(|l| l.trim_end().to_string()).collect();
            let produced = if markdown {
                let mut p = vec![String::new()];
                p.extend(produce(&m));
                p.push(String::new());
                p
            } else {
                produce(&m)
            };
            checked += 1;
            let same = pasted.iter().skip(m.skip).eq(produced.iter().skip(m.skip));
            if !same {
                stale.push(format!(
                    "{}:{}: `loopvel {}` prints something else now\n--- pasted\n{}\n--- produced\n{}",
                    doc.display(),
                    i + 1,
                    m.args.join(" "),
                    pasted.join("\n"),
                    produced.join("\n")
                ));
            }
            if !markdown {
                rewritten.push(lines[open].to_string());
            }
            // The skipped lines stay as pasted (a new block takes them from this run).
            let head_from = if pasted.len() >= m.skip { &pasted } else { &produced };
            let kept: Vec<String> = head_from.iter().take(m.skip).cloned().collect();
            rewritten.extend(if same {
                pasted.clone()
            } else {
                kept.into_iter().chain(produced.into_iter().skip(m.skip)).collect()
            });
            rewritten.push(lines[close].to_string());
            i = close + 1;
        }
        if update {
            std::fs::write(&doc, rewritten.join("\n") + "\n").unwrap();
        }
    }
    assert!(checked >= 8, "only {checked} checked blocks: the markers are gone?");
    if !update {
        assert!(stale.is_empty(), "{}\n(LOOPVEL_UPDATE_DOCS=1 rewrites them)", stale.join("\n\n"));
    }
}

fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn relative_links_point_at_files_that_exist() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for link in links(&text) {
            if link.starts_with("http") || link.starts_with('#') || link.contains(' ') {
                continue;
            }
            let file = link.split('#').next().unwrap_or("");
            let base: &Path = doc.parent().unwrap();
            if !file.is_empty() && !base.join(file).exists() {
                broken.push(format!("{}: {link}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
