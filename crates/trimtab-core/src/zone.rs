//! A time zone as the forecasts and the simulator need it: its offset from UTC at any minute of
//! a span, piecewise constant as the tz database gives it. The shell reads the offsets (the core
//! has no tz database); the core forecasts a business's traffic by its local hours, so that a
//! change of daylight saving time moves neither the forecast nor the schedule written from it.

/// A named zone's UTC offsets over a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The IANA name (`Europe/Berlin`), as `PutScheduledAction`'s `Timezone` takes it.
    pub name: String,
    /// `(from epoch minute, offset minutes)`, sorted by start; the first applies before its
    /// start too.
    pub offsets: Vec<(i64, i32)>,
}

impl Default for Zone {
    fn default() -> Self {
        Self::utc()
    }
}

impl Zone {
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            offsets: vec![(i64::MIN, 0)],
        }
    }

    /// The offset from UTC in force at `epoch_min`, minutes.
    pub fn offset_min(&self, epoch_min: i64) -> i32 {
        let after = self.offsets.partition_point(|&(from, _)| from <= epoch_min);
        self.offsets
            .get(after.saturating_sub(1))
            .map_or(0, |&(_, offset)| offset)
    }

    /// An hourly series (the first hour starting at epoch hour `first_hour`) laid out by local
    /// hours: each hour goes to the local hour its middle falls in. Where a change of offset
    /// folds two hours into one local hour their mean is kept; where it skips a local hour, the
    /// hour before stands in. Returns the series and its first local hour, counted as epoch
    /// hours of the local clock (so that weekday and hour of day follow as in UTC).
    pub fn local_hours(&self, hourly: &[f64], first_hour: i64) -> (Vec<f64>, i64) {
        let local = |k: usize| {
            let mid = (first_hour + k as i64) * 60 + 30;
            (mid + i64::from(self.offset_min(mid))).div_euclid(60)
        };
        let Some(first) = (!hourly.is_empty()).then(|| local(0)) else {
            return (Vec::new(), first_hour);
        };
        let last = local(hourly.len() - 1);
        let n = usize::try_from(last - first + 1).unwrap_or(0);
        let mut sums = vec![(0.0, 0u32); n];
        for (k, &v) in hourly.iter().enumerate() {
            if let Some(slot) = usize::try_from(local(k) - first)
                .ok()
                .and_then(|i| sums.get_mut(i))
            {
                slot.0 += v;
                slot.1 += 1;
            }
        }
        let mut out = Vec::with_capacity(n);
        for (sum, count) in sums {
            let v = if count > 0 {
                sum / f64::from(count)
            } else {
                out.last().copied().unwrap_or(0.0)
            };
            out.push(v);
        }
        (out, first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Europe/Berlin around the end of summer time 2026 (Sunday 2026-10-25 01:00 UTC) and its
    /// start in 2027 (Sunday 2027-03-28 01:00 UTC).
    fn berlin() -> Zone {
        Zone {
            name: "Europe/Berlin".into(),
            offsets: vec![
                (i64::MIN, 120),
                (1_792_890_000 / 60, 60),
                (1_806_195_600 / 60, 120),
            ],
        }
    }

    #[test]
    fn the_offset_in_force_changes_at_each_transition() {
        let z = berlin();
        assert_eq!(z.offset_min(1_792_890_000 / 60 - 1), 120);
        assert_eq!(z.offset_min(1_792_890_000 / 60), 60);
        assert_eq!(z.offset_min(1_806_195_600 / 60 + 5), 120);
        assert_eq!(Zone::utc().offset_min(0), 0);
    }

    #[test]
    fn hours_follow_the_local_clock_across_both_changes() {
        let z = berlin();
        // Autumn: from 2026-10-24 00:00 UTC, 48 hours of a value equal to the local hour of day.
        let first = 1_792_800_000 / 3600; // 2026-10-24 00:00 UTC
        let hourly: Vec<f64> = (0..48)
            .map(|k| {
                let mid = (first + k) * 60 + 30;
                ((mid + i64::from(z.offset_min(mid))).div_euclid(60) % 24) as f64
            })
            .collect();
        let (local, first_local) = z.local_hours(&hourly, first);
        // 02:00 local on the 24th is the first local hour; the fold keeps one 02:00 on the 25th.
        assert_eq!(first_local, first + 2);
        assert_eq!(local.len(), 47);
        for (k, v) in local.iter().enumerate() {
            assert_eq!(*v, ((first_local + k as i64) % 24) as f64, "hour {k}");
        }
        // Spring: the skipped 02:00 local is filled by 01:00's value.
        let first = 1_806_112_800 / 3600; // 2027-03-27 02:00 UTC
        let hourly = vec![1.0; 48];
        let (local, _) = z.local_hours(&hourly, first);
        assert_eq!(local.len(), 49);
        assert!(local.iter().all(|&v| (v - 1.0).abs() < 1e-12));
    }
}
