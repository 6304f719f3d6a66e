//! The deploy recipes (deploy/k8s/*.yaml, deploy/Dockerfile), checked against
//! the real binary: no cluster and no image build needed, so it runs
//! everywhere the other tests do.
//!
//! Every Kubernetes document names its apiVersion, kind and metadata.name;
//! every `loopvel` command line in a container (`command`/`args`, or the
//! image's ENTRYPOINT followed by `args`) and in the Dockerfile names
//! subcommands that exist and only flags that `loopvel <subcommand> --help`
//! lists, and the real binary parses it (the same words followed by `--help`:
//! clap checks each value, `--concurrency x` or `--sandbox bogus`, before it
//! prints the help); every variable a container reads from a Secret is in the
//! Secret template; the tasks a worker is pointed at are where the image or a
//! volume puts them, and a ConfigMap of tasks holds the repository's files
//! byte for byte (a worker refuses a task whose files differ from the plan's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_loopvel");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One YAML document of deploy/k8s, with where it came from.
struct Doc {
    file: String,
    index: usize,
    yaml: Yaml,
}

impl Doc {
    fn at(&self) -> String {
        format!("{} (document {})", self.file, self.index + 1)
    }
    fn kind(&self) -> &str {
        self.yaml["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.yaml["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// Every document of every YAML file in deploy/k8s (empty documents skipped).
fn manifests() -> Vec<Doc> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    let mut docs = Vec::new();
    for path in files {
        let file = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let parsed = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"));
        for (index, yaml) in parsed.into_iter().enumerate() {
            if !matches!(yaml, Yaml::Null) {
                docs.push(Doc { file: file.clone(), index, yaml });
            }
        }
    }
    docs
}

/// What `loopvel [PATH…] --help` lists: subcommands and option flags.
#[derive(Clone, Default)]
struct Help {
    commands: BTreeSet<String>,
    flags: BTreeSet<String>,
}

/// `--help` of each subcommand path, asked of the binary once.
fn help(path: &[String]) -> Help {
    static CACHE: Mutex<BTreeMap<Vec<String>, Help>> = Mutex::new(BTreeMap::new());
    if let Some(h) = CACHE.lock().expect("the help cache").get(path) {
        return h.clone();
    }
    let out = Command::new(BIN).args(path).arg("--help").env_clear().output().expect("loopvel runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loopvel {} --help failed: {}", path.join(" "), String::from_utf8_lossy(&out.stderr));
    let mut h = Help::default();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let words: Vec<&str> = line.split_whitespace().collect();
        match section {
            // A subcommand's name sits at two spaces; its description wraps deeper.
            "Commands:" if indent == 2 => h.commands.extend(words.first().map(|w| w.to_string())),
            // `  -h, --help`, `      --db <DB>`: flags up to the first value name.
            "Options:" if indent == 2 || indent == 6 => {
                for w in words.iter().map(|w| w.trim_end_matches(',')) {
                    if !is_flag(w) {
                        break;
                    }
                    h.flags.insert(w.to_string());
                }
            }
            _ => {}
        }
    }
    CACHE.lock().expect("the help cache").insert(path.to_vec(), h.clone());
    h
}

/// `-x` or `--long-name` (not `-`, `--`, or a negative number).
fn is_flag(w: &str) -> bool {
    let long = w.strip_prefix("--").is_some_and(|n| {
        n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
    long || short
}

/// Check one `loopvel` command line (the words after `loopvel`): its
/// subcommands exist, each flag is in their --help, and the binary parses it.
/// Returns the subcommand path (`["worker"]`, `["sandbox", "check"]`).
fn check_call(words: &[String], at: &str, errors: &mut Vec<String>) -> Vec<String> {
    let shown = format!("`loopvel {}` in {at}", words.join(" "));
    let mut path: Vec<String> = Vec::new();
    let mut rest = words;
    while let Some(first) = rest.first().filter(|w| !w.starts_with('-')) {
        let here = help(&path);
        if here.commands.is_empty() {
            break; // a positional argument of the subcommand
        }
        if !here.commands.contains(first) || first == "help" {
            let within = if path.is_empty() { String::new() } else { format!(" of `loopvel {}`", path.join(" ")) };
            errors.push(format!("{shown}: `{first}` is not a subcommand{within} (there are: {:?})", here.commands));
            return path;
        }
        path.push(first.clone());
        rest = &rest[1..];
    }
    let here = help(&path);
    let only_global =
        !rest.is_empty() && rest.iter().all(|w| w == "--version" || w == "-V" || w == "--help" || w == "-h");
    if !here.commands.is_empty() && !only_global {
        errors.push(format!("{shown}: names no subcommand (there are: {:?})", here.commands));
        return path;
    }
    for w in rest.iter().filter(|w| w.starts_with('-')) {
        let flag = w.split('=').next().unwrap_or(w);
        if is_flag(flag) && !here.flags.contains(flag) {
            errors.push(format!("{shown}: `loopvel {} --help` lists no {flag}", path.join(" ")));
        }
    }
    // The binary itself: the same words, then --help. Values are checked as
    // they are parsed, so a wrong value fails here, and --help stops before
    // anything runs (no database is opened).
    let out = Command::new(BIN).args(words).arg("--help").env_clear().output().expect("loopvel runs");
    if !out.status.success() {
        errors.push(format!("{shown}: the binary refuses it: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    path
}

fn basename(w: &str) -> &str {
    w.rsplit('/').next().unwrap_or(w)
}

/// Words of a shell line, split into simple commands at `;`, `&&`, `||`, `|`,
/// `&` and newlines, with single and double quotes taken off. Enough for the
/// recipes' own lines (no expansions, no here-documents), not a shell.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, commands: &mut Vec<Vec<String>>| {
        if *in_word {
            commands.last_mut().expect("a command").push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            ';' | '&' | '|' | '\n' => {
                end_word(&mut word, &mut in_word, &mut commands);
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                commands.push(Vec::new());
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut commands),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut commands);
    commands.retain(|c| !c.is_empty());
    commands
}

/// The words after `loopvel` when this simple command runs loopvel (directly,
/// or through `exec`, `env VAR=…` or `tini --`).
fn loopvel_in(words: &[String]) -> Option<Vec<String>> {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let wrapper = matches!(basename(w), "exec" | "env" | "tini" | "tini-static");
        let assignment = !w.starts_with('-') && w.contains('=');
        if !(wrapper || assignment) {
            break;
        }
        i += 1;
        if wrapper {
            while words.get(i).is_some_and(|o| o.starts_with('-')) {
                i += 1;
            }
        }
    }
    let w = words.get(i)?;
    (basename(w) == "loopvel").then(|| words[i + 1..].to_vec())
}

/// Every loopvel command line in an argv: itself, or the commands of a
/// `sh -c SCRIPT`.
fn loopvel_calls(argv: &[String]) -> Vec<Vec<String>> {
    let shell = argv.first().is_some_and(|w| matches!(basename(w), "sh" | "bash" | "dash"));
    if shell && argv.get(1).is_some_and(|w| w == "-c") {
        return argv
            .get(2)
            .map(|s| shell_commands(s))
            .unwrap_or_default()
            .iter()
            .filter_map(|c| loopvel_in(c))
            .collect();
    }
    loopvel_in(argv).into_iter().collect()
}

/// deploy/Dockerfile as far as the test reads it.
#[derive(Default)]
struct Dockerfile {
    args: HashMap<String, String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    runs: Vec<String>,
    /// (sources, destination) of each COPY from the build context.
    copies: Vec<(Vec<String>, String)>,
}

impl Dockerfile {
    fn read() -> Dockerfile {
        let path = root().join("deploy/Dockerfile");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut d = Dockerfile::default();
        let mut instruction = String::new();
        for line in text.lines() {
            if line.trim_start().starts_with('#') {
                continue; // comments, also inside continued instructions
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    instruction.push_str(part);
                    instruction.push('\n');
                    continue;
                }
                None => instruction.push_str(line),
            }
            d.take(std::mem::take(&mut instruction).trim());
        }
        d.take(instruction.trim());
        d
    }

    fn take(&mut self, instruction: &str) {
        let (keyword, rest) = instruction.split_once(char::is_whitespace).unwrap_or((instruction, ""));
        let rest = rest.trim();
        // Exec form (a JSON array) as it is; shell form as `/bin/sh -c REST`.
        let argv = || -> Vec<String> {
            if rest.starts_with('[') {
                serde_json::from_str(rest).unwrap_or_else(|e| panic!("deploy/Dockerfile: {keyword} {rest}: {e}"))
            } else {
                vec!["/bin/sh".into(), "-c".into(), rest.into()]
            }
        };
        match keyword.to_ascii_uppercase().as_str() {
            "ARG" => {
                let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
                self.args.insert(name.trim().to_string(), value.trim().to_string());
            }
            "ENTRYPOINT" => self.entrypoint = argv(),
            "CMD" => self.cmd = argv(),
            "RUN" => self.runs.push(rest.to_string()),
            "COPY" | "ADD" => {
                let words: Vec<String> = rest.split_whitespace().map(|w| self.expand(w)).collect();
                if words.iter().any(|w| w.starts_with("--from")) {
                    return; // from another stage, not the build context
                }
                let mut files: Vec<String> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
                if let Some(dest) = files.pop() {
                    self.copies.push((files, dest));
                }
            }
            _ => {}
        }
    }

    /// `${NAME}` and `$NAME` replaced by the ARG's default.
    fn expand(&self, word: &str) -> String {
        let mut out = word.to_string();
        for (name, value) in &self.args {
            out = out.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
        }
        out
    }

    /// Where the image puts the build context's folders (COPY destinations).
    fn destinations(&self) -> Vec<String> {
        self.copies
            .iter()
            .map(|(_, dest)| dest.trim_end_matches('/').to_string())
            .filter(|dest| dest.starts_with('/'))
            .collect()
    }
}

/// A container of a pod spec, with where it came from.
struct Container<'a> {
    at: String,
    yaml: &'a Yaml,
    pod: &'a Yaml,
}

impl Container<'_> {
    fn strings(&self, key: &str) -> Option<Vec<String>> {
        let list = self.yaml[key].as_vec()?;
        Some(list.iter().map(|w| w.as_str().map(str::to_string).unwrap_or_else(|| format!("{w:?}"))).collect())
    }

    /// What the container runs: `command` + `args`, or the image's ENTRYPOINT + `args`.
    fn argv(&self, entrypoint: &[String]) -> Vec<String> {
        let args = self.strings("args").unwrap_or_default();
        match self.strings("command") {
            Some(command) => command.into_iter().chain(args).collect(),
            None if self.is_loopvel_image() => entrypoint.iter().cloned().chain(args).collect(),
            None => args,
        }
    }

    fn is_loopvel_image(&self) -> bool {
        self.yaml["image"].as_str().is_some_and(|i| i.contains("loopvel"))
    }

    fn env(&self) -> &[Yaml] {
        self.yaml["env"].as_vec().map_or(&[], Vec::as_slice)
    }
}

/// Every pod spec in a document: a mapping with `containers`, at any depth
/// (a Pod's spec, a Job's spec.template.spec).
fn pod_specs<'a>(y: &'a Yaml, out: &mut Vec<&'a Yaml>) {
    match y {
        Yaml::Hash(h) => {
            if y["containers"].as_vec().is_some() {
                out.push(y);
            }
            h.values().for_each(|v| pod_specs(v, out));
        }
        Yaml::Array(a) => a.iter().for_each(|v| pod_specs(v, out)),
        _ => {}
    }
}

