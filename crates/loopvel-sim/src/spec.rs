//! What a simulation runs: the loop, the models and the policies, with
//! distributions where `calc` has constants. Built by `loopvel-scenario`.

use loopvel_math::dist::Dist;
use loopvel_math::ModelProfile;

/// The loop around the models.
#[derive(Debug, Clone, PartialEq)]
pub struct SimLoop {
    /// Time to run the tests once, s.
    pub test_s: Dist,
    /// Fixed time per turn outside model and tests, s.
    pub overhead_s: f64,
    /// Turn budget per run.
    pub max_turns: u32,
    /// Number of tests; the target is all passing.
    pub tests: u32,
    /// Best-of-k candidates tested at once (true) or one after another.
    pub parallel_tests: bool,
    /// Chance that a correct solution still fails one test run.
    pub flaky: f64,
    /// Wall-time budget per run, s.
    pub max_wall_s: Option<f64>,
    /// Cost budget per run, USD.
    pub max_usd: Option<f64>,
    /// Restart after this many turns without a pass (`None`: never), as
    /// `run --restart-after K` does: a fresh conversation, so the next turn
    /// passes with `p_first` again and pays a first turn's prompt and times.
    /// The first conversation lasts 1 + K turns (its first turn sets the best
    /// state), each later one K.
    pub restart_after: Option<u32>,
}

/// How a model's turns succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Quality {
    /// Pass-probability model: the first turn passes with `p_first`, later ones with `p_retry`.
    /// Both may be distributions over tasks.
    Hazard {
        /// Chance the first attempt passes (per task).
        p_first: Dist,
        /// Chance a later turn passes given no pass yet (per task).
        p_retry: Dist,
        /// Share of tasks the model can solve at all.
        ceiling: f64,
    },
    /// The napkin math made stochastic: the first attempt fails each test with
    /// chance `1 − first_score`; each turn fixes each failing test with chance `r`.
    Tests {
        /// Share of tests passing after the first attempt (per task).
        first_score: Dist,
        /// Share of the remaining failing tests fixed per turn (per task).
        r: Dist,
        /// Share of tasks the model can solve at all; on the rest one test never passes.
        ceiling: f64,
    },
}

/// One model as the simulator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimModel {
    /// Time to first token, s (the part that does not grow with the prompt).
    pub ttft_s: Dist,
    /// Prompt processing speed, tokens/s: turn n's first token also waits
    /// `input(n) / prefill_tokens_per_s`. `None`: no such wait.
    pub prefill_tokens_per_s: Option<f64>,
    /// A time to first token per overall turn (index 0: turn 1; the last one
    /// for every later turn), replacing `ttft_s` where given: a recorded
    /// loop's turns as they were. Empty: `ttft_s` on every turn.
    pub ttft_by_turn: Vec<Dist>,
    /// A decode speed per overall turn, as `ttft_by_turn`. Empty: `tokens_per_s`.
    pub tokens_per_s_by_turn: Vec<Dist>,
    /// Output tokens of an attempt that passes, when they differ from a
    /// failing attempt's (`output_tokens`): a recorded loop whose passing
    /// replies are shorter passes sooner than its mean turn says.
    pub output_tokens_on_pass: Option<Dist>,
    /// Decode speed, tokens/s.
    pub tokens_per_s: Dist,
    /// Output tokens per attempt.
    pub output_tokens: Dist,
    /// Prompt tokens of the first attempt.
    pub input_tokens: f64,
    /// Prompt tokens added per turn.
    pub input_growth_tokens: f64,
    /// USD per million input tokens.
    pub usd_per_mtok_in: f64,
    /// USD per million output tokens.
    pub usd_per_mtok_out: f64,
    /// Share of input tokens read from the prompt cache.
    pub cached_share: f64,
    /// USD per million cached input tokens.
    pub usd_per_mtok_cached_in: f64,
    /// How turns succeed.
    pub quality: Quality,
    /// Chance a turn makes things worse (hazard: the turn cannot pass; tests: one fixed test breaks again).
    pub thrash: f64,
    /// Most requests per second this model accepts from one run; requests wait for a slot.
    pub rate_limit_rps: Option<f64>,
    /// Most requests of one run in flight at once (best-of-k generates in waves).
    pub max_concurrent: Option<u32>,
    /// The constant profile `calc` would use, when every field is a constant
    /// and the hazard fields are present.
    pub profile: Option<ModelProfile>,
}

