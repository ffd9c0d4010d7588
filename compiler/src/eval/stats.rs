//! Statistics of `orchestr8 eval`: an A/B test of two prompt renderings
//! (control arm = Markdown prompts, test arm = JSON prompts) over matched
//! pairs (same input, same iteration), each difference being test − control
//! of a 0..=100 score.
//!
//! The significance test is the two-sided Wilcoxon signed-rank test, with
//! the rules of `scipy.stats.wilcoxon(d, zero_method="wilcox",
//! correction=False, method="auto")` in SciPy 1.17:
//! - zero differences are discarded (Wilcoxon's original method);
//! - the remaining |d| are ranked, tied values sharing the average of their
//!   ranks. Because scores are averages of floats, |d| within 1e-9 of each
//!   other count as tied and |d| ≤ 1e-9 counts as zero (SciPy compares exactly);
//! - with at most 50 pairs and neither zeros nor ties, the p-value is exact,
//!   from the null distribution of W+ (each sign of the ranks 1..n equally likely);
//! - with at most 13 pairs and some zero or tie, it is exact too, from the same
//!   enumeration over the tied ranks observed (SciPy's exhaustive permutation test);
//! - otherwise the normal approximation: mean n(n+1)/4, variance
//!   n(n+1)(2n+1)/24 − Σ(t³−t)/48 over groups of t tied |d|, no continuity
//!   correction, z = (W+ − mean)/sd and p = 2·(1 − Φ(|z|)).
//!
//! Exact two-sided p-values are min(1, 2·min(P(W+ ≤ w), P(W+ ≥ w))).

/// Differences closer than this count as equal (ties) or as zero.
const EPS: f64 = 1e-9;
/// Largest number of pairs with an exact p-value when there are no zeros or ties.
const EXACT_MAX_PAIRS: usize = 50;
/// Largest number of pairs with an exact p-value in the presence of zeros or ties.
const PERMUTATION_MAX_PAIRS: usize = 13;

/// Which way the p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Enumerated null distribution of W+.
    Exact,
    /// Normal approximation with tie correction.
    Normal,
}

/// Result of [`wilcoxon_signed_rank`].
#[derive(Debug, Clone, PartialEq)]
pub struct Wilcoxon {
    /// All pairs given.
    pub pairs: usize,
    /// Pairs with a zero difference, discarded.
    pub zeros: usize,
    /// `pairs - zeros`: the ranked differences.
    pub n: usize,
    /// Sum of the ranks of the positive differences (test arm better).
    pub w_plus: f64,
    /// Sum of the ranks of the negative differences (control arm better).
    pub w_minus: f64,
    /// (W+ − mean) / sd when `method` is `Normal`; positive favours the test arm.
    pub z: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// How `p_value` was computed.
    pub method: Method,
}

/// Two-sided Wilcoxon signed-rank test on paired differences, by the rules in
/// the module doc. None when n == 0 (no pairs, or every difference zero) since
/// there is nothing to test, or when a difference is not finite.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> Option<Wilcoxon> {
    if differences.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let pairs = differences.len();
    let mut ranked: Vec<f64> = differences.iter().copied().filter(|d| d.abs() > EPS).collect();
    let n = ranked.len();
    if n == 0 {
        return None;
    }
    ranked.sort_by(|a, b| a.abs().total_cmp(&b.abs()));

    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && ranked[end].abs() - ranked[start].abs() <= EPS {
            end += 1;
        }
        // Ranks start+1..=end share their average.
        ranks[start..end].fill((start + 1 + end) as f64 / 2.0);
        let t = (end - start) as f64;
        tie_term += t * t * t - t;
        start = end;
    }
    let w_plus: f64 = ranked.iter().zip(&ranks).filter(|(d, _)| **d > 0.0).map(|(_, r)| r).sum();
    let w_minus = (n * (n + 1)) as f64 / 2.0 - w_plus;

    let zeros = pairs - n;
    let exact = pairs <= if zeros == 0 && tie_term == 0.0 { EXACT_MAX_PAIRS } else { PERMUTATION_MAX_PAIRS };
    let (z, p_value, method) = if exact {
        (None, exact_p(&ranks, w_plus), Method::Exact)
    } else {
        let (z, p) = normal_p(n, w_plus, tie_term);
        (Some(z), p, Method::Normal)
    };
    Some(Wilcoxon { pairs, zeros, n, w_plus, w_minus, z, p_value, method })
}

