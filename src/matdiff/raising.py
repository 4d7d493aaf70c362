"""Raising: from index contractions back to matrix notation, factored as a person writes it.

A contraction's indices form a graph: an index on exactly two factors is an edge. Chains of
edges are matrix products (a factor entered from its column side is transposed), closed chains
are traces, a vector on an index shared with two other factors is a ``diag``, vectors on one
index are a Hadamard product. Sums are then factored: common scalar factors and coefficients,
then common left or right factors of the products (``A*x + A'*x`` is ``(A + A')*x``).

The result is a small notation tree (below), which :mod:`matdiff.render` prints. An expression
with more than two free indices, or one whose index graph has no matrix form, is raised to
index notation instead (:class:`IndexForm`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from math import gcd

from .errors import MatdiffError
from .ir import Expr
from .simplify import is_symmetric

# ----------------------------------------------------------------------------------------------
# the notation tree
# ----------------------------------------------------------------------------------------------


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


ONES = Call("vector", (Num(Fraction(1)),))
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


class NoMatrixForm(Exception):
    """The index graph of a contraction has no matrix-notation form."""


# ----------------------------------------------------------------------------------------------
# raising
# ----------------------------------------------------------------------------------------------

OUT_NAMES = "ijklpqrstuvw"
SUM_NAMES = "abcdefghmnoxyz"


def raise_expr(e: Expr, reading_order: dict[str, int] | None = None):
    """The notation tree of a simplified IR expression (matrix notation where one exists).

    ``reading_order`` ranks variable names (by first appearance in the input, say): terms are
    listed, and the signs of differences chosen, to read like the input (``x - m``, not
    ``m - x``).
    """
    raiser = _Raiser(reading_order or {})
    try:
        if e.ndim <= 2:
            try:
                return raiser.raise_(e)
            except NoMatrixForm:
                pass
        return index_form(e, raiser)
    except NoMatrixForm:
        raise MatdiffError("this derivative has neither a matrix nor an index-notation form "
                           "matdiff can print yet", hint="its value is still available "
                           "through numpy() and check()") from None


class _Raiser:
    def __init__(self, reading_order: dict[str, int]):
        self.memo: dict[Expr, object] = {}
        self.reading_order = reading_order
        self.symmetric: set = set()  # notes of symmetric matrices: their transpose is them

    def raise_(self, e: Expr):
        done = self.memo.get(e)
        if done is None:
            done = self.memo[e] = self._raise(e)
            if is_symmetric(e):
                self.symmetric.add(done)
        return done

    def _raise(self, e: Expr):
        op = e.op
        if op == "num":
            return Num(e.data)
        if op in ("const", "dim"):
            return Sym(e.data)
        if op == "var":
            return Sym(e.data[0])
        if op == "ones":
            return ONES
        if op == "delta":
            return EYE
        if op == "zero":
            return Num(Fraction(0)) if not e.shape else Call(
                "vector" if e.ndim == 1 else "matrix", (Num(Fraction(0)),))
        if op == "sum":
            return self.factor_sum([scale_mono(c, self.raise_(t), not t.ndim)
                                    for c, t in zip(e.data, e.args)])
        if op == "einsum":
            return self._contraction(e)
        if op == "pow":
            return self._power(e)
        if e.ndim > 2 or any(a.ndim > 2 for a in e.args):
            raise NoMatrixForm
        return Call(op, tuple(self.raise_(a) for a in e.args))

    def _power(self, e: Expr):
        base, exponent = e.args
        b, x = self.raise_(base), self.raise_(exponent)
        if exponent.op == "num" and exponent.data == Fraction(1, 2) and not base.ndim:
            return Call("sqrt", (b,))
        return Power(b, x, bool(base.ndim))

    # reading order ----------------------------------------------------------------------------
    def rank(self, note) -> tuple:
        """Where a term's first variable stands in the input; constants last."""
        names = [self.reading_order.get(n, len(self.reading_order)) for n in _names(note)]
        return (min(names) if names else len(self.reading_order) + 1, _weight(note))

    def factor_sum(self, terms: list[Mono]):
        return factor_sum(terms, self.rank)

    def prefer_positive(self, note) -> tuple[object, Fraction]:
        """A factor without its coefficient, a difference written the way round the input
        reads (x - m); and the coefficient that moves to the enclosing product."""
        if isinstance(note, Mono) and note.coef != 1 and (note.scalars or note.chain):
            inner = Mono(Fraction(1), note.scalars, note.chain, note.den)
            if not note.den and len(note.scalars) + len(note.chain) == 1:
                inner = (note.scalars + note.chain)[0]
            inner, sign = self.prefer_positive(inner)
            return inner, sign * note.coef
        if not isinstance(note, Sum):
            return note, Fraction(1)
        lead = min(note.terms, key=self.rank)
        if lead.coef > 0:
            return note, 1
        flipped = self.factor_sum([Mono(-t.coef, t.scalars, t.chain, t.den) for t in note.terms])
        return flipped, Fraction(-1)

    # contractions -------------------------------------------------------------------------

    def _contraction(self, e: Expr) -> Mono:
        """Pieces joined by summed indices form components; each is a chain product, and the
        components meet elementwise on the output indices (A.*B, v.*(A*x), diag(v)*A)."""
        factor_idx, out = e.data
        if any(x.ndim > 2 for x in e.args):
            raise NoMatrixForm
        coef = Fraction(1)
        pieces = []
        for x, idx in zip(e.args, factor_idx):
            note, c = self.prefer_positive(self.raise_(x))
            coef *= c
            pieces.append(_Piece(note, idx, is_symmetric(x)).diagonal())
        fresh = itertools.count(1 + max([i for p in pieces for i in p.idx] + list(out),
                                        default=-1))
        scalars: list = []
        by_touch: dict[tuple, list] = {}
        for component in _components(pieces, out):
            touched = tuple(i for i in out if any(i in p.idx for p in component))
            m = _raise_component(component, touched, fresh, self.rank, self.symmetric)
            coef *= m.coef
            if not touched and not m.chain:
                scalars.extend(m.scalars)
                continue
            scalars.extend(m.scalars)
            by_touch.setdefault(touched, []).append(_note_of(m.chain) if touched else
                                                    Mono(Fraction(1), (), m.chain))
        scalars.extend(by_touch.pop((), []))
        chain = _combine(by_touch, out, self.rank, self.symmetric)
        chain = [f for f in chain if f != EYE] or ([EYE] if chain else [])
        if not chain and len(scalars) == 1 and isinstance(scalars[0], Mono) and coef == 1:
            return scalars[0]
        scalars.sort(key=self.rank)
        return Mono(coef, tuple(scalars), tuple(chain))


