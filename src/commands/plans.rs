//! Plans in one database: what differs between them, and which runs `report`,
//! `predict` and `export` read.
//!
//! A plan is one `loopvel run` setting: its loop options (budgets, history,
//! feedback), the configuration of each model and the files of each task. Two
//! plans *conflict* when their loop options differ, or a model or task they
//! share is configured or written differently: statistics over both would mix
//! runs under different rules. Plans that do not conflict (the same settings
//! run again by an older loopvel whose key held `--runs`, a model or a task
//! added later, the plain and what-if halves of a replay) form one group and
//! are read together. A reading command reads the latest group unless told
//! `--plan ID` (the group holding that plan) or `--pool` (everything, with
//! what differs said on stderr), and names the other groups so none is missed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use loopvel_store::{PlanInfo, Store};
use serde_json::{json, Map, Value};

use crate::error::CliError;

/// What a plan ran under.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Loop options, `None` where the plan did not record them (early replays).
    options: Option<Map<String, Value>>,
    /// Model name → configuration JSON.
    models: BTreeMap<String, String>,
    /// Task name → files hash.
    tasks: BTreeMap<String, String>,
}

impl Settings {
    /// From a plan's recorded options JSON and the models and tasks it runs.
    pub fn new(
        options_json: &str,
        models: impl IntoIterator<Item = (String, String)>,
        tasks: impl IntoIterator<Item = (String, String)>,
    ) -> Settings {
        let options = match serde_json::from_str::<Value>(options_json) {
            // Plans recorded before the key left out --runs store `[options, runs]`.
            Ok(Value::Array(mut a)) if !a.is_empty() => match a.swap_remove(0) {
                Value::Object(o) => Some(o),
                _ => None,
            },
            Ok(Value::Object(o)) if !o.is_empty() => Some(o),
            _ => None,
        };
        Settings { options, models: models.into_iter().collect(), tasks: tasks.into_iter().collect() }
    }

    fn of(p: &PlanInfo) -> Settings {
        Settings::new(&p.options_json, p.models.iter().cloned(), p.tasks.iter().cloned())
    }

