"""Factoring: a sum of products in notation, written the way a person would factor it.

Like terms share their scalar factors or their products, common coefficients and factors are
pulled out, then common left or right ends of the products (``A*x + A'*x`` is ``(A + A')*x``),
and sums of diag(...) or of elementwise products are merged.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from math import gcd

from .tree import (
    MATRIX_ONES,
    ONES,
    Call,
    Hadamard,
    Mono,
    Num,
    Power,
    Sum,
    Sym,
    Transpose,
    hadamard,
    mono,
    transposes,
    weight,
    whole_power,
)


def scale_mono(c: Fraction, x, scalar: bool) -> Mono:
    m = mono(x, scalar)
    return Mono(m.coef * c, m.scalars, m.chain, m.den)


def factor_sum(terms: list[Mono], rank, ones=None):
    """A sum of monomials, factored: common scalar factors and coefficients pulled out, then
    common right or left ends of the products (each term keeping a non-empty product).
    ``rank`` orders the terms (positive ones first); ``ones`` is the notation of an array of
    ones of the sum's shape, where known."""
    terms = _collected([split_den(t) for t in terms])
    if len(terms) == 1:
        return terms[0]
    grouped = _group(terms, rank, ones)
    if len(grouped) < len(terms):
        return factor_sum(grouped, rank, ones)
    scalar_valued = not any(t.chain for t in terms)
    common_coef = _common_coefficient([t.coef for t in terms])
    common = _common_multiset([list(t.scalars) for t in terms])
    common_den = _common_multiset([list(t.den) for t in terms])
    if common_coef != 1 or common or common_den:
        inner = [Mono(t.coef / common_coef, _without(t.scalars, common), t.chain,
                      _without(t.den, common_den)) for t in terms]
        if all(t.scalars or t.chain for t in inner):
            factored = factor_sum(inner, rank, ones)
            if isinstance(factored, Mono):  # its coefficient joins ours: no -(...) inside
                return Mono(common_coef * factored.coef, tuple(common) + factored.scalars,
                            factored.chain, tuple(common_den) + factored.den)
            if scalar_valued:
                return Mono(common_coef, tuple(common) + (factored,), (), tuple(common_den))
            return Mono(common_coef, tuple(common), (factored,), tuple(common_den))
    if not any(t.scalars or t.den for t in terms):
        for side in ("right", "left"):
            k = _common_end([t.chain for t in terms], side)
            if not k:
                continue
            if side == "right":
                inner = factor_sum([Mono(t.coef, (), t.chain[:-k]) for t in terms], rank)
                return _hoisted(inner, (), terms[0].chain[-k:])
            inner = factor_sum([Mono(t.coef, (), t.chain[k:]) for t in terms], rank)
            return _hoisted(inner, terms[0].chain[:k], ())
    if all(_lone(t) for t in terms):
        merged = _merge_elementwise(terms, rank, ones)
        if merged is not None:
            return merged
    ordered = sorted(terms, key=lambda t: (t.coef < 0, transposes(t.chain), rank(t)))
    return Sum(tuple(ordered))


def _collected(terms: list[Mono]) -> list[Mono]:
    """A term that is a number times a sum gives its terms to this sum, and equal products
    add up: 2*a + 2*b + (a + b) is 3*a + 3*b (the IR keeps some sums as factors)."""
    flat: list[Mono] = []
    for t in terms:
        lone = t.scalars[0] if len(t.scalars) == 1 and not t.chain and not t.den else None
        if isinstance(lone, Mono) and not lone.scalars and not lone.den:
            t = Mono(t.coef * lone.coef, (), lone.chain)  # 2*(x'*A*dx) is 2 times a product
        inner = t.scalars[0] if len(t.scalars) == 1 and not t.chain else \
            t.chain[0] if len(t.chain) == 1 and not t.scalars else None
        if isinstance(inner, Sum) and not t.den:
            flat += [Mono(t.coef * m.coef, m.scalars, m.chain, m.den) for m in inner.terms]
        else:
            flat.append(t)
    if len(flat) == len(terms):
        keys = {(t.scalars, t.chain, t.den) for t in flat}
        if len(keys) == len(flat):
            return terms
    total: dict = {}
    for t in flat:
        key = (t.scalars, t.chain, t.den)
        total[key] = total.get(key, 0) + t.coef
    collected = [Mono(c, *key) for key, c in total.items() if c != 0]
    return collected or [Mono(Fraction(0))]