def _note_of(chain: tuple):
    return chain[0] if len(chain) == 1 else Mono(Fraction(1), (), chain)


def _chain_of(note) -> list:
    return list(note.chain) if isinstance(note, Mono) and note.coef == 1 and not note.scalars \
        and not note.den else [note]


def _combine(by_touch: dict[tuple, list], out: tuple, rank, symmetric: set) -> list:
    """The product of the components that carry output indices, as one chain."""
    if not out:
        return []
    if len(out) == 1:
        notes = by_touch.get(out, [])
        return _chain_of(notes[0]) if len(notes) == 1 else [_hadamard(notes, rank)]
    i, j = out
    both, left, right = by_touch.get((i, j), []), by_touch.get((i,), []), by_touch.get((j,), [])
    if both:
        middle = _chain_of(both[0]) if len(both) == 1 else [_hadamard(both, rank)]
        before = [Call("diag", (_hadamard(left, rank),))] if left else []
        after = [Call("diag", (_hadamard(right, rank),))] if right else []
        return before + middle + after
    if not left or not right:
        raise NoMatrixForm
    column = _chain_of(left[0]) if len(left) == 1 else [_hadamard(left, rank)]
    row = _chain_of(right[0]) if len(right) == 1 else [_hadamard(right, rank)]
    if column == row == [ONES]:
        return [Call("matrix", (Num(Fraction(1)),))]
    return column + [transpose(f, f in symmetric) for f in reversed(row)]


