//! The pages, rendered from templates with HTML auto-escaping (see
//! `Cargo.toml`): nothing recorded is ever printed unescaped.

use std::collections::BTreeMap;

use loopvel_record::{Grade, Outcome};
use loopvel_store::{RunRow, Store, StoreError};
use minijinja::{context, Environment};
use serde::Serialize;

use crate::files::{rebuild, TaskSearch};
use crate::transcript::{grade_class, transcript};

/// The templates, compiled once.
pub struct Pages {
    env: Environment<'static>,
    /// The database as pages name it (a PostgreSQL URL without its password).
    db: String,
}

/// What the run list shows: every field optional, matched exactly.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunFilter {
    /// Plan id, as text.
    pub plan: String,
    /// Model name.
    pub model: String,
    /// Task name.
    pub task: String,
    /// `pass`, `fail`, `error`, `running`.
    pub outcome: String,
    /// A grade at least one turn had.
    pub grade: String,
}

impl RunFilter {
    /// Reads a query string (`plan=1&model=a`); unknown keys are ignored.
    pub fn parse(query: &str) -> RunFilter {
        let mut f = RunFilter::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            match k {
                "plan" => f.plan = v,
                "model" => f.model = v,
                "task" => f.task = v,
                "outcome" => f.outcome = v,
                "grade" => f.grade = v,
                _ => {}
            }
        }
        f
    }

    fn keeps(&self, r: &RunRow) -> bool {
        let outcome = r.outcome.map(|o| o.to_string()).unwrap_or_else(|| r.status.clone());
        (self.plan.is_empty() || self.plan == r.plan_id.to_string())
            && (self.model.is_empty() || self.model == r.model)
            && (self.task.is_empty() || self.task == r.task)
            && (self.outcome.is_empty() || self.outcome == outcome)
            && (self.grade.is_empty() || r.grades.iter().any(|g| g.as_str() == self.grade))
    }
}

/// `%XX` and `+` decoded; bytes that are not UTF-8 become U+FFFD.
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

#[derive(Serialize)]
struct GradeCell {
    name: &'static str,
    class: &'static str,
}

#[derive(Serialize)]
struct RunLine {
    id: i64,
    plan_id: i64,
    model: String,
    task: String,
    replicate: u32,
    status: String,
    outcome: String,
    grades: Vec<GradeCell>,
    wall: String,
    time_to_pass: String,
}

#[derive(Serialize, Default)]
struct Tally {
    name: String,
    runs: usize,
    passed: usize,
    turns: usize,
    thrash: usize,
}

fn tally<'a>(rows: impl Iterator<Item = &'a RunRow>, key: impl Fn(&RunRow) -> &str) -> Vec<Tally> {
    let mut by: BTreeMap<String, Tally> = BTreeMap::new();
    for r in rows {
        let t = by.entry(key(r).to_string()).or_insert_with(|| Tally { name: key(r).to_string(), ..Tally::default() });
        t.runs += 1;
        t.passed += usize::from(r.outcome == Some(Outcome::Pass));
        t.turns += r.grades.len();
        t.thrash += r.grades.iter().filter(|g| **g == Grade::Thrash).count();
    }
    by.into_values().collect()
}

fn render_error(e: minijinja::Error) -> String {
    format!("a page template failed: {e}")
}

impl Pages {
    /// The templates, for the database `db` names.
    pub fn new(db: &str) -> Pages {
        let mut env = Environment::new();
        // Every template ends in .html, so auto-escaping is on for all of them.
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("index.html", include_str!("../templates/index.html")),
            ("runs.html", include_str!("../templates/runs.html")),
            ("run.html", include_str!("../templates/run.html")),
        ] {
            // The templates are part of the binary and tested: a syntax error cannot reach a user.
            if let Err(e) = env.add_template(name, source) {
                panic!("template {name}: {e}");
            }
        }
        Pages { env, db: loopvel_store::shown(db) }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, String> {
        self.env.get_template(name).and_then(|t| t.render(ctx)).map_err(render_error)
    }

