//! Leaf module for the units people write in configuration and rule files: durations ("5m"),
//! sizes ("4GiB"), cron expressions ("*/15 * * * *") and positions in a text (line and column
//! for error messages).
//!
//! It depends on nothing else in the crate, so `config`, `rules`, `jobs` and `mail` can all use
//! it without importing each other. Every parse is checked: a number that would overflow is
//! refused, never wrapped.

/// Parses a 5-field crontab expression ("*/15 * * * *").
pub fn parse_cron(expr: &str) -> anyhow::Result<croner::Cron> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| anyhow::anyhow!("\"{expr}\": {e} (expected 5 fields: minute hour day month weekday)"))
}

/// Parses "90s", "5m", "1h", "7d" (a bare number is seconds). Zero, overflow and anything else
/// are `None`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1),
        Some((i, _)) => (
            &s[..i],
            match &s[i..] {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return None,
            },
        ),
    };
    num.parse::<u64>().ok().filter(|n| *n > 0).and_then(|n| n.checked_mul(mult))
}

/// A size for people: "812 B", "3.4 KiB", "1.2 GiB".
pub fn format_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    match u {
        0 => format!("{b} B"),
        _ => format!("{v:.1} {}", UNITS[u]),
    }
}

/// Parses "4GiB", "500MB", "1024" (bytes); overflow is `None`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let i = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..i].parse().ok()?;
    let mult: u64 = match s[i..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("120"), Some(120));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("5 m"), None);
        // 2^64 / 86400 days would wrap: refused.
        assert_eq!(parse_duration("213503982334602d"), None);
        assert_eq!(parse_duration("99999999999999999999999s"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size("500 MB"), Some(500_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("4 parsecs"), None);
        assert_eq!(parse_size("20000000TiB"), None);
    }

    #[test]
    fn positions_are_one_based_and_safe_inside_characters() {
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("ü", 1), (1, 1));
        assert_eq!(line_col("x", 99), (1, 2));
    }
}
