"""Data beyond memory: a dask array chunked by rows as the EM loop's data source.

Each pass maps the in-memory kernel over the chunks as delayed tasks and sums the statistics
in a tree, on whatever Dask scheduler is active (threads by default, a ``distributed``
cluster when a Client exists): only the parameters travel to the chunks, only the statistics
(K x d(d+1)/2 numbers per chunk) travel back. dask is imported only when X is a dask array.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from . import kernels
from .kernels import FitError, Params, Stats

INIT_SAMPLE_ROWS = 100_000


def _is_dask(X) -> bool:
    return "dask" in sys.modules and type(X).__module__.startswith("dask")


def as_dask_source(X, model) -> DaskSource | None:
    """The source for a dask array, None for anything else."""
    if not _is_dask(X):
        return None
    given = model.means_init is not None and model.weights_init is not None
    return DaskSource(X, np.average(model.means_init, axis=0, weights=model.weights_init)
                      if given else None)


class DaskSource:
    """Rows in chunks. The initialisation (and the shift, unless the given initial means
    provide one) comes from an evenly strided sample of at most INIT_SAMPLE_ROWS rows,
    computed on first use: one extra pass, skipped when all initial parameters are given."""

    def __init__(self, X, shift: np.ndarray | None = None):
        if X.ndim != 2:
            raise FitError(f"expected a 2D dask array, got {X.ndim}D")
        if len(X.chunks[1]) != 1:
            X = X.rechunk({1: -1})  # whole rows per chunk: statistics need every feature
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        self.X = X
        self.n, self.d = X.shape
        self.dtype = X.dtype
        if self.n < 2:
            raise FitError(f"n_samples = {self.n}: fitting needs at least 2 samples")
        self._sample = None
        self.shift = np.asarray(shift, dtype=np.float64) if shift is not None else None
        if self.shift is None:
            self.shift = self.init_sample().mean(axis=0, dtype=np.float64)

    def init_sample(self) -> np.ndarray:
        if self._sample is None:
            import dask.array as da

            stride = max(1, self.n // INIT_SAMPLE_ROWS)
            self._sample = np.asarray(da.compute(self.X[::stride])[0])
            _check_finite(np.all(np.isfinite(self._sample)))
        return self._sample

    def stats(self, p: Params) -> Stats:
        import dask

        parts = [dask.delayed(kernels.accumulate)(block, p, self.shift, 1)
                 for block in self.X.to_delayed().ravel()]
        total = dask.compute(_tree_sum(parts))[0]
        _check_finite(np.isfinite(total.log_likelihood) and np.all(np.isfinite(total.second)))
        return total


def _check_finite(ok: bool) -> None:
    if not ok:
        raise FitError("Input X contains NaN or infinity (in a chunk of the dask array)",
                       hint="drop or impute those values")


def _tree_sum(parts: list):
    import dask

    while len(parts) > 1:
        pairs = [dask.delayed(_add)(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def _add(a: Stats, b: Stats) -> Stats:
    return a + b


def map_rows(X, p: Params, fn: Callable[[np.ndarray], np.ndarray], d: int):
    """fn(weighted log-densities) per chunk of a dask array (lazy); None for other X."""
    if not _is_dask(X):
        return None
    if X.ndim != 2 or X.shape[1] != d:
        raise FitError(f"X has shape {X.shape}, but GaussianMixture is expecting {d} features")
    X = X.rechunk({1: -1})
    K = p.weights.shape[0]
    probe = fn(np.zeros((1, K)))
    chunks = (X.chunks[0],) + ((K,) if probe.ndim == 2 else ())
    drop = () if probe.ndim == 2 else (1,)
    return X.map_blocks(lambda b: fn(kernels.weighted_log_prob(b, p)), dtype=probe.dtype,
                        chunks=chunks, drop_axis=drop)
