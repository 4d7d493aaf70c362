"""GaussianMixture against an independent NumPy oracle (textbook formulas, loops over the
components, no shared code), against the update formulas evaluated by matdiff, and its API."""

import warnings

import numpy as np
import pytest

from matdiff import MatdiffError
from matdiff.em import (
    COVARIANCE_TYPES,
    ConvergenceWarning,
    GaussianMixture,
    NotFittedError,
    kernels,
)


def blobs(seed=0, n=300, d=3, k=3, spread=4.0):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=(n // k, d)) @ rng.normal(size=(d, d)) + spread * rng.normal(size=d)
             for _ in range(k)]
    return np.vstack(parts)


def full_covariances(model):
    """Each component's covariance as a d x d matrix, whatever the type."""
    K, d = model.means_.shape
    c = model.covariances_
    return {"full": lambda: c, "tied": lambda: np.broadcast_to(c, (K, d, d)),
            "diag": lambda: np.array([np.diag(v) for v in c]),
            "spherical": lambda: np.array([v * np.eye(d) for v in c])}[model.covariance_type]()


def oracle_log_density(X, means, covs, weights):
    """log(w_k N(x | m_k, S_k)) by slogdet and solve, component by component."""
    out = np.empty((X.shape[0], len(weights)))
    for k, (m, S, w) in enumerate(zip(means, covs, weights)):
        diff = X - m
        maha = np.einsum("ni,ni->n", diff, np.linalg.solve(S, diff.T).T)
        out[:, k] = (np.log(w) - 0.5 * (X.shape[1] * np.log(2 * np.pi)
                                        + np.linalg.slogdet(S)[1] + maha))
    return out


