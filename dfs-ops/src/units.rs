//! The units every daemon's flags and configuration files accept: byte sizes (`512M`,
//! `10G`) and durations (`500ms`, `30s`, `1.5m`, `1h`). One parser for all of them, so a
//! value that works in `coord.toml` works the same in `node.toml`.

use std::time::Duration;

/// Splits `"12.5ms"` into `("12.5", "ms")`; blanks between the two are allowed.
fn split_number(t: &str) -> (&str, &str) {
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    (num, unit.trim_start())
}

/// Parses a byte count: plain digits, or digits followed by K, M, G or T (powers of 1024,
/// either case, optionally followed by `B` or `iB`): `4096`, `512M`, `10G`, `1TiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, unit) = split_number(s.trim());
    if num.is_empty() || num.contains('.') {
        return Err(format!("{s:?} is not a size (try 4096, 512M or 10G)"));
    }
    let n: u64 = num.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a duration: a number (fractions allowed) followed by `ms`, `s`, `m`, `h` or `d`
/// (`500ms`, `30s`, `1.5m`, `1h`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = split_number(s.trim());
    if num.is_empty() {
        return Err(format!("{s:?} is not a duration (try 30s, 10m or 1h)"));
    }
    let v: f64 = num.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let per = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(format!("{s:?}: unknown unit (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(v * per).map_err(|_| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("4096", 4096),
            ("0", 0),
            ("512M", 512 << 20),
            ("64k", 64 << 10),
            ("10G", 10 << 30),
            ("10g", 10 << 30),
            ("2GiB", 2 << 30),
            ("1TiB", 1 << 40),
            ("2KB", 2048),
            ("7B", 7),
            (" 10 G ", 10 << 30),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s:?}");
        }
        for bad in [
            "",
            "G",
            "10X",
            "1.5G",
            "-1",
            "ib",
            "10iB",
            "99999999999T",
            "2KBB",
            "5é",
            "x",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("30s", Duration::from_secs(30)),
            ("30", Duration::from_secs(30)),
            ("0", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("250ms", Duration::from_millis(250)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
            ("2d", Duration::from_secs(2 * 86400)),
            ("1.5", Duration::from_millis(1500)),
            ("1.5h", Duration::from_secs(5400)),
            ("10 s", Duration::from_secs(10)),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s:?}");
        }
        for bad in [
            "",
            "s",
            "-1s",
            "1H",
            "soon",
            "1.2.3s",
            "5 minutes",
            "1e400s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
