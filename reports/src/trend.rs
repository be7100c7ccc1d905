//! Is a figure creeping? The leak and drift verdicts of a long run (#17's
//! soak): a node's RSS, open descriptors, threads or data bytes, or a
//! latency percentile, one value per window, judged after warm-up.
//!
//! # The method
//!
//! - The windows before `warmup_s` are left out: caches fill, files are
//!   created, the first compaction runs; growth then is expected.
//! - The slope is the least-squares line through the rest (value per
//!   hour).
//! - Its 95 % interval counts the windows as the evidence they are.
//!   Consecutive windows of one process are correlated: a figure that
//!   wanders slowly looks like a trend to the plain standard error, which
//!   assumes independent windows and is too narrow. So the residuals'
//!   lag-1 autocorrelation `r` gives an effective number of windows
//!   `n (1 − r) / (1 + r)` (Santer et al., 2000), used both in the
//!   standard error and as Student's t degrees of freedom (minus 2).
//!   (Newey–West with its usual `⌊4 (n/100)^(2/9)⌋` lags was tried first:
//!   it called 12 of 100 flat series with correlation 0.8 growing.)
//! - The verdict:
//!   - `growing` (a suspected leak, or drift for latency): the whole
//!     interval is above zero **and** the rate is material: at least
//!     `floor_per_hour` of the figure's mean per hour. Without the floor,
//!     hours of windows make any growth, however small, significant; 1 %
//!     an hour (the default a soak uses) is 24 % a day;
//!   - `shrinking`: the same, below zero;
//!   - `flat`: otherwise;
//!   - `too few windows`: fewer than [`WINDOWS_MIN`] after warm-up.

/// Windows after warm-up a verdict needs.
pub const WINDOWS_MIN: usize = 8;

/// What a series of windows says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendVerdict {
    /// Rising, materially, with confidence.
    Growing,
    /// Falling, materially, with confidence.
    Shrinking,
    /// Neither.
    Flat,
    /// Not enough windows after warm-up to say.
    TooFewWindows,
}

/// A series judged.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Trend {
    /// Least-squares slope, units per hour.
    pub per_hour: f64,
    /// Its 95 % interval.
    pub low: f64,
    /// Its 95 % interval.
    pub high: f64,
    /// Mean of the windows judged.
    pub mean: f64,
    /// Windows judged (after warm-up).
    pub windows: usize,
    /// What it means.
    pub verdict: TrendVerdict,
}

/// Student's t quantile for probability `p` (0.975: two-sided 95 %) with
/// `dof` degrees of freedom (Cornish–Fisher expansion around the normal;
/// within 1 % of the tables from 5 degrees up).
fn t_quantile(p: f64, dof: f64) -> f64 {
    // The normal quantile (Acklam's rational approximation, central part
    // is enough for p = 0.975).
    let z = {
        let q = p - 0.5;
        let r = q * q;
        let a = [
            -3.969_683_028_665_376e1,
            2.209_460_984_245_205e2,
            -2.759_285_104_469_687e2,
            1.383_577_518_672_69e2,
            -3.066_479_806_614_716e1,
            2.506_628_277_459_239,
        ];
        let b = [
            -5.447_609_879_822_406e1,
            1.615_858_368_580_409e2,
            -1.556_989_798_598_866e2,
            6.680_131_188_771_972e1,
            -1.328_068_155_288_572e1,
        ];
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    };
    let (z3, z5) = (z.powi(3), z.powi(5));
    z + (z3 + z) / (4.0 * dof) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * dof * dof)
}

