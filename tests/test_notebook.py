"""Notebook renderings: ``repr(r)`` is one short line, and ``_repr_latex_`` is display math that
is well formed and means the derivative: each right-hand side read back by matdiff's own LaTeX
reader evaluates to the derivative's value (or the function's, for the ``f = ...`` line)."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES
from test_cases import declaration

import matdiff
from matdiff.numeric.check import draw_point
from matdiff.numeric.codegen import compile_numpy

IR_WORDS = ("einsum", "Fraction", "Decl(", "frozenset", "Expr")
GAUSSIAN = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
GAUSSIAN_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"


def assert_well_formed(latex: str) -> None:
    depth = 0
    for c in latex:
        depth += {"{": 1, "}": -1}.get(c, 0)
        assert depth >= 0, latex
    assert depth == 0, latex
    assert latex.count(r"\left") == latex.count(r"\right"), latex
    assert not any(word in latex for word in IR_WORDS), latex


def aligned_lines(latex: str) -> list[tuple[str, str]]:
    head, tail = r"$$\begin{aligned}", r"\end{aligned}$$"
    assert latex.startswith(head) and latex.endswith(tail), latex
    return [tuple(line.split(" &= ")) for line in latex[len(head):-len(tail)].split(r" \\ ")]


def results():
    for c in CASES:
        yield c["id"], matdiff.derive(c["expr"], c["wrt"], declare=declaration(c),
                                      order=c.get("order", 1))
    yield "differential", matdiff.derive("inv(X)", "X", declare="X: invertible matrix(n,n)")
    yield "mixed", matdiff.derive("x'*S*x", ("x", "S"))
    yield "direction", matdiff.derive("x'*A*x", "x", direction="v", order=2)
    yield "latex input", matdiff.derive(r"\frac{1}{2}\mathbf{x}^\top \Sigma^{-1} \mathbf{x}",
                                        "Sigma")


RESULTS = list(results())


@pytest.mark.parametrize("name, r", RESULTS, ids=[n for n, _ in RESULTS])
def test_latex_is_well_formed_and_means_the_derivative(name, r):
    latex = r._repr_latex_()
    assert_well_formed(latex)
    assert len(latex) <= len(r.function_in("latex")) + len(r.latex) + 200
    lines = aligned_lines(latex)
    label = lines[-1][0]
    assert label.startswith((r"\frac{\partial", r"\mathrm{d}")), label
    rng = np.random.default_rng(0)
    props = {n: d.props for n, d in r._all_variables.items()}
    values = draw_point(r._shapes, props, rng)
    f = compile_numpy(r.function, r._shapes)(**values)
    derivative = r.differential.numpy() if r.shown_as_differential else r.numpy()
    expected = {"f": f, "derivative": derivative(**values)}
    scalar_f = {"f": f} if not r.function.ndim and "f" not in r.variables else {}
    declare = r.declaration + ("; f: scalar" if scalar_f else "")
    for lhs, rhs in lines:
        if any(gap in rhs for gap in (r"\text{where }", r"^{\circ", r"\mathrm{d}")):
            continue  # bindings, elementwise powers, differentials: beyond the LaTeX reader
        value = matdiff.evaluate(rhs, declare, syntax="latex", **scalar_f, **values)
        want = expected["f" if lhs == "f" else "derivative"]
        np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name, r", RESULTS, ids=[n for n, _ in RESULTS])
def test_repr_is_one_short_line(name, r):
    text = repr(r)
    assert text.startswith("<matdiff.Result ") and text.endswith(">")
    assert "\n" not in text and len(text) <= 200, text
    assert not any(word in text for word in IR_WORDS), text
    form = repr(r.differential)
    assert form.startswith("<matdiff.Form ") and len(form) <= 120, form
    assert r.differential._repr_latex_() == f"$${r.differential.latex}$$"


def test_the_gaussian_in_a_notebook():
    r = matdiff.derive(GAUSSIAN, "S", declare=GAUSSIAN_DECLARE)
    assert repr(r) == ("<matdiff.Result df/dS of (2*pi)^(-k/2)*exp(-1/2*(x - m)'*inv(S...: "
                       "1/2*f*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))>")
    (f_lhs, f_rhs), (lhs, rhs) = aligned_lines(r._repr_latex_())
    assert lhs == r"\frac{\partial f}{\partial S}" and rhs.startswith(r"\frac{1}{2} f")
    md = r._repr_markdown_()
    assert md.startswith("$$") and f"declared: `{r.declarations}`" in md
    assert "gradient on symmetric matrices" in md
