//! Numeric helpers every job shares: rounding as reports show numbers, and order statistics.

/// Rounds to two decimals, as every report shows money, percentages and milliseconds.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds to four decimals (money per month on small functions, fractions).
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The `q` quantile (0..=1) of sorted values: the element at index round((n - 1) q), no
/// interpolation (a value that was observed); 0 when there are none.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

/// The median (the mean of the two middle values when their number is even); sorts `v`. 0 when
/// empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The relative standard error of the mean of `xs` (sample standard deviation over the square
/// root of the count, over the mean); `None` under three values or a mean of zero.
pub fn relative_standard_error(xs: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    if xs.len() < 3 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(var.sqrt() / n.sqrt() / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_error_of_a_mean_shrinks_with_its_count() {
        assert_eq!(relative_standard_error(&[1.0, 2.0]), None);
        assert_eq!(relative_standard_error(&[5.0, 5.0, 5.0]), Some(0.0));
        // Mean 100, sample standard deviation 11.55, four values: 11.55 / 2 / 100.
        let e = relative_standard_error(&[90.0, 110.0, 90.0, 110.0]).expect("four values");
        assert!((e - 0.1155 / 2.0).abs() < 1e-3, "{e}");
    }

    #[test]
    fn rounds_half_away_from_zero_to_cents() {
        assert_eq!(round2(1.005_1), 1.01);
        assert_eq!(round2(-2.499), -2.5);
        assert_eq!(round2(3.0), 3.0);
        assert_eq!(round4(0.123_456), 0.1235);
    }

    #[test]
    fn order_statistics_pick_observed_values() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&sorted, 0.0), 1.0);
        assert_eq!(quantile_sorted(&sorted, 0.1), 1.0);
        assert_eq!(quantile_sorted(&sorted, 0.5), 3.0);
        assert_eq!(quantile_sorted(&sorted, 1.0), 5.0);
        assert_eq!(quantile_sorted(&[], 0.5), 0.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
