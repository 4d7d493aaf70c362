"""Greek names: Sigma, mu, Σ, μ and \\Sigma are ordinary names; Σ is spelled out as Sigma."""

from __future__ import annotations

import pytest

import matdiff
from matdiff.syntax.greek import LETTER_OF, NAME_OF_CHAR, ascii_name
from matdiff.syntax.parse import parse_typed


@pytest.mark.parametrize("typed, name", [("Σ", "Sigma"), ("μ", "mu"), ("µ", "mu"),
                                         ("Σ_2", "Sigma_2"), ("λ", "lambda"), ("ϵ", "epsilon"),
                                         ("ε", "epsilon"), ("Ω", "Omega"), ("x", "x")])
def test_greek_characters_are_spelled_out(typed: str, name: str) -> None:
    assert ascii_name(typed) == name


def test_every_spelled_name_maps_back_to_its_letter() -> None:
    for char, name in NAME_OF_CHAR.items():
        assert LETTER_OF[name] == char or char in "ϵϕϑςϱµ"  # variants share the plain letter


def test_text_syntax_reads_unicode_and_spelled_names_alike() -> None:
    spelled = matdiff.parse("(x - mu)'*inv(Sigma)*(x - mu)")
    assert matdiff.parse("(x - μ)'*inv(Σ)*(x - μ)") is spelled
    assert matdiff.parse(r"(x - \mu)^\top \Sigma^{-1} (x - \mu)") is spelled


def test_declarations_accept_unicode_names() -> None:
    _, variables = parse_typed("Σ*μ", "Σ: symmetric matrix(k,k); μ: vector(k)")
    assert set(variables) == {"Sigma", "mu"}
    assert "symmetric" in variables["Sigma"].props
    _, variables = parse_typed("Σ*μ", {"μ": "vector(k)"})
    assert variables["mu"].shape == ("k",)


def test_greek_names_keep_their_default_letter_kinds() -> None:
    _, variables = parse_typed("alpha*Sigma*mu")
    assert {n: len(d.shape) for n, d in variables.items()} == {"alpha": 0, "Sigma": 2, "mu": 1}


def test_derive_accepts_the_unicode_spelling_of_wrt() -> None:
    r = matdiff.derive("μ'*Σ*μ", wrt="μ")
    assert r.wrt == "mu" and r.text == "(Sigma + Sigma')*mu" and r.check() < 1e-8
