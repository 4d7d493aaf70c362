"""The hot loop of EM: one pass over the rows gives the E-step and the sufficient statistics.

Every covariance type writes log(w_k N(x | m_k, S_k)) as one quadratic form in the shifted
point t = x - g (g a shift near the data's mean, so the moments below do not cancel):

    log p_k(t) = phi(t) @ A[:, k] + t @ B[:, k] + c[k]

with quadratic features phi(t): the upper triangle of t*t' (full and tied: d(d+1)/2 columns),
t.^2 (diag) or t'*t (spherical). A block of rows then costs one elementwise pass to build phi
and BLAS-3 products for everything else: the log-densities (phi @ A, t @ B), and the
statistics the M-step needs, R'*phi and R'*t (R the responsibilities). No per-component loop,
no inverse: the quadratic forms come from the precision Cholesky factors.

Arrays go through the namespace ``xp`` (NumPy by default): the seam for other backends.
Statistics are summed in float64 whatever the data's dtype; parameters are float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import MatdiffError

BLOCK_BYTES = 1 << 20  # a block's feature matrix stays in cache (measured: benchmarks/bench_em)


class FitError(MatdiffError, ValueError):
    """Bad data or an ill-posed fit; a ValueError too, as scikit-learn's conventions expect."""


@dataclass
class Params:
    """A mixture's parameters in scikit-learn's layout (float64)."""

    kind: str
    weights: np.ndarray          # (K,)
    means: np.ndarray            # (K, d)
    covariances: np.ndarray      # full (K,d,d), tied (d,d), diag (K,d), spherical (K,)
    precisions_cholesky: np.ndarray  # the same shapes; precision = U @ U.T (U upper)


@dataclass
class Stats:
    """Sufficient statistics of some rows: they add across blocks, chunks and machines."""

    n: int
    log_likelihood: float        # sum over the rows of log p(x)
    nk: np.ndarray               # (K,) sum of responsibilities
    first: np.ndarray            # (K, d) R' t
    second: np.ndarray           # (K or 1, F) R' phi(t) (tied: 1' phi(t))

    def __add__(self, other: Stats) -> Stats:
        return Stats(self.n + other.n, self.log_likelihood + other.log_likelihood,
                     self.nk + other.nk, self.first + other.first, self.second + other.second)


# -- the quadratic form of each covariance type --------------------------------------------

