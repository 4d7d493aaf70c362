"""Names for repeated subexpressions, as textbooks write them:
``diag(s) - s*s' where s = exp(x)/sum(exp(x))``.

Two kinds of name, tried in turn:

* a *quantity* of the function (or of its gradient, for a Hessian) that is an elementwise
  product, such as the softmax ``exp(x)/sum(exp(x))`` or ``exp(u)./(exp(u) + 1)``: it is
  absorbed wherever its factors stand in a product of the derivative, so that
  ``exp(x)*exp(x)'/sum(exp(x))^2`` reads ``s*s'``;
* any part of the derivative whose notation occurs twice or more and prints at least
  ``MIN_LENGTH`` characters (``1/2*(G + G') where G = ...``).

The rule: a name is kept where it is used at least twice and the text with its binding is
shorter than the text without it. Names are single letters that no variable, dimension or
function of the result uses (lower case for scalars and vectors, upper case for matrices).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from ..core.ir import Expr, depends_on, einsum, power, topological
from ..core.simplify import simplify
from .render import renderer
from .tree import (
    IndexForm,
    Mono,
    Num,
    Sum,
    Sym,
    Transpose,
    Where,
    children,
    mono,
    names,
)

MIN_LENGTH = 12
SLACK = 4  # characters a part may take beyond its own text where it is written: parentheses
MAX_QUANTITIES = 8
MAX_NODES = 3_000  # beyond this, results are printed plain (naming re-raises the result)
LOWER = "stuvwrqpgh"
UPPER = "GHKMNPQRTUW"

Raise = Callable[[Expr, dict], object]  # (IR, {note: ndim} to fill) -> notation


def with_names(derivative: Expr, quantities: list[Expr], wrt: tuple[str, ...],
               raise_: Raise, taken: set[str], symmetric_of: Expr | None = None,
               show: Callable[[object], str] | None = None):
    """The notation of ``derivative`` with names for repeated parts (a ``Where``), or plain
    where no name makes it shorter. ``quantities`` are the expressions (the function, the
    gradient) whose parts that depend on a variable of ``wrt`` may be named; where the
    derivative is sym(G) of ``symmetric_of`` = G, ``1/2*(G + G') where G = ...`` is offered.
    ``show``: the text renderer to measure candidates with (one that prints the result after
    reuses what measuring printed)."""
    shapes: dict = {}
    plain = raise_(derivative, shapes)
    if isinstance(plain, IndexForm):
        return plain
    dag = _Dag(derivative)
    if len(dag.order) > MAX_NODES:
        return plain
    taken = set(taken) | _symbols(plain)
    best, bindings = plain, []
    length = _Length(show)
    best_length = length(best, bindings)
    ir = derivative
    for q in _quantities(dag, quantities, wrt):
        if sum(1 for n in topological(q) if n.args) < 2:
            continue  # one operation on variables (x.^2, x.*y) is clearer written out
        name = _fresh(q.ndim, taken)
        named = Expr("named", (q,), name, q.shape)
        named_ir = _absorb(dag, q, named)
        # raising writes each use of a node at most once, so a name used once in the IR is
        # used once in its notation: no need to raise it to see that
        if named_ir is ir or dag.uses(named_ir, named) < 2:
            continue
        shapes_q: dict = {}
        note = raise_(named_ir, shapes_q)
        if names(note).count(name) < 2:
            continue
        candidate = bindings + [(name, raise_(q, shapes_q))]
        candidate_length = length(note, candidate)
        if candidate_length < best_length:
            best, bindings, ir, shapes = note, candidate, named_ir, shapes_q
            best_length = candidate_length
            dag = _Dag(ir)
            taken.add(name)
    best, bindings = _name_repeats(best, bindings, shapes, taken, length)
    if symmetric_of is not None and symmetric_of is not derivative:  # G symmetric: sym(G) = G
        g_shapes: dict = {}
        g = raise_(symmetric_of, g_shapes)
        name = _fresh(2, taken | {n for n, _ in bindings})
        term, flipped = Mono(Fraction(1), (), (Sym(name),)), Mono(Fraction(1), (), (
            Transpose(Sym(name)),))
        half = Mono(Fraction(1, 2), (), (Sum((term, flipped)),))
        sym_note, sym_bindings = _name_repeats(g, [], g_shapes, taken | {name}, length)
        candidate = [(name, sym_note)] + sym_bindings
        if not isinstance(g, IndexForm) and length(half, candidate) < length(best, bindings):
            best, bindings = half, candidate
    if not bindings:
        return best
    return Where(best, tuple(n for n, _ in bindings), tuple(v for _, v in bindings))


def _symbols(note) -> set[str]:
    """The names written in ``note`` (each shared part looked at once)."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = [note]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, Sym):
            found.add(n.name)
        else:
            stack.extend(children(n))
    return found


class _Dag:
    """The IR being named, walked once for all the quantities tried on it: its nodes in
    order, each node's parents, and the bases of each product's factors."""

    def __init__(self, root: Expr):
        self.root = root
        self.order = topological(root)
        self.position = {id(n): k for k, n in enumerate(self.order)}
        self.ids = self.position.keys()
        self.parents: dict[int, list[Expr]] = {}
        for n in self.order:
            for a in n.args:
                self.parents.setdefault(id(a), []).append(n)
        self.products = [(n, {id(_base(a)[0]) for a in n.args}) for n in self.order
                         if n.op == "einsum"]

    def uses(self, root: Expr, node: Expr) -> int:
        """How often ``node`` (made after this DAG) is written in ``root`` (this DAG with some
        parts rebuilt) written out as a tree: the DAG's own nodes cannot hold it, so only the
        rebuilt parts are walked."""
        occurrences: dict[int, int] = {}
        seen: set[int] = set()
        stack = [(root, False)]
        while stack:
            n, expanded = stack.pop()
            if expanded:
                occurrences[id(n)] = sum(1 if a is node else occurrences.get(id(a), 0)
                                         for a in n.args)
            elif n is not node and id(n) not in seen and id(n) not in self.ids:
                seen.add(id(n))
                stack.append((n, True))
                stack.extend((a, False) for a in n.args)
        return 1 if root is node else occurrences.get(id(root), 0)


# --- quantities of the function, absorbed into products ----------------------------------------

def _quantities(derivative: _Dag, quantities: list[Expr], wrt: tuple[str, ...]) -> list[Expr]:
    """Elementwise products in the quantities (each without its factors that do not depend
    on ``wrt``: sum(y)*exp(z)/sum(exp(z)) offers the softmax) whose every factor's base
    occurs in the derivative, largest first."""
    present = set(derivative.order)
    found: list[Expr] = []
    for root in quantities:
        for e in topological(root):
            if e.op != "einsum":
                continue
            kept = [(a, i) for a, i in zip(e.args, e.data[0]) if any(depends_on(a, w) for w in wrt)]
            for target in {i for _, i in kept if i and len(set(i)) == len(i)}:
                # the factors on one index tuple: exp(-u)./(exp(-u) + 1) inside X'*(y.*...)
                group = [(a, i) for a, i in kept if i == target or (not i and
                                                                 target == e.data[1])]
                if len(group) < 2:
                    continue
                q = simplify(einsum(group, target))
                if q.op == "einsum" and q not in found \
                        and all(_base(a)[0] in present for a in q.args):
                    found.append(q)
    found.sort(key=lambda e: -len(topological(e)))
    return found[:MAX_QUANTITIES]


def _elementwise(e: Expr) -> bool:
    idx, out = e.data
    return len(set(out)) == len(out) and all(i in ((), out) for i in idx)


def _base(x: Expr) -> tuple[Expr, Fraction]:
    if x.op == "pow" and x.args[1].op == "num":
        return x.args[0], x.args[1].data
    return x, Fraction(1)


def _absorb(dag: _Dag, q: Expr, name: Expr) -> Expr:
    """The DAG's root with ``q`` written as ``name``: the node itself, and its factors wherever
    a product contains all of them (with at least their powers). Only the products that hold
    q's factors, q, and what lies above them are rebuilt."""
    wanted = {id(_base(a)[0]) for a in q.args}
    seeds = [n for n, bases in dag.products if wanted <= bases]
    if id(q) in dag.ids:
        seeds.append(q)
    if not seeds:
        return dag.root  # no product holds all of q's factors, and q is not there itself
    affected: dict[int, Expr] = {}
    stack = list(seeds)
    while stack:
        n = stack.pop()
        if id(n) not in affected:
            affected[id(n)] = n
            stack.extend(dag.parents.get(id(n), ()))
    new: dict[int, Expr] = {}
    for node in sorted(affected.values(), key=lambda n: dag.position[id(n)]):  # children first
        if node is q:
            new[id(node)] = name
            continue
        args = tuple(new.get(id(a), a) for a in node.args)
        rebuilt = node if args == node.args else Expr(node.op, args, node.data, node.shape)
        if rebuilt.op == "einsum" and wanted <= {id(_base(a)[0]) for a in rebuilt.args}:
            rebuilt = _absorb_product(rebuilt, q, name)
        new[id(node)] = rebuilt
    return new.get(id(dag.root), dag.root)


def _absorb_product(e: Expr, q: Expr, name: Expr) -> Expr:
    factors = [(*_base(x), idx) for x, idx in zip(e.args, e.data[0])]  # (base, power, idx)
    wanted = [(*_base(x), bool(idx)) for x, idx in zip(q.args, q.data[0])]
    changed = False
    while True:
        targets = {idx for b, _, idx in factors if idx and len(set(idx)) == len(idx)
                   and len(idx) == q.ndim}
        for target in sorted(targets):
            taken = _fit(factors, wanted, target)
            if taken is not None:
                factors = taken + [(name, Fraction(1), target)]
                changed = True
                break
        else:
            break
    if not changed:
        return e
    kept = [(b if p == 1 else power(b, p), idx) for b, p, idx in factors if p != 0]
    if len(kept) == 1 and kept[0][1] == e.data[1]:
        return kept[0][0]
    return einsum(kept, e.data[1])


def _fit(factors: list, wanted: list, target: tuple):
    """The factors less one copy of q's on ``target``, or None if q does not fit."""
    rest = list(factors)
    for base, p, is_array in wanted:
        idx = target if is_array else ()
        for n, (b, have, i) in enumerate(rest):
            if b is base and i == idx and have / p >= 1:
                rest[n] = (b, have - p, i)
                break
        else:
            return None
    return rest


# --- repeated notation ------------------------------------------------------------------------

def _name_repeats(note, bindings: list, shapes: dict, taken: set[str], length: _Length):
    """Greedily name the repeated part that saves the most characters."""
    current = length(note, bindings)
    while True:
        counts = {sub: k for sub, k in _occurrences([note] + [v for _, v in bindings]).items()
                  if sub in shapes and not isinstance(sub, (Sym, Num))}
        best = None
        for sub, k in counts.items():
            if k < 2:
                continue
            size = length.size(sub)
            if size >= MIN_LENGTH:
                saving = (k - 1) * size
                if best is None or saving > best[0]:
                    best = (saving, sub, k, size)
        if best is None:
            return note, bindings
        _, sub, k, size = best
        name = _fresh(shapes[sub], taken)
        # at most, each of the k copies gives way to the name, with some parentheses; the
        # binding costs the name, the part, 2, and 5 for the first (see _Length): where that
        # cannot be shorter, measuring it would only say so
        if k * (size + SLACK - len(name)) <= len(name) + size + 2 + (0 if bindings else 5):
            return note, bindings
        shorter = _replace(note, sub, Sym(name))
        candidate = [(n, _replace(v, sub, Sym(name))) for n, v in bindings] + [(name, sub)]
        new_length = length(shorter, candidate)
        if new_length >= current:
            return note, bindings
        note, bindings, current = shorter, candidate, new_length
        taken.add(name)


def _occurrences(roots: list) -> dict:
    """How often each part is written in ``roots``, in the order a walk first meets them:
    counted over the distinct parts (a part written k times is looked into once, not k
    times; the tree of a long derivative is far larger than its distinct parts)."""
    first: dict = {}  # distinct parts, as a depth-first walk of every copy first meets them
    stack = list(reversed(roots))
    while stack:
        n = stack.pop()
        if n in first:
            continue  # its parts were all met inside its first copy
        first[n] = children(n)
        stack.extend(first[n])
    # each part's count is the sum over its parents of theirs, parents done first
    parents: dict = dict.fromkeys(first, 0)
    for kids in first.values():
        for c in kids:
            parents[c] += 1
    counts: dict = dict.fromkeys(first, 0)
    for r in roots:
        counts[r] += 1
    ready = [n for n, p in parents.items() if p == 0]
    while ready:
        n = ready.pop()
        for c in first[n]:
            counts[c] += counts[n]
            parents[c] -= 1
            if parents[c] == 0:
                ready.append(c)
    return counts


def _replace(note, old, new):
    """``note`` with each ``old`` in it written ``new``; parts without ``old`` stay the same
    objects (so printing them again is a look-up)."""
    done: dict[int, object] = {}
    target = hash(old)

    def walk(n):
        key = id(n)
        if key in done:
            return done[key]
        if hash(n) == target and n == old:
            out = new
        elif isinstance(n, (Sym, Num)):
            out = n
        else:
            values, changed = {}, False
            for name in n.note_fields:
                v = getattr(n, name)
                if isinstance(v, tuple):
                    w = tuple(walk(x) if _is_note(x) else x for x in v)
                    changed |= any(a is not b for a, b in zip(v, w))
                elif _is_note(v):
                    w = walk(v)
                    changed |= w is not v
                else:
                    w = v
                values[name] = w
            if not changed:
                out = n
            else:
                if isinstance(n, Sum):  # a sum's terms stay monomials
                    values["terms"] = tuple(mono(t, False) for t in values["terms"])
                out = type(n)(**values)
        done[key] = out
        return out

    return walk(note)


def _is_note(v) -> bool:
    return v is not None and not isinstance(v, (str, Fraction, bool, int))


class _Length:
    """Printed lengths (whitespace aside) of the candidates of one result: they share most
    of their parts, and each part is printed once."""

    def __init__(self, show: Callable[[object], str] | None = None):
        self.show = show or renderer()

    def size(self, note) -> int:
        return len(re.sub(r"\s+", "", self.show(note)))

    def __call__(self, note, bindings: list) -> int:
        return self.size(note) + sum(len(n) + self.size(v) + 2 for n, v in bindings) + (
            5 if bindings else 0)


def _fresh(ndim: int, taken: set[str]) -> str:
    pool = UPPER if ndim == 2 else LOWER
    for letter in pool:
        if letter not in taken:
            return letter
    n = 1
    while f"{pool[0]}{n}" in taken:
        n += 1
    return f"{pool[0]}{n}"
