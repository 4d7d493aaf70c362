"""The derivation steps (r.steps): every step, of every worked scalar example and of generated
expressions, orders 1 and 2, evaluates (d(u) in the language, matdiff.evaluate with wrt) to the
derivative contracted with a random direction; the last step reads off the reported
derivative. The derivative itself is checked against each case's independent NumPy formula
(worked examples) or finite differences (generated expressions)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from cases import CASES
from test_cases import declaration, draw, is_symmetric_wrt, random_direction
from test_properties import (
    ALL_KINDS,
    DECLARATION_TYPES,
    Chooser,
    draw_case,
    hessian_by_differences,
    jacobian_by_differences,
)

import matdiff
from matdiff.cli import GAUSSIAN, GAUSSIAN_DECLARE, main

TOLERANCE = 1e-8
STENCIL = np.array([1.0, -8.0, 8.0, -1.0]) / 12.0
OFFSETS = np.array([-2.0, -1.0, 1.0, 2.0])


def scalar_cases():
    out = []
    for case in CASES:
        r = matdiff.derive(case["expr"], case["wrt"], declare=declaration(case))
        if not r.function.ndim:
            out.append(case)
    return out


SCALAR_CASES = scalar_cases()


def close(actual, expected, scale) -> float:
    return abs(float(actual) - float(expected)) / max(abs(float(expected)), scale, 1e-300)


def step_values(steps, declare, wrt, values):
    return [float(matdiff.evaluate(s.text, declare, wrt=wrt, **values)) for s in steps]


def oracle(case, values, wrt, v, order):
    """The derivative contracted with v (twice for order 2) from the case's own NumPy
    formulas: its gradient (or Hessian), or a 4-point stencil of them along v."""
    def along(fn, t):
        return fn({**values, wrt: values[wrt] + t * v})

    def stencil(fn, h=1e-3):
        return sum(w * fn(o * h) for w, o in zip(STENCIL, OFFSETS)) / h

    if case["order"] == 1:
        gradient = case["expected"]
        if order == 1:
            return float(np.sum(gradient(values) * v))
        return stencil(lambda t: float(np.sum(along(gradient, t) * v)))
    hessian = case["expected"](values)
    axes = v.ndim
    if order == 2:
        return float(np.tensordot(np.tensordot(hessian, v, axes=axes), v, axes=axes))
    return stencil(lambda t: float(along(case["f"], t)))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("case", SCALAR_CASES, ids=lambda c: c["id"])
def test_every_step_of_the_worked_examples(case, order):
    decl = declaration(case)
    r = matdiff.derive(case["expr"], case["wrt"], declare=decl, order=order)
    steps = r.steps
    rng = np.random.default_rng(sum(map(ord, case["id"])) + order)
    values = draw(case, rng)
    dx = random_direction(case, values, rng)
    direction = f"d{case['wrt']}"
    want = oracle(case, values, case["wrt"], dx, order)
    # a zero is compared absolutely: to 1e-16 exactly, to 1e-12 where a stencil is the oracle
    stencil = (case["order"] == 1) != (order == 1)
    scale = (1e-4 if stencil else 1e-8) * float(np.linalg.norm(dx)) ** order
    got = step_values(steps, decl, case["wrt"], {**values, direction: dx})
    errors = [close(g, want, scale) for g in got]
    assert max(errors) < TOLERANCE, [(s.rule, s.text, e) for s, e in zip(steps, errors)]
    assert steps[0].body.startswith("d("), steps[0].text
    last = steps[-1]
    assert last.result == r.text
    assert any("identification" in s.rule for s in steps[-2:]), last.rule


def test_last_step_result_is_the_reported_gradient_value():
    """The identified gradient text evaluates to the case's independent answer."""
    for case in SCALAR_CASES[:12]:
        decl = declaration(case)
        r = matdiff.derive(case["expr"], case["wrt"], declare=decl)
        if case["order"] != 1:
            continue
        values = draw(case, np.random.default_rng(5))
        got = matdiff.evaluate(r.steps[-1].result, decl, **values)
        want = case["expected_sym" if is_symmetric_wrt(case) else "expected"](values)
        assert np.allclose(got, want, rtol=1e-8, atol=1e-10), case["id"]


