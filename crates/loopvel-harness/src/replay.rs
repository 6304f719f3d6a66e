//! Replies from a recording instead of a live model.
//!
//! - [`RunReplay`] answers one recorded run's turns in order (`loopvel replay`):
//!   the request the loop builds now is compared with the recorded one, and the
//!   first difference is kept as the run's divergence (a flaky test changes the
//!   feedback, so the request differs).
//! - [`ReplayIndex`] answers any run from recorded calls keyed by task, model and
//!   request content (`loopvel run --model replay:DB#MODEL`): a request never
//!   seen is an error, never a live call.
//!
//! What-ifs change only the timing of a recorded reply, never its text.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

use loopvel_provider::{Completion, Control, Message};

use crate::run::{CallFailure, Responder};

/// The recorded cost of the reply each thread got last: a best-of-k turn asks
/// for its replies from several threads at once, and each asks its own cost
/// right after its reply.
#[derive(Debug, Default)]
struct LastCost(Mutex<HashMap<ThreadId, (f64, f64)>>);

impl LastCost {
    fn set(&self, rec: &Recording) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(std::thread::current().id(), (rec.usd, rec.usd_uncached));
        }
    }
    fn get(&self) -> (f64, f64) {
        self.0.lock().ok().and_then(|m| m.get(&std::thread::current().id()).copied()).unwrap_or((0.0, 0.0))
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The messages that were sent (JSON, as recorded).
    pub request_json: String,
    /// The reply and its timing.
    pub completion: Completion,
    /// What it cost, USD.
    pub usd: f64,
    /// What it would have cost with no prompt cache, USD.
    pub usd_uncached: f64,
}

/// Timing what-ifs for one model's replies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Generation after the first token runs this many times faster.
    pub speed_factor: f64,
    /// Time to first token becomes this, s.
    pub ttft_s: Option<f64>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { speed_factor: 1.0, ttft_s: None }
    }
}

impl Timing {
    /// The completion as it would have been timed: TTFT replaced, generation sped up.
    pub fn apply(&self, c: &Completion) -> Completion {
        let mut out = c.clone();
        let ttft = c.ttft_s.unwrap_or(0.0);
        let generation = (c.ttlt_s - ttft).max(0.0) / self.speed_factor;
        let new_ttft = self.ttft_s.unwrap_or(ttft);
        if c.ttft_s.is_some() || self.ttft_s.is_some() {
            out.ttft_s = Some(new_ttft);
        }
        out.ttlt_s = new_ttft + generation;
        out.tokens_per_s = c.tokens_per_s.map(|s| s * self.speed_factor);
        out
    }
}

