"""Kronecker forms: a tensor read as a matrix whose rows and columns are merged axes.

``J[(i, j), (k, l)] = D[i, j, k, l]``, each pair merged column-major (i runs fastest, as vec
stacks columns), is the matrix of d vec(F) = J d vec(X). Each term of D is a contraction; its
factors fall into components joined by summed indices, and each component carries some of the
four output indices. That index structure decides the matrix form:

* components on {i, k} and on {j, l} alone: ``A[i,k]*B[j,l]`` is ``kron(B, A)`` (the second
  operand's index runs fastest: kron(B, A)[(i, j), (k, l)] = B[j, l]*A[i, k]);
* on {i, l} and {j, k}: the same with the columns of X swapped, ``kron(B, A)*K`` for the
  commutation matrix K = commutation(n, p) of an n×p variable; rows swapped similarly;
* a component on both row indices only (an entry of F times the rest) is a row scaling
  ``diag(vec(R))*...``, on both column indices only a column scaling;
* components on the row indices and on the column indices alone: ``vec(R)*vec(C)'``;
* a lone identity factor delta(i, k) makes i and k one index, so another factor may carry
  either (``A[i, l]*delta(i, k)`` is ``A[k, l]*delta(i, k)``, a column scaling).

Vectors have one index and a scalar none; the same reading covers them (``kron(a', eye(n))``).
Terms with equal left factors are summed in their right operand, and then the other way round.
What fits none of these has no Kronecker form: :class:`NoKroneckerForm` says why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from fractions import Fraction

from ..core import ir
from ..core.ir import Dim, Expr
from ..core.simplify import simplify
from .tree import EYE, Call, IndexForm, Mono, Sum, Sym
from .tree import transpose as transposed_note


class NoKroneckerForm(Exception):
    """The tensor has no exact form as a sum of products of kron, commutation and diag(vec)
    matrices; ``str(err)`` says why, in one line."""


@dataclass(frozen=True)
class _Reading:
    """One term read as diag(vec(left)) * K_rows * kron(slow, fast) * K_cols * diag(vec(right))
    (kind "kron"), or vec(left) * vec(fast)' (kind "outer"); operands are IR expressions."""
    kind: str
    left: Expr | None
    k_rows: tuple[Dim, Dim] | None
    slow: Expr | None
    slow_row: bool              # the slow operand is a row vector (its row side is missing)
    fast: Expr
    k_cols: tuple[Dim, Dim] | None
    right: Expr | None


def kron_form(d: Expr, nrow: int, ncol: int, raise_matrix) -> object:
    """The notation of the matrix with rows merged from d's first ``nrow`` axes and columns
    from the other ``ncol`` (each at most two). ``raise_matrix`` raises an IR expression of at
    most two axes to matrix notation (raising's NoMatrixForm where it has none)."""
    if d.op == "zero":
        raise NoKroneckerForm("the derivative is zero, and the notation cannot state the size "
                              "of a zero matrix yet")
    terms = list(zip(d.data, d.args)) if d.op == "sum" else [(Fraction(1), d)]
    readings = [_read_term(c, t, nrow, ncol) for c, t in terms]
    groups = _grouped(readings)
    if not groups:
        raise NoKroneckerForm("the derivative is zero, and the notation cannot state the size "
                              "of a zero matrix yet")
    notes = [_note(r, raise_matrix, d.shape[:nrow], d.shape[nrow:]) for r in groups]
    return notes[0] if len(notes) == 1 else Sum(tuple(notes))


# ----------------------------------------------------------------------------------------------
# reading one term
# ----------------------------------------------------------------------------------------------

def _read_term(coef: Fraction, term: Expr, nrow: int, ncol: int) -> _Reading:
    if term.op == "merge" and term.ndim > 2:
        raise NoKroneckerForm("the derivative has merged axes of its own (of a kron or vec "
                              "in the expression), beyond two-factor Kronecker products")
    if term.op == "einsum":
        factors, out = list(zip(term.args, term.data[0])), term.data[1]
    elif term.op == "delta" or term.ndim <= 2:
        factors, out = [(term, tuple(range(term.ndim)))], tuple(range(term.ndim))
    else:
        raise NoKroneckerForm(f"a term ({term.op}) has {term.ndim} axes but is no product "
                              "of matrices")
    if any(x.ndim > 2 for x, _ in factors):
        raise NoKroneckerForm("a factor has more than two axes (a derivative with respect to "
                              "a matrix inside another function)")
    if coef != 1:
        factors = factors + [(ir.num(coef), ())]
    rows, cols = out[:nrow], out[nrow:]
    components = _components(factors, out)
    for swap_rows, swap_cols in ((False, False), (True, False), (False, True), (True, True)):
        if (swap_rows and nrow < 2) or (swap_cols and ncol < 2):
            continue
        reading = _as_kron(components, rows, cols, swap_rows, swap_cols, term.shape, nrow)
        if reading is not None:
            return reading
    reading = _as_outer(components, rows, cols)
    if reading is not None:
        return reading
    raise NoKroneckerForm("an entry couples the indices of F and X across both Kronecker "
                          "factors (no product of kron, commutation and diag(vec) matrices "
                          "has this index structure)")


