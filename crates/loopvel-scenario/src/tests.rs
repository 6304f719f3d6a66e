use super::*;

const TALK: &str = include_str!("../../../examples/talk.toml");

fn err(text: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match parse_scenario(text, "s.toml", &sets) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn talk_scenario_reads() {
    let s = parse_scenario(TALK, "talk.toml", &[]).unwrap();
    assert_eq!(s.models.len(), 2);
    assert_eq!(s.models[0].0, "fast");
    assert_eq!(s.models[1].0, "frontier");
    assert_eq!(s.loop_profile.tests, 47);
    assert_eq!(s.models[0].1.ceiling, 1.0, "ceiling defaults to 1");
    assert_eq!(s.policies, PolicySpec::default_for(&["fast".into(), "frontier".into()]));
}

#[test]
fn overrides_change_values() {
    let s = parse_scenario(TALK, "t", &["models.fast.tokens_per_s=250".into(), "loop.parallel_tests=false".into()])
        .unwrap();
    assert_eq!(s.models[0].1.tokens_per_s, 250.0);
    assert!(!s.loop_profile.parallel_tests);
}

#[test]
fn missing_field_is_named_with_its_meaning() {
    let text = TALK.replace("tokens_per_s = 1000\n", "");
    let e = err(&text, &[]);
    assert!(e.starts_with("s.toml: models.fast.tokens_per_s is missing"), "{e}");
    assert!(e.contains("tokens per second"), "{e}");
}

#[test]
fn probability_out_of_range() {
    let e = err(TALK, &["models.frontier.p_first=1.2"]);
    assert!(e.contains("models.frontier.p_first = 1.2 is outside [0, 1]"), "{e}");
    assert!(e.contains("came from --set"), "{e}");
}

#[test]
fn negative_time() {
    let e = err(&TALK.replace("test_s = 0.3", "test_s = -1"), &[]);
    assert!(e.contains("loop.test_s = -1 is negative"), "{e}");
    assert!(!e.contains("--set"), "{e}");
}

#[test]
fn zero_r_that_never_converges() {
    let e = err(TALK, &["models.fast.r=0"]);
    assert!(e.contains("models.fast.r = 0 never converges"), "{e}");
    // r = 0 is fine when the first attempt already meets the target.
    assert!(parse_scenario(TALK, "t", &["models.fast.r=0".into(), "models.fast.first_score=0.99".into()]).is_ok());
}

#[test]
fn unknown_key_gets_a_suggestion() {
    let e = err(&TALK.replace("tokens_per_s = 80", "tokens_per_sec = 80"), &[]);
    assert!(e.contains("models.frontier.tokens_per_sec is not a known key; did you mean `tokens_per_s`?"), "{e}");
    assert!(e.contains("allowed keys: ttft_s"), "{e}");
    let e = err(&format!("{TALK}\n[lop]\nx = 1\n"), &[]);
    assert!(e.contains("lop is not a known key; did you mean `loop`?"), "{e}");
}

#[test]
fn wrong_types_and_syntax() {
    let e = err(TALK, &["models.fast.tokens_per_s=fast"]);
    assert!(e.contains("models.fast.tokens_per_s must be a number or a distribution table"), "{e}");
    let e = err("[loop\n", &[]);
    assert!(e.starts_with("s.toml: not valid TOML"), "{e}");
    let e = err(TALK, &["loop.max_turns=0"]);
    assert!(e.contains("loop.max_turns = 0 is not allowed; give a whole number from 1"), "{e}");
    let e = err(TALK, &["loop.max_turns=2.5"]);
    assert!(e.contains("whole number"), "{e}");
}

#[test]
fn bad_overrides() {
    let e = err(TALK, &["models.nope.r=0.5"]);
    assert!(e.contains("has no table `models.nope`; it has: fast, frontier"), "{e}");
    let e = err(TALK, &["models.fast.r"]);
    assert!(e.contains("has no `=`"), "{e}");
}

#[test]
fn policies_name_real_models() {
    let text = format!("{TALK}\n[policies]\nrace = [[\"fast\", \"nobody\"]]\n");
    let e = err(&text, &[]);
    assert!(e.contains("policies.race[0] names model `nobody`"), "{e}");
    let text = format!("{TALK}\n[policies]\nbest_of = [1]\n");
    assert!(err(&text, &[]).contains("policies.best_of[0] = 1 is not allowed"));
    let text = format!("{TALK}\n[policies]\nescalate = [{{ from = \"fast\", to = \"frontier\", after = 99 }}]\n");
    assert!(err(&text, &[]).contains("policies.escalate[0].after = 99 is not allowed"));
}

#[test]
fn empty_models_and_bad_names() {
    let e = err("[loop]\ntest_s = 1\nmax_turns = 3\ntests = 2\n[models]\n", &[]);
    assert!(e.contains("models has no models"), "{e}");
    let e = err("[loop]\ntest_s = 1\nmax_turns = 3\ntests = 2\n", &[]);
    assert!(e.contains("models is missing"), "{e}");
}

#[test]
fn cached_share_blends_the_input_price_and_is_a_share() {
    let s = parse_scenario(TALK, "t", &[]).unwrap();
    let plain = s.models[1].1.clone();
    assert_eq!((plain.cached_share, plain.usd_per_mtok_cached_in), (0.0, plain.usd_per_mtok_in));
    let s = parse_scenario(
        TALK,
        "t",
        &["models.frontier.cached_share=0.75".into(), "models.frontier.usd_per_mtok_cached_in=0.1".into()],
    )
    .unwrap();
    let cached = &s.models[1].1;
    let input = cached.input_tokens;
    let want =
        (input * (0.25 * cached.usd_per_mtok_in + 0.75 * 0.1) + cached.output_tokens * cached.usd_per_mtok_out) / 1e6;
    assert!((cached.usd_of_turn(1) - want).abs() < 1e-15);
    assert!(cached.usd_of_turn(1) < plain.usd_of_turn(1));
    // A share without a cached price saves nothing: cached tokens cost the input price.
    let s = parse_scenario(TALK, "t", &["models.frontier.cached_share=0.75".into()]).unwrap();
    assert!((s.models[1].1.usd_of_turn(3) - plain.usd_of_turn(3)).abs() < 1e-15);
    let e = err(TALK, &["models.frontier.cached_share=1.5"]);
    assert!(e.contains("models.frontier.cached_share = 1.5 is outside [0, 1]"), "{e}");
}

#[test]
fn a_prefill_speed_is_read_and_must_be_positive() {
    let s = parse_scenario(TALK, "t", &["models.fast.prefill_tokens_per_s=2000".into()]).unwrap();
    assert_eq!(s.models[0].1.prefill_tokens_per_s, Some(2000.0));
    assert_eq!(s.models[1].1.prefill_tokens_per_s, None);
    let e = err(TALK, &["models.fast.prefill_tokens_per_s=0"]);
    assert!(e.contains("models.fast.prefill_tokens_per_s"), "{e}");
}