    /// The recorded turn budget, if the plan recorded its options.
    pub fn max_turns(&self) -> Option<u32> {
        self.options.as_ref()?.get("max_turns")?.as_u64().and_then(|n| u32::try_from(n).ok())
    }
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `key NEW (was OLD)` for each key whose value differs.
fn field_changes(new: &Map<String, Value>, old: &Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = new.keys().chain(old.keys()).collect();
    keys.into_iter()
        .filter(|k| new.get(*k) != old.get(*k))
        .map(|k| format!("{k} {} (was {})", shown(new.get(k)), shown(old.get(k))))
        .collect()
}

/// What in `new` conflicts with `old`: the differences that make their runs
/// unfit to pool. Empty when they may be read together.
pub fn conflicts(new: &Settings, old: &Settings) -> Vec<String> {
    let mut out = match (&new.options, &old.options) {
        (Some(n), Some(o)) => field_changes(n, o),
        (None, None) => Vec::new(),
        (Some(_), None) => vec!["loop options (the other plan did not record its own)".into()],
        (None, Some(_)) => vec!["loop options (this plan did not record its own)".into()],
    };
    for (name, config) in &new.models {
        match old.models.get(name) {
            Some(was) if was != config => {
                let parse = |s: &str| serde_json::from_str::<Map<String, Value>>(s).unwrap_or_default();
                let fields = field_changes(&parse(config), &parse(was));
                if fields.is_empty() {
                    out.push(format!("model {name}: its configuration"));
                } else {
                    out.extend(fields.into_iter().map(|f| format!("model {name}: {f}")));
                }
            }
            _ => {}
        }
    }
    for (name, hash) in &new.tasks {
        if old.tasks.get(name).is_some_and(|was| was != hash) {
            out.push(format!("task {name}: its files changed"));
        }
    }
    out
}

/// Which models and tasks one plan has that the other lacks (no conflict: a
/// plan extended with a model or a task).
fn extent(new: &Settings, old: &Settings) -> Vec<String> {
    let only = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| -> Vec<String> {
        a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
    };
    let mut out = Vec::new();
    for (what, list) in [
        ("models added", only(&new.models, &old.models)),
        ("models left out", only(&old.models, &new.models)),
        ("tasks added", only(&new.tasks, &old.tasks)),
        ("tasks left out", only(&old.tasks, &new.tasks)),
    ] {
        if !list.is_empty() {
            out.push(format!("{what}: {}", list.join(", ")));
        }
    }
    out
}

/// The conflicts of a plan left out (or pooled) against the plan `id` read:
/// `max_turns 5 (plan 2: 4)`.
fn against(other: &Settings, read: &Settings, id: i64) -> Vec<String> {
    conflicts(other, read).into_iter().map(|c| c.replace("(was ", &format!("(plan {id}: "))).collect()
}

/// Plans with finished runs, grouped so that no two plans in a group conflict;
/// the latest plan's group first, each group's plans newest first.
pub fn groups(plans: &[PlanInfo]) -> Vec<Vec<&PlanInfo>> {
    let mut out: Vec<Vec<&PlanInfo>> = Vec::new();
    for p in plans.iter().rev().filter(|p| p.finished > 0) {
        let s = Settings::of(p);
        match out.iter_mut().find(|g| g.iter().all(|q| conflicts(&s, &Settings::of(q)).is_empty())) {
            Some(g) => g.push(p),
            None => out.push(vec![p]),
        }
    }
    out
}

fn group_name(g: &[&PlanInfo]) -> String {
    let runs: usize = g.iter().map(|p| p.finished).sum();
    let mut older: Vec<String> = g[1..].iter().map(|p| p.id.to_string()).collect();
    older.reverse();
    let with = match older.len() {
        0 => String::new(),
        1 => format!(" and plan {}, same settings", older[0]),
        _ => format!(" and plans {}, same settings", older.join(", ")),
    };
    format!("plan {}{with} ({runs} runs, from {})", g[0].id, g[0].created_at)
}

/// What a reading command asked for.
#[derive(Debug, Clone, Copy)]
pub enum Choice {
    /// The latest plan's group.
    Latest,
    /// The group holding this plan.
    Plan(i64),
    /// Everything.
    Pool,
}

impl Choice {
    /// From `--plan` and `--pool`.
    pub fn from_flags(plan: Option<i64>, pool: bool) -> Choice {
        match (plan, pool) {
            (Some(id), _) => Choice::Plan(id),
            (None, true) => Choice::Pool,
            (None, false) => Choice::Latest,
        }
    }
}

/// The plans a reading command reads, and what to tell the reader.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Plan ids whose runs are read; `None`: every plan (one group, or `--pool`).
    pub plans: Option<HashSet<i64>>,
    /// Lines for stderr: the plans left out and how to read them, or what a pool mixes.
    pub notes: Vec<String>,
    /// The selection as JSON (for `--json` output).
    pub json: Value,
    /// The turn budget every selected plan recorded, if they agree.
    pub max_turns: Option<u32>,
}

impl Selection {
    /// Whether a run of this plan is read.
    pub fn has(&self, plan: i64) -> bool {
        self.plans.as_ref().is_none_or(|s| s.contains(&plan))
    }
}

