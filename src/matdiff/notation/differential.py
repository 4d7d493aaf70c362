"""Derivatives as linear maps: a derivative contracted with directions is an expression again.

The derivative D of F with respect to X (shape(F) + shape(X)) applied to a direction dX of X's
shape is the differential dF = D[dX]: one contraction over X's axes, simplified and raised like
any other expression, so d(inv(X)) reads ``-inv(X)*dX*inv(X)`` whatever the rank of D. The k-th
derivative applied to k directions is the k-th differential (``dx'*(A + A')*dx``); applied to
fewer, it is a directional derivative (the Hessian applied to V, of X's shape).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.ir import Expr, add, einsum, var
from ..core.simplify import simplify
from ..syntax.types import TANGENT_PROPERTIES


def apply_to(d: Expr, lead: int, directions: Sequence[Expr]) -> Expr:
    """``d`` with the axes after its first ``lead`` ones contracted, block by block, with the
    ``directions`` (the first direction on the first block); the axes left over stay free."""
    return simplify(_applied(d, lead, directions))


def _applied(d: Expr, lead: int, directions: Sequence[Expr]) -> Expr:
    if d.op == "sum" and d.ndim > 2:
        # the map is linear: each term meets the directions alone, so that a long sum of
        # tensors (a Hessian by a matrix) becomes a sum of matrix expressions
        return add([(c, _applied(t, lead, directions)) for c, t in zip(d.data, d.args)])
    idx = tuple(range(d.ndim))
    factors = [(d, idx)]
    start = lead
    for v in directions:
        block = idx[start:start + v.ndim]
        if tuple(d.shape[i] for i in block) != v.shape:
            raise ValueError(f"apply_to(): direction of shape {v.shape} for axes "
                             f"{tuple(d.shape[i] for i in block)}")
        factors.append((v, block))
        start += v.ndim
    return einsum(factors, idx[:lead] + idx[start:])


def direction(x: Expr, taken: set[str], name: str | None = None) -> Expr:
    """The direction variable in x's space: named ``name``, or ``d`` + x's name (``dX_2``,
    ``dX_3``... where that is taken); it shares x's symmetry, which the input language gives
    an undeclared ``dX`` as well."""
    base, props = x.data
    if name is None:
        name = f"d{base}"
        k = 2
        while name in taken:
            name, k = f"d{base}_{k}", k + 1
    return var(name, x.shape, props & TANGENT_PROPERTIES)
