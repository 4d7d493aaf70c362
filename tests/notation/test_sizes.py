"""notation/sizes.py: the shape reasoning on the notation tree that lets printing skip reading its
own text back. It must never claim a size fixed that the reader finds open: then an ``eye`` or
``vector(1)`` would print without its size and read back with another (or no) meaning."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import matdiff
from matdiff.notation.render import TEXT, render
from matdiff.notation.sizes import sizes_fixed
from matdiff.notation.tree import (
    EYE,
    ONES,
    Call,
    Hadamard,
    IndexForm,
    Mono,
    Sum,
    Sym,
    Transpose,
    Where,
)
from matdiff.syntax.types import Decl, with_stated_sizes

DECLS = {"x": Decl("x", ("n",)), "y": Decl("y", ("m",)), "B": Decl("B", ("n", "n")),
         "A": Decl("A", ("m", "n")), "a": Decl("a", ())}
X, Y, B, A, a = (Sym(n) for n in ("x", "y", "B", "A", "a"))
ONE = Fraction(1)


def product(*chain, scalars=()) -> Mono:
    return Mono(ONE, tuple(scalars), tuple(chain))


# (notation, whether the text it prints fixes every size by itself)
NOTES = [
    (product(EYE, scalars=(a,)), False),                                  # a*eye
    (Call("inv", (Sum((product(EYE), product(B, Transpose(B)))),)), True),  # inv(eye + B*B')
    (product(EYE, X), True),                                              # eye*x
    (product(Transpose(X), EYE), True),                                   # x'*eye
    (product(A, EYE), True),                                              # A*eye: its columns
    (product(EYE, A), True),                                              # eye*A: its rows
    (product(EYE, scalars=(Call("tr", (B,)),)), False),                   # tr(B)*eye
    (Call("tr", (Sum((product(EYE), product(B))),)), True),               # tr(eye + B)
    (Call("tr", (product(EYE, scalars=(a,)),)), False),                   # tr(a*eye)
    (Sum((product(X), Mono(ONE, (a,), (ONES,)))), True),                  # x + a: 1 broadcast
    (Sum((Mono(ONE, (a,), (ONES,)), Mono(ONE, (), (ONES,)))), False),     # all ones: sizeless
    (product(ONES, scalars=(a,)), False),                                 # a*vector(1)
    (Hadamard((ONES,), (X,)), True),                                      # 1./x
    (Hadamard((ONES, X)), True),                                          # vector(1).*x
    (product(Call("diag", (X,)), EYE), True),                             # diag(x)*eye
    (Call("eye", (Sym("n"),)), True),                                     # eye(n): stated
    (product(Sym("zz"), EYE), False),                                     # an unknown name
    # a binding's own sizes are fixed by its value alone (each use is written out anew)
    (Where(product(B, Sym("G")), ("G",), (product(EYE, scalars=(a,)),)), False),
    (Where(product(Sym("G"), Sym("G")), ("G",), (Sum((product(EYE), product(B))),)), True),
    (Where(product(B), ("G",), (product(EYE, scalars=(a,)),)), True),     # unused binding
]


@pytest.mark.parametrize("note, fixed", NOTES, ids=[render(n, TEXT) for n, _ in NOTES])
def test_sizes_fixed_agrees_with_reading_back(note, fixed):
    assert sizes_fixed(note, DECLS) is fixed
    text = render(note, TEXT)
    if fixed:  # the reader finds nothing to state either
        shape = matdiff.parse(text, declare=DECLARE).shape
        assert with_stated_sizes(text, DECLS, shape) == text


DECLARE = "x: vector(n); y: vector(m); B: matrix(n,n); A: matrix(m,n); a: scalar"


# Derivatives whose printed forms write eye, vector(1) or matrix(1), some with sizes only the
# context gives: printing must state those, exactly as reading its own text back would.
EXPRESSIONS = [
    ("a*eye", "a", None), ("tr(a*eye)", "a", None), ("x'*x*eye", "x", None),
    ("a*vector(1)", "a", None), ("x + a*vector(1)", "a", None), ("a*matrix(1)", "a", None),
    ("inv(A + a*eye)", "a", None), ("inv(eye + x*x')", "x", None), ("tr(inv(eye + A))", "A", None),
    ("x'*inv(eye + A'*A)*x", "A", None), ("log(1 + exp(x))", "x", None),
    ("sum(log(1 + exp(-y.*(X*w))))", "w", None), ("x'*(A + a*eye)*x", "x", None),
    ("exp(a)*eye*x", "x", None), ("A*x + b*vector(1)", "b", None), ("(x'*y)*eye", "y", None),
    ("tr(X*X')*eye", "X", None), ("x'*(eye - x*x')*y", "x", None),
    ("sum(exp(x))", "x", None), ("norm2(x - a*vector(1))", "a", None),
    ("log(det(eye + a*S))", "S", "S: symmetric matrix(n,n); a: scalar"),
]


def _forms(r):
    yield r.form
    yield r.differential


@pytest.mark.parametrize("expr, wrt, declare", EXPRESSIONS)
def test_printing_states_what_reading_back_would(expr, wrt, declare):
    first = matdiff.derive(expr, wrt, declare=declare)
    results = [first] + ([matdiff.derive(expr, wrt, declare=declare, order=2)]
                         if not first.function.ndim else [])
    for form in (f for r in results for f in _forms(r)):
        for note in (form.named_notation, form.notation):
            if isinstance(note, IndexForm):
                continue
            text = render(note, TEXT)
            if sizes_fixed(note, form.variables):
                assert with_stated_sizes(text, form.variables, form.expr.shape) == text


def test_stated_sizes_read_back_to_the_value():
    """Where the context gives no size, the printed text states it and evaluates to the
    derivative."""
    rng = np.random.default_rng(0)
    for expr, text in [("a*eye + x*x'", "eye(n)"), ("a*vector(1) + x", "vector(1, n)"),
                       ("a*matrix(1) + x*y'", "matrix(1, n, m)")]:
        r = matdiff.derive(expr, "a", declare="a: scalar; x: vector(n); y: vector(m)")
        assert not sizes_fixed(r.form.named_notation, r.form.variables)
        assert r.text == text
        values = {"a": 0.7, "x": rng.standard_normal(3), "y": rng.standard_normal(2)}
        got = matdiff.evaluate(r.text, declare=r.declaration, **values)
        np.testing.assert_allclose(np.asarray(got, float), np.asarray(r.numpy()(**values), float))


def test_both_answers_occur():
    """The derivatives above exercise both branches (else the test above proves nothing)."""
    seen = set()
    for expr, wrt, declare in EXPRESSIONS:
        r = matdiff.derive(expr, wrt, declare=declare)
        note = r.form.named_notation
        if "eye" in render(note, TEXT) or "vector(" in render(note, TEXT):
            seen.add(sizes_fixed(note, r.form.variables))
    assert seen == {True, False}
