//! Summary statistics shared by the reports: quantiles, fairness and spread of per-agent
//! work, and rounding for stable JSON.

/// The `q` quantile of sorted values (nearest rank); 0 when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Rounds to `digits` decimals, so that reports compare equal across runs and machines.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Jain's fairness index of per-agent work: 1 when every agent did the same, 1/n when one
/// agent did everything.
pub(crate) fn jain(work: &[f64]) -> f64 {
    let (sum, squares) = work.iter().fold((0.0, 0.0), |(s, q), w| (s + w, q + w * w));
    if squares == 0.0 { 1.0 } else { sum * sum / (work.len() as f64 * squares) }
}

/// Coefficient of variation (standard deviation over mean) of per-agent work.
pub(crate) fn coefficient_of_variation(work: &[f64]) -> f64 {
    let n = work.len().max(1) as f64;
    let mean = work.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let variance = work.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / n;
    variance.sqrt() / mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fairness_and_spread_of_known_distributions() {
        assert_eq!(jain(&[2.0, 2.0, 2.0, 2.0]), 1.0);
        assert_eq!(jain(&[4.0, 0.0, 0.0, 0.0]), 0.25);
        assert_eq!(coefficient_of_variation(&[3.0, 3.0]), 0.0);
        assert_eq!(coefficient_of_variation(&[0.0, 2.0]), 1.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
    }
}
