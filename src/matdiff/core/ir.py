"""The core IR: tensors with named indices, and the primitives they are built from.

Every expression is an interned (hash-consed) :class:`Expr` node, so equal subexpressions are
one object and the expression is a DAG. Shapes are tuples of dimensions: a dimension is a
symbolic name (``"n"``) or an int. A vector has one axis, a matrix two; vectors have no
orientation here (row and column only matter to the surface syntax).

Structural ops:
    num     a rational constant (data: Fraction)           shape ()
    const   a named constant (data: "pi")                  shape ()
    dim     the size of a dimension, as a scalar (data: d) shape ()
    var     a variable (data: (name, props))
    zero    the zero tensor of a shape
    ones    the ones vector (d,)
    delta   the identity matrix (d, d)
    sum     a linear combination; data: coefficients, args: terms of one shape
    einsum  a contraction; data: (index tuple per factor, output indices)
    merge   groups of consecutive axes flattened into one axis each, column-major (the first
            axis of a group runs fastest, as vec stacks columns); data: the group sizes.
            vec, kron and the commutation matrix are merges of contractions.

Primitives (their facts, derivative and numerics stand together in ``PRIMITIVES``):
    pow (elementwise base ^ exponent, the exponent scalar or of the base's shape),
    exp log sin cos tan tanh abs sign relu (elementwise), inv det logdet (matrix),
    mpow (the matrix power A^k, k a whole number: one node, not k - 1 products).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .. import budget

Index = int


@dataclass(frozen=True)
class DimProduct:
    """A dimension that is a product of others (the m*p rows of kron(A, B)): the size is all
    that matters, so the factors are kept sorted, numbers first and folded into one."""

    factors: tuple[str | int, ...]

    def __str__(self) -> str:
        return "*".join(str(f) for f in self.factors)


Dim = str | int | DimProduct


def dim_product(*dims: Dim) -> Dim:
    """The product of dimensions in canonical form (an int or a name where it is one)."""
    number, names = 1, []
    for d in dims:
        for f in (d.factors if isinstance(d, DimProduct) else (d,)):
            if isinstance(f, int):
                number *= f
            else:
                names.append(f)
    names.sort()
    if not names:
        return number
    if number == 1 and len(names) == 1:
        return names[0]
    return DimProduct(((number,) if number != 1 else ()) + tuple(names))


def dim_names(d: Dim) -> tuple[str, ...]:
    """The symbolic names a dimension's size depends on."""
    if isinstance(d, DimProduct):
        return tuple(f for f in d.factors if isinstance(f, str))
    return (d,) if isinstance(d, str) else ()


def dim_size(d: Dim, sizes) -> int:
    """The size of a dimension given the sizes of the names (a mapping)."""
    if isinstance(d, int):
        return d
    if isinstance(d, DimProduct):
        total = 1
        for f in d.factors:
            total *= f if isinstance(f, int) else sizes[f]
        return total
    return sizes[d]


class _Ref(weakref.ref):
    """A weak reference to an interned node that knows its table key (built by the C
    constructor: weakref.KeyedRef's is Python code)."""

    __slots__ = ("key",)