/// Decide which plans `command` reads from `db`.
pub fn select(db: &Path, choice: Choice, command: &str) -> Result<Selection, CliError> {
    let store = Store::open_existing(db)?;
    let plans = store.plans()?;
    let groups = groups(&plans);
    let budget = |gs: &[&Vec<&PlanInfo>]| -> Option<u32> {
        let budgets: BTreeSet<Option<u32>> =
            gs.iter().flat_map(|g| g.iter().map(|p| Settings::of(p).max_turns())).collect();
        match budgets.into_iter().collect::<Vec<_>>().as_slice() {
            [one] => *one,
            _ => None,
        }
    };
    let ids = |g: &[&PlanInfo]| g.iter().map(|p| p.id).collect::<Vec<_>>();
    let db_shown = crate::commands::shown(db);
    let chosen = match choice {
        Choice::Pool => None,
        Choice::Latest => Some(0).filter(|_| !groups.is_empty()),
        Choice::Plan(id) => match groups.iter().position(|g| g.iter().any(|p| p.id == id)) {
            Some(i) => Some(i),
            None => {
                let known: Vec<String> = groups.iter().map(|g| group_name(g)).collect();
                let why = if plans.iter().any(|p| p.id == id) { "has no finished runs" } else { "does not exist" };
                return Err(CliError::Usage(format!(
                    "--plan {id}: plan {id} in {db_shown} {why}; its plans with runs: {}",
                    if known.is_empty() { "none".to_string() } else { known.join("; ") }
                )));
            }
        },
    };
    let mut notes = Vec::new();
    let selection = match chosen {
        // One group, or asked to pool.
        None if groups.len() > 1 => {
            let base = Settings::of(groups[0][0]);
            let mut differs = Vec::new();
            for g in &groups[1..] {
                let c = against(&Settings::of(g[0]), &base, groups[0][0].id);
                differs.push(json!({ "plan": g[0].id, "differences": c }));
                notes.push(format!("  {}: {}", group_name(g), c.join(", ")));
            }
            notes.insert(
                0,
                format!(
                    "loopvel {command}: --pool: pooling {} plans of {db_shown} with different settings; against {}:",
                    groups.len(),
                    group_name(&groups[0])
                ),
            );
            let all: Vec<&Vec<&PlanInfo>> = groups.iter().collect();
            Selection {
                plans: None,
                notes,
                json: json!({ "pooled": true, "plans": groups.iter().map(|g| json!(ids(g))).collect::<Vec<_>>(), "differences": differs }),
                max_turns: budget(&all),
            }
        }
        None => {
            let all: Vec<&Vec<&PlanInfo>> = groups.iter().collect();
            Selection {
                plans: None,
                notes,
                json: json!({ "pooled": false, "plans": groups.iter().map(|g| json!(ids(g))).collect::<Vec<_>>(), "others": [] }),
                max_turns: budget(&all),
            }
        }
        Some(i) => {
            let g = &groups[i];
            let base = Settings::of(g[0]);
            let mut others = Vec::new();
            for (j, other) in groups.iter().enumerate().filter(|(j, _)| *j != i) {
                let c = against(&Settings::of(other[0]), &base, g[0].id);
                notes.push(format!("  {}: {}", group_name(other), c.join(", ")));
                others.push(json!({ "plan": other[0].id, "latest": j == 0, "differences": c }));
            }
            if !others.is_empty() {
                let which = if i == 0 { "the latest" } else { "chosen with --plan" };
                notes.insert(
                    0,
                    format!(
                        "loopvel {command}: {db_shown} holds {} plans with different settings; reading {} ({which}). \
                         Not read (select one with --plan ID, or all with --pool):",
                        groups.len(),
                        group_name(g)
                    ),
                );
            }
            Selection {
                plans: Some(g.iter().map(|p| p.id).collect()),
                notes,
                json: json!({ "pooled": false, "plans": [ids(g)], "others": others }),
                max_turns: budget(&[g]),
            }
        }
    };
    Ok(selection)
}

