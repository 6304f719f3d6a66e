//! How long a turn takes, by turn: a turn is not a constant. With the whole
//! conversation in the prompt, later turns send longer prompts, and the time
//! to first token grows with the prompt (prefill); and a reply that passes
//! may be shorter (or longer) than one that fails. One mean turn time for
//! every turn makes a turn-1 pass cost a turn-4 time.
//!
//! Fitted per model by least squares, each line a closed form:
//! - the prompt by turn: `input(n) = input_tokens + input_growth_tokens · (n − 1)`;
//! - the time to first token by prompt: `ttft = fixed + input / prefill_tokens_per_s`
//!   (no prefill term when the slope is not positive), with the fixed part's
//!   spread as a lognormal of the residuals;
//! - the decode time per output token by prompt: `1 / speed + slowdown · input`
//!   (attention over a longer context decodes slower; 21 tokens/s at 500
//!   prompt tokens and 12 at 6,000 in the shipped experiment), with the
//!   speed's spread as a lognormal of the residuals;
//! - output tokens apart for passing and failing turns.
//!
//! Those lines describe (and `calc`/`simulate` take `prefill_tokens_per_s`);
//! what `predict` simulates is the profile by turn itself: a lognormal of the
//! first-token times and one of the decode speeds recorded at each turn
//! index (turns with fewer than [`MIN_TURNS_AT_INDEX`] recorded pool with the
//! later ones, the last profile stands for every later turn). That follows
//! what the data show where the lines do not: a server that caches the
//! conversation's prefix answers later, longer prompts sooner than a line in
//! the prompt's length says.

use crate::interval::mean;
use crate::lognormal::LognormalFit;
use crate::trace::Run;
use loopvel_record::Grade;

/// The fitted time model of one model's turns. Times in seconds, speeds in tokens/s.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnTime {
    /// Prompt tokens of turn 1.
    pub input_tokens: f64,
    /// Prompt tokens added per turn.
    pub input_growth_tokens: f64,
    /// Prompt processing speed; `None` when the first token does not wait longer for longer prompts.
    pub prefill_tokens_per_s: Option<f64>,
    /// The time to first token without the prompt's prefill.
    pub ttft_fixed: LognormalFit,
    /// Decode speed after the first token, without the slowdown a longer prompt adds.
    pub speed: LognormalFit,
    /// Seconds each output token's decode takes longer per prompt token; `None`: no slowdown.
    pub decode_slowdown: Option<f64>,
    /// The time to first token of each turn index (index 0: turn 1).
    pub ttft_by_turn: Vec<LognormalFit>,
    /// The decode speed of each turn index.
    pub speed_by_turn: Vec<LognormalFit>,
    /// Mean output tokens of a turn that did not pass.
    pub output_tokens: f64,
    /// Mean output tokens of a turn that passed (two or more such turns needed).
    pub output_tokens_on_pass: Option<f64>,
    /// The spread of failing turns' output tokens (`None`: fewer than two, or all alike).
    pub output_spread: Option<LognormalFit>,
    /// The spread of passing turns' output tokens.
    pub output_spread_on_pass: Option<LognormalFit>,
}

/// Least squares `y = a + b·x`; `None` with fewer than two distinct `x`.
fn line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if points.len() < 2 || sxx <= f64::EPSILON * mx.abs().max(1.0) {
        return None;
    }
    let b = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    Some((my - b * mx, b))
}

