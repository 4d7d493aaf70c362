"""Numerical verification: a derivative against central finite differences of the function, at
random points that respect the declared properties.

Symmetric variables are perturbed along symmetric directions when the convention asks for the
gradient on symmetric matrices (or for the Matrix Cookbook's per-entry derivatives).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from .. import budget
from ..core.ir import Dim, dim_names, dim_size
from ..errors import MatdiffError

STEP = 1e-3                                   # 4-point stencil: error O(STEP^4)
STENCIL = ((-2.0, 1 / 12), (-1.0, -8 / 12), (1.0, 8 / 12), (2.0, -1 / 12))
MAX_DRAWS = 60

Function = Callable[..., np.ndarray]


def draw_point(shapes: Mapping[str, tuple[Dim, ...]], props: Mapping[str, frozenset[str]],
               rng: np.random.Generator, positive: bool = False,
               size: int | None = None) -> dict[str, np.ndarray]:
    """Random values for every variable: symmetric positive definite for ``posdef``, and so on.

    Symbolic dimensions get sizes 2 to 4 (all ``size`` where given). With ``positive``,
    unstructured entries are drawn in [0.5, 2] (for expressions with logs and square roots of
    variables).
    """
    dims: dict[Dim, int] = {}
    for shape in shapes.values():
        for d in shape:
            for name in dim_names(d):
                if name not in dims:
                    dims[name] = size if size is not None else int(rng.integers(2, 5))
    values = {}
    for name, shape in shapes.items():
        concrete = tuple(dim_size(d, dims) for d in shape)
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
        budget.check_time("checking by finite differences")
        acc = np.zeros(f0.shape)
        for s, c in STENCIL:
            acc = acc + c * f(**{**values, name: x0 + s * step * e})
        out[(Ellipsis,) + idx] = weight * acc / step
    return out


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-8)
    return float(np.linalg.norm(a - b) / scale)


class Verdict(float):
    """The max relative error (a float, as before: the disagreement with the differences
    beyond the rounding of f's values), and what it means: ``verdict`` is "ok", "mismatch" or
    "inconclusive"; ``resolution`` is the relative error the finite differences themselves
    could not rule out."""

    verdict: str
    resolution: float

    def __new__(cls, error: float, verdict: str, resolution: float) -> Verdict:
        v = super().__new__(cls, error)
        v.verdict, v.resolution = verdict, resolution
        return v


def _judge(d0: np.ndarray, coarse: np.ndarray, fine: np.ndarray, f_scale: float,
           step: float) -> tuple[str, float, float]:
    """One point: ("ok" | "mismatch" | "inconclusive", relative error, resolution).

    The differences' own error, entry by entry, is their change between two step sizes
    (truncation, and noise) plus the rounding of f's values over the step. "ok" asks the
    differences to have settled and the derivative to agree, both to within TOLERANCE or the
    rounding (so a zero derivative of a large expression is not called wrong for the noise
    around it); "mismatch" asks the disagreement to dwarf the differences' own error."""
    rounding = (ROUNDING * f_scale + TINY) / step
    truncation = np.abs(coarse - fine)
    diff = np.abs(d0 - fine)
    scale = max(float(np.max(np.abs(d0), initial=0.0)), float(np.max(np.abs(fine), initial=0.0)))
    allowed = TOLERANCE * scale + SAFETY * rounding
    # the disagreement beyond the rounding of f that no step size can remove
    excess = np.maximum(diff - SAFETY * rounding, 0.0)
    error = float(np.linalg.norm(excess)) / max(float(np.linalg.norm(d0)),
                                                float(np.linalg.norm(fine)), 1e-8)
    resolution = float(np.max(truncation + rounding, initial=0.0)) / max(scale, f_scale, 1e-300)
    if np.all(diff <= allowed) and np.all(truncation <= allowed):
        return "ok", error, resolution
    if np.any((diff > allowed) & (diff > RELIABLE * (truncation + rounding))):
        return "mismatch", error, resolution
    return "inconclusive", error, resolution


TOLERANCE = 1e-6    # relative agreement asked of a derivative
SAFETY = 10.0       # how far past their own error estimate differences are trusted
RELIABLE = 100.0    # a disagreement this many estimates large is the derivative's fault
ROUNDING = 1e-15    # relative rounding of one evaluation of f, times the stencil's weights
TINY = 1e-290       # below this floats lose their relative precision (subnormals)
STEPS = (STEP, STEP / 10, STEP / 100)  # smaller steps for functions that vary fast


def verify(f: Function, df: Function, shapes: Mapping[str, tuple[Dim, ...]],
           props: Mapping[str, frozenset[str]], wrt: str, mode: str, trials: int = 3,
           seed: int = 0) -> Verdict:
    """The derivative ``df`` against finite differences of ``f`` at ``trials`` random points
    where both are finite.

    At each point the differences are taken at two step sizes (and again smaller where those
    disagree); a point where they cannot tell is replaced by another draw. The verdict is
    "mismatch" if any conclusive point disagrees, "ok" if all agree, "inconclusive" if no
    point was conclusive."""
    return _verify_by(lambda values, h: finite_difference(f, values, wrt, mode, h), f, df,
                      shapes, props, trials, seed, "the expression and its derivative",
                      entries=lambda values: np.asarray(values[wrt]).size)


def _verify_by(difference: Callable[[dict, float], np.ndarray], f: Function, df: Function,
               shapes: Mapping[str, tuple[Dim, ...]], props: Mapping[str, frozenset[str]],
               trials: int, seed: int, what: str,
               entries: Callable[[dict], int] | None = None) -> Verdict:
    """``df`` judged against ``difference(values, step)`` at random valid points; with
    ``entries`` (how many differences one point takes), a check that cannot finish in the
    request's time is refused before it starts."""
    rng = np.random.default_rng(seed)
    conclusive: list[tuple[str, float, float]] = []
    doubtful: list[tuple[str, float, float]] = []
    for draw in range(MAX_DRAWS):
        values = draw_point(shapes, props, rng, positive=draw % 2 == 1)
        try:
            d0 = np.asarray(df(**values))
            f0 = np.asarray(f(**values))
            if entries is not None:
                started = time.monotonic()  # the second call: the first plans contractions
                f(**values)
                _affordable(time.monotonic() - started, entries(values), trials)
            if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(d0))):
                continue
            judged = _judge_point(lambda h, values=values: difference(values, h), d0, f0)
        except MatdiffError as err:
            if isinstance(err, budget.LimitError):
                raise
            continue  # singular at this point: draw another
        if judged is None:
            continue
        (conclusive if judged[0] != "inconclusive" else doubtful).append(judged)
        if len(conclusive) == trials:
            break
    return _conclude(conclusive, doubtful, what)


