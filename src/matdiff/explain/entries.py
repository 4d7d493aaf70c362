"""One entry of a derivative in index notation, built from its matrix notation.

``1/2*f*(inv(S)*(x - m)*(x - m)'*inv(S) - inv(S))`` has the (i, j) entry
``1/2*f*((inv(S)*(x - m))[i]*((x - m)'*inv(S))[j] - inv(S)[i,j])``: an entry distributes over
sums, scalar factors, transposes, Hadamard products and elementwise functions, and splits an
outer product u*v' into u[i]*v[j]. What does not split (a product A*B) keeps its matrix
notation, indexed: ``(A*B)[i,j]``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from ..core.ir import PRIMITIVES
from ..notation.tree import (
    EYE,
    MATRIX_ONES,
    ONES,
    Call,
    Hadamard,
    Indexed,
    Mono,
    Num,
    Power,
    Sum,
    Transpose,
)

ELEMENTWISE = frozenset(name for name, p in PRIMITIVES.items() if p.elementwise)

Rank = Callable[[object], int]  # the number of axes of a notation (0, 1 or 2)


def entry(note, indices: tuple[str, ...], rank: Rank):
    """The notation of ``note[indices]`` (one index for a vector, two for a matrix)."""
    if not indices:
        return note
    if isinstance(note, Sum):
        return Sum(tuple(_as_mono(entry(t, indices, rank)) for t in note.terms))
    if isinstance(note, Mono):
        chain = _chain_entry(note.chain, indices, rank) if note.chain else ()
        return Mono(note.coef, note.scalars, chain, note.den)
    if isinstance(note, Transpose):
        return entry(note.arg, indices[::-1], rank)
    if isinstance(note, Hadamard):
        return Mono(Fraction(1), (), tuple(entry(f, indices, rank) for f in note.factors),
                    tuple(entry(d, indices, rank) for d in note.den))
    if isinstance(note, Power) and note.elementwise:
        return Power(entry(note.base, indices, rank), note.exponent, False)
    if note in (ONES, MATRIX_ONES):
        return Num(Fraction(1))
    if isinstance(note, Call) and note.fn in ("vector", "matrix"):
        return note.args[0]
    if note == EYE or isinstance(note, Call) and note.fn == "eye":
        return Indexed(None, indices)
    if isinstance(note, Call) and note.fn in ELEMENTWISE:
        return Call(note.fn, (entry(note.args[0], indices, rank),))
    if isinstance(note, Call) and note.fn == "diag" and len(indices) == 2 and \
            rank(note.args[0]) == 1:  # diag(v)[i,j] = v[i]*delta(i,j)
        return Mono(Fraction(1), (), (entry(note.args[0], indices[:1], rank),
                                      Indexed(None, indices)))
    return Indexed(note, indices)  # a variable, inv(X), a matrix power...: indexed whole


def _chain_entry(chain: tuple, indices: tuple[str, ...], rank: Rank) -> tuple:
    """The entry of a product, as a tuple of factors: one factor's entry, or an outer product
    split u[i]*v[j], or the product indexed as a whole."""
    if len(chain) == 1:
        return (entry(chain[0], indices, rank),)
    if len(indices) == 2:
        for k in range(1, len(chain)):
            left, right = _product(chain[:k]), _product(chain[k:])
            # two one-axis factors whose product has two axes: a column times a row
            if rank(left) == 1 and rank(right) == 1:
                return (entry(left, indices[:1], rank), entry(right, indices[1:], rank))
    return (Indexed(_product(chain), indices),)


def _product(chain: tuple):
    return chain[0] if len(chain) == 1 else Mono(Fraction(1), (), chain)


def _as_mono(note) -> Mono:
    return note if isinstance(note, Mono) else Mono(Fraction(1), (), (note,))
