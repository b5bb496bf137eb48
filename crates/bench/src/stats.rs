//! Robust statistics for small, skewed sample sets.
//!
//! Start-up latencies are not bell-shaped: most runs cluster, and a few land far to the right
//! when the scheduler, a page-cache miss or another tenant of a nested VM gets in the way. The
//! mean follows those stragglers; the **median** does not. So isolab reports the median with
//! the 10th and 90th percentiles around it, and flags outliers with the **median absolute
//! deviation** (MAD) rather than the standard deviation, which the outliers themselves inflate.
//!
//! - Percentiles use linear interpolation between closest ranks (the method numpy, R type 7 and
//!   hyperfine use): for `p` in 0..=100 over the sorted samples `x[0..n]`, the rank is
//!   `h = (n - 1) · p / 100` and the value is `x[⌊h⌋] + (h - ⌊h⌋) · (x[⌊h⌋+1] - x[⌊h⌋])`.
//! - `MAD = median(|x - median(x)|)`. For normal data `1.4826 · MAD` estimates the standard
//!   deviation, so a sample is an outlier when `|x - median| > 3 · 1.4826 · MAD` — the robust
//!   version of "more than three sigmas away".
//! - A ratio to the host is `median(env) / median(host)`: ratios of medians, not medians of
//!   ratios, because the samples of two environments are not paired.

use crate::schema::Summary;

/// Scales a MAD to a standard-deviation estimate for normally distributed data.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// How many (scaled) MADs from the median make an outlier.
pub const OUTLIER_MADS: f64 = 3.0;

/// The samples sorted ascending, NaNs dropped (they can only come from a broken clock or a 0/0
/// and would poison every order statistic).
fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `p`th percentile (0..=100) of already sorted, non-empty data, by linear interpolation.
fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let h = (n - 1) as f64 * (p.clamp(0.0, 100.0) / 100.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The `p`th percentile (0..=100), or `None` for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let s = sorted(samples);
    (!s.is_empty()).then(|| percentile_sorted(&s, p))
}

/// The median, or `None` for no samples.
pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The median absolute deviation from the median.
pub fn mad(samples: &[f64]) -> Option<f64> {
    let m = median(samples)?;
    let deviations: Vec<f64> = samples.iter().map(|x| (x - m).abs()).collect();
    median(&deviations)
}

/// How many samples are farther than `3 · 1.4826 · MAD` from the median. With MAD = 0 (more
/// than half the samples identical) every sample that differs at all counts.
pub fn outlier_count(samples: &[f64]) -> usize {
    let (Some(m), Some(d)) = (median(samples), mad(samples)) else {
        return 0;
    };
    let limit = OUTLIER_MADS * MAD_TO_SIGMA * d;
    samples.iter().filter(|x| (*x - m).abs() > limit).count()
}

/// `numerator / denominator`, or `None` when the denominator is zero or either is not finite.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    let r = numerator / denominator;
    (denominator != 0.0 && r.is_finite()).then_some(r)
}

/// Every figure of [`Summary`], or `None` for no (non-NaN) samples.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let s = sorted(samples);
    if s.is_empty() {
        return None;
    }
    let n = s.len();
    Some(Summary {
        n,
        median: percentile_sorted(&s, 50.0),
        p10: percentile_sorted(&s, 10.0),
        p90: percentile_sorted(&s, 90.0),
        mean: s.iter().sum::<f64>() / n as f64,
        min: s[0],
        max: s[n - 1],
        mad: mad(&s)?,
        outliers: outlier_count(&s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_interpolate_linearly() {
        // 1..=10: rank h = 9 · p / 100.
        let data: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!(close(percentile(&data, 10.0).unwrap(), 1.9));
        assert!(close(percentile(&data, 90.0).unwrap(), 9.1));
        assert!(close(percentile(&data, 0.0).unwrap(), 1.0));
        assert!(close(percentile(&data, 100.0).unwrap(), 10.0));
        assert!(close(percentile(&data, 25.0).unwrap(), 3.25));
        // Order of input does not matter.
        let rev: Vec<f64> = data.iter().rev().copied().collect();
        assert!(close(percentile(&rev, 10.0).unwrap(), 1.9));
    }

    #[test]
    fn mad_and_outliers_on_fixed_data() {
        // median 3; deviations 2,1,0,1,97 → MAD 1; limit 4.4478 → only 100 is an outlier.
        let data = [1.0, 2.0, 3.0, 4.0, 100.0];
        assert_eq!(mad(&data), Some(1.0));
        assert_eq!(outlier_count(&data), 1);
        let no_outliers = [10.0, 11.0, 12.0, 13.0, 14.0];
        assert_eq!(outlier_count(&no_outliers), 0);
    }

    #[test]
    fn identical_samples_have_zero_mad_and_flag_any_difference() {
        assert_eq!(mad(&[5.0, 5.0, 5.0]), Some(0.0));
        assert_eq!(outlier_count(&[5.0, 5.0, 5.0]), 0);
        assert_eq!(outlier_count(&[5.0, 5.0, 5.0, 6.0]), 1);
    }

    #[test]
    fn summary_collects_everything_and_ignores_nan() {
        let s = summarize(&[1.0, f64::NAN, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(s.n, 5);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 100.0);
        assert!(close(s.mean, 22.0));
        assert_eq!(s.mad, 1.0);
        assert_eq!(s.outliers, 1);
        assert!(close(s.p10, 1.4));
        assert!(close(s.p90, 61.6));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }

    #[test]
    fn ratios_refuse_zero_and_non_finite() {
        assert_eq!(ratio(3.0, 1.5), Some(2.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::INFINITY, 1.0), None);
    }
}
