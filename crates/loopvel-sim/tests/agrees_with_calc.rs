//! The simulator against `calc`'s exact figures, determinism across threads,
//! and the `tests` quality model against the napkin math's closed form.

use loopvel_math::calc::{policy_reports, PolicySpec, Scenario, VerdictRule};
use loopvel_math::compounding::score_after;
use loopvel_math::dist::Dist;
use loopvel_math::schedule::LoopSchedule;
use loopvel_math::{LoopProfile, ModelProfile};
use loopvel_sim::spec::{Quality, SimLoop, SimModel, SimPolicy, SimScenario};
use loopvel_sim::{simulate, SimReport};
use proptest::prelude::*;

fn scenario(models: &[(&str, ModelProfile)], lp: &LoopProfile, policies: Vec<SimPolicy>) -> SimScenario {
    SimScenario {
        loop_profile: SimLoop::from_profile(lp),
        models: models.iter().map(|(n, m)| (n.to_string(), SimModel::from_profile(m))).collect(),
        policies,
    }
}

/// `|sim − exact| ≤ 4 standard errors`, plus 0.01% of the exact value: the
/// standard error is the sample's, and a sample in which every run passed on
/// the same turn has s.e. 0 while the exact mean still carries the rare later
/// passes (seen: best-of-3 with p_first 0.95, 10 s simulated against
/// 10.00018 s exact, a 2e-5 relative gap no sample of 20,000 runs shows).
fn within_4_se(sim: f64, exact: f64, se: f64, what: &str) -> Result<(), TestCaseError> {
    let tolerance = 4.0 * se + 1e-4 * exact.abs() + 1e-9;
    prop_assert!((sim - exact).abs() <= tolerance, "{what}: simulated {sim}, exact {exact}, s.e. {se}");
    Ok(())
}

fn arb_model() -> impl Strategy<Value = ModelProfile> {
    let quality_and_speed =
        (0.05f64..0.95, 0.05f64..0.95, 0.3f64..=1.0, 0.0f64..5.0, 10.0f64..2000.0, 100.0f64..4000.0);
    // Prompt caching: any cached share, at any cached price up to the full one;
    // and a prefill speed or none, so later turns with longer prompts take longer.
    let prefill = proptest::option::of(200.0f64..20_000.0);
    (quality_and_speed, 0.0f64..=1.0, 0.0f64..=1.0, prefill).prop_map(
        |((p_first, p_retry, ceiling, ttft_s, tokens_per_s, output_tokens), cached_share, cached_price, prefill)| {
            ModelProfile {
                ttft_s,
                tokens_per_s,
                output_tokens,
                p_first,
                p_retry,
                ceiling,
                cached_share,
                usd_per_mtok_cached_in: cached_price * ModelProfile::example().usd_per_mtok_in,
                prefill_tokens_per_s: prefill,
                ..ModelProfile::example()
            }
        },
    )
}

fn arb_loop() -> impl Strategy<Value = LoopProfile> {
    (0.0f64..30.0, 0.0f64..2.0, 1u32..20, any::<bool>()).prop_map(|(test_s, overhead_s, max_turns, parallel_tests)| {
        LoopProfile { test_s, overhead_s, max_turns, tests: 20, parallel_tests }
    })
}

