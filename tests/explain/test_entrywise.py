"""r.entrywise(): the finite-difference partial derivatives agree with the formula's entries,
convention by convention, on the worked examples and on generated expressions; the index form
evaluates, entry by entry, to the same numbers; the renderings carry the same table.

Tolerance: the 4-point central stencil's error is about h^4*|f'''''|/30 + eps*|f|/h. At the
step the view picks (1e-3 to 1e-5, whichever settles best) that is below 1e-9 relative for the
smooth functions here, so agreement is asked to 1e-7 relative to the table's largest entry
(or to ten times the differences' own measured resolution where that is larger): a factor of a
hundred above the stencil's error, and far below any wrong rule (which misses by O(1)).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from cases import CASES
from hypothesis import HealthCheck, assume, given, settings
from test_cases import declaration
from test_properties import cases as generated_cases

import matdiff
from matdiff.explain.entrywise import MAX_ENTRIES, _table
from matdiff.notation.render import TEXT, render
from matdiff.notation.tree import Call, Indexed, Mono, Power, Sum, Sym, Where, children

TOLERANCE = 1e-7
GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"


def assert_table_agrees(table, what: str) -> None:
    scale = max(float(np.max(np.abs(table.formula), initial=0.0)), 1e-12)
    allowed = max(TOLERANCE * scale, 10 * table.resolution)
    assert table.max_difference <= allowed, (
        f"{what} [{table.convention}]: max difference {table.max_difference:.3g} > "
        f"{allowed:.3g}\nfinite differences:\n{table.finite_differences}\n"
        f"formula:\n{table.formula}")
    assert table.resolution <= 1e-6 * scale, f"{what}: differences did not settle"


def cookbook(g: np.ndarray) -> np.ndarray:
    return g + g.T - np.diag(np.diag(g))


def sym(g: np.ndarray) -> np.ndarray:
    return (g + g.T) / 2


CASE_IDS = [c["id"] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_worked_examples_entry_by_entry(case):
    """Every worked example: differences = formula per convention, and both = the case's own
    NumPy answer (G, sym(G), and the cookbook's matrix built from G)."""
    r = matdiff.derive(case["expr"], case["wrt"], declare=declaration(case),
                       order=case.get("order", 1))
    e = r.entrywise(size=3, seed=1)
    assert e.tables, e.omitted
    for t in e.tables:
        assert_table_agrees(t, case["id"])
    point = {n: (float(v) if np.ndim(v) == 0 else v) for n, v in e.point.items()}
    if "domain" in case and not case["domain"](point):
        return  # the oracle is written for its domain; the differences held anyway
    oracle = np.asarray(case["expected"](point), dtype=float)
    by = {t.convention: t for t in e.tables}
    if set(by) == {None}:
        np.testing.assert_allclose(by[None].formula, oracle, rtol=1e-8, atol=1e-10)
        return
    g = by["full"].formula
    np.testing.assert_allclose(g, oracle, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(by["sym"].formula, sym(oracle), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(by["cookbook"].finite_differences, cookbook(oracle),
                               rtol=1e-6, atol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(generated_cases())
def test_generated_expressions_entry_by_entry(case):
    try:
        r = matdiff.derive(case.expression, case.wrt, declare=case.declare)
        e = r.entrywise(size=2, seed=case.seed % 1000)
    except matdiff.MatdiffError as err:  # no finite point, or sign refused: not this test's
        assume(False)
        raise AssertionError(err) from err
    for t in e.tables:
        scale = max(float(np.max(np.abs(t.formula), initial=0.0)), 1e-12)
        assume(t.resolution <= 1e-6 * scale)  # a kink or pole within the stencil
        # every entry below 1e-12: rounding noise, as where a generated inverse is of a
        # singular matrix (inv(b*x*x')); a relative comparison says nothing there
        assume(np.max(np.abs(t.formula), initial=0.0) > 1e-12)
        assert_table_agrees(t, case.describe("entrywise"))
    if e.tables and "(no index form)" not in e.index["text"]:
        try:
            assert_index_form_evaluates(r, e)
        except matdiff.MatdiffError as err:
            # a part such as matrix(1).^(-1) whose size only its context gives cannot be
            # evaluated alone here (the tables above were checked), or the inverse of a
            # matrix that is singular at every point
            assume("is not known" not in str(err) and "Singular matrix" not in str(err))
            raise


def test_the_conventions_entry_by_entry_and_the_factor_two():
    """From the differences alone: sym is the average of G and G', and the cookbook's
    off-diagonal entries are twice sym's, its diagonal G's (tr(A*S), G = A' not symmetric)."""
    r = matdiff.derive("tr(A*S)", "S", declare="S: symmetric matrix(n,n)")
    e = r.entrywise(size=3, seed=2)
    by = {t.convention: t.finite_differences for t in e.tables}
    assert list(by) == ["full", "sym", "cookbook"]
    a = e.point["A"]
    np.testing.assert_allclose(by["full"], a.T, rtol=1e-9)
    np.testing.assert_allclose(by["sym"], sym(by["full"]), rtol=1e-9)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(by["cookbook"][off], 2 * by["sym"][off], rtol=1e-9)
    np.testing.assert_allclose(np.diag(by["cookbook"]), np.diag(by["full"]), rtol=1e-9)
    assert "factor 2" in e.text and "2*sym(G)_ij" in e.note


def test_a_wrong_formula_shows_in_the_table():
    """The table can fail: G beside differences that move S_ij and S_ji together."""
    r = matdiff.derive("tr(A*S)", "S", declare="S: symmetric matrix(n,n)")
    full = matdiff.derive("tr(A*S)", "S", declare="S: symmetric matrix(n,n)",
                          symmetric="full")
    point = r.entrywise(size=3).point
    shapes = {n: d.shape for n, d in r.variables.items()}
    t = _table(r.function, full.derivative, shapes, point, "S", "cookbook", "", "")
    assert t.max_difference > 0.1 * np.max(np.abs(t.formula))


def test_diagonal_variable():
    r = matdiff.derive("tr(D*A)", "D", declare="D: diagonal matrix(n,n)")
    e = r.entrywise(size=3)
    assert [t.convention for t in e.tables] == ["full", "diagonal"]
    for t in e.tables:
        assert_table_agrees(t, "diagonal")
    diag = e.tables[1].finite_differences
    assert np.all(diag[~np.eye(3, dtype=bool)] == 0)


def test_hessians_jacobians_and_scalars():
    for expr, wrt, declare, order in [
            ("x'*A*x", "x", None, 2), ("log(det(S))", "S", "S: symmetric posdef matrix(n,n)", 2),
            ("inv(X)", "X", "X: invertible matrix(n,n)", 1), ("A*exp(x)", "x", None, 1),
            ("exp(t)*t^2", "t", "t: scalar", 1), ("sin(t)", "t", "t: scalar", 3)]:
        e = matdiff.derive(expr, wrt, declare=declare, order=order).entrywise(size=2)
        assert e.tables
        for t in e.tables:
            assert_table_agrees(t, expr)


def test_dimension_named_scalar_is_the_size():
    e = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE).entrywise(size=4)
    assert float(e.point["k"]) == 4.0 and e.point["S"].shape == (4, 4)
    np.testing.assert_allclose(e.point["S"], e.point["S"].T)
    assert np.all(np.linalg.eigvalsh(e.point["S"]) > 0)


# -- the index form, evaluated entry by entry --

def evaluate_note(note, index: dict[str, int], values: dict, declare: str, bindings: str,
                  size: int):
    """The value of an entry's notation at the indices: Indexed parts are evaluated by
    matdiff.evaluate (with the entry's ``where`` bindings) and indexed with NumPy, indices a
    term repeats are summed over (every dimension is ``size``), the rest is arithmetic."""
    def value(n, at=index):
        return evaluate_note(n, at, values, declare, bindings, size)

    if not any(isinstance(n, Indexed) for n in walk(note)):
        return float(matdiff.evaluate(render(note, TEXT) + bindings, declare, **values))
    if isinstance(note, Sum):
        return sum(value(t) for t in note.terms)
    if isinstance(note, Mono):
        summed = sorted({i for n in walk(note) if isinstance(n, Indexed) for i in n.indices}
                        - set(index))
        total = 0.0
        for at in itertools.product(range(size), repeat=len(summed)):
            here = {**index, **dict(zip(summed, at))}
            out = float(note.coef)
            for f in note.scalars + note.chain:
                out = out * value(f, here)
            for d in note.den:
                out = out / value(d, here)
            total += out
        return total
    if isinstance(note, Indexed):
        at = tuple(index[i] for i in note.indices)
        if note.base is None:
            return float(len(set(at)) == 1)
        if isinstance(note.base, Call) and note.base.fn in ("vector", "matrix"):
            return value(note.base.args[0])  # vector(c)[k] = c: no size of its own to evaluate
        return np.asarray(matdiff.evaluate(render(note.base, TEXT) + bindings, declare,
                                           **values))[at]
    if isinstance(note, Power) and not note.elementwise:
        return value(note.base) ** value(note.exponent)
    assert isinstance(note, Call) and len(note.args) == 1, note  # an elementwise function
    return float(matdiff.evaluate(f"{note.fn}(t)", "t: scalar", t=value(note.args[0])))


def walk(note):
    yield note
    for child in children(note):
        yield from walk(child)


def assert_index_form_evaluates(r, e) -> None:
    values = {n: (float(v) if np.ndim(v) == 0 else v) for n, v in e.point.items()}
    bindings = render(Where(Sym("_"), e.bound.names, e.bound.values), TEXT)[1:] \
        if e.bound else ""
    names = "ijklpqrstuvw"[:r.derivative.ndim]
    (formula,) = [t.formula for t in e.tables if t.convention in (None, r.convention)]
    scale = max(float(np.max(np.abs(formula), initial=0.0)), 1e-12)
    for idx in np.ndindex(*formula.shape):
        value = evaluate_note(e.index_note, dict(zip(names, idx)), values, r.declaration,
                              bindings, e.size)
        assert abs(value - formula[idx]) <= 1e-9 * scale, (idx, e.index["text"])


INDEX_CASES = [
    (GAUSSIAN, "S", GAUSSIAN_DECLARE, 1,
     "1/2*f*((inv(S)*(x - m))[i]*((x - m)'*inv(S))[j] - inv(S)[i,j])"),
    (GAUSSIAN, "x", GAUSSIAN_DECLARE, 1, "-f*(inv(S)*(x - m))[i]"),
    ("exp(x)/sum(exp(x))", "x", None, 1, "s[i]*delta(i,j) - s[i]*s[j]"),
    ("x'*A*x", "x", None, 2, "A[i,j] + A[j,i]"),
    ("a'*X*b", "X", "a: vector(m); b: vector(n); X: matrix(m,n)", 1, "a[i]*b[j]"),
    ("tr(A*X'*B*X*C)", "X", None, 1, None),
    ("sum(exp(X*v))", "X", None, 1, None),
    ("A*exp(x)", "x", None, 1, None),
    ("inv(X)", "X", "X: invertible matrix(n,n)", 1, "-inv(X)[i,k]*inv(X)[l,j]"),
    ("log(det(S))", "S", "S: symmetric posdef matrix(n,n)", 1, None),
]


@pytest.mark.parametrize("expr, wrt, declare, order, expected", INDEX_CASES,
                         ids=[f"{c[0][:20]}-{c[1]}" for c in INDEX_CASES])
def test_index_form_evaluates_to_every_entry(expr, wrt, declare, order, expected):
    r = matdiff.derive(expr, wrt, declare=declare, order=order)
    e = r.entrywise(size=3, seed=3)
    if expected is not None:
        assert e.index["text"] == expected
    assert_index_form_evaluates(r, e)


# -- renderings --

def test_renderings_carry_the_same_table():
    e = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE).entrywise(size=2)
    d = json.loads(json.dumps(e.to_dict()))
    assert [t["convention"] for t in d["tables"]] == ["full", "sym", "cookbook"]
    for t, table in zip(d["tables"], e.tables):
        values = np.array([row["finite_difference"] for row in t["entries"]])
        np.testing.assert_array_equal(values, table.finite_differences.ravel())
        assert [row["index"] for row in t["entries"]] == [[1, 1], [1, 2], [2, 1], [2, 2]]
    md = e._repr_markdown_()
    assert md.count("| $\\frac{\\partial f}{\\partial S_{12}}$ |") == 3
    latex = e._repr_latex_()
    assert latex.count("{") == latex.count("}") and latex.startswith("$$")
    assert latex.count(r"\begin{array}") == latex.count(r"\end{array}") == 3
    lines = [ln for ln in e.text.splitlines() if ln.startswith("    df/dS_")]
    assert len(lines) == 12 and len({len(ln) for ln in lines}) == 1  # aligned columns
    assert repr(e).startswith("<matdiff.Entrywise [df/dS]_ij") and len(repr(e)) < 100


def test_too_large_a_table_says_so():
    r = matdiff.derive("inv(X)", "X", declare="X: invertible matrix(n,n)")
    e = r.entrywise(size=4)
    assert not e.tables and "256 entries" in e.omitted and "size=2" in e.omitted
    assert e.index["text"] == "-inv(X)[i,k]*inv(X)[l,j]" and e.omitted in e.text
    assert 3 ** 4 <= MAX_ENTRIES


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "size must be"), ({"size": "3"}, "size must be"),
    ({"size": 10}, "size must be"), ({"seed": -1}, "seed must be")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(matdiff.MatdiffError, match=message):
        matdiff.derive("x'*x", "x").entrywise(**kwargs)


def test_refusals():
    with pytest.raises(matdiff.MatdiffError, match="applied to a direction"):
        matdiff.derive("x'*A*x", "x", direction="v").entrywise()
    with pytest.raises(matdiff.MatdiffError, match="symmetric='sym'"):
        matdiff.derive("log(det(S))", "S", declare="S: symmetric posdef matrix(n,n)",
                       order=2, symmetric="full").entrywise()


# -- the command line --

def test_cli_entrywise(capsys):
    from matdiff.cli import main
    code = main(["derive", GAUSSIAN, "--wrt", "S", "--declare", GAUSSIAN_DECLARE,
                 "--entrywise", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "entrywise: [df/dS]_ij = df/dS_ij = 1/2*f*((inv(S)*(x - m))[i]*" in out
    assert out.count("    df/dS_12 ") == 3 and "factor 2" in out
    code = main(["derive", "x'*A*x", "--wrt", "x", "--entrywise", "--format", "json"])
    out, _ = capsys.readouterr()
    shown = json.loads(out)["entrywise"]
    assert code == 0 and shown["size"] == 3 and len(shown["tables"][0]["entries"]) == 3
    code = main(["derive", "x'*A*x", "--wrt", "x", "--entrywise", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and "size must be" in err and "Traceback" not in err
