/// Parse a duration such as "1h30m" into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_rank = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, scale) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            other => return Err(format!("unknown unit {other:?}")),
        };
        if rank <= last_rank {
            return Err(format!("unit {c:?} out of order or repeated"));
        }
        if number.is_empty() {
            return Err(format!("unit {c:?} without a number"));
        }
        let n: u64 = number.parse().map_err(|_| "number too large".to_string())?;
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration too large".to_string())?;
        number.clear();
        last_rank = rank;
    }
    if !number.is_empty() {
        return Err("a number without a unit".into());
    }
    Ok(total)
}