class Expr:
    """An interned node: ``Expr(op, args, data, shape)`` returns the one node with those fields.

    The table holds nodes weakly: a node lives as long as something (a result, a parent, a
    cache) refers to it, and while it lives every construction of its fields returns it, so
    ``is`` stays equality; a long-running process does not keep every node it ever built.
    """

    __slots__ = ("op", "args", "data", "shape", "cache", "__weakref__")
    # fields -> a weak reference to the node, dropped when the node dies (a plain dict of
    # weak references: WeakValueDictionary.get is Python code, and every construction looks up)
    _interned: dict[tuple, _Ref] = {}

    op: str
    args: tuple[Expr, ...]
    data: object
    shape: tuple[Dim, ...]
    cache: dict

    def __new__(cls, op: str, args: tuple[Expr, ...] = (), data: object = None,
                shape: tuple[Dim, ...] = ()) -> Expr:
        key = (op, args, data, shape)
        ref = cls._interned.get(key)
        node = None if ref is None else ref()
        if node is None:
            node = object.__new__(cls)
            node.op, node.args, node.data, node.shape = op, args, data, shape
            node.cache = {}
            ref = cls._interned[key] = _Ref(node, _forget)
            ref.key = key
            kept = budget.arena.get()
            (budget.OUTSIDE if kept is None else kept).append(node)
        return node

    def __repr__(self) -> str:
        if self.op in ("num", "const", "dim"):
            return f"{self.op}({self.data})"
        if self.op == "var":
            return self.data[0]
        return f"{self.op}{self.data if self.data is not None else ''}{list(self.args)}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def key(self) -> int:
        """A deterministic structural hash (stable across runs, unlike ``hash``)."""
        k = self.cache.get("key")
        if k is None:
            h = hashlib.blake2b(digest_size=8)
            h.update(repr((self.op, _stable(self.data), self.shape)).encode())
            for a in self.args:
                h.update(a.key.to_bytes(8, "little"))
            k = self.cache["key"] = int.from_bytes(h.digest(), "little")
        return k


def _forget(ref: _Ref) -> None:
    """A node died: its entry goes, unless a node of the same fields took its place."""
    live = Expr._interned.pop(ref.key, None)  # one look-up (the key's hash is not cheap)
    if live is not None and live is not ref:
        Expr._interned[ref.key] = live


def _stable(data: object) -> object:
    if isinstance(data, frozenset):
        return tuple(sorted(data))
    if isinstance(data, tuple):
        return tuple(_stable(d) for d in data)
    return data


# ----------------------------------------------------------------------------------------------
# constructors (raw: no simplification beyond what keeps the node well formed)
# ----------------------------------------------------------------------------------------------

def num(value: Fraction | int) -> Expr:
    return Expr("num", data=Fraction(value))


def const(name: str) -> Expr:
    return Expr("const", data=name)


def dimsize(d: Dim) -> Expr:
    return num(d) if isinstance(d, int) else Expr("dim", data=d)


def var(name: str, shape: tuple[Dim, ...], props: frozenset[str] = frozenset()) -> Expr:
    return Expr("var", data=(name, frozenset(props)), shape=tuple(shape))


def zero(shape: tuple[Dim, ...] = ()) -> Expr:
    return Expr("zero", shape=tuple(shape))


def ones(d: Dim) -> Expr:
    return Expr("ones", shape=(d,))


def delta(d: Dim) -> Expr:
    return Expr("delta", shape=(d, d))


def add(terms: Sequence[tuple[Fraction | int, Expr]]) -> Expr:
    """The linear combination sum(c * t) of terms of one shape."""
    terms = list(terms)
    if not terms:
        raise ValueError("add() of no terms: use zero(shape)")
    shape = terms[0][1].shape
    for _, t in terms:
        if t.shape != shape:
            raise ValueError(f"add(): shapes {shape} and {t.shape} differ")
    return Expr("sum", tuple(t for _, t in terms), tuple(Fraction(c) for c, _ in terms), shape)


def scale(c: Fraction | int, x: Expr) -> Expr:
    return add([(c, x)])


def einsum(factors: Sequence[tuple[Expr, tuple[Index, ...]]], out: tuple[Index, ...]) -> Expr:
    """The contraction of ``factors`` (each with one index per axis) onto the indices ``out``.

    An index that is not in ``out`` is summed over; an index may stand on any number of factors.
    """
    dims: dict[Index, Dim] = {}
    for x, idx in factors:
        if len(idx) != x.ndim:
            raise ValueError(f"einsum(): {len(idx)} indices for a {x.ndim}-axis factor")
        for i, d in zip(idx, x.shape):
            if dims.setdefault(i, d) != d:
                raise ValueError(f"einsum(): index {i} has dimensions {dims[i]} and {d}")
    if len(set(out)) != len(out) or any(i not in dims for i in out):
        raise ValueError(f"einsum(): bad output indices {out}")
    return Expr("einsum", tuple(x for x, _ in factors),
                (tuple(tuple(idx) for _, idx in factors), tuple(out)),
                tuple(dims[i] for i in out))


