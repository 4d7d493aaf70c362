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


def test_one_operation_on_variables_is_written_out_not_named():
    """x.^2 is as short as any name for it: the Hessian writes it out (it read
    'where s = x.^2' before), and still checks; a longer quantity is still named."""
    r = matdiff.derive("sum(log(vector(1) + exp(x.*x)))", "x", order=2)
    assert "where" not in r.text and "exp(x.^2)" in r.text
    assert r.check().verdict == "ok"
    assert matdiff.derive("sum(log(vector(1) + exp(X*w))) - y'*X*w", "w", order=2).text == \
        "X'*diag(s.*(1 - s))*X where s = exp(X*w)./(exp(X*w) + 1)"


def test_a_symmetric_gradient_is_not_offered_as_the_symmetric_part_of_itself():
    """Where G is symmetric, sym(G) = G: the Gaussian's gradient by S prints without a
    '1/2*(G + G')' form; a G that is not symmetric still gets one."""
    gaussian = matdiff.derive("-1/2*log(det(S)) - 1/2*(x - m)'*inv(S)*(x - m)", "S",
                              declare="S: symmetric posdef matrix(n,n); x, m: vector(n)")
    assert gaussian.unstructured is gaussian.derivative and "G'" not in gaussian.text
    r = matdiff.derive("tr(inv(S)*A*inv(S)*B)", "S", declare="S: symmetric matrix(n,n)")
    assert r.unstructured is not r.derivative
    assert r.text == "1/2*(G + G') where G = -inv(S)*(A'*inv(S)*B' + B'*inv(S)*A')*inv(S)"