def _components(pieces: list, out: tuple) -> list[list]:
    """Pieces connected through summed indices (output indices do not connect)."""
    groups: list[list] = []
    index_group: dict = {}
    for p in pieces:
        linked = {index_group[i] for i in p.idx if i not in out and i in index_group}
        merged = [p]
        for g in sorted(linked, reverse=True):
            merged.extend(groups[g])
            groups[g] = []
        groups.append(merged)
        for q in merged:
            for i in q.idx:
                if i not in out:
                    index_group[i] = len(groups) - 1
    return [g for g in groups if g]


def _raise_component(pieces: list, touched: tuple, fresh, rank, symmetric: set) -> Mono:
    """One connected component: a scalar, a vector on one output index or a matrix on two.

    Where the index graph has no direct reading, products of two matrices along a summed
    index are formed first, one at a time, until it has (``((A*A).*A)*((A*A).*A)'``)."""
    while True:
        pieces = _hadamard_matrices([_Piece(p.note, p.idx, p.symmetric) for p in pieces],
                                    touched)
        try:
            return _raise_graph([_Piece(p.note, p.idx, p.symmetric) for p in pieces], touched,
                                fresh, rank, symmetric)
        except NoMatrixForm:
            pieces = _multiply_one_link(pieces, touched)


def _multiply_one_link(pieces: list, out: tuple) -> list:
    """Replace a matrix and a vector, or two matrices, that share a summed index only with
    each other by their product; NoMatrixForm if there are none."""
    count = _count(pieces, out)
    for n, p in enumerate(pieces):  # first A*x: a matrix and a vector
        for m, q in enumerate(pieces):
            if len(p.idx) != 2 or q.idx == () or len(q.idx) != 1 or len(set(p.idx)) != 2:
                continue
            (c,) = q.idx
            if c in p.idx and count[c] == 2 and c not in out:
                a = p.idx[1] if p.idx[0] == c else p.idx[0]
                product = _note_of(tuple(_chain_of(p.oriented(a)) + [q.note]))
                rest = [r for k, r in enumerate(pieces) if k not in (n, m)]
                return rest + [_Piece(product, (a,))]
    for n, p in enumerate(pieces):
        for m, q in enumerate(pieces):
            if m <= n or len(p.idx) != 2 or len(q.idx) != 2:
                continue
            shared = [c for c in p.idx if c in q.idx and count[c] == 2 and c not in out]
            if len(shared) != 1 or len(set(p.idx)) != 2 or len(set(q.idx)) != 2:
                continue
            (c,) = shared
            a = p.idx[1] if p.idx[0] == c else p.idx[0]
            b = q.idx[1] if q.idx[0] == c else q.idx[0]
            product = _note_of(tuple(_chain_of(p.oriented(a)) + _chain_of(q.oriented(c))))
            rest = [r for k, r in enumerate(pieces) if k not in (n, m)]
            return rest + [_Piece(product, (a, b)).diagonal()]
    raise NoMatrixForm


def _raise_graph(pieces: list, touched: tuple, fresh, rank, symmetric: set) -> Mono:
    count = _count(pieces, touched)
    shared = [i for i in touched if count[i] > 2]
    if shared and len(touched) == 1 and not any(p.idx == (shared[0],) for p in pieces):
        # sum_c A[i,c]*B[i,c]: the diagonal of A*B'
        (i,), b = shared, next(fresh)
        last = [p for p in pieces if i in p.idx][-1]
        last.idx = tuple(b if k == i else k for k in last.idx)
        inner = _raise_graph(pieces, (i, b), fresh, rank, symmetric)
        return Mono(inner.coef, inner.scalars, (Call("diag", (_note_of(inner.chain),)),))
    pieces = _hadamard_matrices(pieces, touched)
    pieces = _resolve_shared_indices(pieces, touched, fresh, rank)
    for p in pieces:
        if p.symmetric and len(p.idx) == 2:
            symmetric.add(p.note)
    pieces = _close_dangling(pieces, touched)
    return _chains(pieces, touched, rank)