fn containers(docs: &[Doc]) -> Vec<Container<'_>> {
    let mut out = Vec::new();
    for doc in docs {
        let mut pods = Vec::new();
        pod_specs(&doc.yaml, &mut pods);
        for pod in pods {
            for key in ["initContainers", "containers"] {
                for c in pod[key].as_vec().map_or(&[][..], Vec::as_slice) {
                    let name = c["name"].as_str().unwrap_or("?");
                    out.push(Container { at: format!("{} {} {key}/{name}", doc.at(), doc.name()), yaml: c, pod });
                }
            }
        }
    }
    out
}

fn fail_on(errors: Vec<String>) {
    assert!(errors.is_empty(), "{} problem(s):\n  {}", errors.len(), errors.join("\n  "));
}

#[test]
fn every_manifest_is_a_kubernetes_object() {
    let docs = manifests();
    let mut errors = Vec::new();
    for doc in &docs {
        for (what, value) in [
            ("apiVersion", &doc.yaml["apiVersion"]),
            ("kind", &doc.yaml["kind"]),
            ("metadata.name", &doc.yaml["metadata"]["name"]),
        ] {
            if value.as_str().is_none_or(str::is_empty) {
                errors.push(format!("{}: no {what}", doc.at()));
            }
        }
    }
    // Kubernetes takes env values, command and args only as strings: `value: 4`
    // or `- 4` is refused at apply.
    for c in containers(&docs) {
        for key in ["command", "args"] {
            for w in c.yaml[key].as_vec().into_iter().flatten().filter(|w| w.as_str().is_none()) {
                errors.push(format!("{}: {key} item {w:?}: give it as a string (quoted)", c.at));
            }
        }
        for e in c.env() {
            if !e["value"].is_badvalue() && e["value"].as_str().is_none() {
                errors.push(format!("{}: env {:?}: give the value as a string", c.at, e["name"].as_str()));
            }
        }
    }
    assert!(docs.iter().any(|d| d.kind() == "Job"), "deploy/k8s holds no Job");
    fail_on(errors);
}

