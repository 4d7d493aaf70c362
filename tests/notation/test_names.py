"""Names for repeated parts (notation/names.py) and the where bindings they print: every named
form is hand-written here, reads back to the derivative's value, and keeps a plain form."""

from __future__ import annotations

import numpy as np
import pytest

import matdiff
from matdiff.numeric.codegen import compile_numpy

# (expression, wrt, declare, order, the textbook's answer with its where bindings)
NAMED = [
    ("exp(x)/sum(exp(x))", "x", None, 1, "diag(s) - s*s' where s = exp(x)/sum(exp(x))"),
    ("log(sum(exp(z)))", "z", None, 2, "diag(s) - s*s' where s = exp(z)/sum(exp(z))"),
    ("-y'*log(exp(z)/sum(exp(z)))", "z", None, 2,
     "sum(y)*(diag(s) - s*s') where s = exp(z)/sum(exp(z))"),
    ("sum(log(vector(1) + exp(-y.*(X*w))))", "w", None, 2,
     "X'*diag(s.*y.^2.*(1 - s))*X where s = t./(t + 1), t = exp(-y.*(X*w))"),
    ("tr(inv(S)*A*inv(S)*B)", "S", "S: symmetric matrix", 1,  # sym(G) of a long G
     "1/2*(G + G') where G = -inv(S)*(A'*inv(S)*B' + B'*inv(S)*A')*inv(S)"),
    ("x'*inv(A + B*C*B')*x", "x", None, 1, "(G + G')*x where G = inv(A + B*C*B')"),
]


def _values(r, rng):
    values = {}
    for n, d in r.variables.items():
        v = rng.standard_normal(tuple(3 for _ in d.shape)) if d.shape else 0.8
        values[n] = (v + v.T) / 2 if "symmetric" in d.props else v
    return values


@pytest.mark.parametrize("expr, wrt, declare, order, text", NAMED)
def test_named_textbook_form(expr, wrt, declare, order, text):
    r = matdiff.derive(expr, wrt, declare=declare, order=order)
    assert r.text == text
    assert " where " not in r.plain
    shapes = {n: d.shape for n, d in r.variables.items()}
    values = _values(r, np.random.default_rng(0))
    want = r.numpy()(**values)
    for form in (text, r.plain):  # the hand-written form and the plain one mean the same
        got = compile_numpy(matdiff.parse(form, r.declaration), shapes)(**values)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12), form
    assert r.check() < 1e-6


def test_where_in_latex_and_unicode():
    r = matdiff.derive("exp(x)/sum(exp(x))", "x")
    assert r.latex == (r"\operatorname{diag}\left(s\right) - s s^{\top} \quad\text{where } "
                       r"s = \frac{\exp\left(x\right)}{\operatorname{sum}\left(\exp\left(x"
                       r"\right)\right)}")
    assert r.unicode == "diag(s) − s sᵀ  where s = exp(x)/sum(exp(x))"


def test_names_do_not_clash_with_variables():
    """s and t are variables here, so the softmax gets the next free letter."""
    r = matdiff.derive("exp(x)/sum(exp(x)) + 0*(s + t)", "x", declare="s, t: vector(n)")
    assert r.text == "diag(u) - u*u' where u = exp(x)/sum(exp(x))"


def test_a_part_used_once_is_not_named():
    assert matdiff.derive("log(sum(exp(z)))", "z").text == "exp(z)/sum(exp(z))"
