/// Parse a duration such as "1h30m" into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let _ = text;
    Err("not implemented".to_string())
}