#[test]
fn every_loopvel_command_in_the_manifests_exists() {
    let docs = manifests();
    let dockerfile = Dockerfile::read();
    let mut errors = Vec::new();
    let mut workers = 0;
    for c in containers(&docs) {
        let calls = loopvel_calls(&c.argv(&dockerfile.entrypoint));
        if c.is_loopvel_image() && calls.is_empty() {
            errors.push(format!("{}: runs the loopvel image but no loopvel command", c.at));
        }
        for call in calls {
            if check_call(&call, &c.at, &mut errors) == ["worker"] {
                workers += 1;
            }
        }
    }
    assert!(workers > 0, "no container in deploy/k8s runs `loopvel worker`");
    fail_on(errors);
}

#[test]
fn every_secret_the_containers_read_is_defined() {
    let docs = manifests();
    let mut secrets: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut errors = Vec::new();
    for doc in docs.iter().filter(|d| d.kind() == "Secret") {
        let keys = secrets.entry(doc.name()).or_default();
        if !doc.yaml["data"].is_badvalue() {
            errors.push(format!("{}: a template holds stringData placeholders, not data", doc.at()));
        }
        for (k, v) in doc.yaml["stringData"].as_hash().into_iter().flatten() {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else { continue };
            keys.insert(k);
            // A template, never a real key or password.
            if !v.contains("REPLACE_ME") {
                errors.push(format!("{}: {k} holds a value, not a REPLACE_ME placeholder", doc.at()));
            }
        }
    }
    assert!(!secrets.is_empty(), "deploy/k8s holds no Secret template");
    let dockerfile = Dockerfile::read();
    let mut read = 0;
    for c in containers(&docs) {
        let mut from_secret = BTreeSet::new();
        for e in c.env() {
            let r = &e["valueFrom"]["secretKeyRef"];
            if r.is_badvalue() {
                continue;
            }
            read += 1;
            let (secret, key) = (r["name"].as_str().unwrap_or(""), r["key"].as_str().unwrap_or(""));
            let var = e["name"].as_str().unwrap_or("?");
            match secrets.get(secret) {
                None => errors.push(format!("{}: {var} reads Secret {secret:?}, which no manifest defines", c.at)),
                Some(keys) if !keys.contains(key) => errors
                    .push(format!("{}: {var} reads key {key:?} of Secret {secret:?}, which it does not hold", c.at)),
                Some(_) => {
                    from_secret.insert(var);
                }
            }
        }
        for e in c.yaml["envFrom"].as_vec().into_iter().flatten() {
            if let Some(secret) = e["secretRef"]["name"].as_str() {
                read += 1;
                if !secrets.contains_key(secret) {
                    errors.push(format!("{}: envFrom reads Secret {secret:?}, which no manifest defines", c.at));
                }
            }
        }
        // A worker's database URL holds a password: from a Secret, never written out.
        let worker =
            loopvel_calls(&c.argv(&dockerfile.entrypoint)).iter().any(|w| w.first().is_some_and(|s| s == "worker"));
        if worker && !from_secret.contains("LOOPVEL_DB") {
            errors.push(format!("{}: a worker without LOOPVEL_DB from a Secret", c.at));
        }
    }
    assert!(read > 0, "no container reads a Secret");
    fail_on(errors);
}

