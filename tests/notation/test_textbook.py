"""Textbook forms: hand-written answers, compared as printed text and numerically (the
hand-written text evaluated against finite differences of the expression)."""

from __future__ import annotations

import numpy as np
import pytest

import matdiff
from matdiff.numeric.check import verify
from matdiff.numeric.codegen import compile_numpy

# (expression, wrt, declare, order, the textbook's answer)
TEXTBOOK = [
    ("norm2(x - y)", "x", None, 1, "(x - y)/norm2(x - y)"),
    ("norm2(A*x - y)", "x", None, 1, "A'*(A*x - y)/norm2(A*x - y)"),
    ("norm2(x)^3", "x", None, 1, "3*norm2(x)*x"),
    ("1/norm2(x)", "x", None, 1, "-x/norm2(x)^3"),
    ("norm2(X)", "X", None, 1, "X/norm2(X)"),
    ("sqrt(x'*y)", "x", None, 1, "y/(2*sqrt(x'*y))"),
    ("sqrt(a)", "a", None, 1, "1/(2*sqrt(a))"),
    ("log(a*b)", "a", None, 1, "1/a"),
    ("norm2(x - y)", "x", None, 2, "eye/norm2(x - y) - (x - y)*(x - y)'/norm2(x - y)^3"),
    ("log(abs(det(X)))", "X", "X: invertible matrix", 1, "inv(X)'"),
    ("log(det(X'*A*X))", "X", "X: invertible matrix", 1,
     "A*X*inv(X'*A*X) + A'*X*inv(X'*A*X)'"),
    ("-y'*log(exp(z)/sum(exp(z)))", "z", None, 1, "sum(y)*exp(z)/sum(exp(z)) - y"),
    ("tr(A*S*B*S)", "S", "S: symmetric matrix", 1, "1/2*(A*S*B + B*S*A + A'*S*B' + B'*S*A')"),
]


def _point(r, rng):
    values = {}
    for name, d in r.variables.items():
        shape = tuple(3 for _ in d.shape)
        v = rng.standard_normal(shape) if shape else float(rng.uniform(0.5, 2))
        if "symmetric" in d.props:
            v = (v + v.T) / 2
        values[name] = v
    return values


@pytest.mark.parametrize("expr, wrt, declare, order, text", TEXTBOOK)
def test_textbook_form(expr, wrt, declare, order, text):
    r = matdiff.derive(expr, wrt, declare=declare, order=order)
    assert r.text == text
    shapes = {n: d.shape for n, d in r.variables.items()}
    written = compile_numpy(matdiff.parse(text, declare), shapes)
    first = compile_numpy(r.function if order == 1 else r._first, shapes)
    props = {n: d.props for n, d in r.variables.items()}
    # the hand-written form against central finite differences of the expression itself
    assert verify(first, written, shapes, props, wrt, r.convention or "full", 3, 0) < 1e-6
    values = _point(r, np.random.default_rng(0))
    assert np.allclose(written(**values), r.numpy()(**values), rtol=1e-9, atol=1e-12)