# ---- generated expressions: the mechanism, not the examples ----------------------------------

def generated(count: int, seed: int):
    chooser = Chooser(random.Random(seed))
    out = []
    while len(out) < count:
        case = draw_case(chooser, [k for k in ALL_KINDS if not k], True)
        if case is None:
            continue
        try:
            r = matdiff.derive(case.expression, case.wrt, declare=case.declare)
        except matdiff.MatdiffError:
            continue
        values = case.point()
        with np.errstate(all="ignore"):
            if not np.all(np.isfinite(case.evaluate(values))) or not np.all(
                    np.isfinite(r.numpy()(**values))):
                continue
        out.append(case)
    return out


def full_declaration(case) -> str:
    """Every variable declared (the step texts bring in new names, such as q, that must not
    change the others' default types)."""
    names = sorted(n for n in DECLARATION_TYPES if n in case.node.variables)
    return "; ".join(f"{n}: {DECLARATION_TYPES[n]}" for n in names)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("case", generated(20, seed=2026), ids=lambda c: c.expression[:40])
def test_every_step_of_generated_expressions(case, order):
    decl = full_declaration(case)
    r = matdiff.derive(case.expression, case.wrt, declare=decl, order=order)
    values = case.point()
    rng = np.random.default_rng(case.seed % 1000)
    v = rng.standard_normal(np.shape(values[case.wrt]))
    if case.symmetric_wrt:
        v = (v + v.T) / 2
    v = np.asarray(v, dtype=float)
    # the derivative contracted with v, checked against finite differences of the NumPy
    # evaluator; the steps then have to agree with it to 1e-8
    derivative = np.asarray(r.numpy()(**values), dtype=float)
    if order == 1:
        want = float(np.sum(derivative * v))
        differences = jacobian_by_differences(case, values, 1e-3)  # sym(G) for S, like r
        assert close(np.sum(differences * v), want, 1.0) < 1e-5
    else:
        want = float(np.tensordot(np.tensordot(derivative, v, axes=v.ndim), v, axes=v.ndim))
        differences = hessian_by_differences(case, values, 1e-3)
        fd = float(np.tensordot(np.tensordot(differences, v, axes=v.ndim), v, axes=v.ndim))
        assert close(fd, want, 1.0) < 1e-4
    got = step_values(r.steps, decl, case.wrt, {**values, f"d{case.wrt}": v})
    scale = 1e-6 * max(1.0, float(np.linalg.norm(v)) ** order)
    errors = [close(g, want, scale) for g in got]
    assert max(errors) < TOLERANCE, [(s.rule, s.text, e) for s, e in zip(r.steps, errors)]
    assert r.steps[-1].result == r.text


# ---- the Gaussian, the renderings, the CLI ------------------------------------------------------

def test_gaussian_steps_fit_one_screen():
    steps = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE).steps
    # the printed derivation: rule and right-hand side of each step, the names in one line
    assert len(steps) + (1 if steps.bindings else 0) <= 12, steps.text
    assert max(map(len, steps.text.splitlines())) <= 100, steps.text
    assert steps.where.startswith("where ") and len(steps.where) <= 100
    rules = " ".join(s.rule for s in steps)
    for rule in ("product rule", "chain rule", "d(inv(X)) = -inv(X)*dX*inv(X)",
                 "d(det(X)) = det(X)*tr(inv(X)*dX)", "own trace", "identification",
                 "sym(G)"):
        assert rule in rules, rule
    assert [n for n, _, _ in steps.bindings] == ["f", "q"] or {"q"} <= {
        n for n, _, _ in steps.bindings}


@pytest.mark.parametrize(("expr", "form"), [("tr(X'*A*X)", "tr(dX'*A*dX)"),
                                            ("logdet(X)", "tr(inv(X)*dX*inv(X)*dX)"),
                                            ("tr(X*A*X*B)", "tr(B*dX*A*dX)")])
