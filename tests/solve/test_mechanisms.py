"""The algebraic moves, each on expressions built to need it (not the textbook classes): every
solution against NumPy, the gradient at it, and the steps read back."""

import numpy as np
import pytest

import matdiff
from matdiff.solve.algebra import NoClosedForm, equation, linear_form

from .helpers import gradient_size, relative, steps_hold

SPD = "symmetric posdef matrix(n,n)"


def _spd(rng, n):
    g = rng.normal(size=(n, n))
    return g @ g.T / n + np.eye(n)


def _solved(expr, wrt, declare, data, declarations, seed=0):
    sol = matdiff.solve(expr, wrt=wrt, declare=declare)
    assert sol.closed, sol.reason
    got = sol.values(**data)
    point = {**data, **got}
    assert sol.check(seed) < 1e-9
    assert gradient_size(sol, point) < 1e-9
    steps_hold(sol, point, declarations)
    return sol, got


@pytest.mark.parametrize("seed", range(2))
def test_left_inverse_factored_sum(seed):
    """A*x + B*x = b: the sum of the same side factored, then one inverse."""
    rng = np.random.default_rng(seed)
    A, B, b = _spd(rng, 4), _spd(rng, 4), rng.normal(size=4)
    declare = f"A: {SPD}; B: {SPD}; b: vector(n); x: vector(n)"
    sol, got = _solved("1/2*x'*A*x + 1/2*x'*B*x - b'*x", "x", declare, dict(A=A, B=B, b=b),
                       declare, seed)
    assert relative(got["x"], np.linalg.solve(A + B, b)) < 1e-12
    assert sol.text == "x = inv(A + B)*b"


@pytest.mark.parametrize("seed", range(2))
def test_right_inverse(seed):
    """X*B = C: X = C*inv(B)."""
    rng = np.random.default_rng(seed)
    B, C = _spd(rng, 3), rng.normal(size=(4, 3))
    declare = "B: symmetric posdef matrix(q,q); C: matrix(p,q); X: matrix(p,q)"
    sol, got = _solved("1/2*tr(X*B*X') - tr(C'*X)", "X", declare, dict(B=B, C=C), declare, seed)
    assert relative(got["X"], C @ np.linalg.inv(B)) < 1e-12
    assert sol.text == "X = C*inv(B)"


@pytest.mark.parametrize("seed", range(2))
def test_inverses_on_both_sides(seed):
    """A*X*B = C: X = inv(A)*C*inv(B)."""
    rng = np.random.default_rng(seed)
    A, B, C = _spd(rng, 4), _spd(rng, 3), rng.normal(size=(4, 3))
    declare = ("A: symmetric posdef matrix(p,p); B: symmetric posdef matrix(q,q); "
               "C: matrix(p,q); X: matrix(p,q)")
    sol, got = _solved("1/2*tr(A*X*B*X') - tr(C'*X)", "X", declare, dict(A=A, B=B, C=C),
                       declare, seed)
    assert relative(got["X"], np.linalg.solve(A, C) @ np.linalg.inv(B)) < 1e-12


def test_scalar_multiple_of_a_matrix_unknown():
    rng = np.random.default_rng(3)
    C = rng.normal(size=(3, 2))
    declare = "lam: positive scalar; C: matrix(p,q); X: matrix(p,q)"
    sol, got = _solved("lam/2*tr(X'*X) - tr(C'*X)", "X", declare, dict(C=C, lam=0.7), declare)
    assert relative(got["X"], C / 0.7) < 1e-12
    assert sol.text == "X = C/lam"


def test_a_constant_inverse_is_cleared_by_multiplying_through():
    """inv(A)*(x - b) = 0: multiplying by A on the left leaves x = b."""
    rng = np.random.default_rng(4)
    A, b = _spd(rng, 3), rng.normal(size=3)
    declare = f"A: {SPD}; b: vector(n); x: vector(n)"
    sol, got = _solved("1/2*x'*inv(A)*x - b'*inv(A)*x", "x", declare, dict(A=A, b=b), declare)
    assert relative(got["x"], b) < 1e-12
    assert "multiply on the left by A (clears its inverse)" in [s.move for s in sol.steps]
    assert sol.text == "x = b"