def _group(terms: list[Mono], rank, ones) -> list[Mono]:
    """Terms with the same scalar factors share them (a*A*x + a*B*x = a*(A*x + B*x)), then
    terms with the same product share it (a*A*x + b*A*x = (a + b)*A*x)."""
    def scalar_key(t):  # the multisets of scalar factors and denominators
        return frozenset(Counter(t.scalars).items()), frozenset(Counter(t.den).items())

    def by_scalars(group):
        inner = factor_sum([Mono(t.coef, (), t.chain) for t in group], rank, ones)
        first = group[0]
        if isinstance(inner, Mono) and not inner.scalars and not inner.den:
            return Mono(inner.coef, first.scalars, inner.chain, first.den)
        return Mono(Fraction(1), first.scalars, (inner,), first.den)

    def by_chain(group):
        inner = factor_sum([Mono(t.coef, t.scalars, (), t.den) for t in group], rank)
        if isinstance(inner, Mono) and not inner.chain:
            return Mono(inner.coef, inner.scalars, group[0].chain, inner.den)
        return Mono(Fraction(1), (inner,), group[0].chain)

    with_both = [t for t in terms if t.chain and (t.scalars or t.den)]
    for key, combine in ((scalar_key, by_scalars), (lambda t: t.chain, by_chain)):
        groups: dict = {}
        for t in with_both:
            groups.setdefault(key(t), []).append(t)
        merged = [g for g in groups.values() if len(g) > 1]
        if merged:
            done = {id(t) for g in merged for t in g}
            return [combine(g) for g in merged] + [t for t in terms if id(t) not in done]
    return terms


def _hoisted(inner, before: tuple, after: tuple) -> Mono:
    """before * inner * after, the inner coefficient moved to the front."""
    if isinstance(inner, Mono) and not inner.scalars and not inner.den:
        return Mono(inner.coef, (), before + inner.chain + after)
    return Mono(Fraction(1), (), before + (inner,) + after)


def _lone(t: Mono):
    """The one factor of a term that is nothing but a coefficient times a factor."""
    return t.chain[0] if len(t.chain) == 1 and not t.scalars and not t.den else None


def _merge_elementwise(terms: list[Mono], rank, ones):
    """diag(a) - diag(b) is diag(a - b); a .* c + b .* c.^2 is c .* (a + b .* c), powers
    counted; ``ones`` (the ones array of the sum's shape, or None where unknown) stands for a
    term that has nothing left."""
    lone = [_lone(t) for t in terms]
    if all(isinstance(f, Call) and f.fn == "diag" for f in lone):
        # diag turns a matrix into a vector and a vector into a matrix: the arguments' ones
        # are of the other rank than the sum's; of unknown rank, the scalar 1, which the
        # language broadcasts to the shape of what it is added to
        inner_ones = {ONES: MATRIX_ONES, MATRIX_ONES: ONES}.get(ones, Num(Fraction(1)))
        inner = factor_sum([Mono(t.coef, (), f.args) for t, f in zip(terms, lone)], rank,
                           inner_ones)
        return Mono(Fraction(1), (), (Call("diag", (inner,)),))
    parts = [(_powers(f.factors), _powers(f.den)) if isinstance(f, Hadamard)
             else (_powers([f]), {}) for f in lone]
    common = _common_powers([p[0] for p in parts])
    common.pop(ones, None)  # a factor of ones is no factor
    common_den = _common_powers([p[1] for p in parts])
    if not (common or common_den):
        return None
    if not any(_minus(f, common) or _minus(d, common_den) for f, d in parts):
        return None  # nothing would be left to add up
    rest = []
    for t, (factors, den) in zip(terms, parts):
        left = _from_powers(_minus(factors, common))
        below = _from_powers(_minus(den, common_den))
        if not left and ones is None:
            return None
        note = hadamard((left or [ones]) + [Power(d, Num(Fraction(-1)), True) for d in below],
                        rank)
        rest.append(Mono(t.coef, (), (note,)))
    inner = factor_sum(rest, rank, ones)
    reciprocals = [Power(d, Num(Fraction(-1)), True) for d in _from_powers(common_den)]
    return Mono(Fraction(1), (), (hadamard(_from_powers(common) + [inner] + reciprocals,
                                           rank),))


def _powers(factors) -> dict:
    """{base: integer exponent} of an elementwise product."""
    out: dict = {}
    for f in factors:
        base, e = whole_power(f, True)
        out[base] = out.get(base, 0) + e
    return out


def _common_powers(dicts: list[dict]) -> dict:
    first, *others = dicts
    return {b: min([e] + [o.get(b, 0) for o in others]) for b, e in first.items()
            if all(o.get(b, 0) > 0 for o in others)}


def _minus(powers: dict, common: dict) -> dict:
    return {b: e - common.get(b, 0) for b, e in powers.items() if e > common.get(b, 0)}


def _from_powers(powers: dict) -> list:
    return [b if e == 1 else Power(b, Num(Fraction(e)), True) for b, e in powers.items()]