def oracle_step(X, means, covs, weights, kind, reg):
    """One EM iteration from the textbook (Bishop 2006, 9.23-9.27, per-type restrictions)."""
    lp = oracle_log_density(X, means, covs, weights)
    top = lp.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(lp - top).sum(axis=1))
    R = np.exp(lp - log_norm[:, None])
    nk = R.sum(axis=0)
    new_means = (R.T @ X) / nk[:, None]
    scatter = np.array([(R[:, k, None] * (X - new_means[k])).T @ (X - new_means[k])
                        for k in range(len(nk))])
    d = X.shape[1]
    cov = {"full": lambda: scatter / nk[:, None, None] + reg * np.eye(d),
           "tied": lambda: scatter.sum(axis=0) / nk.sum() + reg * np.eye(d),
           "diag": lambda: np.array([np.diag(s) for s in scatter]) / nk[:, None] + reg,
           "spherical": lambda: np.array([np.trace(s) for s in scatter]) / (d * nk) + reg}[kind]()
    return log_norm.mean(), nk / nk.sum(), new_means, cov


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_iterations_match_the_textbook_oracle(kind):
    X = blobs(1)
    model = GaussianMixture(3, covariance_type=kind, init_params="random", random_state=0,
                            max_iter=1, tol=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
        for _ in range(5):
            before = (model.means_, full_covariances(model), model.weights_)
            bound, w, m, cov = oracle_step(X, *before, kind, model.reg_covar)
            model.fit(X)  # warm start: exactly one more iteration
            assert abs(model.lower_bound_ - bound) < 1e-12 * abs(bound)
            assert rel(model.weights_, w) < 1e-12
            assert rel(model.means_, m) < 1e-12
            assert rel(model.covariances_, cov) < 1e-11


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_m_step_is_the_update_formulas(kind):
    """The model's next parameters are updates_ evaluated by matdiff at its responsibilities."""
    X = blobs(2, n=90)
    model = GaussianMixture(3, covariance_type=kind, random_state=1, max_iter=3, tol=0,
                            warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
        R = model.predict_proba(X)
        model.set_params(max_iter=1).fit(X)
    ups, reg, d = model.updates_, model.reg_covar, X.shape[1]
    assert rel(model.weights_, ups["w"].evaluate(R=R)) < 1e-12
    means = np.array([ups["m"].evaluate(Y=X, r=R[:, k]) for k in range(3)])
    assert rel(model.means_, means) < 1e-12
    if kind == "tied":
        cov = ups["S"].evaluate(Y=X, R=R, M=means) + reg * np.eye(d)
    elif kind == "spherical":
        cov = np.array([ups["v"].evaluate(Y=X, r=R[:, k], m=means[k], d=d)
                        for k in range(3)]) + reg
    else:
        cov = np.array([ups["S"].evaluate(Y=X, r=R[:, k], m=means[k]) for k in range(3)])
        cov = cov + reg * np.eye(d)
        cov = np.array([np.diag(c) for c in cov]) if kind == "diag" else cov
    assert rel(model.covariances_, cov) < 1e-11


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_predictions_are_the_oracle_densities(kind):
    X = blobs(3)
    model = GaussianMixture(3, covariance_type=kind, random_state=0).fit(X)
    lp = oracle_log_density(X, model.means_, full_covariances(model), model.weights_)
    top = lp.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(lp - top).sum(axis=1))
    assert rel(model.score_samples(X), log_norm) < 1e-12
    assert abs(model.score(X) - log_norm.mean()) < 1e-12 * abs(log_norm.mean())
    assert rel(model.predict_proba(X), np.exp(lp - log_norm[:, None])) < 1e-10
    assert np.array_equal(model.predict(X), np.argmax(lp, axis=1))
    assert np.array_equal(model.fit_predict(X), model.predict(X))
    U = model.precisions_cholesky_
    precision = U @ np.swapaxes(U, -1, -2) if kind in ("full", "tied") else U ** 2
    assert rel(model.precisions_, precision) < 1e-14
    if kind in ("full", "tied"):  # U is upper triangular and U U' inverts the covariance
        assert np.allclose(np.tril(U, -1), 0)
        assert rel(precision @ model.covariances_, np.broadcast_to(np.eye(3), precision.shape)
                   ) < 1e-10


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_information_criteria_count_the_free_parameters(kind):
    X = blobs(4)
    model = GaussianMixture(3, covariance_type=kind, random_state=0).fit(X)
    K, d, n = 3, 3, X.shape[0]
    free = {"full": K * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": K * d,
            "spherical": K}[kind] + K * d + K - 1
    log_l = model.score_samples(X).sum()
    assert np.isclose(model.bic(X), -2 * log_l + free * np.log(n), rtol=1e-13)
    assert np.isclose(model.aic(X), -2 * log_l + 2 * free, rtol=1e-13)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_samples_have_the_model_moments(kind):
    model = GaussianMixture(2, covariance_type=kind, random_state=0).fit(blobs(5, k=2))
    X, labels = model.sample(200_000)
    assert X.shape == (200_000, 3) and np.all(np.diff(labels) >= 0)
    counts = np.bincount(labels, minlength=2) / len(labels)
    assert np.max(np.abs(counts - model.weights_)) < 0.01
    covs = full_covariances(model)
    for k in range(2):
        rows = X[labels == k]
        scale = np.sqrt(np.max(np.diag(covs[k])))
        assert np.max(np.abs(rows.mean(axis=0) - model.means_[k])) < 0.02 * scale
        assert rel(np.cov(rows.T), covs[k]) < 0.03


def test_warm_start_continues_where_the_fit_stopped():
    X = blobs(6)
    kw = dict(init_params="random", random_state=3, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ten = GaussianMixture(3, max_iter=10, **kw).fit(X)
        five = GaussianMixture(3, max_iter=5, warm_start=True, **kw).fit(X).fit(X)
    assert rel(five.means_, ten.means_) < 1e-13
    assert rel(five.covariances_, ten.covariances_) < 1e-13
    assert five.lower_bound_ == pytest.approx(ten.lower_bound_, rel=1e-14)


def test_n_init_keeps_the_best_start():
    X = blobs(7, k=4, spread=2.0)
    single = GaussianMixture(4, n_init=1, init_params="random", random_state=0).fit(X)
    best = GaussianMixture(4, n_init=4, init_params="random", random_state=0).fit(X)
    assert best.lower_bound_ >= single.lower_bound_
    assert len(best.lower_bounds_) == best.n_iter_
    assert best.lower_bounds_[-1] == best.lower_bound_
    assert np.all(np.diff(best.lower_bounds_) > -1e-10)   # EM never lowers the bound


def test_given_initialisation_is_used():
    X = blobs(8)
    rng = np.random.default_rng(0)
    w, m = np.array([0.2, 0.3, 0.5]), X[rng.choice(len(X), 3, replace=False)]
    P = np.array([np.eye(3) * s for s in (1.0, 2.0, 0.5)])
    model = GaussianMixture(3, weights_init=w, means_init=m, precisions_init=P, max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # max_iter=0 does not warn
        model.fit(X)
    assert np.array_equal(model.weights_, w) and np.array_equal(model.means_, m)
    assert rel(model.precisions_, P) < 1e-14
    assert rel(model.covariances_, np.linalg.inv(P)) < 1e-14
    assert model.n_iter_ == 0 and not model.converged_


def test_float32_data_fits_like_float64():
    X = blobs(9)
    kw = dict(init_params="random", random_state=0, tol=1e-6, max_iter=200)
    a = GaussianMixture(3, **kw).fit(X)
    b = GaussianMixture(3, **kw).fit(X.astype(np.float32))
    assert b.means_.dtype == np.float64
    assert rel(b.means_, a.means_) < 1e-4 and rel(b.covariances_, a.covariances_) < 1e-3
    assert abs(b.lower_bound_ - a.lower_bound_) < 1e-4 * abs(a.lower_bound_)


def test_threads_and_blocks_give_the_same_statistics(monkeypatch):
    X = blobs(10, n=30_000)
    model = GaussianMixture(3, random_state=0, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    p, shift = model._params(), X.mean(axis=0)
    one = kernels._accumulate(kernels._Blocks(X, "full", shift), p, shift)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 1 << 14)  # many small blocks
    monkeypatch.setattr(kernels, "KEPT_BLOCK_BYTES", 1 << 15)
    pytest.importorskip("threadpoolctl")
    many = kernels.accumulate(X, p, shift, threads=3)
    kept = kernels.Passes(X, "full", shift, threads=3, keep=True)
    first_pass, second_pass = kept.accumulate(p), kept.accumulate(p)  # built, then read back
    assert all(part.kept is not None and len(part.kept) > 1 for part in kept.parts)
    for got in (many, first_pass, second_pass):
        assert got.n == one.n and rel(got.nk, one.nk) < 1e-12
        assert rel(got.first, one.first) < 1e-12 and rel(got.second, one.second) < 1e-12
        assert abs(got.log_likelihood - one.log_likelihood) < 1e-10 * abs(one.log_likelihood)


def test_kept_features_follow_the_memory_limit(monkeypatch):
    X = blobs(4, n=10_000)
    assert kernels.Passes(X, "full", X.mean(axis=0)).parts[0].keep
    monkeypatch.setattr(kernels, "FEATURE_CACHE_BYTES", X.nbytes)   # the features take 10/3 of X
    assert not kernels.Passes(X, "full", X.mean(axis=0)).parts[0].keep


@pytest.mark.parametrize("bad, message", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
    (np.array([[1.0, np.inf], [2.0, 3.0]]), "infinity"),
    (np.ones(5), "2D"),
    (np.ones((1, 2)), "n_samples = 1"),
    (np.ones((3, 2)) * 1j, "Complex data"),
    (np.zeros((0, 3)), "0 sample"),
])
def test_bad_data_is_a_clear_error(bad, message):
    with pytest.raises(MatdiffError, match=message) as err:
        GaussianMixture(1).fit(bad)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_bad_parameters_and_misuse_are_clear_errors():
    X = blobs(11)
    for params, message in [(dict(covariance_type="banded"), "covariance_type"),
                            (dict(reg_covar=-1.0), "reg_covar"), (dict(n_init=0), "n_init"),
                            (dict(init_params="spectral"), "init_params"),
                            (dict(weights_init=[0.5, 0.6, 0.1]), "sum to 1"),
                            (dict(means_init=np.zeros((2, 3))), "means_init has shape")]:
        with pytest.raises(MatdiffError, match=message):
            GaussianMixture(3, **params).fit(X)
    with pytest.raises(MatdiffError, match="fewer than n_components"):
        GaussianMixture(5).fit(X[:4])
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture(2).predict(X)
    model = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(MatdiffError, match="X has 2 features, but GaussianMixture is expecting 3"):
        model.predict(X[:, :2])
    # collapsed data without regularisation: the covariance is singular
    flat = np.c_[X[:, 0], X[:, 0], X[:, 1]]
    with pytest.raises(MatdiffError, match="increase reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(flat)
    GaussianMixture(2, random_state=0).fit(flat)  # the default reg_covar copes


def test_not_converging_warns():
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixture(3, max_iter=2, tol=0, random_state=0).fit(blobs(12))


def test_params_round_trip_and_repr():
    model = GaussianMixture(4, covariance_type="diag", tol=1e-5)
    assert model.get_params()["covariance_type"] == "diag"
    assert model.set_params(n_init=3).n_init == 3
    assert repr(model) == "GaussianMixture(n_components=4, covariance_type='diag', tol=1e-05, " \
                          "n_init=3)"
    with pytest.raises(MatdiffError, match="no parameter 'n_clusters'"):
        model.set_params(n_clusters=2)


def test_reachable_as_matdiff_em():
    import matdiff
    assert matdiff.em.GaussianMixture is GaussianMixture


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_responsibilities_are_never_subnormal(dtype):
    # components 1e4 nats apart: exp of the gaps would be subnormal or zero, slow paths in
    # exp and in the products that follow; the clamp keeps every responsibility normal
    K = 64
    log_p = np.linspace(0.0, -1e4, K, dtype=dtype)[:, None] * np.ones((1, 100), dtype=dtype)
    log_norm, r = kernels._log_normalise(log_p.copy())
    assert r.dtype == dtype and np.all(r >= np.finfo(dtype).tiny)
    assert np.allclose(np.sum(r, axis=0), 1.0) and np.allclose(log_norm, 0.0)  # 1 + e^-159...
