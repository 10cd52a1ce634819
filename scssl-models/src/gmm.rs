//! A two-component Gaussian mixture of 1-D values, fitted as scikit-learn's
//! `GaussianMixture(n_components=2)` does: a k-means start, EM until the change of the mean
//! log-likelihood is below 1e-3 within 100 iterations, `reg_covar` 1e-6 added to each
//! variance. Used by totalVI's background prior and CLAIRE's anchor re-filtering.
//!
//! One difference by design: scikit-learn starts k-means from random k-means++ centres; here
//! k-means starts from the smallest and largest value, so the fit is deterministic (on data
//! with two clear modes both reach the same mixture).

const REG_COVAR: f64 = 1e-6;
const TOL: f64 = 1e-3;
const MAX_ITER: usize = 100;

/// A fitted two-component 1-D Gaussian mixture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gmm2 {
    /// Mixing weights.
    pub weights: [f64; 2],
    /// Component means.
    pub means: [f64; 2],
    /// Component variances (with `reg_covar`).
    pub variances: [f64; 2],
}

/// Two-means of 1-D values from the extremes (Lloyd's iterations); `None` with fewer than
/// two distinct values.
fn two_means(x: &[f64]) -> Option<Vec<bool>> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let (mut c0, mut c1) = (lo, hi);
    let mut upper: Vec<bool> = vec![false; x.len()];
    for _ in 0..300 {
        let next: Vec<bool> = x.iter().map(|&v| (v - c1).abs() < (v - c0).abs()).collect();
        let n1 = next.iter().filter(|u| **u).count();
        if n1 == 0 || n1 == x.len() {
            return None;
        }
        let s1: f64 = x
            .iter()
            .zip(&next)
            .filter(|(_, u)| **u)
            .map(|(v, _)| v)
            .sum();
        let s0: f64 = x
            .iter()
            .zip(&next)
            .filter(|(_, u)| !**u)
            .map(|(v, _)| v)
            .sum();
        c1 = s1 / n1 as f64;
        c0 = s0 / (x.len() - n1) as f64;
        let done = next == upper;
        upper = next;
        if done {
            break;
        }
    }
    Some(upper)
}

impl Gmm2 {
    /// Fits the mixture by EM; `None` where scikit-learn could not fit or would warn (fewer
    /// than two distinct values, no convergence within 100 iterations).
    pub fn fit(x: &[f64]) -> Option<Gmm2> {
        let n = x.len();
        let upper = two_means(x)?;
        let mut resp: Vec<[f64; 2]> = upper
            .iter()
            .map(|&u| if u { [0.0, 1.0] } else { [1.0, 0.0] })
            .collect();
        let m_step = |resp: &[[f64; 2]]| -> Gmm2 {
            let mut g = Gmm2 {
                weights: [0.0; 2],
                means: [0.0; 2],
                variances: [0.0; 2],
            };
            for k in 0..2 {
                let nk: f64 = resp.iter().map(|r| r[k]).sum::<f64>() + 10.0 * f64::EPSILON;
                let m = resp.iter().zip(x).map(|(r, v)| r[k] * v).sum::<f64>() / nk;
                let v = resp
                    .iter()
                    .zip(x)
                    .map(|(r, xv)| r[k] * (xv - m).powi(2))
                    .sum::<f64>()
                    / nk
                    + REG_COVAR;
                g.weights[k] = nk / n as f64;
                g.means[k] = m;
                g.variances[k] = v;
            }
            g
        };
        let mut g = m_step(&resp);
        let mut lower_bound = f64::NEG_INFINITY;
        for _ in 0..MAX_ITER {
            let previous = lower_bound;
            let mut total = 0.0;
            for (r, &v) in resp.iter_mut().zip(x) {
                let (post, norm) = g.e_step(v);
                *r = post;
                total += norm;
            }
            g = m_step(&resp);
            lower_bound = total / n as f64;
            if (lower_bound - previous).abs() < TOL {
                return Some(g);
            }
        }
        None
    }

    /// Posterior probabilities of the two components for `v` and the log-density of `v`.
    fn e_step(&self, v: f64) -> ([f64; 2], f64) {
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let lp: [f64; 2] = std::array::from_fn(|k| {
            -0.5 * (ln_2pi
                + self.variances[k].ln()
                + (v - self.means[k]).powi(2) / self.variances[k])
                + self.weights[k].ln()
        });
        let max = lp[0].max(lp[1]);
        let norm = max + ((lp[0] - max).exp() + (lp[1] - max).exp()).ln();
        ([(lp[0] - norm).exp(), (lp[1] - norm).exp()], norm)
    }

    /// Posterior probabilities of the two components (scikit-learn's `predict_proba`).
    pub fn posteriors(&self, v: f64) -> [f64; 2] {
        self.e_step(v).0
    }
}