/// A fixed seed for the cases, unless `PROPTEST_RNG_SEED` picks others. The
/// comparison is statistical (4 standard errors, so about one comparison in
/// 16,000 fails by chance, and shrinking re-runs a failure many times): with
/// fresh cases on every run, CI went red once in 2026-12 on a case that
/// agrees at 400,000 runs (escalate, 9.52 s exact against 9.47–9.57 s over
/// four seeds). Fixed cases keep CI a verdict on the code; a sweep of other
/// seeds is one variable away.
fn case_seed() -> proptest::test_runner::RngSeed {
    if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        ProptestConfig::default().rng_seed
    } else {
        proptest::test_runner::RngSeed::Fixed(20_261_201)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, rng_seed: case_seed(), ..ProptestConfig::default() })]

    #[test]
    fn plain_and_best_of_agree_with_calc(a in arb_model(), b in arb_model(), lp in arb_loop(), seed in 0u64..1000) {
        let policies = vec![
            SimPolicy::Plain { model: "a".into() },
            SimPolicy::BestOf { model: "a".into(), k: 3 },
            SimPolicy::Race { a: "a".into(), b: "b".into() },
            SimPolicy::Escalate { from: "a".into(), to: "b".into(), after: lp.max_turns / 2 },
        ];
        let runs = 20_000;
        let report = simulate(&scenario(&[("a", a.clone()), ("b", b.clone())], &lp, policies), runs, seed, 10);
        let exact = [
            LoopSchedule::plain(&a, &lp).outcome(),
            LoopSchedule::best_of(&a, &lp, 3).outcome(),
            loopvel_math::schedule::race(&LoopSchedule::plain(&a, &lp), &LoopSchedule::plain(&b, &lp)),
            LoopSchedule::escalate(&a, &b, &lp, lp.max_turns / 2).outcome(),
        ];
        for ((name, r), e) in report.all().zip(&exact) {
            let s = &r.summary;
            let se_rate = (e.pass_rate * (1.0 - e.pass_rate) / runs as f64).sqrt();
            within_4_se(s.pass_rate, e.pass_rate, se_rate, &format!("{name} pass rate"))?;
            if let (Some(m), Some(se), Some(exact_mean)) = (s.mean_time_to_pass_s, s.mean_time_to_pass_se_s, e.mean_time_to_pass_s) {
                within_4_se(m, exact_mean, se, &format!("{name} mean time to pass"))?;
            }
            // Cost per run: compare with the standard error of a mean of bounded costs.
            let cost_se = e.usd_per_run.max(1e-12) / (runs as f64).sqrt() * 3.0;
            within_4_se(s.usd_per_run, e.usd_per_run, cost_se, &format!("{name} cost per run"))?;
        }
    }
}

fn talk() -> (Vec<(&'static str, ModelProfile)>, LoopProfile) {
    let lp = LoopProfile { test_s: 0.3, overhead_s: 0.2, max_turns: 15, tests: 47, parallel_tests: true };
    let fast = ModelProfile {
        ttft_s: 0.5,
        tokens_per_s: 1000.0,
        output_tokens: 2000.0,
        p_first: 0.05,
        p_retry: 0.2,
        ..ModelProfile::example()
    };
    let frontier = ModelProfile {
        ttft_s: 4.5,
        tokens_per_s: 80.0,
        output_tokens: 2000.0,
        p_first: 0.3,
        p_retry: 0.8,
        ..ModelProfile::example()
    };
    (vec![("fast", fast), ("frontier", frontier)], lp)
}

#[test]
fn p90_agrees_with_calc_within_the_histogram_error() {
    let (models, lp) = talk();
    let names: Vec<String> = models.iter().map(|(n, _)| n.to_string()).collect();
    let calc = Scenario {
        loop_profile: lp.clone(),
        models: models.iter().map(|(n, m)| (n.to_string(), m.clone())).collect(),
        policies: PolicySpec { best_of: vec![], race: vec![], escalate: vec![] },
    };
    let _ = policy_reports(&calc, VerdictRule::default());
    let sim = simulate(
        &scenario(&models, &lp, names.iter().map(|n| SimPolicy::Plain { model: n.clone() }).collect()),
        50_000,
        3,
        10,
    );
    for ((_, m), (_, r)) in models.iter().zip(&sim.models) {
        let exact = LoopSchedule::plain(m, &lp).outcome().p90_time_to_pass_s.unwrap();
        let got = r.summary.p90_time_to_pass_s.unwrap();
        assert!((got / exact - 1.0).abs() <= loopvel_sim::hist::RELATIVE_ERROR + 1e-9, "{got} vs {exact}");
    }
}

fn realistic() -> SimScenario {
    let (models, lp) = talk();
    let mut s = scenario(
        &models,
        &lp,
        vec![
            SimPolicy::Plain { model: "fast".into() },
            SimPolicy::Plain { model: "frontier".into() },
            SimPolicy::BestOf { model: "fast".into(), k: 4 },
            SimPolicy::Race { a: "fast".into(), b: "frontier".into() },
            SimPolicy::Escalate { from: "fast".into(), to: "frontier".into(), after: 5 },
        ],
    );
    s.loop_profile.test_s = Dist::LogNormal { median: 0.3, p90: 0.5 };
    s.loop_profile.flaky = 0.02;
    s.loop_profile.max_wall_s = Some(120.0);
    for (_, m) in &mut s.models {
        m.ttft_s = Dist::LogNormal { median: 1.0, p90: 3.0 };
        m.quality = Quality::Hazard {
            p_first: Dist::Beta { mean: 0.3, concentration: 2.0 },
            p_retry: Dist::Beta { mean: 0.4, concentration: 2.0 },
            ceiling: 0.9,
        };
        m.thrash = 0.05;
        m.rate_limit_rps = Some(2.0);
    }
    s
}

#[test]
fn the_same_seed_gives_the_same_report_with_one_and_two_threads() {
    let s = realistic();
    let run = |threads: usize| -> SimReport {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| simulate(&s, 30_000, 42, 25))
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two);
    // And a different seed gives a different one (the comparison can fail).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let other = pool.install(|| simulate(&s, 30_000, 43, 25));
    assert_ne!(one, other);
}