def merge(x: Expr, groups: Sequence[int]) -> Expr:
    """x with each group of consecutive axes flattened into one, column-major."""
    groups = tuple(groups)
    if sum(groups) != x.ndim or any(g < 1 for g in groups):
        raise ValueError(f"merge(): groups {groups} do not cover {x.ndim} axes")
    shape, start = [], 0
    for g in groups:
        shape.append(dim_product(*x.shape[start:start + g]))
        start += g
    return Expr("merge", (x,), groups, tuple(shape))


def vec(x: Expr) -> Expr:
    """The columns of a matrix stacked into one vector (a vector is its own vec)."""
    return merge(x, (2,)) if x.ndim == 2 else x


def kron_axes(a_axes: tuple[Index | None, Index | None],
              b_axes: tuple[Index | None, Index | None]) -> tuple[tuple, tuple]:
    """The output indices of kron(A, B) from the (row, column) indices of A and B (None for
    the missing side of a vector): B's index runs fastest in each merged axis."""
    rows = tuple(i for i in (b_axes[0], a_axes[0]) if i is not None)
    cols = tuple(i for i in (b_axes[1], a_axes[1]) if i is not None)
    return rows, cols


def kron(a: Expr, a_axes: tuple, b: Expr, b_axes: tuple) -> Expr:
    """kron(A, B), each operand with its (row, column) indices, 0..3, None for a missing side:
    kron(A, B)[k + p*i, l + q*j] = A[i, j]*B[k, l] for a p×q matrix B."""
    rows, cols = kron_axes(a_axes, b_axes)
    outer = einsum([(a, tuple(i for i in a_axes if i is not None)),
                    (b, tuple(i for i in b_axes if i is not None))], rows + cols)
    return merge(outer, tuple(len(g) for g in (rows, cols) if g))


def commutation(m: Dim, n: Dim) -> Expr:
    """The commutation matrix K(m, n): K*vec(A) = vec(A') for an m×n matrix A."""
    # rows are indexed by vec(A') (j + n*i), columns by vec(A) (i + m*j)
    swap = einsum([(delta(n), (1, 3)), (delta(m), (0, 2))], (1, 0, 2, 3))
    return merge(swap, (2, 2))


def relabel(e: Expr, outer: Sequence, fresh: Iterator) -> dict[Index, object]:
    """For an einsum node: its output indices mapped to ``outer`` in order, every summed index
    to the next label from ``fresh`` (to inline the contraction, or to name its indices)."""
    factor_idx, out = e.data
    labels = dict(zip(out, outer))
    for idx in factor_idx:
        for i in idx:
            if i not in labels:
                labels[i] = next(fresh)
    return labels


def index_dims(factors) -> dict[Index, Dim]:
    """The dimension of every index of (factor, indices) pairs."""
    dims: dict[Index, Dim] = {}
    for x, idx in factors:
        dims.update(zip(idx, x.shape))
    return dims


def einsum_dims(e: Expr) -> dict[Index, Dim]:
    """The dimension of every index of an einsum node."""
    return index_dims(zip(e.args, e.data[0]))


def index_counts(index_tuples, out: tuple) -> dict:
    """How often each index stands in a contraction: on the factors, and once more in the
    output."""
    count = {i: 1 for i in out}
    for idx in index_tuples:
        for i in idx:
            count[i] = count.get(i, 0) + 1
    return count


def shape_text(shape: tuple[Dim, ...]) -> str:
    """A shape as a person reads it: scalar, n, n×m."""
    return "scalar" if not shape else "×".join(str(d) for d in shape)