@dataclass
class _Piece:
    """A factor in the index graph: its notation, its indices (0, 1 or 2), and whether it is a
    symmetric matrix."""
    note: object
    idx: tuple
    symmetric: bool = False

    def diagonal(self) -> _Piece:
        if len(self.idx) == 2 and self.idx[0] == self.idx[1]:
            if self.note == EYE:
                return _Piece(ONES, self.idx[:1])
            return _Piece(Call("diag", (self.note,)), self.idx[:1])
        return self

    def summed(self):
        """The sum of a vector piece's entries: tr(M) for diag(M)."""
        if isinstance(self.note, Call) and self.note.fn == "diag" and len(self.idx) == 1:
            return Call("tr", self.note.args)
        return Call("sum", (self.note,))

    def oriented(self, first: int):
        """The matrix with index ``first`` as its row index."""
        return self.note if self.idx[0] == first else transpose(self.note, self.symmetric)


def _count(pieces: list[_Piece], out: tuple) -> dict:
    count = {i: 1 for i in out}
    for p in pieces:
        for i in p.idx:
            count[i] = count.get(i, 0) + 1
    return count


def _hadamard_matrices(pieces: list[_Piece], out: tuple) -> list[_Piece]:
    """Matrices on the same two indices that other factors also carry: A .* B (or A .* B')."""
    count = _count(pieces, out)
    result: list[_Piece] = []
    for p in pieces:
        if len(p.idx) == 2 and (count[p.idx[0]] > 2 or count[p.idx[1]] > 2):
            for q in result:
                if len(q.idx) == 2 and set(q.idx) == set(p.idx):
                    diagonal = EYE in (q.note, p.note)  # A .* eye is diagonal
                    q.note = _hadamard([q.note, p.oriented(q.idx[0])])
                    q.symmetric = diagonal or (q.symmetric and p.symmetric)
                    break
            else:
                result.append(_Piece(p.note, p.idx, p.symmetric))
            continue
        result.append(p)
    return result


def _hadamard(notes: list, rank=None):
    """notes[0] .* notes[1] .* ..., with elementwise reciprocals as ./ and simpler factors
    first."""
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
    factors, den = _as_powers(factors), _as_powers(den)
    if rank is not None:
        factors.sort(key=_weight)
        den.sort(key=_weight)
    if not factors:
        factors = [ONES]
    if len(factors) == 1 and not den:
        return factors[0]
    return Hadamard(tuple(factors), tuple(den))


def _as_powers(factors: list) -> list:
    """y .* y is y.^2."""
    counts: dict = {}
    for f in factors:
        counts[f] = counts.get(f, 0) + 1
    return [f if n == 1 else Power(f, Num(Fraction(n)), True) for f, n in counts.items()]


def _resolve_shared_indices(pieces, out, fresh, rank) -> list[_Piece]:
    """Every index must end up on exactly two places (factors or the output). Vectors on an
    index are multiplied elementwise; a vector between two other factors becomes a diag."""
    while True:
        count = _count(pieces, out)
        crowded = [i for i, c in count.items() if c > 2]
        if not crowded:
            return pieces
        a = crowded[0]
        vectors = [p for p in pieces if p.idx == (a,)]
        others = [p for p in pieces if a in p.idx and p.idx != (a,)]
        structural = len(others) + (a in out)
        if not vectors or structural > 2:
            raise NoMatrixForm
        h = _hadamard([v.note for v in vectors], rank)
        pieces = [p for p in pieces if p.idx != (a,)]
        if structural <= 1:
            pieces.append(_Piece(h, (a,)))
        else:
            b = next(fresh)
            target = others[-1]
            target.idx = tuple(b if i == a else i for i in target.idx)
            pieces.append(_Piece(Call("diag", (h,)), (a, b), True))


def _close_dangling(pieces, out) -> list[_Piece]:
    """An index summed on one factor alone: a sum (vector) or a product with vector(1)."""
    count = _count(pieces, out)
    result = []
    for p in pieces:
        lone = [i for i in p.idx if count[i] == 1]
        if len(p.idx) == 1 and lone:
            result.append(_Piece(p.summed(), ()))
            continue
        result.append(p)
        for i in lone:
            result.append(_Piece(ONES, (i,)))
    return result