#[test]
fn tests_quality_mean_score_follows_the_napkin_math() {
    let lp = LoopProfile { test_s: 1.0, overhead_s: 0.0, max_turns: 12, tests: 47, parallel_tests: true };
    let mut s = scenario(&[("m", ModelProfile::example())], &lp, vec![SimPolicy::Plain { model: "m".into() }]);
    let (first_score, r) = (0.8, 0.2);
    s.models[0].1.quality =
        Quality::Tests { first_score: Dist::constant(first_score), r: Dist::constant(r), ceiling: 1.0 };
    let runs = 40_000;
    let report = simulate(&s, runs, 9, 10);
    let scores = report.models[0].1.summary.mean_score_by_turn.clone().unwrap();
    for (i, got) in scores.iter().enumerate() {
        let n = i as u64 + 1;
        let exact = score_after(first_score, r, n);
        // Per-run score variance is at most (0.5)²; its mean over 40k runs has s.e. ≤ 0.0025.
        assert!((got - exact).abs() < 4.0 * 0.5 / (runs as f64).sqrt(), "turn {n}: {got} vs {exact}");
    }
    // Failed runs have a real best score (PARTIAL), below 1.
    let failed = report.models[0].1.summary.failed_best_score_mean;
    assert!(failed.is_some_and(|f| f > 0.8 && f < 1.0), "{failed:?}");
}

#[test]
fn budgets_censor_runs_and_say_which() {
    let (models, lp) = talk();
    let mut s = scenario(&models[..1], &lp, vec![SimPolicy::Plain { model: "fast".into() }]);
    s.loop_profile.max_wall_s = Some(7.0); // two 3 s turns fit, a third does not
    let r = simulate(&s, 20_000, 5, 10).models[0].1.summary.clone();
    assert_eq!(r.censored.turns, 0);
    assert!(r.censored.wall > 0);
    assert!(r.mean_time_to_pass_s.unwrap() <= 7.0);
    assert_eq!(r.passes + r.censored.wall, r.runs);
    s.loop_profile.max_wall_s = None;
    s.loop_profile.max_usd = Some(0.005); // fewer than a handful of turns
    let r = simulate(&s, 20_000, 5, 10).models[0].1.summary.clone();
    assert!(r.censored.usd > 0 && r.censored.wall == 0);
}

