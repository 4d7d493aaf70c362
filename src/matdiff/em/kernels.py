"""The hot loop of EM: one pass over the rows gives the E-step and the sufficient statistics.

Every covariance type writes log(w_k N(x | m_k, S_k)) as one quadratic form in the shifted
point t = x - g (g a shift near the data's mean, so the moments below do not cancel):

    log p_k(t) = phi(t) @ A[:, k] + t @ B[:, k] + c[k]

with quadratic features phi(t): the upper triangle of t*t' (full and tied: d(d+1)/2 columns),
t.^2 (diag) or t'*t (spherical). A block of rows then costs one elementwise pass to build phi
and BLAS-3 products for everything else: the log-densities (phi @ A, t @ B), and the
statistics the M-step needs, R'*phi and R'*t (R the responsibilities). No per-component loop,
no inverse: the quadratic forms come from the precision Cholesky factors.

Blocks are float32 or float64 as the data is; the statistics are summed in float64 and the
parameters are float64. The seam for other backends (JAX, PyTorch): ``accumulate`` is the only
function that touches the data, and its inputs and outputs are plain arrays and ``Stats``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import MatdiffError

# exp(UNDERFLOW[dtype]) is e^18 (about 6e7) times the smallest normal number of the dtype
# (e^-708, e^-87): the responsibilities, these terms divided by a sum of at most K of them,
# stay normal numbers. Subnormal results of exp take a slow path, and so do subnormal
# operands of the products that follow (measured: a float32 pass 2-3 times slower)
UNDERFLOW = {"float64": -690.0, "float32": -69.0}


def underflow(dtype) -> float:
    """UNDERFLOW for a NumPy, torch or jax dtype (its name, without torch's prefix)."""
    return UNDERFLOW.get(str(dtype).removeprefix("torch."), UNDERFLOW["float32"])


BLOCK_BYTES = 2 << 20  # a block's feature matrix stays in cache (measured: benchmarks/bench_em)
KEPT_BLOCK_BYTES = 8 << 20  # kept features are read, not built: fewer, larger products win


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
    """Row-major upper triangle, the order ``features`` lays out t_i t_j."""
    return np.triu_indices(d)


def features(t, kind: str, out=None):
    """phi(t) for a block of shifted points as columns, t (d, B): (F, B), in ``out`` if given.

    Columns, not rows: each product below is then one long contiguous loop over the block."""
    d, n = t.shape
    if kind == "diag":
        return np.multiply(t, t, out=out)
    if kind == "spherical":
        if out is None:
            return np.einsum("ib,ib->b", t, t)[None, :]
        np.einsum("ib,ib->b", t, t, out=out[0])
        return out
    out = np.empty((d * (d + 1) // 2, n), dtype=t.dtype) if out is None else out
    row = 0
    for j in range(d):  # the triangle's row j: t_j * t_j..d
        np.multiply(t[j], t[j:], out=out[row:row + d - j])
        row += d - j
    return out


def feature_count(d: int, kind: str) -> int:
    return {"diag": d, "spherical": 1}.get(kind, d * (d + 1) // 2)


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


def _log_normalise(log_p):
    """Log-sum-exp over the components (axis 0), and the responsibilities it normalises, in
    place (``log_p`` becomes them). Terms below UNDERFLOW are raised to it: subnormal numbers
    take a slow path (measured: ten times the time), and e^-690 against the largest term's 1
    changes nothing a float64 sum can hold (e^-69 in float32)."""
    top = np.max(log_p, axis=0)
    r = np.subtract(log_p, top, out=log_p)
    np.maximum(r, underflow(r.dtype), out=r)
    np.exp(r, out=r)
    total = np.sum(r, axis=0)
    r /= total
    return np.log(total) + top, r


class _Blocks:
    """The rows of X in blocks, shifted and transposed into a buffer z (F + d + 1, B): phi(t)
    on top of t on top of a row of ones, so that one product gives all log-densities
    (A|B|c) @ z and one gives all statistics r @ z' (the ones give sum(r)); the working set
    of a block stays in cache.

    With ``keep``, every block's z is built once, on the first pass, and later passes only
    read it: building phi is most of a pass's elementwise work (measured: benchmarks/bench_em).
    Otherwise one reused buffer is rebuilt block by block."""

    def __init__(self, X, kind: str, shift: np.ndarray, keep: bool = False):
        self.X, self.kind, self.keep = X, kind, keep
        d = X.shape[1]
        self.width = feature_count(d, kind)
        self.rows = self.width + d + 1
        size = KEPT_BLOCK_BYTES if keep else BLOCK_BYTES
        self.step = max(256, size // (X.dtype.itemsize * self.rows))
        self.shift = np.asarray(shift, dtype=X.dtype)[:, None]
        self.z = None if keep else self._buffer(self.step)
        self.kept: list[tuple[int, np.ndarray]] | None = None   # after a whole pass, if keep

    def _buffer(self, n: int) -> np.ndarray:
        z = np.empty((self.rows, n), dtype=self.X.dtype)
        z[-1] = 1
        return z

    def __iter__(self):
        F, d = self.width, self.X.shape[1]
        if self.kept is not None:
            for start, z in self.kept:
                yield start, z.shape[1], z[F:F + d], z[:F], z
            return
        built = []
        for start in range(0, self.X.shape[0], self.step):
            block = self.X[start:start + self.step]
            n = block.shape[0]
            z = self._buffer(n) if self.keep else self.z[:, :n]
            phi, t = z[:F], z[F:F + d]
            np.subtract(block.T, self.shift, out=t)
            features(t, self.kind, phi)
            if self.keep:
                built.append((start, z))
            yield start, n, t, phi, z
        if self.keep:
            self.kept = built


FEATURE_CACHE_BYTES = 512 << 20
"""An in-memory fit keeps its blocks' features (``_Blocks(keep=True)``) while they take at
most this many bytes; beyond it, each pass rebuilds them (the memory of a pass is then a few
blocks). Set ``matdiff.em.kernels.FEATURE_CACHE_BYTES`` to trade memory for speed."""


class Passes:
    """Repeated passes over the rows of X for one covariance type and shift (an EM fit): the
    rows split over threads, each part's features kept between passes where they fit in
    FEATURE_CACHE_BYTES."""

    def __init__(self, X, kind: str, shift: np.ndarray, threads: int | None = None,
                 keep: bool | None = None):
        self.X, self.kind, self.shift = X, kind, shift
        self.threads = max(1, min(threads or os.cpu_count() or 1, X.shape[0] // 4096))
        if keep is None:
            size = X.shape[0] * (feature_count(X.shape[1], kind) + X.shape[1] + 1)
            keep = size * X.dtype.itemsize <= FEATURE_CACHE_BYTES
        edges = np.linspace(0, X.shape[0], self.threads + 1).astype(int)
        self.parts = [_Blocks(X[a:b], kind, shift, keep) for a, b in zip(edges, edges[1:])]

    def accumulate(self, p: Params) -> Stats:
        """E-step and sufficient statistics of all rows, in one pass.

        With threadpoolctl installed, the parts run on Python threads, each with a one-thread
        BLAS: the products here are small, and BLAS's own threads cost more in
        synchronisation than they gain (measured on 2 cores), while NumPy's elementwise work
        runs in parallel only this way. Without it, one thread."""
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return _accumulate(_Blocks(self.X, self.kind, self.shift), p, self.shift)
        if len(self.parts) == 1:
            with threadpool_limits(1, user_api="blas"):
                return _accumulate(self.parts[0], p, self.shift)
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(len(self.parts)) as pool:
            parts = list(pool.map(lambda part: _accumulate(part, p, self.shift), self.parts))
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total


def accumulate(X, p: Params, shift: np.ndarray, threads: int | None = None) -> Stats:
    """E-step and sufficient statistics of the rows of X, in one pass, block by block (a
    single pass: nothing kept; an EM loop uses ``Passes``)."""
    return Passes(X, p.kind, shift, threads, keep=False).accumulate(p)


def _accumulate(blocks: _Blocks, p: Params, shift: np.ndarray) -> Stats:
    X = blocks.X
    A, B, c = (np.asarray(a.T, dtype=X.dtype, order="C") for a in quadratic_form(p, shift))
    K, d = p.means.shape
    F = A.shape[1]
    tied = p.kind == "tied"
    # one product for all log-densities, (A|B|c) @ z; tied: one shared quadratic row
    ABc = None if tied else np.concatenate([A, B, c[:, None]], axis=1)
    nk, first = np.zeros(K), np.zeros((K, d))
    second = np.zeros((1 if tied else K, F))
    total = 0.0
    for _, _, t, phi, z in blocks:
        if tied:
            log_p = B @ t
            log_p += A @ phi
            log_p += c[:, None]
        else:
            log_p = ABc @ z
        log_norm, r = _log_normalise(log_p)
        total += float(np.sum(log_norm))
        if tied:
            nk += np.sum(r, axis=1)
            first += r @ t.T
            second += np.sum(phi, axis=1)[None, :]
        else:
            moments = r @ z.T          # (K, F + d + 1) (measured faster than z @ r.T)
            second += moments[:, :F]
            first += moments[:, F:F + d]
            nk += moments[:, -1]
    return Stats(X.shape[0], total, nk, first, second)


def responsibility_stats(X, resp: np.ndarray, kind: str, shift: np.ndarray) -> Stats:
    """The statistics for given responsibilities (the initialisation), block by block."""
    K, d = resp.shape[1], X.shape[1]
    nk, first = np.zeros(K), np.zeros((K, d))
    second = np.zeros((1 if kind == "tied" else K, feature_count(d, kind)))
    for start, n, t, phi, _ in _Blocks(X, kind, shift):
        r = np.asarray(resp[start:start + n].T, dtype=X.dtype)
        nk += np.sum(r, axis=1)
        first += r @ t.T
        second += np.sum(phi, axis=1)[None, :] if kind == "tied" else r @ phi.T
    return Stats(X.shape[0], float("nan"), nk, first, second)


def weighted_log_prob(X, p: Params) -> np.ndarray:
    """log(w_k N(x_n | m_k, S_k)), (N, K), blocked like the fit."""
    shift = np.average(p.means, axis=0, weights=p.weights)
    A, B, c = (np.asarray(a.T, dtype=X.dtype, order="C") for a in quadratic_form(p, shift))
    out = np.empty((X.shape[0], p.means.shape[0]), dtype=X.dtype)
    for start, n, t, phi, _ in _Blocks(X, p.kind, shift):
        out[start:start + n] = (A @ phi + B @ t + c[:, None]).T
    return out


def log_normalise(log_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log p(x_n), log responsibilities) from the weighted log-densities (N, K)."""
    top = np.max(log_p, axis=1, keepdims=True)
    log_norm = np.log(np.sum(np.exp(log_p - top), axis=1, keepdims=True)) + top
    return log_norm[:, 0], log_p - log_norm


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
    """U upper triangular with U @ U.T = inv(cov), by solving with the Cholesky factor of cov
    (d x d systems, batched; the inverse of cov itself is never formed)."""
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
    """cov = inv(U @ U.T) = inv(U)' inv(U), by solving with U."""
    if kind in ("diag", "spherical"):
        return 1.0 / U ** 2
    eye = np.broadcast_to(np.eye(U.shape[-1]), U.shape)
    inv_u = np.linalg.solve(U, eye)
    return np.swapaxes(inv_u, -1, -2) @ inv_u
