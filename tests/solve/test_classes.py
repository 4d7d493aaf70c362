"""The required classes: each solved in closed form, equal to a NumPy oracle written here,
with the derived gradient vanishing at the solution (< 1e-9 relative) and every step holding."""

import numpy as np
import pytest

import matdiff

from .helpers import gradient_size, relative, steps_hold

SCATTER = "(Y - vector(1)*m')'*diag(r)*(Y - vector(1)*m')"
ONE = "m: vector(d); Y: matrix(n,d); r: positive vector(n)"
SEEDS = range(3)


def _data(seed, n=30, d=3):
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    r = rng.uniform(0.05, 1.0, size=n)
    return rng, Y, r


def _weighted_scatter(Y, r, m):
    return sum(r[i] * np.outer(Y[i] - m, Y[i] - m) for i in range(len(Y)))


def _check(sol, point, declarations, seed):
    assert sol.closed, sol.reason
    assert sol.check(seed) < 1e-9
    assert gradient_size(sol, point) < 1e-9
    steps_hold(sol, point, declarations)
    for u in sol.unknowns:   # the printed closed form reads back and gives the same value
        value = matdiff.evaluate(sol.forms[u].text, declarations, **point)
        assert relative(value, point[u]) < 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_ridge(seed):
    sol = matdiff.solve("norm2(X*w - y)^2 + lam*w'*w", wrt="w", declare="lam: scalar")
    assert sol.text == "w = inv(lam*eye + X'*X)*X'*y"
    rng = np.random.default_rng(seed)
    X, y, lam = rng.normal(size=(20, 4)), rng.normal(size=20), 0.3
    w = sol.values(X=X, y=y, lam=lam)["w"]
    assert relative(w, np.linalg.solve(X.T @ X + lam * np.eye(4), X.T @ y)) < 1e-12
    point = dict(X=X, y=y, lam=lam, w=w)
    _check(sol, point, "X: matrix(n,p); w: vector(p); y: vector(n); lam: scalar", seed)
    assert any("symmetric" in s.move for s in sol.steps)     # the normal matrix, said so


