//! Reading TOML tables key by key, with errors that name the key and the fix.
//!
//! Hand-written rather than serde-derived: serde's messages cannot say which
//! values came from `--set`, cannot list the allowed range of a field, and lose
//! their position once overrides have edited the tree.

use std::collections::HashSet;

use loopvel_math::dist::{Dist, Domain};

/// A scenario that cannot be used, and why.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    /// The file is not valid TOML.
    #[error("{file}: not valid TOML: {message}")]
    Syntax {
        /// The file, as given.
        file: String,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A key is missing, unknown, of the wrong type or out of range.
    #[error("{file}: {key} {problem}{}", if *.from_override { " (this value came from --set)" } else { "" })]
    Invalid {
        /// The file, as given.
        file: String,
        /// The dotted key, e.g. `models.fast.p_first`.
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
        /// Whether the value came from `--set`.
        from_override: bool,
    },
    /// A `--set` argument that cannot be applied.
    #[error("--set {raw}: {problem}")]
    Override {
        /// The argument as given.
        raw: String,
        /// The scenario file it applies to.
        file: String,
        /// What is wrong.
        problem: String,
    },
}

impl ScenarioError {
    pub(crate) fn syntax(file: &str, message: &str) -> Self {
        ScenarioError::Syntax { file: file.to_string(), message: message.trim().replace('\n', "\n  ") }
    }
}

/// Where errors point: the file and which keys came from `--set`.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub overridden: &'a HashSet<String>,
}

impl Ctx<'_> {
    pub(crate) fn invalid(&self, key: &str, problem: &str) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_string(),
            key: key.to_string(),
            problem: problem.to_string(),
            from_override: self.overridden.contains(key),
        }
    }
}

/// What a number must satisfy.
#[derive(Clone, Copy)]
pub(crate) enum Check {
    NonNegative,
    Positive,
    Probability,
}

impl Check {
    fn problem(self, x: f64) -> Option<&'static str> {
        let ok = x.is_finite()
            && match self {
                Check::NonNegative => x >= 0.0,
                Check::Positive => x > 0.0,
                Check::Probability => (0.0..=1.0).contains(&x),
            };
        if ok {
            return None;
        }
        Some(match self {
            Check::NonNegative => "is negative or not finite; give a number ≥ 0",
            Check::Positive => "must be a number > 0",
            Check::Probability => "is outside [0, 1]; give a probability from 0 to 1",
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Check::NonNegative => "a number ≥ 0",
            Check::Positive => "a number > 0",
            Check::Probability => "a number from 0 to 1",
        }
    }
}

fn example(domain: Domain) -> &'static str {
    match domain {
        Domain::Probability => "{ dist = \"beta\", mean = 0.4, concentration = 2 }",
        _ => "{ dist = \"lognormal\", median = 3.0, p90 = 5.0 }",
    }
}

/// One table being read: remembers its dotted path and which keys it allows.
pub(crate) struct TableReader<'a> {
    pub ctx: &'a Ctx<'a>,
    path: String,
    table: &'a toml::Table,
    allowed: &'static [&'static str],
}

impl<'a> TableReader<'a> {
    pub(crate) fn new(ctx: &'a Ctx<'a>, path: &str, table: &'a toml::Table, allowed: &'static [&'static str]) -> Self {
        TableReader { ctx, path: path.to_string(), table, allowed }
    }

    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn invalid(&self, key: &str, problem: &str) -> ScenarioError {
        self.ctx.invalid(&self.key(key), problem)
    }

    /// Refuse keys this table does not know, suggesting the closest known one.
    pub(crate) fn check_keys(&self) -> Result<(), ScenarioError> {
        for key in self.table.keys() {
            if self.allowed.contains(&key.as_str()) {
                continue;
            }
            let closest = self
                .allowed
                .iter()
                .map(|a| (strsim::jaro_winkler(key, a), a))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|x, y| x.0.total_cmp(&y.0));
            let hint = closest.map_or(String::new(), |(_, a)| format!("did you mean `{a}`? "));
            return Err(
                self.invalid(key, &format!("is not a known key; {hint}allowed keys: {}", self.allowed.join(", ")))
            );
        }
        Ok(())
    }