#[test]
fn rate_limits_add_waiting_time() {
    let (models, lp) = talk();
    let mut s = scenario(&models[..1], &lp, vec![SimPolicy::BestOf { model: "fast".into(), k: 4 }]);
    let free = simulate(&s, 10_000, 5, 10).policies[0].1.summary.clone();
    s.models[0].1.rate_limit_rps = Some(1.0); // 4 requests per turn, one per second
    let limited = simulate(&s, 10_000, 5, 10).policies[0].1.summary.clone();
    assert_eq!(free.mean_wait_s, 0.0);
    assert!(limited.mean_wait_s > 0.0);
    assert!(limited.mean_time_to_pass_s.unwrap() > free.mean_time_to_pass_s.unwrap() + 2.0);
}

#[test]
fn heterogeneous_tasks_make_more_turns_buy_less() {
    // Same mean p_retry, but spread over tasks: the pass rate within the budget falls.
    let (models, lp) = talk();
    let mut s = scenario(&models[..1], &lp, vec![SimPolicy::Plain { model: "fast".into() }]);
    let even = simulate(&s, 20_000, 5, 10).models[0].1.summary.pass_rate;
    s.models[0].1.quality = Quality::Hazard {
        p_first: Dist::constant(0.05),
        p_retry: Dist::Beta { mean: 0.2, concentration: 0.5 },
        ceiling: 1.0,
    };
    let spread = simulate(&s, 20_000, 5, 10).models[0].1.summary.pass_rate;
    assert!(spread < even - 0.05, "{spread} vs {even}");
}

#[test]
fn a_passing_reply_of_its_own_length_and_a_profile_by_turn_set_the_time_of_each_turn() {
    // Constant times: turn 1 fails (1000 tokens at 100 tokens/s, first token 1 s), turn 2
    // passes with a 100-token reply, its first token after 3 s at 50 tokens/s.
    let lp = LoopProfile { test_s: 0.5, overhead_s: 0.25, max_turns: 2, tests: 1, parallel_tests: true };
    let m = ModelProfile { p_first: 0.0, p_retry: 1.0, ceiling: 1.0, output_tokens: 1000.0, ..ModelProfile::example() };
    let mut sim = SimModel::from_profile(&m);
    sim.output_tokens_on_pass = Some(Dist::constant(100.0));
    sim.ttft_by_turn = vec![Dist::constant(1.0), Dist::constant(3.0)];
    sim.tokens_per_s_by_turn = vec![Dist::constant(100.0), Dist::constant(50.0)];
    let scenario = SimScenario {
        loop_profile: SimLoop::from_profile(&lp),
        models: vec![("m".into(), sim)],
        policies: vec![SimPolicy::Plain { model: "m".into() }],
    };
    let r = simulate(&scenario, 200, 3, 2);
    let s = &r.models[0].1.summary;
    let want = (0.25 + 1.0 + 10.0 + 0.5) + (0.25 + 3.0 + 2.0 + 0.5);
    assert_eq!(s.pass_rate, 1.0);
    assert!((s.mean_time_to_pass_s.unwrap() - want).abs() < 1e-9, "{:?} against {want}", s.mean_time_to_pass_s);
}

#[test]
fn a_prefill_speed_makes_later_turns_slower_in_calc_and_in_the_simulator() {
    let lp = LoopProfile { test_s: 1.0, overhead_s: 0.0, max_turns: 3, tests: 1, parallel_tests: true };
    // Turn n's prompt: 5000 + 1000 (n − 1) tokens, prefilled at 1000 tokens/s.
    let m = ModelProfile {
        p_first: 0.0,
        p_retry: 1.0,
        ceiling: 1.0,
        prefill_tokens_per_s: Some(1000.0),
        ..ModelProfile::example()
    };
    let exact = LoopSchedule::plain(&m, &lp).outcome();
    // Turn 1: 1 + 5 + 10 + 1 = 17 s; turn 2: 1 + 6 + 10 + 1 = 18 s; passes at 35 s.
    assert!((exact.mean_time_to_pass_s.unwrap() - 35.0).abs() < 1e-9, "{exact:?}");
    let r = simulate(&scenario(&[("m", m)], &lp, vec![SimPolicy::Plain { model: "m".into() }]), 100, 1, 2);
    assert!((r.models[0].1.summary.mean_time_to_pass_s.unwrap() - 35.0).abs() < 1e-9);
}