@pytest.mark.parametrize("seed", SEEDS)
def test_least_squares(seed):
    sol = matdiff.solve("norm2(X*w - y)^2", wrt="w")
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(20, 4)), rng.normal(size=20)
    w = sol.values(X=X, y=y)["w"]
    assert relative(w, np.linalg.lstsq(X, y, rcond=None)[0]) < 1e-10
    _check(sol, dict(X=X, y=y, w=w), "X: matrix(n,p); w: vector(p); y: vector(n)", seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_weighted_least_squares(seed):
    declare = "q: positive vector(n); X: matrix(n,p); y: vector(n); w: vector(p)"
    sol = matdiff.solve("(X*w - y)'*diag(q)*(X*w - y)", wrt="w", declare=declare)
    rng = np.random.default_rng(seed)
    X, y, q = rng.normal(size=(20, 4)), rng.normal(size=20), rng.uniform(0.1, 2, 20)
    w = sol.values(X=X, y=y, q=q)["w"]
    Wx = X * q[:, None]
    assert relative(w, np.linalg.solve(X.T @ Wx, Wx.T @ y)) < 1e-12
    _check(sol, dict(X=X, y=y, q=q, w=w), declare, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_log_likelihood_jointly(seed):
    declare = "S: symmetric posdef matrix(d,d); m: vector(d); Y: matrix(N,d); N: scalar"
    sol = matdiff.solve("-N/2*logdet(S) - 1/2*tr(inv(S)*(Y - vector(1)*m')'*(Y - vector(1)*m'))",
                        wrt="m, S", declare=declare)
    assert sol.unknowns == ("m", "S")            # m's equation does not involve S: first
    assert sol.text.splitlines() == ["m = Y'*vector(1)/N",
                                     "S = (Y - vector(1)*m')'*(Y - vector(1)*m')/N"]
    _, Y, _ = _data(seed)
    got = sol.values(Y=Y, N=float(len(Y)))
    assert relative(got["m"], Y.mean(axis=0)) < 1e-12
    assert relative(got["S"], np.cov(Y.T, bias=True)) < 1e-12
    _check(sol, dict(Y=Y, N=float(len(Y)), **got), declare, seed)
    moves = [s.move for s in sol.steps]
    assert "multiply on the left by S (clears its inverse)" in moves
    assert "multiply on the left and the right by S (clears its inverse)" in moves


@pytest.mark.parametrize("seed", SEEDS)
def test_gmm_component(seed):
    declare = f"S: symmetric posdef matrix(d,d); {ONE}"
    sol = matdiff.solve(f"-1/2*sum(r)*logdet(S) - 1/2*tr(inv(S)*{SCATTER})", wrt="m, S",
                        declare=declare)
    assert sol.text.splitlines() == ["m = Y'*r/sum(r)", f"S = {SCATTER}/sum(r)"]
    _, Y, r = _data(seed)
    got = sol.values(Y=Y, r=r)
    m = (r[:, None] * Y).sum(axis=0) / r.sum()
    assert relative(got["m"], m) < 1e-12
    assert relative(got["S"], _weighted_scatter(Y, r, m) / r.sum()) < 1e-12
    _check(sol, dict(Y=Y, r=r, **got), declare, seed)


@pytest.mark.parametrize("constraint", ["simplex", "sum(w) = 1", "vector(1)'*w = 1"])
@pytest.mark.parametrize("seed", SEEDS)
def test_mixing_weights_by_lagrange(constraint, seed):
    declare = "w: positive vector(K); R: matrix(n,K)"
    sol = matdiff.solve("(R'*vector(1))'*log(w)", wrt="w", declare=declare,
                        constraint=constraint)
    assert sol.text == "w = R'*vector(1)/sum(R)"
    R = np.random.default_rng(seed).dirichlet(np.ones(4), size=25)
    got = sol.values(R=R)
    assert relative(got["w"], R.sum(axis=0) / len(R)) < 1e-12
    assert abs(got["w"].sum() - 1) < 1e-14
    assert relative(got["c"], len(R)) < 1e-12          # the multiplier: c = sum(R) = N
    _check(sol, dict(R=R, **got), f"{declare}; c: scalar", seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_parametrisation(seed):
    declare = f"P: symmetric posdef matrix(d,d); {ONE}"
    sol = matdiff.solve(f"1/2*sum(r)*logdet(P) - 1/2*tr(P*{SCATTER})", wrt="P", declare=declare)
    rng, Y, r = _data(seed)
    m = rng.normal(size=Y.shape[1])
    got = sol.values(Y=Y, r=r, m=m)
    assert relative(got["P"], np.linalg.inv(_weighted_scatter(Y, r, m) / r.sum())) < 1e-10
    _check(sol, dict(Y=Y, r=r, m=m, **got), declare, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_tied_covariance(seed):
    declare = "S: symmetric posdef matrix(d,d); M: matrix(K,d); Y: matrix(n,d); R: matrix(n,K)"
    pooled = "Y'*diag(R*vector(1))*Y - Y'*R*M - M'*R'*Y + M'*diag(R'*vector(1))*M"
    sol = matdiff.solve(f"-1/2*sum(R)*logdet(S) - 1/2*tr(inv(S)*({pooled}))", wrt="S",
                        declare=declare)
    rng, Y, _ = _data(seed)
    R = rng.dirichlet(np.ones(3), size=len(Y))
    M = rng.normal(size=(3, Y.shape[1]))
    got = sol.values(Y=Y, R=R, M=M)
    want = sum(_weighted_scatter(Y, R[:, k], M[k]) for k in range(3)) / R.sum()
    assert relative(got["S"], want) < 1e-12
    _check(sol, dict(Y=Y, R=R, M=M, **got), declare, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_diagonal_covariance(seed):
    declare = f"s: positive vector(d); {ONE}"
    sol = matdiff.solve(f"-1/2*sum(r)*logdet(diag(s)) - 1/2*tr(inv(diag(s))*{SCATTER})",
                        wrt="s", declare=declare)
    rng, Y, r = _data(seed)
    m = rng.normal(size=Y.shape[1])
    got = sol.values(Y=Y, r=r, m=m)
    assert relative(got["s"], np.diag(_weighted_scatter(Y, r, m)) / r.sum()) < 1e-12
    _check(sol, dict(Y=Y, r=r, m=m, **got), declare, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_spherical_covariance(seed):
    declare = f"v: positive scalar; d: scalar; {ONE}"
    sol = matdiff.solve(f"-1/2*d*sum(r)*log(v) - 1/2/v*tr({SCATTER})", wrt="v", declare=declare)
    rng, Y, r = _data(seed)
    m = rng.normal(size=Y.shape[1])
    d = float(Y.shape[1])
    got = sol.values(Y=Y, r=r, m=m, d=d)
    assert relative(got["v"], np.trace(_weighted_scatter(Y, r, m)) / (d * r.sum())) < 1e-12
    _check(sol, dict(Y=Y, r=r, m=m, d=d, **got), declare, seed)


def test_the_check_can_fail():
    """check() measures something: a wrong closed form (the solution scaled) fails it."""
    sol = matdiff.solve("norm2(X*w - y)^2 + lam*w'*w", wrt="w", declare="lam: scalar")
    sol.forms["w"].expr = matdiff.core.simplify.scaled(matdiff.api.Fraction(11, 10),
                                                       sol.forms["w"].expr)
    assert sol.check(0) > 1e-3


def test_latex_and_unicode():
    sol = matdiff.solve("norm2(X*w - y)^2 + lam*w'*w", wrt="w", declare="lam: scalar")
    assert sol.latex.startswith("w = ") and "^{-1}" in sol.latex
    assert sol.unicode.startswith("w = ") and "⁻¹" in sol.unicode