def test_second_differential_in_trace_form(expr, form):
    steps = matdiff.derive(expr, "X", order=2).steps
    assert any(form in s.body and "tr(B*dX'*C*dX)" in s.rule for s in steps), steps.text


def test_second_identification_theorem_as_stated():
    """The Kronecker Hessians the rule text states, checked on random matrices (column-major
    vec): tr(B*dX'*C*dX) = vec(dX)'*H*vec(dX), H = (kron(B', C) + kron(B, C'))/2, and
    tr(B*dX*C*dX) with H = K*(kron(B', C) + kron(C', B))/2."""
    rng = np.random.default_rng(3)
    n = 3
    B, C, dX = (rng.standard_normal((n, n)) for _ in range(3))
    v = dX.reshape(-1, order="F")
    K = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            K[j + n * i, i + n * j] = 1  # K*vec(A) = vec(A')
    h1 = (np.kron(B.T, C) + np.kron(B, C.T)) / 2
    h2 = K @ (np.kron(B.T, C) + np.kron(C.T, B)) / 2
    assert np.allclose(h1, h1.T) and np.allclose(h2, h2.T)
    assert np.isclose(v @ h1 @ v, np.trace(B @ dX.T @ C @ dX))
    assert np.isclose(v @ h2 @ v, np.trace(B @ dX @ C @ dX))
    assert "kron(B', C) + kron(B, C')" in matdiff.derive("logdet(X)", "X", order=2).steps[-1].rule


@pytest.mark.parametrize(("declare", "symmetric"), [
    ("S: symmetric posdef matrix(n,n)", "sym"), ("S: symmetric posdef matrix(n,n)", "full"),
    ("S: symmetric posdef matrix(n,n)", "cookbook"), ("S: diagonal posdef matrix(n,n)", "sym")])
def test_structured_variables_in_every_convention(declare, symmetric):
    """Every step holds for directions in the variable's space (symmetric or diagonal dS),
    and the last one names the convention's result."""
    expr = "logdet(S) + tr(A*S*B) + x'*inv(S)*x"
    decl = declare + "; A, B: matrix(n,n); x: vector(n)"
    r = matdiff.derive(expr, "S", declare=decl, symmetric=symmetric)
    rng = np.random.default_rng(4)
    g, v = rng.standard_normal((2, 3, 3))
    diagonal = "diagonal" in declare
    S = np.diag(rng.uniform(1, 2, 3)) if diagonal else g @ g.T + np.eye(3)
    dS = np.diag(np.diag(v)) if diagonal else v + v.T
    values = {"S": S, "A": rng.standard_normal((3, 3)), "B": rng.standard_normal((3, 3)),
              "x": rng.standard_normal(3)}
    gradient = matdiff.derive(expr, "S", declare=decl, symmetric="full").numpy()(**values)
    want = float(np.sum(gradient * dS))
    got = step_values(r.steps, decl, "S", {**values, "dS": dS})
    assert max(close(x, want, 1e-8) for x in got) < TOLERANCE, r.steps.text
    assert r.steps[-1].result == r.text
    word = {"full": "independent", "cookbook": "Cookbook", "sym": "sym(G)"}[symmetric]
    assert (word if not diagonal else "diagonal") in r.steps[-1].rule


def test_renderings_and_dict():
    steps = matdiff.derive("log(det(X)) + x'*X*x", "X").steps
    assert steps.text.count("\n    df = ") == len(steps)
    assert steps.latex.startswith(r"\begin{aligned}") and r"\mathrm{d}" in steps.latex
    assert steps._repr_latex_().startswith("$$")
    assert steps.markdown == steps._repr_markdown_() and steps.markdown.startswith("1. ")
    d = steps.to_dict()
    assert [s["text"] for s in d["steps"]] == [s.text for s in steps]
    assert {"rule", "text", "latex", "unicode", "result"} <= set(d["steps"][0])


