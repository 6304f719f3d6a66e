//! `--set dotted.key=value`: change one value of the scenario before it is checked.

use crate::reader::ScenarioError;

/// Apply one override to `root`; returns the dotted key it set.
pub(crate) fn apply(root: &mut toml::Table, raw: &str, file: &str) -> Result<String, ScenarioError> {
    let bad = |problem: String| ScenarioError::Override { raw: raw.to_string(), file: file.to_string(), problem };
    let Some((key, value_text)) = raw.split_once('=') else {
        return Err(bad("has no `=`; write --set models.NAME.FIELD=VALUE or --set loop.FIELD=VALUE".into()));
    };
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad(format!("`{key}` is not a dotted key like models.fast.tokens_per_s")));
    }
    let value = parse_value(value_text.trim());
    let (last, parents) = parts.split_last().ok_or_else(|| bad("names no key".into()))?;
    let mut table = root;
    let mut walked = String::new();
    for part in parents {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
        let keys: Vec<String> = table.keys().cloned().collect();
        let next = table.get_mut(*part).ok_or_else(|| {
            bad(format!(
                "{file} has no table `{walked}`; it has: {}",
                if keys.is_empty() { "nothing".into() } else { keys.join(", ") }
            ))
        })?;
        table = next.as_table_mut().ok_or_else(|| bad(format!("`{walked}` in {file} is a value, not a table")))?;
    }
    table.insert((*last).to_string(), value);
    Ok(key.to_string())
}

/// A value in TOML syntax (`1000`, `0.5`, `true`, `"x"`, `[2, 4]`); anything
/// that is not valid TOML is taken as a bare string, so `--set a.b=fast` works.
fn parse_value(text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(text.to_string())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}
