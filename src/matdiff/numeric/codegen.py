"""Code generation: an IR expression becomes a NumPy function.

The DAG is laid out once, in topological order, as a list of steps; calling the function runs
them, so every shared subexpression is computed once. Contractions go to ``numpy.einsum``
(with a contraction-order optimiser when there are three or more factors).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping

import numpy as np

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

_LETTERS = string.ascii_letters


def compile_numpy(root: Expr, shapes: Mapping[str, tuple[Dim, ...]]) -> Callable[..., np.ndarray]:
    """A function of keyword arrays (one per variable in ``shapes``) returning root's value.

    Vectors are 1-D arrays, scalars floats; variables the expression does not use may be passed
    and are ignored. Sizes of symbolic dimensions are read off the arrays and must agree.
    """
    nodes = topological(root)
    slot = {id(n): k for k, n in enumerate(nodes)}
    steps = [(_step(n), tuple(slot[id(a)] for a in n.args)) for n in nodes]
    needed = {n.data[0] for n in nodes if n.op == "var"}
    needed_dims = {name for n in nodes for d in n.shape for name in dim_names(d)}
    needed_dims |= {name for n in nodes if n.op == "dim" for name in dim_names(n.data)}

    def evaluate(**arrays) -> np.ndarray:
        values, dims = _bind(arrays, shapes, needed)
        unbound = needed_dims - dims.keys()
        if unbound:
            raise MatdiffError(f"the size of dimension {sorted(unbound)[0]} is not known",
                               hint="also pass the variables of the expression")
        results: list = [None] * len(steps)
        with np.errstate(all="ignore"):
            for k, (step, args) in enumerate(steps):
                try:
                    results[k] = step(values, dims, *(results[a] for a in args))
                except np.linalg.LinAlgError as err:
                    raise MatdiffError(f"cannot evaluate {nodes[k].op}: {err} at these values",
                                       hint="the formula needs an invertible matrix here"
                                       ) from None
        return np.asarray(results[-1], dtype=float)

    return evaluate


def _bind(arrays: Mapping[str, object], shapes: Mapping[str, tuple[Dim, ...]],
          needed: set[str]):
    """The arrays by name, and the size of every symbolic dimension they show (checked)."""
    values: dict[str, np.ndarray] = {}
    dims: dict[Dim, int] = {}
    for name, shape in shapes.items():
        if name not in arrays:
            if name not in needed:
                continue
            raise MatdiffError(f"no value given for variable {name}",
                               hint=f"pass {name}=<array of shape {shape_text(shape)}>")
        value = np.asarray(arrays[name], dtype=float)
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
        value = float(node.data)
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
        coefs = [float(c) for c in node.data]
        return lambda values, dims, *terms: sum(c * t for c, t in zip(coefs, terms))
    if op == "einsum":
        return _einsum_step(node)
    if op == "merge":
        groups = node.data
        return lambda values, dims, array: _merge(np.asarray(array), groups)
    fn = PRIMITIVES[op].numpy
    return lambda values, dims, *args: fn(*args)


MAX_OPERANDS = 30  # numpy.einsum takes at most 32


def _einsum_step(node: Expr) -> Callable:
    factor_idx, out = node.data
    if len(factor_idx) > MAX_OPERANDS or len({i for f in factor_idx for i in f}) > len(_LETTERS):
        return _sequential_einsum(factor_idx, out)
    spec = _spec(factor_idx, out)
    optimize = "greedy" if len(factor_idx) > 2 else False
    return lambda values, dims, *args: np.einsum(spec, *args, optimize=optimize)


def _spec(factor_idx, out) -> str:
    labels = {i: n for n, i in enumerate(dict.fromkeys([i for idx in factor_idx for i in idx]))}
    sub = ",".join("".join(_LETTERS[labels[i]] for i in idx) for idx in factor_idx)
    return f"{sub}->{''.join(_LETTERS[labels[i]] for i in out)}"


def _sequential_einsum(factor_idx, out) -> Callable:
    """A long contraction one factor at a time, keeping the indices still needed later."""
    plan = []
    carried: tuple = factor_idx[0]
    for k in range(1, len(factor_idx)):
        later = {i for idx in factor_idx[k + 1:] for i in idx} | set(out)
        keep = tuple(dict.fromkeys(i for i in carried + factor_idx[k] if i in later))
        plan.append(_spec((carried, factor_idx[k]), keep))
        carried = keep
    final = _spec((carried,), out)

    def run(values, dims, *args):
        acc = args[0]
        for spec, arg in zip(plan, args[1:]):
            acc = np.einsum(spec, acc, arg)
        return np.einsum(final, acc)
    return run
