"""Simplification: a canonical form for sums and contractions, plus local rewrite rules as data.

The canonical form (what makes like terms meet):

* a ``sum`` is flat, its terms distinct and sorted, no zero coefficients, numbers folded;
  a scaled node ``c*t`` is a one-term sum;
* an ``einsum`` is flat (no einsum or scaled factors), without eliminable identity matrices or
  ones vectors, with ``A*inv(A)`` cancelled, powers of one base merged, and its factors and
  summation indices in a canonical order, so that two contractions equal up to renaming of
  summation indices (and to the order of a symmetric factor's indices) are the same node.

``RULES`` holds the local identities (``inv(inv(A)) = A``, ``log(exp(x)) = x``, ...), one entry
each, keyed by the primitive they rewrite. Every rewrite is an identity wherever the left side is
defined (and real); none assumes more than the declared properties say.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from fractions import Fraction

from .. import budget
from .ir import (
    PRIMITIVES,
    Dim,
    Expr,
    Index,
    add,
    apply,
    broadcast,
    delta,
    dimsize,
    einsum,
    einsum_dims,
    identity_tangent,
    index_counts,
    index_dims,
    matrix_power,
    merge,
    num,
    ones,
    power,
    relabel,
    scale,
    topological,
    zero,
)

# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------


def simplify(root: Expr) -> Expr:
    """The canonical simplified form of ``root`` (memoised on the nodes themselves)."""
    done = root.cache.get("simplified")
    if done is not None:
        return done
    for node in _unsimplified(root):  # bottom up, so the recursion below stays shallow
        if "simplified" not in node.cache:
            budget.check_time("simplifying")
            _simplified(node)
    return _simplified(root)


def _unsimplified(root: Expr) -> list[Expr]:
    """The nodes not yet simplified, children first, not walking into simplified parts (a
    result simplified again, with a few new nodes above it, costs those few)."""
    return topological(root, lambda node: "simplified" in node.cache)


def _simplified(node: Expr) -> Expr:
    done = node.cache.get("simplified")
    if done is None:
        done = _simplify_node(node)
        node.cache["simplified"] = done
        done.cache["simplified"] = done
    return done


def _simplify_node(node: Expr) -> Expr:
    args = tuple(_simplified(a) for a in node.args)
    if node.op == "sum":
        return _canonical_sum(zip(node.data, args), node.shape)
    if node.op == "einsum":
        return _canonical_einsum(list(zip(args, node.data[0])), node.data[1], node.shape)
    if node.op == "merge":
        return _canonical_merge(args[0], node.data, node.shape)
    if not args:
        return node
    rebuilt = Expr(node.op, args, node.data, node.shape)
    if rebuilt in _rewriting:  # a rewrite led back to itself: two forms that turn into each
        return rebuilt         # other (equal in value); keep the one reached first
    _rewriting.add(rebuilt)
    try:
        for rule in RULES.get(node.op, ()):
            rewritten = rule(rebuilt)
            if rewritten is not None:
                return _simplified(rewritten)
    finally:
        _rewriting.discard(rebuilt)
    return rebuilt


_rewriting: set[Expr] = set()  # the nodes whose rewrites are being simplified right now


# ----------------------------------------------------------------------------------------------
# sums
# ----------------------------------------------------------------------------------------------


def _canonical_sum(terms, shape: tuple[Dim, ...]) -> Expr:
    collected: dict[Expr, Fraction] = {}
    for c, t in terms:
        for c2, t2 in _scaled_terms(c, t):
            collected[t2] = collected.get(t2, Fraction(0)) + c2
    kept = sorted(((c, t) for t, c in collected.items() if c != 0), key=lambda ct: ct[1].key)
    if not kept:
        return zero(shape)
    if len(kept) == 1 and kept[0][1].op == "num":
        return num(kept[0][0])
    if len(kept) == 1 and kept[0][0] == 1:
        return kept[0][1]
    return add(kept)


def _scaled_terms(c: Fraction, t: Expr):
    """The (coefficient, term) pairs of c*t, with sums flattened and numbers as c*num(1)."""
    if t.op == "sum":
        for c2, t2 in zip(t.data, t.args):
            yield from _scaled_terms(c * c2, t2)
    elif t.op == "num":
        yield c * t.data, num(1)
    elif t.op != "zero":
        yield c, t


def scaled(c: Fraction, t: Expr) -> Expr:
    """c*t in canonical form, for an already simplified t."""
    if c == 0:
        return zero(t.shape)
    if c == 1:
        return t
    return _canonical_sum([(c, t)], t.shape)


def split_coefficient(e: Expr) -> tuple[Fraction, Expr]:
    """(c, t) with e = c*t and t not a one-term sum."""
    if e.op == "sum" and len(e.args) == 1:
        return e.data[0], e.args[0]
    if e.op == "num":
        return e.data, num(1)
    return Fraction(1), e


# ----------------------------------------------------------------------------------------------
# merged axes (vec, kron)
# ----------------------------------------------------------------------------------------------


def _canonical_merge(x: Expr, groups: tuple[int, ...], shape: tuple[Dim, ...]) -> Expr:
    """Merges of single axes vanish, merges of merges are one, and a merge of a sum is the sum
    of the merges (so each term of a derivative shows its own Kronecker structure)."""
    if all(g == 1 for g in groups):
        return x
    if x.op == "zero":
        return zero(shape)
    if x.op == "merge":
        inner, combined, start = x.data, [], 0
        for g in groups:
            combined.append(sum(inner[start:start + g]))
            start += g
        return _simplified(merge(x.args[0], combined))
    if x.op == "sum":
        return _canonical_sum([(c, _simplified(merge(t, groups)))
                               for c, t in zip(x.data, x.args)], shape)
    if x.op == "einsum":
        flattened = _vec_of_unvec(x, groups)
        if flattened is not None:
            return flattened
    return merge(x, groups)


def _is_vec_tangent(f: Expr) -> bool:
    """Whether f is d vec(X)/dX: T[q, k, l] = 1 where q is the position of (k, l) in vec(X)."""
    if f.op != "merge" or f.data[1:] != (1,) * f.data[0] or len(f.data) != 1 + f.data[0]:
        return False
    k, t = f.data[0], f.args[0]
    if t is identity_tangent(t.shape[:k]):
        return True
    if t.op != "einsum" or not all(a.op == "delta" for a in t.args):
        return False  # or the same identity with its factors in another order:
    position = {i: p for p, i in enumerate(t.data[1])}
    pairs = {frozenset(position.get(i, -1) for i in idx) for idx in t.data[0]}
    return pairs == {frozenset((a, a + k)) for a in range(k)}


def _vec_of_unvec(x: Expr, groups: tuple[int, ...]) -> Expr | None:
    """vec(unvec(u)) = u: a merge of output axes that a factor d vec(X)/dX alone carries, in
    its order, turns that factor into the identity on its merged axis (the gradient of
    vec(X)'*W*vec(X), reshaped by its vec, is (W + W')*vec(X))."""
    factor_idx, out = x.data
    start = 0
    for g_at, g in enumerate(groups):
        merged = out[start:start + g]
        start += g
        if g < 2:
            continue
        for n, (f, idx) in enumerate(zip(x.args, factor_idx)):
            others = [i for m, other in enumerate(factor_idx) if m != n for i in other]
            if not (_is_vec_tangent(f) and idx[1:] == merged and len(set(idx)) == len(idx)
                    and not set(merged) & set(others)):
                continue
            fresh = 1 + max(i for index in factor_idx for i in index)
            factors = [(a, i) for a, i in zip(x.args, factor_idx)]
            factors[n] = (delta(f.shape[0]), (idx[0], fresh))
            at = sum(groups[:g_at])
            new_out = out[:at] + (fresh,) + out[at + g:]
            new_groups = groups[:g_at] + (1,) + groups[g_at + 1:]
            return _simplified(merge(_simplified(einsum(factors, new_out)), new_groups))
    return None


# ----------------------------------------------------------------------------------------------
# contractions
# ----------------------------------------------------------------------------------------------

Factor = tuple[Expr, tuple[Index, ...]]
MAX_ARRANGEMENTS = 200
MAX_DISTRIBUTED_TERMS = 16
MAX_DISTRIBUTED_PRODUCT = 10_000


def _canonical_einsum(factors: list[Factor], out: tuple[Index, ...],
                      shape: tuple[Dim, ...]) -> Expr:
    budget.check_time("simplifying")  # distributing a sum simplifies each term in here
    dims = index_dims(factors)
    coef, flat = Fraction(1), factors
    while True:
        c, flat = _flatten(flat, dims)
        coef *= c
        if coef == 0:
            return zero(shape)
        changed = _eliminate_identities(flat, out, dims)
        changed = _cancel_inverses(flat, out) or changed
        changed = _merge_powers(flat) or changed
        changed = _split_merged_indices(flat, out, dims) or changed
        changed = _merge_sign_abs(flat) or changed
        changed = _pull_common_scalars(flat) or changed
        changed = _merge_matrix_powers(flat, out) or changed
        if not changed:
            break
    if not flat:
        return num(coef)
    if len(flat) == 1 and flat[0][1] == out:
        return scaled(coef, flat[0][0])
    spread = [len(x.args) for x, _ in flat if x.op == "sum" and _distributable(x)]
    together = math.prod(spread) <= MAX_DISTRIBUTED_PRODUCT  # one long sum is linear work
    for n, (x, idx) in enumerate(flat):
        if x.op == "sum" and (together or len(x.args) <= MAX_DISTRIBUTED_TERMS) and \
                _distributable(x):
            # a sum of 3- or 4-index tensors (the derivative of a matrix by a vector or a
            # matrix) has no matrix form, and the identities in a sum of Jacobians cancel
            # against the other factors: each term meets the other factors alone
            return _canonical_sum(
                [(coef * c, _simplified(einsum(flat[:n] + [(t, idx)] + flat[n + 1:], out)))
                 for c, t in zip(x.data, x.args)], shape)
    if len(flat) == 1 and flat[0][0].op == "sum" and _is_permutation(flat[0][1], out):
        # (A + B)' is A' + B': a transposed sum meets the terms it equals
        (x, idx), = flat
        return _canonical_sum([(coef * c, _simplified(einsum([(t, idx)], out)))
                               for c, t in zip(x.data, x.args)], shape)
    flat, out = _canonical_order(flat, out)
    if len(flat) == 1 and flat[0][1] == out:
        return scaled(coef, flat[0][0])
    return scaled(coef, einsum(flat, out))


def _distributable(x: Expr) -> bool:
    known = x.cache.get("distributable")  # asked of each factor of each term of a long sum
    if known is None:
        known = x.cache["distributable"] = x.ndim > 2 or any(_has_identity(t) for t in x.args)
    return known


def _has_identity(t: Expr) -> bool:
    c, t = split_coefficient(t)
    return t.op == "delta" or (t.op == "einsum" and any(a.op == "delta" for a in t.args))


def _flatten(factors: list[Factor], dims: dict[Index, Dim]) -> tuple[Fraction, list[Factor]]:
    """Inline nested contractions, pull coefficients and numbers out."""
    coef = Fraction(1)
    fresh = itertools.count(1 + max(dims, default=-1))
    work = list(reversed(factors))
    flat: list[Factor] = []
    while work:
        x, idx = work.pop()
        if x.op == "zero":
            return Fraction(0), []
        if x.op == "num":
            coef *= x.data
            continue
        if x.op == "sum" and len(x.args) == 1:
            coef *= x.data[0]
            work.append((x.args[0], idx))
            continue
        if x.op == "sum" and x.ndim == 2 and len(set(idx)) == 2:
            # a matrix sum and its (distributed) transpose are one factor: the one with fewer
            # transposed terms stands, so that (Y - 1*m')' and Y' - m*1' meet
            xt = _transposed_sum(x)
            if _transposed_terms(xt, x) < _transposed_terms(x, xt):
                work.append((xt, idx[::-1]))
                continue
        if x.op == "sum" and x.data[0] != 1:
            lead = x.data[0]
            coef *= lead
            x = add([(c / lead, t) for c, t in zip(x.data, x.args)])
        if x.op == "einsum":
            inner_idx = x.data[0]
            rename = relabel(x, idx, fresh)
            inner_dims = einsum_dims(x)
            for i, j in rename.items():
                dims[j] = inner_dims[i]
            for a, fi in reversed(list(zip(x.args, inner_idx))):
                work.append((a, tuple(rename[i] for i in fi)))
            continue
        flat.append((x, idx))
    return coef, flat


def _transposed_sum(x: Expr) -> Expr:
    """The transpose of a simplified matrix sum, distributed over its terms."""
    done = x.cache.get("transposed")
    if done is None:
        done = x.cache["transposed"] = _canonical_sum(
            [(c, _simplified(einsum([(t, (0, 1))], (1, 0)))) for c, t in zip(x.data, x.args)],
            x.shape[::-1])
    return done


def _transposed_terms(x: Expr, other: Expr) -> tuple:
    """How many terms of x are plain transposes (then a tie-break), to order x against
    its transpose ``other``."""
    terms = x.args if x.op == "sum" else (x,)
    count = sum(t.op == "einsum" and len(t.args) == 1 and t.data[0][0] != t.data[1]
                for t in terms)
    return (count, x.key if x is not other else 0)


def _occurrences(flat: list[Factor], out: tuple[Index, ...]) -> dict[Index, int]:
    return index_counts((idx for _, idx in flat), out)


def _remove(flat: list[Factor], pos: int, out: tuple[Index, ...], dims: dict[Index, Dim]) -> None:
    """Drop a factor equal to 1 everywhere, keeping every index's range: an index it alone
    carried into the output gets a ones vector, a summed one it alone carried its size."""
    _, idx = flat.pop(pos)
    count = _occurrences(flat, out)
    for i in dict.fromkeys(idx):
        others = count.get(i, 0) - (1 if i in out else 0)
        if others == 0:
            flat.append((ones(dims[i]), (i,)) if i in out else (dimsize(dims[i]), ()))


def _rename(flat: list[Factor], old: Index, new: Index) -> None:
    for n, (x, idx) in enumerate(flat):
        if old in idx:
            flat[n] = (x, tuple(new if i == old else i for i in idx))


def _eliminate_identities(flat: list[Factor], out: tuple[Index, ...],
                          dims: dict[Index, Dim]) -> bool:
    """delta(a, b) renames b to a; a ones vector on an index some other factor carries is 1."""
    changed = False
    pos = 0
    while pos < len(flat):
        x, idx = flat[pos]
        if x.op == "delta":
            a, b = idx
            if a == b:
                flat[pos] = (ones(dims[a]), (a,))
                changed = True
                continue
            if b in out and a in out:
                if any(set(i) == {a, b} and is_diagonal(y) for y, i in flat):
                    _remove(flat, pos, out, dims)  # D .* eye is D for a diagonal D
                    changed = True
                    continue
                pos += 1
                continue
            keep, gone = (a, b) if b not in out else (b, a)
            _rename(flat, gone, keep)
            flat[pos] = (ones(dims[keep]), (keep,))
            changed = True
            continue
        if x.op == "ones":
            (a,) = idx
            if any(a in other for n, (_, other) in enumerate(flat) if n != pos) or a not in out:
                _remove(flat, pos, out, dims)
                changed = True
                continue
        pos += 1
    return changed


def _cancel_inverses(flat: list[Factor], out: tuple[Index, ...]) -> bool:
    """A_ac inv(A)_cb = delta_ab when c is summed between just these two."""
    count = _occurrences(flat, out)
    for n, (x, xi) in enumerate(flat):
        if x.op != "inv":
            continue
        a = x.args[0]
        for m, (y, yi) in enumerate(flat):
            if m == n or y is not a:
                continue
            for px, c in enumerate(xi):
                if count[c] != 2 or c not in yi or xi[0] == xi[1] or yi[0] == yi[1]:
                    continue
                py = yi.index(c)
                if px == py and not is_symmetric(a):
                    continue
                flat[n] = (delta(x.shape[0]), (yi[1 - py], xi[1 - px]))
                del flat[m]
                return True
    return False


def _split_merged_indices(flat: list[Factor], out: tuple[Index, ...],
                          dims: dict[Index, Dim]) -> bool:
    """A summed index that only merged axes of the same inner dimensions carry is summed over
    those dimensions instead: vec(X)'*vec(Y) is sum(X.*Y), kron(A, B) meets vec(X) entrywise."""
    if not any(x.op == "merge" for x, _ in flat):
        return False  # every summed index stands on a factor that is no merge
    # each summed index visits only the factors that carry it (a long chain was quadratic)
    carriers: dict[Index, list[int]] = {}
    for n, (_, idx) in enumerate(flat):
        for i in dict.fromkeys(idx):
            carriers.setdefault(i, []).append(n)
    summed = sorted(set(carriers) - set(out))
    for c in summed:
        inner_dims, sites = None, []
        for n in carriers[c]:
            x, idx = flat[n]
            if x.op != "merge":
                break
            for pos, i in enumerate(idx):
                if i == c:
                    start = sum(x.data[:pos])
                    inner = x.args[0].shape[start:start + x.data[pos]]
                    if inner_dims not in (None, inner):
                        break
                    inner_dims = inner
            else:
                sites.append(n)
                continue
            break
        else:
            if inner_dims is None or len(inner_dims) < 2:
                continue
            fresh = list(range(1 + max(dims), 1 + max(dims) + len(inner_dims)))
            dims.update(zip(fresh, inner_dims))
            for n in sites:
                x, idx = flat[n]
                groups, new_idx = [], []
                for g, i in zip(x.data, idx):
                    if i == c:
                        groups += [1] * g
                        new_idx += fresh
                    else:
                        groups.append(g)
                        new_idx.append(i)
                flat[n] = (_simplified(merge(x.args[0], groups)), tuple(new_idx))
            return True
    return False


