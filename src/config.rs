//! Model configuration: `loopvel.toml` and the `provider:model` shorthands.
//! The only place that reads API keys from the environment.

use std::path::{Path, PathBuf};

use loopvel_harness::design::{Feedback, FilesShown, LoopDesign, MAX_CANDIDATES};
use loopvel_harness::run::History;
use loopvel_provider::{Api, ModelConfig, Secret};
use serde::Deserialize;

use crate::error::CliError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    #[serde(default)]
    models: toml::Table,
    #[serde(default)]
    arms: toml::Table,
}

/// `[arms.NAME]`: a loop design, every key optional (the default loop where left out).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmToml {
    feedback: Option<String>,
    history: Option<String>,
    files: Option<String>,
    restart_after: Option<u32>,
    temperature: Option<f64>,
    temperature_step: Option<f64>,
    #[serde(default)]
    think_first: bool,
    candidates: Option<u32>,
}

/// A named loop design: one arm of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Its name, as runs are labelled (`MODEL / NAME`).
    pub name: String,
    /// What it feeds back, which files it re-sends, when it restarts.
    pub design: LoopDesign,
    /// What the model sees of earlier turns.
    pub history: History,
}

impl Arm {
    /// The design as a JSON object (recorded with each model variant).
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.design).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("name".into(), self.name.clone().into());
            o.insert("history".into(), self.history.name().into());
        }
        v
    }
}

/// Builds an arm from its keys; `at` names where they came from, for errors.
fn arm_of(name: &str, a: ArmToml, at: &str) -> Result<Arm, CliError> {
    let bad =
        |key: &str, value: &str, fix: &str| CliError::Usage(format!("{at}: {key} = {value:?} is not known; {fix}"));
    let feedback = match a.feedback.as_deref() {
        None | Some("raw") => Feedback::Raw,
        Some("failures") => Feedback::Failures,
        Some("targeted") => Feedback::Targeted,
        Some(other) => return Err(bad("feedback", other, "use raw, failures or targeted")),
    };
    let files = match a.files.as_deref() {
        None | Some("all") => FilesShown::All,
        Some("changed") => FilesShown::Changed,
        Some(other) => return Err(bad("files", other, "use all or changed")),
    };
    let history = match a.history.as_deref() {
        None => History::Full,
        Some(h) => History::parse(h).map_err(|e| CliError::Usage(format!("{at}: {e}")))?,
    };
    if files == FilesShown::Changed && history != History::Full {
        return Err(CliError::Usage(format!(
            "{at}: files = \"changed\" needs history = \"full\" (with {} the files the model saw leave its \
             context, so every file is sent again anyway); use files = \"all\" or history = \"full\"",
            history.name()
        )));
    }
    if let Some(k) = a.candidates.filter(|k| !(1..=MAX_CANDIDATES).contains(k)) {
        return Err(CliError::Usage(format!("{at}: candidates = {k}; give 1 to {MAX_CANDIDATES} replies a turn")));
    }
    if a.restart_after == Some(0) {
        return Err(CliError::Usage(format!("{at}: restart_after = 0; give 1 or more turns, or leave it out")));
    }
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(CliError::Usage(format!(
            "{at}: the arm name {name:?} may hold only letters, digits, '-', '_' and '.'"
        )));
    }
    for (key, value) in [("temperature", a.temperature), ("temperature_step", a.temperature_step)] {
        if value.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(CliError::Usage(format!(
                "{at}: {key} = {} is out of range; give 0 to 2",
                value.unwrap_or(0.0)
            )));
        }
    }
    let design = LoopDesign {
        feedback,
        files,
        restart_after: a.restart_after,
        temperature: a.temperature,
        temperature_step: a.temperature_step,
        think_first: a.think_first,
        candidates: a.candidates.filter(|&k| k > 1),
    };
    Ok(Arm { name: name.to_string(), design, history })
}

