use duration_task::parse_duration;

#[test]
fn seconds_only() {
    assert_eq!(parse_duration("45s"), Ok(45));
}

#[test]
fn hours_and_minutes() {
    assert_eq!(parse_duration("1h30m"), Ok(5400));
}

#[test]
fn all_units() {
    assert_eq!(parse_duration("1h2m3s"), Ok(3723));
}

#[test]
fn hours_only() {
    assert_eq!(parse_duration("2h"), Ok(7200));
}

#[test]
fn rejects_empty_and_garbage() {
    assert!(parse_duration("").is_err());
    assert!(parse_duration("10x").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("10").is_err());
}

#[test]
fn rejects_wrong_order_and_repeats() {
    assert!(parse_duration("30m1h").is_err());
    assert!(parse_duration("1h1h").is_err());
}

#[test]
fn rejects_overflow() {
    assert!(parse_duration("99999999999999999999h").is_err());
    assert!(parse_duration("9999999999999999h").is_err());
}