def _merge_powers(flat: list[Factor]) -> bool:
    """b^p * b^q = b^(p+q) for scalar factors, and for array factors on the same indices when
    one is a power already (x'*x stays a dot product, not sum(x.^2))."""
    groups: dict[tuple, list[int]] = {}
    for n, (x, idx) in enumerate(flat):
        if len(set(idx)) != len(idx):
            continue
        base, exponent = (x.args[0], x.args[1]) if x.op == "pow" else (x, num(1))
        if exponent.ndim == 0 and base.op not in ("ones", "delta"):
            groups.setdefault((base, idx), []).append(n)
    for (base, idx), members in groups.items():
        if len(members) < 2 or (idx and all(flat[n][0].op != "pow" for n in members)):
            continue
        exponents = [flat[n][0].args[1] if flat[n][0].op == "pow" else num(1) for n in members]
        merged = _simplified(power(base, add([(1, e) for e in exponents])))
        for n in sorted(members[1:], reverse=True):
            del flat[n]
        flat[members[0]] = (merged, idx)
        return True
    return False


def _is_permutation(idx: tuple[Index, ...], out: tuple[Index, ...]) -> bool:
    return len(set(idx)) == len(idx) and set(idx) == set(out) and idx != out


def _merge_sign_abs(flat: list[Factor]) -> bool:
    """On the same indices: sign(u)*u = abs(u), sign(u)*abs(u) = u, abs(u)/u = u/abs(u) =
    sign(u) (the last two where the left side is defined, u != 0)."""
    if not any(x.op in ("sign", "abs") or x.op == "pow" and x.args[0].op == "abs"
               for x, _ in flat):
        return False
    position = {f: n for n, f in enumerate(flat)}
    for n, (x, idx) in enumerate(flat):
        if x.op not in ("sign", "abs") and not (x.op == "pow" and _number(x.args[1]) == -1):
            continue
        u = x.args[0]
        if x.op == "sign":
            pairs = [((u, idx), apply("abs", u)), ((apply("abs", u), idx), u)]
        elif x.op == "abs":
            pairs = [((power(u, -1), idx), apply("sign", u))]
        elif u.op == "abs":
            pairs = [((u.args[0], idx), apply("sign", u.args[0]))]
        else:
            continue
        for partner, merged in pairs:
            m = position.get(partner)
            if m is not None and m != n:
                flat[n] = (_simplified(merged), idx)
                del flat[m]
                return True
    return False


