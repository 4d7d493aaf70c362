"""Derivatives as linear maps: the directions they are applied to.

The derivative D of F with respect to X (shape(F) + shape(X)) applied to a direction dX of X's
shape is the differential dF = D[dX], an expression of F's shape that is simplified and raised
like any other, so d(inv(X)) reads ``-inv(X)*dX*inv(X)`` whatever the rank of D. The derivative
rules build it directly when seeded with dX (``core.differentiate.derivative(f, x, dX)``); the
k-th derivative applied to k directions is the k-th differential (``dx'*(A + A')*dx``).
"""

from __future__ import annotations

from fractions import Fraction

from ..core.ir import Expr, var
from ..syntax.types import TANGENT_PROPERTIES
from .tree import Call, Mono, Transpose


def direction(x: Expr, taken: set[str], name: str | None = None) -> Expr:
    """The direction variable in x's space: named ``name``, or ``d`` + x's name (``dX_2``,
    ``dX_3``... where that is taken); it shares x's symmetry, which the input language gives
    an undeclared ``dX`` as well."""
    base, props = x.data
    if name is None:
        name = f"d{base}"
        k = 2
        while name in taken:
            name, k = f"d{base}_{k}", k + 1
    return var(name, x.shape, props & TANGENT_PROPERTIES)


def applied_note(derivative, directions: list, lead: int):
    """The notation of a derivative, already in matrix notation, applied to its directions:
    ``G'*dx``, ``tr(G'*dX)``, ``J*dx``, ``dx'*H*dx``; None where no such product reads it.

    ``derivative`` is the derivative's notation, ``directions`` one (notation, rank) per
    block of axes after the ``lead`` axes of F; used where the contraction itself raises to
    no matrix form although the derivative does."""
    ranks = [rank for _, rank in directions]
    notes = [note for note, _ in directions]
    if len(directions) == 1:
        (d,), (k,) = notes, ranks
        if k == 0:
            return Mono(Fraction(1), (d,), (derivative,))
        if lead == 0 and k == 1:
            return Mono(Fraction(1), (), (Transpose(derivative), d))
        if lead == 0 and k == 2:
            return Call("tr", (Mono(Fraction(1), (), (Transpose(derivative), d)),))
        if lead == 1 and k == 1:
            return Mono(Fraction(1), (), (derivative, d))
        return None
    if lead == 0 and ranks == [0, 0]:
        return Mono(Fraction(1), tuple(notes), (derivative,))
    if lead == 0 and ranks == [1, 1]:
        first, second = notes
        return Mono(Fraction(1), (), (Transpose(first), derivative, second))
    return None
