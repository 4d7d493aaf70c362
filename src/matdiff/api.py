"""The public surface: ``derive`` runs the pipeline and returns a :class:`Result`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import numpy as np

from .core import ir
from .core.differentiate import NotDifferentiable, derivative
from .core.ir import Dim, Expr
from .core.simplify import simplify
from .errors import MatdiffError
from .notation.factor import abbreviate
from .notation.raising import raise_expr
from .notation.render import LATEX, TEXT, UNICODE, render
from .notation.tree import IndexForm
from .numeric.check import verify
from .numeric.codegen import compile_numpy
from .syntax.latex import variable_name
from .syntax.lower import lower
from .syntax.parse import parse_typed
from .syntax.types import Decl, format_declarations

CONVENTIONS = ("sym", "full", "cookbook")
STRUCTURE = frozenset({"symmetric", "posdef", "diagonal"})
MAX_IR_NODES = 50_000
STYLES = {"text": TEXT, "latex": LATEX, "unicode": UNICODE}

CONVENTION_NOTES = {
    "sym": "{x} is symmetric: this is the gradient on symmetric matrices, sym(G) = (G + G')/2 "
           "of the gradient G that treats all entries of {x} as independent",
    "full": "{x} is {structure}, but this is G, the gradient that treats all entries of {x} "
            "as independent (the default gives the gradient on {structure} matrices)",
    "cookbook": "{x} is symmetric: this is the Matrix Cookbook's G + G' - diag(diag(G)), the "
                "derivatives with respect to each free entry (X_ij and X_ji moved together)",
    "diagonal": "{x} is diagonal: this is the gradient on diagonal matrices, the diagonal of G",
}


@dataclass
class Result:
    """A derivative: ``text``/``latex``/``unicode`` notation, ``shape``, ``numpy()``,
    ``check()``."""

    expr: str
    wrt: str
    order: int
    convention: str | None          # how a symmetric or diagonal wrt was treated, else None
    derivative: Expr                # the IR of the derivative
    function: Expr                  # the IR of the expression, as the checks evaluate it
    variables: dict[str, Decl]
    _first: Expr | None = field(default=None, repr=False)  # the gradient, as Hessian checks
    #                                                       evaluate it

    @property
    def declared(self) -> str:
        """Every variable's type, as assumed or declared, in the ``declare`` syntax (so it can be
        edited and passed back): ``"x, mu: vector(n); Sigma: matrix(n,n); k: scalar"``."""
        return format_declarations(self.variables)

    @property
    def shape(self) -> tuple[Dim, ...]:
        """The symbolic shape: shape(F) + shape(X) (twice shape(X) for a Hessian)."""
        return self.derivative.shape

    @cached_property
    def notation(self):
        return raise_expr(self.derivative, self.reading_order)

    @property
    def reading_order(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.variables)}

    @property
    def function_text(self) -> str:
        """The expression itself, in the same notation."""
        return self.function_in("text")

    def function_in(self, style: str) -> str:
        """The expression itself in "text", "latex" or "unicode"."""
        return render(raise_expr(self.function, self.reading_order), STYLES[style])

    def abbreviated(self, symbol: str = "f", style: str = "text") -> str | None:
        """The derivative with the (scalar) expression itself written as ``symbol``, where it
        appears as a factor (``1/2*f*(...)``); None where it does not."""
        if self.function.ndim or self.is_index_notation:
            return None
        whole = raise_expr(self.function, self.reading_order)
        short = abbreviate(self.notation, whole, symbol)
        return None if short is None else render(short, STYLES[style])

    @property
    def text(self) -> str:
        """Matrix notation in the input syntax (``matdiff.parse`` reads it back)."""
        return self.in_style("text")

    @property
    def latex(self) -> str:
        return self.in_style("latex")

    @property
    def unicode(self) -> str:
        return self.in_style("unicode")

    def in_style(self, style: str) -> str:
        """The derivative in "text", "latex" or "unicode"."""
        return render(self.notation, STYLES[style])

    @property
    def is_index_notation(self) -> bool:
        return isinstance(self.notation, IndexForm)

    @property
    def convention_note(self) -> str | None:
        if self.convention is None:
            return None
        props = self.variables[self.wrt].props
        structure = "diagonal" if "diagonal" in props else "symmetric"
        return CONVENTION_NOTES[self.convention].format(x=self.wrt, structure=structure)

    def numpy(self) -> Callable[..., np.ndarray]:
        """callable(**arrays) -> the derivative's value (vectors are 1-D arrays)."""
        return compile_numpy(self.derivative, self._shapes)

    def check(self, trials: int = 3, seed: int = 0) -> float:
        """Max relative error against central finite differences at random valid points."""
        mode = self.convention or "full"
        if self.order == 1:
            f = compile_numpy(self.function, self._shapes)
        else:
            f = compile_numpy(self._first, self._shapes)
        props = {name: d.props for name, d in self.variables.items()}
        return verify(f, self.numpy(), self._shapes, props, self.wrt, mode, trials, seed)

    @property
    def _shapes(self) -> dict[str, tuple[Dim, ...]]:
        return {name: d.shape for name, d in self.variables.items()}