def _pull_common_scalars(flat: list[Factor]) -> bool:
    """x*(x*a + x*b)/x = x*a + x*b: a scalar factor common to every term of a summed factor
    moves out of the sum when another factor has the same base, so that the two can meet."""
    if not any(x.op == "sum" for x, _ in flat) or all(idx for _, idx in flat):
        return False  # no summed factor, or no scalar factor it could meet
    bases = {}
    for n, (x, idx) in enumerate(flat):
        if not idx:
            bases.setdefault(x.args[0] if x.op == "pow" else x, []).append(n)
    for n, (x, idx) in enumerate(flat):
        if x.op != "sum":
            continue
        for y in _common_scalars(x):
            base = y.args[0] if y.op == "pow" else y
            if any(m != n for m in bases.get(base, ())):
                terms = [(c, _without_factor(t, y)) for c, t in zip(x.data, x.args)]
                flat[n] = (_canonical_sum(terms, x.shape), idx)
                flat.append((y, ()))
                return True
    return False


def _common_scalars(x: Expr) -> list[Expr]:
    """The scalar factors every term of the sum x has (kept on x: asked at every product x
    stands in)."""
    common = x.cache.get("common_scalars")
    if common is None:
        for t in x.args:
            scalars = _scalar_factors(split_coefficient(t)[1])
            common = scalars if common is None else [s for s in common if s in scalars]
        x.cache["common_scalars"] = common = common or []
    return common


