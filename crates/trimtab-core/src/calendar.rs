//! Dates as the jobs count them: days since 1970-01-01 (UTC, proleptic Gregorian), weekdays,
//! months. One definition of each, for every job.

/// Days since 1970-01-01 for a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (anything after the day is ignored) to a day number; `None` for a date that
/// does not exist, such as `2026-02-30`.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let d = it.next()?.get(..2)?.parse().ok()?;
    let day = days_from_civil(y, m, d);
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// An ISO 8601 instant to epoch seconds: `2019-09-26T20:28:40.438+0000` as Lambda writes
/// `LastModified`, or with `Z`, `+hh:mm`, or any number of fraction digits (moto writes nine).
/// `None` for anything else.
pub fn parse_instant(s: &str) -> Option<i64> {
    let day = parse_date(s)?;
    let rest = s.get(10..)?.strip_prefix('T')?;
    let hms = |t: &str| -> Option<i64> {
        let mut it = t.splitn(3, ':');
        let h: i64 = it.next()?.parse().ok()?;
        let m: i64 = it.next()?.parse().ok()?;
        let sec: i64 = it.next()?.get(..2)?.parse().ok()?;
        (h < 24 && m < 60 && sec < 61).then_some(h * 3600 + m * 60 + sec)
    };
    let time = hms(rest.get(..8)?)?;
    let zone = rest[8..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "" | "Z" => 0,
        z => {
            let sign = match z.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = digits[2..].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    Some(day * 86_400 + time - offset)
}

/// A day number as `YYYY-MM-DD`.
pub fn format_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of a moment, epoch seconds.
pub fn day_of(epoch_s: i64) -> i64 {
    epoch_s.div_euclid(86_400)
}

/// Weekday of a day number: 0 Monday .. 6 Sunday.
pub fn weekday(day: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (day + 3).rem_euclid(7) as u32
}

/// Whether a day number falls on Saturday or Sunday.
pub fn is_weekend(day: i64) -> bool {
    weekday(day) >= 5
}

/// Hour of the day (UTC) of a moment, epoch seconds.
pub fn hour_of(epoch_s: i64) -> u32 {
    (epoch_s.rem_euclid(86_400) / 3_600) as u32
}

/// The first day of the month `day` falls in.
pub fn month_start(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1)
}

/// The first day of the month after the one `day` falls in.
pub fn next_month_start(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    }
}

/// The first day of the month before the one `day` falls in.
pub fn previous_month_start(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    if m == 1 {
        days_from_civil(y - 1, 12, 1)
    } else {
        days_from_civil(y, m - 1, 1)
    }
}

/// Days in the month `day` falls in.
pub fn days_in_month(day: i64) -> i64 {
    next_month_start(day) - month_start(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_as_lambda_and_moto_write_them() {
        let aws = parse_instant("2019-09-26T20:28:40.438+0000").expect("aws");
        assert_eq!(
            aws,
            days_from_civil(2019, 9, 26) * 86_400 + 20 * 3600 + 28 * 60 + 40
        );
        assert_eq!(parse_instant("2019-09-26T20:28:40.438000000Z"), Some(aws));
        assert_eq!(parse_instant("2019-09-26T22:28:40+02:00"), Some(aws));
        assert_eq!(parse_instant("2019-09-26"), None);
        assert_eq!(parse_instant("2019-09-26T25:00:00Z"), None);
    }

    #[test]
    fn dates_round_trip_and_impossible_ones_are_refused() {
        for day in [-1, 0, 19_000, 20_513, 20_514] {
            assert_eq!(parse_date(&format_date(day)), Some(day));
        }
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(
            parse_date("2024-02-29T00:00:00Z"),
            Some(days_from_civil(2024, 2, 29))
        );
        assert_eq!(parse_date("2023-02-29"), None);
    }

    #[test]
    fn weekdays_months_and_hours() {
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(weekday(-1), 2, "and the day before a Wednesday");
        let sat = parse_date("2026-11-28").unwrap_or_default();
        assert!(is_weekend(sat) && is_weekend(sat + 1) && !is_weekend(sat + 2));
        let mar31 = parse_date("2026-03-31").unwrap_or_default();
        assert_eq!(format_date(month_start(mar31)), "2026-03-01");
        assert_eq!(format_date(previous_month_start(mar31)), "2026-02-01");
        assert_eq!(
            format_date(next_month_start(
                parse_date("2026-12-15").unwrap_or_default()
            )),
            "2027-01-01"
        );
        assert_eq!(
            days_in_month(parse_date("2024-02-10").unwrap_or_default()),
            29
        );
        assert_eq!(days_in_month(mar31), 31);
        assert_eq!(hour_of(-1), 23);
        assert_eq!(day_of(-1), -1);
    }
}
