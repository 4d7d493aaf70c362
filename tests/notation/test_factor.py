"""Factoring sums in notation: a common factor pulled out of diag(...) terms keeps the
arguments' rank (diag of a matrix is a vector, and its arguments' ones are a matrix(1))."""

from __future__ import annotations

import numpy as np
import pytest

import matdiff

DIAG_SUMS = [
    "-sum(diag(D.^2./exp(D)))",
    "sum(diag(D.^2 - 3*D))",
    "sum(diag(D.^3 + D.^2))",
    "sum(diag(D.*exp(D) - 2*exp(D)))",
    "x'*diag(D.^2 - 2*D)",
    "sum(diag(x.^2 - 2*x))",
]


@pytest.mark.parametrize("expr", DIAG_SUMS)
def test_factored_diag_sums_read_back(expr):
    wrt = "D" if "D" in expr else "x"
    declare = "D: matrix(n,n); x: vector(n)"
    r = matdiff.derive(expr, wrt=wrt, declare=declare)
    rng = np.random.default_rng(3)
    values = {"D": rng.standard_normal((4, 4)), "x": rng.standard_normal(4)}
    expected = r.numpy()(**values)
    printed = r.text if not r.shown_as_differential else r.differential.text
    if r.shown_as_differential:
        values["d" + wrt] = rng.standard_normal(values[wrt].shape)
        expected = np.tensordot(expected, values["d" + wrt], axes=values[wrt].ndim)
    actual = matdiff.evaluate(printed, declare, **values)
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


def test_elementwise_powers_in_unicode_and_latex():
    """A Hadamard power is A^{∘k}: the ring before the superscript, as in the LaTeX."""
    d = matdiff.derive("sum(x.^3)", wrt="x", order=2).differential
    assert d.text == "6*sum(x.*dx.^2)"
    assert "dx∘²" in d.unicode and r"\mathrm{d}x^{\circ 2}" in d.latex
