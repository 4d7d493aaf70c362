"""Greek letters as names: ``Σ``, ``\\Sigma`` and ``Sigma`` are the one variable ``Sigma``.

Names are stored spelled out in ASCII, so declarations, keyword arguments (``Sigma=...``) and the
text syntax read them without special keys; output styles spell them back (``\\Sigma``, ``Σ``).
Variant letter forms (ϵ/ε, ϕ/φ, \\varepsilon...) are one letter: they name the same variable.
"""

from __future__ import annotations

import re

LOWER = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
         "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
         "chi", "psi", "omega")
# the capitals LaTeX has commands for (the others look like Latin letters)
UPPER = ("Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi",
         "Omega")

_UNICODE_LOWER = "αβγδεζηθικλμνξοπρστυφχψω"
LETTER_OF = dict(zip(LOWER, _UNICODE_LOWER, strict=True)) | dict(
    zip(UPPER, "ΓΔΘΛΞΠΣΥΦΨΩ", strict=True))
NAME_OF_CHAR = {char: name for name, char in LETTER_OF.items()} | {
    "ϵ": "epsilon", "ϕ": "phi", "ϑ": "theta", "ς": "sigma", "ϱ": "rho", "µ": "mu"}
# LaTeX's variant commands, read as the plain letter
LATEX_VARIANTS = {"varepsilon": "epsilon", "varphi": "phi", "vartheta": "theta",
                  "varsigma": "sigma", "varrho": "rho", "varpi": "pi"}
UNICODE_LETTERS = "".join(NAME_OF_CHAR)

_GREEK_RUN = re.compile(f"[{UNICODE_LETTERS}]")


def ascii_name(name: str) -> str:
    """``Σ_2`` -> ``Sigma_2``: every Greek character spelled out."""
    if name.isascii():  # nothing to spell out (most names): no regex pass
        return name
    return _GREEK_RUN.sub(lambda m: NAME_OF_CHAR[m.group()], name)


def is_greek(name: str) -> bool:
    return name in LETTER_OF