/// The arms `--arm` names: `NAME` from `[arms.NAME]` in loopvel.toml (`raw`,
/// the loop as it always was, needs no table), or inline as
/// `NAME:key=value,key=value` (keys as in the table).
pub fn resolve_arms(given_config: Option<&Path>, specs: &[String]) -> Result<Vec<Arm>, CliError> {
    let path = config_path(given_config);
    let table = read_config(path.as_deref())?.map(|c| c.arms).unwrap_or_default();
    let file = path.as_ref().map_or("loopvel.toml".to_string(), |p| p.display().to_string());
    let mut out: Vec<Arm> = Vec::new();
    for spec in specs {
        let arm = if let Some((name, keys)) = spec.split_once(':') {
            let mut t = toml::Table::new();
            for pair in keys.split(',').filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(CliError::Usage(format!(
                        "--arm {spec}: {pair:?} is not key=value; e.g. --arm {name}:feedback=failures,history=last"
                    )));
                };
                let value = if let Ok(n) = v.parse::<i64>() {
                    toml::Value::Integer(n)
                } else if let Ok(x) = v.parse::<f64>() {
                    toml::Value::Float(x)
                } else if let Ok(b) = v.parse::<bool>() {
                    toml::Value::Boolean(b)
                } else {
                    toml::Value::String(v.to_string())
                };
                t.insert(k.trim().to_string(), value);
            }
            let a: ArmToml = toml::Value::Table(t)
                .try_into()
                .map_err(|e: toml::de::Error| CliError::Usage(format!("--arm {spec}: {}", e.to_string().trim())))?;
            arm_of(name, a, &format!("--arm {spec}"))?
        } else if let Some(value) = table.get(spec) {
            let a: ArmToml = value.clone().try_into().map_err(|e: toml::de::Error| {
                CliError::Usage(format!("{file}: arms.{spec}: {}", e.to_string().trim()))
            })?;
            arm_of(spec, a, &format!("{file}: arms.{spec}"))?
        } else if spec == "raw" {
            Arm { name: "raw".into(), design: LoopDesign::default(), history: History::Full }
        } else {
            let known: Vec<&str> = table.keys().map(String::as_str).collect();
            return Err(CliError::Usage(format!(
                "--arm {spec}: {file} has no [arms.{spec}] ({}); define it there, or inline as --arm \
                 {spec}:feedback=failures,history=last",
                if known.is_empty() { "it has none".to_string() } else { format!("it has: {}", known.join(", ")) }
            )));
        };
        if out.iter().any(|o| o.name == arm.name) {
            return Err(CliError::Usage(format!("--arm {}: given twice", arm.name)));
        }
        out.push(arm);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelToml {
    api: String,
    base_url: Option<String>,
    model: String,
    api_key_env: Option<String>,
    #[serde(default)]
    usd_per_mtok_in: f64,
    #[serde(default)]
    usd_per_mtok_out: f64,
    usd_per_mtok_cached_in: Option<f64>,
    usd_per_mtok_cache_write: Option<f64>,
    #[serde(default)]
    cache: bool,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    extra: Option<toml::Table>,
    max_concurrent: Option<u32>,
    rps: Option<f64>,
    max_attempts: Option<u32>,
    read_timeout_s: Option<f64>,
}

fn key_from_env(name: &str, var: &str, origin: &str) -> Result<Secret, CliError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        _ if origin == "--model" => Err(CliError::Usage(format!(
            "--model {name} needs an API key in ${var}, which is not set; export {var}=… (for a local server \
             without a key, define it in loopvel.toml without api_key_env, e.g. the llamacpp block of `loopvel init`)"
        ))),
        _ => Err(CliError::Usage(format!(
            "{origin}: model {name} needs an API key in ${var}, which is not set; export {var}=… (or, for a local \
             server, leave out api_key_env)"
        ))),
    }
}

fn defaults(name: String, api: Api, base_url: String, model: String) -> ModelConfig {
    ModelConfig { api, model, ..ModelConfig::local(&name, &base_url) }
}

/// The `base_url` prefix that marks a replay model: no HTTP, answers from a database.
pub const REPLAY_SCHEME: &str = "replay:";