def parse(text: str, declare: str | dict | None = None, *, syntax: str = "auto") -> Expr:
    """The simplified IR of an expression (two texts mean the same when they parse to the
    same node). ``syntax``: "text", "latex" or "auto" (LaTeX if it has a backslash or braces)."""
    root, variables = parse_typed(text, declare, syntax)
    return simplify(lower(root, variables))


def derive(expr: str, wrt: str, *, declare: str | dict | None = None, order: int = 1,
           symmetric: str = "sym", syntax: str = "auto") -> Result:
    """The derivative of ``expr`` with respect to the variable ``wrt``.

    ``order`` 1 gives the gradient / Jacobian (shape(F) + shape(X)), 2 the Hessian of a scalar.
    For a symmetric ``wrt``, ``symmetric`` picks the convention: "sym" (default), "full" or
    "cookbook". ``syntax``: "text", "latex" or "auto" (LaTeX if it has a backslash or braces);
    ``wrt`` may be spelled as in the input (``Sigma``, ``Σ`` or ``\\Sigma``).
    """
    if order not in (1, 2):
        raise MatdiffError(f"order must be 1 or 2, not {order!r}")
    if symmetric not in CONVENTIONS:
        raise MatdiffError(f"unknown symmetric convention {symmetric!r}",
                           hint="use one of " + ", ".join(CONVENTIONS))
    root, variables = parse_typed(expr, declare, syntax)
    wrt = variable_name(wrt)
    if wrt not in variables:
        used = ", ".join(variables) or "no variables"
        raise MatdiffError(f"cannot differentiate with respect to {wrt!r}: the expression "
                           f"uses {used}", hint="pass one of them as wrt")
    decl = variables[wrt]
    structured = decl.props & STRUCTURE
    # the expression as written, with wrt's entries independent: what "full" means and what
    # finite differences along single entries see
    plain = Decl(decl.name, decl.shape, decl.props - STRUCTURE)
    f = simplify(lower(root, {**variables, wrt: plain}))
    x = ir.var(plain.name, plain.shape, plain.props)
    convention = None
    if structured:
        diagonal = "diagonal" in structured and symmetric != "full"
        convention = "diagonal" if diagonal else symmetric
    if order == 2 and f.ndim:
        raise MatdiffError("order=2 (the Hessian) needs a scalar expression",
                           hint="differentiate each entry, or take order=1 for the Jacobian")
    if order == 2 and convention == "cookbook":
        raise MatdiffError("the cookbook convention is defined for gradients only",
                           hint="use symmetric='sym' or 'full' for a Hessian")
    restore = {x: ir.var(decl.name, decl.shape, decl.props)}
    first = _differentiate(f, x, expr)
    result = first
    if order == 2:
        result = _differentiate(first, x, expr)
    if convention is not None:
        result = _convention(result, convention, f.ndim, order)
        first = _convention(first, convention, f.ndim, 1)
    result = simplify(ir.substitute(result, restore))
    _check_size(result)
    return Result(expr, wrt, order, convention, result, f, variables, first)


def _differentiate(f: Expr, x: Expr, source: str) -> Expr:
    try:
        d = simplify(derivative(f, x))
    except NotDifferentiable as err:
        raise err.at_call(err.function, source) from None
    _check_size(d)
    return d


def _check_size(e: Expr) -> None:
    if ir.size(e) > MAX_IR_NODES:
        raise MatdiffError(f"the derivative has more than {MAX_IR_NODES} distinct parts, too "
                           "large to simplify and print", hint="split the expression")


def _convention(d: Expr, convention: str, lead: int, order: int) -> Expr:
    """Apply the symmetric-variable convention to each pair of axes that belongs to wrt."""
    for start in range(lead, lead + 2 * order, 2):
        n = d.ndim
        idx = tuple(range(n))
        swapped = idx[:start] + (idx[start + 1], idx[start]) + idx[start + 2:]
        t = ir.einsum([(d, idx)], swapped)
        diagonal = ir.einsum([(d, idx), (ir.delta(d.shape[start]), (start, start + 1))], idx)
        if convention == "sym":
            d = ir.add([(Fraction(1, 2), d), (Fraction(1, 2), t)])
        elif convention == "cookbook":
            d = ir.add([(1, d), (1, t), (-1, diagonal)])
        elif convention == "diagonal":
            d = diagonal
    return simplify(d)
