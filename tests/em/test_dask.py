"""Fitting a dask array chunk by chunk, on a real distributed.LocalCluster: the same model as
the in-memory fit from the same start."""

import warnings

import numpy as np
import pytest

from matdiff.em import COVARIANCE_TYPES, GaussianMixture

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    # real worker processes: the parameters and statistics cross process boundaries
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _data():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(700, 3)) @ rng.normal(size=(3, 3)) + 5 * rng.normal(size=3)
                      for _ in range(3)])


def _start(X, kind):
    """A shared start, given to both fits (the dask path initialises on a sample)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianMixture(3, covariance_type=kind, random_state=0, max_iter=1).fit(X)
    return dict(weights_init=ref.weights_, means_init=ref.means_,
                precisions_init=ref.precisions_)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_dask_fit_on_a_cluster_equals_the_in_memory_fit(client, kind):
    X = _data()
    kw = dict(n_components=3, covariance_type=kind, tol=0, max_iter=15, **_start(X, kind))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = GaussianMixture(**kw).fit(X)
        lazy = da.from_array(X, chunks=(300, 3))      # 7 chunks of rows
        remote = GaussianMixture(**kw).fit(lazy)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        a, b = getattr(remote, attr), getattr(local, attr)
        assert np.max(np.abs(a - b)) < 1e-10 * np.max(np.abs(b)), attr
    assert remote.lower_bound_ == pytest.approx(local.lower_bound_, rel=1e-12)
    labels = remote.predict(lazy)
    assert isinstance(labels, da.Array)
    assert np.array_equal(labels.compute(), local.predict(X))
    assert np.allclose(remote.score_samples(lazy).compute(), local.score_samples(X), rtol=1e-10)
    assert remote.score(lazy) == pytest.approx(local.score(X), rel=1e-12)


def test_dask_fit_initialises_itself_and_checks_data(client):
    X = _data()
    model = GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(500, 3)))
    # the fit finds the same optimum as in memory, up to the order of the components
    ref = GaussianMixture(3, random_state=0).fit(X)
    order = np.argsort(model.means_[:, 0])
    assert np.allclose(model.means_[order], ref.means_[np.argsort(ref.means_[:, 0])], atol=1e-3)
    bad = X.copy()
    bad[5, 1] = np.nan
    from matdiff import MatdiffError
    with pytest.raises(MatdiffError, match="NaN"):
        GaussianMixture(3).fit(da.from_array(bad, chunks=(500, 3)))