    /// The plans, models and tasks of the database.
    pub fn index(&self, store: &Store) -> Result<String, String> {
        let plans = store.plans().map_err(|e| e.to_string())?;
        let rows = store.run_rows().map_err(|e| e.to_string())?;
        #[derive(Serialize)]
        struct PlanLine {
            id: i64,
            created_at: String,
            finished: usize,
            runs: usize,
            models: Vec<String>,
            tasks: Vec<String>,
            command: String,
        }
        let plans: Vec<PlanLine> = plans
            .into_iter()
            .rev()
            .map(|p| PlanLine {
                id: p.id,
                created_at: p.created_at,
                finished: p.finished,
                runs: p.runs,
                models: p.models.into_iter().map(|(n, _)| n).collect(),
                tasks: p.tasks.into_iter().map(|(n, _)| n).collect(),
                command: p.command,
            })
            .collect();
        let running = rows.iter().filter(|r| r.status == "running").count();
        self.render(
            "index.html",
            context! {
                db => self.db, plans => plans, running => running,
                models => tally(rows.iter(), |r| &r.model), tasks => tally(rows.iter(), |r| &r.task),
                static_page => false,
            },
        )
    }

    /// The runs that `filter` keeps, newest first.
    pub fn runs(&self, store: &Store, filter: &RunFilter) -> Result<String, String> {
        let rows = store.run_rows().map_err(|e| e.to_string())?;
        let distinct = |f: &dyn Fn(&RunRow) -> String| {
            let mut v: Vec<String> = rows.iter().map(f).collect();
            v.sort();
            v.dedup();
            v
        };
        let mut plans: Vec<i64> = rows.iter().map(|r| r.plan_id).collect();
        plans.sort_unstable();
        plans.dedup();
        let choices = context! {
            plans => plans.iter().map(i64::to_string).collect::<Vec<_>>(),
            models => distinct(&|r| r.model.clone()),
            tasks => distinct(&|r| r.task.clone()),
            outcomes => ["pass", "fail", "error", "running", "queued"],
            grades => Grade::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        };
        let kept: Vec<RunLine> = rows
            .iter()
            .filter(|r| filter.keeps(r))
            .map(|r| RunLine {
                id: r.id,
                plan_id: r.plan_id,
                model: r.model.clone(),
                task: r.task.clone(),
                replicate: r.replicate,
                status: r.status.clone(),
                outcome: r.outcome.map(|o| o.to_string()).unwrap_or_default(),
                grades: r.grades.iter().map(|g| GradeCell { name: g.as_str(), class: grade_class(*g) }).collect(),
                wall: r.wall_s.map(loopvel_math::units::seconds).unwrap_or_default(),
                time_to_pass: r.time_to_pass_s.map(loopvel_math::units::seconds).unwrap_or_default(),
            })
            .collect();
        let running = rows.iter().filter(|r| r.status == "running").count();
        self.render(
            "runs.html",
            context! {
                db => self.db, runs => kept, total => rows.len(), filter => filter, choices => choices,
                running => running, static_page => false,
            },
        )
    }

    /// One run's transcript; `Ok(None)` when there is no such run. A
    /// `static_page` has no links to other pages (`report --run --html`).
    pub fn run(
        &self,
        store: &Store,
        id: i64,
        search: &TaskSearch,
        static_page: bool,
    ) -> Result<Option<String>, String> {
        let Some(detail) = store.run_detail(id).map_err(|e: StoreError| e.to_string())? else {
            return Ok(None);
        };
        let replies: Vec<(String, u32, Vec<String>)> = detail
            .turns
            .iter()
            .map(|t| {
                let reply = detail.calls.iter().find(|c| c.turn == t.turn).map(|c| c.reply_text.clone());
                (reply.unwrap_or_default(), t.edits_applied, t.events.clone())
            })
            .collect();
        let files = search
            .find(&detail.row.task, &detail.task_files_hash, detail.task_dir.as_deref())
            .and_then(|task| rebuild(&task, &replies));
        let t = transcript(&detail, files.as_ref().map_err(String::as_str));
        let refresh = if t.in_progress && !static_page { 3 } else { 0 };
        self.render("run.html", context! { db => self.db, t => t, static_page => static_page, refresh => refresh })
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let f = RunFilter::parse("plan=2&model=qwen%2D1.5b&task=a+b&grade=THRASH&x=1&outcome");
        assert_eq!(f.plan, "2");
        assert_eq!(f.model, "qwen-1.5b");
        assert_eq!(f.task, "a b");
        assert_eq!(f.grade, "THRASH");
        assert_eq!(f.outcome, "");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("é%"), "é%");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }
}
