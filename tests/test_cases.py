"""The 36 worked examples (tests/cases.py, each with an independently written NumPy answer)
through the public API: value, matrix notation, round trip through the parser, self-check."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES

import matdiff
from matdiff.numeric.codegen import compile_numpy

SYMMETRIC = {"symmetric", "posdef"}
DECLARED_PROPS = {"symmetric": "symmetric", "posdef": "posdef", "invertible": "invertible",
                  "negdet": "invertible", "positive": "positive", "unit_interval": "positive"}
DIM_RANGE = {"n": (2, 5), "m": (2, 4), "p": (2, 4), "q": (2, 4), "k": (2, 4), "N": (3, 6)}


def declaration(case) -> str:
    entries = []
    for name, spec in case["vars"].items():
        shape = spec["shape"]
        props = [DECLARED_PROPS[p] for p in spec["props"] if p in DECLARED_PROPS]
        kind = ("scalar" if not shape else f"vector({shape[0]})" if len(shape) == 1
                else f"matrix({shape[0]},{shape[1]})")
        entries.append(f"{name}: {' '.join(props + [kind])}")
    return "; ".join(entries)


def draw(case, rng):
    """A point in the case's domain (its own NumPy f finite there, and its domain filter)."""
    for _ in range(200):
        ranges = {**DIM_RANGE, **case.get("dims", {})}
        dims = {d: int(rng.integers(lo, hi + 1)) for d, (lo, hi) in ranges.items()}
        values = {name: _value(spec, dims, rng) for name, spec in case["vars"].items()}
        with np.errstate(all="ignore"):
            ok = np.all(np.isfinite(case["f"](values)))
        if ok and ("domain" not in case or case["domain"](values)):
            return values
    raise RuntimeError(f"no valid point for {case['id']}")


def _value(spec, dims, rng):
    shape = tuple(dims[s] for s in spec["shape"])
    props = set(spec["props"])
    dim_prop = [p for p in props if p.startswith("dim:")]
    if dim_prop:
        return float(dims[dim_prop[0][4:]])
    if "posdef" in props:
        g = rng.standard_normal(shape)
        return g @ g.T / shape[0] + 0.5 * np.eye(shape[0])
    if "symmetric" in props:
        g = rng.standard_normal(shape)
        return (g + g.T) / 2
    if "invertible" in props or "negdet" in props:
        q1, _ = np.linalg.qr(rng.standard_normal(shape))
        q2, _ = np.linalg.qr(rng.standard_normal(shape))
        x = q1 @ np.diag(rng.uniform(0.7, 2.0, shape[0])) @ q2.T
        want = -1 if "negdet" in props else 1
        if np.sign(np.linalg.det(x)) != want:
            x[0] *= -1
        return x
    if "unit_interval" in props:
        return rng.uniform(0.05, 0.95, shape)
    if "pm1" in props:
        return rng.choice([-1.0, 1.0], shape)
    if "positive" in props:
        return rng.uniform(0.5, 2.0, shape)
    return rng.standard_normal(shape) if shape else float(rng.standard_normal())


def relative_error(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-12))


def is_symmetric_wrt(case) -> bool:
    return bool(set(case["vars"][case["wrt"]]["props"]) & SYMMETRIC)


IDS = [c["id"] for c in CASES]


def derived(case, symmetric="sym"):
    return matdiff.derive(case["expr"], case["wrt"], declare=declaration(case),
                          order=case["order"], symmetric=symmetric)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_value_matches_expected(case):
    r = derived(case)
    df = r.numpy()
    rng = np.random.default_rng(sum(map(ord, case["id"])))
    want = "expected_sym" if is_symmetric_wrt(case) and case["order"] == 1 else "expected"
    for _ in range(3):
        values = draw(case, rng)
        assert relative_error(df(**values), case[want](values)) < 1e-8, r.text


@pytest.mark.parametrize("case", [c for c in CASES if is_symmetric_wrt(c) and c["order"] == 1],
                         ids=lambda c: c["id"])
def test_symmetric_conventions(case):
    rng = np.random.default_rng(7)
    values = draw(case, rng)
    full = derived(case, "full")
    g = case["expected"](values)
    assert relative_error(full.numpy()(**values), g) < 1e-8, full.text
    cookbook = derived(case, "cookbook")
    assert relative_error(cookbook.numpy()(**values), g + g.T - np.diag(np.diag(g))) < 1e-8
    assert "symmetric" in derived(case).convention_note


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matrix_notation_and_round_trip(case):
    """Every result of at most two axes prints in matrix notation, and that text parses back
    to the same function."""
    r = derived(case)
    assert not r.is_index_notation, r.text
    assert "[" not in r.text
    assert r.shown_as_differential == (len(r.shape) > 2), r.text
    if r.shown_as_differential:
        return  # its text is the differential: test_differential_reads_back
    again = compile_numpy(matdiff.parse(r.text, declaration(case)),
                          {n: d.shape for n, d in r.variables.items()})
    values = draw(case, np.random.default_rng(3))
    assert relative_error(again(**values), r.numpy()(**values)) < 1e-10, r.text


