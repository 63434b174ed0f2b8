//! Wall-clock time as the server needs it: epoch seconds for rate limits and the audit
//! trail, the ISO 8601 form it writes and reads, and the one form of duration it reads
//! (`90s`, `30m`, `12h`, `7d`), without a date crate. (HTTP dates come from `httpdate`.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A UTC calendar time, to the second.
struct Civil {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

fn civil(epoch_seconds: u64) -> Civil {
    let (days, rem) = (epoch_seconds / 86_400, epoch_seconds % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + u64::from(month <= 2),
        month,
        day: doy - (153 * mp + 2) / 5 + 1,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
    }
}

/// `2026-11-28T13:40:00Z` for epoch seconds.
pub fn iso8601(epoch_seconds: f64) -> String {
    let c = civil(epoch_seconds.max(0.0) as u64);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Epoch seconds of `2026-11-28T13:40:00` followed by `Z` or `+00:00` (a user's
/// `date_joined`); `None` for anything else.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let numbers =
        |s: &str, sep: char| -> Option<Vec<i64>> { s.split(sep).map(|n| n.parse().ok()).collect() };
    let (d, t) = (numbers(date, '-')?, numbers(time, ':')?);
    let [y, m, d] = <[i64; 3]>::try_from(d).ok()?;
    let [hh, mm, ss] = <[i64; 3]>::try_from(t).ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// A whole number and a unit: `s`, `m`, `h` or `d` (`90s`, `30m`, `12h`, `7d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let complaint =
        || format!("invalid duration {text:?}: expected a number and s, m, h or d (7d)");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(complaint());
    }
    let number: u64 = number.parse().map_err(|_| complaint())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(complaint()),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_round_trips() {
        for t in [0, 951_782_400, 1_795_000_000] {
            assert_eq!(parse_iso8601(&iso8601(t as f64)), Some(t));
        }
        assert_eq!(
            parse_iso8601("2026-11-28T13:40:00+00:00"),
            Some(1_795_873_200)
        );
        assert_eq!(parse_iso8601("2026-13-28T13:40:00Z"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "d", "7", "7w", "-1s", "+1s", "1.5h", " 1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_878_000.9), "2026-11-28T15:00:00Z");
    }
}
