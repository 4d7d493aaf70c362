"""Numerical verification: a derivative against central finite differences of the function, at
random points that respect the declared properties.

Symmetric variables are perturbed along symmetric directions when the convention asks for the
gradient on symmetric matrices (or for the Matrix Cookbook's per-entry derivatives).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..core.ir import Dim
from ..errors import MatdiffError

STEP = 1e-3                                   # 4-point stencil: error O(STEP^4)
STENCIL = ((-2.0, 1 / 12), (-1.0, -8 / 12), (1.0, 8 / 12), (2.0, -1 / 12))
MAX_DRAWS = 60

Function = Callable[..., np.ndarray]


def draw_point(shapes: Mapping[str, tuple[Dim, ...]], props: Mapping[str, frozenset[str]],
               rng: np.random.Generator, positive: bool = False) -> dict[str, np.ndarray]:
    """Random values for every variable: symmetric positive definite for ``posdef``, and so on.

    Symbolic dimensions get sizes 2 to 4. With ``positive``, unstructured entries are drawn in
    [0.5, 2] (for expressions with logs and square roots of variables).
    """
    dims: dict[Dim, int] = {}
    for shape in shapes.values():
        for d in shape:
            if isinstance(d, str) and d not in dims:
                dims[d] = int(rng.integers(2, 5))
    values = {}
    for name, shape in shapes.items():
        concrete = tuple(d if isinstance(d, int) else dims[d] for d in shape)
        values[name] = _draw(concrete, props.get(name, frozenset()), rng, positive)
    return values


def _draw(shape: tuple[int, ...], props: frozenset[str], rng: np.random.Generator,
          positive: bool) -> np.ndarray:
    if "positive" in props or (positive and not props & {"posdef", "symmetric", "diagonal"}):
        x = rng.uniform(0.5, 2.0, size=shape)
        return (x + x.T) / 2 if "symmetric" in props else x
    if "posdef" in props:
        n = shape[0]
        g = rng.standard_normal((n, n))
        return g @ g.T / n + 0.5 * np.eye(n)
    if "diagonal" in props:
        return np.diag(rng.uniform(0.5, 2.0, size=shape[0]) * rng.choice([-1, 1], shape[0]))
    if "symmetric" in props:
        g = rng.standard_normal(shape)
        return (g + g.T) / 2
    if "invertible" in props:
        q1, _ = np.linalg.qr(rng.standard_normal(shape))
        q2, _ = np.linalg.qr(rng.standard_normal(shape))
        return q1 @ np.diag(rng.uniform(0.7, 2.0, size=shape[0])) @ q2.T
    if not shape:
        return np.float64(rng.standard_normal())
    return rng.standard_normal(shape)


def directions(shape: tuple[int, ...], mode: str):
    """(index into the result's trailing axes, direction, weight) for each checked entry.

    mode "full": each entry alone; "sym": E_ij + E_ji, halved off the diagonal (the gradient on
    symmetric matrices); "cookbook": E_ij + E_ji, not halved (X_ij and X_ji moved together);
    "diagonal": the diagonal entries alone (the others stay 0).
    """
    for idx in np.ndindex(*shape):
        if mode == "diagonal" and idx[0] != idx[1]:
            continue
        e = np.zeros(shape)
        e[idx] = 1.0
        if mode in ("full", "diagonal") or len(shape) != 2 or idx[0] == idx[1]:
            yield idx, e, 1.0
            continue
        e[idx[::-1]] = 1.0
        yield idx, e, (0.5 if mode == "sym" else 1.0)


def finite_difference(f: Function, values: dict, name: str, mode: str,
                      step: float = STEP) -> np.ndarray:
    """The derivative of f with respect to ``name`` by central differences: shape
    f.shape + x.shape."""
    x0 = np.asarray(values[name], dtype=float)
    f0 = np.asarray(f(**values))
    out = np.zeros(f0.shape + x0.shape)
    for idx, e, weight in directions(x0.shape, mode):
        acc = np.zeros(f0.shape)
        for s, c in STENCIL:
            acc = acc + c * f(**{**values, name: x0 + s * step * e})
        out[(Ellipsis,) + idx] = weight * acc / step
    return out


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-8)
    return float(np.linalg.norm(a - b) / scale)


def verify(f: Function, df: Function, shapes: Mapping[str, tuple[Dim, ...]],
           props: Mapping[str, frozenset[str]], wrt: str, mode: str, trials: int = 3,
           seed: int = 0) -> float:
    """Max relative error of ``df`` against finite differences of ``f`` over ``trials`` random
    points where both are finite.

    A point where differences at two step sizes disagree (a nearly singular matrix, say) says
    more about the differences than the derivative: it is replaced by another draw, and used
    only if no better point turns up."""
    rng = np.random.default_rng(seed)
    reliable: list[float] = []
    doubtful: list[float] = []
    for draw in range(MAX_DRAWS):
        values = draw_point(shapes, props, rng, positive=draw % 2 == 1)
        try:
            f0, d0 = np.asarray(f(**values)), np.asarray(df(**values))
            if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(d0))):
                continue
            coarse = finite_difference(f, values, wrt, mode)
            fine = finite_difference(f, values, wrt, mode, STEP / 2)
        except MatdiffError:  # singular at this point: draw another
            continue
        if not (np.all(np.isfinite(coarse)) and np.all(np.isfinite(fine))):
            continue
        error = relative_error(d0, fine)
        (reliable if relative_error(coarse, fine) < 1e-8 else doubtful).append(error)
        if len(reliable) == trials:
            return max(reliable)
    if reliable or doubtful:
        return max(reliable) if reliable else min(doubtful)
    raise MatdiffError("could not find a point where the expression and its derivative are "
                       "finite, so the derivative was not checked",
                       hint="declare properties (posdef, positive...) that keep it defined")


def directional_difference(f: Function, values: dict, name: str, direction: str,
                           step: float = STEP) -> np.ndarray:
    """d/dt f(name + t*direction) at t = 0 by central differences (direction is the name of
    another variable of the same shape)."""
    x0 = np.asarray(values[name], dtype=float)
    v = np.asarray(values[direction], dtype=float)
    return sum(c * np.asarray(f(**{**values, name: x0 + s * step * v}))
               for s, c in STENCIL) / step


def verify_directional(f: Function, df: Function, shapes: Mapping[str, tuple[Dim, ...]],
                       props: Mapping[str, frozenset[str]], wrt: str, direction: str,
                       trials: int = 3, seed: int = 0) -> float:
    """Max relative error of ``df`` against differences of ``f`` along ``direction``."""
    rng = np.random.default_rng(seed)
    errors: list[float] = []
    for draw in range(MAX_DRAWS):
        values = draw_point(shapes, props, rng, positive=draw % 2 == 1)
        try:
            d0 = np.asarray(df(**values))
            coarse = directional_difference(f, values, wrt, direction)
            fine = directional_difference(f, values, wrt, direction, STEP / 2)
        except MatdiffError:
            continue
        if not all(np.all(np.isfinite(a)) for a in (d0, coarse, fine)):
            continue
        if relative_error(coarse, fine) < 1e-8:
            errors.append(relative_error(d0, fine))
            if len(errors) == trials:
                break
    if not errors:
        raise MatdiffError("could not find a point where differences along the direction are "
                           "reliable, so the derivative was not checked",
                           hint="declare properties (posdef, positive...) that keep it defined")
    return max(errors)
