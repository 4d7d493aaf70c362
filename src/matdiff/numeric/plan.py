"""Plan: the derivative's IR lowered to a straight-line program of fast kernels.

Lowering decides *what* runs, for one binding of the symbolic sizes; :mod:`.emit` writes it as
Python source for NumPy, JAX or PyTorch. The lowered program is again a DAG of interned nodes,
so every common subexpression (a partial product of one contraction reused by another, the
Cholesky factor, a log-domain scalar) is one node, computed once. Its vocabulary:

* ``einsum`` with one factor (a transpose, diagonal or reduction: a view where it can be),
  two factors (a matrix product, dot, outer or broadcast product, chosen by :mod:`.emit` from
  the index pattern) or only scalar factors (a product);
* ``embed``: a contraction's value written onto the diagonal of a zero tensor, so an identity
  factor whose two indices are both free is never materialised;
* ``cholesky``, ``logdet_chol``, ``cho_inverse`` for a positive definite variable, and
  ``inv`` used only as ``inv(A)*B``, which :mod:`.emit` writes as a solve;
* the IR's leaves, sums and elementwise primitives as they are.

The identities it applies, each once and everywhere:

* ``d(i,j)`` on a summed index renames it away; on two free indices it becomes an ``embed``;
* a product of scalars with determinants, powers and exponentials is evaluated in the log
  domain, ``det(S)^p*exp(u) = exp(p*logdet(S) + u)``, so it does not underflow;
* a contraction of three or more tensors is split into pairs in the cheapest order for the
  actual sizes (opt_einsum where installed, else NumPy's path search), and a scalar factor or
  a sum's coefficient goes onto the smallest tensor on that path;
* a sum of contractions that share their matrix factors is one contraction of the shared
  factors with the sum of the rest (X'*diag(u)*X - X'*diag(v)*X = X'*diag(u - v)*X).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..core.ir import (
    Dim,
    Expr,
    Index,
    add,
    apply,
    dim_size,
    einsum,
    index_dims,
    num,
    relabel,
    topological,
)
from ..core.simplify import is_positive

Factor = tuple[Expr, tuple[Index, ...]]
DISTRIBUTE_GAIN = 0.75   # a contraction is distributed over a sum only when clearly cheaper
SEARCHED = 4             # contractions of up to this many tensors: every order is tried


@dataclass
class Program:
    """A lowered program: ``outputs`` (one lowered node per root) and every node in the order
    it runs, for one binding of the sizes."""

    outputs: list[Expr]
    nodes: list[Expr]
    sizes: dict[str, int]
    solved: frozenset[int]   # ids of inv nodes used only as inv(A)*B: written as solves

    def size_of(self, d: Dim) -> int:
        return dim_size(d, self.sizes)


def lower_program(roots: Sequence[Expr], sizes: Mapping[str, int]) -> Program:
    """The straight-line program computing every root, planned for these sizes."""
    lowering = _Lowering(roots, dict(sizes))
    outputs = [lowering.lower(r) for r in roots]
    order: list[Expr] = []
    seen: set[int] = set()
    for out in outputs:
        for node in topological(out):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return Program(outputs, order, dict(sizes), _solved_inverses(order))


def is_posdef(a: Expr) -> bool:
    return a.op == "var" and "posdef" in a.data[1]


# ----------------------------------------------------------------------------------------------
# the lowering pass
# ----------------------------------------------------------------------------------------------

class _Lowering:
    def __init__(self, roots: Sequence[Expr], sizes: dict[str, int]):
        self.sizes = sizes
        # keyed by the nodes themselves: the interning table is weak, so a key must keep its
        # node alive (an id could be reused by a later node)
        self.memo: dict[Expr, Expr] = {}
        self.uses: Counter[int] = Counter()
        nodes = []
        seen: set[int] = set()
        for root in roots:
            for node in topological(root):
                if id(node) not in seen:
                    seen.add(id(node))
                    nodes.append(node)
                    self.uses.update(id(a) for a in node.args)
        for root in roots:
            self.uses[id(root)] += 1
        self.sum_terms = {id(a) for n in nodes if n.op == "sum" for a in n.args}
        self.factors = {id(a) for n in nodes if n.op == "einsum" for a in n.args}
        # bottom up, so lower()'s recursion stays shallow; a sum's single-use contractions
        # are lowered by the sum, which folds its coefficients into them, and a contraction's
        # single-use sums by the contraction, which may distribute over them
        for node in nodes:
            if not self._folded_by_sum(node) and not self._distributable(node):
                self.lower(node)

    def size(self, d: Dim) -> int:
        return dim_size(d, self.sizes)

    def _folded_by_sum(self, node: Expr) -> bool:
        return node.op == "einsum" and id(node) in self.sum_terms and self._single_use(node)

    def _distributable(self, node: Expr) -> bool:
        return node.op == "sum" and id(node) in self.factors and self._single_use(node)

    def lower(self, node: Expr) -> Expr:
        done = self.memo.get(node)
        if done is None:
            done = self.memo[node] = self._lower(node)
        return done

    def _lower(self, node: Expr) -> Expr:
        op = node.op
        if op == "einsum":
            return self.contraction(list(zip(node.args, node.data[0])), node.data[1])
        if op == "sum":
            return self.linear_combination(list(zip(node.data, node.args)))
        if not node.args:
            return node
        if op in ("det", "logdet") and is_posdef(node.args[0]):
            logdet = Expr("logdet_chol", (cholesky(node.args[0]),))
            return logdet if op == "logdet" else apply("exp", logdet)
        if op == "inv" and is_posdef(node.args[0]):   # the inverse and solves from Cholesky
            return Expr("inv", (node.args[0], cholesky(node.args[0])), shape=node.shape)
        args = tuple(self.lower(a) for a in node.args)
        return Expr(op, args, node.data, node.shape)

    # sums ------------------------------------------------------------------------------------

    def linear_combination(self, terms: list[tuple[Fraction, Expr]],
                           factored: bool = True) -> Expr:
        """The sum's terms lowered; with ``factored``, terms sharing a matrix factor combined
        first (a distributed contraction's terms are not: that is what it undid)."""
        if factored:
            terms = _distribute(terms, self._single_use)
        lowered = []
        for c, t in terms:
            if t.op == "einsum" and self._single_use(t):
                # the coefficient goes onto the smallest tensor of the contraction
                lowered.append((Fraction(1), self.contraction(
                    list(zip(t.args, t.data[0])), t.data[1], Fraction(c))))
            else:
                lowered.append((Fraction(c), self.lower(t)))
        if len(lowered) == 1 and lowered[0][0] == 1:
            return lowered[0][1]
        return add(lowered)

    def _single_use(self, t: Expr) -> bool:
        return t not in self.memo and self.uses[id(t)] <= 1

    # contractions ----------------------------------------------------------------------------

    def contraction(self, factors: list[Factor], out: tuple[Index, ...],
                    coefficient: Fraction = Fraction(1)) -> Expr:
        expanded = self.distributed(factors, out)
        if expanded is not None:
            return self.linear_combination([(c * coefficient, t) for c, t in expanded],
                                           factored=False)
        shape = tuple(index_dims(factors)[i] for i in out)
        factors, merged_out = _without_identities(factors, out)
        out_core = tuple(dict.fromkeys(merged_out))
        scalars = [x for x, idx in factors if not idx]
        tensors = [(x, idx) for x, idx in factors if idx]
        tensors, extra = _without_ones(tensors, out_core)
        scalars += extra
        scalar = self.scalar_product(scalars, coefficient)
        core_out = tuple(i for i in out_core if any(i in idx for _, idx in tensors))
        tensors = [(self.lower(x), idx) for x, idx in tensors]
        if not tensors:
            core = scalar if scalar is not None else num(1)
        else:
            core = self.tensor_product(tensors, core_out, scalar)
        if core_out == out:
            return core
        return Expr("embed", (core,), (core_out, merged_out), shape)

    def distributed(self, factors: list[Factor], out: tuple[Index, ...]
                    ) -> list[tuple[Fraction, Expr]] | None:
        """The contraction as a sum of contractions, one per term of a single-use sum factor,
        where that costs less: (T - U*V')*V = T*V - U*(V'*V) never forms the n×m matrix."""
        for k, (x, idx) in enumerate(factors):
            if x.op != "sum" or not self._single_use(x) or x.ndim == 0:
                continue
            fresh = iter(range(max(i for _, ix in factors for i in ix) + 1, 1 << 30))
            rest = factors[:k] + factors[k + 1:]
            terms, cost_terms = [], 0
            for c, t in zip(x.data, x.args):
                if t.op == "einsum" and self._single_use(t):
                    labels = relabel(t, idx, fresh)
                    inner = [(a, tuple(labels[i] for i in ix))
                             for a, ix in zip(t.args, t.data[0])]
                    cost_terms += self.cost(list(zip(t.args, t.data[0])), t.data[1])
                else:
                    inner = [(t, idx)]
                terms.append((Fraction(c), inner + rest))
            factored = (cost_terms + len(x.args) * self.volume(x.shape)
                        + self.cost([(x, idx)] + rest, out))
            expanded = sum(self.cost(fs, out) for _, fs in terms)
            expanded += (len(terms) - 1) * self.volume(index_dims(factors)[i] for i in out)
            if expanded < DISTRIBUTE_GAIN * factored:
                return [(c, einsum(fs, out)) for c, fs in terms]
        return None

    def volume(self, shape: Iterable[Dim]) -> int:
        return math.prod(self.size(d) for d in shape)

    def cost(self, factors: list[Factor], out: tuple[Index, ...]) -> int:
        """The entries a contraction's pairwise plan touches, identities and ones vectors
        aside: the measure for choosing between its factored and distributed forms."""
        factors, merged_out = _without_identities(factors, out)
        tensors = [(x, idx) for x, idx in factors if idx]
        tensors, _ = _without_ones(tensors, tuple(dict.fromkeys(merged_out)))
        if not tensors:
            return 1
        dims = {i: self.size(d) for x, idx in tensors for i, d in zip(idx, x.shape)}
        core_out = tuple(i for i in dict.fromkeys(merged_out) if i in dims)
        steps = _contraction_order([idx for _, idx in tensors], core_out, dims)
        if not steps:
            return _volume(tensors[0][1], dims)
        operands, total = [idx for _, idx in tensors], 0
        for positions, keep in steps:
            picked = [operands[p] for p in positions]
            for p in sorted(positions, reverse=True):
                del operands[p]
            total += _volume({i for ix in picked for i in ix}, dims)
            operands.append(keep)
        return total

    def scalar_product(self, scalars: list[Expr], coefficient: Fraction) -> Expr | None:
        """One node for the product of scalar factors (None when it is 1), the factors that
        are exponentials or powers of positive things multiplied in the log domain."""
        scalars, coefficient = _numbers_folded(scalars, coefficient)
        logs = [s for s in scalars if _log_natural(s)]
        if len(logs) >= 2:
            exponent = add([(1, _log_of(s)) for s in logs])
            scalars = [s for s in scalars if not _log_natural(s)] + [apply("exp", exponent)]
        factors = [self.lower(s) for s in scalars]
        if coefficient != 1:
            factors.append(num(coefficient))
        if not factors:
            return None
        if len(factors) == 1:
            return factors[0]
        factors.sort(key=lambda f: f.key)
        return einsum([(f, ()) for f in factors], ())

    def tensor_product(self, tensors: list[Factor], out: tuple[Index, ...],
                       scalar: Expr | None) -> Expr:
        """The contraction of lowered tensor factors as a tree of pairwise contractions, the
        scalar applied to the smallest tensor on the way."""
        dims = {i: self.size(d) for x, idx in tensors for i, d in zip(idx, x.shape)}
        steps = _contraction_order([idx for _, idx in tensors], out, dims)
        sizes = [_volume(idx, dims) for _, idx in tensors]
        sizes += [_volume(keep, dims) for _, keep in steps] or [_volume(out, dims)]
        # the smallest tensor takes the scalar; ties go to the latest (a shared leaf stays
        # shared)
        target = max(range(len(sizes)), key=lambda k: (-sizes[k], k)) if scalar else -1
        operands: list[Factor] = []
        for k, (x, idx) in enumerate(tensors):
            operands.append(_scaled(scalar, x, idx) if k == target else (x, idx))
        if not steps:   # a single factor
            x, idx = operands[0]
            result = x if idx == out else unary(x, idx, out)
            return _scaled(scalar, result, out)[0] if target == 1 else result
        for k, (positions, keep) in enumerate(steps):
            picked = [operands[p] for p in positions]
            for p in sorted(positions, reverse=True):
                del operands[p]
            last = k == len(steps) - 1
            x, idx = _pairwise(picked, keep, canonical=not last)
            if len(tensors) + k == target:
                x, idx = _scaled(scalar, x, idx)
            operands.append((x, idx))
        x, idx = operands[0]
        return x if idx == out else unary(x, idx, out)


# ----------------------------------------------------------------------------------------------
# the identities, as functions of factor lists
# ----------------------------------------------------------------------------------------------

def _without_identities(factors: list[Factor], out: tuple[Index, ...]):
    """Identity factors renamed away: returns the other factors and the output with the second
    index of each identity whose indices are both free replaced by its first (for ``embed``)."""
    factors = list(factors)
    out_core = list(out)
    while True:
        pos = next((k for k, (x, _) in enumerate(factors) if x.op == "delta"), None)
        if pos is None:
            break
        x, (i, j) = factors.pop(pos)
        if i == j:      # the trace of an identity: its size
            factors.append((_dim_scalar(x.shape[0]), ()))
            continue
        if j in out_core and i in out_core:
            out_core = [i if k == j else k for k in out_core]
        elif j in out_core:
            i, j = j, i
        factors = [(f, tuple(i if k == j else k for k in idx)) for f, idx in factors]
    return factors, tuple(out_core)


def _without_ones(tensors: list[Factor], out: tuple[Index, ...]):
    """Ones vectors dropped: where another factor carries the index they add nothing; on an
    index of their own they are a broadcast (kept free by ``embed``) or, summed, a size."""
    kept, scalars = [], []
    for k, (x, idx) in enumerate(tensors):
        if x.op != "ones":
            kept.append((x, idx))
            continue
        (i,) = idx
        elsewhere = any(i in other for m, (_, other) in enumerate(tensors)
                        if m != k and (tensors[m][0].op != "ones" or m > k))
        if not elsewhere and i not in out:
            scalars.append(_dim_scalar(x.shape[0]))
    return kept, scalars


def _dim_scalar(d: Dim) -> Expr:
    return num(d) if isinstance(d, int) else Expr("dim", data=d)


def _numbers_folded(scalars: list[Expr], coefficient: Fraction):
    rest = []
    for s in scalars:
        if s.op == "num":
            coefficient *= s.data
        else:
            rest.append(s)
    return rest, coefficient


def _log_natural(s: Expr) -> bool:
    """A scalar factor whose logarithm is simpler than itself (it may under- or overflow)."""
    if s.op == "exp" or (s.op == "det" and is_posdef(s.args[0])):
        return True
    return s.op == "pow" and is_positive(s.args[0])


def _log_of(s: Expr) -> Expr:
    if s.op == "exp":
        return s.args[0]
    if s.op == "det":
        return apply("logdet", s.args[0])
    if s.op == "pow":
        base, exponent = s.args
        inner = _log_of(base) if _log_natural(base) else apply("log", base)
        return einsum([(exponent, ()), (inner, ())], ())
    return apply("log", s)


def _distribute(terms: list[tuple[Fraction, Expr]], single_use) -> list[tuple[Fraction, Expr]]:
    """Contractions in a sum that share a matrix factor combined into one, their other factors
    summed first: sum_k c_k*A*r_k = A*(sum_k c_k*r_k), greedily while two terms share one and
    the summed rest is a vector or matrix."""
    terms = list(terms)
    while True:
        holders: dict[tuple, list[int]] = {}
        for k, (_, t) in enumerate(terms):
            if t.op == "einsum" and single_use(t):
                for x, idx in set(zip(t.args, t.data[0])):
                    if x.ndim >= 2:
                        holders.setdefault((id(x), idx, t.data[1]), []).append(k)
        for members in holders.values():
            if len(members) < 2:
                continue
            merged = _merge([terms[k] for k in members])
            if merged is not None:
                terms = [t for k, t in enumerate(terms) if k not in members] + [merged]
                break
        else:
            return terms


def _merge(terms: list[tuple[Fraction, Expr]]) -> tuple[Fraction, Expr] | None:
    factor_lists = [Counter(zip(t.args, t.data[0])) for _, t in terms]
    common = factor_lists[0]
    for fl in factor_lists[1:]:
        common = common & fl
    out = terms[0][1].data[1]
    linked = {i for _, idx in common.elements() for i in idx} | set(out)
    rests, reach = [], None
    for fl in factor_lists:
        rest = list((fl - common).elements())
        r = tuple(sorted({i for _, idx in rest for i in idx} & linked))
        if reach is None:
            reach = r
        elif r != reach:
            return None
        rests.append(rest)
    if len(reach) > 2:      # the sum of the rest would be a bigger tensor than it saves
        return None
    parts = []
    for (c, _), rest in zip(terms, rests):
        parts.append((c, einsum(rest, reach) if rest else num(1)))
    if any(p.ndim != len(reach) for _, p in parts):
        return None
    inner = add(parts)
    return Fraction(1), einsum(list(common.elements()) + [(inner, reach)], out)


# ----------------------------------------------------------------------------------------------
# pairwise contractions
# ----------------------------------------------------------------------------------------------

def cholesky(a: Expr) -> Expr:
    return Expr("cholesky", (a,), shape=a.shape)


def unary(x: Expr, idx: tuple[Index, ...], out: tuple[Index, ...]) -> Expr:
    """A one-factor contraction: transpose, diagonal or reduction of ``x``."""
    labels = {i: n for n, i in enumerate(dict.fromkeys(out + idx))}
    return Expr("einsum", (x,), ((tuple(labels[i] for i in idx),), tuple(labels[i] for i in out)),
                tuple(dict(zip(idx, x.shape))[i] for i in out))


def _scaled(scalar: Expr | None, x: Expr, idx: tuple[Index, ...]) -> Factor:
    if scalar is None:
        return x, idx
    own = tuple(range(len(idx)))
    return einsum([(scalar, ()), (x, own)], own), idx


def _pairwise(picked: list[Factor], keep: tuple[Index, ...], canonical: bool) -> Factor:
    """Contract factors two at a time onto ``keep``; with ``canonical`` the result's axes are in
    a canonical order, so the same partial product met in two contractions is one node."""
    while len(picked) > 2:
        rest = {i for _, idx in picked[2:] for i in idx} | set(keep)
        wanted = tuple(dict.fromkeys(i for _, idx in picked[:2] for i in idx if i in rest))
        picked = [_pairwise(picked[:2], wanted, True)] + picked[2:]
    if len(picked) == 1:
        x, idx = picked[0]
        order = tuple(dict.fromkeys(i for i in idx if i in keep)) if canonical else keep
        return (x, idx) if idx == order else (unary(x, idx, order), order)
    (a, ia), (b, ib) = picked
    # an index only one factor carries and the result drops is summed there first; a repeated
    # index on one factor (a diagonal) is taken first
    a, ia = _reduced(a, ia, set(ib) | set(keep))
    b, ib = _reduced(b, ib, set(ia) | set(keep))
    ia, ib = _symmetric_order(a, ia, keep), _symmetric_order(b, ib, keep)
    if (b.key, ib) < (a.key, ia) and canonical:
        (a, ia), (b, ib) = (b, ib), (a, ia)
    order = tuple(dict.fromkeys(i for i in ia + ib if i in keep)) if canonical else keep
    labels = {i: n for n, i in enumerate(dict.fromkeys(order + ia + ib))}
    dims = dict(zip(ia, a.shape)) | dict(zip(ib, b.shape))
    node = Expr("einsum", (a, b), ((tuple(labels[i] for i in ia), tuple(labels[i] for i in ib)),
                                   tuple(labels[i] for i in order)),
                tuple(dims[i] for i in order))
    return node, order


def _symmetric_order(x: Expr, idx: tuple[Index, ...], keep: tuple[Index, ...]):
    """A symmetric matrix's indices may be swapped: the kept one first, so inv(S)*d and
    inv(S)'*d are one node."""
    if len(idx) != 2 or idx[0] == idx[1] or not symmetric(x):
        return idx
    return tuple(sorted(idx, key=lambda i: i not in keep))


def _reduced(x: Expr, idx: tuple[Index, ...], needed: set[Index]) -> Factor:
    keep = tuple(dict.fromkeys(i for i in idx if i in needed))
    if keep == idx:
        return x, idx
    return unary(x, idx, keep), keep


def _volume(idx: Iterable[Index], dims: Mapping[Index, int]) -> int:
    return math.prod(dims[i] for i in set(idx))


def _contraction_order(factor_idx: list[tuple[Index, ...]], out: tuple[Index, ...],
                       dims: Mapping[Index, int]) -> list[tuple[tuple[int, ...], tuple]]:
    """Pairwise steps (positions in the shrinking operand list, indices kept) for the
    cheapest order at these sizes: opt_einsum where installed, else NumPy's path search."""
    if len(factor_idx) < 2:
        return []
    letters = {i: chr(ord("a") + n) if n < 26 else chr(ord("A") + n - 26)
               for n, i in enumerate(dict.fromkeys(i for idx in factor_idx for i in idx))}
    if len(letters) > 52:   # beyond the letters: left to right
        path = [(0, 1)] * (len(factor_idx) - 1)
    else:
        spec = ",".join("".join(letters[i] for i in idx) for idx in factor_idx)
        spec += "->" + "".join(letters[i] for i in out)
        shapes = [tuple(dims[i] for i in idx) for idx in factor_idx]
        path = _path(spec, shapes, len(factor_idx))
    steps = []
    operands = list(factor_idx)
    for positions in path:
        positions = tuple(sorted(positions))
        picked = [operands[p] for p in positions]
        for p in sorted(positions, reverse=True):
            del operands[p]
        remaining = {i for idx in operands for i in idx} | set(out)
        keep = out if not operands else tuple(dict.fromkeys(
            i for idx in picked for i in idx if i in remaining))
        steps.append((positions, keep))
        operands.append(keep)
    return steps


def _path(spec: str, shapes: list[tuple[int, ...]], n: int) -> list[tuple[int, ...]]:
    if n <= SEARCHED:
        return _cheapest_path(spec, shapes)
    try:
        import opt_einsum
    except ImportError:
        operands = [np.broadcast_to(np.empty(()), s) for s in shapes]  # shapes only, no memory
        path = np.einsum_path(spec, *operands, optimize="greedy")[0][1:]
        return [tuple(p) for p in path]
    return [tuple(p) for p in opt_einsum.contract_path(spec, *shapes, shapes=True,
                                                       optimize="greedy")[0]]


def _cheapest_path(spec: str, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Every pairwise order of a few factors tried (18 for four), the one touching the fewest
    entries kept (each step costs the product of the sizes of the indices it meets): optimal,
    like opt_einsum's "optimal", and without its import, a noticeable part of a first compile."""
    inputs, out = spec.split("->")
    operands = [frozenset(term) for term in inputs.split(",")]
    size = {c: d for term, shape in zip(inputs.split(","), shapes) for c, d in zip(term, shape)}
    wanted = frozenset(out)

    def best(ops: tuple[frozenset, ...]) -> tuple[int, list[tuple[int, int]]]:
        if len(ops) == 1:
            return 0, []
        found = (math.inf, [])
        for i in range(len(ops)):
            for j in range(i + 1, len(ops)):
                rest = ops[:i] + ops[i + 1:j] + ops[j + 1:]
                met = ops[i] | ops[j]
                keep = met & (wanted.union(*rest))
                cost, path = best(rest + (keep,))
                cost += math.prod(size[c] for c in met)
                if cost < found[0]:
                    found = (cost, [(i, j)] + path)
        return found

    return best(tuple(operands))[1]


# ----------------------------------------------------------------------------------------------
# which inverses become solves
# ----------------------------------------------------------------------------------------------

def solve_side(user: Expr, inverse: Expr) -> str | None:
    """For a pairwise contraction with one factor inv(A): "left" where it reads inv(A)*B,
    "right" where B*inv(A) (as matrix products), else None."""
    if user.op != "einsum" or len(user.args) != 2 or user.args.count(inverse) != 1:
        return None
    (ia, ib), out = user.data
    own, other = (ia, ib) if user.args[0] is inverse else (ib, ia)
    if len(set(own)) != 2 or len(other) > 2 or len(set(other)) != len(other):
        return None
    p, q = own
    shared = set(own) & set(other)
    if len(shared) != 1 or any(i in out for i in shared) or any(i in other for i in out
                                                                if i in own):
        return None
    if set(out) != (set(own) | set(other)) - shared:
        return None
    return "left" if q in shared else "right"


def _solved_inverses(order: list[Expr]) -> frozenset[int]:
    users: dict[int, list[Expr]] = {}
    for node in order:
        for a in node.args:
            if a.op == "inv":
                users.setdefault(id(a), []).append(node)
    solved = set()
    for node in order:
        if node.op == "inv" and all(solve_side(u, node) for u in users.get(id(node), [])):
            if users.get(id(node)):
                solved.add(id(node))
    return frozenset(solved)


def symmetric(a: Expr) -> bool:
    """Whether a lowered matrix is symmetric: a symmetric variable, an identity, the inverse,
    transpose, scalar multiple or sum of symmetric matrices, or a Gram product X'*X (one
    factor twice, its index lists swapped by swapping the two output indices)."""
    if a.ndim != 2:
        return False
    if a.op == "inv":
        a = a.args[0]
    if a.op == "sum":
        return all(symmetric(t) for t in a.args)
    if a.op == "einsum":
        factor_idx, out = a.data
        if len(set(out)) != 2:
            return False
        matrices = [(x, idx) for x, idx in zip(a.args, factor_idx) if idx]
        if len(matrices) == 1:          # a transpose or scalar multiple of one matrix
            x, idx = matrices[0]
            return sorted(idx) == sorted(out) and len(idx) == 2 and symmetric(x)
        if len(matrices) == 2 and matrices[0][0] is matrices[1][0]:
            swap = {out[0]: out[1], out[1]: out[0]}
            return tuple(swap.get(i, i) for i in matrices[0][1]) == matrices[1][1]
        return False
    return a.op == "delta" or (a.op == "var" and "symmetric" in a.data[1])
