//! Model configuration: `loopvel.toml` and the `provider:model` shorthands.
//! The only place that reads API keys from the environment.

use std::path::{Path, PathBuf};

use loopvel_provider::{Api, ModelConfig, Secret};
use serde::Deserialize;

use crate::error::CliError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    #[serde(default)]
    models: toml::Table,
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
        _ => Err(CliError::Usage(format!(
            "{origin}: model {name} needs an API key in ${var}, which is not set; export {var}=… (or, for a local \
             server, leave out api_key_env)"
        ))),
    }
}

fn defaults(name: String, api: Api, base_url: String, model: String) -> ModelConfig {
    ModelConfig {
        name,
        api,
        base_url,
        model,
        api_key_env: None,
        api_key: None,
        usd_per_mtok_in: 0.0,
        usd_per_mtok_out: 0.0,
        temperature: None,
        max_tokens: 4096,
        extra: Default::default(),
        max_concurrent: None,
        rps: None,
        max_attempts: 5,
        read_timeout_s: 300.0,
    }
}

/// `openai:MODEL`, `anthropic:MODEL` or `ollama:MODEL`.
/// The `base_url` prefix that marks a replay model: no HTTP, answers from a database.
pub const REPLAY_SCHEME: &str = "replay:";

fn shorthand(spec: &str) -> Result<Option<ModelConfig>, CliError> {
    let Some((provider, model)) = spec.split_once(':') else { return Ok(None) };
    let name = spec.to_string();
    let mut cfg = match provider {
        "openai" => {
            let base = std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
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
        "replay" => {
            let Some((db, recorded)) = model.rsplit_once('#') else {
                return Err(CliError::Usage(format!(
                    "--model {spec}: a replay model is replay:DATABASE#MODEL, e.g. replay:loopvel.db#qwen-0.5b"
                )));
            };
            defaults(format!("{recorded} (replay)"), Api::OpenAi, format!("{REPLAY_SCHEME}{db}"), recorded.into())
        }
        other => {
            return Err(CliError::Usage(format!(
                "--model {spec}: unknown provider `{other}`; use openai:MODEL, anthropic:MODEL, ollama:MODEL, \
                 replay:DATABASE#MODEL, or a name from loopvel.toml"
            )))
        }
    };
    cfg.max_tokens = 4096;
    Ok(Some(cfg))
}

/// Where the config file is: `--config`, else `./loopvel.toml` if it exists.
pub fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| Some(PathBuf::from("loopvel.toml")).filter(|p| p.is_file()))
}

/// Resolve `--model` arguments into configurations, keys read from the environment.
pub fn resolve_models(given_config: Option<&Path>, specs: &[String]) -> Result<Vec<ModelConfig>, CliError> {
    let path = config_path(given_config);
    let table = match &path {
        Some(p) => {
            let text = super::commands::read_input(p)?;
            let c: ConfigToml = toml::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: {}", p.display(), e.to_string().trim())))?;
            Some((p.clone(), c.models))
        }
        None => None,
    };
    let mut out = Vec::new();
    for spec in specs {
        if let Some(cfg) = shorthand(spec)? {
            out.push(cfg);
            continue;
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
        cfg.max_attempts = m.max_attempts.unwrap_or(5).max(1);
        cfg.read_timeout_s = m.read_timeout_s.unwrap_or(300.0);
        out.push(cfg);
    }
    Ok(out)
}
