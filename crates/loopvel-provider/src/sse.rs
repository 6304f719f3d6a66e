//! Server-sent events: `event:` and `data:` lines, a blank line ends an event.

use std::io::BufRead;

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` name, if any.
    pub event: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Events as they arrive; an I/O error ends the stream with that error.
pub fn events<R: BufRead>(reader: R) -> impl Iterator<Item = std::io::Result<Event>> {
    let mut lines = reader.lines();
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut ev = Event::default();
        let mut has_data = false;
        loop {
            match lines.next() {
                None => {
                    done = true;
                    return has_data.then_some(Ok(ev));
                }
                Some(Err(e)) => {
                    done = true;
                    return Some(Err(e));
                }
                Some(Ok(line)) => {
                    let line = line.trim_end_matches('\r');
                    if line.is_empty() {
                        if has_data {
                            return Some(Ok(ev));
                        }
                        continue;
                    }
                    if let Some(d) = line.strip_prefix("data:") {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(d.strip_prefix(' ').unwrap_or(d));
                        has_data = true;
                    } else if let Some(e) = line.strip_prefix("event:") {
                        ev.event = e.trim().to_string();
                    }
                    // Comments (":…") and unknown fields are ignored.
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines() {
        let text = ": comment\nevent: a\ndata: {\"x\":1}\n\ndata: one\ndata: two\n\ndata: [DONE]\n";
        let evs: Vec<Event> = events(text.as_bytes()).map(Result::unwrap).collect();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0], Event { event: "a".into(), data: "{\"x\":1}".into() });
        assert_eq!(evs[1].data, "one\ntwo");
        assert_eq!(evs[2].data, "[DONE]");
    }
}
