//! Units used on the command line and in the config: durations and sizes.
//!
//! Durations: `250ms`, `10s`, `1m30s`, `2h`, `1.5s`; a bare `0` means zero. Sizes: `4096`,
//! `512KiB`, `300MiB`, `4GiB`, and the shorthands `K`/`M`/`G` (binary multiples, as in
//! ulimit and most container tooling). Pure functions; errors are sentences.

use std::time::Duration;

/// Parses a duration such as `250ms`, `10s`, `1m30s` or `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration (write it like 250ms, 10s, 1m30s or 2h)");
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    // Deadlines are `now + duration`: a bound keeps that far from overflowing (a panic in
    // PID 1) whatever is written.
    if total > MAX_DURATION.as_secs_f64() {
        return Err(format!("`{text}` is too long (at most 365d)"));
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The longest duration ginit accepts anywhere.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

/// Formats a duration the way it would be written in a config: `1m30s`, `250ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if milli > 0 && h == 0 && m == 0 && s == 0 {
        out += &format!("{milli}ms");
    } else if milli > 0 {
        out += &format!("{s}.{milli:03}s");
    } else if s > 0 {
        out += &format!("{s}s");
    }
    out
}

/// Parses a size such as `4096`, `512KiB`, `300MiB`, `4GiB`, `64K` or `1.5G`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a size (write it like 4096, 512KiB, 300MiB or 4GiB)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" | "KB" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        "T" | "TiB" | "TB" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        assert!(parse_duration("366d").unwrap_err().contains("too long"));
        assert!(parse_duration("10000000000000000000s").is_err());
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        for bad in ["", "10", "s", "10x", "1m30", "-1s", "1..2s", "ms10"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_format_round_trip() {
        for text in ["250ms", "10s", "1m30s", "2h", "0s", "1.500s", "1h1m"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        for bad in ["", "MiB", "4 parsecs", "-1", "1e3"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
