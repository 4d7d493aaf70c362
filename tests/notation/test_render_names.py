"""Names in the output styles: Greek names as \\Sigma / Σ, subscripts as subscripts, and the
text style unchanged so that it parses back."""

from __future__ import annotations

import pytest

import matdiff
from matdiff.notation.render import LATEX, TEXT, UNICODE, render
from matdiff.notation.tree import Sym


@pytest.mark.parametrize("name, latex, unicode", [
    ("Sigma", r"\Sigma", "Σ"),
    ("mu", r"\mu", "μ"),
    ("lambda", r"\lambda", "λ"),
    ("Sigma_2", r"\Sigma_{2}", "Σ₂"),
    ("mu_k", r"\mu_{k}", "μ_k"),
    ("mu_theta", r"\mu_{\theta}", "μ_θ"),
    ("x_12", r"x_{12}", "x₁₂"),
    ("S2", r"S_{2}", "S2"),
    ("rate", r"\mathit{rate}", "rate"),
    ("x", "x", "x"),
])
def test_a_name_in_each_style(name: str, latex: str, unicode: str) -> None:
    assert render(Sym(name), LATEX) == latex
    assert render(Sym(name), UNICODE) == unicode
    assert render(Sym(name), TEXT) == name


@pytest.mark.parametrize("wrt", ["Sigma", "mu", "x"])
def test_greek_gaussian_latex_output_reads_back(wrt: str) -> None:
    declare = "Sigma: symmetric posdef matrix(k,k); x, mu: vector(k); k: scalar"
    r = matdiff.derive("(2*pi)^(-k/2)*det(Sigma)^(-1/2)*exp(-1/2*(x - mu)'*inv(Sigma)*(x - mu))",
                       wrt=wrt, declare=declare)
    assert r"\Sigma" in r.latex and r"\mu" in r.latex and "mathit" not in r.latex
    assert "Σ" in r.unicode and "μ" in r.unicode
    # what matdiff prints in LaTeX is input it reads back: the same derivative
    assert matdiff.parse(r.latex, declare) is matdiff.parse(r.text, declare)


def test_a_greek_direction_is_a_differential() -> None:
    r = matdiff.derive(r"\log\det\Sigma - \operatorname{tr}(S\Sigma)", r"\Sigma")
    assert r.differential.text == "tr(dSigma*inv(Sigma)) - tr(S*dSigma)"
    assert r"\mathrm{d}\Sigma" in r.differential.latex
    assert r.differential.unicode == "tr(dΣ Σ⁻¹) − tr(S dΣ)"
