//! `loopvel export`: the recorded runs and turns as JSON lines or CSV.

use std::io::Write;

use loopvel_store::Store;
use serde_json::{Map, Value};

use crate::cli::{ExportArgs, ExportFormat, ExportRecords};
use crate::commands::plans::select;
use crate::error::CliError;

fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn write_csv(rows: &[Map<String, Value>], out: &mut impl Write) -> Result<(), CliError> {
    let Some(first) = rows.first() else { return Ok(()) };
    let header: Vec<&String> = first.keys().collect();
    writeln!(out, "{}", header.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(","))?;
    for r in rows {
        writeln!(out, "{}", header.iter().map(|h| csv_cell(&r[h.as_str()])).collect::<Vec<_>>().join(","))?;
    }
    Ok(())
}

/// Export.
pub fn run(args: &ExportArgs, out: &mut impl Write) -> Result<(), CliError> {
    let url = args.db.to_str().is_some_and(loopvel_store::is_postgres_url);
    if !url && !args.db.is_file() {
        return Err(CliError::Usage(format!(
            "--db {}: no such database; run `loopvel run` first",
            crate::commands::shown(&args.db)
        )));
    }
    let plans = select(&args.db, args.plans.choice(), "export")?;
    for line in &plans.notes {
        eprintln!("{line}");
    }
    // Read as it is: a reader never migrates (the shipped databases stay byte-identical).
    let store = Store::open_existing(&args.db)?;
    let selected = |rows: Vec<Map<String, Value>>| -> Vec<Map<String, Value>> {
        rows.into_iter().filter(|r| r["plan_id"].as_i64().is_none_or(|p| plans.has(p))).collect()
    };
    let want_runs = args.records != ExportRecords::Turns;
    let want_turns = args.records != ExportRecords::Runs;
    match args.format {
        ExportFormat::Jsonl => {
            let tag = |mut m: Map<String, Value>, kind: &str| {
                let mut tagged = Map::new();
                tagged.insert("record".into(), kind.into());
                tagged.append(&mut m);
                Value::Object(tagged)
            };
            if want_runs {
                for r in selected(store.export_runs()?) {
                    writeln!(out, "{}", tag(r, "run"))?;
                }
            }
            if want_turns {
                for t in selected(store.export_turns()?) {
                    writeln!(out, "{}", tag(t, "turn"))?;
                }
            }
        }
        ExportFormat::Csv => match args.records {
            ExportRecords::Runs => write_csv(&selected(store.export_runs()?), out)?,
            ExportRecords::Turns => write_csv(&selected(store.export_turns()?), out)?,
            ExportRecords::All => {
                return Err(CliError::Usage(
                    "--format csv writes one kind of record: add --records runs or --records turns".into(),
                ))
            }
        },
    }
    Ok(())
}