/// A request with the parts that change from run to run masked: the
/// workspace's temporary directory name, durations printed by test
/// runners (`in 0.14s`, `0.003s`) and object addresses (`at 0x7ff75e338400`). Replays compare and look up requests in
/// this form, so a re-run of the same tests on the same code matches.
/// Hand-rolled: two fixed patterns do not justify a regex dependency.
pub fn normalize_request(request: &str) -> String {
    const WS: &str = "loopvel-ws-";
    let mut out = String::with_capacity(request.len());
    let chars: Vec<char> = request.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // The workspace directory: `loopvel-ws-`, the process id, `-` and a random suffix.
        if chars[i..].starts_with(&WS.chars().collect::<Vec<_>>()) {
            out.push_str(WS);
            out.push('*');
            i += WS.len();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '-') {
                i += 1;
            }
            continue;
        }
        // A memory address in a Python repr: `0x7ff75e338400`.
        if chars[i] == '0' && chars.get(i + 1) == Some(&'x') && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let mut j = i + 2;
            while j < chars.len() && chars[j].is_ascii_hexdigit() {
                j += 1;
            }
            if j - i >= 8 {
                out.push_str("0x#");
                i = j;
                continue;
            }
        }
        // A duration: digits[.digits] then `s` not followed by a letter or digit.
        let starts_number = chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric());
        if starts_number {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                j += 1;
            }
            let unit_s = j < chars.len() && chars[j] == 's';
            let ends = j + 1 >= chars.len() || !chars[j + 1].is_ascii_alphanumeric();
            if unit_s && ends {
                out.push_str("#s");
                i = j + 1;
                continue;
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The message a replay gives when the loop asks for more turns than were recorded.
pub const PAST_THE_RECORDING: &str = "the recording ends here";

/// Answers one recorded run's turns in order.
/// The recorded replies of best-of-k turns: turn → candidate number → reply.
pub type Candidates = HashMap<u32, std::collections::BTreeMap<u32, Recording>>;

pub struct RunReplay {
    calls: Vec<Recording>,
    candidates: Candidates,
    timing: Timing,
    divergence: Mutex<Option<String>>,
    last_usd: LastCost,
}

impl RunReplay {
    /// The replay of `calls` (turn order) with `timing` what-ifs.
    pub fn new(calls: Vec<Recording>, timing: Timing) -> Self {
        RunReplay {
            calls,
            candidates: HashMap::new(),
            timing,
            divergence: Mutex::new(None),
            last_usd: LastCost::default(),
        }
    }

    /// With the replies of the turns that asked for several: each candidate
    /// is answered with its own recording, and one whose request failed fails again.
    pub fn with_candidates(mut self, candidates: Candidates) -> Self {
        self.candidates = candidates;
        self
    }

    fn note_divergence(&self, turn: u32, messages: &[Message], recorded: &str) {
        let now = serde_json::to_string(messages).unwrap_or_default();
        if normalize_request(&now) != normalize_request(recorded) {
            if let Ok(mut d) = self.divergence.lock() {
                d.get_or_insert_with(|| {
                    format!("turn {turn}: the request differs from the recorded one (different test output or files)")
                });
            }
        }
    }

    /// The first turn whose request differed from the recorded one, if any.
    pub fn divergence(&self) -> Option<String> {
        self.divergence.lock().map_or(None, |d| d.clone())
    }
}

impl Responder for RunReplay {
    fn respond(&self, turn: u32, messages: &[Message]) -> Result<Completion, String> {
        let Some(rec) = self.calls.get(turn as usize - 1) else {
            return Err(format!(
                "{PAST_THE_RECORDING}: turn {turn} was never recorded ({} recorded)",
                self.calls.len()
            ));
        };
        self.note_divergence(turn, messages, &rec.request_json);
        self.last_usd.set(rec);
        Ok(self.timing.apply(&rec.completion))
    }
    fn respond_candidate(
        &self,
        turn: u32,
        candidate: u32,
        messages: &[Message],
        control: &Control,
    ) -> Result<Completion, CallFailure> {
        let Some(recorded) = self.candidates.get(&turn) else {
            // Recorded with one reply a turn: the first candidate is that reply, the others were never asked.
            if candidate == 0 {
                return self.respond_within(turn, messages, control);
            }
            return Err(CallFailure::from(format!(
                "{PAST_THE_RECORDING}: turn {turn} recorded one reply, not several"
            )));
        };
        let Some(rec) = recorded.get(&candidate) else {
            return Err(CallFailure::from(format!(
                "turn {turn}'s reply #{} got no reply when it was recorded (see its failed calls)",
                candidate + 1
            )));
        };
        if let Some(call) = self.calls.get(turn as usize - 1) {
            self.note_divergence(turn, messages, &call.request_json);
        }
        self.last_usd.set(rec);
        Ok(self.timing.apply(&rec.completion))
    }
    /// The recorded cost of the reply just given (on this thread).
    fn usd(&self, _c: &Completion) -> f64 {
        self.last_usd.get().0
    }
    /// The recorded cost without the cache of the reply just given (on this thread).
    fn usd_uncached(&self, _c: &Completion) -> f64 {
        self.last_usd.get().1
    }
}

type Key = (String, String, String);

/// Recorded calls keyed by task, model and request content. Replicates ask
/// the same first request; each key's recordings are handed out in recorded
/// order, so N recorded runs answer N replayed ones.
#[derive(Debug, Default)]
pub struct ReplayIndex {
    calls: HashMap<Key, Vec<Recording>>,
    used: Mutex<HashMap<Key, usize>>,
    source: String,
}

impl ReplayIndex {
    /// An empty index naming its source (for messages).
    pub fn new(source: &str) -> Self {
        ReplayIndex { calls: HashMap::new(), used: Mutex::new(HashMap::new()), source: source.to_string() }
    }

    /// Adds a recorded call of `model` on `task`.
    pub fn insert(&mut self, task: &str, model: &str, rec: Recording) {
        self.calls
            .entry((task.to_string(), model.to_string(), normalize_request(&rec.request_json)))
            .or_default()
            .push(rec);
    }

    /// Calls held.
    pub fn len(&self) -> usize {
        self.calls.values().map(Vec::len).sum()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// A responder for one task and model.
    pub fn for_run<'a>(&'a self, task: &'a str, model: &'a str) -> IndexedReplay<'a> {
        IndexedReplay { index: self, task, model, last_usd: LastCost::default(), turn_base: Mutex::new(HashMap::new()) }
    }
}