/// What a shorthand looks like, for errors about one.
const SHORTHAND_FORMS: &str = "a shorthand is PROVIDER:MODEL: openai:MODEL (e.g. openai:gpt-4o-mini), \
     anthropic:MODEL (e.g. anthropic:claude-sonnet-4-5), ollama:MODEL (e.g. ollama:qwen2.5-coder:1.5b) or \
     replay:DATABASE#MODEL (e.g. replay:loopvel.db#qwen-0.5b)";

const PROVIDERS: [&str; 4] = ["openai", "anthropic", "ollama", "replay"];

fn bad_shorthand(spec: &str, why: String) -> CliError {
    CliError::Usage(format!("--model {spec}: {why}; {SHORTHAND_FORMS}"))
}

/// `openai:MODEL`, `anthropic:MODEL`, `ollama:MODEL` or `replay:DATABASE#MODEL`;
/// `None` for anything without a colon (a name from loopvel.toml).
fn shorthand(spec: &str) -> Result<Option<ModelConfig>, CliError> {
    // Only the first colon splits: model names carry their own (ollama's qwen2.5-coder:1.5b).
    let Some((provider, model)) = spec.split_once(':') else { return Ok(None) };
    if provider.is_empty() {
        return Err(bad_shorthand(spec, "the provider before `:` is empty".into()));
    }
    if !PROVIDERS.contains(&provider) {
        let lower = provider.to_ascii_lowercase();
        let hint = if PROVIDERS.contains(&lower.as_str()) {
            format!(" (providers are lower case: {lower}:{model})")
        } else {
            String::new()
        };
        return Err(bad_shorthand(
            spec,
            format!("unknown provider `{provider}`{hint}; or give a name from loopvel.toml"),
        ));
    }
    if model.trim().is_empty() {
        return Err(bad_shorthand(spec, format!("the model after `{provider}:` is empty")));
    }
    if model.trim() != model || model.contains(char::is_whitespace) {
        return Err(bad_shorthand(spec, format!("the model `{model}` has white space in it")));
    }
    let name = spec.to_string();
    let mut cfg = match provider {
        "openai" => {
            let base = match std::env::var("OPENAI_BASE_URL") {
                Ok(b) if b.starts_with("http://") || b.starts_with("https://") => b,
                Ok(b) => {
                    return Err(CliError::Usage(format!(
                        "--model {spec}: OPENAI_BASE_URL={b:?} is not a URL; give http(s)://HOST/v1, e.g. \
                         http://127.0.0.1:8080/v1, or unset it for https://api.openai.com/v1"
                    )))
                }
                Err(_) => "https://api.openai.com/v1".into(),
            };
            let mut c = defaults(name.clone(), Api::OpenAi, base, model.into());
            c.api_key_env = Some("OPENAI_API_KEY".into());
            c.api_key = Some(key_from_env(&name, "OPENAI_API_KEY", "--model")?);
            c
        }
        "anthropic" => {
            let mut c = defaults(name.clone(), Api::Anthropic, "https://api.anthropic.com/v1".into(), model.into());
            c.api_key_env = Some("ANTHROPIC_API_KEY".into());
            c.api_key = Some(key_from_env(&name, "ANTHROPIC_API_KEY", "--model")?);
            c
        }
        "ollama" => defaults(name, Api::OpenAi, "http://127.0.0.1:11434/v1".into(), model.into()),
        // replay:DB#MODEL answers from MODEL's recorded calls in DB (see commands::run).
        _ => {
            let Some((db, recorded)) = model.rsplit_once('#') else {
                return Err(bad_shorthand(spec, format!("`{model}` has no `#MODEL`: which recorded model to replay")));
            };
            if db.is_empty() {
                return Err(bad_shorthand(spec, "the database before `#` is empty".into()));
            }
            if recorded.is_empty() {
                return Err(bad_shorthand(spec, "the model after `#` is empty".into()));
            }
            defaults(format!("{recorded} (replay)"), Api::OpenAi, format!("{REPLAY_SCHEME}{db}"), recorded.into())
        }
    };
    cfg.max_tokens = 4096;
    Ok(Some(cfg))
}