def _chains(pieces: list[_Piece], out: tuple, rank) -> Mono:
    scalars = [p.note for p in pieces if not p.idx]
    rest = [p for p in pieces if p.idx]
    by_index: dict = {}
    for p in rest:
        for i in p.idx:
            by_index.setdefault(i, []).append(p)
    used: set[int] = set()

    def walk(i, start_vector=None):
        """Follow a chain from an open end (an output index, or a vector at its start);
        returns ([(factor, symmetric)], the output index it ended on or None at a vector)."""
        factors = []
        if start_vector is not None:
            used.add(id(start_vector))
            factors.append((start_vector.note, False))
        while True:
            candidates = [p for p in by_index.get(i, []) if id(p) not in used]
            if not candidates:
                return factors, i
            piece = candidates[0]
            used.add(id(piece))
            if len(piece.idx) == 1:
                factors.append((piece.note, False))
                return factors, None
            factors.append((piece.oriented(i), piece.symmetric))
            i = piece.idx[1] if piece.idx[0] == i else piece.idx[0]
            if i in out:
                return factors, i

    chain: list = []
    if len(out) >= 1:
        first, end = walk(out[0])
        if len(out) == 2 and end == out[1]:
            chain = [f for f, _ in first]
        elif len(out) == 2:
            second, end2 = walk(out[1])
            if end is not None or end2 is not None:
                raise NoMatrixForm
            chain = [f for f, _ in first] + [transpose(f, sym) for f, sym in reversed(second)]
        elif end is not None:
            raise NoMatrixForm
        else:
            chain = [f for f, _ in first]
    for p in rest:  # scalar chains u'*M*v, then traces
        if id(p) not in used and len(p.idx) == 1:
            factors, _ = walk(p.idx[0], p)
            scalars.append(_scalar_chain(factors))
    for p in rest:
        if id(p) not in used:
            factors, _ = walk(p.idx[0])
            scalars.append(_trace(factors))
    return Mono(Fraction(1), tuple(scalars), tuple(chain))


def _transposes(factors) -> int:
    """How many factors are transposed (fewer read better)."""
    return sum(isinstance(f, Transpose) for f in factors)


def _reverse(factors: list[tuple]) -> list[tuple]:
    return [(transpose(f, sym), sym) for f, sym in reversed(factors)]


def _scalar_chain(factors: list[tuple]):
    """u'*M*...*v from a chain that starts and ends at vectors (u first)."""
    backwards = _reverse(factors)
    if _transposes(f for f, _ in backwards[1:-1]) < _transposes(f for f, _ in factors[1:-1]):
        factors = backwards
    factors = [(f.arg, s) if isinstance(f, Transpose) and n in (0, len(factors) - 1) else (f, s)
               for n, (f, s) in enumerate(factors)]  # the end vectors are oriented below
    (u, _), *middle, (v, _) = factors
    if u == ONES and not middle:
        return Call("sum", (v,))
    if v == ONES and not middle:
        return Call("sum", (u,))
    return Mono(Fraction(1), (), tuple([transpose(u)] + [f for f, _ in middle] + [v]))


def _trace(factors: list[tuple]):
    """tr of a closed chain, started where it reads with the fewest transposes."""
    best = None
    for seq in (factors, _reverse(factors)):
        for k in range(len(seq)):
            rotated = [f for f, _ in seq[k:] + seq[:k]]
            key = (_transposes(rotated), k)
            if best is None or key < best[0]:
                best = (key, rotated)
    rotated = [f for f in best[1] if f != EYE] or [EYE]
    if rotated == [EYE]:
        raise NoMatrixForm  # tr(eye) is a dimension; left to index notation
    return Call("tr", (Mono(Fraction(1), (), tuple(rotated)) if len(rotated) > 1 else rotated[0],))


