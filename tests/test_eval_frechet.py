"""Fréchet distance and KVD against independent computations on random features."""
import itertools

import numpy as np
import pytest
import scipy.linalg

from savg.eval.frechet import feature_stats, frechet_distance, frechet_distance_from_stats, kernel_distance


def _fd_scipy(x, y):
    """Textbook FID formula with scipy's sqrtm (fine for well-conditioned covariances)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)


def _fd_nuclear(x, y):
    """tr((S1 S2)^1/2) = nuclear norm of A^T B with S1 = A A^T, S2 = B B^T: exact for singular covariances."""
    a = (x - x.mean(0)).T / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)).T / np.sqrt(len(y) - 1)
    tr_sqrt = np.linalg.svd(a.T @ b, compute_uv=False).sum()
    return ((x.mean(0) - y.mean(0)) ** 2).sum() + (a ** 2).sum() + (b ** 2).sum() - 2 * tr_sqrt


def _mmd_loops(x, y, degree=3, coef0=1.0):
    """Unbiased polynomial MMD^2 by explicit loops over pairs."""
    g = 1.0 / x.shape[1]
    k = lambda u, v: (g * float(np.dot(u, v)) + coef0) ** degree
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_frechet_matches_scipy_sqrtm_well_conditioned():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    y = rng.normal(0.3, 1.5, size=(300, 12))
    assert frechet_distance(x, y) == pytest.approx(_fd_scipy(x, y), rel=1e-9)


def test_frechet_singular_covariances_match_nuclear_norm_identity():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 64)).astype(np.float32)  # N < D: rank-deficient, as 96 windows x 400 logits
    y = rng.normal(0.1, 2.0, size=(30, 64)).astype(np.float32)
    want = _fd_nuclear(x.astype(np.float64), y.astype(np.float64))
    assert frechet_distance(x, y) == pytest.approx(want, rel=1e-8)


def test_frechet_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.0]), np.array([9.0, 1.0, 2.0])  # one zero variance: singular
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-12)


def test_frechet_identical_sets_is_zero_and_symmetric():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 40)), rng.normal(size=(15, 40))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    mu, s = feature_stats(x)
    assert mu.dtype == np.float64 and s.shape == (40, 40)


def test_kernel_distance_matches_loops():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 7)), rng.normal(0.5, 1.0, size=(11, 7))
    assert kernel_distance(x, y) == pytest.approx(_mmd_loops(x, y), rel=1e-10)
    assert kernel_distance(x, y, degree=2, coef0=0.5) == pytest.approx(_mmd_loops(x, y, 2, 0.5), rel=1e-10)


def test_kernel_distance_same_distribution_near_zero_and_shift_positive():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    assert abs(kernel_distance(x, y)) < 0.02
    assert kernel_distance(x, y + 1.0) > 0.5


def test_bad_inputs_refused():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        kernel_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        frechet_distance(np.full((4, 3), np.nan), np.zeros((4, 3)))


def test_bootstrap_interval_holds_the_distance_and_narrows_with_more_samples():
    from savg.eval.frechet import frechet_distance, frechet_interval
    rng = np.random.default_rng(0)
    small = rng.normal(size=(40, 4)), rng.normal(0.5, 1.0, size=(40, 4))
    large = rng.normal(size=(400, 4)), rng.normal(0.5, 1.0, size=(400, 4))
    lo, hi = frechet_interval(*small)
    assert lo < frechet_distance(*small) < hi
    lo_l, hi_l = frechet_interval(*large)
    assert lo_l < frechet_distance(*large) < hi_l and hi_l - lo_l < hi - lo
    assert frechet_interval(*small) == (lo, hi)  # seeded


def test_bootstrap_interval_holds_fresh_draws_with_many_dimensions_per_row():
    from savg.eval.frechet import frechet_distance, frechet_interval
    rng = np.random.default_rng(1)
    draw = lambda: (rng.normal(size=(48, 64)), rng.normal(0.3, 1.0, size=(48, 64)))  # noqa: E731
    x, y = draw()
    lo, hi = frechet_interval(x, y, rounds=100)
    fresh = np.quantile([frechet_distance(*draw()) for _ in range(60)], [0.1, 0.5, 0.9])
    assert lo < frechet_distance(x, y) < hi and lo < fresh[0] and fresh[2] < hi  # resamples alone sit above all three
    assert hi - lo < 4 * (fresh[2] - fresh[0])