def random_direction(case, values, rng):
    """dX of the wrt variable's shape (symmetric for a symmetric variable)."""
    x = np.asarray(values[case["wrt"]], dtype=float)
    v = rng.standard_normal(x.shape)
    return (v + v.T) / 2 if is_symmetric_wrt(case) else v


def contracted(tensor, direction, times: int):
    """The tensor's trailing axes contracted with the direction ``times`` times."""
    for _ in range(times):
        tensor = np.tensordot(tensor, direction, axes=direction.ndim)
    return tensor


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_differential_reads_back(case):
    """r.differential.text (and r.text where it is the differential) evaluates with the same
    declarations to the expected derivative contracted with a random direction dX."""
    r = derived(case)
    assert "[" not in r.differential.text
    rng = np.random.default_rng(sum(map(ord, case["id"])) + 1)
    texts = [r.differential.text] + ([r.text] if r.shown_as_differential else [])
    for _ in range(2):
        values = draw(case, rng)
        dx = random_direction(case, values, rng)
        expected = contracted(np.asarray(case["expected"](values), float), dx, case["order"])
        for text in texts:
            got = matdiff.evaluate(text, declaration(case), **values, **{"d" + case["wrt"]: dx})
            assert relative_error(got, expected) < 1e-8, text


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_self_check(case):
    assert derived(case).check() < 1e-6


GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-0.5*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"


@pytest.mark.parametrize("wrt, short", [
    ("S", "1/2*f*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))"),
    ("m", "f*inv(S)*(x - m)"),
    ("x", "-f*inv(S)*(x - m)"),
])
def test_gaussian_is_factored(wrt, short):
    r = matdiff.derive(GAUSSIAN, wrt, declare=GAUSSIAN_DECLARE)
    assert r.abbreviated("f") == short
    assert r.text.count("exp(") == 1  # the density written once, not expanded


@pytest.mark.parametrize("expr, wrt, declare, text", [
    ("x'*A*x", "x", None, "(A + A')*x"),
    ("tr(A*X*B)", "X", None, "A'*B'"),
    ("det(X)", "X", None, "det(X)*inv(X)'"),
    ("logdet(X)", "X", None, "inv(X)'"),
    ("A*exp(x)", "x", None, "A*diag(exp(x))"),
    ("norm2(A*x - y)^2", "x", None, "2*A'*(A*x - y)"),
    ("tr(X'*B*X)", "X", None, "(B + B')*X"),
    ("x'*inv(S)*x", "S", "S: symmetric matrix", "-inv(S)*x*x'*inv(S)"),
    ("x'*S*x", "S", "S: symmetric matrix", "x*x'"),
    ("sum(log(x))", "x", None, "1./x"),
    ("log(1 + exp(a))", "a", None, "exp(a)/(exp(a) + 1)"),
    ("tanh(W*x)", "x", None, "diag(1 - tanh(W*x).^2)*W"),
    ("y.*(X*w)", "w", None, "diag(y)*X"),
    ("a*x'*A*x + b*x'*A*x", "x", None, "(a + b)*(A + A')*x"),
    ("sum(y.*log(p) + (vector(1) - y).*log(vector(1) - p))", "p", None,
     "y./p + (y - 1)./(1 - p)"),
    ("a^b", "b", None, "log(a)*a^b"),
    ("exp(x)/sum(exp(x))", "x", None,
     "diag(s) - s*s' where s = exp(x)/sum(exp(x))"),
])
def test_textbook_forms(expr, wrt, declare, text):
    """Hand-written textbook answers: the printed form, factored, not just its value (a
    constant array in a sum or under ./ is the number, which the language broadcasts)."""
    assert matdiff.derive(expr, wrt, declare=declare).text == text


def test_gaussian_in_latex_and_unicode():
    r = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE)
    assert r.latex.startswith(r"\frac{\left(2 \pi\right)^{-\frac{1}{2} k} \exp")
    assert r"}{2 \sqrt{\det\left(S\right)}} \left(S^{-1}" in r.latex
    assert r.latex.endswith(r"\left(S^{-1} \left(x - m\right) \left(x - m\right)^{\top} S^{-1}"
                            r" - S^{-1}\right)")
    assert r.unicode.endswith("(S⁻¹(x − m)(x − m)ᵀS⁻¹ − S⁻¹)/(2 √(det(S)))")


def test_diagonal_variable():
    """The gradient on diagonal matrices keeps the diagonal of G; 'full' gives G itself."""
    declare = "D: diagonal matrix"
    r = matdiff.derive("x'*D*x", "D", declare=declare)
    assert "diagonal" in r.convention_note
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal(3), np.diag(rng.uniform(1, 2, 3))
    assert np.allclose(r.numpy()(x=x, D=d), np.diag(x * x))
    assert r.check() < 1e-8
    full = matdiff.derive("x'*D*x", "D", declare=declare, symmetric="full")
    assert full.text == "x*x'"
    assert full.check() < 1e-8
    assert matdiff.derive("log(det(D))", "D", declare=declare).text == "inv(D)"