def _scalar_factors(t: Expr) -> list[Expr]:
    if t.op == "einsum":
        return [a for a, i in zip(t.args, t.data[0]) if not i]
    return [t] if not t.ndim else []


def _without_factor(t: Expr, y: Expr) -> Expr:
    """The term t (which has the scalar factor y) divided by y."""
    c, body = split_coefficient(t)
    if body is y:
        return num(c)
    factors = list(zip(body.args, body.data[0]))
    factors.remove((y, ()))
    return scaled(c, _simplified(einsum(factors, body.data[1])) if factors else num(1))


def _merge_matrix_powers(flat: list[Factor], out: tuple[Index, ...]) -> bool:
    """A^p * A^q = A^(p+q) along a summed index that only these two carry: runs of one base in
    a chain become one power (A*A*A is A^3), in one pass however long the chain."""
    matrices = [id(_power_of(x)[0]) for x, idx in flat if x.ndim == 2 and idx[0] != idx[1]]
    if len(set(matrices)) == len(matrices):
        return False  # no base twice: nothing to merge (the usual case, checked cheaply)
    count = _occurrences(flat, out)
    row_of: dict[Index, int] = {}
    for n, (x, idx) in enumerate(flat):
        if x.ndim == 2 and idx[0] != idx[1] and count[idx[0]] == 2 and idx[0] not in out:
            row_of[idx[0]] = n
    gone: set[int] = set()
    changed = False
    for n in range(len(flat)):
        if n in gone or flat[n][0].ndim != 2 or flat[n][1][0] == flat[n][1][1]:
            continue
        base, p = _power_of(flat[n][0])
        row, col = flat[n][1]
        while True:
            m = row_of.get(col)
            if m is None or m == n or m in gone or flat[m][1][1] in (col, row):
                break
            other, q = _power_of(flat[m][0])
            if other is not base:
                break
            gone.add(m)
            p, col = p + q, flat[m][1][1]
            changed = True
        if p != _power_of(flat[n][0])[1]:
            flat[n] = (_simplified(matrix_power(base, p)), (row, col))
    for m in sorted(gone, reverse=True):
        del flat[m]
    return changed


