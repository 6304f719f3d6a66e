//! One full `calc` of the talk scenario: parse the TOML, evaluate every model,
//! policy and break-even, and render the tables and verdict.
//! Run: `cargo bench --bench calc`.

use loopvel_math::calc::{evaluate, VerdictRule};

const TALK: &str = include_str!("../examples/talk.toml");

fn main() {
    divan::main();
}

#[divan::bench]
fn full_calc_talk_scenario() -> String {
    let scenario = loopvel_scenario::parse_scenario(divan::black_box(TALK), "examples/talk.toml", &[])
        .expect("the shipped scenario is valid");
    let report = evaluate(&scenario, VerdictRule::default());
    loopvel::render::calc::text(&report, loopvel::render::Layout::NARROW)
}
