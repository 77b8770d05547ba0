//! The small dense linear algebra the proxies need, in `f64` on the host: eigenvalues of a
//! symmetric matrix and log|det| of a square one. Matrices are row-major `n × n` slices.

/// The eigenvalues of the symmetric matrix `a` (`n × n`, row-major), in ascending order:
/// Householder reduction to tridiagonal form, then bisection with Sturm counts.
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n, "an n × n matrix");
    if n == 0 {
        return Vec::new();
    }
    let (d, e) = tridiagonalize(a.to_vec(), n);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..n {
        let r = if i > 0 { e[i - 1].abs() } else { 0.0 } + if i + 1 < n { e[i].abs() } else { 0.0 };
        lo = lo.min(d[i] - r);
        hi = hi.max(d[i] + r);
    }
    let width = (hi - lo).max(f64::MIN_POSITIVE);
    (0..n).map(|k| kth_eigenvalue(&d, &e, k, lo - 1e-12 * width, hi + 1e-12 * width)).collect()
}

/// The largest singular value of the `rows × cols` matrix `m` (row-major): the square root of the
/// largest eigenvalue of its smaller Gram matrix.
pub fn largest_singular_value(m: &[f64], rows: usize, cols: usize) -> f64 {
    assert_eq!(m.len(), rows * cols, "a rows × cols matrix");
    // The Gram matrix of the shorter side: of the rows, or of the rows of the transpose.
    let transposed: Vec<f64>;
    let (n, len, rows_of) = if rows <= cols {
        (rows, cols, m)
    } else {
        transposed = (0..cols).flat_map(|i| (0..rows).map(move |k| m[k * cols + i])).collect();
        (cols, rows, transposed.as_slice())
    };
    let mut gram = vec![0.0; n * n];
    for i in 0..n {
        let a = &rows_of[i * len..(i + 1) * len];
        for j in 0..=i {
            let b = &rows_of[j * len..(j + 1) * len];
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            gram[i * n + j] = dot;
            gram[j * n + i] = dot;
        }
    }
    symmetric_eigenvalues(&gram, n).last().copied().unwrap_or(0.0).max(0.0).sqrt()
}

/// log|det a| of the square matrix `a` (`n × n`, row-major) by LU decomposition with partial
/// pivoting; `-inf` when `a` is singular.
pub fn log_abs_det(a: &[f64], n: usize) -> f64 {
    assert_eq!(a.len(), n * n, "an n × n matrix");
    let mut a = a.to_vec();
    let mut log_det = 0.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("a non-empty column");
        let p = a[pivot * n + col];
        if p == 0.0 || !p.is_finite() {
            return if p == 0.0 { f64::NEG_INFINITY } else { f64::NAN };
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
        }
        log_det += p.abs().ln();
        for row in col + 1..n {
            let f = a[row * n + col] / p;
            if f != 0.0 {
                for k in col..n {
                    a[row * n + k] -= f * a[col * n + k];
                }
            }
        }
    }
    log_det
}