def apply(op: str, *args: Expr) -> Expr:
    """A primitive applied to its arguments; the primitive's shape rule gives the shape."""
    return Expr(op, tuple(args), shape=PRIMITIVES[op].shape(*args))


# conveniences used by the lowering and by derivative rules ------------------------------------

def neg(x: Expr) -> Expr:
    return scale(-1, x)


def power(x: Expr, p: Fraction | int | Expr) -> Expr:
    return apply("pow", x, p if isinstance(p, Expr) else num(p))


def transpose(x: Expr) -> Expr:
    return einsum([(x, (0, 1))], (1, 0)) if x.ndim == 2 else x


def hadamard(x: Expr, y: Expr) -> Expr:
    """Elementwise product; a scalar side broadcasts."""
    out = tuple(range(max(x.ndim, y.ndim)))
    return einsum([(x, out if x.ndim else ()), (y, out if y.ndim else ())], out)


def identity_tangent(shape: tuple[Dim, ...]) -> Expr:
    """dX/dX: the tensor with ``D[I, J] = delta(I, J)``, of shape ``shape + shape``."""
    k = len(shape)
    if k == 0:
        return num(1)
    return einsum([(delta(d), (a, a + k)) for a, d in enumerate(shape)], tuple(range(2 * k)))


# ----------------------------------------------------------------------------------------------
# primitives: shape, derivative, numerics and names in one place
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Primitive:
    """Everything matdiff knows about one primitive operation.

    ``jvp(node, tangents, k)`` returns dnode/dX, of shape ``node.shape + X.shape`` where X has
    ``k`` axes, given each argument's derivative (``None`` where an argument does not depend
    on X): the same rule serves gradients, Jacobians and Hessians.
    """

    name: str
    shape: Callable[..., tuple[Dim, ...]]
    jvp: Callable[[Expr, Sequence[Expr | None], int], Expr]
    numpy: Callable[..., np.ndarray]
    latex: str
    elementwise: bool = False
    differentiable: bool = True
    note: str | None = None  # what its derivative rule assumes, said wherever it is used


PRIMITIVES: dict[str, Primitive] = {}


def _chain_elementwise(dfdx: Expr, tangent: Expr, k: int) -> Expr:
    """d f(x) = f'(x) .* dx, with the k axes of the variable appended."""
    i = tuple(range(dfdx.ndim))
    p = tuple(range(dfdx.ndim, dfdx.ndim + k))
    return einsum([(dfdx, i), (tangent, i + p)], i + p)


def _unary(name: str, numpy: Callable, derivative: Callable[[Expr, Expr], Expr] | None,
           latex: str, note: str | None = None) -> None:
    """An elementwise function with its derivative ``derivative(x, f(x))``."""
    def jvp(node: Expr, tangents: Sequence[Expr | None], k: int) -> Expr:
        (x,), (dx,) = node.args, tangents
        return _chain_elementwise(derivative(x, node), dx, k)

    PRIMITIVES[name] = Primitive(name, lambda x: x.shape, jvp, numpy, latex, elementwise=True,
                                 differentiable=derivative is not None, note=note)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _shifted(c: int, x: Expr, s: Fraction | int) -> Expr:
    """c + s*x elementwise, with c broadcast to x's shape."""
    if x.ndim == 0:
        return add([(c, num(1)), (s, x)])
    return add([(c, broadcast(num(1), x.shape)), (s, x)])


def broadcast(s: Expr, shape: tuple[Dim, ...]) -> Expr:
    """The scalar s as a tensor of the given shape (s times a product of ones vectors)."""
    if not shape:
        return s
    factors = [(s, ())] + [(ones(d), (a,)) for a, d in enumerate(shape)]
    return einsum(factors, tuple(range(len(shape))))


