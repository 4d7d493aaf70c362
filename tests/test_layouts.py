"""Layouts: the numerator layout (rows follow F, columns X) and the denominator layout (its
transpose), against independent NumPy answers; the printed form reads back to the value
numpy() gives in that layout."""

from __future__ import annotations

import numpy as np
import pytest

import matdiff

RNG = np.random.default_rng(3)
N, M = 3, 2
VALUES = {"x": RNG.standard_normal(N), "A": RNG.standard_normal((N, N)),
          "C": RNG.standard_normal((M, N)), "X": RNG.standard_normal((N, M)),
          "B": RNG.standard_normal((M, M)), "a": 0.7}
DECLARE = f"x: vector({N}); A: matrix({N},{N}); C: matrix({M},{N}); X: matrix({N},{M}); " \
          f"B: matrix({M},{M}); a: scalar"


def vec(a):
    return np.reshape(a, -1, order="F")


# expression, wrt, order, numerator-layout matrix (v: values)
CASES = [
    ("C*x", "x", 1, lambda v: v["C"]),                                       # Jacobian m×n
    ("x'*A*x", "x", 1, lambda v: ((v["A"] + v["A"].T) @ v["x"])[None, :]),   # a row 1×n
    ("x*a", "a", 1, lambda v: v["x"][:, None]),                              # a column n×1
    ("tr(C*X)", "X", 1, lambda v: v["C"]),                                   # G' (X is n×m)
    ("X*a^2", "a", 1, lambda v: 2 * v["a"] * v["X"]),                        # as it is, n×m
    ("C*X*B", "X", 1, lambda v: np.kron(v["B"].T, v["C"])),                  # the vec form J
    ("X*B", "X", 1, lambda v: np.kron(v["B"].T, np.eye(N))),
    ("x'*A*x", "x", 2, lambda v: v["A"] + v["A"].T),                         # a Hessian
    ("tr(X'*A*X)", "X", 2, lambda v: np.kron(np.eye(M), v["A"] + v["A"].T)),
]


@pytest.mark.parametrize("expr, wrt, order, numerator", CASES,
                         ids=[f"{c[0]}/d{c[1]}^{c[2]}" for c in CASES])
@pytest.mark.parametrize("layout", ["numerator", "denominator"])
def test_layout_values_and_printed_forms(expr, wrt, order, numerator, layout):
    r = matdiff.derive(expr, wrt, declare=DECLARE, order=order, layout=layout)
    want = numerator(VALUES)
    if layout == "denominator" and order == 1:
        want = want.T
    got = r.numpy()(**{k: v for k, v in VALUES.items() if k in r.variables})
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert len(r.shape) == 2
    read_back = matdiff.evaluate(r.text, DECLARE, **VALUES)
    np.testing.assert_allclose(np.reshape(read_back, want.shape), want, rtol=1e-10, atol=1e-12)
    assert layout in r.layout_note
    assert r.check() < 1e-6  # the check sees the tensor, whatever the layout


def test_default_layout_is_the_tensor():
    r = matdiff.derive("C*X*B", "X", declare=DECLARE)
    assert r.layout == "shape" and r.shape == (M, M, N, M)
    assert "shape(F) + shape(X)" in r.layout_note


def test_layout_errors_are_one_line():
    with pytest.raises(matdiff.MatdiffError, match="unknown layout 'rows'"):
        matdiff.derive("C*x", "x", layout="rows")
    with pytest.raises(matdiff.MatdiffError, match="no Kronecker form"):
        matdiff.derive("diag(diag(X))", "X", layout="numerator")
    with pytest.raises(matdiff.MatdiffError, match="first and second derivatives"):
        matdiff.derive("sum(exp(x))", "x", order=3, layout="numerator")


@pytest.mark.parametrize("layout", ["numerator", "denominator"])
@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_compiled_code_returns_the_layout_numpy_returns(layout, backend):
    """r.compile() lays its value out as r.numpy() does (it used to return the shape layout's
    tensor whatever the layout)."""
    if backend != "numpy":
        module = pytest.importorskip(backend)
        if backend == "jax":
            module.config.update("jax_enable_x64", True)  # float64, as the comparison needs
    rng = np.random.default_rng(2)
    for expr, wrt in (("A*X*B", "X"), ("x'*A*x", "x"), ("inv(X)", "X")):
        r = matdiff.derive(expr, wrt=wrt, layout=layout, declare="x: vector(n)")
        values = {name: rng.standard_normal([3] * len(d.shape)) for name, d in
                  r.variables.items()}
        values = {name: v + 3 * np.eye(3) if v.ndim == 2 else v for name, v in values.items()}
        expected = r.numpy()(**values)
        actual = np.asarray(r.compile(backend)(**values))
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)
