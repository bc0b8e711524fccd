//! WARC-Date: a `SystemTime` as `YYYY-MM-DDThh:mm:ssZ` in UTC (WARC/1.1 §5.4, the W3C
//! profile of ISO 8601).
//!
//! Owns the civil-calendar conversion (proleptic Gregorian, days since 1970-01-01 to year,
//! month, day). It must not read the clock: the caller passes the instant.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as a WARC-Date, whole seconds (a fraction is cut off, so an instant always falls in
/// the second it names). `None` outside the years 0000 to 9999, which the four-digit year
/// of the format cannot hold.
pub(crate) fn warc_date(t: SystemTime) -> Option<String> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok()?,
        Err(e) => {
            // Before 1970: round down, so -0.5 s is 23:59:59 of the day before.
            let before = e.duration();
            let whole = i64::try_from(before.as_secs()).ok()?;
            -whole - i64::from(before.subsec_nanos() > 0)
        }
    };
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"
    ))
}

/// The (year, month 1-12, day 1-31) of the day `days` after 1970-01-01 (negative: before),
/// in the proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days`: counting from 0000-03-01 puts the leap day last in
/// the year, and 400-year eras (146,097 days each) make every era alike.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    // Year of era, 0..=399: the three corrections undo the leap days of 4, 100 and 400 years.
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> Option<String> {
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        warc_date(t)
    }

    #[test]
    fn known_instants() {
        for (secs, date) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (951_782_400, "2000-02-29T00:00:00Z"), // 2000 is a leap year (divisible by 400)
            (951_868_800, "2000-03-01T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_709_251_200, "2024-03-01T00:00:00Z"),
            (1_735_689_599, "2024-12-31T23:59:59Z"), // day 366 of a leap year
            (2_147_483_647, "2038-01-19T03:14:07Z"), // the last second of a signed 32-bit time_t
            (2_147_483_648, "2038-01-19T03:14:08Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"), // 2100 is not a leap year
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (-2_203_891_200, "1900-03-01T00:00:00Z"), // 1900 is not a leap year either
            (-2_203_891_201, "1900-02-28T23:59:59Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
        ] {
            assert_eq!(at(secs).as_deref(), Some(date), "{secs}");
        }
    }

    #[test]
    fn a_fraction_stays_in_its_second() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        assert_eq!(warc_date(t).unwrap(), "2023-11-14T22:13:20Z");
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(warc_date(t).unwrap(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn years_the_format_cannot_hold() {
        assert_eq!(at(253_402_300_800), None); // 10000-01-01
        assert_eq!(at(-62_167_219_201), None); // -0001-12-31
        let far = UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 2));
        assert_eq!(far.and_then(warc_date), None);
    }

    /// Every day from 1600 to 2500 follows the one before it: the day, month and year step
    /// as the calendar says, and leap days fall exactly where the Gregorian rule puts them.
    #[test]
    fn every_day_follows_the_one_before() {
        let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let length = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let first = -135_140; // 1600-01-01
        let mut prev = civil_from_days(first);
        assert_eq!(prev, (1600, 1, 1));
        for days in first + 1..=194_308 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let expected = if pd < length(py, pm) {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            prev = (y, m, d);
        }
        assert_eq!(prev, (2501, 12, 31));
    }
}