/// Exact two-sided p-value of W+ when each rank's sign is a fair coin.
/// Ranks are multiples of 0.5, so the subset-sum counts run over doubled
/// ranks; counts stay below 2^53 for n ≤ 50, hence exact in f64.
fn exact_p(ranks: &[f64], w_plus: f64) -> f64 {
    let weights: Vec<usize> = ranks.iter().map(|r| (2.0 * r).round() as usize).collect();
    let mut counts = vec![0.0f64; weights.iter().sum::<usize>() + 1];
    counts[0] = 1.0;
    let mut reach = 0;
    for &w in &weights {
        reach += w;
        // Descending, so counts[s - w] is still the count without this rank.
        for s in (w..=reach).rev() {
            counts[s] += counts[s - w];
        }
    }
    let observed = (2.0 * w_plus).round() as usize;
    let at_most: f64 = counts[..=observed].iter().sum();
    let at_least: f64 = counts[observed..].iter().sum();
    let total = 2f64.powi(ranks.len() as i32);
    (2.0 * at_most.min(at_least) / total).min(1.0)
}

/// Normal approximation with tie correction and no continuity correction:
/// returns (z, two-sided p).
fn normal_p(n: usize, w_plus: f64, tie_term: f64) -> (f64, f64) {
    let n = n as f64;
    let mean = n * (n + 1.0) / 4.0;
    let variance = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_term / 48.0;
    let z = (w_plus - mean) / variance.sqrt();
    // Φ(−|z|) rather than 1 − Φ(|z|): no cancellation for small p.
    (z, (2.0 * normal_cdf(-z.abs())).min(1.0))
}

/// Arithmetic mean; None for an empty slice.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The q-th percentile (q in [0, 100], else None) with linear interpolation
/// between closest ranks, as numpy's default `method="linear"` (Hyndman–Fan
/// type 7). `xs` need not be sorted; None for an empty slice.
pub fn percentile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() || !(0.0..=100.0).contains(&q) {
        return None;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    let h = last as f64 * (q / 100.0);
    let lo = (h.floor() as usize).min(last);
    let (a, b, t) = (sorted[lo], sorted[(lo + 1).min(last)], h - lo as f64);
    // Interpolate from the nearer end, as numpy does, so the ends are exact.
    Some(if t < 0.5 { a + (b - a) * t } else { b - (b - a) * (1.0 - t) })
}

/// Relative change of the test mean over the control mean, in percent; None
/// when the control mean is 0.
pub fn improvement_percent(control_mean: f64, test_mean: f64) -> Option<f64> {
    (control_mean != 0.0).then(|| (test_mean - control_mean) / control_mean.abs() * 100.0)
}

/// Percentile-bootstrap confidence interval of the mean of `differences`
/// (resampling pairs with replacement), `resamples` times, at `level` (e.g.
/// 0.95), deterministic for a seed. None when there is no data, no resample,
/// or `level` is not strictly between 0 and 1.
pub fn bootstrap_mean_ci(differences: &[f64], resamples: usize, level: f64, seed: u64) -> Option<(f64, f64)> {
    if differences.is_empty() || resamples == 0 || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let mut rng = Rng::new(seed);
    let n = differences.len();
    let means: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| differences[rng.below(n as u64) as usize]).sum();
            sum / n as f64
        })
        .collect();
    let tail = (1.0 - level) / 2.0 * 100.0;
    Some((percentile(&means, tail)?, percentile(&means, 100.0 - tail)?))
}

