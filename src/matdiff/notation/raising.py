"""Raising: from index contractions back to matrix notation.

A contraction's indices form a graph: an index on exactly two factors is an edge. Chains of
edges are matrix products (a factor entered from its column side is transposed), closed chains
are traces, a vector on an index shared with two other factors is a ``diag``, vectors on one
index are a Hadamard product, and parts joined only through output indices meet elementwise.
Sums go to :mod:`matdiff.notation.factor`; the result is a :mod:`matdiff.notation.tree`
tree for :mod:`matdiff.notation.render`. An expression with more than two free indices, or one
whose index graph has no matrix form, is raised to index notation instead (``IndexForm``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

from .. import budget
from ..core.ir import PRIMITIVES, Expr, index_counts, relabel
from ..core.simplify import is_symmetric
from ..errors import MatdiffError
from .factor import factor_sum, positive_power, scale_mono, split_den
from .tree import (
    EYE,
    MATRIX_ONES,
    ONES,
    Call,
    Indexed,
    IndexForm,
    Mono,
    Num,
    Power,
    Sum,
    Sym,
    Transpose,
    hadamard,
    mono,
    name_set,
    transpose,
    transposes,
    weight,
)


class NoMatrixForm(Exception):
    """The index graph of a contraction has no matrix-notation form."""


# ----------------------------------------------------------------------------------------------
# raising
# ----------------------------------------------------------------------------------------------

OUT_NAMES = "ijklpqrstuvw"
SUM_NAMES = "abcdefghmnoxyz"


def raise_expr(e: Expr, reading_order: dict[str, int] | None = None,
               shapes: dict | None = None):
    """The notation tree of a simplified IR expression (matrix notation where one exists).

    ``reading_order`` ranks variable names (by first appearance in the input, say): terms are
    listed, and the signs of differences chosen, to read like the input (``x - m``, not
    ``m - x``). ``shapes``, where given, receives the number of axes of each note raised from
    an IR node.
    """
    return Raiser(reading_order)(e, shapes)


class Raiser:
    """``raise_expr`` for many expressions that share parts (a result, its differential, the
    same result with parts named): each IR node is raised once, and each call answers exactly
    as a fresh ``raise_expr`` would (its ``shapes`` and symmetric notes are those of the nodes
    this expression reaches)."""

    def __init__(self, reading_order: dict[str, int] | None = None):
        self._raiser = _Raiser(reading_order or {})

    def __call__(self, e: Expr, shapes: dict | None = None):
        raiser = self._raiser
        raiser.begin({} if shapes is None else shapes)
        try:
            if e.ndim <= 2:
                try:
                    return raiser.raise_(e)
                except NoMatrixForm:
                    pass
            return index_form(e, raiser)
        except NoMatrixForm:
            raise MatdiffError("this derivative has neither a matrix nor an index-notation "
                               "form matdiff can print yet", hint="its value is still "
                               "available through numpy() and check()") from None


def matrix_raiser(reading_order: dict[str, int] | None = None, sized_ones: bool = False):
    """A function from an IR expression of at most two axes to its matrix notation (raising
    NoMatrixForm where it has none), sharing its work across calls. With ``sized_ones`` the
    ones vectors state their size (``vector(1, n)``): Kronecker operands, whose sizes the
    surrounding product does not imply."""
    raiser = _Raiser(reading_order or {})
    raiser.sized_ones = sized_ones
    return raiser.raise_


class _SymmetricNotes:
    """The notes of symmetric matrices, as a set; whether a raised node is symmetric is only
    worked out when its note is asked about (for a long sum that is a simplification of all
    its terms transposed, and most notes are never asked about)."""

    def __init__(self):
        self._known: set = set()
        self._offered: dict = {}  # note -> the nodes it was raised from, not yet looked at

    def offer(self, note, e: Expr) -> None:
        self._offered.setdefault(note, []).append(e)

    def add(self, note) -> None:
        self._known.add(note)

    def __contains__(self, note) -> bool:
        if note in self._known:
            return True
        offered = self._offered.pop(note, ())
        if any(is_symmetric(e) for e in offered):
            self._known.add(note)
            return True
        return False


class _Raiser:
    def __init__(self, reading_order: dict[str, int]):
        self.memo: dict[Expr, object] = {}
        self.reading_order = reading_order
        # what raising each node asked to raise, so that a node raised in an earlier call
        # contributes the same shapes and symmetric notes as if it were raised again
        self.parts: dict[Expr, list[Expr]] = {}
        self._asking: list[list[Expr]] = []
        self.sized_ones = False
        self.begin({})

    def begin(self, shapes: dict) -> None:
        """A new expression: shapes and symmetric notes start empty, as in a fresh raiser."""
        self.symmetric = _SymmetricNotes()  # their transpose is them
        self.shapes = shapes         # note -> number of axes, for names.py
        self._reached: set = set()

    def raise_(self, e: Expr):
        if self._asking:
            self._asking[-1].append(e)
        done = self.memo.get(e)
        if done is None:
            budget.check_time("writing the result in matrix notation")
            self._asking.append([])
            try:
                done = self._raise(e)
            finally:
                self.parts[e] = self._asking.pop()
            self.memo[e] = done
            self._reach(e, done)
        elif e not in self._reached:
            self._replay(e)
        return done

    def _reach(self, e: Expr, note) -> None:
        self._reached.add(e)
        self.shapes[note] = e.ndim
        self.symmetric.offer(note, e)

    def _replay(self, e: Expr) -> None:
        """Record what raising ``e`` again would (children first, as raising does)."""
        stack = [(e, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if node in self.memo and node not in self._reached:
                    self._reach(node, self.memo[node])
                continue
            if node in self._reached:
                continue
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(self.parts.get(node, ())))

    def _raise(self, e: Expr):
        op = e.op
        if op == "num":
            return Num(e.data)
        if op in ("const", "dim"):
            return Sym(e.data)
        if op in ("var", "named"):  # "named": a part that names.py named
            return Sym(e.data[0] if op == "var" else e.data)
        if op == "ones":
            return Call("vector", (Num(Fraction(1)), Sym(str(e.shape[0])))) \
                if self.sized_ones else ONES
        if op == "delta":
            return EYE
        if op == "zero":
            return Num(Fraction(0)) if not e.shape else Call(
                "vector" if e.ndim == 1 else "matrix", (Num(Fraction(0)),))
        if op == "sum":
            ones = {0: None, 1: ONES, 2: MATRIX_ONES}[e.ndim]
            return factor_sum([scale_mono(c, self.raise_(t), not t.ndim)
                               for c, t in zip(e.data, e.args)], self.rank, ones)
        if op == "einsum":
            return self._contraction(e)
        if op == "pow":
            return self._power(e)
        if op == "merge":
            return self._merged(e)
        if op == "mpow":
            return Power(self.raise_(e.args[0]), Num(e.args[1].data), False)
        if e.ndim > 2 or any(a.ndim > 2 for a in e.args):
            raise NoMatrixForm
        rank = e.args[0].ndim if op in ("abs", "norm1", "norm2") else 0
        return Call(op, tuple(self.raise_(a) for a in e.args), rank)

    def _merged(self, e: Expr):
        """vec(X), or a Kronecker form of a tensor with merged axes."""
        from .kron import NoKroneckerForm, kron_form  # kron raises its operands through here

        (x,) = e.args
        if e.data == (2,):
            return Call("vec", (self.raise_(x),))
        if len(e.data) != 2 or max(e.data) > 2:
            raise NoMatrixForm
        try:
            return kron_form(x, e.data[0], e.data[1], self.raise_)
        except NoKroneckerForm:
            raise NoMatrixForm from None

    def _power(self, e: Expr):
        base, exponent = e.args
        b, x = self.raise_(base), self.raise_(exponent)
        if exponent.op == "num" and not base.ndim and exponent.data > 0:
            return positive_power(b, exponent.data)
        if exponent.op == "num" and not base.ndim:
            return split_den(Mono(Fraction(1), (Power(b, x, False),)))  # 1/a, 1/sqrt(a)
        if exponent.op == "num" and exponent.data < 0 and base.ndim == 1:
            return hadamard([Power(b, x, True)])  # vector(1)./x
        return Power(b, x, bool(base.ndim))

    # reading order ----------------------------------------------------------------------------
    def rank(self, note) -> tuple:
        """Where a term's first variable stands in the input; constants last."""
        ranks = [self.reading_order.get(n, len(self.reading_order)) for n in name_set(note)]
        return (min(ranks) if ranks else len(self.reading_order) + 1, weight(note))

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
            return note, Fraction(1)
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
        pulled, pulled_den = [], []  # scalar factors of array factors: (c*A)*B is c*A*B
        for x, idx in zip(e.args, factor_idx):
            note, c = self.prefer_positive(self.raise_(x))
            coef *= c
            if idx and isinstance(note, Mono) and note.chain and (note.scalars or note.den):
                pulled += note.scalars
                pulled_den += note.den
                note = _note_of(note.chain)
            pieces.append(_Piece(note, idx, is_symmetric(x)).diagonal())
        fresh = itertools.count(1 + max([i for p in pieces for i in p.idx] + list(out),
                                        default=-1))
        scalars: list = []
        by_touch: dict[tuple, list] = {}
        for component in _components(pieces, out):
            touched = tuple(i for i in out if any(i in p.idx for p in component))
            m = _raise_component(component, touched, fresh, self.rank, self.symmetric)
            coef *= m.coef
            scalars.extend(m.scalars)  # a component without output indices is all scalars
            if touched:
                by_touch.setdefault(touched, []).append(_note_of(m.chain))
        chain = _combine(by_touch, out, self.rank, self.symmetric)
        chain = [f for f in chain if f != EYE] or ([EYE] if chain else [])
        scalars += pulled
        if not chain and len(scalars) == 1 and isinstance(scalars[0], Mono) and coef == 1 \
                and not pulled_den:
            return scalars[0]
        scalars = _scalar_powers(scalars)
        scalars.sort(key=self.rank)
        if coef < 0:
            coef, chain = self._constant_first(coef, chain)
        return split_den(Mono(coef, tuple(scalars), tuple(chain), tuple(pulled_den)))

    def _constant_first(self, coef: Fraction, chain: list) -> tuple[Fraction, list]:
        """-(f(x) - 1)*A is written (1 - f(x))*A."""
        for n, f in enumerate(chain):
            in_diag = isinstance(f, Call) and f.fn == "diag" and isinstance(f.args[0], Sum)
            s = f.args[0] if in_diag else f
            if isinstance(s, Sum):
                negative = [t for t in s.terms if t.coef < 0]
                if len(negative) == 1 and not name_set(negative[0]):
                    flipped = self.factor_sum([Mono(-t.coef, t.scalars, t.chain, t.den)
                                               for t in s.terms])
                    flipped = Call("diag", (flipped,)) if in_diag else flipped
                    return -coef, chain[:n] + [flipped] + chain[n + 1:]
        return coef, chain


