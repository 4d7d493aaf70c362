"""Against scikit-learn (the optional [em] extra): its estimator checks, and the same fits from
the same start on data sets that include ill-conditioned ones needing reg_covar."""

import warnings

import numpy as np
import pytest

from matdiff.em import COVARIANCE_TYPES, GaussianMixture

sklearn_mixture = pytest.importorskip("sklearn.mixture")
estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")


def _data_sets():
    rng = np.random.default_rng(2026)

    def blobs(n, d, k, spread, scale=1.0):
        return np.vstack([(rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale
                           + spread * rng.normal(size=d)) for _ in range(k)])

    base = blobs(150, 4, 3, 3.0)
    collinear = np.c_[base, base[:, 0] + base[:, 1], base[:, 2] - 2 * base[:, 3]]  # rank 4 of 6
    return {
        "separated": (blobs(200, 3, 3, 8.0), 3, 1e-6),
        "overlapping": (blobs(200, 2, 4, 1.0), 4, 1e-6),
        "far from the origin": (blobs(150, 3, 2, 2.0) + 1e4, 2, 1e-6),
        "scales 1e-3 to 1e3": (blobs(150, 3, 3, 4.0) * np.array([1e-3, 1.0, 1e3]), 3, 1e-6),
        "collinear, needs reg_covar": (collinear, 3, 1e-4),
        "duplicated points, needs reg_covar": (np.repeat(blobs(10, 3, 3, 5.0), 8, axis=0), 3,
                                               1e-3),
        "d=10, K=5": (blobs(120, 10, 5, 3.0), 5, 1e-6),
    }


DATA = _data_sets()


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("name", DATA)
def test_same_fit_as_scikit_learn_from_the_same_start(name, kind):
    X, k, reg = DATA[name]
    # a fixed number of iterations (tol=0): slow EM runs drift in the parameters long after
    # the bound has settled, so a stopping test that flips at rounding level would decide
    kw = dict(n_components=k, covariance_type=kind, reg_covar=reg, init_params="random",
              random_state=0, tol=0, max_iter=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn: tol=0 never converges
        # scikit-learn on centred data: EM is shift-equivariant, and its tied, diag and
        # spherical moments (E[x x'] - m m') lose digits far from the origin, ours do not
        centre = X.mean(axis=0)
        theirs = sklearn_mixture.GaussianMixture(**kw).fit(X - centre)
        their_scores, their_labels = theirs.score_samples(X - centre), theirs.predict(X - centre)
        theirs.means_ = theirs.means_ + centre
        ours = GaussianMixture(**kw).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ == 80
    assert abs(ours.lower_bound_ - theirs.lower_bound_) < 1e-8 * abs(theirs.lower_bound_)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert _rel(getattr(ours, attr), getattr(theirs, attr)) < 1e-8, attr
    assert _rel(ours.lower_bounds_, theirs.lower_bounds_) < 1e-8
    assert _rel(ours.score_samples(X), their_scores) < 1e-8
    assert np.mean(ours.predict(X) == their_labels) > 0.999


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_same_fit_from_given_parameters(kind):
    X, k, reg = DATA["overlapping"]
    ref = sklearn_mixture.GaussianMixture(k, covariance_type=kind, random_state=1,
                                          max_iter=2).fit(X)
    kw = dict(n_components=k, covariance_type=kind, reg_covar=reg, tol=0, max_iter=80,
              weights_init=ref.weights_, means_init=ref.means_, precisions_init=ref.precisions_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sklearn_mixture.GaussianMixture(**kw).fit(X)
        ours = GaussianMixture(**kw).fit(X)
    assert abs(ours.lower_bound_ - theirs.lower_bound_) < 1e-8 * abs(theirs.lower_bound_)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert _rel(getattr(ours, attr), getattr(theirs, attr)) < 1e-8, attr


@pytest.mark.parametrize("model", [GaussianMixture(),
                                   GaussianMixture(2, covariance_type="tied", n_init=2),
                                   GaussianMixture(2, covariance_type="diag",
                                                   init_params="random_from_data"),
                                   GaussianMixture(2, covariance_type="spherical",
                                                   init_params="k-means++", warm_start=True)],
                         ids=repr)
def test_scikit_learn_estimator_checks(model):
    failed = [r for r in estimator_checks.check_estimator(model, on_fail=None)
              if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]
