"""Expressions without a closed form: the clear message, and the numeric fallback converging
(the gradient matdiff derives, evaluated independently at the returned point, is small)."""

import sys

import numpy as np
import pytest

import matdiff

try:                                     # scipy is the optional `fast` extra
    import scipy.optimize  # noqa: F401
    LBFGS = "L-BFGS (scipy)"
except ImportError:
    LBFGS = "L-BFGS (plain)"

rng = np.random.default_rng(0)
N, P = 12, 4
X = rng.normal(size=(N, P))
A = rng.normal(size=(N, P))
_G = rng.normal(size=(P, P))
SPD = _G @ _G.T / P + np.eye(P)
_H = rng.normal(size=(P, P))
C_SPD = _H @ _H.T / P + np.eye(P)

# (expression, unknown, declarations, data, start, what the message names)
CASES = [
    ("sum(log(1 + exp(-y.*(X*w)))) + lam/2*w'*w", "w", "y: vector(n); lam: positive scalar",
     dict(X=X, y=np.sign(rng.normal(size=N)), lam=0.1), None, "more than one factor"),
    ("sum(exp(A*x)) - b'*x", "x", "b: vector(m)",
     dict(A=A, b=A.T @ rng.uniform(0.5, 2, N)), None, "exp(A*x)"),
    ("logdet(X) + tr(inv(X)*C) + lam*tr(X*X)", "X",
     "X: symmetric posdef matrix(d,d); C: symmetric posdef matrix(d,d); lam: positive scalar",
     dict(C=C_SPD, lam=0.5), {"X": np.eye(P)}, "matrix power"),
    ("x'*A*x + norm2(x)^4 - b'*x", "x", "A: symmetric posdef matrix(d,d); b: vector(d)",
     dict(A=SPD, b=rng.normal(size=P)), None, "more than one factor"),
    ("sum(log(1 + exp(X*w - y))) + lam*w'*w", "w", "lam: positive scalar; y: vector(n)",
     dict(X=X, y=rng.normal(size=N), lam=0.1), None, "w"),
    ("sum(exp(x)) + 1/2*x'*A*x - b'*x", "x", "A: symmetric posdef matrix(d,d); b: vector(d)",
     dict(A=SPD, b=rng.normal(size=P)), None, "exp(x)"),
    ("-sum(log(b - A*x)) + 1/2*x'*x", "x", "b: positive vector(n)",
     dict(A=A, b=rng.uniform(1, 2, N)), {"x": np.zeros(P)}, "power"),
    ("1/2*x'*A*x - b'*x + sum(x.^4)", "x", "A: symmetric posdef matrix(d,d); b: vector(d)",
     dict(A=SPD, b=rng.normal(size=P)), None, "x.^3"),
    ("sum(sqrt(1 + (A*x - b).^2)) + lam/2*x'*x", "x", "b: vector(n); lam: positive scalar",
     dict(A=A, b=rng.normal(size=N), lam=0.1), None, "power"),
    ("sum(exp(X*w)) - y'*X*w + lam/2*w'*w", "w", "y: vector(n); lam: positive scalar",
     dict(X=0.3 * X, y=rng.uniform(0, 3, N), lam=0.1), None, "exp(X*w)"),
    ("tr((A*Z - B)'*(A*Z - B)) + tr((Z*C - D)'*(Z*C - D))", "Z", None,
     dict(A=rng.normal(size=(5, P)), B=rng.normal(size=(5, 3)), C=rng.normal(size=(3, 3)),
          D=rng.normal(size=(P, 3))), None, "Sylvester"),
    ("exp(v) - b*v + v^4", "v", "v: scalar; b: scalar", dict(b=3.0), None, "v^3"),
]


def _converged(expr, wrt, declare, data, found):
    assert found.converged, str(found)
    g = matdiff.derive(expr, wrt, declare=declare).numpy()(**data, **found.values)
    f = matdiff.evaluate(expr, declare, **data, **found.values)
    assert np.linalg.norm(g) < 1e-8 * max(1.0, abs(float(f)))
    assert abs(float(f) - found.value) < 1e-12 * max(1.0, abs(float(f)))


@pytest.mark.parametrize("expr, wrt, declare, data, start, why", CASES,
                         ids=[c[0][:30] for c in CASES])
def test_no_closed_form_then_the_fallback_converges(expr, wrt, declare, data, start, why):
    sol = matdiff.solve(expr, wrt=wrt, declare=declare)
    assert not sol.closed
    assert sol.reason.startswith("no closed form found: ") and why in sol.reason
    found = sol.minimize(start=start, **data)
    _converged(expr, wrt, declare, data, found)
    vector_like = np.ndim(found.values[wrt]) <= 1
    assert found.method == ("newton" if vector_like else LBFGS)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[10]], ids=["logistic", "logdet",
                                                                       "sylvester"])
def test_plain_lbfgs_without_scipy(case, monkeypatch):
    expr, wrt, declare, data, start, _ = case
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)   # import fails: the plain one
    found = matdiff.solve(expr, wrt=wrt, declare=declare).minimize(method="lbfgs", start=start,
                                                                   **data)
    assert found.method == "L-BFGS (plain)"
    _converged(expr, wrt, declare, data, found)


def test_lbfgs_on_a_vector_and_newton_refused_for_a_matrix():
    expr, wrt, declare, data, start, _ = CASES[1]
    sol = matdiff.solve(expr, wrt=wrt, declare=declare)
    _converged(expr, wrt, declare, data, sol.minimize(method="lbfgs", **data))
    with pytest.raises(matdiff.MatdiffError, match="Newton"):
        matdiff.solve(*CASES[2][:2], declare=CASES[2][2]).minimize(method="newton",
                                                                   **CASES[2][3])


def test_maximize():
    declare = "A: symmetric posdef matrix(d,d); b: vector(d)"
    data = dict(A=SPD, b=rng.normal(size=P))
    sol = matdiff.solve("b'*x - 1/2*x'*A*x - sum(x.^4)", wrt="x", declare=declare)
    found = sol.minimize(maximize=True, **data)
    assert found.converged
    lower = matdiff.solve("1/2*x'*A*x - b'*x + sum(x.^4)", wrt="x", declare=declare)
    assert np.allclose(found.values["x"], lower.minimize(**data).values["x"], atol=1e-10)


def test_random_data_when_none_is_given():
    found = matdiff.solve(*CASES[3][:2], declare=CASES[3][2]).minimize(seed=3)
    assert found.converged


def test_fallback_errors_are_clear():
    sol = matdiff.solve(*CASES[3][:2], declare=CASES[3][2])
    with pytest.raises(matdiff.MatdiffError, match="no value given for"):
        sol.minimize(A=SPD)
    with pytest.raises(matdiff.MatdiffError, match="unknown method"):
        sol.minimize(method="bfgs")
    constrained = matdiff.solve("sum(exp(w)) + w'*w", wrt="w", constraint="simplex")
    assert not constrained.closed
    with pytest.raises(matdiff.MatdiffError, match="unconstrained"):
        constrained.minimize()
