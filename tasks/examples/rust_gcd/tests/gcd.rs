use gcd_task::gcd;

#[test]
fn positive() {
    assert_eq!(gcd(12, 18), 6);
    assert_eq!(gcd(17, 5), 1);
}

#[test]
fn with_zero() {
    assert_eq!(gcd(0, 7), 7);
    assert_eq!(gcd(7, 0), 7);
    assert_eq!(gcd(0, 0), 0);
}

#[test]
fn negative() {
    assert_eq!(gcd(-12, 18), 6);
    assert_eq!(gcd(12, -18), 6);
    assert_eq!(gcd(-12, -18), 6);
}

#[test]
fn negative_with_zero() {
    assert_eq!(gcd(-5, 0), 5);
}