def _power_of(x: Expr) -> tuple[Expr, int]:
    return (x.args[0], int(x.args[1].data)) if x.op == "mpow" else (x, 1)


def _canonical_order(flat: list[Factor], out: tuple[Index, ...]):
    """Factors sorted and summation indices renamed so that equal contractions coincide.

    Output indices become 0..k-1 by position; the rest are numbered by first appearance, and
    among the arrangements of tied factors (and of a symmetric factor's two indices) the
    smallest encoding wins. Past MAX_ARRANGEMENTS the first is taken: still correct, merely
    less able to meet its twin.
    """
    position = {i: n for n, i in enumerate(out)}

    def shallow_key(f: Factor):
        x, idx = f
        positions = tuple(position.get(i, -1) for i in idx)
        if x.ndim == 2 and is_symmetric(x):
            positions = tuple(sorted(positions))  # either index order may be taken
        return (x.key, positions)

    ordered = sorted(flat, key=shallow_key)
    groups = [list(g) for _, g in itertools.groupby(ordered, key=shallow_key)]
    if math.prod(math.factorial(len(g)) for g in groups if len(g) <= 5) > MAX_ARRANGEMENTS:
        return _greedy_order(groups, position, out)
    choices = []
    for g in groups:
        perms = list(itertools.permutations(g)) if len(g) <= 5 else [tuple(g)]
        choices.append(perms)
    best = None
    arrangements = itertools.product(*choices)
    for count, arrangement in enumerate(arrangements):
        if count >= MAX_ARRANGEMENTS:
            break
        budget.check_time("simplifying")
        seq = [f for g in arrangement for f in g]
        flip_options = [(False, True) if sym else (False,)
                        for sym in (is_symmetric(x) and x.ndim == 2 for x, _ in seq)]
        for flip_count, flip in enumerate(itertools.product(*flip_options)):
            if flip_count >= 16:
                break
            labels = dict(position)
            encoded = []
            for (x, idx), f in zip(seq, flip):
                idx = idx[::-1] if f else idx
                for i in idx:
                    if i not in labels:
                        labels[i] = len(labels)
                encoded.append((x.key, tuple(labels[i] for i in idx), x, idx))
            enc = tuple((k, lab) for k, lab, _, _ in encoded)
            if best is None or enc < best[0]:
                best = (enc, encoded, labels)
    _, encoded, labels = best
    return [(x, lab) for _, lab, x, _ in encoded], tuple(labels[i] for i in out)