#[test]
fn the_dockerfile_runs_only_existing_subcommands() {
    let d = Dockerfile::read();
    let mut errors = Vec::new();
    // ENTRYPOINT then CMD is what `docker run IMAGE` runs; the manifests give
    // their own args after the same ENTRYPOINT.
    let default: Vec<String> = d.entrypoint.iter().chain(&d.cmd).cloned().collect();
    let calls = loopvel_calls(&default);
    assert_eq!(calls.len(), 1, "deploy/Dockerfile: ENTRYPOINT + CMD ({default:?}) should run loopvel");
    assert_eq!(loopvel_calls(&d.entrypoint), vec![Vec::<String>::new()], "the ENTRYPOINT should end at loopvel");
    for call in calls {
        if check_call(&call, "deploy/Dockerfile ENTRYPOINT + CMD", &mut errors).is_empty() {
            errors.push("deploy/Dockerfile: ENTRYPOINT + CMD names no subcommand".into());
        }
    }
    for run in &d.runs {
        for call in shell_commands(run).iter().filter_map(|c| loopvel_in(c)) {
            check_call(&call, &format!("deploy/Dockerfile RUN {}", run.trim()), &mut errors);
        }
    }
    // COPY from the build context (the repository root) names what is there.
    for (sources, _) in &d.copies {
        for s in sources.iter().filter(|s| !root().join(s).exists()) {
            errors.push(format!("deploy/Dockerfile: COPY {s}: not in the repository"));
        }
    }
    fail_on(errors);
}

