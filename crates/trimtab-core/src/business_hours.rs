//! One detector of a weekday business-hours shape, for the simulator's business-hours minimum on
//! DynamoDB (advice only: what is written comes from a forecast, `predictive`). The mean weekday
//! by hour (UTC) is built from
//! the samples; its busy hours are those at half the busiest hour's level or more. A shape counts
//! when all of these hold:
//! - at least seven days of samples (every weekday seen);
//! - the busy hours' mean is at least three times the quiet level (the other weekday hours and
//!   the weekend together);
//! - the busy hours are at most 16 (a shape, not a flat day with a dip);
//! - at least two thirds of the weekdays look like the mean one (correlation over 0.7), so one
//!   busy week does not make a schedule.

use std::collections::BTreeMap;

use crate::calendar::{day_of, hour_of, is_weekend};

/// The busy hours of the mean weekday, and the levels either side (in the samples' unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusyHours {
    /// First and last busy hour of the day, UTC (inclusive). The window may wrap past midnight
    /// UTC (a US west-coast or Asia-Pacific business day): then `last_hour < first_hour`.
    pub first_hour: u32,
    pub last_hour: u32,
    /// The window wraps past midnight UTC, so it ends on the next day (Tuesday to Saturday).
    pub wraps: bool,
    /// Mean level over the busy hours, and the lowest busy hour's mean.
    pub busy_mean: f64,
    pub busy_floor: f64,
    /// Mean level outside them (weekday nights and the weekend).
    pub quiet_mean: f64,
}

/// Most busy hours a business-hours shape may have.
const MAX_BUSY_HOURS: usize = 16;
/// How much busier the busy hours must be than the quiet ones.
const MIN_RATIO: f64 = 3.0;

/// The business-hours shape of `samples` (`(epoch_s, level)`, any step up to an hour), if it has
/// one.
pub fn detect(samples: &[(i64, f64)]) -> Option<BusyHours> {
    // Sum and count per weekday (day, hour); the weekend as one level.
    let mut cells: BTreeMap<(i64, u32), (f64, f64)> = BTreeMap::new();
    let mut weekend: (f64, f64) = (0.0, 0.0);
    let mut days = std::collections::BTreeSet::new();
    for &(t, v) in samples {
        let day = day_of(t);
        days.insert(day);
        if is_weekend(day) {
            weekend = (weekend.0 + v, weekend.1 + 1.0);
        } else {
            let c = cells.entry((day, hour_of(t))).or_default();
            *c = (c.0 + v, c.1 + 1.0);
        }
    }
    // A whole week of samples: every weekday seen, and a span of seven days (less one sample).
    let span = samples.iter().map(|s| s.0).max().unwrap_or(0)
        - samples.iter().map(|s| s.0).min().unwrap_or(0);
    if days.len() < 7 || span < 7 * 86_400 - 3_600 {
        return None;
    }
    let mut per_day: BTreeMap<i64, [f64; 24]> = BTreeMap::new();
    let (mut sum, mut n) = ([0.0_f64; 24], [0.0_f64; 24]);
    for (&(day, h), &(s, k)) in &cells {
        per_day.entry(day).or_insert([0.0; 24])[h as usize] = s / k;
        sum[h as usize] += s;
        n[h as usize] += k;
    }
    let mean: Vec<f64> = (0..24)
        .map(|h| if n[h] > 0.0 { sum[h] / n[h] } else { 0.0 })
        .collect();
    let peak = mean.iter().copied().fold(0.0, f64::max);
    if peak <= 0.0 {
        return None;
    }
    let busy: Vec<usize> = (0..24).filter(|&h| mean[h] >= 0.5 * peak).collect();
    let (first, last) = busy_window(&busy)?;
    let quiet: Vec<f64> = (0..24)
        .filter(|h| !busy.contains(h))
        .map(|h| mean[h])
        .collect();
    let quiet_mean =
        (quiet.iter().sum::<f64>() + weekend.0 / weekend.1.max(1.0)) / (quiet.len() as f64 + 1.0);
    let busy_mean = busy.iter().map(|&h| mean[h]).sum::<f64>() / busy.len() as f64;
    if busy.len() > MAX_BUSY_HOURS || busy_mean < MIN_RATIO * quiet_mean.max(1e-9) {
        return None;
    }
    let alike = per_day
        .values()
        .filter(|d| correlation(&d[..], &mean) > 0.7)
        .count();
    if alike * 3 < per_day.len() * 2 {
        return None;
    }
    Some(BusyHours {
        first_hour: first as u32,
        last_hour: last as u32,
        wraps: last < first,
        busy_mean,
        busy_floor: busy.iter().map(|&h| mean[h]).fold(f64::INFINITY, f64::min),
        quiet_mean,
    })
}