/// A policy to simulate. Names refer to models of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum SimPolicy {
    /// One model, one candidate per turn.
    Plain {
        /// The model.
        model: String,
    },
    /// `k` candidates per turn; a turn passes when any does.
    BestOf {
        /// The model.
        model: String,
        /// Candidates per turn.
        k: u32,
    },
    /// Two loops on the same task; the first green wins.
    Race {
        /// One model.
        a: String,
        /// The other.
        b: String,
    },
    /// `from` for `after` turns, then `to`.
    Escalate {
        /// The model that starts.
        from: String,
        /// The model that takes over.
        to: String,
        /// Turns on `from`.
        after: u32,
    },
}

impl SimPolicy {
    /// The name used in reports, matching `calc`'s: `fast`, `best_of_2(fast)`, `race(a,b)`, `escalate(a->b)`.
    pub fn name(&self) -> String {
        match self {
            SimPolicy::Plain { model } => model.clone(),
            SimPolicy::BestOf { model, k } => format!("best_of_{k}({model})"),
            SimPolicy::Race { a, b } => format!("race({a},{b})"),
            SimPolicy::Escalate { from, to, .. } => format!("escalate({from}->{to})"),
        }
    }
}

/// A whole simulation scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct SimScenario {
    /// The loop.
    pub loop_profile: SimLoop,
    /// The models, in file order.
    pub models: Vec<(String, SimModel)>,
    /// The policies to simulate (plain loops included), in report order.
    pub policies: Vec<SimPolicy>,
}

impl SimScenario {
    /// The model called `name`.
    pub fn model(&self, name: &str) -> Option<&SimModel> {
        self.models.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }
}

impl SimModel {
    /// The constant model `calc` describes: every time a constant, hazard quality, no thrash, no limits.
    pub fn from_profile(m: &ModelProfile) -> Self {
        SimModel {
            ttft_s: Dist::constant(m.ttft_s),
            prefill_tokens_per_s: m.prefill_tokens_per_s,
            ttft_by_turn: Vec::new(),
            tokens_per_s_by_turn: Vec::new(),
            output_tokens_on_pass: None,
            tokens_per_s: Dist::constant(m.tokens_per_s),
            output_tokens: Dist::constant(m.output_tokens),
            input_tokens: m.input_tokens,
            input_growth_tokens: m.input_growth_tokens,
            usd_per_mtok_in: m.usd_per_mtok_in,
            usd_per_mtok_out: m.usd_per_mtok_out,
            cached_share: m.cached_share,
            usd_per_mtok_cached_in: m.usd_per_mtok_cached_in,
            quality: Quality::Hazard {
                p_first: Dist::constant(m.p_first),
                p_retry: Dist::constant(m.p_retry),
                ceiling: m.ceiling,
            },
            thrash: 0.0,
            rate_limit_rps: None,
            max_concurrent: None,
            profile: Some(m.clone()),
        }
    }
}

impl SimLoop {
    /// The constant loop `calc` describes: no flakiness, no wall or cost budget.
    pub fn from_profile(l: &loopvel_math::LoopProfile) -> Self {
        SimLoop {
            test_s: Dist::constant(l.test_s),
            overhead_s: l.overhead_s,
            max_turns: l.max_turns,
            tests: l.tests,
            parallel_tests: l.parallel_tests,
            flaky: 0.0,
            max_wall_s: None,
            max_usd: None,
            restart_after: None,
        }
    }
}
