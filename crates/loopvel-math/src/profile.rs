//! The two inputs of every formula: what the model is like, and what the loop is like.

use serde::Serialize;

/// Speed, price and quality of one model on one kind of task.
///
/// Times are seconds, speeds tokens per second, prices US dollars per
/// million tokens, probabilities and shares in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    /// Time to first token of a reply, in seconds: the part that does not
    /// grow with the prompt when `prefill_tokens_per_s` is set.
    pub ttft_s: f64,
    /// Prompt processing speed, tokens per second: each turn's first token
    /// also waits `input tokens of that turn / prefill_tokens_per_s`, so a
    /// prompt that grows by turn makes later turns slower. `None`: the time to
    /// first token is `ttft_s` on every turn.
    pub prefill_tokens_per_s: Option<f64>,
    /// Decode speed after the first token, in tokens per second.
    pub tokens_per_s: f64,
    /// Output tokens per attempt.
    pub output_tokens: f64,
    /// Input (prompt) tokens of the first attempt.
    pub input_tokens: f64,
    /// Input tokens added each turn (the feedback appended to the conversation).
    pub input_growth_tokens: f64,
    /// Price of input tokens, US dollars per million.
    pub usd_per_mtok_in: f64,
    /// Price of output tokens, US dollars per million.
    pub usd_per_mtok_out: f64,
    /// Share of input tokens the server reads from its prompt cache (what
    /// `loopvel report` shows as "cached share"), billed at `usd_per_mtok_cached_in`.
    pub cached_share: f64,
    /// Price of cached input tokens, US dollars per million.
    pub usd_per_mtok_cached_in: f64,
    /// Chance that the first attempt passes every test (on a solvable task).
    pub p_first: f64,
    /// Chance that a later turn passes, given the run has not passed yet (on a solvable task).
    pub p_retry: f64,
    /// Share of tasks this model can solve at all.
    pub ceiling: f64,
    /// Share of the remaining error fixed per turn (compounding view).
    pub r: f64,
    /// Score (share of tests passing) after the first attempt (compounding view).
    pub first_score: f64,
}

impl ModelProfile {
    /// A plausible mid-range model, for examples and tests that only vary a few fields.
    pub fn example() -> Self {
        ModelProfile {
            ttft_s: 1.0,
            prefill_tokens_per_s: None,
            tokens_per_s: 100.0,
            output_tokens: 1000.0,
            input_tokens: 5000.0,
            input_growth_tokens: 1000.0,
            usd_per_mtok_in: 1.0,
            usd_per_mtok_out: 4.0,
            cached_share: 0.0,
            usd_per_mtok_cached_in: 1.0,
            p_first: 0.3,
            p_retry: 0.4,
            ceiling: 1.0,
            r: 0.5,
            first_score: 0.7,
        }
    }

    /// Cost of one attempt at overall turn `turn` (1-based), in US dollars:
    /// the prompt grows by `input_growth_tokens` each turn, and
    /// `cached_share` of it is billed at the cached price.
    pub fn usd_of_turn(&self, turn: u32) -> f64 {
        (self.input_of_turn(turn) * self.usd_per_mtok_input() + self.output_tokens * self.usd_per_mtok_out) / 1e6
    }

    /// Prompt tokens of overall turn `turn` (1-based).
    pub fn input_of_turn(&self, turn: u32) -> f64 {
        self.input_tokens + self.input_growth_tokens * f64::from(turn.saturating_sub(1))
    }

    /// Prompt processing time of overall turn `turn`, s: 0 without a prefill speed.
    pub fn prefill_s(&self, turn: u32) -> f64 {
        self.prefill_tokens_per_s.filter(|p| *p > 0.0).map_or(0.0, |p| self.input_of_turn(turn) / p)
    }

    /// The price of an input token with caching blended in, US dollars per
    /// million: `(1 − cached_share) · usd_per_mtok_in + cached_share · usd_per_mtok_cached_in`.
    ///
    /// ```
    /// let mut m = loopvel_math::profile::ModelProfile::example();
    /// (m.usd_per_mtok_in, m.usd_per_mtok_cached_in, m.cached_share) = (3.0, 0.3, 0.8);
    /// assert!((m.usd_per_mtok_input() - (0.2 * 3.0 + 0.8 * 0.3)).abs() < 1e-12);
    /// ```
    pub fn usd_per_mtok_input(&self) -> f64 {
        (1.0 - self.cached_share) * self.usd_per_mtok_in + self.cached_share * self.usd_per_mtok_cached_in
    }
}

/// The loop around the model: tests, fixed overhead and budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopProfile {
    /// Time to run the test suite once, in seconds.
    pub test_s: f64,
    /// Fixed time per turn outside model and tests (parsing, applying edits, network), in seconds.
    pub overhead_s: f64,
    /// Most turns a run may take before it counts as failed.
    pub max_turns: u32,
    /// Number of tests; the target is all of them passing.
    pub tests: u32,
    /// Best-of-k: candidates are tested at once (true) or one after another (false).
    pub parallel_tests: bool,
}