/// The busy window on the 24-hour clock: everything but the longest run of quiet hours (so a
/// business day across midnight UTC is one window, not the whole day).
fn busy_window(busy: &[usize]) -> Option<(usize, usize)> {
    if busy.is_empty() {
        return None;
    }
    let is_busy = |h: usize| busy.contains(&(h % 24));
    // The longest quiet run, circularly: it ends just before the window's first hour.
    let (mut best_len, mut first) = (0, busy[0]);
    for start in 0..24 {
        if is_busy(start) || !is_busy(start + 23) {
            continue; // not the start of a quiet run
        }
        let len = (0..24).take_while(|k| !is_busy(start + k)).count();
        if len > best_len {
            best_len = len;
            first = (start + len) % 24;
        }
    }
    let last = (first + 23 - best_len) % 24;
    Some((first, last))
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (
        a.iter().sum::<f64>() / a.len() as f64,
        b.iter().sum::<f64>() / b.len() as f64,
    );
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    if da > 0.0 && db > 0.0 {
        num / (da * db).sqrt()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hourly samples over `days` from a Monday: `busy` from 09:00 to 17:59 on weekdays, `quiet`
    /// otherwise; `odd_week` makes the second week's weekdays flat.
    fn series(days: i64, busy: f64, quiet: f64, odd_week: bool) -> Vec<(i64, f64)> {
        let monday = 4; // 1970-01-05
        (0..days * 24)
            .map(|k| {
                let t = (monday * 24 + k) * 3600;
                let (day, h) = (day_of(t), hour_of(t));
                let flat = odd_week && (day - monday) / 7 == 1;
                let v = if !is_weekend(day) && (9..18).contains(&h) && !flat {
                    busy
                } else {
                    quiet
                };
                (t, v)
            })
            .collect()
    }

    #[test]
    fn office_hours_are_found_with_their_levels() {
        let b = detect(&series(14, 40.0, 2.0, false)).expect("a shape");
        assert_eq!((b.first_hour, b.last_hour, b.wraps), (9, 17, false));
        assert_eq!((b.busy_mean, b.busy_floor), (40.0, 40.0));
        assert!((b.quiet_mean - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_business_day_across_midnight_utc_is_one_window() {
        // 16:00 to 00:59 UTC busy (09:00 to 17:59 on the US west coast).
        let monday = 4;
        let samples: Vec<(i64, f64)> = (0..14 * 24)
            .map(|k| {
                let t = (monday * 24 + k) * 3600;
                let local = day_of(t - 7 * 3600);
                let h = hour_of(t);
                let busy = !is_weekend(local) && (h >= 16 || h == 0);
                (t, if busy { 40.0 } else { 2.0 })
            })
            .collect();
        let b = detect(&samples).expect("a shape");
        assert_eq!((b.first_hour, b.last_hour, b.wraps), (16, 0, true));
        assert_eq!(busy_window(&[9, 10, 11]), Some((9, 11)));
        assert_eq!(busy_window(&[0, 1, 22, 23]), Some((22, 1)));
    }

    #[test]
    fn no_shape_from_flat_short_weak_or_irregular_traffic() {
        assert_eq!(detect(&series(14, 5.0, 5.0, false)), None, "flat");
        assert_eq!(detect(&series(6, 40.0, 2.0, false)), None, "under a week");
        assert_eq!(
            detect(&series(14, 5.0, 2.0, false)),
            None,
            "busy under 3x quiet"
        );
        assert_eq!(
            detect(&series(14, 40.0, 2.0, true)),
            None,
            "half the weekdays flat"
        );
        assert_eq!(detect(&[]), None);
    }
}