def _children(note) -> list:
    if isinstance(note, (Sym, Num)):
        return []
    out = []
    for value in vars(note).values():
        if isinstance(value, tuple):
            out.extend(v for v in value if not isinstance(v, (str, Fraction)))
        elif value is not None and not isinstance(value, (str, Fraction, bool)):
            out.append(value)
    return out


def _names(note) -> list[str]:
    if isinstance(note, Sym):
        return [note.name]
    return [n for c in _children(note) for n in _names(c)]


def _weight(note) -> int:
    """Size of a notation tree: simpler factors are written first."""
    return 1 + sum(_weight(c) for c in _children(note))


# ----------------------------------------------------------------------------------------------
# factoring sums
# ----------------------------------------------------------------------------------------------


def scale_mono(c: Fraction, x, scalar: bool) -> Mono:
    m = mono(x, scalar)
    return Mono(m.coef * c, m.scalars, m.chain, m.den)


def factor_sum(terms: list[Mono], rank):
    """A sum of monomials, factored: common scalar factors and coefficients pulled out, then
    common right or left ends of the products (each term keeping a non-empty product).
    ``rank`` orders the terms (positive ones first)."""
    terms = [_split_den(t) for t in terms]
    if len(terms) == 1:
        return terms[0]
    grouped = _group(terms, rank)
    if len(grouped) < len(terms):
        return factor_sum(grouped, rank)
    scalar_valued = not any(t.chain for t in terms)
    common_coef = _common_coefficient([t.coef for t in terms])
    common = _common_multiset([list(t.scalars) for t in terms])
    common_den = _common_multiset([list(t.den) for t in terms])
    if common_coef != 1 or common or common_den:
        inner = [Mono(t.coef / common_coef, _without(t.scalars, common), t.chain,
                      _without(t.den, common_den)) for t in terms]
        if all(t.scalars or t.chain for t in inner):
            factored = factor_sum(inner, rank)
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
        merged = _merge_elementwise(terms, rank)
        if merged is not None:
            return merged
    ordered = sorted(terms, key=lambda t: (t.coef < 0, _transposes(t.chain), rank(t)))
    return Sum(tuple(ordered))


def _group(terms: list[Mono], rank) -> list[Mono]:
    """Terms with the same scalar factors share them (a*A*x + a*B*x = a*(A*x + B*x)), then
    terms with the same product share it (a*A*x + b*A*x = (a + b)*A*x)."""
    def scalar_key(t):
        return tuple(sorted(map(repr, t.scalars))), tuple(sorted(map(repr, t.den)))

    def by_scalars(group):
        inner = factor_sum([Mono(t.coef, (), t.chain) for t in group], rank)
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


def _merge_elementwise(terms: list[Mono], rank):
    """diag(a) - diag(b) is diag(a - b); a .* c + b .* c is (a + b) .* c."""
    lone = [_lone(t) for t in terms]
    if all(isinstance(f, Call) and f.fn == "diag" for f in lone):
        inner = factor_sum([Mono(t.coef, (), f.args) for t, f in zip(terms, lone)], rank)
        return Mono(Fraction(1), (), (Call("diag", (inner,)),))
    parts = [(list(f.factors), list(f.den)) if isinstance(f, Hadamard) else ([f], [])
             for f in lone]
    common = _common_multiset([p[0] for p in parts])
    common_den = _common_multiset([p[1] for p in parts])
    if not (common or common_den) or len(common) == min(len(p[0]) for p in parts):
        return None  # every term keeps a factor of its own (no ones of unknown shape)
    rest = []
    for t, (factors, den) in zip(terms, parts):
        left = _hadamard(list(_without(tuple(factors), common)), rank)
        below = list(_without(tuple(den), common_den))
        note = _hadamard([left] + [Power(d, Num(Fraction(-1)), True) for d in below], rank)
        rest.append(Mono(t.coef, (), (note,)))
    inner = factor_sum(rest, rank)
    factors = common + [inner]
    return Mono(Fraction(1), (), (_hadamard(factors + [Power(d, Num(Fraction(-1)), True)
                                                       for d in common_den], rank),))


