"""Long products, powers and deep nestings: the passes that were quadratic (or worse) in the
length of the input give the same, correct results in near-linear time. Times are measured by
benchmarks/long_inputs.py; here the mechanisms are checked against independent oracles (naive
versions of the same computation, finite differences, NumPy)."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

import matdiff
from matdiff.core import ir
from matdiff.core.simplify import simplify
from matdiff.notation.factor import _common_multiset, _without
from matdiff.notation.names import _occurrences
from matdiff.notation.tree import Mono, Num, Sum, Sym, children

RNG = np.random.default_rng(7)


def _fd_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# --- factoring: common factors of many long terms, counted ----------------------------------

def _naive_common(lists):
    first, *others = lists
    pools = [list(o) for o in others]
    common = []
    for f in first:
        if all(f in pool for pool in pools):
            common.append(f)
            for pool in pools:
                pool.remove(f)
    return common


def test_common_factors_are_the_multiset_intersection_in_the_first_terms_order():
    rng = random.Random(3)
    for _ in range(300):
        alphabet = [Sym(c) for c in "abcde"] + [Num(Fraction(2))]
        lists = [[rng.choice(alphabet) for _ in range(rng.randint(0, 7))]
                 for _ in range(rng.randint(1, 5))]
        common = _common_multiset(lists)
        assert common == _naive_common(lists)
        for lst in lists:
            rest = list(_without(tuple(lst), common))
            assert Counter(rest) + Counter(common) == Counter(lst)
            # the factors left keep their order
            it = iter(lst)
            assert all(any(f == g for g in it) for f in rest)


# --- naming: parts counted over distinct notes ------------------------------------------------

def _naive_counts(roots):
    counts: dict = {}
    for root in roots:
        stack = [root]
        while stack:
            n = stack.pop()
            counts[n] = counts.get(n, 0) + 1
            stack.extend(children(n))
    return counts


def _random_note(rng, depth):
    if depth == 0 or rng.random() < 0.3:
        return rng.choice([Sym("x"), Sym("y"), Num(Fraction(3))])
    kids = tuple(_random_note(rng, depth - 1) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.5:
        return Mono(Fraction(1), kids)
    return Sum(tuple(Mono(Fraction(1), (k,)) for k in kids))


def test_occurrences_count_every_copy_and_keep_the_walks_order():
    rng = random.Random(5)
    for _ in range(200):
        roots = [_random_note(rng, 5) for _ in range(rng.randint(1, 3))]
        roots.append(roots[0])  # a root that is also written again
        naive = _naive_counts(roots)
        counted = _occurrences(roots)
        assert counted == naive and list(counted) == list(naive)


# --- canonical order with many tied factors -----------------------------------------------

def test_contractions_with_many_tied_factors_meet_their_twins(monkeypatch):
    """2^12 arrangements of tied factors (past what is tried one by one): the same
    contraction written with its factors and summed indices in another order is the same
    node, and has the same value."""
    from matdiff.core import simplify as simplify_module
    greedy = []
    original = simplify_module._greedy_order
    monkeypatch.setattr(simplify_module, "_greedy_order",
                        lambda *a: greedy.append(1) or original(*a))
    n = 3
    x = ir.var("x", ("n",))
    fs = [ir.apply("sin", ir.add([(1, x), (k, ir.ones("n"))])) for k in range(12)]
    # sum(f_k)^2 as f_k[a]*f_k[b] over two summed indices: the two factors are tied
    factors = []
    for k, f in enumerate(fs):
        factors += [(f, (1 + 2 * k,)), (f, (2 + 2 * k,))]
    one = ir.einsum(factors, ())
    shuffled = list(factors)
    random.Random(1).shuffle(shuffled)
    relabel = {i: 100 - i for i in range(1, 25)}
    other = ir.einsum([(f, tuple(relabel[i] for i in idx)) for f, idx in shuffled], ())
    assert simplify(one) is simplify(other)
    assert greedy  # the arrangements were too many to try
    xv = RNG.normal(size=n)
    from matdiff.numeric.codegen import compile_numpy
    want = np.prod([np.sin(xv + k).sum() ** 2 for k in range(12)])
    for e in (one, simplify(one)):
        assert np.isclose(compile_numpy(e, {"x": ("n",)})(x=xv), want)


# --- long inputs, checked -------------------------------------------------------------------

def test_a_long_product_of_sums_differentiates_correctly():
    n = 40
    text = "*".join(f"(a + b{i})" for i in range(n))
    r = matdiff.derive(text, "a")
    b = RNG.normal(size=n)
    values = {f"b{i}": b[i] for i in range(n)}
    a = 0.3
    want = sum(np.prod(np.delete(a + b, i)) for i in range(n))
    got = matdiff.evaluate(r.text, declare=r.declaration, a=a, **values)
    assert np.isclose(got, want, rtol=1e-9)


def test_the_hessian_of_a_deep_nesting_is_right():
    depth = 30
    text = "sum(" + "sin(" * depth + "x" + ")" * depth + ")"
    r = matdiff.derive(text, "x", order=2)
    x = RNG.normal(size=3) * 0.5

    def grad(v):
        return matdiff.derive(text, "x").numpy()(x=v)

    fd = np.stack([_fd_gradient(lambda v, k=k: grad(v)[k], x) for k in range(3)])
    assert np.allclose(r.numpy()(x=x), fd, atol=1e-6)
    with matdiff.limits(parts=1_000_000, text_length=1_000_000):  # it is long to read back
        printed = matdiff.evaluate(r.text, declare=r.declaration, x=x)
    assert np.allclose(printed, fd, atol=1e-6)


def test_a_long_trace_prints_from_where_it_was_entered():
    n = 200
    text = "tr(" + "*".join(f"A{i}" for i in range(n)) + ")"
    r = matdiff.derive(text, "A7")
    mats = {f"A{i}": np.eye(2) + 0.1 * RNG.normal(size=(2, 2)) for i in range(n)}
    want = np.linalg.multi_dot([mats[f"A{i}"] for i in list(range(8, n)) + list(range(7))]).T
    assert np.allclose(matdiff.evaluate(r.text, declare=r.declaration, **mats), want)
    back = matdiff.evaluate(r.function_text, declare=r.declaration, **mats)
    assert np.isclose(back, np.trace(np.linalg.multi_dot([mats[f"A{i}"] for i in range(n)])))


def test_work_that_grows_as_a_square_is_refused_early_by_its_links():
    with pytest.raises(matdiff.LimitError) as caught:
        matdiff.derive("*".join(f"sin(a + {i})" for i in range(100)), "a", order=2)
    assert caught.value.limit == "ir_links" and "links" in str(caught.value)
    with pytest.raises(matdiff.LimitError, match="ir_links"):
        matdiff.derive("*".join(f"(a + b{i})" for i in range(10)), "a",
                       limits={"ir_links": 50})
    r = matdiff.derive("*".join(f"(a + b{i})" for i in range(10)), "a",
                       limits={"ir_links": 200})
    b = np.arange(10) / 7
    want = sum(np.prod(np.delete(0.5 + b, i)) for i in range(10))
    assert np.isclose(r.numpy()(a=0.5, **{f"b{i}": b[i] for i in range(10)}), want)