/// Householder reduction of the symmetric `a` to a tridiagonal matrix with the same eigenvalues:
/// its diagonal `d` (`n`) and off-diagonal `e` (`n − 1`).
fn tridiagonalize(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut e = vec![0.0; n.saturating_sub(1)];
    for k in 0..n.saturating_sub(2) {
        // Reflect column k below the diagonal onto its first entry.
        let m = n - k - 1;
        let x: Vec<f64> = (0..m).map(|i| a[(k + 1 + i) * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            e[k] = 0.0;
            continue;
        }
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        // |v| > 0: alpha has the opposite sign of x[0], so v[0] = x[0] − alpha ≠ 0.
        let vnorm = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        v.iter_mut().for_each(|t| *t /= vnorm);
        // B ← H B H with H = I − 2 v vᵀ on the trailing block B: B − 2 v qᵀ − 2 q vᵀ,
        // where p = B v and q = p − (vᵀp) v.
        let p: Vec<f64> = (0..m).map(|i| (0..m).map(|j| a[(k + 1 + i) * n + k + 1 + j] * v[j]).sum()).collect();
        let kappa: f64 = v.iter().zip(&p).map(|(a, b)| a * b).sum();
        let q: Vec<f64> = p.iter().zip(&v).map(|(p, v)| p - kappa * v).collect();
        for i in 0..m {
            for j in 0..m {
                a[(k + 1 + i) * n + k + 1 + j] -= 2.0 * (v[i] * q[j] + q[i] * v[j]);
            }
        }
        e[k] = alpha;
    }
    if n >= 2 {
        e[n - 2] = a[(n - 1) * n + n - 2];
    }
    let d = (0..n).map(|i| a[i * n + i]).collect();
    (d, e)
}

/// Number of eigenvalues of the tridiagonal (`d`, `e`) below `x` (Sturm sequence count).
fn count_below(d: &[f64], e: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut q = 1.0;
    for i in 0..d.len() {
        let off = if i > 0 { e[i - 1] * e[i - 1] } else { 0.0 };
        q = d[i] - x - if i > 0 { off / q } else { 0.0 };
        if q == 0.0 {
            q = -f64::EPSILON * (d[i].abs() + x.abs()).max(f64::MIN_POSITIVE);
        }
        if q < 0.0 {
            count += 1;
        }
    }
    count
}

/// The `k`-th smallest eigenvalue of the tridiagonal (`d`, `e`) inside `[lo, hi]`, by bisection.
fn kth_eigenvalue(d: &[f64], e: &[f64], k: usize, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if count_below(d, e, mid) > k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenvalues_of_known_matrices() {
        let diag = [3.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0];
        let got = symmetric_eigenvalues(&diag, 3);
        for (g, want) in got.iter().zip([1.0, 2.0, 3.0]) {
            assert!((g - want).abs() < 1e-10, "{got:?}");
        }
        // [[2,1],[1,2]] has eigenvalues 1 and 3.
        let got = symmetric_eigenvalues(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((got[0] - 1.0).abs() < 1e-10 && (got[1] - 3.0).abs() < 1e-10, "{got:?}");
        // The path graph's Laplacian-like tridiagonal [2,-1;-1,2,-1;…] of size 5:
        // eigenvalues 2 − 2cos(kπ/6).
        let n = 5;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            a[i * n + i] = 2.0;
            if i + 1 < n {
                a[i * n + i + 1] = -1.0;
                a[(i + 1) * n + i] = -1.0;
            }
        }
        let got = symmetric_eigenvalues(&a, n);
        for (k, g) in got.iter().enumerate() {
            let want = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / 6.0).cos();
            assert!((g - want).abs() < 1e-10, "{got:?}");
        }
    }

    #[test]
    fn eigenvalues_of_a_dense_matrix_keep_trace_and_frobenius_norm() {
        let n = 7;
        let mut rng = crate::util::rng::Rng::new(4);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        // A = B Bᵀ is symmetric positive semi-definite.
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum();
            }
        }
        let eig = symmetric_eigenvalues(&a, n);
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        let frob: f64 = a.iter().map(|v| v * v).sum();
        assert!((eig.iter().sum::<f64>() - trace).abs() < 1e-8 * trace);
        assert!((eig.iter().map(|v| v * v).sum::<f64>() - frob).abs() < 1e-8 * frob);
        assert!(eig.windows(2).all(|w| w[0] <= w[1]) && eig[0] > -1e-9);
        // log det = Σ log λ for a positive definite matrix.
        let from_eig: f64 = eig.iter().map(|v| v.ln()).sum();
        assert!((log_abs_det(&a, n) - from_eig).abs() < 1e-7, "{} vs {from_eig}", log_abs_det(&a, n));
    }

    #[test]
    fn determinants_and_singular_values() {
        assert!((log_abs_det(&[0.0, 2.0, 3.0, 0.0], 2) - 6f64.ln()).abs() < 1e-12, "needs a pivot swap");
        assert_eq!(log_abs_det(&[1.0, 2.0, 2.0, 4.0], 2), f64::NEG_INFINITY);
        // [[3,0],[0,4],[0,0]] has singular values 4 and 3.
        assert!((largest_singular_value(&[3.0, 0.0, 0.0, 4.0, 0.0, 0.0], 3, 2) - 4.0).abs() < 1e-10);
        assert!((largest_singular_value(&[1.0, 1.0], 1, 2) - 2f64.sqrt()).abs() < 1e-10);
        assert_eq!(largest_singular_value(&[0.0; 4], 2, 2), 0.0);
    }
}
