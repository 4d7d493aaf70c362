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
from ..core.differentiate import derivative
from ..core.ir import Expr, einsum, num
from ..errors import MatdiffError
from .parse import (
    DIFFERENTIAL,
    Binary,
    Call,
    Name,
    Node,
    Num,
    Transpose,
    Unary,
    children,
    post_order,
)
from .types import TANGENT_PROPERTIES, Decl, direction_base


def lower(root: Node, variables: dict[str, Decl], wrt: str | None = None) -> Expr:
    """The IR of a typed tree (``types.infer`` has set every node's shape and orientation).

    ``wrt`` is the variable X of the derivation that a differential d(u) is taken along (in
    the direction dX, every other variable constant); without it, the expression's only
    variable."""
    value: dict[int, Expr | list] = {}
    for node in post_order(root):
        if isinstance(node, Call) and node.fn == DIFFERENTIAL:
            u = _built(value.pop(id(node.args[0])))
            if wrt is not None and wrt not in variables:
                value[id(node)] = ir.zero(u.shape)  # u does not use X: d(a'*dX*b) = 0
                continue
            x, dx = differential_variables(node, variables, wrt)
            value[id(node)] = derivative(u, x, dx)
            continue
        if isinstance(node, Binary) and node.op in ("+", "-"):
            # a + b - c + ... gathers its terms first: one sum node, built once
            left, right = value.pop(id(node.left)), _built(value.pop(id(node.right)))
            left = _built(left) if isinstance(left, _Chain) else left
            if node.shape and not node.left.shape:  # scalar + array: the scalar fills it
                left = ir.broadcast(_built(left), node.shape)
            if node.shape and not node.right.shape:
                right = ir.broadcast(right, node.shape)
            terms = left if isinstance(left, list) else [(1, left)]
            terms.append((1 if node.op == "+" else -1, right))
            value[id(node)] = terms
            continue
        if isinstance(node, Binary) and node.op == "*":
            left = value.pop(id(node.left))
            chain = _extended(left, node, value[id(node.right)])
            if chain is not None:
                value.pop(id(node.right))
                value[id(node)] = chain
                continue
            value[id(node.left)] = _built(left)
        args = [_built(value.pop(id(c))) for c in children(node)]
        value[id(node)] = _lower_node(node, args, variables)
    return _built(value[id(root)])


class _Chain(list):
    """A run of matrix products A*B*C*... gathered first and built as one contraction (built
    pairwise, each level would re-flatten all the factors before it: quadratic)."""

    row: Expr | None = None      # a row vector in front: x'*A*B
    column: Expr | None = None   # a column vector at the end: A*B*x


def _extended(left, node: Binary, right) -> _Chain | None:
    if isinstance(left, _Chain) and left.column is None and isinstance(right, Expr):
        if right.ndim == 2:
            left.append(right)
            return left
        if right.ndim == 1 and not node.right.row:
            left.column = right
            return left
        return None
    left = _built(left)
    if not isinstance(right, Expr) or right.ndim != 2:
        return None
    if left.ndim == 2:
        return _Chain([left, right])
    if left.ndim == 1 and node.left.row:
        chain = _Chain([right])
        chain.row = left
        return chain
    return None


def _built(v: Expr | list) -> Expr:
    if isinstance(v, _Chain):
        factors, start = [], 0
        if v.row is not None:
            factors.append((v.row, (0,)))
        for k, m in enumerate(v):
            factors.append((m, (k, k + 1)))
        end = len(v)
        if v.column is not None:
            factors.append((v.column, (end,)))
        out = tuple(i for i, free in ((start, v.row is None), (end, v.column is None)) if free)
        return einsum(factors, out)
    return ir.add(v) if isinstance(v, list) else v


def variable(decl: Decl) -> Expr:
    return ir.var(decl.name, decl.shape, decl.props)


def differential_variables(node: Node, variables: dict[str, Decl],
                           wrt: str | None) -> tuple[Expr, Expr]:
    """The variable X a differential d(u) is taken by and its direction dX (the name dX from
    the text where it appears there, else a new direction in X's space)."""
    if wrt is None:
        candidates = [n for n in variables if direction_base(n, set(variables)) is None]
        if len(candidates) != 1:
            raise MatdiffError("d(...) needs the variable it differentiates by",
                               column=node.pos, hint="pass wrt, as in parse('d(inv(X))', "
                               "wrt='X') or --wrt X")
        wrt = candidates[0]
    x = variable(variables[wrt])
    name = f"d{wrt}"
    if name in variables:
        dx = variable(variables[name])
        if dx.shape != x.shape:
            raise MatdiffError(f"{name} is the direction of d(...) but has another shape than "
                               f"{wrt}", column=node.pos, hint=f"rename the variable {name}")
        return x, dx
    return x, ir.var(name, x.shape, x.data[1] & TANGENT_PROPERTIES)


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


def _kron_axes(node: Node, first: int) -> tuple:
    """(row index, column index) of a kron operand, None for the side a vector lacks."""
    if len(node.shape) == 2:
        return first, first + 1
    if len(node.shape) == 1:
        return (None, first + 1) if node.row else (first, None)
    return None, None


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
    if fn == "commutation":
        return ir.commutation(*node.sizes)
    if fn == "kron":
        (a, b), (left, right) = args, node.args
        return ir.kron(a, _kron_axes(left, 0), b, _kron_axes(right, 2))
    (x,) = args
    if fn == "vec":
        return ir.vec(x)
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