def _scalar_powers(scalars: list) -> list:
    """Equal scalar factors as one power: (u'*v)*(u'*v) is (u'*v)^2."""
    counts: dict = {}
    for f in scalars:
        counts[f] = counts.get(f, 0) + 1
    return [f if n == 1 else Power(f, Num(Fraction(n)), False) for f, n in counts.items()]


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
        return _chain_of(notes[0]) if len(notes) == 1 else [hadamard(notes, rank)]
    i, j = out
    both, left, right = by_touch.get((i, j), []), by_touch.get((i,), []), by_touch.get((j,), [])
    if both:
        middle = _chain_of(both[0]) if len(both) == 1 else [hadamard(both, rank, matrix=True)]
        before = [Call("diag", (hadamard(left, rank),))] if left else []
        after = [Call("diag", (hadamard(right, rank),))] if right else []
        return before + middle + after
    if not left or not right:
        raise NoMatrixForm
    column = _chain_of(left[0]) if len(left) == 1 else [hadamard(left, rank)]
    row = _chain_of(right[0]) if len(right) == 1 else [hadamard(right, rank)]
    if column == row == [ONES]:
        return [MATRIX_ONES]
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
    index are formed first, one at a time, until it has (``((A*A).*A)*((A*A).*A)'``). An
    index only one matrix carries is closed with vector(1) first, so that G[a,d] summed over
    d is the vector G*vector(1) on a, ready to meet the other vectors on a."""
    while True:
        pieces = _hadamard_matrices([_Piece(p.note, p.idx, p.symmetric) for p in pieces],
                                    touched)
        pieces = _close_dangling(pieces, touched)
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
            if len(p.idx) != 2 or len(q.idx) != 1 or len(set(p.idx)) != 2:
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
    for c in count:  # A[a,c]*v[c]*B[b,c]: the product A*diag(v)*B' (or A*v alone)
        on_c = [p for p in pieces if c in p.idx]
        matrices = [p for p in on_c if len(p.idx) == 2 and len(set(p.idx)) == 2]
        vectors = [p for p in on_c if p.idx == (c,)]
        if c in out or len(matrices) not in (1, 2) or not vectors or \
                len(matrices) + len(vectors) != len(on_c):
            continue
        if len(matrices) == 1:  # A[a,c]*u[c]*v[c]: the vector A*(u.*v)
            (p,) = matrices
            a = p.idx[1] if p.idx[0] == c else p.idx[0]
            product = _note_of(tuple(_chain_of(p.oriented(a))
                                     + [hadamard([v.note for v in vectors])]))
            rest = [r for r in pieces if all(r is not o for o in on_c)]
            return rest + [_Piece(product, (a,))]
        p, q = matrices
        a = p.idx[1] if p.idx[0] == c else p.idx[0]
        b = q.idx[1] if q.idx[0] == c else q.idx[0]
        middle = Call("diag", (hadamard([v.note for v in vectors]),))
        product = _note_of(tuple(_chain_of(p.oriented(a)) + [middle]
                                 + _chain_of(q.oriented(c))))
        rest = [r for r in pieces if all(r is not o for o in on_c)]
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
    return index_counts((p.idx for p in pieces), out)


def _hadamard_matrices(pieces: list[_Piece], out: tuple) -> list[_Piece]:
    """Matrices on the same two indices that other factors also carry: A .* B (or A .* B')."""
    count = _count(pieces, out)
    result: list[_Piece] = []
    for p in pieces:
        if len(p.idx) == 2 and (count[p.idx[0]] > 2 or count[p.idx[1]] > 2):
            for q in result:
                if len(q.idx) == 2 and set(q.idx) == set(p.idx):
                    diagonal = EYE in (q.note, p.note)  # A .* eye is diagonal
                    q.note = hadamard([q.note, p.oriented(q.idx[0])], matrix=True)
                    q.symmetric = diagonal or (q.symmetric and p.symmetric)
                    break
            else:
                result.append(_Piece(p.note, p.idx, p.symmetric))
            continue
        result.append(p)
    return result


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
        h = hadamard([v.note for v in vectors], rank)
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
        if len(p.idx) == 2 and len(lone) == 2 and lone[0] != lone[1]:
            result.append(_Piece(Call("sum", (p.note,)), ()))  # sum(X), not 1'*X*1
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


def _reverse(factors: list[tuple]) -> list[tuple]:
    return [(transpose(f, sym), sym) for f, sym in reversed(factors)]


def _scalar_chain(factors: list[tuple]):
    """u'*M*...*v from a chain that starts and ends at vectors (u first)."""
    backwards = _reverse(factors)
    if transposes(f for f, _ in backwards[1:-1]) < transposes(f for f, _ in factors[1:-1]):
        factors = backwards
    factors = [(f.arg, s) if isinstance(f, Transpose) and n in (0, len(factors) - 1) else (f, s)
               for n, (f, s) in enumerate(factors)]  # the end vectors are oriented below
    (u, _), *middle, (v, _) = factors
    if u == ONES and not middle:
        return Call("sum", (v,))
    if v == ONES and not middle:
        return Call("sum", (u,))
    if u == v == ONES and len(middle) == 1:
        # sum(M), not vector(1)'*M*vector(1): the ones of two sizes would read as one, and a
        # sum of such terms would share them as if M and M' had one shape
        return Call("sum", (middle[0][0],))
    return Mono(Fraction(1), (), tuple([transpose(u)] + [f for f, _ in middle] + [v]))


def _trace(factors: list[tuple]):
    """tr of a closed chain, started where it reads with the fewest transposes."""
    best = None
    for seq in (factors, _reverse(factors)):
        for k in range(len(seq)):
            rotated = [f for f, _ in seq[k:] + seq[:k]]
            key = (transposes(rotated), k)
            if best is None or key < best[0]:
                best = (key, rotated)
    rotated = [f for f in best[1] if f != EYE] or [EYE]
    if rotated == [EYE]:
        raise NoMatrixForm  # tr(eye) is a dimension; left to index notation
    return Call("tr", (Mono(Fraction(1), (), tuple(rotated)) if len(rotated) > 1 else rotated[0],))


# ----------------------------------------------------------------------------------------------
# index notation
# ----------------------------------------------------------------------------------------------


def index_form(e: Expr, raiser: _Raiser) -> IndexForm:
    """``D[i, j, ...] = ...``: entry by entry, with matrix notation for the parts that have
    it (``inv(X)[i,k]``) and indices summed where they repeat."""
    out_names = tuple(OUT_NAMES[: e.ndim])
    summed = itertools.chain(SUM_NAMES, (f"s{n}" for n in itertools.count()))
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
        factor_idx = e.data[0]
        label_of = relabel(e, labels, summed)
        scalars, indexed = [], []
        for x, idx in zip(e.args, factor_idx):
            note = _index_note(x, tuple(label_of[i] for i in idx), raiser, summed)
            (indexed if idx else scalars).append(note)
        return Mono(Fraction(1), tuple(scalars), tuple(indexed))
    if e.op == "merge":  # each merged axis is a pair (or more) of summed indices
        inner_labels, links = [], []
        for label, g in zip(labels, e.data):
            if g == 1:
                inner_labels.append(label)
                continue
            parts = tuple(next(summed) for _ in range(g))
            inner_labels += parts
            links.append(Indexed(None, (label, f"({','.join(parts)})")))
        inner = mono(_index_note(e.args[0], tuple(inner_labels), raiser, summed), False)
        return Mono(inner.coef, inner.scalars, tuple(links) + inner.chain, inner.den)
    if e.op == "delta":
        return Indexed(None, labels)
    if e.op in ("ones", "zero"):
        return Num(Fraction(1 if e.op == "ones" else 0))
    if e.op == "pow":
        base, exponent = e.args
        return Power(_index_note(base, labels, raiser, summed),
                     _index_note(exponent, labels if exponent.ndim else (), raiser, summed),
                     False)
    if e.op in PRIMITIVES and PRIMITIVES[e.op].elementwise:  # pow was handled above
        return Call(e.op, (_index_note(e.args[0], labels, raiser, summed),))
    raise NoMatrixForm


def _ordered_indices(term: Mono, out_names: tuple) -> Mono:
    """Factors in the order of the output indices they carry: A[i,k]*B[l,j]."""
    first = {name: k for k, name in enumerate(out_names)}

    def position(f):
        indices = f.indices if isinstance(f, Indexed) else ()
        return min((first.get(i, len(first)) for i in indices), default=len(first))

    return Mono(term.coef, term.scalars, tuple(sorted(term.chain, key=position)), term.den)


def raise_index_form(e: Expr, reading_order: dict[str, int] | None = None) -> IndexForm:
    """Index notation for ``e`` whatever its rank (the third view of a linear map)."""
    try:
        return index_form(e, _Raiser(reading_order or {}))
    except NoMatrixForm:
        raise MatdiffError("this derivative has no index-notation form matdiff can print yet",
                           hint="its value is still available through numpy()") from None