def _conclude(conclusive: list, doubtful: list, what: str) -> Verdict:
    if conclusive:
        verdict = "mismatch" if any(v == "mismatch" for v, _, _ in conclusive) else "ok"
        return Verdict(max(e for _, e, _ in conclusive), verdict,
                       max(r for _, _, r in conclusive))
    if doubtful:
        _, error, resolution = min(doubtful, key=lambda j: j[2])
        return Verdict(error, "inconclusive", resolution)
    raise MatdiffError(f"could not find a point where {what} are finite, so the derivative "
                       "was not checked",
                       hint="declare properties (posdef, positive...) that keep it defined")


def _judge_point(difference: Callable[[float], np.ndarray], d0: np.ndarray,
                 f0: np.ndarray) -> tuple[str, float, float] | None:
    """The verdict at one point, from the largest step whose differences can tell. A
    mismatch counts only once the differences have settled: it shows at two step sizes in a
    row and the differences barely moved between them (large steps on a fast-varying function
    give garbage that may agree with itself)."""
    f_scale = float(np.max(np.abs(f0), initial=0.0))
    judged, before = None, None
    for step in STEPS:
        coarse, fine = difference(step), difference(step / 2)
        if not (np.all(np.isfinite(coarse)) and np.all(np.isfinite(fine))):
            break
        judged = _judge(d0, coarse, fine, f_scale, step / 2)
        if judged[0] == "ok":
            return judged
        if judged[0] == "mismatch" and before is not None and \
                np.max(np.abs(before - fine)) * RELIABLE < np.max(np.abs(d0 - fine)):
            return judged
        before = fine
    if judged is None:
        return None
    return ("inconclusive",) + judged[1:]


def _affordable(seconds_per_call: float, entries: int, trials: int) -> None:
    """Refuse a check that cannot finish in the request's time, before spending it."""
    calls = len(STENCIL) * 2 * entries * trials
    if seconds_per_call * calls > budget.remaining():
        raise budget.LimitError(
            f"checking by finite differences needs about {calls:,} evaluations "
            f"({seconds_per_call * calls:.0f} s), more than the time left", "seconds")
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
                       trials: int = 3, seed: int = 0) -> Verdict:
    """``df`` against differences of ``f`` along ``direction``, judged as :func:`verify`
    judges."""
    return _verify_by(lambda values, h: directional_difference(f, values, wrt, direction, h),
                      f, df, shapes, props, trials, seed, "differences along the direction")