#[test]
fn tasks_reach_the_workers_where_they_look() {
    let docs = manifests();
    let dockerfile = Dockerfile::read();
    let config_maps: BTreeMap<&str, &Doc> =
        docs.iter().filter(|d| d.kind() == "ConfigMap").map(|d| (d.name(), d)).collect();
    let mut errors = Vec::new();
    for c in containers(&docs) {
        let volumes: BTreeMap<&str, &Yaml> =
            c.pod["volumes"].as_vec().into_iter().flatten().filter_map(|v| Some((v["name"].as_str()?, v))).collect();
        let mut mounts: BTreeMap<String, &Yaml> = BTreeMap::new();
        for m in c.yaml["volumeMounts"].as_vec().into_iter().flatten() {
            let (name, path) = (m["name"].as_str().unwrap_or(""), m["mountPath"].as_str().unwrap_or(""));
            match volumes.get(name) {
                Some(v) => {
                    mounts.insert(path.trim_end_matches('/').to_string(), v);
                }
                None => errors.push(format!("{}: mounts volume {name:?}, which the pod does not define", c.at)),
            }
        }
        for call in loopvel_calls(&c.argv(&dockerfile.entrypoint)) {
            let tasks = call
                .iter()
                .position(|w| w == "--tasks")
                .and_then(|i| call.get(i + 1))
                .cloned()
                .or_else(|| call.iter().find_map(|w| w.strip_prefix("--tasks=").map(str::to_string)));
            let Some(tasks) = tasks.map(|t| t.trim_end_matches('/').to_string()) else { continue };
            if let Some(volume) = mounts.get(&tasks) {
                check_task_volume(volume, &config_maps, &c.at, &mut errors);
            } else if !dockerfile.destinations().contains(&tasks) {
                errors.push(format!(
                    "{}: --tasks {tasks}: neither a volume mounted there nor a folder the image copies there ({:?})",
                    c.at,
                    dockerfile.destinations()
                ));
            }
        }
    }
    fail_on(errors);
}

