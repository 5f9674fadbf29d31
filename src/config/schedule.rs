//! When a scheduled program runs (SPEC 9): `schedule:` (five cron fields in UTC, or `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly`) and `every:` (a fixed interval). Pure: parsing,
//! and the next run after a given UTC time. When the machine acts on it is
//! `machine/schedule.rs`.
//!
//! The cron dialect is the one users know from Vixie cron and its descendants (cronie,
//! Debian's cron, Kubernetes CronJobs):
//! - fields `minute hour day-of-month month day-of-week`, each a list (`,`) of `*`, `N` or
//!   `N-M`, optionally with a step (`*/15`, `0-30/10`; `N/S` is N to the field's end by S);
//! - months `jan`-`dec` and days `sun`-`sat` by name too (any case); day 7 is Sunday;
//! - when both day fields are restricted (neither starts with `*`), a day matching either
//!   runs (cron's rule: `0 0 1 * mon` is the 1st and every Monday);
//! - a schedule that can never come (`0 0 31 2 *`) is refused, not left to sleep forever.
//!
//! Times are whole minutes of UTC: a container's time zone is rarely set, and a schedule
//! that means the same thing on every machine is easier to reason about.

use std::time::Duration;

/// When a scheduled program runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `schedule:` as written (shown by `check` and `status`) and as parsed.
    Cron(String, Cron),
    /// `every:`: one interval after ginit starts scheduling it, then every interval.
    Every(Duration),
}

/// Five parsed cron fields: one bit per value that matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1 to 31.
    days: u32,
    /// Bits 1 to 12.
    months: u16,
    /// Bits 0 (Sunday) to 6.
    weekdays: u8,
    /// The day-of-month field starts with `*`.
    any_day: bool,
    /// The day-of-week field starts with `*`.
    any_weekday: bool,
}

/// The shorthands: `@daily` and friends.
const MACROS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far ahead [`Cron::next_after`] looks: past any leap day (2096-02-29 to 2104-02-29 is
/// the longest gap, 8 years), so a schedule that can come at all is found.
const HORIZON_DAYS: i64 = 9 * 366;

/// One field's name, range and value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name stands for this value (`jan` is 1, `sun` is 0).
    first_named: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        first_named: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        first_named: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        first_named: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        first_named: 1,
    },
    // 7 is Sunday as well as 0 (folded when the bits are made).
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        first_named: 0,
    },
];

impl Field {
    fn value(&self, word: &str) -> Result<u32, String> {
        let lower = word.to_ascii_lowercase();
        if let Some(k) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.first_named + k as u32);
        }
        let n: u32 = word.parse().map_err(|_| {
            format!(
                "the {} field has `{word}`, which is not a number",
                self.name
            )
        })?;
        if n < self.min || n > self.max {
            return Err(format!(
                "the {} field has {n}: it must be {} to {}",
                self.name, self.min, self.max
            ));
        }
        Ok(n)
    }

    /// The bits of a whole field: a list of `*`, `N`, `N-M`, each with an optional `/STEP`.
    fn bits(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|&s| s > 0).ok_or_else(|| {
                        format!(
                            "the {} field has step `{s}`: it must be a number above 0",
                            self.name
                        )
                    })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!(
                        "the {} field has the range {a}-{b}, which runs backwards",
                        self.name
                    ));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `N/S`: from N to the end of the field.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v = v.saturating_add(step);
            }
        }
        Ok(bits)
    }
}

impl Cron {
    /// Parses five cron fields or one of the `@` shorthands.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let text = text.trim();
        let fields = if text.starts_with('@') {
            MACROS
                .iter()
                .find(|(name, _)| text.eq_ignore_ascii_case(name))
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    format!("`{text}` is not a schedule: the shorthands are @hourly, @daily, @weekly, @monthly and @yearly")
                })?
        } else {
            text
        };
        let words: Vec<&str> = fields.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = words[..] else {
            return Err(format!(
                "a schedule has five fields (minute hour day-of-month month day-of-week), `{text}` has {}",
                words.len()
            ));
        };
        let [m, h, d, mo, w] = &FIELDS;
        let mut weekdays = w.bits(weekday)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        let cron = Cron {
            minutes: m.bits(minute)?,
            hours: h.bits(hour)? as u32,
            days: d.bits(day)? as u32,
            months: mo.bits(month)? as u16,
            weekdays: (weekdays & 0x7f) as u8,
            any_day: day.starts_with('*'),
            any_weekday: weekday.starts_with('*'),
        };
        // 2000-01-01: any date a schedule can match comes within the horizon of any start.
        if cron.next_after(946_684_800).is_none() {
            return Err(format!("`{text}` never comes: no month has that day"));
        }
        Ok(cron)
    }

    /// Whether a day runs: its month, and its day of month or of week by cron's rule.
    fn day_matches(&self, month: u32, day: u32, weekday: u32) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        if self.any_day || self.any_weekday {
            by_day && by_weekday
        } else {
            by_day || by_weekday
        }
    }

    /// The first whole minute after `unix` (seconds since 1970, UTC) that matches, in seconds
    /// since 1970; `None` if none comes within nine years (only a schedule that never comes).
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        let first = unix.div_euclid(60) + 1;
        let first_day = first.div_euclid(1440);
        for day in first_day..first_day + HORIZON_DAYS {
            let (_, month, mday) = civil(day);
            // 1970-01-01 was a Thursday (4).
            let weekday = (day + 4).rem_euclid(7) as u32;
            if !self.day_matches(month, mday, weekday) {
                continue;
            }
            let from = if day == first_day {
                first.rem_euclid(1440)
            } else {
                0
            };
            for minute_of_day in from..1440 {
                let (h, m) = (minute_of_day / 60, minute_of_day % 60);
                if self.hours & (1 << h) != 0 && self.minutes & (1 << m) != 0 {
                    return Some((day * 1440 + minute_of_day) * 60);
                }
            }
        }
        None
    }
}