_unary("exp", np.exp, lambda x, ans: ans, r"\exp")
_unary("log", np.log, lambda x, ans: power(x, -1), r"\log")
_unary("sin", np.sin, lambda x, ans: apply("cos", x), r"\sin")
_unary("cos", np.cos, lambda x, ans: neg(apply("sin", x)), r"\cos")
_unary("tan", np.tan, lambda x, ans: _shifted(1, power(ans, 2), 1), r"\tan")
_unary("tanh", np.tanh, lambda x, ans: _shifted(1, power(ans, 2), -1), r"\tanh")
_unary("abs", np.abs, lambda x, ans: apply("sign", x), r"\operatorname{abs}")
_unary("relu", _relu, lambda x, ans: scale(Fraction(1, 2), _shifted(1, apply("sign", x), 1)),
       r"\operatorname{relu}")
# sign is piecewise constant: its derivative is 0 wherever it exists (as JAX takes it), so that
# Hessians of objectives with abs or norm1 exist; the note says where it does not
_unary("sign", np.sign, lambda x, ans: zero(x.shape), r"\operatorname{sign}",
       note="sign(u) is taken to have derivative 0, its value wherever it exists; "
            "it is undefined where u = 0")


def _pow_shape(base: Expr, exponent: Expr) -> tuple[Dim, ...]:
    if exponent.ndim and exponent.shape != base.shape:
        raise ValueError("pow(): exponent must be scalar or of the base's shape")
    return base.shape


def _pow_jvp(node: Expr, tangents: Sequence[Expr | None], k: int) -> Expr:
    base, exponent = node.args
    dbase, dexp = tangents
    full_exp = exponent if exponent.ndim == base.ndim else broadcast(exponent, base.shape)
    terms = []
    if dbase is not None:   # d(b^e) = e * b^(e-1) db
        slope = hadamard(full_exp, power(base, add([(1, exponent),
                                                    (-1, broadcast(num(1), exponent.shape))])))
        terms.append((1, _chain_elementwise(slope, dbase, k)))
    if dexp is not None:    # d(b^e) = b^e * log(b) de
        slope = hadamard(node, apply("log", base))
        if exponent.ndim == base.ndim:
            terms.append((1, _chain_elementwise(slope, dexp, k)))
        else:               # a scalar exponent broadcast over an array base
            i = tuple(range(base.ndim))
            p = tuple(range(base.ndim, base.ndim + k))
            terms.append((1, einsum([(slope, i), (dexp, p)], i + p)))
    return add(terms)


PRIMITIVES["pow"] = Primitive("pow", _pow_shape, _pow_jvp, np.power, "^", elementwise=True)


def _square(x: Expr) -> None:
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError("needs a square matrix")


def _inv_shape(x: Expr) -> tuple[Dim, ...]:
    _square(x)
    return x.shape


def _scalar_of_square(x: Expr) -> tuple[Dim, ...]:
    _square(x)
    return ()


def _inv_jvp(node: Expr, tangents: Sequence[Expr | None], k: int) -> Expr:
    # d(inv(A)) = -inv(A) * dA * inv(A)
    (da,) = tangents
    p = tuple(range(4, 4 + k))
    return neg(einsum([(node, (0, 2)), (da, (2, 3) + p), (node, (3, 1))], (0, 1) + p))


def _det_jvp(node: Expr, tangents: Sequence[Expr | None], k: int) -> Expr:
    # d(det(A)) = det(A) * tr(inv(A) * dA)
    (a,), (da,) = node.args, tangents
    p = tuple(range(2, 2 + k))
    return einsum([(node, ()), (apply("inv", a), (1, 0)), (da, (0, 1) + p)], p)


def _logdet_jvp(node: Expr, tangents: Sequence[Expr | None], k: int) -> Expr:
    # d(log(det(A))) = tr(inv(A) * dA)
    (a,), (da,) = node.args, tangents
    p = tuple(range(2, 2 + k))
    return einsum([(apply("inv", a), (1, 0)), (da, (0, 1) + p)], p)