/// Why a `--model` that is neither a shorthand nor a configured name was
/// probably meant as a shorthand (a bare provider, `openai/gpt-4o`), if it was.
fn shorthand_hint(spec: &str) -> Option<String> {
    if PROVIDERS.contains(&spec) {
        return Some(format!("`{spec}` is a provider, not a model: give {spec}:MODEL"));
    }
    let (provider, model) = spec.split_once('/')?;
    PROVIDERS
        .contains(&provider)
        .then(|| format!("shorthands separate provider and model with `:`, not `/`: {provider}:{model}"))
}

/// The config file at `path`, parsed (`None` without one); an error names the file.
fn read_config(path: Option<&Path>) -> Result<Option<ConfigToml>, CliError> {
    let Some(p) = path else { return Ok(None) };
    let text = super::commands::read_input(p)?;
    let c = toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {}", p.display(), e.to_string().trim())))?;
    Ok(Some(c))
}

/// Where the config file is: `--config`, else `./loopvel.toml` if it exists.
pub fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| Some(PathBuf::from("loopvel.toml")).filter(|p| p.is_file()))
}

/// Resolve `--model` arguments into configurations, keys read from the environment.
pub fn resolve_models(given_config: Option<&Path>, specs: &[String]) -> Result<Vec<ModelConfig>, CliError> {
    let path = config_path(given_config);
    let table = match (&path, read_config(path.as_deref())?) {
        (Some(p), Some(c)) => Some((p.clone(), c.models)),
        _ => None,
    };
    let mut out = Vec::new();
    for spec in specs {
        if let Some(cfg) = shorthand(spec)? {
            out.push(cfg);
            continue;
        }
        let configured = table.as_ref().is_some_and(|(_, models)| models.contains_key(spec));
        if let Some(hint) = shorthand_hint(spec).filter(|_| !configured) {
            return Err(bad_shorthand(spec, hint));
        }
        let Some((p, models)) = &table else {
            return Err(CliError::Usage(format!(
                "--model {spec}: no loopvel.toml here and no --config; define [models.{spec}] in loopvel.toml or use \
                 openai:MODEL, anthropic:MODEL, ollama:MODEL"
            )));
        };
        let file = p.display().to_string();
        let Some(value) = models.get(spec) else {
            let known: Vec<&String> = models.keys().collect();
            return Err(CliError::Usage(format!(
                "--model {spec}: {file} has no [models.{spec}]; it has: {}",
                known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        let m: ModelToml = value.clone().try_into().map_err(|e: toml::de::Error| {
            CliError::Usage(format!("{file}: models.{spec}: {}", e.to_string().trim()))
        })?;
        check_bounds(&m, &file, spec)?;
        let api = match m.api.as_str() {
            "openai" => Api::OpenAi,
            "anthropic" => Api::Anthropic,
            other => {
                return Err(CliError::Usage(format!(
                "{file}: models.{spec}.api = \"{other}\" is not known; use \"openai\" (any OpenAI-compatible server) \
                     or \"anthropic\""
            )))
            }
        };
        let base = m.base_url.clone().unwrap_or_else(|| match api {
            Api::OpenAi => "https://api.openai.com/v1".into(),
            Api::Anthropic => "https://api.anthropic.com/v1".into(),
        });
        let mut cfg = defaults(spec.clone(), api, base, m.model.clone());
        if let Some(var) = &m.api_key_env {
            cfg.api_key = Some(key_from_env(spec, var, &file)?);
            cfg.api_key_env = Some(var.clone());
        }
        cfg.usd_per_mtok_in = m.usd_per_mtok_in;
        cfg.usd_per_mtok_out = m.usd_per_mtok_out;
        cfg.usd_per_mtok_cached_in = m.usd_per_mtok_cached_in;
        cfg.usd_per_mtok_cache_write = m.usd_per_mtok_cache_write;
        if m.cache && api != Api::Anthropic {
            return Err(CliError::Usage(format!(
                "{file}: models.{spec}.cache = true marks cache breakpoints for api = \"anthropic\"; OpenAI-compatible \
                 servers cache a repeated prompt prefix on their own: leave cache out"
            )));
        }
        cfg.cache = m.cache;
        cfg.temperature = m.temperature;
        cfg.max_tokens = m.max_tokens.unwrap_or(4096);
        if let Some(extra) = m.extra {
            let v = serde_json::to_value(extra)
                .map_err(|e| CliError::Usage(format!("{file}: models.{spec}.extra: {e}")))?;
            if let serde_json::Value::Object(map) = v {
                cfg.extra = map;
            }
        }
        cfg.max_concurrent = m.max_concurrent;
        cfg.rps = m.rps;
        cfg.max_attempts = m.max_attempts.unwrap_or(5);
        cfg.read_timeout_s = m.read_timeout_s.unwrap_or(300.0);
        out.push(cfg);
    }
    Ok(out)
}

/// Every number of a model block within a range that means something, and
/// the URL a URL: a bad value is the user's to fix (named here), never a
/// panic later or a "transient" failure retried five times.
fn check_bounds(m: &ModelToml, file: &str, spec: &str) -> Result<(), CliError> {
    let bad = |field: &str, value: String, want: &str| {
        Err(CliError::Usage(format!("{file}: models.{spec}.{field} = {value}: give {want}")))
    };
    let finite_in = |x: f64, lo: f64, hi: f64| x.is_finite() && (lo..=hi).contains(&x);
    let prices = [
        ("usd_per_mtok_in", Some(m.usd_per_mtok_in)),
        ("usd_per_mtok_out", Some(m.usd_per_mtok_out)),
        ("usd_per_mtok_cached_in", m.usd_per_mtok_cached_in),
        ("usd_per_mtok_cache_write", m.usd_per_mtok_cache_write),
    ];
    for (field, v) in prices.into_iter().filter_map(|(f, v)| Some((f, v?))) {
        if !finite_in(v, 0.0, 1e6) {
            return bad(field, format!("{v:?}"), "US dollars per million tokens, 0 to 1,000,000");
        }
    }
    if let Some(t) = m.temperature.filter(|t| !finite_in(*t, 0.0, 2.0)) {
        return bad("temperature", format!("{t:?}"), "a number from 0 to 2");
    }
    if let Some(n) = m.max_tokens.filter(|n| !(1..=1_000_000).contains(n)) {
        return bad("max_tokens", n.to_string(), "1 to 1,000,000 tokens");
    }
    if let Some(n) = m.max_concurrent.filter(|n| !(1..=10_000).contains(n)) {
        return bad("max_concurrent", n.to_string(), "1 to 10,000 requests in flight (leave it out for no cap)");
    }
    if let Some(r) = m.rps.filter(|r| !finite_in(*r, 0.001, 10_000.0)) {
        return bad("rps", format!("{r:?}"), "0.001 to 10,000 requests per second (leave it out for no cap)");
    }
    if let Some(n) = m.max_attempts.filter(|n| !(1..=100).contains(n)) {
        return bad("max_attempts", n.to_string(), "1 to 100 attempts per request (1: no retry)");
    }
    if let Some(t) = m.read_timeout_s.filter(|t| !finite_in(*t, 0.1, 86_400.0)) {
        return bad("read_timeout_s", format!("{t:?}"), "0.1 to 86,400 seconds (default 300 s)");
    }
    if let Some(url) = &m.base_url {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        if host.is_none_or(str::is_empty) || url.chars().any(char::is_whitespace) {
            return bad(
                "base_url",
                format!("{url:?}"),
                "an http:// or https:// URL with a host, e.g. \"https://api.openai.com/v1\" or \"http://127.0.0.1:8080/v1\"",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_and_bad_urls_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loopvel.toml");
        let cases = [
            ("read_timeout_s = 1e300", "models.m.read_timeout_s = 1e300"),
            ("rps = 1e-300", "models.m.rps"),
            ("rps = 0", "models.m.rps = 0.0"),
            ("rps = -1", "models.m.rps = -1.0"),
            ("max_attempts = 0", "models.m.max_attempts = 0"),
            ("max_concurrent = 0", "models.m.max_concurrent = 0"),
            ("usd_per_mtok_in = -0.5", "models.m.usd_per_mtok_in = -0.5"),
            ("usd_per_mtok_out = nan", "models.m.usd_per_mtok_out = NaN"),
            ("usd_per_mtok_cached_in = -1", "models.m.usd_per_mtok_cached_in = -1.0"),
            ("usd_per_mtok_cache_write = inf", "models.m.usd_per_mtok_cache_write = inf"),
            ("temperature = 7", "models.m.temperature = 7.0"),
            ("max_tokens = 0", "models.m.max_tokens = 0"),
            ("base_url = \"not a url\"", "models.m.base_url = \"not a url\""),
            ("base_url = \"https://\"", "models.m.base_url"),
        ];
        for (line, want) in cases {
            let body = if line.starts_with("base_url") {
                format!("[models.m]\napi = \"openai\"\nmodel = \"x\"\n{line}\n")
            } else {
                format!("[models.m]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n{line}\n")
            };
            std::fs::write(&path, body).unwrap();
            let e = resolve_models(Some(&path), &["m".to_string()]).expect_err(line).to_string();
            assert!(e.contains(want) && e.contains("give "), "{line}: {e}");
            assert!(e.contains("loopvel.toml"), "{line}: names the file: {e}");
        }
    }

    fn message(spec: &str) -> String {
        // The crate's root has no loopvel.toml, so this sees no configuration.
        match resolve_models(None, &[spec.to_string()]) {
            Ok(_) => panic!("{spec} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_malformed_shorthand_names_the_bad_part_and_shows_the_form() {
        for (spec, bad_part) in [
            ("openai:", "the model after `openai:` is empty"),
            ("ollama: qwen", "the model ` qwen` has white space"),
            (":gpt-4o", "the provider before `:` is empty"),
            ("OpenAI:gpt-4o", "providers are lower case: openai:gpt-4o"),
            ("gpt:4o", "unknown provider `gpt`"),
            ("replay:loopvel.db", "has no `#MODEL`"),
            ("replay:#fake", "the database before `#` is empty"),
            ("replay:loopvel.db#", "the model after `#` is empty"),
            ("openai", "`openai` is a provider, not a model: give openai:MODEL"),
            ("openai/gpt-4o", "with `:`, not `/`: openai:gpt-4o"),
        ] {
            let m = message(spec);
            assert!(m.contains(bad_part), "{spec}: {m}");
            assert!(m.contains("PROVIDER:MODEL") && m.contains("e.g. openai:gpt-4o-mini"), "{spec}: {m}");
        }
    }

    #[test]
    fn well_formed_shorthands_parse_with_colons_in_the_model() {
        let c = shorthand("ollama:qwen2.5-coder:1.5b").unwrap().unwrap();
        assert_eq!(c.model, "qwen2.5-coder:1.5b");
        let r = shorthand("replay:dir#1/x.db#fake").unwrap().unwrap();
        assert_eq!((r.model.as_str(), r.base_url.as_str()), ("fake", "replay:dir#1/x.db"));
        assert!(shorthand("my-model").unwrap().is_none());
    }

    #[test]
    fn cache_prices_are_read_and_cache_is_only_for_anthropic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loopvel.toml");
        std::fs::write(
            &path,
            "[models.a]\napi = \"anthropic\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\nusd_per_mtok_in = 3.0\n\
             usd_per_mtok_cached_in = 0.3\nusd_per_mtok_cache_write = 3.75\ncache = true\n\
             [models.o]\napi = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\ncache = true\n",
        )
        .unwrap();
        let a = resolve_models(Some(&path), &["a".to_string()]).unwrap().remove(0);
        assert_eq!((a.usd_per_mtok_cached_in, a.usd_per_mtok_cache_write, a.cache), (Some(0.3), Some(3.75), true));
        let e = resolve_models(Some(&path), &["o".to_string()]).unwrap_err().to_string();
        assert!(e.contains("models.o.cache") && e.contains("anthropic") && e.contains("loopvel.toml"), "{e}");
    }
}
