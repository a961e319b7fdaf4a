//! A resource's `trimtab:timezone`, read from the bundled tz database into the core's
//! [`Zone`]: the offsets in force over a span, for local-time forecasts and schedules.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use trimtab_core::tags::TIMEZONE_TAG;
use trimtab_core::zone::Zone;

/// The zone an IANA `name` keeps from `from_s` to `to_s` (epoch seconds): its offset at the start
/// and at every transition in between. `Err` names an unknown zone.
pub fn load(name: &str, from_s: i64, to_s: i64) -> Result<Zone, String> {
    let tz = TimeZone::get(name).map_err(|_| {
        format!("{TIMEZONE_TAG}: unknown time zone {name:?} (an IANA name such as Europe/Berlin)")
    })?;
    let at = |s: i64| Timestamp::from_second(s).map_err(|e| format!("{TIMEZONE_TAG}: {e}"));
    let minutes = |seconds: i32| seconds / 60;
    let mut offsets = vec![(i64::MIN, minutes(tz.to_offset(at(from_s)?).seconds()))];
    for t in tz.following(at(from_s)?) {
        let s = t.timestamp().as_second();
        if s > to_s {
            break;
        }
        offsets.push((s.div_euclid(60), minutes(t.offset().seconds())));
    }
    // The database's own spelling: `PutScheduledAction` takes canonical names only, and the
    // lookup forgives case.
    Ok(Zone {
        name: tz.iana_name().unwrap_or(name).to_owned(),
        offsets,
    })
}

/// The zone a resource's tags name, over the span; `Ok(None)` without the tag (UTC).
pub fn from_tags(
    tags: &BTreeMap<String, String>,
    (from_s, to_s): (i64, i64),
) -> Result<Option<Zone>, String> {
    tags.get(TIMEZONE_TAG)
        .map(|name| load(name.trim(), from_s, to_s))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_changes_its_clocks_on_the_last_sundays_of_march_and_october() {
        // 2026-10-01 to 2027-04-30.
        let z = load("Europe/Berlin", 1_790_812_800, 1_809_043_200).expect("zone");
        assert_eq!(z.offsets[0].1, 120);
        // 2026-10-25 01:00 UTC and 2027-03-28 01:00 UTC.
        assert_eq!(
            z.offsets[1..],
            [(1_792_890_000 / 60, 60), (1_806_195_600 / 60, 120)]
        );
        assert_eq!(
            load("UTC", 0, 86_400).expect("utc").offsets,
            [(i64::MIN, 0)]
        );
        assert_eq!(
            load("europe/berlin", 0, 1).expect("zone").name,
            "Europe/Berlin"
        );
        let bad = load("Mars/Olympus", 0, 1).expect_err("unknown");
        assert!(bad.contains("trimtab:timezone"), "{bad}");
        assert_eq!(from_tags(&BTreeMap::new(), (0, 1)), Ok(None));
    }
}
