"""The notation tree: matrix notation as a person writes it, between raising and rendering.

Nodes are frozen dataclasses, so equal notation compares equal (factoring relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Num:
    value: Fraction


@dataclass(frozen=True)
class Sym:
    """A variable or named constant (``pi``, ``eye``)."""
    name: str


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple


@dataclass(frozen=True)
class Transpose:
    arg: object


@dataclass(frozen=True)
class Power:
    base: object
    exponent: object
    elementwise: bool


@dataclass(frozen=True)
class Mono:
    """coef * scalars * chain / den: scalar factors first, then the matrix/vector product in
    order; the denominators are scalars."""
    coef: Fraction
    scalars: tuple = ()
    chain: tuple = ()
    den: tuple = ()


@dataclass(frozen=True)
class Hadamard:
    """factors[0] .* factors[1] .* ... ./ den[0] ./ ..."""
    factors: tuple
    den: tuple = ()


@dataclass(frozen=True)
class Sum:
    terms: tuple  # of Mono


@dataclass(frozen=True)
class Indexed:
    """base[i, j] in index notation; ``base`` None for the identity written delta(i, j)."""
    base: object
    indices: tuple


@dataclass(frozen=True)
class IndexForm:
    """An index-notation product-sum ``D[out] = sum of coef * prod Indexed``; summed indices
    are those not in ``out``."""
    out: tuple
    terms: tuple  # of Mono whose factors are Indexed / scalar notation


@dataclass(frozen=True)
class Where:
    """``body where names[0] = values[0], ...``: names for repeated parts."""
    body: object
    names: tuple  # of str
    values: tuple


ONES = Call("vector", (Num(Fraction(1)),))
MATRIX_ONES = Call("matrix", (Num(Fraction(1)),))
EYE = Sym("eye")


def mono(x, scalar: bool) -> Mono:
    if isinstance(x, Mono):
        return x
    return Mono(Fraction(1), (x,)) if scalar else Mono(Fraction(1), (), (x,))


def transpose(x, symmetric: bool = False):
    """x' with the obvious cancellations."""
    if symmetric or isinstance(x, Num) or x == EYE:
        return x
    if isinstance(x, Transpose):
        return x.arg
    return Transpose(x)


def hadamard(notes: list, rank=None, matrix: bool = False):
    """notes[0] .* notes[1] .* ..., with elementwise reciprocals as ./ and, given ``rank``,
    simpler factors first; ``matrix`` says which ones stand in when only divisors remain."""
    factors, den = [], []
    for n in notes:
        if isinstance(n, Hadamard):
            factors += n.factors
            den += n.den
        elif isinstance(n, Power) and n.elementwise and isinstance(n.exponent, Num) \
                and n.exponent.value < 0:
            e = -n.exponent.value
            den.append(n.base if e == 1 else Power(n.base, Num(e), True))
        else:
            factors.append(n)
    factors = [f for f in factors if f not in (ONES, MATRIX_ONES)] or factors[:1]
    factors, den = as_powers(factors), as_powers(den)
    if rank is not None:
        factors.sort(key=weight)
        den.sort(key=weight)
    if not factors:
        factors = [MATRIX_ONES if matrix else ONES]
    if len(factors) == 1 and not den:
        return factors[0]
    return Hadamard(tuple(factors), tuple(den))


def as_powers(factors: list) -> list:
    """y .* y is y.^2."""
    counts: dict = {}
    for f in factors:
        counts[f] = counts.get(f, 0) + 1
    return [f if n == 1 else Power(f, Num(Fraction(n)), True) for f, n in counts.items()]


def children(note) -> list:
    if isinstance(note, (Sym, Num)):
        return []
    out = []
    for value in vars(note).values():
        if isinstance(value, tuple):
            out.extend(v for v in value if not isinstance(v, (str, Fraction)))
        elif value is not None and not isinstance(value, (str, Fraction, bool)):
            out.append(value)
    return out


def names(note) -> list[str]:
    if isinstance(note, Sym):
        return [note.name]
    return [n for c in children(note) for n in names(c)]


def weight(note) -> int:
    """Size of a notation tree: simpler factors are written first."""
    return 1 + sum(weight(c) for c in children(note))


def transposes(factors) -> int:
    """How many factors are transposed (fewer read better)."""
    return sum(isinstance(f, Transpose) for f in factors)