/// Judges `points` (seconds from the start, value) as described in the
/// module doc.
pub fn judge(points: &[(f64, f64)], warmup_s: f64, floor_per_hour: f64) -> Trend {
    let kept: Vec<(f64, f64)> = points
        .iter()
        .filter(|(at, value)| *at >= warmup_s && value.is_finite())
        .map(|(at, value)| (at / 3600.0, *value))
        .collect();
    let n = kept.len();
    let mean = kept.iter().map(|(_, value)| value).sum::<f64>() / n.max(1) as f64;
    let mut trend = Trend {
        per_hour: 0.0,
        low: f64::NAN,
        high: f64::NAN,
        mean,
        windows: n,
        verdict: TrendVerdict::TooFewWindows,
    };
    if n < WINDOWS_MIN {
        return trend;
    }
    let mean_t = kept.iter().map(|(hours, _)| hours).sum::<f64>() / n as f64;
    let sxx: f64 = kept.iter().map(|(hours, _)| (hours - mean_t).powi(2)).sum();
    if sxx <= 0.0 {
        return trend;
    }
    let slope = kept
        .iter()
        .map(|(hours, value)| (hours - mean_t) * (value - mean))
        .sum::<f64>()
        / sxx;
    let intercept = mean - slope * mean_t;
    // The residuals' lag-1 autocorrelation gives the effective number of
    // independent windows (Santer et al., 2000): correlated windows carry
    // less evidence than their count.
    let residuals: Vec<f64> = kept
        .iter()
        .map(|(hours, value)| value - intercept - slope * hours)
        .collect();
    let sum_squares: f64 = residuals.iter().map(|residual| residual * residual).sum();
    let rho = if sum_squares > 0.0 {
        (residuals.windows(2).map(|pair| pair[0] * pair[1]).sum::<f64>() / sum_squares).clamp(0.0, 0.99)
    } else {
        0.0
    };
    let effective = n as f64 * (1.0 - rho) / (1.0 + rho);
    let half = if effective > 3.0 {
        let standard_error = (sum_squares / (effective - 2.0) / sxx).sqrt();
        t_quantile(0.975, effective - 2.0) * standard_error
    } else {
        f64::INFINITY
    };
    trend.per_hour = slope;
    trend.low = slope - half;
    trend.high = slope + half;
    let material = slope.abs() >= floor_per_hour * mean.abs();
    trend.verdict = if trend.low > 0.0 && material {
        TrendVerdict::Growing
    } else if trend.high < 0.0 && material {
        TrendVerdict::Shrinking
    } else {
        TrendVerdict::Flat
    };
    trend
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rng::Rng;

    /// Roughly normal, mean 0, sd 1 (the sum of twelve uniforms).
    fn normal(rng: &mut Rng) -> f64 {
        (0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0
    }

    /// One window a minute for `hours`; a level of 100 MB, `leak` per hour,
    /// AR(1) noise (correlation `rho` between windows) of 2 MB.
    fn series(seed: u64, hours: f64, leak_per_hour: f64, rho: f64) -> Vec<(f64, f64)> {
        let mut rng = Rng(seed);
        let mut noise = 0.0;
        (0..(hours * 60.0) as usize)
            .map(|minute| {
                noise = rho * noise + (1.0 - rho * rho).sqrt() * normal(&mut rng);
                let at = minute as f64 * 60.0;
                (at, 100e6 + leak_per_hour * at / 3600.0 + 2e6 * noise)
            })
            .collect()
    }

    #[test]
    fn the_t_quantile_matches_the_tables() {
        for (dof, table) in [(5.0, 2.571), (10.0, 2.228), (30.0, 2.042), (1000.0, 1.962)] {
            let ours = t_quantile(0.975, dof);
            assert!(
                (ours - table).abs() / table < 0.01,
                "t({dof}) = {ours}, tables say {table}"
            );
        }
    }

    #[test]
    fn a_steady_leak_is_growing_at_its_rate() {
        // 5 MB an hour on 100 MB (5 %/h) over two hours, after 10 minutes.
        let trend = judge(&series(1, 2.0, 5e6, 0.5), 600.0, 0.01);
        assert_eq!(trend.verdict, TrendVerdict::Growing, "{trend:?}");
        assert!(trend.low <= 5e6 && 5e6 <= trend.high, "{trend:?}");
    }

    #[test]
    fn a_flat_figure_is_rarely_called_growing_even_when_windows_are_correlated() {
        // 100 series of two hours with strongly correlated windows (rho
        // 0.8): the plain standard error would call many of them trends.
        let mut growing = 0;
        for seed in 0..100 {
            let trend = judge(&series(seed, 2.0, 0.0, 0.8), 600.0, 0.0);
            growing += usize::from(trend.verdict == TrendVerdict::Growing);
        }
        assert!(growing <= 8, "{growing} of 100 flat series called growing");
    }

    #[test]
    fn growth_below_the_floor_is_flat_and_warm_up_is_left_out() {
        // 0.2 %/h with little noise: significant, but below a 1 %/h floor.
        let mut rng = Rng(7);
        let slow: Vec<(f64, f64)> = (0..600)
            .map(|minute| {
                let at = minute as f64 * 60.0;
                (at, 100e6 * (1.0 + 0.002 * at / 3600.0) + 1e4 * normal(&mut rng))
            })
            .collect();
        assert_eq!(judge(&slow, 0.0, 0.0).verdict, TrendVerdict::Growing);
        assert_eq!(judge(&slow, 0.0, 0.01).verdict, TrendVerdict::Flat);
        // A ramp during warm-up, flat after it.
        let ramp: Vec<(f64, f64)> = series(3, 2.0, 0.0, 0.3)
            .into_iter()
            .map(|(at, value)| (at, if at < 1200.0 { value * at / 1200.0 } else { value }))
            .collect();
        // Judged from the start, the ramp tilts the line up (a line fits a
        // ramp-then-plateau badly, its residuals are correlated, and the
        // interval widens accordingly); after warm-up it is flat.
        assert!(judge(&ramp, 0.0, 0.01).per_hour > 0.0);
        assert_eq!(judge(&ramp, 1200.0, 0.01).verdict, TrendVerdict::Flat);
        // Too few windows after warm-up.
        assert_eq!(judge(&ramp, 7000.0, 0.01).verdict, TrendVerdict::TooFewWindows);
    }
}