/// What `run` says before its first request when it starts a plan beside
/// others in `db`; `None` when the database holds no other plan.
pub fn new_plan_notice(store: &Store, db: &Path, new: &Settings) -> Result<Option<String>, CliError> {
    let plans: Vec<PlanInfo> = store.plans()?.into_iter().filter(|p| p.runs > 0).collect();
    let groups = groups(&plans);
    if groups.is_empty() {
        return Ok(None);
    }
    let mut lines = vec![format!(
        "loopvel run: {} already holds {}; this command's settings make a new plan:",
        crate::commands::shown(db),
        if groups.len() == 1 { "a plan".to_string() } else { format!("{} plans", groups.len()) }
    )];
    let mut pooled_with = None;
    for g in &groups {
        let old = Settings::of(g[0]);
        let c = conflicts(new, &old);
        let e = extent(new, &old);
        if c.is_empty() {
            pooled_with.get_or_insert(g[0].id);
            let what = if e.is_empty() { "the same settings".to_string() } else { e.join("; ") };
            lines.push(format!("  against {}: {what} (no conflict: read together)", group_name(g)));
        } else {
            lines.push(format!("  against {}: {}", group_name(g), c.join(", ")));
        }
    }
    lines.push(match pooled_with {
        Some(id) => format!(
            "report, predict and export read it together with plan {id}; plans with other settings stay apart \
             (--plan ID selects one, --pool pools all)."
        ),
        None => "report, predict and export will read this plan alone (the latest); --plan ID selects another, \
                 --pool pools them (saying what differs). To add runs to an earlier plan instead, stop and run \
                 with its settings; --db NEW.db keeps plans in separate files."
            .to_string(),
    });
    Ok(Some(lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: i64, options: &str, models: &[(&str, &str)], tasks: &[(&str, &str)]) -> PlanInfo {
        PlanInfo {
            id,
            command: format!("run {id}"),
            options_json: options.into(),
            created_at: "2026-01-01 00:00:00".into(),
            finished: 2,
            runs: 2,
            models: models.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            tasks: tasks.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        }
    }

    const FIVE: &str = r#"{"max_turns":5,"max_wall_s":null,"history":"full"}"#;
    const FOUR: &str = r#"{"max_turns":4,"max_wall_s":null,"history":"full"}"#;

    #[test]
    fn a_changed_budget_conflicts_and_is_named() {
        let a = Settings::of(&plan(1, FIVE, &[("m", "{}")], &[("t", "h")]));
        let b = Settings::of(&plan(2, FOUR, &[("m", "{}")], &[("t", "h")]));
        assert_eq!(conflicts(&b, &a), ["max_turns 4 (was 5)"]);
        assert_eq!(b.max_turns(), Some(4));
    }

    #[test]
    fn old_plans_that_held_runs_in_their_key_and_added_models_do_not_conflict() {
        let old = plan(1, &format!("[{FIVE},2]"), &[("m", "{}")], &[("t", "h")]);
        let new = plan(2, FIVE, &[("m", "{}"), ("n", "{}")], &[("t", "h"), ("u", "h2")]);
        assert!(conflicts(&Settings::of(&new), &Settings::of(&old)).is_empty());
        let plans = [old, new];
        assert_eq!(groups(&plans).len(), 1);
    }

    #[test]
    fn a_changed_model_or_task_conflicts_field_by_field() {
        let a = Settings::of(&plan(1, FIVE, &[("m", r#"{"temperature":0.8}"#)], &[("t", "h")]));
        let b = Settings::of(&plan(2, FIVE, &[("m", r#"{"temperature":0.2}"#)], &[("t", "h2")]));
        assert_eq!(conflicts(&b, &a), ["model m: temperature 0.2 (was 0.8)", "task t: its files changed"]);
    }

    #[test]
    fn groups_keep_every_pair_apart_that_conflicts_latest_first() {
        let p1 = plan(1, FIVE, &[("m", "{}")], &[("t", "h")]);
        let p2 = plan(2, FOUR, &[("m", "{}")], &[("t", "h")]);
        let p3 = plan(3, FIVE, &[("n", "{}")], &[("t", "h")]);
        let plans = [p1, p2, p3];
        let g = groups(&plans);
        let ids: Vec<Vec<i64>> = g.iter().map(|g| g.iter().map(|p| p.id).collect()).collect();
        assert_eq!(ids, [vec![3, 1], vec![2]]);
    }
}