def _split_den(t: Mono) -> Mono:
    """Scalar powers with negative integer exponents move to the denominator."""
    scalars, den = [], list(t.den)
    for f in t.scalars:
        if isinstance(f, Power) and not f.elementwise and isinstance(f.exponent, Num) \
                and f.exponent.value < 0 and f.exponent.value.denominator == 1:
            e = -f.exponent.value
            den.append(f.base if e == 1 else Power(f.base, Num(e), False))
        else:
            scalars.append(f)
    return Mono(t.coef, tuple(scalars), t.chain, tuple(den))


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
    first, *others = lists
    common = []
    pools = [list(o) for o in others]
    for f in first:
        if all(f in pool for pool in pools):
            common.append(f)
            for pool in pools:
                pool.remove(f)
    return common


def _without(factors: tuple, remove: list) -> tuple:
    out = list(factors)
    for f in remove:
        out.remove(f)
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


# ----------------------------------------------------------------------------------------------
# index notation
# ----------------------------------------------------------------------------------------------


def index_form(e: Expr, raiser: _Raiser) -> IndexForm:
    """``D[i, j, ...] = ...``: entry by entry, with matrix notation for the parts that have
    it (``inv(X)[i,k]``) and indices summed where they repeat."""
    out_names = tuple(OUT_NAMES[: e.ndim])
    summed = iter(list(SUM_NAMES) + [f"s{n}" for n in range(10_000)])
    note = _index_note(e, out_names, raiser, summed, top=True)
    terms = note.terms if isinstance(note, Sum) else (mono(note, False),)
    return IndexForm(out_names, tuple(_ordered_indices(t, out_names) for t in terms))


def _index_note(e: Expr, labels: tuple, raiser: _Raiser, summed, top: bool = False):
    """The notation of the entry ``e[labels]``."""
    if e.op == "delta":
        return Indexed(None, labels)
    if not top and e.ndim <= 2:
        try:
            note = raiser.raise_(e)
            return Indexed(note, labels) if labels else note
        except NoMatrixForm:
            pass
    if e.op == "sum":
        return Sum(tuple(scale_mono(c, _index_note(t, labels, raiser, summed), False)
                         for c, t in zip(e.data, e.args)))
    if e.op == "einsum":
        factor_idx, out = e.data
        names = dict(zip(out, labels))
        for idx in factor_idx:
            for i in idx:
                if i not in names:
                    names[i] = next(summed)
        scalars, indexed = [], []
        for x, idx in zip(e.args, factor_idx):
            note = _index_note(x, tuple(names[i] for i in idx), raiser, summed)
            (indexed if idx else scalars).append(note)
        return Mono(Fraction(1), tuple(scalars), tuple(indexed))
    if e.op == "delta":
        return Indexed(None, labels)
    if e.op in ("ones", "zero"):
        return Num(Fraction(1 if e.op == "ones" else 0))
    if e.op == "pow":
        base, exponent = e.args
        return Power(_index_note(base, labels, raiser, summed),
                     _index_note(exponent, labels if exponent.ndim else (), raiser, summed),
                     False)
    if e.op in ("exp", "log", "sin", "cos", "tan", "tanh", "abs", "sign", "relu"):
        return Call(e.op, (_index_note(e.args[0], labels, raiser, summed),))
    raise NoMatrixForm


def _ordered_indices(term: Mono, out_names: tuple) -> Mono:
    """Factors in the order of the output indices they carry: A[i,k]*B[l,j]."""
    first = {name: k for k, name in enumerate(out_names)}

    def position(f):
        indices = f.indices if isinstance(f, Indexed) else ()
        return min((first.get(i, len(first)) for i in indices), default=len(first))

    return Mono(term.coef, term.scalars, tuple(sorted(term.chain, key=position)), term.den)


# ----------------------------------------------------------------------------------------------
# naming a subexpression
# ----------------------------------------------------------------------------------------------


def abbreviate(note, whole, symbol: str):
    """``note`` with the factors of the scalar ``whole`` written as ``symbol`` wherever a
    product contains all of them (``1/2*f*(...)`` for the Gaussian); None if nowhere."""
    if _weight(whole) < 6:
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