/// Standard normal CDF, by W. J. Cody's rational Chebyshev approximations
/// (Math. Comp. 1969; ANORM in TOMS 715, as ported in R's `pnorm`),
/// accurate to about double precision, relative in the lower tail.
pub fn normal_cdf(x: f64) -> f64 {
    use cody::*;
    if x.is_nan() {
        return f64::NAN;
    }
    let y = x.abs();
    if y <= 0.674_489_75 {
        return 0.5 + x * ratio(&A, &B, x * x);
    }
    // Φ(−|x|), the tail, computed directly to keep relative accuracy.
    let tail = if y <= SQRT_32 {
        gauss_times(y, ratio(&C, &D, y))
    } else if y < 37.5193 {
        let xsq = 1.0 / (y * y);
        gauss_times(y, (FRAC_1_SQRT_2PI - xsq * ratio(&P, &Q, xsq)) / y)
    } else {
        0.0
    };
    if x > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Coefficients of Cody's approximations for Φ, as in R's pnorm.c (shortest
/// round-trip forms of the published 20-digit values).
#[rustfmt::skip]
mod cody {
    pub const A: [f64; 5] = [2.2352520354606837, 161.02823106855587, 1067.6894854603709, 18154.98125334356,
        0.06568233791820745];
    pub const B: [f64; 4] = [47.202581904688245, 976.0985517377767, 10260.932208618979, 45507.78933502673];
    pub const C: [f64; 9] = [0.39894151208813466, 8.883149794388377, 93.50665613217785, 597.2702763948002,
        2494.5375852903726, 6848.190450536283, 11602.65143764735, 9842.714838383978, 1.0765576773720192e-8];
    pub const D: [f64; 8] = [22.266688044328117, 235.387901782625, 1519.3775994075547, 6485.558298266761,
        18615.571640885097, 34900.95272114598, 38912.00328609327, 19685.429676859992];
    pub const P: [f64; 6] = [0.215898534057957, 0.12740116116024736, 0.022235277870649807, 0.0014216191932278934,
        2.9112874951168793e-5, 0.023073441764940174];
    pub const Q: [f64; 5] = [1.284260096144911, 0.4682382124808651, 0.06598813786892856, 0.0037823963320275824,
        7.297515550839662e-5];
    pub const FRAC_1_SQRT_2PI: f64 = 0.3989422804014327;
    pub const SQRT_32: f64 = 5.656854249492381;
}

/// Cody's rational function in x, evaluated as he wrote it: `num` has one
/// more coefficient than `den`, whose leading coefficient is an implicit 1.
fn ratio(num: &[f64], den: &[f64], x: f64) -> f64 {
    let k = den.len() - 1;
    let (mut n, mut d) = (num[k + 1] * x, x);
    for (a, b) in num.iter().zip(den).take(k) {
        n = (n + a) * x;
        d = (d + b) * x;
    }
    (n + num[k]) / (d + den[k])
}

/// exp(−y²/2)·r, with y² split so the large part of exp's argument is exact.
fn gauss_times(y: f64, r: f64) -> f64 {
    let ysq = (y * 16.0).trunc() / 16.0;
    let del = (y - ysq) * (y + ysq);
    (-ysq * ysq * 0.5).exp() * (-del * 0.5).exp() * r
}

/// A small seeded PRNG (SplitMix64), shared with the eval's scheduler (which
/// arm goes first, order of pairs) so a seed reproduces a whole run.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// Next 64 random bits (Steele, Lea & Flood's SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n, without modulo bias. Panics when n == 0 (empty range).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below: empty range");
        // 2^64 mod n: rejecting draws under it leaves a multiple of n outcomes.
        let threshold = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            if x >= threshold {
                return x % n;
            }
        }
    }

    /// Fisher–Yates shuffle: every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Reference values come from SciPy 1.17.1 / NumPy 2.4.6 (Python 3.11):
    //! `scipy.stats.wilcoxon(d, zero_method="wilcox", correction=False,
    //! method="auto")` unless noted, `numpy.percentile`, `scipy.stats.norm.cdf`.
    use super::*;

    fn close(actual: f64, expected: f64, rel: f64) {
        let tol = rel * expected.abs().max(f64::MIN_POSITIVE);
        assert!((actual - expected).abs() <= tol, "{actual} != {expected} (rel {rel})");
    }

    /// Differences (test − control) · unit from digit strings of score levels.
    fn diffs(control: &str, test: &str, unit: f64) -> Vec<f64> {
        let level = |c: char| f64::from(c.to_digit(10).unwrap_or(0));
        // t·unit − c·unit, not (t − c)·unit: float noise, as in averaged scores.
        control.chars().zip(test.chars()).map(|(c, t)| level(t) * unit - level(c) * unit).collect()
    }

    #[test]
    fn darwin_zea_mays_exact() {
        // Example of scipy's wilcoxon documentation: statistic 24, p 0.041259765625.
        let d = [6., 8., 14., 16., 23., 24., 28., 29., 41., -48., 49., 56., 60., -67., 75.];
        let w = wilcoxon_signed_rank(&d).expect("has nonzero differences");
        assert_eq!((w.pairs, w.zeros, w.n, w.method, w.z), (15, 0, 15, Method::Exact, None));
        assert_eq!((w.w_plus, w.w_minus), (96.0, 24.0));
        close(w.p_value, 0.041259765625, 1e-9);
    }

    #[test]
    fn wikipedia_pairs_with_tie_and_zero() {
        // d = second − first of (125,110),(115,122),(130,125),(140,120),(140,140),
        // (115,124),(140,123),(125,137),(140,135),(135,145). 10 pairs ≤ 13 with a
        // zero and a tie: scipy's 'auto' runs its exhaustive permutation test.
        let d = [-15., 7., -5., -20., 0., 9., -17., 12., -5., 10.];
        let w = wilcoxon_signed_rank(&d).expect("has nonzero differences");
        assert_eq!((w.pairs, w.zeros, w.n, w.method), (10, 1, 9, Method::Exact));
        assert_eq!((w.w_plus, w.w_minus), (18.0, 27.0));
        close(w.p_value, 0.6328125, 1e-9);
        // Normal branch on the same data vs method="asymptotic": one tie pair, Σ(t³−t) = 6.
        let (z, p) = normal_p(9, 18.0, 6.0);
        close(z, -0.533582250055877, 1e-9);
        close(p, 0.5936305914425295, 1e-6);
    }

    #[test]
    fn thirty_pairs_multiples_of_25_normal() {
        let d = diffs("433423410114402403024111314222", "222443332431404311301243444433", 25.0);
        let w = wilcoxon_signed_rank(&d).expect("has nonzero differences");
        assert_eq!((w.pairs, w.n, w.method), (30, 25, Method::Normal));
        assert_eq!((w.w_plus, w.w_minus), (216.5, 108.5));
        close(w.z.map_or(0.0, f64::abs), 1.4744800211301685, 1e-9);
        close(w.p_value, 0.14035239305427388, 1e-6);
    }

    #[test]
    fn hundred_pairs_thirds_with_float_noise_normal() {
        // Scipy was given exact ties, (t − c)·(100/3); float noise must not split them.
        let d = diffs(
            "0210022223212200212100131123121212223021100130133002011302203313233210203302001332220131002033213211",
            "2300213131231332031332022231322333312321332321313330331332121001321121233332121301030232333233313311",
            100.0 / 3.0,
        );
        let w = wilcoxon_signed_rank(&d).expect("has nonzero differences");
        assert_eq!((w.pairs, w.n, w.method), (100, 77, Method::Normal));
        assert_eq!((w.w_plus, w.w_minus), (2122.5, 880.5));
        close(w.z.map_or(0.0, f64::abs), 3.214909786850431, 1e-9);
        close(w.p_value, 0.0013048552282593534, 1e-6);
    }

    #[test]
    fn no_ties_exact_up_to_fifty_pairs_normal_above() {
        let e = [
            12.66, 1.59, 8.42, 10.81, 11.31, 12.21, -1.56, 18.15, -9.47, 11.62, 7.94, 11.74, 21.79, 17.84, -8.45,
            -13.89, 11.17, -7.15, 2.88, 11.4, -13.44, -18.1, 5.59, 3.44, 0.54, 3.39, -5.61, -12.13, 1.33, -6.72,
        ];
        let w = wilcoxon_signed_rank(&e).expect("has nonzero differences");
        assert_eq!((w.method, w.w_plus, w.w_minus), (Method::Exact, 302.0, 163.0));
        close(w.p_value, 0.15794767439365387, 1e-9);

        let f = [
            -14.935, 6.557, 0.886, 5.565, -8.393, -5.081, -8.49, -7.366, 3.454, -6.33, 5.061, 4.898, 21.752, -12.428,
            10.379, 0.605, 1.36, -12.999, -3.102, 8.932, 0.675, 2.311, -1.407, 13.046, 1.285, -20.504, -5.421, -18.188,
            -31.014, -3.801, 14.836, 1.971, -10.225, -7.907, 12.806, 3.076, 1.98, 0.965, 1.884, 9.554, 7.026, 3.657,
            -8.929, 6.611, -5.342, 12.438, -11.211, 0.124, 1.426, -11.746, 18.72,
        ];
        let w50 = wilcoxon_signed_rank(&f[..50]).expect("has nonzero differences");
        assert_eq!((w50.method, w50.w_plus), (Method::Exact, 601.0));
        close(w50.p_value, 0.7304479390240814, 1e-9);
        let w51 = wilcoxon_signed_rank(&f).expect("has nonzero differences");
        assert_eq!((w51.method, w51.w_plus), (Method::Normal, 650.0));
        close(w51.p_value, 0.9030137998838772, 1e-6);
    }

    #[test]
    fn zeros_decide_the_method_by_pair_count() {
        // 12 pairs with zeros: scipy's exhaustive permutation test.
        let g = [3.5, -1.25, 0., 7., 2., -4.5, 0., 9., 11., -0.5, 6., 8.];
        let w = wilcoxon_signed_rank(&g).expect("has nonzero differences");
        assert_eq!((w.zeros, w.method, w.w_plus, w.w_minus), (2, Method::Exact, 47.0, 8.0));
        close(w.p_value, 0.048828125, 1e-9);
        // 20 pairs with zeros and no ties: scipy falls back to the normal approximation.
        let mut h: Vec<f64> = (1..=18).map(f64::from).collect();
        h[3] = -4.0;
        h[10] = -11.0;
        h.extend([0.0, 0.0]);
        let w = wilcoxon_signed_rank(&h).expect("has nonzero differences");
        assert_eq!((w.n, w.method, w.w_plus, w.w_minus), (18, Method::Normal, 156.0, 15.0));
        close(w.p_value, 0.0021384380262505845, 1e-6);
        // Nothing to test.
        assert_eq!(wilcoxon_signed_rank(&[]), None);
        assert_eq!(wilcoxon_signed_rank(&[0.0, 1e-12, -0.0]), None);
        assert_eq!(wilcoxon_signed_rank(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn normal_cdf_matches_scipy() {
        // Absolute error vs scipy.stats.norm.cdf; the tails also relative, below.
        let xs = [-6.0, -1.96, -0.5, 0.0, 0.5, 1.96, 6.0, 3.0];
        let expected = [9.865876450376946e-10, 0.024997895148220435, 0.3085375387259869, 0.5, 0.6914624612740131];
        let expected_more = [0.9750021048517795, 0.9999999990134123, 0.9986501019683699];
        for (x, e) in xs.into_iter().zip(expected.into_iter().chain(expected_more)) {
            assert!((normal_cdf(x) - e).abs() < 1e-12, "Φ({x})");
        }
        close(normal_cdf(-3.0), 0.0013498980316300933, 1e-12);
        close(normal_cdf(-6.0), 9.865876450376946e-10, 1e-12);
        close(normal_cdf(-10.0), 7.61985302416047e-24, 1e-12);
        assert_eq!(normal_cdf(-40.0), 0.0);
        assert_eq!(normal_cdf(40.0), 1.0);
    }

    #[test]
    fn percentile_mean_and_improvement() {
        let xs = [42.0, 7.5, 100.0, 0.0, 63.25, 18.0, 91.0, 55.5, 33.3, 77.0, 12.0];
        let cases = [(0.0, 0.0), (25.0, 15.0), (50.0, 42.0), (95.0, 95.5), (99.0, 99.10000000000001), (100.0, 100.0)];
        for (q, expected) in cases {
            let got = percentile(&xs, q).expect("non-empty, q in range");
            assert!((got - expected).abs() < 1e-12, "q={q}: {got} != {expected}");
        }
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&xs, 100.5), None);
        assert_eq!(percentile(&[7.0], 30.0), Some(7.0));
        assert_eq!((mean(&[]), mean(&[50.0, 75.0, 100.0])), (None, Some(75.0)));
        assert_eq!(improvement_percent(0.0, 10.0), None);
        assert_eq!(improvement_percent(80.0, 100.0), Some(25.0));
        assert_eq!(improvement_percent(80.0, 60.0), Some(-25.0));
    }

    #[test]
    fn bootstrap_ci() {
        let d: Vec<f64> = (0..40).map(|i| f64::from(i % 7) * 5.0 + 10.0).collect();
        let ci = bootstrap_mean_ci(&d, 2000, 0.95, 42).expect("valid input");
        assert_eq!(Some(ci), bootstrap_mean_ci(&d, 2000, 0.95, 42));
        assert_ne!(Some(ci), bootstrap_mean_ci(&d, 2000, 0.95, 43));
        let m = mean(&d).expect("non-empty");
        assert!(ci.0 < m && m < ci.1 && ci.0 > 0.0, "{ci:?} around {m}");
        // Four times the data: the interval about halves.
        let more: Vec<f64> = d.iter().cycle().take(160).copied().collect();
        let wide = bootstrap_mean_ci(&more, 2000, 0.95, 42).expect("valid input");
        assert!(wide.1 - wide.0 < 0.7 * (ci.1 - ci.0), "{wide:?} vs {ci:?}");
        assert_eq!(bootstrap_mean_ci(&[12.5; 9], 500, 0.9, 1), Some((12.5, 12.5)));
        assert_eq!(bootstrap_mean_ci(&[], 500, 0.9, 1), None);
        assert_eq!(bootstrap_mean_ci(&d, 0, 0.9, 1), None);
        assert_eq!(bootstrap_mean_ci(&d, 500, 1.0, 1), None);
    }

    #[test]
    fn splitmix64_reference_sequence() {
        // Values from a direct Python transcription of Vigna's splitmix64.c.
        let mut rng = Rng::new(1234567);
        let got = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        assert_eq!(got, [6457827717110365317, 3203168211198807973, 9817491932198370423]);
        assert_eq!(Rng::new(0).next_u64(), 16294208416658607535);
    }

    #[test]
    fn below_is_uniform_and_shuffle_permutes() {
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        // Expected 10 000 each, sd ≈ 91.
        assert!(counts.iter().all(|&c| (9_600..=10_400).contains(&c)), "{counts:?}");
        assert_eq!(rng.below(1), 0);

        let mut items: Vec<u32> = (0..20).collect();
        rng.shuffle(&mut items);
        assert_ne!(items, (0..20).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..20).collect::<Vec<_>>());
        rng.shuffle::<u32>(&mut []);
    }
}
