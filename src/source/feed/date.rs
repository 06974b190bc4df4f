//! Feed dates, read as feed-rs reads them, with three corrections, each for dates
//! seen in parish and podcast feeds:
//!
//! - a bare date (`2026-06-07`) is midnight in the parish's time zone; feed-rs says UTC
//!   midnight, which west of Greenwich is the evening before;
//! - ISO 8601 local times without an offset (`2026-06-07T10:00:00`), which feed-rs drops,
//!   are read in the parish's time zone as `data.json`'s are;
//! - RFC 822 dates that chrono's strict parser refuses: a zone name it does not know
//!   (`BST`, `CEST`), no zone at all (a local time), no time (midnight), a long month
//!   name, a day like `7th`, or month-first order (`June 7, 2026`).
//!
//! Two-digit years and missing or wrong weekdays feed-rs already copes with; this reader
//! copes too when it meets them alongside the above.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::source::schedule::parse_datetime;

/// The instant a feed's date names, or `None` if no reading fits.
pub(crate) fn parse(text: &str, timezone: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return local(date.and_time(NaiveTime::MIN), timezone);
    }
    feed_rs_lenient(text)
        .or_else(|| {
            parse_datetime(text, timezone)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
        .or_else(|| rfc822_loosely(text, timezone))
}

/// feed-rs's own reader (RFC 3339 and RFC 2822 with its fixes). Replacing it with ours
/// hides it, and it is private to the crate: a one-item JSON Feed through a default
/// parser reaches it (microseconds, once per date), with serde_json doing the escaping.
pub(crate) fn feed_rs_lenient(text: &str) -> Option<DateTime<Utc>> {
    let probe = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "",
        "items": [{ "id": "1", "date_published": text }],
    });
    let feed = feed_rs::parser::parse(probe.to_string().as_bytes()).ok()?;
    feed.entries.first()?.published
}