def _components(factors: list, out: tuple) -> list[tuple[list, frozenset]]:
    """Factors joined by summed indices, each group with the output indices it carries."""
    parent = list(range(len(factors)))

    def find(n: int) -> int:
        while parent[n] != n:
            n = parent[n]
        return n

    first: dict = {}
    for n, (_, idx) in enumerate(factors):
        for i in idx:
            if i in out:
                continue
            if i in first:
                parent[find(n)] = find(first[i])
            else:
                first[i] = n
    groups: dict[int, list] = {}
    for n, f in enumerate(factors):
        groups.setdefault(find(n), []).append(f)
    return [(fs, frozenset(i for _, idx in fs for i in idx if i in out))
            for fs in groups.values()]


def _pair(indices: tuple, swap: bool) -> tuple:
    """(fast, slow) of a merged axis; None where the side has fewer indices."""
    padded = tuple(indices) + (None,) * (2 - len(indices))
    return padded[::-1] if swap else padded


def _contraction(factors: list, out: tuple) -> Expr | None:
    """The simplified contraction of ``factors`` onto ``out`` (None when an output index is
    on no factor: that part has no form of its own)."""
    out = tuple(i for i in out if i is not None)
    carried = {i for _, idx in factors for i in idx}
    if any(i not in carried for i in out):
        return None
    if not factors:
        return ir.num(1)
    return simplify(ir.einsum(factors, out))


def _as_kron(components, rows, cols, swap_rows, swap_cols, shape, nrow) -> _Reading | None:
    row_fast, row_slow = _pair(rows, swap_rows)
    col_fast, col_slow = _pair(cols, swap_cols)
    fast_set = {row_fast, col_fast} - {None}
    slow_set = {row_slow, col_slow} - {None}
    places = {"fast": fast_set, "slow": slow_set, "left": set(rows), "right": set(cols)}
    placed: dict[str, list] = {place: [] for place in places}
    partners = _identified(components)
    for factors, touched in components:
        for renamed, moved in _renamings(factors, touched, partners):
            place = next((p for p, allowed in places.items() if moved <= allowed), None)
            if place is not None:
                placed[place] += renamed
                break
        else:
            return None
    fast, slow, left, right = (placed[p] for p in places)
    fast_e = _contraction(fast, (row_fast, col_fast))
    slow_e = _contraction(slow, (row_slow, col_slow))
    if fast_e is None or slow_e is None:
        return None
    k_rows = (shape[1], shape[0]) if swap_rows else None
    k_cols = (shape[nrow], shape[nrow + 1]) if swap_cols else None
    return _Reading("kron", _contraction(left, rows) if left else None, k_rows, slow_e,
                    row_slow is None and col_slow is not None, fast_e, k_cols,
                    _contraction(right, cols) if right else None)


def _identified(components) -> dict:
    """Output indices that a lone identity factor delta(a, b) makes equal: a term is zero
    unless a = b, so another factor may carry either."""
    partners: dict = {}
    for factors, touched in components:
        if len(factors) == 1 and factors[0][0].op == "delta" and len(touched) == 2:
            a, b = factors[0][1]
            partners.setdefault(a, []).append(b)
            partners.setdefault(b, []).append(a)
    return partners


def _renamings(factors: list, touched: frozenset, partners: dict):
    """The component as it is, then with its output indices replaced by identified ones
    (A[i, l]*delta(i, k) is A[k, l]*delta(i, k)): (factors, output indices carried)."""
    yield factors, touched
    if len(factors) == 1 and factors[0][0].op == "delta":
        return
    movable = [i for i in sorted(touched) if i in partners]
    for choice in itertools.islice(itertools.product(*([i] + partners[i] for i in movable)),
                                   1, 64):
        rename = dict(zip(movable, choice))
        renamed = [(x, tuple(rename.get(i, i) for i in idx)) for x, idx in factors]
        yield renamed, frozenset(rename.get(i, i) for i in touched)


def _as_outer(components, rows, cols) -> _Reading | None:
    row_part, col_part = [], []
    for factors, touched in components:
        if touched and touched <= set(rows):
            row_part += factors
        elif touched <= set(cols):
            col_part += factors
        else:
            return None
    left, right = _contraction(row_part, rows), _contraction(col_part, cols)
    if left is None or right is None:
        return None
    return _Reading("outer", left, None, None, False, right, None, None)


# ----------------------------------------------------------------------------------------------
# summing and printing
# ----------------------------------------------------------------------------------------------

