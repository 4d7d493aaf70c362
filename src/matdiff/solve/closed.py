"""``solve``: the stationary point of a scalar expression in closed form, with its steps.

The gradient (matdiff.derive) set to zero is an equation in the unknown; algebra.py clears its
inverses, collects the linear terms and solves them. Several unknowns are solved one after
another: first one whose equation involves no other unsolved unknown (the Gaussian's m before
S), the later ones written in terms of the earlier. An equality constraint g = 0 (or
``"simplex"``: vector(1)'*w = 1) adds a multiplier c: the Lagrangian f - c*g is solved for the
unknown in terms of c, then g = 0 for c.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import budget
from ..api import Form, Result, _style, derive, parse
from ..core import ir
from ..core.ir import Expr
from ..errors import MatdiffError
from ..notation.render import render
from ..numeric.check import _draw
from ..numeric.codegen import compile_numpy
from ..syntax.latex import variable_name
from ..syntax.types import Decl, parse_declarations
from . import algebra
from .algebra import Equation, NoClosedForm

NO_CLOSED_FORM = "no closed form found"
SIDES = {"left": "on the left", "right": "on the right", "both": "on both sides"}


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
class Solution:
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

    @property
    def text(self) -> str:
        return self.in_style("text")

    @property
    def latex(self) -> str:
        return self.in_style("latex")

    @property
    def unicode(self) -> str:
        return self.in_style("unicode")

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


def solve(expr: str, wrt: str | tuple[str, ...] | list[str], *,
          declare: str | dict | None = None, constraint: str | None = None,
          limits: budget.Limits | dict | None = None) -> Solution:
    """The stationary point of the scalar ``expr`` in ``wrt`` (a name, or several: "m, S" or
    a tuple), where d(expr)/d(wrt) = 0 has a closed form: a :class:`Solution` with the steps
    and ``check()``. ``constraint``: "simplex" (the unknown vector sums to 1) or an equation
    "lhs = rhs" in the unknown, met by a Lagrange multiplier. Where no closed form is found
    the Solution says why (``reason``) and ``minimize(**data)`` finds the point numerically.
    """
    unknowns = _unknowns(wrt)
    with budget.request(limits):
        objective, declare2, multiplier, g = _lagrangian(expr, unknowns, declare, constraint)
        gradients = {u: derive(objective, u, declare=declare2) for u in unknowns}
        first = gradients[unknowns[0]]
        variables = dict(first.variables)
        if first.function.ndim:
            raise MatdiffError(f"solve needs a scalar expression; this one has shape "
                               f"{ir.shape_text(first.function.shape)}",
                               hint="solve a scalar objective such as norm2(...)^2")
        for r in gradients.values():
            variables.update(r.variables)
        sol = Solution(expr, unknowns, declare2, variables, gradients=gradients,
                       multiplier=multiplier, objective=objective)
        try:
            _solve_all(sol, objective, declare2, g)
        except NoClosedForm as why:
            reason = why.args[0]
            if why.part is not None:
                reason = reason.replace("{part}", _text(sol, why.part))
            sol.reason = f"{NO_CLOSED_FORM}: {reason}"
            sol.forms, sol.unknowns = {}, unknowns
        return sol


def _unknowns(wrt) -> tuple[str, ...]:
    if isinstance(wrt, str):
        names = tuple(w.strip() for w in wrt.split(","))
    elif isinstance(wrt, (tuple, list)) and all(isinstance(w, str) for w in wrt):
        names = tuple(w.strip() for w in wrt)
    else:
        raise MatdiffError(f"wrt must be a variable name or a list of them, not {wrt!r}")
    names = tuple(variable_name(n) for n in names)   # spelled as in the input: Σ, \Sigma
    if not names or not all(n.isidentifier() for n in names):
        raise MatdiffError(f"wrt must name variables, not {wrt!r}", hint="wrt='w' or 'm, S'")
    if len(set(names)) != len(names):
        raise MatdiffError(f"wrt names a variable twice: {wrt!r}")
    return names


def _lagrangian(expr: str, unknowns, declare, constraint):
    """(objective, declarations, multiplier name, constraint IR g with g = 0)."""
    if constraint is None:
        return expr, declare, None, None
    if not isinstance(constraint, str):
        raise MatdiffError(f"constraint must be text, not {type(constraint).__name__}")
    if len(unknowns) != 1:
        raise MatdiffError("a constraint needs a single unknown", hint="wrt='w'")
    (w,) = unknowns
    if constraint.strip() == "simplex":
        lhs, rhs = f"vector(1)'*{w}", "1"
    elif constraint.count("=") == 1:
        lhs, rhs = (side.strip() for side in constraint.split("="))
        if not lhs or not rhs:
            raise MatdiffError(f"constraint {constraint!r} needs both sides of '='")
    else:
        raise MatdiffError(f"unknown constraint {constraint!r}",
                           hint="use 'simplex' or an equation such as 'sum(w) = 1'")
    decls = parse_declarations(declare)
    names = set(decls) | set(_names_in(expr)) | set(_names_in(constraint))
    c = next(n for n in ("c", "c1", "c2", "c3", "mu", "nu") if n not in names)
    g_text = f"{_grouped(lhs)} - {_grouped(rhs)}"
    declared = _with_declaration(declare, c, "scalar")
    objective = f"{_grouped(expr)} - {c}*({g_text})"
    g = parse(g_text, derive(objective, w, declare=declared).declarations)
    if g.ndim:
        raise MatdiffError(f"constraint {constraint!r} is not a scalar equation",
                           hint="one scalar equation such as 'sum(w) = 1'")
    return objective, declared, c, g


def _grouped(text: str) -> str:
    """text in parentheses where it is a sum (so that it can stand in a product)."""
    return f"({text})" if any(op in text.strip().lstrip("-") for op in "+-") else text


def _names_in(text: str) -> list[str]:
    import re
    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)


def _with_declaration(declare, name: str, kind: str):
    """declare plus ``name: kind``."""
    if declare is None:
        return f"{name}: {kind}"
    if isinstance(declare, dict):
        return {**declare, name: kind}
    return f"{declare}; {name}: {kind}"


def _solve_all(sol: Solution, objective: str, declare, g: Expr | None) -> None:
    pending, multipliers = {}, []
    for u in sol.unknowns:
        full = derive(objective, u, declare=declare, symmetric="full")
        x = ir.var(u, full.variables[u].shape, full.variables[u].props)
        of = f" of the Lagrangian {objective}" if sol.multiplier else ""
        sol.steps.append(_step(sol, f"the gradient in {u}{of} set to zero (matdiff.derive)",
                               sol.gradients[u].derivative, None))
        if full.convention is not None:
            sol.notes.append(f"{u} is {'symmetric' if 'symmetric' in x.data[1] else 'diagonal'}"
                             f": solved G = 0 for the gradient G with independent entries; "
                             f"a symmetric solution makes sym(G) = 0 too")
        eq, factors = _cleared(sol, algebra.equation(full.derivative, x), x)
        pending[u] = (x, eq)
        multipliers.extend(factors)
    order, solved = [], {}
    while pending:
        ready = [u for u, (x, eq) in pending.items()
                 if not any(ir.depends_on(eq.expr(), v) for v in pending if v != u)]
        if not ready:
            names = " and ".join(pending)
            raise NoClosedForm(f"the equations for {names} each involve the others")
        u = ready[0]
        x, eq = pending.pop(u)
        known = f" ({', '.join(solved)} known from above)" if solved else ""
        solved[u] = _linear(sol, eq, x, known)
        order.append(u)
    sol.unknowns = tuple(order)
    _refuse_singular_multipliers(sol, multipliers, solved)
    for u in order:
        sol.forms[u] = _form(sol, solved[u])
    if g is not None:
        _fix_multiplier(sol, g, solved)


def _refuse_singular_multipliers(sol: Solution, factors: list[Expr],
                                 solved: dict[str, Expr]) -> None:
    """Multiplying through by a factor that depends on an unknown keeps the solutions only
    where it is invertible: one that the solution makes zero (S*inv(S)*S = S solved by S = 0)
    means the candidate is spurious."""
    unknowns = {ir.var(u, sol.variables[u].shape, sol.variables[u].props): e
                for u, e in solved.items()}
    for factor in factors:
        value = factor
        for _ in solved:             # later solutions are written in the earlier unknowns
            value = ir.substitute(value, unknowns)
        value = algebra.simplify(value)
        if value.op == "zero" or (value.op == "num" and value.data == 0):
            raise NoClosedForm("the only candidate makes {part}, which the equation was "
                               "multiplied by, zero: there is no stationary point", factor)


def _cleared(sol: Solution, eq: Equation, x: Expr) -> tuple[Equation, list[Expr]]:
    """The equation with its inverses cleared, and the factors that depend on an unknown it
    was multiplied by."""
    factors = []
    for move, new in algebra.clear_inverses(eq, x):
        if any(ir.depends_on(move.factor, u) for u in sol.gradients):
            factors.append(move.factor)
        what = _text(sol, move.factor)
        how = {"left": f"multiply on the left by {what}",
               "right": f"multiply on the right by {what}",
               "both": f"multiply on the left and the right by {what}",
               "elementwise": f"multiply entrywise by {what}",
               "scalar": f"multiply by {what}"}[move.side]
        sol.steps.append(_step(sol, f"{how} (clears its inverse)", new.expr(), None))
        eq = new
    return eq, factors


def _linear(sol: Solution, eq: Equation, x: Expr, known: str = "") -> Expr:
    u = x.data[0]
    linear, constant = algebra.linear_form(eq, x)
    solved = algebra.solve_linear(linear, constant, x)
    sol.steps.append(_step(sol, f"collect the terms in {u} on one side{known}", solved.lhs,
                           solved.rhs))
    for a in solved.inverted:
        if _singular_on_random_data(sol, a):
            raise NoClosedForm(f"the matrix {{part}} that multiplies {u} is singular on "
                               f"random data: the stationary points are not unique", a)
    if solved.kind == "scalar" and solved.operator.op == "num" and solved.operator.data == 1:
        return solved.solution          # collecting solved it
    if solved.kind == "scalar":
        move = f"divide by {_text(sol, solved.operator)}"
    elif solved.kind in ("left", "right"):
        a = solved.operator
        facts = []
        if a.op == "sum":
            facts.append("factored")
        from ..core.simplify import is_symmetric
        if is_symmetric(a):
            facts.append("symmetric")
        said = f" ({', '.join(facts)})" if facts else ""
        move = f"multiply {SIDES[solved.kind]} by the inverse of {_text(sol, a)}{said}"
    else:
        move = "multiply by the inverses on both sides"
    sol.steps.append(_step(sol, move, x, solved.solution))
    return solved.solution


def _singular_on_random_data(sol: Solution, a: Expr) -> bool:
    """Whether a matrix of the data alone (X'*X, not one of the unknowns) is numerically
    singular at random data: a rank-deficient normal matrix (an outer product, the ones
    matrix) is so for every draw, a full-rank one for almost none."""
    if any(ir.depends_on(a, u) for u in (*sol.gradients, sol.multiplier) if u):
        return False
    shapes = {n: d.shape for n, d in sol.variables.items()}
    try:
        value = compile_numpy(a, shapes)(**sol.with_sizes(sol.draw(0), sol.gradients))
    except MatdiffError:
        return False                  # not evaluable here: the check will say so
    singular = np.linalg.svd(np.atleast_2d(value), compute_uv=False)
    return bool(singular[-1] <= 1e-10 * max(singular[0], 1e-300))


def _fix_multiplier(sol: Solution, g: Expr, solved: dict[str, Expr]) -> None:
    """Substitute the unknown (in terms of the multiplier c) into g = 0, solve for c, and
    write the unknown without c."""
    (u,) = sol.unknowns
    c = ir.var(sol.multiplier, (), frozenset())
    w = ir.var(u, sol.variables[u].shape, sol.variables[u].props)
    constraint = algebra.simplify(ir.substitute(g, {w: solved[u]}))
    sol.steps.append(_step(sol, f"put {u} into the constraint", constraint, None))
    eq, factors = _cleared(sol, algebra.equation(constraint, c), c)
    value = _linear(sol, eq, c)
    _refuse_singular_multipliers(sol, factors, {sol.multiplier: value})
    final = algebra.simplify(ir.substitute(solved[u], {c: value}))
    sol.steps.append(_step(sol, f"put {sol.multiplier} into {u}", w, final))
    sol.forms = {u: _form(sol, final), sol.multiplier: _form(sol, value)}
    sol.notes.append(f"the constraint is met by the Lagrange multiplier {sol.multiplier} = "
                     f"{_text(sol, value)}")


def _form(sol: Solution, e: Expr) -> Form:
    order = {name: k for k, name in enumerate(sol.variables)}
    return Form(e, sol.variables, order)


def _text(sol: Solution, e: Expr) -> str:
    return _form(sol, e).plain


def _step(sol: Solution, move: str, lhs: Expr, rhs: Expr | None) -> Step:
    rhs = rhs if rhs is not None else ir.zero(lhs.shape)
    right = "0" if rhs.op == "zero" else _text(sol, rhs)
    return Step(move, lhs, rhs, f"{_text(sol, lhs) if lhs.op != 'zero' else '0'} = {right}")