impl TurnTime {
    /// The fit over every turn of `runs`; `None` without two measured first
    /// tokens and decode speeds.
    pub fn fit<'a>(runs: impl IntoIterator<Item = &'a Run> + Clone) -> Option<TurnTime> {
        let turns: Vec<_> = runs.clone().into_iter().flat_map(|r| r.turns.iter()).collect();
        let by_turn: Vec<(f64, f64)> =
            turns.iter().filter_map(|t| Some((f64::from(t.turn), t.input_tokens? as f64))).collect();
        let (input_tokens, input_growth_tokens) = match line(&by_turn) {
            // Intercept at turn 1, and a prompt never shrinks below what turn 1 sent.
            Some((a, b)) => (a + b, b.max(0.0)),
            None => (mean(&by_turn.iter().map(|p| p.1).collect::<Vec<_>>()).unwrap_or(0.0), 0.0),
        };
        let ttft_by_input: Vec<(f64, f64)> =
            turns.iter().filter_map(|t| Some((t.input_tokens? as f64, t.ttft_s?))).collect();
        let slope = line(&ttft_by_input).map(|(_, b)| b).filter(|b| *b > 1e-9);
        let fixed: Vec<f64> = turns
            .iter()
            .filter_map(|t| {
                let ttft = t.ttft_s?;
                let prefill = slope.map_or(0.0, |b| b * t.input_tokens.unwrap_or(0) as f64);
                // The floor keeps a lognormal defined where the line overshoots a short prompt.
                Some((ttft - prefill).max(0.05 * ttft).max(1e-3))
            })
            .collect();
        let ttft_fixed = LognormalFit::fit(&fixed)?;
        let per_token_by_input: Vec<(f64, f64)> = turns
            .iter()
            .filter_map(|t| Some((t.input_tokens? as f64, 1.0 / t.tokens_per_s.filter(|s| *s > 0.0)?)))
            .collect();
        let decode_slowdown = line(&per_token_by_input).map(|(_, b)| b).filter(|b| *b > 0.0);
        let base_speeds: Vec<f64> = turns
            .iter()
            .filter_map(|t| {
                let per_token = 1.0 / t.tokens_per_s.filter(|s| *s > 0.0)?;
                let slower = decode_slowdown.map_or(0.0, |b| b * t.input_tokens.unwrap_or(0) as f64);
                Some(1.0 / (per_token - slower).max(0.05 * per_token))
            })
            .collect();
        let speed = LognormalFit::fit(&base_speeds)?;
        let outputs = |pass: bool| -> Vec<f64> {
            turns
                .iter()
                .filter(|t| (t.grade == Grade::Pass) == pass)
                .filter_map(|t| t.output_tokens.map(|n| n as f64))
                .collect()
        };
        let (failing, passing) = (outputs(false), outputs(true));
        let last = turns.iter().map(|t| t.turn).max().unwrap_or(1);
        let (mut ttft_by_turn, mut speed_by_turn) = (Vec::new(), Vec::new());
        for n in 1..=last {
            let at = |n: u32, pooled: bool| -> Vec<_> {
                turns.iter().filter(|t| if pooled { t.turn >= n } else { t.turn == n }).collect::<Vec<_>>()
            };
            let mut group = at(n, false);
            if group.len() < MIN_TURNS_AT_INDEX {
                group = at(n, true);
            }
            let ttft = LognormalFit::fit(&group.iter().filter_map(|t| t.ttft_s).collect::<Vec<_>>());
            let speed = LognormalFit::fit(&group.iter().filter_map(|t| t.tokens_per_s).collect::<Vec<_>>());
            match (ttft, speed) {
                (Some(a), Some(b)) => {
                    ttft_by_turn.push(a);
                    speed_by_turn.push(b);
                }
                // Too few measured at and after this index: the turns before stand for it.
                _ => break,
            }
        }
        let pooled = mean(&failing.iter().chain(&passing).copied().collect::<Vec<_>>())?;
        Some(TurnTime {
            input_tokens,
            input_growth_tokens,
            prefill_tokens_per_s: slope.map(|b| 1.0 / b),
            ttft_fixed,
            speed,
            decode_slowdown,
            ttft_by_turn,
            speed_by_turn,
            output_tokens: mean(&failing).unwrap_or(pooled),
            output_tokens_on_pass: (passing.len() >= 2).then(|| mean(&passing)).flatten(),
            output_spread: LognormalFit::fit(&failing.iter().copied().filter(|n| *n > 0.0).collect::<Vec<_>>()),
            output_spread_on_pass: (passing.len() >= 2)
                .then(|| LognormalFit::fit(&passing.iter().copied().filter(|n| *n > 0.0).collect::<Vec<_>>()))
                .flatten(),
        })
    }

    /// Prompt tokens of turn `n`.
    pub fn input_of_turn(&self, n: u32) -> f64 {
        self.input_tokens + self.input_growth_tokens * f64::from(n.saturating_sub(1))
    }

    /// Mean time to first token on turn `n`, s, from the profile by turn
    /// (the lines where it has none).
    pub fn ttft_of_turn(&self, n: u32) -> f64 {
        match at_turn(&self.ttft_by_turn, n) {
            Some(f) => f.mean(),
            None => self.ttft_fixed.mean() + self.prefill_tokens_per_s.map_or(0.0, |p| self.input_of_turn(n) / p),
        }
    }

    /// Mean model time (first token and decode) of a turn `n` that fails, or that passes, s.
    pub fn model_s_of_turn(&self, n: u32, passes: bool) -> f64 {
        let out = if passes { self.output_tokens_on_pass.unwrap_or(self.output_tokens) } else { self.output_tokens };
        self.ttft_of_turn(n) + out * self.decode_s_per_token(n)
    }

    /// Mean decode time per output token on turn `n`, s.
    pub fn decode_s_per_token(&self, n: u32) -> f64 {
        match at_turn(&self.speed_by_turn, n) {
            Some(f) => f.mean_reciprocal(),
            None => self.speed.mean_reciprocal() + self.decode_slowdown.map_or(0.0, |b| b * self.input_of_turn(n)),
        }
    }
}