def _greedy_order(groups: list[list[Factor]], position: dict[Index, int],
                  out: tuple[Index, ...]):
    """``_canonical_order`` where its arrangements are too many to try: each tied factor in
    turn is the one (and the orientation) whose labels come smallest after those already
    placed, in time linear in the factors, not in their arrangements (the Hessian of a deep
    nesting has dozens of pairs of tied factors: 2^k arrangements, 200 of them tried at a
    cost linear in the factors each)."""
    labels = dict(position)
    placed: list[Factor] = []
    for group in groups:
        left = list(group)
        while left:
            best = None
            for n, (x, idx) in enumerate(left if len(left) <= 64 else left[:1]):
                for flip in ((False, True) if x.ndim == 2 and is_symmetric(x) else (False,)):
                    oriented = idx[::-1] if flip else idx
                    new: dict[Index, int] = {}
                    for i in oriented:
                        if i not in labels and i not in new:
                            new[i] = len(labels) + len(new)
                    lab = tuple(labels[i] if i in labels else new[i] for i in oriented)
                    if best is None or lab < best[0]:
                        best = (lab, n, oriented)
            lab, n, oriented = best
            x, _ = left.pop(n)
            for i in oriented:
                if i not in labels:
                    labels[i] = len(labels)
            placed.append((x, lab))
    return placed, tuple(labels[i] for i in out)


# ----------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------


def is_symmetric(x: Expr) -> bool:
    """Whether a square matrix expression is provably symmetric."""
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        return False
    known = x.cache.get("symmetric")
    if known is None:
        known = x.cache["symmetric"] = _symmetric(x)
    return known


def _symmetric(x: Expr) -> bool:
    if x.op == "var":
        return "symmetric" in x.data[1]
    if x.op in ("delta", "zero"):
        return True
    if x.op in ("inv", "mpow"):
        return is_symmetric(x.args[0])
    if x.op == "pow":
        return is_symmetric(x.args[0]) and (x.args[1].ndim == 0 or is_symmetric(x.args[1]))
    if x.op in PRIMITIVES and PRIMITIVES[x.op].elementwise:
        return is_symmetric(x.args[0])
    if x.op == "sum":
        return simplify(add([(c, transposed(t)) for c, t in zip(x.data, x.args)])) is x
    if x.op == "einsum":
        idx, out = x.data
        return simplify(Expr("einsum", x.args, (idx, out[::-1]), x.shape)) is x
    return False


def is_diagonal(x: Expr) -> bool:
    """Whether a square matrix expression is provably diagonal."""
    if x.op == "var":
        return "diagonal" in x.data[1]
    if x.op == "inv":
        return is_diagonal(x.args[0])
    return False


def transposed(x: Expr) -> Expr:
    """x' for a matrix (not simplified)."""
    return einsum([(x, (0, 1))], (1, 0))


def is_positive(x: Expr) -> bool:
    """Whether a scalar expression is provably > 0 wherever it is defined."""
    if x.op == "num":
        return x.data > 0
    if x.op in ("const", "dim", "exp", "ones"):
        return True
    if x.op == "var":
        return "positive" in x.data[1]
    if x.op == "det":
        return x.args[0].op == "var" and "posdef" in x.args[0].data[1]
    if x.op == "pow":
        base, exponent = x.args
        return is_positive(base) or (exponent.op == "num" and exponent.data.denominator != 1)
    if x.op == "sum":
        return all(c > 0 and is_positive(t) for c, t in zip(x.data, x.args))
    if x.op == "einsum":  # sums of products of positive entries
        return all(is_positive(a) for a in x.args)
    return False


# ----------------------------------------------------------------------------------------------
# local rewrite rules, keyed by the primitive they rewrite; each returns None when it does not
# apply. Results are simplified again, so a rule only states its identity.
# ----------------------------------------------------------------------------------------------

