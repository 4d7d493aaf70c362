"""The M-step formulas: the gradient matdiff derives for each objective vanishes at the update,
and each update equals the textbook GMM update computed independently with NumPy."""

import numpy as np
import pytest

import matdiff
from matdiff.em.updates import COVARIANCE_TYPES, UPDATES, WEIGHTS

N, D, K = 40, 3, 4


def _data(seed):
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(N, D)) * rng.uniform(0.5, 3, size=D) + rng.normal(size=D)
    R = rng.dirichlet(np.ones(K), size=N)          # responsibilities: rows on the simplex
    return Y, R


def _textbook(Y, R, kind):
    """Bishop (2006), eqs. 9.24-9.27, with the per-type restrictions, written as loops."""
    nk = R.sum(axis=0)
    means = np.array([sum(R[n, k] * Y[n] for n in range(N)) / nk[k] for k in range(K)])
    scatter = np.array([sum(R[n, k] * np.outer(Y[n] - means[k], Y[n] - means[k])
                            for n in range(N)) for k in range(K)])
    cov = {"full": scatter / nk[:, None, None],
           "tied": scatter.sum(axis=0) / N,
           "diag": np.array([np.diag(np.diag(s)) for s in scatter]) / nk[:, None, None],
           "spherical": np.array([np.trace(s) / D for s in scatter]) / nk}[kind]
    return nk / N, means, cov


def _relative(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("seed", range(3))
def test_updates_equal_textbook(kind, seed):
    Y, R = _data(seed)
    w, means, cov = _textbook(Y, R, kind)
    ups = UPDATES[kind]
    assert _relative(ups["w"].evaluate(R=R), w) < 1e-13
    m = np.array([ups["m"].evaluate(Y=Y, r=R[:, k]) for k in range(K)])
    assert _relative(m, means) < 1e-13
    if kind == "tied":
        got = ups["S"].evaluate(Y=Y, R=R, M=m)
    elif kind == "spherical":
        got = np.array([ups["v"].evaluate(Y=Y, r=R[:, k], m=m[k], d=D) for k in range(K)])
    else:
        got = np.array([ups["S"].evaluate(Y=Y, r=R[:, k], m=m[k]) for k in range(K)])
    assert _relative(got, cov) < 1e-13


def _gradient_at(update, wrt, values):
    g = matdiff.derive(update.objective, wrt, declare=update.declare).numpy()(**values)
    return np.max(np.abs(g))


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("seed", range(3))
def test_derived_gradient_vanishes_at_update(kind, seed):
    Y, R = _data(seed)
    ups = UPDATES[kind]
    r = R[:, 1]
    # the mean: dQ/dm = 0 at m = update, whatever (posdef) S is held at
    S = np.cov(Y.T) + np.eye(D)
    m = ups["m"].evaluate(Y=Y, r=r)
    assert _gradient_at(ups["m"], "m", dict(Y=Y, r=r, m=m, S=S)) < 1e-12 * N
    assert _gradient_at(ups["m"], "m", dict(Y=Y, r=r, m=m + 0.1, S=S)) > 1e-3  # can fail
    if kind == "tied":
        M = np.array([ups["m"].evaluate(Y=Y, r=R[:, k]) for k in range(K)])
        S = ups["S"].evaluate(Y=Y, R=R, M=M)
        scale = np.max(np.abs(np.linalg.inv(S))) * N
        assert _gradient_at(ups["S"], "S", dict(Y=Y, R=R, M=M, S=S)) < 1e-12 * scale
        assert _gradient_at(ups["S"], "S", dict(Y=Y, R=R, M=M, S=1.1 * S)) > 1e-3 * scale
        assert _gradient_at(ups["S"], "M", dict(Y=Y, R=R, M=M, S=S)) < 1e-12 * scale
    elif kind == "spherical":
        v = ups["v"].evaluate(Y=Y, r=r, m=m, d=D)
        values = dict(Y=Y, r=r, m=m, d=D)
        assert _gradient_at(ups["v"], "v", {**values, "v": v}) < 1e-12 * N / v
        assert _gradient_at(ups["v"], "v", {**values, "v": 1.1 * v}) > 1e-3 * N / v
    else:
        S = ups["S"].evaluate(Y=Y, r=r, m=m)
        scale = np.max(np.abs(np.linalg.inv(S))) * N
        assert _gradient_at(ups["S"], "S", dict(Y=Y, r=r, m=m, S=S)) < 1e-12 * scale
        assert _gradient_at(ups["S"], "S", dict(Y=Y, r=r, m=m, S=1.1 * S)) > 1e-3 * scale


@pytest.mark.parametrize("seed", range(3))
def test_weights_are_the_lagrange_stationary_point(seed):
    _, R = _data(seed)
    w = WEIGHTS.evaluate(R=R)
    assert abs(w.sum() - 1) < 1e-14                     # on the simplex
    # the Lagrangian's gradient in w vanishes with the multiplier c = N
    assert _gradient_at(WEIGHTS, "w", dict(R=R, w=w, c=float(N))) < 1e-12 * N
    assert _gradient_at(WEIGHTS, "c", dict(R=R, w=w, c=float(N))) < 1e-14
    moved = np.roll(w, 1)
    assert _gradient_at(WEIGHTS, "w", dict(R=R, w=moved, c=float(N))) > 1e-3
