//! Small numeric helpers every report shares.

/// Rounds to two decimals, as every report shows money, percentages and milliseconds.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero_to_cents() {
        assert_eq!(round2(1.005_1), 1.01);
        assert_eq!(round2(-2.499), -2.5);
        assert_eq!(round2(3.0), 3.0);
    }
}