Rule = Callable[[Expr], Expr | None]


def _number(e: Expr) -> Fraction | None:
    return e.data if e.op == "num" else None


def _is_int(e: Expr) -> bool:
    return e.op == "num" and e.data.denominator == 1


def _pow_trivial(node: Expr) -> Expr | None:
    base, exponent = node.args
    if exponent.op == "zero" or _number(exponent) == 0:
        return broadcast(num(1), node.shape)
    if _number(exponent) == 1:
        return base
    return None


def _is_all_ones(x: Expr) -> bool:
    """An array of ones: the ones vector, or an outer product of ones vectors (matrix(1))."""
    return x.op == "ones" or (x.op == "einsum" and all(a.op == "ones" for a in x.args)
                              and all(len(i) == 1 for i in x.data[0])
                              and len({i for (i,) in x.data[0]}) == len(x.data[0]))


def _pow_of_ones(node: Expr) -> Expr | None:
    """1^e = 1, entry by entry."""
    return node.args[0] if _is_all_ones(node.args[0]) else None


def _pow_numbers(node: Expr) -> Expr | None:
    """Fold b^e for numbers when exact."""
    b, e = _number(node.args[0]), _number(node.args[1])
    if b is None or e is None or e.denominator != 1 or (b == 0 and e < 0) or abs(e) > 64:
        return None
    return num(b ** int(e))


def _pow_of_pow(node: Expr) -> Expr | None:
    """(b^p)^n = b^(p*n) for an integer n, or any number n when b is positive."""
    base, n = node.args
    if base.op != "pow" or base.args[1].ndim or n.op != "num":
        return None
    if not (_is_int(n) or is_positive(base.args[0])):
        return None
    return power(base.args[0], scale(n.data, base.args[1]))


def _pow_of_product(node: Expr) -> Expr | None:
    """(c*a.*b).^n = c^n * a.^n .* b.^n for an integer n, scalars or elementwise products; for
    scalars any number n when all factors but at most one are positive
    (((2*pi)^k*det(S))^(-1/2) = (2*pi)^(-k/2)*det(S)^(-1/2))."""
    base, n = node.args
    if base.op == "num":
        return None
    if not _is_int(n):
        return _pow_of_positive_product(node)
    c, rest = split_coefficient(base)
    out = tuple(range(node.ndim))
    if c != 1:
        return einsum([(power(num(c), n), ()), (power(rest, n), out)], out)
    if _elementwise_product(base):
        return einsum([(power(a, n), i) for a, i in zip(base.args, base.data[0])],
                      base.data[1])
    return None


def _pow_of_positive_product(node: Expr) -> Expr | None:
    """(c*a*b)^p = c^p * a^p * b^p for scalars and a non-integer p, where all factors but at
    most one are positive."""
    base, n = node.args
    if node.ndim or n.op != "num":
        return None
    c, rest = split_coefficient(base)
    factors = [rest] if c != 1 else [a for a in base.args] if (
        base.op == "einsum" and all(a.ndim == 0 for a in base.args)) else None
    if factors is None or c < 0 or sum(not is_positive(f) for f in factors) > 1:
        return None
    scalars = [(power(num(c), n), ())] if c != 1 else []
    return einsum(scalars + [(power(f, n), ()) for f in factors], ())


def _elementwise_product(e: Expr) -> bool:
    """An einsum that multiplies entries on the output indices (and scalars): a.*b, s*v."""
    if e.op != "einsum":
        return False
    idx, out = e.data
    return len(set(out)) == len(out) and all(i in ((), out) for i in idx)


def _pow_of_zero(node: Expr) -> Expr | None:
    base, e = node.args
    if base.op == "zero" and _number(e) is not None and _number(e) > 0:
        return base
    return None


def _inverse_of(fn: str) -> Rule:
    """f(g(x)) = x for exp/log."""
    other = {"exp": "log", "log": "exp"}[fn]

    def rule(node: Expr) -> Expr | None:
        (a,) = node.args
        return a.args[0] if a.op == other else None
    return rule


def _log_of_power(node: Expr) -> Expr | None:
    """log(b^e) = e*log(b) where b^e is real only for b >= 0, or b is provably positive."""
    (a,) = node.args
    if a.op != "pow" or a.args[1].ndim:
        return None
    b, e = a.args
    if not (is_positive(b) or (e.op == "num" and e.data.denominator != 1)):
        return None
    if b.ndim:
        return einsum([(e, ()), (apply("log", b), tuple(range(b.ndim)))], tuple(range(b.ndim)))
    return einsum([(e, ()), (apply("log", b), ())], ())


