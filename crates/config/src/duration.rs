//! Durations as written in config files: an integer and a unit (`500ms`, `30s`, `2m`, `1h`).

use std::time::Duration;

/// Parses `"<integer><unit>"` with unit `ms`, `s`, `m` or `h`.
///
/// # Errors
/// A message saying what was expected, quoting the input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration `{text}`: expected an integer and a unit (ms, s, m, h), e.g. `30s`"
        )
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    /// A bare number is ambiguous (seconds? millis?), so it is refused rather than guessed.
    #[test]
    fn rejects_missing_or_unknown_units_and_garbage() {
        for bad in ["30", "s", "", "1.5s", "-1s", "10 sec", "3d", "1h30m"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("9999999999999999h").is_err());
    }
}
