"""``GaussianMixture``: EM with the M-step updates of ``updates.py``, following scikit-learn's
estimator API and conventions (parameters, attributes, initialisation, stopping rule, the
lower bound being the mean log-likelihood before each M-step), without needing scikit-learn.

The data is reached only through a source: ``stats`` (the E-step and sufficient statistics
in one pass), ``init_sample`` (rows to initialise from) and ``shift``: in memory here, or a
dask array chunk by chunk (``dask_fit``), so one EM loop serves both.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import warnings
from collections.abc import Callable

import numpy as np

from . import backends, kernels
from .kernels import FitError, Params, Stats
from .kmeans import INIT_PARAMS, initial_responsibilities
from .updates import COVARIANCE_TYPES, UPDATES, Update


class NotFittedError(FitError, AttributeError):
    """The model is used before ``fit`` (scikit-learn's NotFittedError is also both)."""


class DataTypeError(FitError, TypeError):
    """Data that is not numbers (scikit-learn's conventions expect a TypeError)."""


@functools.cache
def _bridged(sklearn_error: type) -> type:
    return type("NotFittedError", (NotFittedError, sklearn_error), {})


def _not_fitted() -> NotFittedError:
    """Where scikit-learn is loaded, the error is its NotFittedError too, so its tooling
    (model selection, check_estimator) recognises it; matdiff never imports it for this."""
    loaded = sys.modules.get("sklearn.exceptions")
    cls = NotFittedError if loaded is None else _bridged(loaded.NotFittedError)
    return cls("this GaussianMixture is not fitted yet", hint="call fit(X) before using it")


def _is_backend_array(X, backend: str) -> bool:
    if backend == "torch":
        torch = sys.modules.get("torch")
        return torch is not None and torch.is_tensor(X)
    if backend == "jax":
        jax = sys.modules.get("jax")
        return jax is not None and isinstance(X, jax.Array)
    return False


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the lower bound changed by less than ``tol``."""


class InMemory:
    """A NumPy array as the data source of the EM loop; with a torch or jax ``backend`` the
    pass over it runs there, on ``device_X`` (the caller's tensor, or X wrapped once)."""

    def __init__(self, X: np.ndarray, backend: str = "numpy", device_X=None):
        self.X = X
        self.n, self.d = X.shape
        self.dtype = X.dtype
        self.shift = np.mean(X, axis=0, dtype=np.float64)
        self.backend = backend
        self._passes: dict[str, kernels.Passes] = {}    # per covariance type, features kept
        if backend != "numpy":
            self.device_X = device_X if device_X is not None else \
                backends.as_device_array(X, backend)

    def stats(self, p: Params) -> Stats:
        if self.backend != "numpy":
            return backends.ACCUMULATE[self.backend](self.device_X, p, self.shift)
        if p.kind not in self._passes:
            self._passes[p.kind] = kernels.Passes(self.X, p.kind, self.shift)
        return self._passes[p.kind].accumulate(p)

    def init_sample(self) -> np.ndarray:
        return self.X


class GaussianMixture:
    """A Gaussian mixture fitted by EM; the parameters and attributes of scikit-learn's
    ``sklearn.mixture.GaussianMixture``, plus ``updates_`` (the M-step formulas used) and
    ``callback(n_iter, lower_bound)``, called after each iteration (progress bars), and
    ``backend`` ("numpy", "torch", "jax"): where the E-step and statistics run (a torch
    tensor or jax array passed to ``fit`` stays on its device).

    ``fit`` takes a NumPy array, anything array-like, or a dask array chunked by rows (the
    E-step and statistics then run per chunk on the active Dask scheduler).
    """

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full",
                 tol: float = 1e-3, reg_covar: float = 1e-6, max_iter: int = 100,
                 n_init: int = 1, init_params: str = "kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None,
                 warm_start: bool = False, verbose: int = 0, verbose_interval: int = 10,
                 callback: Callable[[int, float], None] | None = None,
                 backend: str = "numpy"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.callback = callback
        self.backend = backend

    # -- scikit-learn's estimator protocol --------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> GaussianMixture:
        for name, value in params.items():
            if name not in self._param_names():
                raise FitError(f"GaussianMixture has no parameter {name!r}",
                               hint="valid: " + ", ".join(self._param_names()))
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, defaults[k])]
        return f"GaussianMixture({', '.join(changed)})"

    def __sklearn_tags__(self):
        # only scikit-learn calls this, so it may import it
        from sklearn.utils import InputTags, Tags, TargetTags
        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False),
                    input_tags=InputTags(two_d_array=True))

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, X, y=None) -> GaussianMixture:
        """Fit by EM, ``n_init`` times, keeping the fit with the largest lower bound."""
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then the most probable component of each row of X."""
        self._fit(self._source(X))
        return self.predict(X)

    def _source(self, X):
        from .dask_fit import as_dask_source  # no dask import unless X is a dask array
        source = as_dask_source(X, self)
        if source is not None:
            self._set_n_features(source.d, None)
            return source
        backends.require(self.backend)
        device_X = X if _is_backend_array(X, self.backend) else None
        if device_X is not None:        # a tensor on its device: validated on a host copy
            X = np.asarray(X.cpu() if hasattr(X, "cpu") else X)
        X = self._validate(X, reset=True)
        if X.shape[0] < self.n_components:
            raise FitError(f"the data has {X.shape[0]} samples, fewer than n_components = "
                           f"{self.n_components}", hint="use fewer components or more data")
        return InMemory(X, self.backend, device_X)

    def _fit(self, source) -> None:
        self._check_parameters(source.d)
        kind = self.covariance_type
        eps = 10 * np.finfo(source.dtype).eps
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        rng = _random_state(self.random_state)
        best, best_bound, best_bounds, best_iter, best_converged = None, -np.inf, [], 0, False
        for init in range(self.n_init if do_init else 1):
            p = self._initial(source, rng, eps) if do_init else self._params()
            bound = -np.inf if do_init else self.lower_bound_
            bounds, converged, n_iter = [], False, 0
            for n_iter in range(1, self.max_iter + 1):
                previous = bound
                s = source.stats(p)
                p = kernels.m_step(s, kind, self.reg_covar, source.shift, eps)
                bound = s.log_likelihood / s.n
                bounds.append(bound)
                if self.callback is not None:
                    self.callback(n_iter, bound)
                if self.verbose >= 2 and n_iter % self.verbose_interval == 0:
                    print(f"  init {init} iteration {n_iter}: lower bound {bound:.6f}")
                if abs(bound - previous) < self.tol:
                    converged = True
                    break
            if best is None or bound > best_bound:
                best, best_bound, best_bounds = p, bound, bounds
                best_iter, best_converged = n_iter, converged
        if not best_converged and self.max_iter > 0:
            warnings.warn("EM did not converge in max_iter iterations (the best of the n_init "
                          "starts): increase max_iter or tol, try other inits, or check for "
                          "degenerate data", ConvergenceWarning, stacklevel=3)
        self._store(best)
        self.converged_ = best_converged
        self.n_iter_ = best_iter
        self.lower_bound_ = best_bound
        self.lower_bounds_ = best_bounds

    def _initial(self, source, rng: np.random.RandomState, eps: float) -> Params:
        """scikit-learn's start: parameters from initial responsibilities, each replaced by
        weights_init / means_init / precisions_init when given."""
        kind, K = self.covariance_type, self.n_components
        given = (self.weights_init, self.means_init, self.precisions_init)
        if all(g is not None for g in given):
            weights, means, covariances = None, None, None
        else:
            sample = source.init_sample()
            resp = initial_responsibilities(sample, K, self.init_params, rng)
            stats = kernels.responsibility_stats(sample, resp, kind, source.shift)
            p = kernels.m_step(stats, kind, self.reg_covar, source.shift, eps)
            weights = stats.nk / stats.n if self.weights_init is None else None
            means, covariances = p.means, p.covariances
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            chol = kernels.precision_cholesky_from_precisions(
                np.asarray(self.precisions_init, dtype=np.float64), kind)
            covariances = kernels.covariances_from_precision_cholesky(chol, kind)
        else:
            chol = kernels.precision_cholesky(covariances, kind)
        return Params(kind, weights, means, covariances, chol)

    def _check_parameters(self, d: int) -> None:
        K = self.n_components
        _require(isinstance(K, int | np.integer) and K >= 1, "n_components",
                 "a positive integer", K)
        _require(self.covariance_type in COVARIANCE_TYPES, "covariance_type",
                 "one of " + ", ".join(COVARIANCE_TYPES), self.covariance_type)
        _require(self.init_params in INIT_PARAMS, "init_params",
                 "one of " + ", ".join(INIT_PARAMS), self.init_params)
        _require(_is_real(self.tol) and self.tol >= 0, "tol", "a number >= 0", self.tol)
        _require(_is_real(self.reg_covar) and self.reg_covar >= 0, "reg_covar",
                 "a number >= 0", self.reg_covar)
        for name in ("max_iter", "n_init"):
            value, least = getattr(self, name), 0 if name == "max_iter" else 1
            _require(isinstance(value, int | np.integer) and value >= least, name,
                     f"an integer >= {least}", value)
        shapes = {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}
        for name, shape in (("weights_init", (K,)), ("means_init", (K, d)),
                            ("precisions_init", shapes.get(self.covariance_type))):
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise FitError(f"{name} has shape {np.shape(value)}, expected {shape}",
                               hint="one row per component, one column per feature")
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if np.any(w < 0) or np.any(w > 1) or abs(w.sum() - 1) > 1e-6:
                raise FitError("weights_init must be non-negative and sum to 1",
                               hint=f"they sum to {w.sum():.6g}")

    # -- the fitted model ---------------------------------------------------------------------

    def _store(self, p: Params) -> None:
        self.weights_, self.means_ = p.weights, p.means
        self.covariances_, self.precisions_cholesky_ = p.covariances, p.precisions_cholesky
        U = p.precisions_cholesky
        self.precisions_ = (U @ np.swapaxes(U, -1, -2) if p.kind in ("full", "tied")
                            else U ** 2)
        self._fitted_kind = p.kind

    def _params(self) -> Params:
        if not hasattr(self, "precisions_cholesky_"):
            raise _not_fitted()
        return Params(self._fitted_kind, self.weights_, self.means_, self.covariances_,
                      self.precisions_cholesky_)

    @property
    def updates_(self) -> dict[str, Update]:
        """The M-step formulas this model's covariance type uses (matdiff input language)."""
        _ = self._params()
        return UPDATES[self._fitted_kind]

    def _rowwise(self, X, fn: Callable[[np.ndarray], np.ndarray]):
        """fn of the weighted log-densities, row by row; a dask array maps over its chunks."""
        from .dask_fit import map_rows
        p = self._params()
        mapped = map_rows(X, p, fn, self.n_features_in_)
        if mapped is not None:
            return mapped
        return fn(kernels.weighted_log_prob(self._validate(X, reset=False), p))

    def score_samples(self, X) -> np.ndarray:
        """log p(x) of each row."""
        return self._rowwise(X, lambda lp: kernels.log_normalise(lp)[0])

    def score(self, X, y=None) -> float:
        """The mean log-likelihood of the rows."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """The responsibilities p(k | x), (N, K)."""
        return self._rowwise(X, lambda lp: np.exp(kernels.log_normalise(lp)[1]))

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row."""
        return self._rowwise(X, lambda lp: np.argmax(lp, axis=1))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """n_samples draws from the fitted mixture and their components (sorted by component,
        as scikit-learn returns them)."""
        p = self._params()
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise FitError(f"n_samples must be a positive integer, not {n_samples!r}")
        rng = _random_state(self.random_state)
        counts = rng.multinomial(n_samples, p.weights)
        K, d = p.means.shape
        factors = {"full": lambda k: np.linalg.cholesky(p.covariances[k]),
                   "tied": lambda k: np.linalg.cholesky(p.covariances),
                   "diag": lambda k: np.diag(np.sqrt(p.covariances[k])),
                   "spherical": lambda k: np.sqrt(p.covariances[k]) * np.eye(d)}[p.kind]
        X = np.vstack([p.means[k] + rng.standard_normal((c, d)) @ factors(k).T
                       for k, c in enumerate(counts)])
        return X, np.repeat(np.arange(K), counts)

    def _n_parameters(self) -> int:
        K, d = self._params().means.shape
        cov = {"full": K * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": K * d,
               "spherical": K}[self._fitted_kind]
        return int(cov + K * d + K - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion: -2 log L + (number of parameters) log N."""
        n = np.shape(X)[0]
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X) -> float:
        """Akaike information criterion: -2 log L + 2 (number of parameters)."""
        return -2 * self.score(X) * np.shape(X)[0] + 2 * self._n_parameters()

    # -- input checks -------------------------------------------------------------------------

    def _set_n_features(self, d: int, names) -> None:
        self.n_features_in_ = d
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _validate(self, X, reset: bool) -> np.ndarray:
        names = _feature_names(X)
        X = _as_2d_float(X)
        if reset:
            self._set_n_features(X.shape[1], names)
            if X.shape[0] < 2:
                raise FitError(f"n_samples = {X.shape[0]}: fitting needs at least 2 samples")
            return X
        if not hasattr(self, "n_features_in_"):
            self._params()
        if X.shape[1] != self.n_features_in_:
            raise FitError(f"X has {X.shape[1]} features, but GaussianMixture is expecting "
                           f"{self.n_features_in_} features as input",
                           hint="pass data with the columns the model was fitted on")
        fitted = getattr(self, "feature_names_in_", None)
        if (names is None) != (fitted is None) or (
                names is not None and not np.array_equal(names, fitted)):
            warnings.warn("X's feature names differ from those seen in fit", UserWarning,
                          stacklevel=3)
        return X


def _as_2d_float(X) -> np.ndarray:
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError("GaussianMixture needs dense data: sparse input is not supported; "
                        "convert it with X.toarray()")
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as err:
        raise FitError(f"X cannot be read as an array ({err})") from None
    if np.iscomplexobj(arr):
        raise FitError("Complex data not supported: X is complex", hint="pass real numbers")
    if arr.ndim != 2:
        raise FitError(f"expected a 2D array, got a {arr.ndim}D array",
                       hint="Reshape your data with array.reshape(-1, 1) for a single "
                            "feature or array.reshape(1, -1) for a single sample")
    if arr.dtype not in (np.float64, np.float32):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise DataTypeError(f"X is not numeric ({err})", hint="pass numbers") from None
    for axis, what in ((0, "sample"), (1, "feature")):
        if arr.shape[axis] == 0:
            raise FitError(f"Found array with 0 {what}(s) (shape={arr.shape}) while a minimum "
                           "of 1 is required.")
    if not np.all(np.isfinite(arr)):
        kind = "NaN" if np.any(np.isnan(arr)) else "infinity"
        raise FitError(f"Input X contains {kind}", hint="drop or impute those values")
    return arr


def _feature_names(X) -> np.ndarray | None:
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    return names if all(isinstance(n, str) for n in names) else None


def _random_state(seed) -> np.random.RandomState:
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, int | np.integer):
        return np.random.RandomState(seed)
    raise FitError(f"random_state must be None, an integer or a numpy RandomState, not "
                   f"{seed!r}")


def _is_real(x) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _require(ok: bool, name: str, what: str, value) -> None:
    if not ok:
        raise FitError(f"{name} must be {what}, not {value!r}")


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b
    return a == b if type(a) is type(b) else False
