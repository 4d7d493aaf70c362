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
from .notation.vecform import VecForm, transposed, vec_form
from .numeric.check import verify
from .numeric.codegen import compile_numpy
from .syntax.lower import lower
from .syntax.parse import parse_typed
from .syntax.types import Decl

CONVENTIONS = ("sym", "full", "cookbook")
LAYOUTS = ("shape", "numerator", "denominator")
LAYOUT_NOTES = {
    "shape": "layout: shape(dF/dX) = shape(F) + shape(X)",
    "numerator": "numerator layout: rows follow F, columns X (J with d vec(F) = J d vec(X); a "
                 "gradient is a row, G')",
    "denominator": "denominator layout: rows follow X, columns F (J', the transpose of the "
                   "numerator layout; a gradient is G)",
}
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
    layout: str = "shape"           # how the derivative is laid out as printed: LAYOUTS

    # -- shapes and layouts --

    @property
    def _row_axes(self) -> int:
        """How many leading axes of the tensor are the rows of its matrix: F's, or X's for a
        Hessian."""
        return self.function.ndim if self.order == 1 else len(self.variables[self.wrt].shape)

    @property
    def _layout_case(self) -> str:
        """Which matrix a layout prints: "gradient" (scalar by matrix: G' / G), "plain" (a
        matrix by a scalar, or a scalar: as it is), "hessian" or "vec" (the vec form J)."""
        rows, cols = self._row_axes, self.derivative.ndim - self._row_axes
        if self.order == 2:
            return "hessian"
        if rows == 0 and cols == 2:
            return "gradient"
        if cols == 0 and rows == 2 or rows == cols == 0:
            return "plain"
        return "vec"

    @property
    def layout_note(self) -> str:
        return LAYOUT_NOTES[self.layout]

    @property
    def shape(self) -> tuple[Dim, ...]:
        """The symbolic shape: shape(F) + shape(X) (twice shape(X) for a Hessian); in the
        numerator and denominator layouts (rows, columns) of the printed matrix."""
        if self.layout == "shape" or not self.derivative.ndim:
            return self.derivative.shape
        case, d = self._layout_case, self.derivative
        if case == "gradient":
            shape = d.shape[::-1]
        elif case == "plain":
            shape = d.shape
        else:
            rows = self._row_axes
            shape = (ir.dim_product(*d.shape[:rows]), ir.dim_product(*d.shape[rows:]))
        return shape[::-1] if self.layout == "denominator" and case != "hessian" else shape

    @cached_property
    def tensor_notation(self):
        """The derivative tensor (shape(F) + shape(X)) in notation, whatever the layout."""
        return raise_expr(self.derivative, self.reading_order)

    @cached_property
    def notation(self):
        """The printed derivative in this result's layout."""
        if self.layout == "shape":
            return self.tensor_notation
        case = self._layout_case
        if case == "gradient":
            note = transposed(self.tensor_notation)
        elif case == "plain":
            note = self.tensor_notation
        else:
            found = self.vec
            if found is None:
                raise MatdiffError(f"the {self.layout} layout of this derivative needs its vec "
                                   f"form, and it has none: {self.vec_reason}",
                                   hint="use layout='shape'")
            note = found.note
        return transposed(note) if self.layout == "denominator" and case != "hessian" else note

    @cached_property
    def _vec(self) -> VecForm | str:
        try:
            return vec_form(self.derivative, lambda: self.tensor_notation, self._row_axes,
                            self.reading_order)
        except MatdiffError as err:  # the tensor itself has no notation
            return f"no vec form: {err.message}"

    @property
    def vec(self) -> VecForm | None:
        """The matrix J with d vec(F) = J d vec(X) (column-major vec), with ``text``,
        ``latex``, ``unicode`` and ``shape``; None where it has no exact Kronecker form
        (``vec_reason`` says why)."""
        return self._vec if isinstance(self._vec, VecForm) else None

    @property
    def vec_reason(self) -> str | None:
        """Why there is no vec form, in one line; None where there is one."""
        return self._vec if isinstance(self._vec, str) else None

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
        """callable(**arrays) -> the derivative's value (vectors are 1-D arrays): the tensor
        of shape(F) + shape(X), or in the numerator and denominator layouts the printed
        matrix (2-D; a scalar stays a scalar)."""
        tensor = compile_numpy(self.derivative, self._shapes)
        if self.layout == "shape":
            return tensor
        case, rows, layout = self._layout_case, self._row_axes, self.layout

        def in_layout(**arrays) -> np.ndarray:
            d = tensor(**arrays)
            if not d.ndim:
                return d
            if case == "gradient":
                m = d.T
            elif case == "plain" and d.ndim == 2:
                m = d
            else:
                r = int(np.prod(d.shape[:rows], dtype=int))
                m = np.reshape(d, (r, -1), order="F")
            return m.T if layout == "denominator" and case != "hessian" else m

        return in_layout

    def check(self, trials: int = 3, seed: int = 0) -> float:
        """Max relative error against central finite differences at random valid points."""
        mode = self.convention or "full"
        if self.order == 1:
            f = compile_numpy(self.function, self._shapes)
        else:
            f = compile_numpy(self._first, self._shapes)
        props = {name: d.props for name, d in self.variables.items()}
        tensor = compile_numpy(self.derivative, self._shapes)
        return verify(f, tensor, self._shapes, props, self.wrt, mode, trials, seed)

    @property
    def _shapes(self) -> dict[str, tuple[Dim, ...]]:
        return {name: d.shape for name, d in self.variables.items()}


def parse(text: str, declare: str | dict | None = None) -> Expr:
    """The simplified IR of an expression (two texts mean the same when they parse to the
    same node)."""
    root, variables = parse_typed(text, declare)
    return simplify(lower(root, variables))


def derive(expr: str, wrt: str, *, declare: str | dict | None = None, order: int = 1,
           symmetric: str = "sym", layout: str = "shape") -> Result:
    """The derivative of ``expr`` with respect to the variable ``wrt``.

    ``order`` 1 gives the gradient / Jacobian (shape(F) + shape(X)), 2 the Hessian of a scalar.
    For a symmetric ``wrt``, ``symmetric`` picks the convention: "sym" (default), "full" or
    "cookbook". ``layout`` "shape" (default) prints the tensor of shape(F) + shape(X);
    "numerator" the matrix with rows from F and columns from X (the Jacobian J, the gradient
    as a row G', the vec form J of d vec(F) = J d vec(X) where F or X is a matrix);
    "denominator" its transpose. A Hessian is the same symmetric matrix in both.
    """
    if layout not in LAYOUTS:
        raise MatdiffError(f"unknown layout {layout!r}", hint="use one of " + ", ".join(LAYOUTS))
    if order not in (1, 2):
        raise MatdiffError(f"order must be 1 or 2, not {order!r}")
    if symmetric not in CONVENTIONS:
        raise MatdiffError(f"unknown symmetric convention {symmetric!r}",
                           hint="use one of " + ", ".join(CONVENTIONS))
    root, variables = parse_typed(expr, declare)
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
    r = Result(expr, wrt, order, convention, result, f, variables, first, layout)
    if layout != "shape":
        r.notation  # noqa: B018 - a layout without a matrix form is refused here, not later
    return r


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