def _log_of_product(node: Expr) -> Expr | None:
    """log(a.*b.*c) = log(a) + log(b) + log(c) when all but at most one factor are positive;
    scalar factors of an array broadcast (log(exp(z)/s) = z - log(s))."""
    (a,) = node.args
    c, rest = split_coefficient(a)
    if a.ndim and not _elementwise_product(rest):
        return None
    factors = list(rest.args) if rest.op == "einsum" else [rest]
    if c <= 0 or len(factors) < 2 or (not a.ndim and any(f.ndim for f in factors)):
        return None  # log(2*pi) stays whole
    if sum(not is_positive(f) for f in factors) > 1:
        return None
    if a.ndim and rest.data[1] != tuple(range(a.ndim)):
        return None
    terms = [(1, broadcast(apply("log", f), node.shape) if not f.ndim else apply("log", f))
             for f in factors]
    if c != 1:
        terms.append((1, broadcast(apply("log", num(c)), node.shape)))
    return add(terms)


def _numeric_fold(fn: str, table: dict[Fraction, Fraction]) -> Rule:
    def rule(node: Expr) -> Expr | None:
        (a,) = node.args
        value = _number(a)
        if value is not None and value in table:
            return num(table[value])
        if a.op == "zero" and 0 in table:
            return broadcast(num(table[0]), node.shape)
        return None
    return rule


def _fold_sign_like(fn: str) -> Rule:
    fold = {"abs": abs, "sign": lambda v: (v > 0) - (v < 0), "relu": lambda v: max(v, 0)}[fn]

    def rule(node: Expr) -> Expr | None:
        (a,) = node.args
        if a.op == "num":
            return num(fold(a.data))
        return zero(node.shape) if a.op == "zero" else None
    return rule


def _transposed_arg(node: Expr) -> Expr | None:
    """The argument if it is a plain transpose A', else None."""
    (a,) = node.args
    if a.op == "einsum" and len(a.args) == 1 and a.data[0][0] == a.data[1][::-1] \
            and a.args[0].ndim == 2 and a.data[0][0][0] != a.data[0][0][1]:
        return a.args[0]
    return None


def _matrix_and_scalar(a: Expr) -> tuple[Fraction, list[Expr], Expr] | None:
    """a = c * s1 * s2 * ... * M for scalars s and one matrix M, if so."""
    c, rest = split_coefficient(a)
    if rest.op == "einsum":
        mats = [(x, i) for x, i in zip(rest.args, rest.data[0]) if x.ndim]
        if len(mats) == 1 and mats[0][1] == rest.data[1]:
            return c, [x for x in rest.args if not x.ndim], mats[0][0]
        return None
    return (c, [], rest) if c != 1 else None


def _inv_rules(node: Expr) -> Expr | None:
    (a,) = node.args
    if a.op == "inv":
        return a.args[0]
    if a.op == "delta":
        return a
    t = _transposed_arg(node)
    if t is not None:
        return transposed(apply("inv", t))
    split = _matrix_and_scalar(a)
    if split is not None:       # inv(s*M) = s^-1 * inv(M)
        c, scalars, m = split
        factors = [(power(num(c), -1), ())] + [(power(s, -1), ()) for s in scalars]
        return einsum(factors + [(apply("inv", m), (0, 1))], (0, 1))
    return None


def _mpow_rules(node: Expr) -> Expr | None:
    a, k = node.args
    k = int(k.data)
    if k <= 1 or a.op == "delta":
        return matrix_power(a, k) if k <= 1 else a
    if a.op == "mpow":      # (A^p)^q = A^(p*q)
        return matrix_power(a.args[0], int(a.args[1].data) * k)
    t = _transposed_arg(Expr(node.op, (a,), node.data, node.shape))
    if t is not None:       # (A')^k = (A^k)'
        return transposed(matrix_power(t, k))
    return None


def _det_rules(node: Expr) -> Expr | None:
    (a,) = node.args
    if a.op == "inv":
        return power(apply("det", a.args[0]), -1)
    if a.op == "delta":
        return num(1)
    t = _transposed_arg(node)
    return apply("det", t) if t is not None else None


def _logdet_rules(node: Expr) -> Expr | None:
    (a,) = node.args
    if a.op == "inv":
        return scale(-1, apply("logdet", a.args[0]))
    if a.op == "delta":
        return num(0)
    t = _transposed_arg(node)
    return apply("logdet", t) if t is not None else None


RULES: dict[str, list[Rule]] = {
    "pow": [_pow_trivial, _pow_of_ones, _pow_numbers, _pow_of_zero, _pow_of_pow, _pow_of_product],
    "exp": [_inverse_of("exp"), _numeric_fold("exp", {Fraction(0): Fraction(1)})],
    "log": [_inverse_of("log"), _numeric_fold("log", {Fraction(1): Fraction(0)}),
            _log_of_power, _log_of_product],
    "sin": [_numeric_fold("sin", {Fraction(0): Fraction(0)})],
    "cos": [_numeric_fold("cos", {Fraction(0): Fraction(1)})],
    "tan": [_numeric_fold("tan", {Fraction(0): Fraction(0)})],
    "tanh": [_numeric_fold("tanh", {Fraction(0): Fraction(0)})],
    "abs": [_fold_sign_like("abs")],
    "sign": [_fold_sign_like("sign")],
    "relu": [_fold_sign_like("relu")],
    "inv": [_inv_rules],
    "mpow": [_mpow_rules],
    "det": [_det_rules],
    "logdet": [_logdet_rules],
}
