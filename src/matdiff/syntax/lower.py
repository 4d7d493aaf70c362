"""Lowering: the typed expression tree becomes the core IR.

Matrix product, transpose, trace, dot, outer, Hadamard, diag, sum and the norms are sugar:
each becomes a contraction (or a power) of the few primitives in :mod:`matdiff.core.ir`.
Orientation (row or column vector) only decides which contraction a ``*`` is; IR vectors have
none.
"""

from __future__ import annotations

from fractions import Fraction

from .. import budget
from ..core import ir
from ..core.ir import Expr, einsum, num
from .parse import Binary, Call, Name, Node, Num, Transpose, Unary, children, post_order
from .types import Decl


def lower(root: Node, variables: dict[str, Decl]) -> Expr:
    """The IR of a typed tree (``types.infer`` has set every node's shape and orientation)."""
    value: dict[int, Expr | list] = {}
    for node in post_order(root):
        if isinstance(node, Binary) and node.op in ("+", "-"):
            # a + b - c + ... gathers its terms first: one sum node, built once
            left, right = value.pop(id(node.left)), _built(value.pop(id(node.right)))
            if node.shape and not node.left.shape:  # scalar + array: the scalar fills it
                left = ir.broadcast(_built(left), node.shape)
            if node.shape and not node.right.shape:
                right = ir.broadcast(right, node.shape)
            terms = left if isinstance(left, list) else [(1, left)]
            terms.append((1 if node.op == "+" else -1, right))
            value[id(node)] = terms
            continue
        args = [_built(value.pop(id(c))) for c in children(node)]
        value[id(node)] = _lower_node(node, args, variables)
    return _built(value[id(root)])


def _built(v: Expr | list) -> Expr:
    return ir.add(v) if isinstance(v, list) else v


def variable(decl: Decl) -> Expr:
    return ir.var(decl.name, decl.shape, decl.props)


def _lower_node(node: Node, args: list[Expr], variables: dict[str, Decl]) -> Expr:
    if isinstance(node, Num):
        return num(node.value)
    if isinstance(node, Name):
        if node.name == "pi":
            return ir.const("pi")
        if node.name == "eye":
            return ir.delta(node.shape[0])
        if node.name not in variables:  # types.infer read it as a dimension's size
            return ir.dimsize(node.name)
        return variable(variables[node.name])
    if isinstance(node, Unary):
        return ir.neg(args[0])
    if isinstance(node, Transpose):
        return ir.transpose(args[0])
    if isinstance(node, Call):
        return _call(node, args)
    assert isinstance(node, Binary)
    left, right = args
    if node.op == "*":
        return _product(node, left, right)
    if node.op in ("/", "./"):
        return ir.hadamard(left, ir.power(right, -1))
    if node.op == ".*":
        return ir.hadamard(left, right)
    if node.op == "^" and left.ndim == 2:
        return _matrix_power(left, int(node.right.value))
    return _elementwise_power(left, right)


def _product(node: Binary, a: Expr, b: Expr) -> Expr:
    """The ``*`` of the surface syntax: scaling, matrix product, dot or outer product."""
    if not a.ndim or not b.ndim:
        return ir.hadamard(a, b)
    if a.ndim == 2 and b.ndim == 2:
        return einsum([(a, (0, 1)), (b, (1, 2))], (0, 2))
    if a.ndim == 2:                       # matrix * column
        return einsum([(a, (0, 1)), (b, (1,))], (0,))
    if b.ndim == 2:                       # row * matrix
        return einsum([(a, (0,)), (b, (0, 1))], (1,))
    if node.left.row:                     # row * column: dot product
        return einsum([(a, (0,)), (b, (0,))], ())
    return einsum([(a, (0,)), (b, (1,))], (0, 1))  # column * row: outer product


def _matrix_power(a: Expr, k: int) -> Expr:
    budget.check("power", k, f"the matrix power {k}")
    return ir.matrix_power(a, k)


def _elementwise_power(base: Expr, exponent: Expr) -> Expr:
    if base.ndim == 0 and exponent.ndim:  # scalar .^ array: the base broadcasts
        base = ir.broadcast(base, exponent.shape)
    return ir.power(base, exponent)


def _call(node: Call, args: list[Expr]) -> Expr:
    fn = node.fn
    if fn == "eye":
        return ir.delta(node.shape[0])
    if fn in ("vector", "matrix"):
        return ir.broadcast(num(node.args[0].value), node.shape)
    (x,) = args
    every = tuple(range(x.ndim))
    if fn in ir.PRIMITIVES:
        return ir.apply(fn, x)
    if fn == "sqrt":
        return ir.power(x, Fraction(1, 2))
    if fn == "tr":
        return einsum([(x, (0, 0))], ())
    if fn == "sum":
        return einsum([(x, every)], ())
    if fn == "norm1":
        return einsum([(ir.apply("abs", x), every)], ())
    if fn == "norm2":
        return ir.power(einsum([(x, every), (x, every)], ()), Fraction(1, 2))
    if fn == "diag" and x.ndim == 1:
        return einsum([(x, (0,)), (ir.delta(x.shape[0]), (0, 1))], (0, 1))
    if fn == "diag":
        return einsum([(x, (0, 0))], (0,))
    raise AssertionError(f"no lowering for {fn}")
