use loopvel_task::median;

#[test]
fn odd_count() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
}

#[test]
fn even_count() {
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
}

#[test]
fn one_value() {
    assert_eq!(median(&[7.0]), 7.0);
}

#[test]
fn unsorted_even() {
    assert_eq!(median(&[10.0, -2.0]), 4.0);
}