    fn number(&self, key: &str, v: &toml::Value) -> Result<f64, ScenarioError> {
        match v {
            toml::Value::Float(x) => Ok(*x),
            toml::Value::Integer(i) => Ok(*i as f64),
            other => Err(self.invalid(key, &format!("must be a number, found {} `{other}`", other.type_str()))),
        }
    }

    fn checked(&self, key: &str, x: f64, check: Check) -> Result<f64, ScenarioError> {
        match check.problem(x) {
            None => Ok(x),
            Some(p) => Err(self.invalid(key, &format!("= {x} {p}"))),
        }
    }

    /// Whether the table has `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// A number or a distribution table such as `{ dist = "lognormal", median = 3, p90 = 5 }`.
    pub(crate) fn dist_req(&self, key: &str, domain: Domain, what: &str) -> Result<Dist, ScenarioError> {
        match self.dist_opt(key, domain)? {
            Some(d) => Ok(d),
            None => Err(self.invalid(
                key,
                &format!("is missing; add it: {what} (a number, or a distribution table such as {})", example(domain)),
            )),
        }
    }

    /// Like [`Self::dist_req`], for an optional field.
    pub(crate) fn dist_opt(&self, key: &str, domain: Domain) -> Result<Option<Dist>, ScenarioError> {
        let Some(v) = self.table.get(key) else {
            return Ok(None);
        };
        let dist = match v {
            toml::Value::Float(x) => Dist::constant(*x),
            toml::Value::Integer(i) => Dist::constant(*i as f64),
            toml::Value::Table(t) => self.dist_table(key, t, domain)?,
            other => {
                return Err(self.invalid(
                    key,
                    &format!("must be a number or a distribution table such as {}, found `{other}`", example(domain)),
                ))
            }
        };
        match dist.problem(domain) {
            None => Ok(Some(dist)),
            Some(p) => Err(self.invalid(key, &p)),
        }
    }

    fn dist_table(&self, key: &str, t: &toml::Table, domain: Domain) -> Result<Dist, ScenarioError> {
        let kind = match t.get("dist") {
            Some(toml::Value::String(s)) => s.as_str(),
            _ => {
                return Err(
                    self.invalid(key, &format!("is a table without `dist = \"…\"`; write e.g. {}", example(domain)))
                )
            }
        };
        let keys: &[&str] = match kind {
            "lognormal" => &["dist", "median", "p90"],
            "gamma" => &["dist", "mean", "sd"],
            "uniform" => &["dist", "min", "max"],
            "empirical" => &["dist", "values"],
            "beta" => &["dist", "mean", "concentration"],
            other => {
                return Err(self.invalid(
                    key,
                    &format!("has dist = \"{other}\"; known: lognormal, gamma, uniform, empirical, beta"),
                ))
            }
        };
        let sub_path = self.key(key);
        if let Some(extra) = t.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(self.ctx.invalid(
                &format!("{sub_path}.{extra}"),
                &format!("is not a parameter of a {kind} distribution; it takes {}", keys[1..].join(", ")),
            ));
        }
        let num = |p: &str| -> Result<f64, ScenarioError> {
            match t.get(p) {
                Some(toml::Value::Float(x)) => Ok(*x),
                Some(toml::Value::Integer(i)) => Ok(*i as f64),
                Some(other) => {
                    Err(self.ctx.invalid(&format!("{sub_path}.{p}"), &format!("must be a number, found `{other}`")))
                }
                None => Err(self.ctx.invalid(
                    &format!("{sub_path}.{p}"),
                    &format!("is missing; a {kind} distribution takes {}", keys[1..].join(", ")),
                )),
            }
        };
        Ok(match kind {
            "lognormal" => Dist::LogNormal { median: num("median")?, p90: num("p90")? },
            "gamma" => Dist::Gamma { mean: num("mean")?, sd: num("sd")? },
            "uniform" => Dist::Uniform { min: num("min")?, max: num("max")? },
            "beta" => Dist::Beta { mean: num("mean")?, concentration: num("concentration")? },
            _ => {
                let values = match t.get("values") {
                    Some(toml::Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                        .collect::<Option<Vec<f64>>>(),
                    _ => None,
                };
                let values = values.ok_or_else(|| {
                    self.ctx.invalid(
                        &format!("{sub_path}.values"),
                        "must be an array of numbers, e.g. values = [2.1, 3.4, 5.0]",
                    )
                })?;
                Dist::Empirical { values }
            }
        })
    }