def _logdet(x: np.ndarray) -> np.ndarray:
    sign, value = np.linalg.slogdet(x)
    return np.where(sign > 0, value, np.nan)


def _mpow_shape(x: Expr, k: Expr) -> tuple[Dim, ...]:
    _square(x)
    if k.op != "num" or k.data.denominator != 1 or k.data < 0:
        raise ValueError("mpow(): the exponent is a whole number >= 0")
    return x.shape


def matrix_power(x: Expr, k: int) -> Expr:
    """x^k, the matrix power (x^0 = eye, x^1 = x): one node however large k is."""
    if k == 0:
        return delta(x.shape[0])
    return x if k == 1 else apply("mpow", x, num(k))


def _mpow_jvp(node: Expr, tangents: Sequence[Expr | None], k: int) -> Expr:
    # d(A^n) = sum_j A^j * dA * A^(n-1-j): n terms, which traces and products contract back
    # into few (tr(A^n) gives n*(A^(n-1))')
    (a, n), (da, _) = node.args, tangents
    n = int(n.data)
    budget.check("ir_nodes", n, f"the derivative of a matrix power to the {n}th ({n} terms)")
    p = tuple(range(4, 4 + k))
    return add([(1, einsum([(matrix_power(a, j), (0, 2)), (da, (2, 3) + p),
                            (matrix_power(a, n - 1 - j), (3, 1))], (0, 1) + p))
                for j in range(n)])


def _mpow(x: np.ndarray, k: float) -> np.ndarray:
    return np.linalg.matrix_power(x, int(k))


PRIMITIVES["inv"] = Primitive("inv", _inv_shape, _inv_jvp, np.linalg.inv, r"^{-1}")
PRIMITIVES["mpow"] = Primitive("mpow", _mpow_shape, _mpow_jvp, _mpow, "^")
PRIMITIVES["det"] = Primitive("det", _scalar_of_square, _det_jvp, np.linalg.det, r"\det")
PRIMITIVES["logdet"] = Primitive("logdet", _scalar_of_square, _logdet_jvp, _logdet,
                                 r"\log\det")


# ----------------------------------------------------------------------------------------------
# walking the DAG
# ----------------------------------------------------------------------------------------------

def topological(root: Expr, skip: Callable[[Expr], bool] | None = None) -> list[Expr]:
    """Every node of the DAG once, children before parents (iterative: deep DAGs are fine);
    a node ``skip`` says yes to is left out, and so is what lies only below it."""
    order: list[Expr] = []
    seen: set[int] = set()
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen or (skip is not None and skip(node)):
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if id(a) not in seen)
    return order


def variables(root: Expr) -> frozenset[str]:
    """Names of the variables an expression depends on (cached per node)."""
    cached = root.cache.get("vars")
    if cached is not None:
        return cached
    # the walk stops at nodes already known: asking of every part of a large DAG stays linear
    seen: set[int] = set()
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            node.cache["vars"] = frozenset([node.data[0]]) if node.op == "var" else \
                frozenset().union(*(a.cache["vars"] for a in node.args))
            continue
        if id(node) in seen or "vars" in node.cache:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if "vars" not in a.cache)
    return root.cache["vars"]


def depends_on(e: Expr, name: str) -> bool:
    return name in variables(e)


def substitute(root: Expr, mapping: dict[Expr, Expr]) -> Expr:
    """``root`` with every node in ``mapping`` replaced (shapes must agree)."""
    new: dict[int, Expr] = {}
    for node in topological(root):
        if node in mapping:
            new[id(node)] = mapping[node]
        elif node.args:
            args = tuple(new[id(a)] for a in node.args)
            new[id(node)] = node if args == node.args else Expr(node.op, args, node.data,
                                                                  node.shape)
        else:
            new[id(node)] = node
    return new[id(root)]


def size(root: Expr) -> int:
    """Number of distinct nodes in the DAG."""
    return len(topological(root))
