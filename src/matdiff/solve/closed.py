"""``solve``: the stationary point of a scalar expression in closed form, with its steps.

The gradient (matdiff.derive) set to zero is an equation in the unknown; algebra.py clears its
inverses, collects the linear terms and solves them. Several unknowns are solved one after
another: first one whose equation involves no other unsolved unknown (the Gaussian's m before
S), the later ones written in terms of the earlier. An equality constraint g = 0 (or
``"simplex"``: vector(1)'*w = 1) adds a multiplier c: the Lagrangian f - c*g is solved for the
unknown in terms of c, then g = 0 for c.
"""

from __future__ import annotations

import numpy as np

from .. import budget
from ..api import derive, parse
from ..core import ir
from ..core.ir import Expr
from ..core.simplify import is_symmetric
from ..errors import MatdiffError
from ..numeric.codegen import compile_numpy
from ..syntax.latex import variable_name
from ..syntax.types import parse_declarations
from . import algebra
from .algebra import Equation, NoClosedForm
from .solution import Solution, as_form, as_text, make_step

NO_CLOSED_FORM = "no closed form found"
SIDES = {"left": "on the left", "right": "on the right", "both": "on both sides"}


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
                reason = reason.replace("{part}", as_text(sol, why.part))
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
    if any(op in constraint for op in "<>!"):
        raise MatdiffError(f"constraint {constraint!r} is not an equation",
                           hint="an equality such as 'sum(w) = 1'; inequalities are not solved")
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
    if not ir.depends_on(g, w):
        raise MatdiffError(f"constraint {constraint!r} does not involve {w}",
                           hint=f"an equation in {w}, such as 'sum({w}) = 1'")
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
        sol.steps.append(make_step(sol, f"the gradient in {u}{of} set to zero (matdiff.derive)",
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
        sol.forms[u] = as_form(sol, solved[u])
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
        what = as_text(sol, move.factor)
        how = {"left": f"multiply on the left by {what}",
               "right": f"multiply on the right by {what}",
               "both": f"multiply on the left and the right by {what}",
               "elementwise": f"multiply entrywise by {what}",
               "scalar": f"multiply by {what}"}[move.side]
        sol.steps.append(make_step(sol, f"{how} (clears its inverse)", new.expr(), None))
        eq = new
    if not algebra.is_affine(eq, x):
        inverted = algebra.invert_function(eq, x)
        if inverted is not None:
            f, eq = inverted
            g = algebra.INVERSE_FUNCTIONS[f]
            sol.steps.append(make_step(sol, f"apply {g} to both sides ({f} is one-to-one)",
                                       eq.expr(), None))
            eq, more = _cleared(sol, eq, x)
            factors += more
    return eq, factors


def _linear(sol: Solution, eq: Equation, x: Expr, known: str = "") -> Expr:
    u = x.data[0]
    linear, constant = algebra.linear_form(eq, x)
    solved = algebra.solve_linear(linear, constant, x)
    sol.steps.append(make_step(sol, f"collect the terms in {u} on one side{known}", solved.lhs,
                           solved.rhs))
    for a in solved.inverted:
        if _singular_on_random_data(sol, a):
            raise NoClosedForm(f"the matrix {{part}} that multiplies {u} is singular on "
                               f"random data: the stationary points are not unique", a)
    if solved.kind == "scalar" and solved.operator.op == "num" and solved.operator.data == 1:
        return solved.solution          # collecting solved it
    if solved.kind == "scalar":
        move = f"divide by {as_text(sol, solved.operator)}"
    elif solved.kind in ("left", "right"):
        a = solved.operator
        facts = []
        if a.op == "sum":
            facts.append("factored")
        if is_symmetric(a):
            facts.append("symmetric")
            kind = algebra.definiteness(a)
            if kind:
                facts.append(kind)
        said = f" ({', '.join(facts)})" if facts else ""
        move = f"multiply {SIDES[solved.kind]} by the inverse of {as_text(sol, a)}{said}"
    else:
        move = "multiply by the inverses on both sides"
    sol.steps.append(make_step(sol, move, x, solved.solution))
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
    sol.steps.append(make_step(sol, f"put {u} into the constraint", constraint, None))
    eq, factors = _cleared(sol, algebra.equation(constraint, c), c)
    value = _linear(sol, eq, c)
    _refuse_singular_multipliers(sol, factors, {sol.multiplier: value})
    final = algebra.simplify(ir.substitute(solved[u], {c: value}))
    sol.steps.append(make_step(sol, f"put {sol.multiplier} into {u}", w, final))
    sol.forms = {u: as_form(sol, final), sol.multiplier: as_form(sol, value)}
    sol.notes.append(f"the constraint is met by the Lagrange multiplier {sol.multiplier} = "
                     f"{as_text(sol, value)}")