def test_scalar_unknown_with_powers():
    """a/v + b*v is stationary at v = sqrt(a/b)? No: its gradient b - a/v^2 needs a square
    root, which these moves do not take; a*log(v) - b*v needs only v*gradient."""
    declare = "v: positive scalar; a: positive scalar; b: positive scalar"
    sol, got = _solved("a*log(v) - b*v", "v", declare, dict(a=3.0, b=2.0), declare)
    assert relative(got["v"], 1.5) < 1e-14
    quadratic = matdiff.solve("a/v + b*v", wrt="v", declare=declare)
    assert not quadratic.closed and "v" in quadratic.reason


def test_symmetric_unknown_transposed_is_itself():
    rng = np.random.default_rng(5)
    C = _spd(rng, 3)
    declare = "X: symmetric matrix(n,n); C: symmetric matrix(n,n)"
    sol, got = _solved("tr(C*X') - 1/2*tr(X*X)", "X", declare, dict(C=C), declare)
    assert relative(got["X"], C) < 1e-12


@pytest.mark.parametrize("expr, declare, why", [
    ("tr(A*X') - 1/2*tr(X*X)", "X: matrix(n,n); A: matrix(n,n)", "X'"),
    ("tr((A*Z - B)'*(A*Z - B)) + tr((Z*C - D)'*(Z*C - D))", None, "Sylvester"),
    ("b'*x", "b: vector(n)", "does not involve x"),
    ("logdet(S)", "S: symmetric posdef matrix(n,n)", "no stationary point"),
    ("sum(exp(A*x)) - b'*x", "b: vector(m)", "exp(A*x)"),
    ("x'*A*x + norm2(x)^4", "A: symmetric posdef matrix(n,n)", "more than one factor"),
    ("tr(X)^2 - tr(X)", "X: matrix(n,n)", "X"),
])
def test_no_closed_form_says_why(expr, declare, why):
    wrt = next(v for v in ("Z", "X", "S", "x") if v in expr)
    sol = matdiff.solve(expr, wrt=wrt, declare=declare)
    assert not sol.closed
    assert sol.reason.startswith("no closed form found: ") and why in sol.reason
    assert sol.text == sol.reason
    with pytest.raises(matdiff.MatdiffError, match="no closed form found"):
        sol.numpy()


def test_linear_form_splits_each_term_into_a_product():
    """The mechanism below the front door: A*X*B terms, sides, scalars."""
    declare = ("A: symmetric posdef matrix(p,p); B: symmetric posdef matrix(q,q); "
               "C: matrix(p,q); X: matrix(p,q); lam: scalar")
    r = matdiff.derive("1/2*tr(A*X*B*X') + lam/2*tr(X'*X) - tr(C'*X)", "X", declare=declare)
    x = matdiff.core.ir.var("X", r.variables["X"].shape, r.variables["X"].props)
    linear, constant = linear_form(equation(r.derivative, x), x)
    kinds = sorted((t.a is not None, t.b is not None) for t in linear)
    assert kinds == [(False, False), (True, True)]
    assert len(constant) == 1
    cubic = matdiff.derive("tr(X'*X*X'*X)", "X", declare=declare).derivative
    with pytest.raises(NoClosedForm):
        linear_form(equation(cubic, x), x)


@pytest.mark.parametrize("bad, match", [
    (dict(wrt="q"), "cannot differentiate"),
    (dict(wrt="x, x"), "twice"),
    (dict(wrt=3), "wrt must be"),
    (dict(wrt="x", constraint="box"), "unknown constraint"),
    (dict(wrt="x", constraint=" = 1"), "both sides"),
    (dict(wrt="x, A", constraint="simplex"), "single unknown"),
    (dict(wrt="x", constraint="sum(x) <= 1"), "not an equation"),
    (dict(wrt="x", constraint="sum(y) = 1"), "does not involve x"),
    (dict(wrt="x", constraint="x = b"), "not a scalar equation"),
    (dict(wrt="x", constraint=1), "must be text"),
])
def test_bad_input_is_a_clear_error(bad, match):
    with pytest.raises(matdiff.MatdiffError, match=match):
        matdiff.solve("x'*A*x - b'*x", **bad)