/// A local time in `timezone`; in the autumn hour that happens twice, the first (a feed
/// has nobody to ask, and a service an hour early is better than none).
fn local(naive: NaiveDateTime, timezone: Tz) -> Option<DateTime<Utc>> {
    timezone
        .from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

/// `[weekday,] day month year [time [zone]]`, or month before day, with the tolerances
/// in the module docs.
fn rfc822_loosely(text: &str, timezone: Tz) -> Option<DateTime<Utc>> {
    let cleaned = text.replace(',', " ");
    let mut tokens: Vec<&str> = cleaned
        .split_whitespace()
        // A trailing comment like `(BST)` repeats the zone.
        .filter(|t| !(t.starts_with('(') && t.ends_with(')')))
        .collect();
    if tokens.first().is_some_and(|t| is_weekday(t)) {
        tokens.remove(0);
    }
    let (day, month, year, rest) = match tokens.as_slice() {
        [d, m, y, rest @ ..] if month_number(m).is_some() => (*d, *m, *y, rest),
        [m, d, y, rest @ ..] if month_number(m).is_some() => (*d, *m, *y, rest),
        _ => return None,
    };
    let day: u32 = day
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .ok()?;
    let year = two_digit_year(year.parse().ok()?, year.len());
    let date = NaiveDate::from_ymd_opt(year, month_number(month)?, day)?;
    let (time, zone) = match rest {
        [] => (NaiveTime::MIN, None),
        [time] => (time_of_day(time)?, None),
        [time, zone] => (time_of_day(time)?, Some(*zone)),
        _ => return None,
    };
    let naive = date.and_time(time);
    match zone {
        None => local(naive, timezone),
        Some(zone) => {
            let offset = zone_offset(zone)?;
            offset
                .from_local_datetime(&naive)
                .single()
                .map(|d| d.with_timezone(&Utc))
        }
    }
}

/// RFC 2822 §4.3: `49` is 2049, `50` is 1950.
fn two_digit_year(year: i32, digits: usize) -> i32 {
    match (digits, year) {
        (2, 0..50) => 2000 + year,
        (2, _) => 1900 + year,
        _ => year,
    }
}

fn is_weekday(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        .iter()
        .any(|day| lower.starts_with(day))
        && lower.chars().all(|c| c.is_ascii_alphabetic())
}

/// `Jun`, `June`, `JUNE` (and `Sept`) → 6; not `Junk`.
fn month_number(token: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = token.trim_end_matches('.').to_ascii_lowercase();
    if lower.len() < 3 {
        return None;
    }
    let index = MONTHS
        .iter()
        .position(|m| m.starts_with(&lower) || (lower == "sept" && *m == "september"))?;
    u32::try_from(index + 1).ok()
}

/// `10:00`, `10:00:00`, `9:30`.
fn time_of_day(token: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(token, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(token, "%H:%M"))
        .ok()
}

/// A numeric offset, or a zone abbreviation of the countries whose feeds we meet. Names
/// that mean two places (`IST`: Ireland or India) are left out: refusing the date beats
/// guessing an instant hours away.
fn zone_offset(zone: &str) -> Option<FixedOffset> {
    const HOUR: i32 = 3600;
    const NAMES: &[(&str, i32)] = &[
        ("Z", 0),
        ("UT", 0),
        ("UTC", 0),
        ("GMT", 0),
        ("WET", 0),
        ("BST", HOUR),
        ("WEST", HOUR),
        ("CET", HOUR),
        ("CEST", 2 * HOUR),
        ("EET", 2 * HOUR),
        ("EEST", 3 * HOUR),
        ("EST", -5 * HOUR),
        ("EDT", -4 * HOUR),
        ("CST", -6 * HOUR),
        ("CDT", -5 * HOUR),
        ("MST", -7 * HOUR),
        ("MDT", -6 * HOUR),
        ("PST", -8 * HOUR),
        ("PDT", -7 * HOUR),
        ("AEST", 10 * HOUR),
        ("AEDT", 11 * HOUR),
        ("NZST", 12 * HOUR),
        ("NZDT", 13 * HOUR),
    ];
    if let Some(&(_, seconds)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(zone)) {
        return FixedOffset::east_opt(seconds);
    }
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let digits = digits.replace(':', "");
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    FixedOffset::east_opt(sign * (hours * HOUR + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONDON: Tz = chrono_tz::Europe::London;

    fn utc(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    /// What feed-rs alone makes of odd dates, and what we make of them (London, summer).
    #[test]
    fn odd_dates_feed_rs_and_ours() {
        let nine = utc("2026-06-07T09:00:00Z");
        let ten = utc("2026-06-07T10:00:00Z");
        let local_midnight = utc("2026-06-06T23:00:00Z");
        // (text, feed-rs alone, ours)
        let cases = [
            ("Sun, 07 Jun 2026 10:00:00 GMT", ten, ten),
            ("Sun, 7 Jun 2026 10:00:00 +0100", nine, nine),
            // chrono knows only GMT, UT and US zones: feed-rs drops the date.
            ("Sun, 7 Jun 2026 10:00:00 BST", None, nine),
            (
                "Sun, 7 Jun 2026 10:00:00 CEST",
                None,
                utc("2026-06-07T08:00:00Z"),
            ),
            (
                "Sun, 7 Jun 2026 10:00:00 EDT",
                utc("2026-06-07T14:00:00Z"),
                utc("2026-06-07T14:00:00Z"),
            ),
            // Weekday missing or wrong, two-digit years, single-digit hours: feed-rs copes.
            ("7 Jun 2026 10:00:00 +0100", nine, nine),
            ("Sat, 7 Jun 2026 10:00:00 GMT", ten, ten),
            ("Sun, 07 Jun 26 10:00:00 GMT", ten, ten),
            ("07 Jun 26 10:00 GMT", ten, ten),
            ("Sun, 7 Jun 2026 9:00:00 GMT", nine, nine),
            ("Sunday, 7 June 2026 10:00:00 +0100", nine, nine),
            // RFC 2822's military zones, which chrono takes as -0000 as the RFC suggests.
            ("Sun, 7 Jun 2026 10:00:00 A", ten, ten),
            // No zone: feed-rs drops it; we read the parish's local time.
            ("Sun, 7 Jun 2026 10:00:00", None, nine),
            ("Sun, 7 Jun 2026 10:00:00 (BST)", None, nine),
            // A bare date: feed-rs says UTC midnight; we say local midnight.
            ("2026-06-07", utc("2026-06-07T00:00:00Z"), local_midnight),
            ("2026-06-07T10:00:00", None, nine),
            ("2026-06-07 10:00:00", None, nine),
            ("2026-06-07T10:00:00+0100", nine, nine),
            ("7 June 2026", None, local_midnight),
            ("7th June 2026", None, local_midnight),
            ("June 7, 2026", None, local_midnight),
            ("Sunday morning", None, None),
            ("Sun, 31 Jun 2026 10:00:00 BST", None, None),
            ("Sun, 7 Jun 2026 10:00:00 IST", None, None),
            ("", None, None),
        ];
        for (text, feed_rs, ours) in cases {
            assert_eq!(feed_rs_lenient(text), feed_rs, "feed-rs: {text:?}");
            assert_eq!(parse(text, LONDON), ours, "ours: {text:?}");
        }
    }

    #[test]
    fn local_times_follow_the_parish_zone_and_its_clock_changes() {
        let new_york = chrono_tz::America::New_York;
        assert_eq!(
            parse("Sun, 7 Jun 2026 10:00:00", new_york),
            utc("2026-06-07T14:00:00Z")
        );
        assert_eq!(parse("2026-01-04", LONDON), utc("2026-01-04T00:00:00Z"));
        // Twice in the autumn: the first; never in the spring: unreadable.
        assert_eq!(
            parse("25 Oct 2026 01:30", LONDON),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(parse("29 Mar 2026 01:30", LONDON), None);
    }

    #[test]
    fn two_digit_years_split_at_fifty() {
        assert_eq!(two_digit_year(26, 2), 2026);
        assert_eq!(two_digit_year(49, 2), 2049);
        assert_eq!(two_digit_year(99, 2), 1999);
        assert_eq!(two_digit_year(2026, 4), 2026);
        // One we read ourselves (a BST zone), with a two-digit year.
        assert_eq!(
            parse("7 Jun 26 10:00 BST", LONDON),
            utc("2026-06-07T09:00:00Z")
        );
    }
}