    pub(crate) fn f64_req(&self, key: &str, check: Check, what: &str) -> Result<f64, ScenarioError> {
        let v = self
            .table
            .get(key)
            .ok_or_else(|| self.invalid(key, &format!("is missing; add it: {what} ({})", check.describe())))?;
        let x = self.number(key, v)?;
        self.checked(key, x, check)
    }

    pub(crate) fn f64_opt(&self, key: &str, default: f64, check: Check) -> Result<f64, ScenarioError> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) => {
                let x = self.number(key, v)?;
                self.checked(key, x, check)
            }
        }
    }

    fn integer_in(&self, key: &str, v: &toml::Value, min: u32, max: u32) -> Result<u32, ScenarioError> {
        match v.as_integer() {
            Some(i) if i >= i64::from(min) && i <= i64::from(max) => Ok(i as u32),
            _ => Err(self.invalid(key, &format!("= {v} is not allowed; give a whole number from {min} to {max}"))),
        }
    }

    pub(crate) fn u32_req(&self, key: &str, min: u32, max: u32, what: &str) -> Result<u32, ScenarioError> {
        let v = self.table.get(key).ok_or_else(|| {
            self.invalid(key, &format!("is missing; add it: {what} (a whole number from {min} to {max})"))
        })?;
        self.integer_in(key, v, min, max)
    }

    pub(crate) fn u32_opt(&self, key: &str, min: u32, max: u32) -> Result<Option<u32>, ScenarioError> {
        self.table.get(key).map(|v| self.integer_in(key, v, min, max)).transpose()
    }

    pub(crate) fn bool_opt(&self, key: &str, default: bool) -> Result<bool, ScenarioError> {
        match self.table.get(key) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.invalid(key, &format!("must be true or false, found `{other}`"))),
        }
    }

    pub(crate) fn string_opt(&self, key: &str) -> Result<Option<&'a str>, ScenarioError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.invalid(key, &format!("must be a string, found `{other}`"))),
        }
    }

    pub(crate) fn string_req(&self, key: &str, what: &str) -> Result<String, ScenarioError> {
        self.string_opt(key)?
            .map(str::to_string)
            .ok_or_else(|| self.invalid(key, &format!("is missing; add it: {what} (a string)")))
    }

    pub(crate) fn table_req(&self, key: &str, what: &str) -> Result<&'a toml::Table, ScenarioError> {
        self.table_opt(key)?
            .ok_or_else(|| self.invalid(key, &format!("is missing; add a [{}] table: {what}", self.key(key))))
    }

    pub(crate) fn table_opt(&self, key: &str) -> Result<Option<&'a toml::Table>, ScenarioError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(other) => Err(self.invalid(key, &format!("must be a table, found {} `{other}`", other.type_str()))),
        }
    }

    pub(crate) fn array_opt(&self, key: &str) -> Result<&'a [toml::Value], ScenarioError> {
        match self.table.get(key) {
            None => Ok(&[]),
            Some(toml::Value::Array(a)) => Ok(a),
            Some(other) => Err(self.invalid(key, &format!("must be an array, found `{other}`"))),
        }
    }
}