def split_den(t: Mono) -> Mono:
    """Scalar powers with negative exponents move to the denominator (x/norm2(x), 1/a), and
    scalar quotients among the factors join the product's own."""
    coef, scalars, den = t.coef, [], list(t.den)
    for f in t.scalars:
        if isinstance(f, Power) and not f.elementwise and isinstance(f.exponent, Num) \
                and f.exponent.value < 0:
            den.append(positive_power(f.base, -f.exponent.value))
        elif isinstance(f, Mono) and not f.chain and f.den:
            coef *= f.coef
            scalars.extend(f.scalars)
            den.extend(f.den)
        else:
            scalars.append(f)
    return Mono(coef, tuple(scalars), t.chain, tuple(den))


def positive_power(base, q: Fraction):
    """base^q for a scalar base and q > 0 as a textbook writes it: sqrt(b), and the square
    root of u'*u as norm2(u) (its powers as powers of the norm)."""
    found = _dot_of_itself(base)
    if found is not None and (2 * q).denominator == 1:
        k = int(2 * q)
        norm = Call("norm2", found[:1], found[1])
        return norm if k == 1 else Power(norm, Num(Fraction(k)), False)
    if q == 1:
        return base
    if q == Fraction(1, 2):
        return Call("sqrt", (base,))
    return Power(base, Num(q), False)


def _dot_of_itself(note) -> tuple | None:
    """(u, 1) for the notation u'*u, (U, 2) for tr(U*U') or tr(U'*U); else None."""
    if isinstance(note, Mono) and note.coef == 1 and len(note.scalars) == 1 \
            and not note.chain and not note.den:
        return _dot_of_itself(note.scalars[0])
    if isinstance(note, Call) and note.fn == "tr" and isinstance(note.args[0], Mono):
        chain = note.args[0].chain
        if len(chain) == 2 and Transpose(chain[0]) == chain[1]:
            return chain[0], 2
        if len(chain) == 2 and Transpose(chain[1]) == chain[0]:
            return chain[1], 2
        return None
    if isinstance(note, Mono) and note.coef == 1 and not note.scalars and not note.den \
            and len(note.chain) == 2 and note.chain[0] == Transpose(note.chain[1]):
        return note.chain[1], 1
    return None


def _common_coefficient(coefs: list[Fraction]) -> Fraction:
    """The coefficient to pull out of a sum: negative when every term is negative."""
    sign = -1 if all(c < 0 for c in coefs) else 1
    if len({abs(c) for c in coefs}) == 1:
        return sign * abs(coefs[0])
    numerator, denominator = 0, 1
    for c in coefs:
        numerator = gcd(numerator, c.numerator)
        denominator = denominator * c.denominator // gcd(denominator, c.denominator)
    return sign * Fraction(numerator, denominator) if numerator else Fraction(sign)


def _common_multiset(lists: list[list]) -> list:
    """The factors every list has (as many times as each has them), in the first's order."""
    # counted, not searched: n terms of n factors each were n^3 comparisons
    first, *others = lists
    left = Counter(first)
    for other in others:
        left &= Counter(other)
        if not left:
            return []
    common = []
    for f in first:
        if left[f] > 0:
            common.append(f)
            left[f] -= 1
    return common


def _without(factors: tuple, remove: list) -> tuple:
    if not remove:
        return factors
    drop = Counter(remove)
    out = []
    for f in factors:
        if drop[f] > 0:
            drop[f] -= 1
        else:
            out.append(f)
    return tuple(out)


def _common_end(chains: list[tuple], side: str) -> int:
    """Length of the common run at one end of every chain, each keeping one factor."""
    shortest = min(len(c) for c in chains)
    k = 0
    while k < shortest - 1:
        pick = {c[-1 - k] if side == "right" else c[k] for c in chains}
        if len(pick) != 1:
            break
        k += 1
    return k


def abbreviate(note, whole, symbol: str):
    """``note`` with the factors of the scalar ``whole`` written as ``symbol`` wherever a
    product contains all of them (``1/2*f*(...)`` for the Gaussian); None if nowhere."""
    if weight(whole) < 6:
        return None  # det(X) reads better than a name for it
    if isinstance(whole, Mono) and not whole.chain and whole.scalars:
        coef, need, need_den = whole.coef, list(whole.scalars), list(whole.den)
    else:
        coef, need, need_den = Fraction(1), [whole], []

    def replace(m):
        if not isinstance(m, Mono) or not _contains(m.scalars, need) \
                or not _contains(m.den, need_den):
            return None
        return Mono(m.coef / coef, (Sym(symbol),) + _without(m.scalars, need), m.chain,
                    _without(m.den, need_den))

    if isinstance(note, Sum):
        terms = [replace(t) or t for t in note.terms]
        return Sum(tuple(terms)) if terms != list(note.terms) else None
    return replace(note)


def _contains(factors: tuple, wanted: list) -> bool:
    pool = list(factors)
    for f in wanted:
        if f not in pool:
            return False
        pool.remove(f)
    return True