def test_refused_where_there_are_no_steps():
    with pytest.raises(matdiff.MatdiffError, match="one variable"):
        _ = matdiff.derive("x'*A*y", ("x", "y")).steps
    with pytest.raises(matdiff.MatdiffError, match="orders 1 and 2"):
        _ = matdiff.derive("sum(exp(x))", "x", order=3).steps


def test_cli_steps(capsys):
    assert main(["derive", GAUSSIAN, "--wrt", "S", "--declare", GAUSSIAN_DECLARE,
                 "--steps"]) == 0
    out = capsys.readouterr().out
    assert "steps:" in out and "d(inv(X)) = -inv(X)*dX*inv(X)" in out
    assert "identification" in out
    assert main(["derive", "x'*A*x", "--wrt", "x", "--steps", "--format", "json"]) == 0
    assert '"steps"' in capsys.readouterr().out


# ---- d(u) in the language --------------------------------------------------------------------

def test_differential_parses_and_evaluates():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    dX = rng.standard_normal((3, 3))
    inv = np.linalg.inv(X)
    assert np.allclose(matdiff.evaluate("d(inv(X))", X=X, dX=dX), -inv @ dX @ inv)
    assert matdiff.parse("d(inv(X))", wrt="X") is matdiff.parse("-inv(X)*dX*inv(X)")
    # other variables are constants; d(d(u)) is the second differential, dX constant
    A = rng.standard_normal((3, 3))
    assert np.allclose(matdiff.evaluate("d(A*X*X)", wrt="X", A=A, X=X, dX=dX),
                       A @ dX @ X + A @ X @ dX)
    assert np.isclose(matdiff.evaluate("d(d(tr(X*X*X)))", X=X, dX=dX),
                      6 * np.trace(dX @ dX @ X))
    S = X @ X.T
    dS = dX + dX.T
    got = matdiff.evaluate("d(logdet(S))", "S: symmetric posdef matrix(n,n)", wrt="S", S=S,
                           dS=dS)
    assert np.isclose(got, np.trace(np.linalg.solve(S, dS)))


def test_d_stays_a_name_elsewhere():
    assert matdiff.derive("d*x'*x", "x").text == "2*d*x"
    assert matdiff.derive("d*(x'*x)", "x").text == "2*d*x"


def test_gaussian_identifies_g_then_the_convention():
    """For a symmetric S: df = tr(G'*dS) gives G (all entries independent), then sym(G)."""
    r = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE)
    identification, convention = r.steps[-2:]
    assert identification.result_lhs == "G" and "sym(G)" in convention.rule
    full = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE, symmetric="full")
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, 3))
    values = {"S": g @ g.T + np.eye(3), "x": rng.standard_normal(3),
              "m": rng.standard_normal(3), "k": 3.0}
    where = ", ".join(f"{n} = {t}" for n, t, _ in r.steps.bindings)
    got = matdiff.evaluate(f"{identification.result} where {where}", GAUSSIAN_DECLARE, **values)
    assert np.allclose(got, full.numpy()(**values), rtol=1e-10)


def test_latex_keeps_d_a_name():
    """The differential is text syntax: in LaTeX d(u) is the product of a name d and (u)."""
    assert matdiff.derive(r"\frac{1}{2} d(x^\top x)", "x").text == "d*x"


def test_differential_errors():
    with pytest.raises(matdiff.MatdiffError, match="pass wrt"):
        matdiff.parse("d(inv(X))*Y")
    # every other variable is a constant: d(u) by a variable u does not use is 0
    assert matdiff.parse("d(inv(X))", wrt="Y").op == "zero"
    with pytest.raises(matdiff.MatdiffError, match="one argument"):
        matdiff.parse("d(X, Y)", wrt="X")


def test_cli_prints_the_differential(capsys):
    assert main(["derive", "d(inv(X))", "--wrt", "X"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("d(inv(X)) = -inv(X)*dX*inv(X)")
    assert main(["derive", "d(x'*A*x)", "--wrt", "x", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("d(x'*A*x) = x'*A*dx + dx'*A*x") and "ok" in out
    assert main(["derive", "d(inv(X), Y)", "--wrt", "X"]) == 2
    assert "d takes one argument" in capsys.readouterr().err
