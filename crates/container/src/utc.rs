//! Calendar dates in UTC from seconds since the epoch, without a date library.
//!
//! The store stamps records with epoch seconds and the bench stamps its results with RFC 3339;
//! both only ever need UTC, so the conversion is one small pure function instead of a dependency.
//! Days become a civil date with Howard Hinnant's `civil_from_days` algorithm: eras of 400
//! years (146,097 days, which the Gregorian calendar repeats exactly), counted in years that
//! start in March so that the leap day is the last day of its year.

use std::fmt;

/// One instant in UTC, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59 (the epoch count has no leap seconds).
    pub second: u32,
}

impl UtcDateTime {
    /// The UTC date and time `unix_s` seconds after 1970-01-01 00:00:00.
    pub fn from_unix_s(unix_s: u64) -> Self {
        let days = (unix_s / 86_400) as i64;
        let rem = (unix_s % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcDateTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// RFC 3339 with second precision, e.g. `2026-11-22T10:04:05Z`.
    pub fn rfc3339(&self) -> String {
        self.format('T', "Z")
    }

    fn format(&self, between_date_and_time: char, suffix: &str) -> String {
        let UtcDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        } = self;
        format!(
            "{year:04}-{month:02}-{day:02}{between_date_and_time}{hour:02}:{minute:02}:{second:02}{suffix}"
        )
    }
}

/// `YYYY-MM-DD HH:MM:SS`, the form `isolab ls` shows.
impl fmt::Display for UtcDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(' ', ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let at = |s| UtcDateTime::from_unix_s(s).to_string();
        assert_eq!(at(0), "1970-01-01 00:00:00");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(at(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(
            UtcDateTime::from_unix_s(1_700_000_000).rfc3339(),
            "2023-11-14T22:13:20Z"
        );
    }
}
