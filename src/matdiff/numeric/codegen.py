"""Code generation: an IR expression becomes a NumPy function.

The DAG is laid out once, in topological order, as a list of steps; calling the function runs
them, so every shared subexpression is computed once. Contractions go to ``numpy.einsum``
(with a contraction-order optimiser when there are three or more factors).
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping

import numpy as np

from .. import budget
from ..core.ir import (
    PRIMITIVES,
    Dim,
    DimProduct,
    Expr,
    dim_names,
    dim_size,
    shape_text,
    topological,
)
from ..errors import MatdiffError
from .values import as_value

_LETTERS = string.ascii_letters


def compile_numpy(root: Expr, shapes: Mapping[str, tuple[Dim, ...]],
                  props: Mapping[str, frozenset[str]] | None = None,
                  declared: frozenset[str] | None = None,
                  limits: budget.Limits | dict | None = None) -> Callable[..., np.ndarray]:
    """A function of keyword arrays (one per variable in ``shapes``) returning root's value.

    Vectors are 1-D arrays, scalars floats; variables the expression does not use may be
    passed and are ignored; given ``declared``, a name neither in ``shapes`` nor there is an
    error (a typo). Sizes
    of symbolic dimensions are read off the arrays and must agree; values must be finite
    numbers that keep the properties in ``props``. Each call runs as one request under
    ``limits``: no intermediate array may pass ``array_elements``.
    """
    nodes = topological(root)
    slot = {id(n): k for k, n in enumerate(nodes)}
    steps = [(_step(n), tuple(slot[id(a)] for a in n.args)) for n in nodes]
    needed = {n.data[0] for n in nodes if n.op == "var"}
    needed_dims = {name for n in nodes for d in n.shape for name in dim_names(d)}
    needed_dims |= {name for n in nodes if n.op == "dim" for name in dim_names(n.data)}
    node_shapes = {n.shape for n in nodes}
    known = None if declared is None else set(shapes) | set(declared)
    props = props or {}

    def evaluate(**arrays) -> np.ndarray:
        with budget.request(limits):
            unknown = [] if known is None else sorted(set(arrays) - known)
            if unknown:
                listed = ", ".join(sorted(known)[:10]) or "none"
                raise MatdiffError(f"{unknown[0]!r} is not a variable of this expression or "
                                   f"its declarations", hint=f"its variables: {listed}")
            values, dims = _bind(arrays, shapes, needed, props)
            unbound = needed_dims - dims.keys()
            if unbound:
                raise MatdiffError(f"the size of dimension {sorted(unbound)[0]} is not known",
                                   hint="also pass the variables of the expression")
            _check_sizes(node_shapes, dims)
            return _run(steps, nodes, values, dims)

    return evaluate


def _run(steps, nodes, values, dims) -> np.ndarray:
    results: list = [None] * len(steps)
    with np.errstate(all="ignore"):
        for k, (step, args) in enumerate(steps):
            if k % 64 == 0:
                budget.check_time("evaluating")
            try:
                results[k] = step(values, dims, *(results[a] for a in args))
            except np.linalg.LinAlgError as err:
                raise MatdiffError(f"cannot evaluate {nodes[k].op}: {err} at these values",
                                   hint="the formula needs an invertible matrix here"
                                   ) from None
    return np.asarray(results[-1], dtype=float)


def _check_sizes(node_shapes, dims: Mapping[Dim, int]) -> None:
    """Refuse before allocating: every array the evaluation builds stays under the limit."""
    largest = max((math.prod(_size(dims, d) for d in shape) for shape in node_shapes),
                  default=1)
    budget.check("array_elements", largest, f"an array of {largest:,} entries")


def _bind(arrays: Mapping[str, object], shapes: Mapping[str, tuple[Dim, ...]],
          needed: set[str], props: Mapping[str, frozenset[str]]):
    """The arrays by name, and the size of every symbolic dimension they show (checked)."""
    values: dict[str, np.ndarray] = {}
    dims: dict[Dim, int] = {}
    for name, shape in shapes.items():
        if name not in arrays:
            if name not in needed:
                continue
            raise MatdiffError(f"no value given for variable {name}",
                               hint=f"pass {name}=<array of shape {shape_text(shape)}>")
        value = as_value(name, arrays[name], props.get(name, frozenset()))
        if value.ndim != len(shape):
            raise MatdiffError(f"{name} should have {len(shape)} axes "
                               f"({shape_text(shape)}), got an array of shape {value.shape}")
        for d, n in zip(shape, value.shape):
            if isinstance(d, DimProduct):  # its factors are bound by other axes
                continue
            expected = d if isinstance(d, int) else dims.setdefault(d, n)
            if expected != n:
                raise MatdiffError(f"{name} has shape {value.shape}, but dimension {d} is "
                                   f"{expected} elsewhere")
        values[name] = value
    return values, dims


def _size(dims: Mapping[Dim, int], d: Dim) -> int:
    return dim_size(d, dims)


def _merge(array: np.ndarray, groups: tuple[int, ...]) -> np.ndarray:
    """Each group of axes flattened column-major: C order after reversing each group."""
    axes, shape, start = [], [], 0
    for g in groups:
        axes.extend(range(start + g - 1, start - 1, -1))
        shape.append(int(np.prod(array.shape[start:start + g], dtype=int)))
        start += g
    return np.transpose(array, axes).reshape(shape)


def _step(node: Expr) -> Callable:
    op = node.op
    if op == "num":
        value = _float(node.data)
        return lambda values, dims: value
    if op == "const":
        return lambda values, dims: np.pi
    if op == "dim":
        d = node.data
        return lambda values, dims: float(_size(dims, d))
    if op == "var":
        name = node.data[0]
        return lambda values, dims: values[name]
    if op == "zero":
        shape = node.shape
        return lambda values, dims: np.zeros(tuple(_size(dims, d) for d in shape))
    if op == "ones":
        (d,) = node.shape
        return lambda values, dims: np.ones(_size(dims, d))
    if op == "delta":
        d = node.shape[0]
        return lambda values, dims: np.eye(_size(dims, d))
    if op == "sum":
        coefs = [_float(c) for c in node.data]
        return lambda values, dims, *terms: sum(c * t for c, t in zip(coefs, terms))
    if op == "einsum":
        return _einsum_step(node)
    if op == "merge":
        groups = node.data
        return lambda values, dims, array: _merge(np.asarray(array), groups)
    fn = PRIMITIVES[op].numpy
    return lambda values, dims, *args: fn(*args)


def _float(value) -> float:
    try:
        return float(value)
    except OverflowError:
        raise MatdiffError(f"the number {_short(value)} is beyond floating-point range (about "
                           "1.8e308), so the formula cannot be evaluated",
                           hint="rescale the expression") from None


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"


MAX_OPERANDS = 30  # numpy.einsum takes at most 32


def _einsum_step(node: Expr) -> Callable:
    factor_idx, out = node.data
    if len(factor_idx) > MAX_OPERANDS or len({i for f in factor_idx for i in f}) > len(_LETTERS):
        return _sequential_einsum(factor_idx, out)
    spec = _spec(factor_idx, out)
    if len(factor_idx) <= 2:
        return lambda values, dims, *args: np.einsum(spec, *args)
    plans: dict[tuple, list] = {}  # pairwise steps for each set of shapes, planned once
    #                                (numpy would search for an order on every call)

    def run(values, dims, *args):
        shapes = tuple(np.shape(a) for a in args)
        plan = plans.get(shapes)
        if plan is None:
            path = np.einsum_path(spec, *args, optimize="greedy")[0][1:]
            plan = plans[shapes] = _pairwise(factor_idx, out, path)
        operands = list(args)
        for positions, step_spec in plan:
            picked = [operands[k] for k in positions]
            for k in sorted(positions, reverse=True):
                del operands[k]
            operands.append(np.einsum(step_spec, *picked))
        return operands[0]
    return run


def _pairwise(factor_idx, out, path) -> list:
    """numpy's contraction path as einsum steps over index tuples: each step contracts the
    operands at its positions into one, keeping the indices still needed."""
    operands = [tuple(idx) for idx in factor_idx]
    plan = []
    for positions in path:
        picked = [operands[k] for k in positions]
        for k in sorted(positions, reverse=True):
            del operands[k]
        later = {i for idx in operands for i in idx} | set(out)
        if not operands:
            keep = tuple(out)
        else:
            keep = tuple(dict.fromkeys(i for idx in picked for i in idx if i in later))
        plan.append((tuple(positions), _spec(picked, keep)))
        operands.append(keep)
    return plan


def _spec(factor_idx, out) -> str:
    labels = {i: n for n, i in enumerate(dict.fromkeys([i for idx in factor_idx for i in idx]))}
    sub = ",".join("".join(_LETTERS[labels[i]] for i in idx) for idx in factor_idx)
    return f"{sub}->{''.join(_LETTERS[labels[i]] for i in out)}"


def _sequential_einsum(factor_idx, out) -> Callable:
    """A long contraction one factor at a time, each next factor one that shares an index
    with what is carried (so chains stay matrices), keeping only the indices needed later."""
    remaining: dict = {}
    holders: dict = {}
    for k, idx in enumerate(factor_idx):
        for i in idx:
            remaining[i] = remaining.get(i, 0) + 1
            holders.setdefault(i, []).append(k)
    pending = set(range(1, len(factor_idx)))
    order = [0]
    carried: tuple = factor_idx[0]
    for i in factor_idx[0]:
        remaining[i] -= 1
    plan = []
    scan = 1
    while pending:
        k = next((h for i in carried for h in holders[i] if h in pending), None)
        if k is None:
            while scan not in pending:
                scan += 1
            k = scan
        pending.discard(k)
        order.append(k)
        for i in factor_idx[k]:
            remaining[i] -= 1
        keep = tuple(dict.fromkeys(i for i in carried + factor_idx[k]
                                   if remaining[i] > 0 or i in out))
        plan.append((k, carried, _spec((carried, factor_idx[k]), keep), keep))
        carried = keep
    final = _spec((carried,), out)

    def run(values, dims, *args):
        acc = args[0]
        for k, before, spec, keep in plan:
            if len(keep) > 2:  # more than a matrix: make sure it fits before numpy tries
                sizes = dict(zip(before, acc.shape)) | dict(zip(factor_idx[k], args[k].shape))
                budget.check("array_elements", math.prod(sizes[i] for i in keep),
                             "an intermediate array of a contraction")
            acc = np.einsum(spec, acc, args[k])
        return np.einsum(final, acc)
    return run