impl Schedule {
    /// How `status` and `check` show it: `*/5 * * * * (UTC)`, `every 10m`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron(text, _) => format!("{text} (UTC)"),
            Schedule::Every(d) => format!("every {}", super::units::format_duration(*d)),
        }
    }

    /// The next run after `unix` seconds (UTC) for a cron schedule; for `every`, `unix` plus
    /// the interval.
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        match self {
            Schedule::Cron(_, cron) => cron.next_after(unix),
            Schedule::Every(d) => unix.checked_add(d.as_secs() as i64),
        }
    }
}

/// The civil date (year, month 1-12, day 1-31) of a day counted from 1970-01-01 (Howard
/// Hinnant's algorithm, valid far beyond any date a clock gives).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A UTC time in seconds as RFC 3339 without fractions: `2026-12-01T10:05:00Z`.
pub fn utc(unix: i64) -> String {
    let (days, rem) = (unix.div_euclid(86400), unix.rem_euclid(86400));
    let (y, mo, d) = civil(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since 1970 of a UTC time written as RFC 3339 (seconds precision).
    fn at(text: &str) -> i64 {
        let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
        let (y, mo, d) = (n(0..4), n(5..7) as u32, n(8..10) as u32);
        let mut days = (y - 1970) * 365 - 400;
        while civil(days) != (y, mo, d) {
            days += 1;
        }
        days * 86400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
    }

    fn next(expr: &str, after: &str) -> String {
        utc(Cron::parse(expr).unwrap().next_after(at(after)).unwrap())
    }

    #[test]
    fn fields_steps_ranges_lists_and_names() {
        assert_eq!(
            next("*/5 * * * *", "2026-12-01T10:02:30Z"),
            "2026-12-01T10:05:00Z"
        );
        // Strictly after: a time on the minute is not its own next run.
        assert_eq!(
            next("*/5 * * * *", "2026-12-01T10:05:00Z"),
            "2026-12-01T10:10:00Z"
        );
        assert_eq!(
            next("0 * * * *", "2026-12-01T23:59:59Z"),
            "2026-12-02T00:00:00Z"
        );
        assert_eq!(
            next("30 2 * * *", "2026-12-31T03:00:00Z"),
            "2027-01-01T02:30:00Z"
        );
        assert_eq!(
            next("0-30/10 9 * * *", "2026-12-01T09:21:00Z"),
            "2026-12-01T09:30:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-12-01T09:26:00Z"),
            "2026-12-01T09:45:00Z"
        );
        assert_eq!(
            next("0 12 * jun-aug *", "2026-12-01T00:00:00Z"),
            "2027-06-01T12:00:00Z"
        );
        assert_eq!(
            next("15,45 1 * * *", "2026-12-01T01:20:00Z"),
            "2026-12-01T01:45:00Z"
        );
        // 2026-12-01 is a Tuesday: the next Sunday is the 6th, by 0, 7 or name.
        for sunday in ["0", "7", "SUN", "sun"] {
            assert_eq!(
                next(&format!("0 0 * * {sunday}"), "2026-12-01T00:00:00Z"),
                "2026-12-06T00:00:00Z"
            );
        }
        assert_eq!(
            next("0 0 * * mon-fri", "2026-12-04T12:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 1st, or any Monday: after Tuesday 2026-12-01, Monday the 7th comes first.
        assert_eq!(
            next("0 0 1 * mon", "2026-12-01T00:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
        // With `*` in one of them, both must hold (so only the day of month counts).
        assert_eq!(
            next("0 0 1 * *", "2026-12-01T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 */1 * mon", "2026-12-01T00:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
    }

    #[test]
    fn shorthands_and_leap_days() {
        assert_eq!(
            next("@hourly", "2026-12-01T10:00:00Z"),
            "2026-12-01T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2026-12-01T10:00:00Z"),
            "2026-12-02T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2026-12-01T10:00:00Z"),
            "2026-12-06T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2026-12-01T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@YEARLY", "2026-12-01T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-12-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        // 2100 is no leap year: the longest wait there is.
        assert_eq!(
            next("0 0 29 2 *", "2096-03-01T00:00:00Z"),
            "2104-02-29T00:00:00Z"
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let err = |s: &str| Cron::parse(s).unwrap_err();
        assert!(err("* * * *").contains("five fields"), "{}", err("* * * *"));
        assert!(err("60 * * * *").contains("minute field has 60: it must be 0 to 59"));
        assert!(err("* 24 * * *").contains("hour field"));
        assert!(err("* * 0 * *").contains("day of month field has 0"));
        assert!(err("* * * 13 *").contains("month field"));
        assert!(err("* * * * 8").contains("day of week field"));
        assert!(err("* * * foo *").contains("`foo`, which is not a number"));
        assert!(err("*/0 * * * *").contains("step `0`"));
        assert!(err("5-1 * * * *").contains("runs backwards"));
        assert!(err("@reboot").contains("shorthands"));
        assert!(err("0 0 31 2 *").contains("never comes"));
        assert!(err("0 0 30 feb *").contains("never comes"));
        assert!(err("").contains("five fields"));
        assert!(err("1,,2 * * * *").contains("not a number"));
    }

    #[test]
    fn every_adds_its_interval_and_times_print_in_utc() {
        let every = Schedule::Every(Duration::from_secs(600));
        assert_eq!(every.next_after(1000), Some(1600));
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at("2026-11-24T15:00:00Z"), 1_795_532_400);
    }
}
