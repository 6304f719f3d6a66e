//! Grading a turn: PASS, PARTIAL, FAIL or THRASH.

use crate::report::Counts;

pub use loopvel_record::Grade;

/// What a turn produced, for grading.
#[derive(Debug, Clone, Copy)]
pub struct TurnResult {
    /// Tests counted; `None` when the tests crashed or timed out.
    pub counts: Option<Counts>,
    /// Edits applied this turn.
    pub edits_applied: usize,
    /// The edited files are in a state an earlier turn already tested.
    pub state_seen_before: bool,
    /// Tests passing after the previous turn (`None` on the first turn).
    pub previous_passed: Option<u32>,
}

/// Grade one turn. A pass is a pass even when it repeats a state (flaky tests).
pub fn grade(t: &TurnResult) -> Grade {
    let Some(c) = t.counts else { return Grade::Fail };
    if c.total > 0 && c.passed == c.total {
        return Grade::Pass;
    }
    if t.edits_applied == 0 {
        return Grade::Fail;
    }
    if t.state_seen_before || t.previous_passed.is_some_and(|p| c.passed < p) {
        return Grade::Thrash;
    }
    if c.passed == 0 {
        return Grade::Fail;
    }
    Grade::Partial
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(passed: u32, total: u32, edits: usize, seen: bool, prev: Option<u32>) -> TurnResult {
        TurnResult {
            counts: Some(Counts { passed, total }),
            edits_applied: edits,
            state_seen_before: seen,
            previous_passed: prev,
        }
    }

    #[test]
    fn the_four_grades() {
        assert_eq!(grade(&turn(5, 5, 1, false, Some(3))), Grade::Pass);
        assert_eq!(grade(&turn(5, 5, 0, true, None)), Grade::Pass);
        assert_eq!(grade(&turn(3, 5, 1, false, Some(3))), Grade::Partial);
        assert_eq!(grade(&turn(3, 5, 1, false, None)), Grade::Partial);
        assert_eq!(grade(&turn(0, 5, 1, false, None)), Grade::Fail);
        assert_eq!(grade(&turn(3, 5, 0, false, Some(2))), Grade::Fail);
        assert_eq!(grade(&turn(2, 5, 1, false, Some(3))), Grade::Thrash);
        assert_eq!(grade(&turn(4, 5, 1, true, Some(3))), Grade::Thrash);
        let crashed = TurnResult { counts: None, edits_applied: 1, state_seen_before: false, previous_passed: Some(4) };
        assert_eq!(grade(&crashed), Grade::Fail);
    }
}