/// [`ReplayIndex`] answering for one task and model.
pub struct IndexedReplay<'a> {
    index: &'a ReplayIndex,
    task: &'a str,
    model: &'a str,
    last_usd: LastCost,
    /// Per best-of-k turn: how many recordings of its request were used before
    /// it, so candidate i takes the i-th after them whichever thread asks first.
    turn_base: Mutex<HashMap<u32, usize>>,
}

impl IndexedReplay<'_> {
    /// The recording for this request: the next unused one, or with
    /// `candidate`, the candidate-th after those used before its turn.
    fn answer(&self, turn: u32, candidate: Option<u32>, messages: &[Message]) -> Result<Completion, String> {
        let request = normalize_request(&serde_json::to_string(messages).unwrap_or_default());
        let key = (self.task.to_string(), self.model.to_string(), request);
        let Some(recs) = self.index.calls.get(&key) else {
            return Err(format!(
                "replay miss: {} has no recorded call of {} on {} with this request (turn {turn}); a replay never calls a live model",
                self.index.source, self.model, self.task
            ));
        };
        let n = {
            let mut used = self.index.used.lock().map_err(|_| "replay index poisoned".to_string())?;
            let n = used.entry(key).or_insert(0);
            let mine = match candidate {
                None => *n,
                Some(i) => {
                    let mut bases = self.turn_base.lock().map_err(|_| "replay index poisoned".to_string())?;
                    *bases.entry(turn).or_insert(*n) + i as usize
                }
            };
            *n += 1;
            mine
        };
        let Some(rec) = recs.get(n) else {
            return Err(format!(
                "replay miss: all {} recorded replies of {} on {} to this request are used (turn {turn}); record more runs",
                recs.len(),
                self.model,
                self.task
            ));
        };
        self.last_usd.set(rec);
        Ok(rec.completion.clone())
    }
}