def _triangle(d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(d)


def features(t, kind: str, xp=np):
    """phi(t) for a block of shifted rows t (B, d)."""
    if kind == "diag":
        return t * t
    if kind == "spherical":
        return xp.sum(t * t, axis=1, keepdims=True)
    d = t.shape[1]
    # row j of the triangle: t_j * t_j..d, one broadcast product per row of the triangle
    return xp.concatenate([t[:, j:j + 1] * t[:, j:] for j in range(d)], axis=1)


def quadratic_form(p: Params, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, c): log(w_k N(x | m_k, S_k)) = phi(t) @ A + t @ B + c for t = x - shift."""
    K, d = p.means.shape
    centre = p.means - shift                                  # (K, d)
    U = p.precisions_cholesky
    if p.kind in ("full", "tied"):
        P = U @ np.swapaxes(U, -1, -2)                        # precision(s), from the factor
        P = np.broadcast_to(P, (K, d, d)) if p.kind == "tied" else P
        rows, cols = _triangle(d)
        twice = np.where(rows == cols, 1.0, 2.0)              # t_i t_j and t_j t_i: one column
        A = (-0.5 * twice * P[:, rows, cols]).T               # (F, K)
        if p.kind == "tied":
            A = A[:, :1]
        Pm = np.einsum("kij,kj->ki", P, centre)               # (K, d) P_k m_k
        log_det = np.sum(np.log(np.diagonal(np.broadcast_to(U, (K, d, d)), axis1=1, axis2=2)),
                         axis=1)
    else:
        prec = U ** 2                                          # diag (K, d), spherical (K,)
        if p.kind == "diag":
            A = -0.5 * prec.T                                  # (d, K)
            Pm = prec * centre
            log_det = np.sum(np.log(U), axis=1)
        else:
            A = -0.5 * prec[None, :]                           # (1, K)
            Pm = prec[:, None] * centre
            log_det = d * np.log(U)
    c = (np.log(p.weights) + log_det - 0.5 * d * math.log(2 * math.pi)
         - 0.5 * np.sum(Pm * centre, axis=1))
    return A, Pm.T, c


def _log_densities(t, A, B, c, kind, xp):
    phi = features(t, kind, xp)
    log_p = phi @ A + t @ B + c
    return phi, log_p


def _log_normalise(log_p, xp):
    """Log-sum-exp over the components, and the responsibilities it normalises."""
    top = xp.max(log_p, axis=1, keepdims=True)
    r = xp.exp(log_p - top)
    total = xp.sum(r, axis=1, keepdims=True)
    return xp.log(total) + top, r / total


def _block_rows(d: int, width: int, itemsize: int) -> int:
    return max(64, BLOCK_BYTES // (itemsize * max(width, d)))


def accumulate(X, p: Params, shift: np.ndarray, xp=np) -> Stats:
    """E-step and sufficient statistics of the rows of X, in one pass, block by block."""
    A, B, c = (xp.asarray(a, dtype=X.dtype) for a in quadratic_form(p, shift))
    shift_x = xp.asarray(shift, dtype=X.dtype)
    K, d = p.means.shape
    nk, first = np.zeros(K), np.zeros((K, d))
    second = np.zeros((1 if p.kind == "tied" else K, A.shape[0]))
    total = 0.0
    step = _block_rows(d, A.shape[0], X.dtype.itemsize)
    for start in range(0, X.shape[0], step):
        t = X[start:start + step] - shift_x
        phi, log_p = _log_densities(t, A, B, c, p.kind, xp)
        log_norm, r = _log_normalise(log_p, xp)
        total += float(xp.sum(log_norm))
        nk += _f64(xp.sum(r, axis=0))
        first += _f64(r.T @ t)
        second += _f64(xp.sum(phi, axis=0, keepdims=True) if p.kind == "tied" else r.T @ phi)
    return Stats(X.shape[0], total, nk, first, second)


def responsibility_stats(X, resp, kind: str, shift: np.ndarray, xp=np) -> Stats:
    """The statistics for given responsibilities (initialisation), block by block."""
    K, d = resp.shape[1], X.shape[1]
    shift_x = xp.asarray(shift, dtype=X.dtype)
    nk, first, second = np.zeros(K), np.zeros((K, d)), None
    step = _block_rows(d, d * (d + 1) // 2, X.dtype.itemsize)
    for start in range(0, X.shape[0], step):
        t = X[start:start + step] - shift_x
        r = xp.asarray(resp[start:start + step], dtype=X.dtype)
        phi = features(t, kind, xp)
        part = _f64(xp.sum(phi, axis=0, keepdims=True) if kind == "tied" else r.T @ phi)
        second = part if second is None else second + part
        nk += _f64(xp.sum(r, axis=0))
        first += _f64(r.T @ t)
    return Stats(X.shape[0], float("nan"), nk, first, second)


def weighted_log_prob(X, p: Params, xp=np):
    """log(w_k N(x_n | m_k, S_k)), (N, K), blocked like the fit."""
    shift = np.average(p.means, axis=0, weights=p.weights)
    A, B, c = (xp.asarray(a, dtype=X.dtype) for a in quadratic_form(p, shift))
    shift_x = xp.asarray(shift, dtype=X.dtype)
    step = _block_rows(X.shape[1], A.shape[0], X.dtype.itemsize)
    parts = [_log_densities(X[s:s + step] - shift_x, A, B, c, p.kind, xp)[1]
             for s in range(0, X.shape[0], step)]
    return xp.concatenate(parts, axis=0)


def log_normalise(log_p, xp=np):
    """(log p(x_n), log responsibilities) from the weighted log-densities."""
    log_norm, r = _log_normalise(log_p, xp)
    with np.errstate(divide="ignore"):
        return log_norm[:, 0], xp.log(r)


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# -- the M-step: the updates of updates.py, from the statistics ------------------------------

def m_step(s: Stats, kind: str, reg_covar: float, shift: np.ndarray, eps: float) -> Params:
    """w = sum(r)/N, m = Y'*r/sum(r), S per type (updates.UPDATES), from the statistics.

    ``eps`` (ten machine epsilons of the data's dtype) keeps an empty component finite, as in
    scikit-learn, so fits agree with it to rounding."""
    nk = s.nk + eps
    weights = nk / nk.sum()
    mean_t = s.first / nk[:, None]                        # means in shifted coordinates
    d = mean_t.shape[1]
    if kind in ("full", "tied"):
        rows, cols = _triangle(d)
        second = np.zeros((s.second.shape[0], d, d))
        second[:, rows, cols] = s.second
        second[:, cols, rows] = s.second
        if kind == "full":
            cov = second / nk[:, None, None] - mean_t[:, :, None] * mean_t[:, None, :]
        else:
            cov = (second[0] - np.einsum("k,ki,kj->ij", nk, mean_t, mean_t)) / nk.sum()
        cov = cov + reg_covar * np.eye(d)
    elif kind == "diag":
        cov = s.second / nk[:, None] - mean_t ** 2 + reg_covar
    else:
        cov = (s.second[:, 0] / nk - np.sum(mean_t ** 2, axis=1)) / d + reg_covar
    return Params(kind, weights, mean_t + shift, cov, precision_cholesky(cov, kind))


SINGULAR = ("the mixture has a component whose covariance is not positive definite (too few "
            "or collapsed samples in it)")
SINGULAR_HINT = "increase reg_covar, use fewer components, or scale the data"


def precision_cholesky(cov: np.ndarray, kind: str) -> np.ndarray:
    """U upper triangular with U @ U.T = inv(cov), from the Cholesky factor of cov by a
    triangular solve (no inverse of cov is formed)."""
    if kind in ("diag", "spherical"):
        if np.any(cov <= 0):
            raise FitError(SINGULAR, hint=SINGULAR_HINT)
        return 1.0 / np.sqrt(cov)
    try:
        lower = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise FitError(SINGULAR, hint=SINGULAR_HINT) from None
    eye = np.broadcast_to(np.eye(cov.shape[-1]), lower.shape)
    # cov = L L'  =>  inv(cov) = inv(L)' inv(L), and U = inv(L)' is upper triangular
    return np.swapaxes(np.linalg.solve(lower, eye), -1, -2)


def precision_cholesky_from_precisions(precisions: np.ndarray, kind: str) -> np.ndarray:
    """U upper triangular with U @ U.T = precisions (scikit-learn's precisions_init)."""
    if kind in ("diag", "spherical"):
        return np.sqrt(precisions)
    try:
        lower = np.linalg.cholesky(precisions[..., ::-1, ::-1])
    except np.linalg.LinAlgError:
        raise FitError("precisions_init is not positive definite",
                       hint="pass symmetric positive definite precision matrices") from None
    # with J the reversal, J P J = L L' gives P = (J L J)(J L J)' and J L J is upper triangular
    return lower[..., ::-1, ::-1]


def covariances_from_precision_cholesky(U: np.ndarray, kind: str) -> np.ndarray:
    """cov = inv(U @ U.T) = inv(U)' inv(U), by a triangular solve."""
    if kind in ("diag", "spherical"):
        return 1.0 / U ** 2
    eye = np.broadcast_to(np.eye(U.shape[-1]), U.shape)
    inv_u = np.linalg.solve(U, eye)
    return np.swapaxes(inv_u, -1, -2) @ inv_u
