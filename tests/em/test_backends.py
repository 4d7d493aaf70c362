"""The EM pass on PyTorch and JAX (em/backends.py) against the NumPy pass, in float64 to
1e-12, for every covariance type; fits through the backend reach the NumPy fit; the pass is
checked against an independent oracle (log-densities by slogdet and solve) too."""

import warnings

import numpy as np
import pytest

from matdiff import MatdiffError
from matdiff.em import COVARIANCE_TYPES, GaussianMixture, backends, kernels

from .test_mixture import blobs, full_covariances, oracle_log_density


def _backend(name):
    module = pytest.importorskip(name)
    if name == "jax":
        module.config.update("jax_enable_x64", True)
    return module


def _fitted(kind, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(3, covariance_type=kind, random_state=0, max_iter=3, **kw).fit(X)


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("name", ["torch", "jax"])
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_the_pass_agrees_with_numpy_and_the_oracle(kind, name):
    _backend(name)
    X = blobs(seed=1, n=900, d=4)
    p = _fitted(kind, X)._params()
    shift = X.mean(axis=0)
    want = kernels.accumulate(X, p, shift)
    got = backends.ACCUMULATE[name](backends.as_device_array(X, name), p, shift)
    assert got.n == want.n
    assert abs(got.log_likelihood - want.log_likelihood) < 1e-12 * abs(want.log_likelihood)
    for field in ("nk", "first", "second"):
        assert _relative(getattr(got, field), getattr(want, field)) < 1e-12, field
    # and the log-likelihood against slogdet and solve, component by component
    model = _fitted(kind, X)
    log_p = oracle_log_density(X, model.means_, full_covariances(model), model.weights_)
    top = log_p.max(axis=1, keepdims=True)
    oracle = float(np.sum(np.log(np.exp(log_p - top).sum(axis=1)) + top[:, 0]))
    assert abs(got.log_likelihood - oracle) < 1e-10 * abs(oracle)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_fit_on_the_backend_is_the_numpy_fit(name):
    module = _backend(name)
    X = blobs(seed=2, n=600, d=3)
    ours = _fitted("full", X, backend=name)
    numpy_fit = _fitted("full", X)
    assert abs(ours.lower_bound_ - numpy_fit.lower_bound_) < 1e-12 * abs(numpy_fit.lower_bound_)
    assert _relative(ours.means_, numpy_fit.means_) < 1e-10
    assert _relative(ours.covariances_, numpy_fit.covariances_) < 1e-10
    # the backend's own array is accepted as it is
    own = module.from_numpy(X) if name == "torch" else module.numpy.asarray(X)
    assert _relative(_fitted("full", own, backend=name).means_, numpy_fit.means_) < 1e-10


def test_float32_on_torch_agrees_with_the_numpy_float32_pass():
    _backend("torch")
    X = blobs(seed=3, n=900, d=4).astype(np.float32)
    p = _fitted("full", X)._params()
    shift = X.mean(axis=0, dtype=np.float64)
    want = kernels.accumulate(X, p, shift)
    got = backends.torch_accumulate(backends.as_device_array(X, "torch"), p, shift)
    assert abs(got.log_likelihood - want.log_likelihood) < 1e-5 * abs(want.log_likelihood)
    assert _relative(got.second, want.second) < 1e-5


def test_an_unknown_backend_is_a_clear_error():
    with pytest.raises(MatdiffError, match="unknown EM backend"):
        GaussianMixture(2, backend="tensorflow").fit(blobs())
