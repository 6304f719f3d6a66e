//! # loopvel-math: the loop model, with no I/O
//!
//! Brief overview. An agentic coding loop turns *turns*: the model writes an
//! attempt, the tests run, the failures go back to the model. This crate turns
//! two profiles into predictions:
//!
//! * [`ModelProfile`] — how fast a model answers (`ttft_s`, `tokens_per_s`,
//!   `output_tokens`), what it costs, and how good it is (`p_first`,
//!   `p_retry`, `ceiling`, `r`, `first_score`).
//! * [`LoopProfile`] — the loop around it (`test_s`, `overhead_s`,
//!   `max_turns`, `tests`, `parallel_tests`).
//!
//! From those, three views of the same loop:
//!
//! * [`cycle`] — how long one turn takes, and how much a faster model can
//!   speed the loop up at all (the verification bound).
//! * [`compounding`] — the talk's napkin math: each turn fixes a share `r` of
//!   what is still broken; how many turns until all tests pass.
//! * [`hazard`] — the pass-probability model: each turn passes with a chance;
//!   closed forms for pass rate, time to pass and cost.
//!
//! [`schedule`] writes any loop policy (plain loop, best-of-k, escalate, race)
//! as an exact timeline of turns and pass probabilities, and derives its
//! success-by-time curve F(t), mean and quantile times and expected cost.
//! [`breakeven`] asks how much faster or better a model would need to be to tie.
//! [`calc`] ties everything into the report behind `loopvel calc`.
//!
//! Architecture invariant: nothing here reads files, talks to the network,
//! spawns processes or uses async. Inputs are validated values; outputs are
//! plain numbers and serialisable structs.
//!
//! ```
//! use loopvel_math::{compounding, cycle, LoopProfile, ModelProfile};
//! let fast = ModelProfile { ttft_s: 0.5, tokens_per_s: 1000.0, output_tokens: 2000.0,
//!     ..ModelProfile::example() };
//! let lp = LoopProfile { test_s: 0.3, overhead_s: 0.2, max_turns: 15, tests: 47, parallel_tests: true };
//! assert!((cycle::cycle_s(&fast, &lp) - 3.0).abs() < 1e-12);
//! assert_eq!(compounding::turns_to_target(0.8, 0.2, 47), Some(12));
//! ```

pub mod breakeven;
pub mod calc;
pub mod compounding;
pub mod cycle;
pub mod dist;
pub mod hazard;
pub mod profile;
pub mod schedule;
pub mod units;

pub use profile::{LoopProfile, ModelProfile};

/// `(1 - p)^m` computed as `exp(m·ln(1 - p))`, exact at the edges
/// (`m = 0` gives 1, `p = 1` gives 0 for `m > 0`).
pub(crate) fn pow_q(p: f64, m: f64) -> f64 {
    if m == 0.0 {
        1.0
    } else if p >= 1.0 {
        0.0
    } else {
        (m * (-p).ln_1p()).exp()
    }
}

/// `1 - (1 - p)^m` without the cancellation of the naive form when `p` is small.
pub(crate) fn one_minus_pow_q(p: f64, m: f64) -> f64 {
    if m == 0.0 {
        0.0
    } else if p >= 1.0 {
        1.0
    } else {
        -(m * (-p).ln_1p()).exp_m1()
    }
}
