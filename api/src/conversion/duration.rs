//! Go `time.Duration` strings as v1beta1 writes them (`"10m"`, `"1h30m"`, `"90s"`, `"1.5h"`)
//! <-> the whole seconds v1beta2 keeps (upstream truncates towards zero).

/// Whole seconds of a Go duration string, or why it is not one.
pub fn parse_seconds(s: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("invalid duration {s:?}: {why}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad("expected a number"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| bad("malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad("unknown unit (use ns, us, ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        nanos += n * scale;
    }
    let secs = (nanos / 1e9).trunc();
    if secs > i64::MAX as f64 {
        return Err(bad("too long"));
    }
    Ok(if neg { -(secs as i64) } else { secs as i64 })
}

/// Go's `Duration.String()` of whole seconds: `0s`, `45s`, `10m0s`, `1h0m0s`.
pub fn format_seconds(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (s, want) in [
            ("0", 0),
            ("0s", 0),
            ("10m", 600),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("90s", 90),
            ("1500ms", 1),
            ("-20s", -20),
            ("2h0m0s", 7200),
        ] {
            assert_eq!(parse_seconds(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in ["", "10", "ten", "5d", "1h-3m", "-"] {
            let e = parse_seconds(s).expect_err(s);
            assert!(e.contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn formats_as_go() {
        for (secs, want) in [
            (0, "0s"),
            (45, "45s"),
            (600, "10m0s"),
            (3600, "1h0m0s"),
            (5430, "1h30m30s"),
            (-90, "-1m30s"),
        ] {
            assert_eq!(format_seconds(secs), want);
            assert_eq!(parse_seconds(want), Ok(secs));
        }
    }
}