/// Recorded turns at one index below which it pools with the later ones.
pub const MIN_TURNS_AT_INDEX: usize = 8;

/// Turn `n`'s entry of a per-turn list, the last one past its end.
fn at_turn<T>(list: &[T], n: u32) -> Option<&T> {
    list.get((n.max(1) as usize - 1).min(list.len().saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use loopvel_record::Turn;

    fn turn(n: u32, input: u64, ttft: f64, out: u64, grade: Grade) -> Turn {
        Turn {
            turn: n,
            input_tokens: Some(input),
            ttft_s: Some(ttft),
            output_tokens: Some(out),
            tokens_per_s: Some(20.0 + f64::from(n)),
            grade,
            ..Turn::default()
        }
    }

    #[test]
    fn prompts_that_grow_make_later_first_tokens_slower() {
        // input = 500 + 1000 (n − 1); ttft = 2 + input / 250 exactly.
        let runs: Vec<Run> = (0..4)
            .map(|r| Run {
                task: format!("t{r}"),
                turns: (1..=4)
                    .map(|n| {
                        let input = 500 + 1000 * u64::from(n - 1);
                        let g = if n == 4 && r % 2 == 0 { Grade::Pass } else { Grade::Fail };
                        turn(n, input, 2.0 + input as f64 / 250.0, if g == Grade::Pass { 100 } else { 300 }, g)
                    })
                    .collect(),
                ..Run::default()
            })
            .collect();
        let f = TurnTime::fit(&runs).unwrap();
        assert!((f.input_tokens - 500.0).abs() < 1e-6 && (f.input_growth_tokens - 1000.0).abs() < 1e-6, "{f:?}");
        assert!((f.prefill_tokens_per_s.unwrap() - 250.0).abs() < 1e-6, "{f:?}");
        assert!((f.ttft_fixed.median() - 2.0).abs() < 1e-6);
        assert!((f.ttft_of_turn(4) - (2.0 + 3500.0 / 250.0)).abs() < 1e-6);
        assert_eq!((f.output_tokens, f.output_tokens_on_pass), (300.0, Some(100.0)));
        assert!(f.model_s_of_turn(4, true) < f.model_s_of_turn(4, false));
    }

    #[test]
    fn first_tokens_that_do_not_grow_get_no_prefill_term() {
        let runs = vec![Run {
            turns: vec![turn(1, 500, 3.0, 200, Grade::Fail), turn(2, 1500, 2.0, 200, Grade::Fail)],
            ..Run::default()
        }];
        let f = TurnTime::fit(&runs).unwrap();
        assert_eq!(f.prefill_tokens_per_s, None);
        assert_eq!(f.output_tokens_on_pass, None);
    }
}