/// A ConfigMap volume of tasks holds the repository's files byte for byte,
/// every file of each task it names (else the task's hash is not the plan's),
/// each task in a folder of its own under the mount.
fn check_task_volume(volume: &Yaml, config_maps: &BTreeMap<&str, &Doc>, at: &str, errors: &mut Vec<String>) {
    let Some(name) = volume["configMap"]["name"].as_str() else { return };
    let Some(cm) = config_maps.get(name) else {
        errors.push(format!("{at}: volume from ConfigMap {name:?}, which no manifest defines"));
        return;
    };
    let Some(source) = cm.yaml["metadata"]["annotations"]["loopvel/tasks-source"].as_str() else {
        errors
            .push(format!("{}: a ConfigMap of tasks names its folder in the loopvel/tasks-source annotation", cm.at()));
        return;
    };
    let Some(items) = volume["configMap"]["items"].as_vec() else {
        errors.push(format!("{at}: ConfigMap {name:?} mounted without items: each task must be a folder"));
        return;
    };
    let mut by_task: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in items {
        let (key, path) = (item["key"].as_str().unwrap_or(""), item["path"].as_str().unwrap_or(""));
        let Some((task, _)) = path.split_once('/') else {
            errors.push(format!("{at}: item {path:?} is not inside a task's folder"));
            continue;
        };
        by_task.entry(task.to_string()).or_default().insert(path.to_string());
        let file = root().join(source).join(path);
        match (cm.yaml["data"][key].as_str(), std::fs::read_to_string(&file)) {
            (None, _) => errors.push(format!("{at}: item {key:?} is not in ConfigMap {name:?}")),
            (_, Err(e)) => errors.push(format!("{}: {path}: no such file in {source} ({e})", cm.at())),
            (Some(held), Ok(real)) if held != real => errors.push(format!(
                "{}: {key} differs from {}",
                cm.at(),
                file.strip_prefix(root()).unwrap_or(&file).display()
            )),
            _ => {}
        }
    }
    for (task, paths) in by_task {
        let mut real = BTreeSet::new();
        files_under(&root().join(source).join(&task), &root().join(source), &mut real);
        for missing in real.difference(&paths) {
            errors.push(format!(
                "{at}: ConfigMap {name:?} lacks {source}/{missing}, so the task's files are not the plan's"
            ));
        }
    }
}

fn files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            out.insert(p.strip_prefix(base).unwrap_or(&p).display().to_string());
        }
    }
}

/// The checker itself: a wrong flag, a wrong value, a wrong subcommand and a
/// missing subcommand are each caught, so the tests above can fail.
#[test]
fn the_checker_catches_wrong_commands() {
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let problems = |s: &str| {
        let mut errors = Vec::new();
        check_call(&words(s), "a probe", &mut errors);
        errors
    };
    assert_eq!(problems("worker --concurrency 4 --tasks /t --lease-s 60 --sandbox auto"), Vec::<String>::new());
    assert_eq!(problems("sandbox check --sandbox auto"), Vec::<String>::new());
    assert_eq!(problems("--version"), Vec::<String>::new());
    assert!(problems("worker --concurency 4").iter().any(|e| e.contains("lists no --concurency")));
    assert!(problems("worker --sandbox bogus").iter().any(|e| e.contains("refuses")));
    assert!(problems("wroker --concurrency 4").iter().any(|e| e.contains("not a subcommand")));
    assert!(problems("sandbox").iter().any(|e| e.contains("names no subcommand")));
    assert_eq!(loopvel_calls(&words("/usr/bin/tini -- loopvel worker --follow")), vec![words("worker --follow")]);
    let script = vec!["sh".into(), "-c".into(), "useradd loopvel && exec loopvel status; echo done".into()];
    assert_eq!(loopvel_calls(&script), vec![words("status")]);
}
