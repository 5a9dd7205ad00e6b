"""Distances between two sets of features: Fréchet distance (FVD, FAD) and kernel distance (KVD).

Both take feature matrices [N, D] (rows are samples) and compute in float64.

Fréchet distance between Gaussians fitted to the two sets:
    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
With N < D (96 windows of 400 I3D logits) the covariances are singular, so the trace of the square root is
taken as the sum of sqrt(eigenvalues) of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2), whose eigenvalues are
those of S1 S2; tiny negative eigenvalues from rounding are clipped to zero. No complex parts, no sqrtm
iterations that fail on near-singular input; eigenvalues below rounding noise count as zero.

Bootstrap interval (frechet_interval): both sets resampled with replacement, row by row, the distance recomputed, and
the central quantiles of those distances taken: how much the figure moves with the clips that happened to be drawn.
Resampling repeats rows, which adds to both covariances' spread, so the interval sits above the plain figure (on the
bench's 96 windows the ground truth's FVD 1040 got [1062, 1331]): compare intervals with intervals, not with figures.

Kernel distance: the unbiased estimate of squared MMD with the polynomial kernel
k(x, y) = (gamma <x, y> + coef0)^degree, gamma = 1 / D by default (scikit-learn's polynomial_kernel defaults,
as the official KVD uses them).
"""
import numpy as np


def _as_features(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or inf")
    return x


def feature_stats(x) -> tuple:
    """Mean [D] and unbiased covariance [D, D] (float64) of features [N, D], N >= 2."""
    x = _as_features(x)
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {x.shape[0]}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix [D, D] by eigendecomposition."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(_clip_noise(w))) @ v.T


def _clip_noise(w: np.ndarray) -> np.ndarray:
    """Eigenvalues below rounding noise (max |w| * size * eps, as numpy's matrix_rank) set to 0: their square
    roots (~1e-7 each) would otherwise add up over the null space of a singular covariance."""
    tol = np.abs(w).max(initial=0.0) * w.size * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2 [D, D]."""
    r = _psd_sqrt(s1)
    m = r @ s2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_clip_noise(w)).sum())


def frechet_distance_from_stats(mu1, s1, mu2, s2) -> float:
    """Fréchet distance between N(mu1, S1) and N(mu2, S2); mu [D], S [D, D]. Never negative."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(d, 0.0)


def frechet_distance(x, y) -> float:
    """Fréchet distance between features x [N, D] and y [M, D] (FVD on I3D logits, FAD on audio embeddings)."""
    return frechet_distance_from_stats(*feature_stats(x), *feature_stats(y))


def frechet_interval(x, y, rounds: int = 200, level: float = 0.95, seed: int = 0) -> tuple:
    """(low, high): a `level` interval of the Fréchet distance of x [N, D] and y [M, D] from `rounds` bootstrap
    resamplings of their rows (seeded: the same features give the same interval): the replicates' spread below and
    above their median, placed around the distance itself.

    The replicates' own quantiles would not do: a resample repeats about a third of its rows, which shrinks its
    covariance's rank and inflates its distance, so with many dimensions per row (I3D's 400, aisfx's embedding)
    they all lie above the distance measured (Gaussian rows, 96 of 400 dimensions: 588-609 around a distance of 520
    whose fresh draws span 515-529; tests/test_eval_frechet.py checks 48 of 64). Their spread is a little wider than
    that of fresh draws, so the interval errs wide."""
    x, y = _as_features(x), _as_features(y)
    rng = np.random.default_rng(seed)
    d = [frechet_distance(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))]) for _ in range(rounds)]
    low, mid, high = np.quantile(d, [(1 - level) / 2, 0.5, (1 + level) / 2])
    distance = frechet_distance(x, y)
    return float(max(distance - (mid - low), 0.0)), float(distance + (high - mid))


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float = None, coef0: float = 1.0) -> np.ndarray:
    """(gamma x y^T + coef0)^degree, [N, M]; gamma defaults to 1 / D."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def kernel_distance(x, y, degree: int = 3, gamma: float = None, coef0: float = 1.0) -> float:
    """Unbiased squared MMD between x [N, D] and y [M, D] with the polynomial kernel (KVD on I3D logits).

    (sum_{i!=j} k(x_i, x_j)) / (N(N-1)) + (sum_{i!=j} k(y_i, y_j)) / (M(M-1)) - 2 mean k(x_i, y_j).
    Can be slightly negative when the sets are alike (it is unbiased).
    """
    x, y = _as_features(x), _as_features(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} vs {y.shape[1]}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("need at least 2 samples on each side")
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())
