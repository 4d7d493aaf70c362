"""Differentiation: one chain-rule engine over the DAG, the rules themselves live with the
primitives in :mod:`matdiff.core.ir`.

``derivative(f, x)`` has shape ``f.shape + x.shape``: the gradient for a scalar f, the Jacobian
``J[i, j] = df[i]/dx[j]`` for a vector f, a 4-index tensor for a matrix of a matrix. The result
is again an IR expression, so a Hessian is the derivative of a derivative.
"""

from __future__ import annotations

from .. import budget
from ..errors import MatdiffError
from .ir import (
    PRIMITIVES,
    Expr,
    add,
    depends_on,
    einsum,
    identity_tangent,
    merge,
    topological,
    zero,
)


def derivative(f: Expr, x: Expr, direction: Expr | None = None) -> Expr:
    """The derivative of ``f`` with respect to the variable node ``x`` (not simplified).

    Given a ``direction`` of x's shape, the derivative applied to it instead: the differential
    df in that direction, of f's shape (the same rules, seeded with the direction for x's
    tangent, so no tensor of more axes than f's parts is built on the way)."""
    if x.op != "var":
        raise ValueError("derivative(): x must be a variable")
    if direction is not None and direction.shape != x.shape:
        raise ValueError("derivative(): the direction must have x's shape")
    name, k = x.data[0], (x.ndim if direction is None else 0)
    tangent: dict[int, Expr | None] = {}
    for node in topological(f):
        budget.check_time("differentiating")
        if not depends_on(node, name):
            tangent[id(node)] = None
        elif node.op == "var":
            tangent[id(node)] = identity_tangent(x.shape) if direction is None else direction
        else:
            tangent[id(node)] = chain_rule(node, [tangent[id(a)] for a in node.args], k, name)
    result = tangent[id(f)]
    if result is None:
        return zero(f.shape + (x.shape if direction is None else ()))
    return result


def chain_rule(node: Expr, tangents: list[Expr | None], k: int, name: str = "x") -> Expr:
    """One node's rule: d(node) from its arguments' derivatives (None where constant), each
    with ``k`` trailing axes of the variable (0 for a differential). The derivation steps
    (explain/steps.py) apply the same rules one node at a time."""
    if node.op == "sum":
        return _sum_rule(node, tangents)
    if node.op == "einsum":
        return _product_rule(node, tangents, k)
    if node.op == "merge":  # linear: the variable's axes stay as they are
        return merge(tangents[0], node.data + (1,) * k)
    primitive = PRIMITIVES[node.op]
    if not primitive.differentiable:
        raise NotDifferentiable(node.op,
            f"{node.op} is not differentiable: its derivative is 0 wherever it exists "
            f"and undefined where its argument is 0",
            hint=f"differentiate an expression without {node.op}(...) of {name}")
    return primitive.jvp(node, tangents, k)


class NotDifferentiable(MatdiffError):
    """A primitive with no derivative (sign) on the path to the variable."""

    def __init__(self, function: str, message: str, hint: str):
        super().__init__(message, hint=hint)
        self.function = function


def _sum_rule(node: Expr, tangents: list[Expr | None]) -> Expr:
    return add([(c, t) for c, t in zip(node.data, tangents) if t is not None])


def _product_rule(node: Expr, tangents: list[Expr | None], k: int) -> Expr:
    """d(a_I b_J ...) = da_IP b_J ... + a_I db_JP ... with fresh indices P for the variable."""
    factor_indices, out = node.data
    first_free = 1 + max((i for idx in factor_indices for i in idx), default=-1)
    p = tuple(range(first_free, first_free + k))
    factors = list(zip(node.args, factor_indices))
    terms = []
    for n, t in enumerate(tangents):
        if t is None:
            continue
        with_tangent = factors[:n] + [(t, factor_indices[n] + p)] + factors[n + 1:]
        terms.append((1, einsum(with_tangent, out + p)))
    return add(terms)
