"""A stationary point as matdiff shows it: the closed forms, the steps that led there, their
values on data, and the check that the derived gradient vanishes there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..api import Form, Result, _Printed, _style
from ..core import ir
from ..core.ir import Expr
from ..errors import MatdiffError
from ..notation.render import render
from ..numeric.check import _draw
from ..numeric.codegen import compile_numpy
from ..syntax.types import Decl
from . import algebra


@dataclass
class Step:
    """One move: what was done, and the equation ``lhs = rhs`` after it (IR and text)."""

    move: str
    lhs: Expr
    rhs: Expr
    text: str

    def __str__(self) -> str:
        return f"{self.move}:\n    {self.text}"


@dataclass
class Solution(_Printed):
    """The stationary point: ``text`` / ``latex`` / ``unicode`` (one ``x = ...`` line per
    unknown, in solving order), ``steps``, ``forms`` (each closed form as a Form),
    ``values(**data)`` / ``numpy()``, ``check(seed)``. Where no closed form was found,
    ``closed`` is False, ``reason`` says why, and ``minimize(**data)`` finds the point
    numerically."""

    expr: str
    unknowns: tuple[str, ...]          # in solving order
    declare: str | dict | None
    variables: dict[str, Decl]
    forms: dict[str, Form] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    gradients: dict[str, Result] = field(default_factory=dict)
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    multiplier: str | None = None      # the Lagrange multiplier's name, with a constraint
    objective: str | None = None       # what was made stationary (the Lagrangian, if any)

    @property
    def closed(self) -> bool:
        return self.reason is None

    def in_style(self, style: str) -> str:
        if not self.closed:
            return self.reason
        _style(style)
        return "\n".join(f"{render_name(u, style)} = {self.forms[u].in_style(style)}"
                         for u in self.unknowns)

    def __str__(self) -> str:
        return self.text

    def _require_closed(self) -> None:
        if not self.closed:
            raise MatdiffError(self.reason, hint="solve(...).minimize(**data) finds the "
                               "point numerically")

    def numpy(self) -> Callable[..., dict[str, np.ndarray]]:
        """callable(**data) -> {unknown: value}, each closed form evaluated in solving order
        (a later one sees the earlier values)."""
        self._require_closed()
        shapes = {n: d.shape for n, d in self.variables.items()}
        props = {n: d.props for n, d in self.variables.items() if n not in self.unknowns}
        order = self.unknowns + ((self.multiplier,) if self.multiplier in self.forms else ())
        functions = [(u, compile_numpy(self.forms[u].expr, shapes, props)) for u in order]

        def values(**data) -> dict[str, np.ndarray]:
            known = dict(data)
            out = {}
            for u, f in functions:
                out[u] = known[u] = f(**self.with_sizes(known, (u,)))
            return out

        return values

    def with_sizes(self, data: dict, unknowns) -> dict:
        """data with zero arrays for those unknowns whose sizes it shows: a closed form such
        as X = 0 or matrix(1, n, n) has no data of its own to show its size."""
        sizes = self._sizes(data)
        out = dict(data)
        for u in unknowns:
            shape = self.variables[u].shape
            if u not in out and all(n in sizes for d in shape for n in ir.dim_names(d)):
                out[u] = np.zeros(tuple(ir.dim_size(d, sizes) for d in shape))
        return out

    def _sizes(self, data: dict) -> dict[str, int]:
        """The dimension sizes the data shows (and any passed by name, n=3)."""
        sizes = {name: int(v) for name, v in data.items() if name not in self.variables and
                 isinstance(v, (int, np.integer))}
        for name, decl in self.variables.items():
            if name in data:
                for d, n in zip(decl.shape, np.shape(data[name])):
                    if isinstance(d, str):
                        sizes.setdefault(d, n)
        return sizes

    def values(self, **data) -> dict[str, np.ndarray]:
        return self.numpy()(**data)

    def draw(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Random data for every variable but the unknowns (and the multiplier), respecting
        the declared properties; the unknowns' dimensions get 2 to 4 entries, the others 6 to
        9, so that there are more samples than parameters."""
        rng = np.random.default_rng(seed)
        solved = set(self.unknowns) | {self.multiplier}
        small = {d for u in self.unknowns for d in self.variables[u].shape}
        sizes: dict = {}
        for decl in self.variables.values():
            for d in decl.shape:
                for name in ir.dim_names(d):
                    if name not in sizes:
                        lo, hi = (2, 5) if name in small else (6, 10)
                        sizes[name] = int(rng.integers(lo, hi))
        data = {}
        for name, decl in self.variables.items():
            if name in solved:
                continue
            shape = tuple(ir.dim_size(d, sizes) for d in decl.shape)
            data[name] = _draw(shape, decl.props, rng, False)
        for name in sizes:              # a dimension used as a scalar variable (d in d*log(v))
            if name in self.variables and not self.variables[name].shape:
                data[name] = float(sizes[name])
        bound = self._sizes(data)
        data.update({name: n for name, n in sizes.items() if name not in bound and
                     name not in self.variables})   # sizes only the unknowns have
        return data

    def check(self, seed: int = 0) -> float:
        """The largest relative size of a derived gradient at the solution, on random data:
        |grad| / (the sum of the sizes of its terms), so that 1e-16 is exact cancellation."""
        self._require_closed()
        data = self.draw(seed)
        try:
            point = {**data, **self.values(**data)}
        except MatdiffError:            # the closed form is undefined on this data
            return float("inf")
        worst = 0.0
        for u, r in self.gradients.items():
            shapes = {n: d.shape for n, d in r.variables.items()}
            try:
                g = compile_numpy(r.derivative, shapes)(**point)
            except MatdiffError:        # undefined there (a singular inverse): not stationary
                return float("inf")
            x = ir.var(u, r.variables[u].shape, r.variables[u].props)
            terms = algebra.expand(r.derivative, x)
            scale = sum(abs(float(c)) * np.linalg.norm(compile_numpy(t, shapes)(**point))
                        for c, t in terms)
            worst = max(worst, float(np.linalg.norm(g)) / max(scale, 1e-300))
        return worst

    def minimize(self, maximize: bool = False, method: str = "auto", seed: int = 0,
                 start: dict | None = None, **data):
        """The numeric stationary point from ``data`` (missing variables drawn at random):
        Newton on the compiled gradient and Hessian, or L-BFGS; see :mod:`.numeric`."""
        from .numeric import minimize
        return minimize(self, data, maximize=maximize, method=method, seed=seed, start=start)


def render_name(name: str, style: str) -> str:
    from ..notation.tree import Sym
    return render(Sym(name), _style(style))


def as_form(sol: Solution, e: Expr) -> Form:
    order = {name: k for k, name in enumerate(sol.variables)}
    return Form(e, sol.variables, order)


def as_text(sol: Solution, e: Expr) -> str:
    return as_form(sol, e).plain


def make_step(sol: Solution, move: str, lhs: Expr, rhs: Expr | None) -> Step:
    rhs = rhs if rhs is not None else ir.zero(lhs.shape)
    right = "0" if rhs.op == "zero" else as_text(sol, rhs)
    return Step(move, lhs, rhs, f"{as_text(sol, lhs) if lhs.op != 'zero' else '0'} = {right}")
