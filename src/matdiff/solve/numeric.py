"""The numeric fallback, where no closed form is found: the stationary point for given data.

Newton's method on the compiled gradient and Hessian for one vector or scalar unknown (the
Hessian regularised where it is not positive definite), else L-BFGS on the compiled value and
gradient (scipy.optimize's where scipy is installed, the plain two-loop recursion otherwise).
Both use backtracking on the value, so a step out of the objective's domain (a matrix that is
no longer positive definite under logdet) is refused, not taken. Symmetric unknowns move along
the gradient on symmetric matrices, so they stay symmetric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import api
from ..core import ir
from ..errors import MatdiffError
from ..numeric.check import _draw

GTOL = 1e-10        # |gradient| / max(1, |f|) at which a point is stationary
METHODS = ("auto", "newton", "lbfgs")
NEWTON_SIZE = 400   # unknowns up to which Newton forms the Hessian


@dataclass
class NumericSolution:
    """The point found: ``values`` per unknown, ``value`` of the objective there,
    ``converged``, ``iterations``, ``gradient_norm`` (|grad| / max(1, |f|)), ``method``."""

    values: dict[str, np.ndarray]
    value: float
    converged: bool
    iterations: int
    gradient_norm: float
    method: str

    def __str__(self) -> str:
        state = "converged" if self.converged else "did not converge"
        return (f"{self.method}: {state} in {self.iterations} iterations, "
                f"|gradient|/max(1,|f|) = {self.gradient_norm:.1e}, f = {self.value:.12g}")


def minimize(sol, data: dict, *, maximize: bool = False, method: str = "auto", seed: int = 0,
             start: dict | None = None, max_iter: int = 500) -> NumericSolution:
    if sol.multiplier is not None:
        raise MatdiffError("the numeric fallback takes unconstrained problems",
                           hint="write the constraint into the objective (a penalty or a "
                                "parametrisation)")
    if method not in METHODS:
        raise MatdiffError(f"unknown method {method!r}", hint="use one of " + ", ".join(METHODS))
    unknowns = tuple(sol.gradients)       # as the caller named them
    data = dict(data) if data else sol.draw(seed)
    missing = [n for n in sol.variables if n not in unknowns and n not in data]
    if missing:
        raise MatdiffError(f"no value given for {missing[0]}",
                           hint="pass every variable but the unknowns, or none (random data)")
    sizes = _sizes(sol, data)
    rng = np.random.default_rng(seed)
    x0 = {}
    for u in unknowns:
        decl = sol.variables[u]
        if start and u in start:
            x0[u] = np.asarray(start[u], dtype=float)
        else:
            x0[u] = np.asarray(_draw(tuple(ir.dim_size(d, sizes) for d in decl.shape),
                                     decl.props, rng, False), dtype=float)
    shapes = [x0[u].shape for u in unknowns]
    splits = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    sign = -1.0 if maximize else 1.0
    value_and_gradients = _value_and_gradients(sol, unknowns, {**data, **x0})

    def unpack(z: np.ndarray) -> dict[str, np.ndarray]:
        return {u: part.reshape(s) for u, part, s in zip(unknowns, np.split(z, splits), shapes)}

    def fg(z: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            out = value_and_gradients(**data, **unpack(z))
        except MatdiffError:
            return np.inf, np.full_like(z, np.nan)   # outside the objective's domain
        f, *grads = out
        g = np.concatenate([np.ravel(np.asarray(gr, dtype=float)) for gr in grads])
        f = float(f)
        return (sign * f, sign * g) if np.isfinite(f) and np.all(np.isfinite(g)) else (
            np.inf, np.full_like(z, np.nan))

    z0 = np.concatenate([np.ravel(x0[u]) for u in unknowns])
    if method == "auto":
        vector_like = len(unknowns) == 1 and len(shapes[0]) <= 1
        method = "newton" if vector_like and z0.size <= NEWTON_SIZE else "lbfgs"
    if method == "newton":
        if len(unknowns) != 1 or len(shapes[0]) > 1:
            raise MatdiffError("Newton's method here takes one vector or scalar unknown",
                               hint="use method='lbfgs'")
        hessian = api.compile(sol.objective, unknowns[0], declare=sol.declare, order=2)

        def h(z: np.ndarray) -> np.ndarray:
            return sign * np.atleast_2d(np.asarray(hessian(**data, **unpack(z)), dtype=float))

        z, iterations = _newton(fg, h, z0, max_iter)
    else:
        z, iterations, method = _lbfgs(fg, z0, max_iter * 20)
    f, g = fg(z)
    norm = float(np.linalg.norm(g) / max(1.0, abs(f))) if np.isfinite(f) else np.inf
    return NumericSolution(unpack(z), float(sign * f), bool(norm <= GTOL), iterations, norm,
                           method)


def _value_and_gradients(sol, unknowns: tuple[str, ...], point: dict):
    """The compiled value and gradients; matdiff's own evaluation where the compiled code
    lacks a primitive (the matrix power, today)."""
    compiled = api.compile(sol.objective, list(unknowns), declare=sol.declare, value=True)
    try:
        compiled(**point)
        return compiled
    except NotImplementedError:
        pass
    f = api.compile_numpy(api.parse(sol.objective, sol.declare),
                          {n: d.shape for n, d in sol.variables.items()})
    grads = [sol.gradients[u].numpy() for u in unknowns]
    return lambda **arrays: (f(**arrays), *(g(**arrays) for g in grads))


def _sizes(sol, data: dict) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name, decl in sol.variables.items():
        if name in data:
            shape = np.shape(data[name])
            if len(shape) != len(decl.shape):
                raise MatdiffError(f"{name} should have {len(decl.shape)} axes, got an array "
                                   f"of shape {shape}")
            for d, n in zip(decl.shape, shape):
                if isinstance(d, str):
                    sizes.setdefault(d, n)
    return sizes


def _stationary(f: float, g: np.ndarray) -> bool:
    return bool(np.linalg.norm(g) <= GTOL * max(1.0, abs(f)))


def _backtrack(fg, z, f, g, step):
    """The largest t in 1, 1/2, 1/4, ... with sufficient decrease (Armijo) along step."""
    slope = float(g @ step)
    t = 1.0
    for _ in range(60):
        f2, g2 = fg(z + t * step)
        if np.isfinite(f2) and f2 <= f + 1e-4 * t * slope:
            return z + t * step, f2, g2
        t /= 2
    return None


def _newton(fg, h, z, max_iter: int):
    f, g = fg(z)
    if not np.isfinite(f):
        raise MatdiffError("the starting point is outside the objective's domain",
                           hint="pass start={...} inside it")
    for k in range(max_iter):
        if _stationary(f, g):
            return z, k
        hz = h(z)
        hz = (hz + hz.T) / 2
        shift = 0.0
        scale = max(1e-12, float(np.max(np.abs(np.diag(hz)))))
        while True:   # a positive definite Hessian gives a descent direction
            try:
                chol = np.linalg.cholesky(hz + shift * np.eye(len(z)))
                break
            except np.linalg.LinAlgError:
                shift = max(2 * shift, 1e-8 * scale)
        step = -np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        taken = _backtrack(fg, z, f, g, step)
        if taken is None:
            return z, k
        z, f, g = taken
    return z, max_iter


def _lbfgs(fg, z, max_iter: int, memory: int = 10):
    try:
        from scipy.optimize import minimize as scipy_minimize
    except ImportError:
        scipy_minimize = None
    iterations = 0
    method = "L-BFGS (plain)"
    if scipy_minimize is not None:
        def finite(x):
            f, g = fg(x)
            return (f, g) if np.isfinite(f) else (1e300, np.zeros_like(x))
        res = scipy_minimize(finite, z, jac=True, method="L-BFGS-B",
                             options={"maxiter": max_iter, "gtol": 1e-14, "ftol": 1e-16,
                                      "maxcor": memory})
        if np.isfinite(fg(res.x)[0]):
            z, iterations, method = res.x, int(res.nit), "L-BFGS (scipy)"
    # the plain recursion finishes (or does all of) the job to GTOL
    f, g = fg(z)
    ss, ys = [], []
    for k in range(max_iter):
        if _stationary(f, g):
            return z, iterations + k, method
        q = g.copy()
        alphas = []
        for s, y in reversed(list(zip(ss, ys))):
            a = (s @ q) / (y @ s)
            alphas.append(a)
            q -= a * y
        if ss:
            q *= (ss[-1] @ ys[-1]) / (ys[-1] @ ys[-1])
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, y), a in zip(zip(ss, ys), reversed(alphas)):
            q += s * (a - (y @ q) / (y @ s))
        taken = _backtrack(fg, z, f, g, -q)
        if taken is None:
            return z, iterations + k, method
        z2, f2, g2 = taken
        s, y = z2 - z, g2 - g
        if s @ y > 1e-300:
            ss.append(s)
            ys.append(y)
            ss, ys = ss[-memory:], ys[-memory:]
        z, f, g = z2, f2, g2
    return z, iterations + max_iter, method
