"""The notation tree: matrix notation as a person writes it, between raising and rendering.

Nodes are frozen dataclasses, so equal notation compares equal (factoring relies on it).
A node caches its hash, size and variable names: factoring and naming ask for them of every
part, and computing them afresh walks the whole part each time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction


def _note(cls):
    """A frozen dataclass whose hash is computed once (it is the hash of its fields)."""
    cls = dataclass(frozen=True)(cls)
    by_fields = cls.__hash__
    names = tuple(f.name for f in fields(cls))
    rational = tuple(f.type == "Fraction" for f in fields(cls))
    if any(rational):  # Fraction.__hash__ is Python code (a modular inverse): see _rational
        def by_fields(self) -> int:  # noqa: F811 - the same fields, rationals hashed faster
            return hash(tuple(_rational(getattr(self, n)) if r else getattr(self, n)
                              for n, r in zip(names, rational)))

    def __hash__(self) -> int:
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = by_fields(self)
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict:  # a pickle carries the fields, not the caches (a str
        return {name: getattr(self, name) for name in cls.note_fields}  # hash is per process)

    cls.__hash__ = __hash__
    cls.__getstate__ = __getstate__
    cls.note_fields = tuple(f.name for f in fields(cls))
    return cls


def _rational(v) -> object:
    """A stand-in with the hash equality needs: equal rationals give equal pairs, and a whole
    number hashes as the int it equals (the numeric hash of Fraction(n) is hash(n))."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else (v.numerator, v.denominator)
    return v


@_note
class Num:
    value: Fraction


@_note
class Sym:
    """A variable or named constant (``pi``, ``eye``)."""
    name: str


@_note
class Call:
    fn: str
    args: tuple
    # the rank of the argument, where LaTeX writes the function by it: |a| of a scalar but
    # abs(A) of an array (|A| reads as det(A)), \|x\|_2 of a vector but \|X\|_F of a matrix
    arg_rank: int = 0


@_note
class Transpose:
    arg: object


@_note
class Power:
    base: object
    exponent: object
    elementwise: bool


@_note
class Mono:
    """coef * scalars * chain / den: scalar factors first, then the matrix/vector product in
    order; the denominators are scalars."""
    coef: Fraction
    scalars: tuple = ()
    chain: tuple = ()
    den: tuple = ()


@_note
class Hadamard:
    """factors[0] .* factors[1] .* ... ./ den[0] ./ ..."""
    factors: tuple
    den: tuple = ()


@_note
class Sum:
    terms: tuple  # of Mono


@_note
class Indexed:
    """base[i, j] in index notation; ``base`` None for the identity written delta(i, j)."""
    base: object
    indices: tuple


@_note
class IndexForm:
    """An index-notation product-sum ``D[out] = sum of coef * prod Indexed``; summed indices
    are those not in ``out``."""
    out: tuple
    terms: tuple  # of Mono whose factors are Indexed / scalar notation


@_note
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
    if isinstance(x, Num):  # a number is a coefficient: 2*1 is 2
        return Mono(x.value, ())
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


def whole_power(f, elementwise: bool) -> tuple:
    """(b, k) for the factor b^k (b.^k if ``elementwise``) with k a positive whole number,
    else (f, 1): what factoring and printing count as repeats of b."""
    if isinstance(f, Power) and f.elementwise == elementwise and isinstance(f.exponent, Num) \
            and f.exponent.value.denominator == 1 and f.exponent.value > 0:
        return f.base, int(f.exponent.value)
    return f, 1


def children(note) -> tuple:
    """The notes directly below ``note`` (cached: naming and measuring ask again and again)."""
    if isinstance(note, (Sym, Num)):
        return ()
    cached = note.__dict__.get("_children")
    if cached is None:
        out = []
        for name in note.note_fields:
            value = getattr(note, name)
            if isinstance(value, tuple):
                out.extend(v for v in value if not isinstance(v, (str, Fraction)))
            elif value is not None and not isinstance(value, (str, Fraction, int)):
                out.append(value)
        cached = tuple(out)
        object.__setattr__(note, "_children", cached)
    return cached


def names(note) -> list[str]:
    """The variable names in ``note``, each as often as it is written, in reading order."""
    found, stack = [], [note]
    while stack:
        n = stack.pop()
        if isinstance(n, Sym):
            found.append(n.name)
        else:
            stack.extend(reversed(children(n)))
    return found


def name_set(note) -> frozenset[str]:
    """The distinct variable names in ``note``."""
    cached = note.__dict__.get("_names")
    if cached is None:
        if isinstance(note, Sym):
            cached = frozenset((note.name,))
        else:
            cached = frozenset()
            for c in children(note):
                inner = name_set(c)
                cached = inner if inner >= cached else cached | inner
        object.__setattr__(note, "_names", cached)
    return cached


def weight(note) -> int:
    """Size of a notation tree: simpler factors are written first."""
    cached = note.__dict__.get("_weight")
    if cached is None:
        cached = 1 + sum(weight(c) for c in children(note))
        object.__setattr__(note, "_weight", cached)
    return cached


def transposes(factors) -> int:
    """How many factors are transposed (fewer read better)."""
    return sum(isinstance(f, Transpose) for f in factors)