def test_a_non_scalar_expression_is_refused():
    with pytest.raises(matdiff.MatdiffError, match="scalar expression"):
        matdiff.solve("A*x", wrt="x")


@pytest.mark.parametrize("expr, declare, said", [
    ("norm2(X*w - y)^2 + lam*w'*w", "lam: positive scalar", "symmetric, positive definite"),
    ("norm2(X*w - y)^2", None, "symmetric, positive semidefinite"),
    ("(X*w - y)'*diag(q)*(X*w - y)", "q: positive vector(n)", "symmetric, positive semidefinite"),
    ("(X*w - y)'*diag(q)*(X*w - y)", "q: vector(n)", "(symmetric)"),
    ("norm2(X*w - y)^2 + lam*w'*w", "lam: scalar", "(factored, symmetric)"),
])
def test_the_inverted_matrix_is_said_to_be_what_it_provably_is(expr, declare, said):
    sol = matdiff.solve(expr, wrt="w", declare=declare)
    move = sol.steps[-1].move
    assert said in move
    # and it is: the matrix named in the move, evaluated on random data of the declared kinds
    matrix = move.split("inverse of ")[1].split(" (")[0]
    rng = np.random.default_rng(0)
    data = dict(X=rng.normal(size=(9, 3)), q=rng.uniform(0.1, 2, 9), lam=0.3)
    eigenvalues = np.linalg.eigvalsh(matdiff.evaluate(matrix, sol.declare, **data))
    if "definite" in said:
        assert eigenvalues.min() > (0 if "positive definite" in said else -1e-12)


def test_declarations_as_a_dict_and_a_taken_multiplier_name():
    declare = {"w": "positive vector(K)", "R": "matrix(n,K)", "c": "scalar"}
    sol = matdiff.solve("(R'*vector(1))'*log(w) + c", wrt="w", declare=declare,
                        constraint="simplex")
    assert sol.multiplier != "c" and sol.text == "w = R'*vector(1)/sum(R)"
    assert sol.check(1) < 1e-9


@pytest.mark.parametrize("expr, wrt, declare, constraint, data, oracle", [
    ("sum(exp(w)) - b'*w", "w", "b: positive vector(n); w: vector(n)", None,
     dict(b=np.array([0.5, 2.0, 3.0])), lambda d: np.log(d["b"])),
    ("a*exp(v) - b*v", "v", "v: scalar; a: positive scalar; b: positive scalar", None,
     dict(a=2.0, b=5.0), lambda d: np.log(d["b"] / d["a"])),
    ("sum(exp(w))", "w", "w: vector(n)", "simplex", dict(n=4), lambda d: np.full(4, 0.25)),
    ("q'*log(x) - sum(x)", "x", "q: positive vector(n); x: positive vector(n)", None,
     dict(q=np.array([0.5, 2.0])), lambda d: d["q"]),
])
def test_one_to_one_functions_are_inverted(expr, wrt, declare, constraint, data, oracle):
    """exp(u) = C -> u = log(C), log(u) = C -> u = exp(C), entrywise, then the algebra goes on
    (for the simplex: c from the constraint, log(c)*n = 1)."""
    sol = matdiff.solve(expr, wrt=wrt, declare=declare, constraint=constraint)
    assert sol.closed, sol.reason
    got = sol.values(**data)
    assert relative(got[wrt], oracle(data)) < 1e-12
    assert sol.check(0) < 1e-9
    point = {**{k: v for k, v in data.items() if k != "n"}, **got}
    declarations = declare + ("; c: scalar" if constraint else "")
    steps_hold(sol, point, declarations)
    assert gradient_size(sol, point) < 1e-9