impl Responder for IndexedReplay<'_> {
    fn respond(&self, turn: u32, messages: &[Message]) -> Result<Completion, String> {
        self.answer(turn, None, messages)
    }
    fn respond_candidate(
        &self,
        turn: u32,
        candidate: u32,
        messages: &[Message],
        _control: &Control,
    ) -> Result<Completion, CallFailure> {
        self.answer(turn, Some(candidate), messages).map_err(CallFailure::from)
    }
    /// The recorded cost of the reply just given (on this thread).
    fn usd(&self, _c: &Completion) -> f64 {
        self.last_usd.get().0
    }
    /// The recorded cost without the cache of the reply just given (on this thread).
    fn usd_uncached(&self, _c: &Completion) -> f64 {
        self.last_usd.get().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loopvel_provider::Role;

    fn completion(ttft: f64, ttlt: f64) -> Completion {
        Completion {
            text: "x".into(),
            ttft_s: Some(ttft),
            ttlt_s: ttlt,
            output_tokens: 100,
            output_tokens_estimated: false,
            input_tokens: 10,
            input_tokens_estimated: false,
            tokens_per_s: Some(10.0),
            ..Completion::empty()
        }
    }

    #[test]
    fn what_ifs_scale_generation_and_replace_ttft() {
        let c = completion(1.0, 11.0);
        let t = Timing { speed_factor: 10.0, ttft_s: None }.apply(&c);
        assert_eq!((t.ttft_s, t.ttlt_s, t.tokens_per_s), (Some(1.0), 2.0, Some(100.0)));
        let t = Timing { speed_factor: 1.0, ttft_s: Some(0.1) }.apply(&c);
        assert!((t.ttlt_s - 10.1).abs() < 1e-12);
        assert_eq!(Timing::default().apply(&c), c);
    }

    #[test]
    fn a_run_replay_answers_in_order_notes_a_divergence_and_stops_at_the_end() {
        let msgs = vec![Message { role: Role::User, content: "hi".into() }];
        let rec = Recording {
            request_json: serde_json::to_string(&msgs).unwrap(),
            completion: completion(1.0, 2.0),
            usd: 0.5,
            usd_uncached: 0.5,
        };
        let r = RunReplay::new(vec![rec], Timing::default());
        assert!(r.respond(1, &msgs).is_ok());
        assert_eq!(r.divergence(), None);
        let other = vec![Message { role: Role::User, content: "changed".into() }];
        assert!(r.respond(1, &other).is_ok());
        assert!(r.divergence().unwrap().contains("turn 1"));
        assert!(r.respond(2, &msgs).unwrap_err().starts_with(PAST_THE_RECORDING));
    }

    #[test]
    fn volatile_parts_of_test_output_are_masked() {
        let a = "E (/tmp/loopvel-ws-SQPOb7/bitcount.py)\n1 error in 0.14s\nok pkg 0.003s";
        let b = "E (/tmp/loopvel-ws-4242-tXqwwv/bitcount.py)\n1 error in 4.37s\nok pkg 1s";
        assert_eq!(normalize_request(a), normalize_request(b));
        assert_eq!(normalize_request("1 error in 0.14s"), "1 error in #s");
        assert_eq!(
            normalize_request("<genexpr> at 0x7ff75e338400>"),
            normalize_request("<genexpr> at 0x7ff22076c400>")
        );
        assert_ne!(normalize_request("x = 0x10"), normalize_request("x = 0x11"));
        // Counts and other numbers stay: they are what the model is told.
        assert_ne!(normalize_request("3 of 12 pass"), normalize_request("4 of 12 pass"));
        assert_eq!(normalize_request("tests 3s2 x9s"), "tests 3s2 x9s");
    }

    #[test]
    fn an_index_miss_is_an_error() {
        let msgs = vec![Message { role: Role::User, content: "hi".into() }];
        let mut idx = ReplayIndex::new("old.db");
        idx.insert(
            "t",
            "m",
            Recording {
                request_json: serde_json::to_string(&msgs).unwrap(),
                completion: completion(1.0, 2.0),
                usd: 0.0,
                usd_uncached: 0.0,
            },
        );
        assert!(idx.for_run("t", "m").respond(1, &msgs).is_ok());
        let e = idx.for_run("t", "other").respond(1, &msgs).unwrap_err();
        assert!(e.contains("replay miss") && e.contains("old.db"), "{e}");
        // One recording answers one run: a second ask is a miss, not a repeat.
        let e = idx.for_run("t", "m").respond(1, &msgs).unwrap_err();
        assert!(e.contains("are used"), "{e}");
    }
}