def _grouped(readings: list[_Reading]) -> list[_Reading]:
    """Terms that differ only in the fast operand are one term with the operands summed; then
    the same for the slow operand. Operands that sum to zero drop out."""
    by_fast = _summed(readings, "fast", lambda r: (r.kind, r.left, r.k_rows, r.slow,
                                                   r.slow_row, r.k_cols, r.right))
    krons = [r for r in by_fast if r.kind == "kron"]
    return _summed(krons, "slow", lambda r: (r.left, r.k_rows, r.slow_row, r.fast, r.k_cols,
                                             r.right)) + [r for r in by_fast if r.kind != "kron"]


def _summed(readings: list[_Reading], part: str, key) -> list[_Reading]:
    groups: dict[tuple, list[_Reading]] = {}
    for r in readings:
        groups.setdefault(key(r), []).append(r)
    out = []
    for members in groups.values():
        total = _total([getattr(m, part) for m in members])
        if total.op != "zero":
            out.append(replace(members[0], **{part: total}))
    return out


def _total(parts: list[Expr]) -> Expr:
    return parts[0] if len(parts) == 1 else simplify(ir.add([(1, p) for p in parts]))


def _note(r: _Reading, raise_matrix, row_shape: tuple, col_shape: tuple):
    coef = Fraction(1)

    def operand(e: Expr):
        note = raise_matrix(e)
        if isinstance(note, IndexForm):
            raise NoKroneckerForm("a Kronecker operand has no matrix form")
        return sized(note, e.shape)

    if r.kind == "outer":  # vec(R)*vec(C)'
        left, c = _positive(operand(r.left))
        coef *= c
        right, c = _positive(operand(r.fast))
        coef *= c
        row = transposed_note(right if len(col_shape) < 2 else Call("vec", (right,)))
        if not row_shape:
            return Mono(coef, (left,), (row,))
        column = left if len(row_shape) < 2 else Call("vec", (left,))
        return Mono(coef, (), (column, row))
    slow, fast = operand(r.slow), operand(r.fast)
    fast, c = _positive(fast)
    coef *= c
    slow, c = _positive(slow)
    coef *= c
    if r.slow_row:
        slow = transposed_note(slow)
    chain: list = []
    if r.left is not None:
        chain.append(Call("diag", (Call("vec", (operand(r.left),)),)))
    if r.k_rows is not None:
        chain.append(_commutation(*r.k_rows))
    identity = r.slow.op == "delta" and r.fast.op == "delta"
    if not identity:
        chain.append(Call("kron", (slow, fast)))
    if r.k_cols is not None:
        chain.append(_commutation(*r.k_cols))
    if r.right is not None:
        chain.append(Call("diag", (Call("vec", (operand(r.right),)),)))
    if not chain:
        chain = [Call("eye", (Sym(str(ir.dim_product(*row_shape))),))]
    return Mono(coef, (), tuple(chain))


def _positive(note) -> tuple[object, Fraction]:
    """A note without its leading coefficient, and that coefficient."""
    if isinstance(note, Mono) and note.coef != 1 and not note.den and (note.scalars or
                                                                        note.chain):
        inner = Mono(Fraction(1), note.scalars, note.chain)
        if len(note.scalars) + len(note.chain) == 1:
            inner = (note.scalars + note.chain)[0]
        return inner, note.coef
    return note, Fraction(1)


def _commutation(m: Dim, n: Dim) -> Call:
    return Call("commutation", (Sym(str(m)), Sym(str(n))))


def sized(note, shape: tuple):
    """``note`` (a matrix or vector of ``shape``) with its identity written eye(n) wherever
    nothing around it implies the size: the whole operand, or a whole term of it. (Nested ones,
    as in inv(eye + A), take their size from their neighbours.)"""
    if note == EYE:
        return Call("eye", (Sym(str(shape[0])),))
    if isinstance(note, Call) and note.fn in ("vector", "matrix") and len(note.args) == 1 \
            and len(shape) == (1 if note.fn == "vector" else 2):
        return Call(note.fn, note.args + tuple(Sym(str(d)) for d in shape))  # matrix(1, m, n)
    if isinstance(note, Mono) and len(note.chain) == 1:
        return Mono(note.coef, note.scalars, (sized(note.chain[0], shape),), note.den)
    if isinstance(note, Sum):
        if all(_constant_fill(t) for t in note.terms):
            return Sum(tuple(_as_mono(sized(t, shape)) for t in note.terms))
        return Sum(tuple(t if _constant_fill(t) else _as_mono(sized(t, shape))
                         for t in note.terms))
    return note


def _as_mono(note) -> Mono:
    return note if isinstance(note, Mono) else Mono(Fraction(1), (), (note,))


def _constant_fill(note) -> bool:
    """vector(c) or matrix(c), possibly scaled: no size of its own."""
    if isinstance(note, Mono) and len(note.chain) == 1:
        note = note.chain[0]
    return isinstance(note, Call) and note.fn in ("vector", "matrix")
