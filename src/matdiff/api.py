"""The public surface: ``derive`` runs the pipeline and returns a :class:`Result`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from . import budget
from .budget import Limits
from .core import ir
from .core.differentiate import NotDifferentiable, derivative
from .core.ir import PRIMITIVES, Dim, Expr, shape_text
from .core.simplify import simplify
from .errors import MatdiffError, shorten
from .notation.differential import applied_note
from .notation.differential import direction as direction_variable
from .notation.factor import abbreviate
from .notation.names import with_names
from .notation.raising import Raiser, raise_index_form
from .notation.render import LATEX, TEXT, UNICODE, render, renderer
from .notation.sizes import sizes_fixed
from .notation.tree import IndexForm, Sym
from .notation.vecform import VecForm, transposed, vec_form
from .numeric.check import Verdict, verify, verify_directional
from .numeric.codegen import compile_numpy
from .syntax.latex import variable_name
from .syntax.lower import lower
from .syntax.parse import CONSTANTS, FUNCTIONS, parse_typed
from .syntax.types import Decl, declaration_text, parse_declarations, with_stated_sizes

if TYPE_CHECKING:  # the explanations load on first use
    from .explain.entrywise import Entrywise

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
REPR_LENGTH = 80  # characters of the derivative in repr(r): a line, not the IR
STYLES = {"text": TEXT, "latex": LATEX, "unicode": UNICODE}
RESERVED = frozenset(FUNCTIONS + CONSTANTS)

CONVENTION_NOTES = {
    "sym": "{x} is symmetric: this is the gradient on symmetric matrices, sym(G) = (G + G')/2 "
           "of the gradient G that treats all entries of {x} as independent",
    "full": "{x} is {structure}, but this is G, the gradient that treats all entries of {x} "
            "as independent (the default gives the gradient on {structure} matrices)",
    "cookbook": "{x} is symmetric: this is the Matrix Cookbook's G + G' - diag(diag(G)), the "
                "derivatives with respect to each free entry ({x}_ij and {x}_ji moved together)",
    "diagonal": "{x} is diagonal: this is the gradient on diagonal matrices, the diagonal of G",
}


class _Printed:
    """``text`` / ``latex`` / ``unicode``: the three renderings of ``in_style``."""

    def in_style(self, style: str) -> str:
        raise NotImplementedError

    @property
    def text(self) -> str:
        """Matrix notation in the input syntax (``matdiff.parse`` reads it back), repeated
        long parts named in ``where`` bindings (``plain`` has none)."""
        return self.in_style("text")

    @property
    def latex(self) -> str:
        return self.in_style("latex")

    @property
    def unicode(self) -> str:
        return self.in_style("unicode")


@dataclass
class Form(_Printed):
    """An expression matdiff derived, in the input language: ``text`` reads back with the
    same declarations (and ``evaluate`` gives its value), ``latex``, ``unicode``, ``numpy()``."""

    expr: Expr                      # its IR
    variables: dict[str, Decl]      # the expression's variables and the directions
    reading_order: dict[str, int]
    fallback: Callable[[], object] | None = field(default=None, repr=False)  # a notation of
    #                                 the same value, for where expr raises to index notation
    quantities: tuple[Expr, ...] = ()  # whose parts of ``wrts`` may be named (names.py)
    wrts: tuple[str, ...] = ()
    symmetric_of: Expr | None = None   # G, where expr is sym(G) = (G + G')/2
    raiser: Raiser | None = field(default=None, repr=False)  # shared with the Result

    def __post_init__(self):
        if self.raiser is None:
            self.raiser = Raiser(self.reading_order)

    @cached_property
    def notation(self):
        note = self.raiser(self.expr)
        if isinstance(note, IndexForm) and self.fallback is not None:
            return self.fallback() or note
        return note

    @cached_property
    def named_notation(self):
        """The notation with names for repeated parts, where they shorten it (names.py)."""
        taken = set(self.variables) | {"f", "pi", "eye"} | {
            d for v in self.variables.values() for d in v.shape if isinstance(d, str)}
        named = with_names(self.expr, list(self.quantities), self.wrts,
                           self.raiser, taken,
                           self.symmetric_of, self._show_text)
        return self.notation if isinstance(named, IndexForm) else named  # or the fallback

    @cached_property
    def _show_text(self) -> Callable[[object], str]:
        """One text printer for naming's candidates and the text: they share most parts."""
        return renderer(TEXT)

    @property
    def plain(self) -> str:
        """``text`` without ``where`` bindings: every part written out."""
        return self.in_style("text", plain=True)

    def in_style(self, style: str, plain: bool = False) -> str:
        note = self.notation if plain else self.named_notation
        text = self._show_text(note) if style == "text" else render(note, _style(style))
        if style != "text" or isinstance(self.notation, IndexForm) or \
                sizes_fixed(note, self.variables):
            return text
        return with_stated_sizes(text, self.variables, self.expr.shape)

    def numpy(self) -> Callable[..., np.ndarray]:
        """callable(**arrays) -> the value (directions are passed like variables)."""
        return compile_numpy(self.expr, {n: d.shape for n, d in self.variables.items()})

    def __repr__(self) -> str:
        return f"<matdiff.Form {shorten(self.text, REPR_LENGTH)}>"

    def _repr_latex_(self) -> str:
        return f"$${self.latex}$$"

    def _repr_markdown_(self) -> str:
        return f"$${self.latex}$$"


@dataclass
class Result(_Printed):
    """A derivative: ``text``/``latex``/``unicode`` notation, ``shape``, ``numpy()``,
    ``check()``."""

    expr: str
    wrt: str
    order: int
    convention: str | None          # how a symmetric or diagonal wrt was treated, else None
    _derivative: Expr | Callable[[], Expr]  # the IR of the derivative (a function giving it,
    #                   where ``text`` shows the differential: worked out when first asked for)
    function: Expr                  # the IR of the expression, as the checks evaluate it
    variables: dict[str, Decl]
    _first: Expr | None = field(default=None, repr=False)  # one order lower, as the check
    #                                                       differentiates it
    wrts: tuple[str, ...] = ()      # the variable of each derivative taken, in order
    direction: str | None = None    # the direction of a directional derivative
    differential_expr: Expr | Callable[[], Expr] | None = field(default=None, repr=False)
    #                   (a function giving it, where it is worked out when first asked for)
    directions: dict[str, Decl] = field(default_factory=dict)  # dX, dS... (or the direction)
    notes: tuple[str, ...] = ()     # what the derivative assumes (sign's derivative is 0...)
    declared: frozenset[str] = frozenset()  # names declared, used or not: numpy() takes them
    limits: Limits | dict | None = field(default=None, repr=False)  # this result's overrides
    layout: str = "shape"           # how the printed derivative is laid out: LAYOUTS
    unstructured: Expr | None = field(default=None, repr=False)  # G, where this is sym(G)

    @property
    def derivative(self) -> Expr:
        """The IR of the derivative."""
        if callable(self._derivative):
            with budget.request(self.limits):
                self._derivative = self._derivative()
        return self._derivative

    @property
    def _tensor_shape(self) -> tuple[Dim, ...]:
        """The derivative's shape, without working it out where it is not yet."""
        if not callable(self._derivative):
            return self._derivative.shape
        # lazy only without a direction: shape(F) + the shapes of the variables
        return self.function.shape + sum((self.variables[w].shape for w in self.wrts), ())

    def __repr__(self) -> str:
        function = shorten(self.function_text, REPR_LENGTH // 2)
        body = shorten(self.abbreviated("f") or self.text, REPR_LENGTH)
        return f"<matdiff.Result {self._label('text')} of {function}: {body}>"

    def _repr_latex_(self) -> str:
        """The derivative as display math (its differential where it has three or more
        axes), with f = ... first where the derivative names the expression f."""
        short = self.abbreviated("f", "latex")
        lines = [f"f &= {self.function_in('latex')}"] if short else []
        lines.append(f"{self._label('latex')} &= {short or self.latex}")
        return r"$$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$$"

    def _repr_markdown_(self) -> str:
        notes = [f"declared: `{self.declarations}`"] + [
            n for n in (self.convention_note, *self.notes) if n]
        return self._repr_latex_() + "\n\n" + "; ".join(notes)

    def _label(self, style: str) -> str:
        """df/dS, d2f/dx2, d(inv(X)) for a derivative shown as its differential; LaTeX
        with partial-derivative fractions."""
        f = "F" if self.function.ndim else "f"
        if self.shown_as_differential and self.layout == "shape":
            inner = self.function_in(style)
            if len(self.function_text) > 40:
                inner = f
            order = f"^{{{self.order}}}" if self.order > 1 else ""
            return (rf"\mathrm{{d}}{order}\left({inner}\right)" if style == "latex" else
                    f"d{self.order if self.order > 1 else ''}({inner})")
        if style == "latex":
            order = rf"^{{{self.order}}}" if self.order > 1 else ""
            below = r"\,".join(rf"\partial {render(Sym(w), LATEX)}" for w in self.wrts)
            label = rf"\frac{{\partial{order} {f}}}{{{below}}}"
            return label + (rf"\left[{render(Sym(self.direction), LATEX)}\right]"
                            if self.direction else "")
        if len(set(self.wrts)) > 1:
            label = f"d{self.order}{f}/" + "".join(f"d{w}" for w in self.wrts)
        else:
            label = f"d{f}/d{self.wrt}" if self.order == 1 else \
                f"d{self.order}{f}/d{self.wrts[0]}{self.order}"
        return label if self.direction is None else f"{label}[{self.direction}]"

    def entrywise(self, size: int = 3, seed: int = 0) -> Entrywise:
        """The derivative entry by entry: its index form ([df/dS]_ij = df/dS_ij = ...) and, on
        a random instance with every dimension ``size``, central finite differences of each
        partial derivative beside the formula's entries (for a symmetric variable, one table
        per convention). An :class:`~matdiff.explain.entrywise.Entrywise` with ``text``,
        ``latex``, ``markdown`` and ``to_dict()``."""
        from .explain.entrywise import entrywise
        with budget.request(self.limits):
            return entrywise(self, self._with_convention, size, seed)

    def _with_convention(self, symmetric: str) -> Result:
        return derive(self.expr, self.wrt, declare=self.declaration, order=self.order,
                      symmetric=symmetric, limits=self.limits)

    @property
    def declarations(self) -> str:
        """Every variable's type, as assumed or declared, in the ``declare`` syntax (so it can be
        edited and passed back): ``"x: vector(n); Sigma: matrix(n,n); k: scalar"``."""
        return declaration_text(self.variables.values())

    @property
    def shape(self) -> tuple[Dim, ...]:
        """The symbolic shape: shape(F) + shape(X) (twice shape(X) for a Hessian); in the
        numerator and denominator layouts (rows, columns) of the printed matrix."""
        if self.layout == "shape" or not self._tensor_shape:
            return self._tensor_shape
        case, d = self._layout_case, self.derivative
        if case == "gradient":
            shape = d.shape[::-1]
        elif case == "plain":
            shape = d.shape
        else:
            rows = self._row_axes
            shape = (ir.dim_product(*d.shape[:rows]), ir.dim_product(*d.shape[rows:]))
        return shape[::-1] if self.layout == "denominator" and case != "hessian" else shape

    # -- the vec form and layouts --

    @property
    def _row_axes(self) -> int | None:
        """How many leading axes of the tensor are the rows of its matrix: F's, or the first
        variable's for a second derivative; None beyond (higher orders, directions)."""
        if self.direction is not None or self.order > 2:
            return None
        return self.function.ndim if self.order == 1 else len(self.variables[self.wrts[0]].shape)

    @property
    def _layout_case(self) -> str:
        """Which matrix a layout prints: "gradient" (scalar by matrix: G' / G), "plain" (a
        matrix by a scalar, or a scalar: as it is), "hessian" or "vec" (the vec form J)."""
        rows, cols = self._row_axes, len(self._tensor_shape) - self._row_axes
        if self.order == 2:
            return "hessian" if len(set(self.wrts)) == 1 else "vec"
        if rows == 0 and cols == 2:
            return "gradient"
        if cols == 0 and rows == 2 or rows == cols == 0:
            return "plain"
        return "vec"

    @property
    def layout_note(self) -> str:
        return LAYOUT_NOTES[self.layout]

    @cached_property
    def _vec(self) -> VecForm | str:
        if self._row_axes is None:
            return "vec forms are defined for first and second derivatives, not for higher " \
                   "orders or directional derivatives"
        try:
            form = vec_form(self.derivative, lambda: self.notation, self._row_axes,
                            self.reading_order)
            if isinstance(form, VecForm):
                form = dataclasses.replace(form, variables=self._all_variables)
            return form
        except MatdiffError as err:  # the tensor itself has no notation
            return f"no vec form: {err.message}"

    @property
    def vec(self) -> VecForm | None:
        """The matrix J with d vec(F) = J d vec(X) (column-major vec; for a Hessian the
        symmetric H with d2f = vec(dX)'*H*vec(dX)), with ``text``, ``latex``, ``unicode`` and
        ``shape``; None where it has no exact Kronecker form (``vec_reason`` says why)."""
        return self._vec if isinstance(self._vec, VecForm) else None

    @property
    def vec_reason(self) -> str | None:
        """Why there is no vec form, in one line; None where there is one."""
        return self._vec if isinstance(self._vec, str) else None

    @cached_property
    def layout_notation(self):
        """The printed derivative in a numerator or denominator layout."""
        case = self._layout_case
        if case == "gradient":
            note = transposed(self.notation)
        elif case == "plain":
            note = self.notation
        else:
            if self.vec is None:
                raise MatdiffError(f"the {self.layout} layout of this derivative is its vec "
                                   f"form, and it has none: {self.vec_reason}",
                                   hint="use layout='shape'")
            note = self.vec.note
        return transposed(note) if self.layout == "denominator" and case != "hessian" else note

    @cached_property
    def notation(self):
        with budget.request(self.limits):
            return self._raiser(self.derivative)

    @cached_property
    def _raiser(self) -> Raiser:
        """One raiser for the derivative, its differential and the function: they share parts."""
        return Raiser(self.reading_order)

    @cached_property
    def _matrix_form(self) -> bool:
        """Whether the derivative itself raises to matrix notation (a tensor with merged
        axes, of kron or vec, may have neither a matrix nor an index form)."""
        if len(self._tensor_shape) > 2:
            return False  # raised to index notation at best: not raised just to learn that
        try:
            return not isinstance(self.notation, IndexForm)
        except MatdiffError:
            return False

    @cached_property
    def differential(self) -> Form:
        """dF in the direction dX (d2f in dX twice for order 2, dx and dS for mixed): the
        derivative contracted with the directions over the variables' axes."""
        if callable(self.differential_expr):
            with budget.request(self.limits):
                self.differential_expr = self.differential_expr()
        return Form(self.differential_expr, {**self.variables, **self.directions},
                    self.reading_order, self._applied_derivative, raiser=self._raiser)

    def _applied_derivative(self):
        """The derivative's matrix notation applied to the directions (G'*dx, tr(G'*dX)), for
        where the contraction's own index graph has no matrix form."""
        if self.direction is not None or self.convention == "cookbook" or \
                not self._matrix_form:
            return None
        names = list(self.directions) or [f"d{w}" for w in self.wrts]
        if len(names) == 1 and self.order > 1:
            names = names * self.order
        blocks = [(Sym(n), len(self.variables[w].shape)) for n, w in zip(names, self.wrts)]
        return applied_note(self.notation, blocks, self.function.ndim)

    @cached_property
    def steps(self):
        """The derivation as a textbook writes it (:class:`matdiff.explain.steps.Steps`): the
        differential by the engine's rules, its canonical form, the identification; each
        step's ``text`` evaluates with ``matdiff.evaluate(..., wrt=...)``."""
        from .explain.steps import derivation
        with budget.request(self.limits):
            return derivation(self)

    @property
    def declaration(self) -> str:
        """The variables' types as ``declare`` text, with the dimension names the results use
        (so every printed form reads back even where nothing was declared)."""
        return declaration_text(self.variables.values())

    @property
    def shown_as_differential(self) -> bool:
        """Whether ``text`` is the differential: for results of three or more axes, or any
        without a matrix form, the linear map is shown by what it does to dX."""
        return self.direction is None and not self._matrix_form and not \
            isinstance(self.differential.notation, IndexForm)

    @property
    def index(self) -> str:
        """The derivative in index notation, ``D[i,j,k,l] = ...`` (a view, not input)."""
        return render(raise_index_form(self.derivative, self.reading_order), TEXT)

    @property
    def reading_order(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.variables)}

    @property
    def function_text(self) -> str:
        """The expression itself, in the same notation."""
        return self.function_in("text")

    def function_in(self, style: str) -> str:
        """The expression itself in "text", "latex" or "unicode"."""
        return render(self._raiser(self.function), STYLES[style])

    def abbreviated(self, symbol: str = "f", style: str = "text") -> str | None:
        """The derivative with the (scalar) expression itself written as ``symbol``, where it
        appears as a factor (``1/2*f*(...)``); None where it does not."""
        if self.function.ndim or self.is_index_notation or self.shown_as_differential or (
                self.layout != "shape"):
            return None
        with budget.request(self.limits):
            whole = self._raiser(self.function)
            short = abbreviate(self.notation, whole, symbol)
            return None if short is None else render(short, _style(style))

    def differential_abbreviated(self, symbol: str = "f", style: str = "text") -> str | None:
        """The differential with the (scalar) expression written as ``symbol`` where it is a
        factor (``f*(((x - m)'*inv(S)*dx)^2 - dx'*inv(S)*dx)``); None where it is not."""
        if self.function.ndim or isinstance(self.differential.notation, IndexForm):
            return None
        whole = self._raiser(self.function)
        short = abbreviate(self.differential.notation, whole, symbol)
        return None if short is None else render(short, STYLES[style])

    def in_style(self, style: str) -> str:
        """The derivative in "text", "latex" or "unicode" (its differential where it has
        three or more axes)."""
        with budget.request(self.limits):
            if self.layout != "shape":
                return render(self.layout_notation, _style(style))
            if self.shown_as_differential:
                return self.differential.in_style(style)
            return self.form.in_style(style)

    @cached_property
    def form(self) -> Form:
        """The derivative itself as a Form (its parts that are quantities of the function,
        or of the derivative one order lower, may be named)."""
        quantities = (self.function,) + ((self._first,) if self._first is not None else ())
        return Form(self.derivative, self._all_variables, self.reading_order,
                    quantities=quantities, wrts=tuple(self.wrts),
                    symmetric_of=self.unstructured, raiser=self._raiser)

    @property
    def plain(self) -> str:
        """``text`` without ``where`` bindings: every part written out."""
        with budget.request(self.limits):
            if self.shown_as_differential:
                return self.differential.plain
            return self.form.plain

    @property
    def is_index_notation(self) -> bool:
        """Whether ``text`` is index notation (only where not even the differential has a
        matrix form)."""
        return not self._matrix_form and not self.shown_as_differential

    @property
    def convention_note(self) -> str | None:
        if self.convention is None:
            return None
        structured = [w for w in dict.fromkeys(self.wrts) if self.variables[w].props & STRUCTURE]
        notes = []
        for x in structured:
            props = self.variables[x].props
            structure = "diagonal" if "diagonal" in props else "symmetric"
            convention = ("diagonal" if structure == "diagonal" and self.convention != "full"
                          else self.convention)
            notes.append(CONVENTION_NOTES[convention].format(x=x, structure=structure))
        return "; ".join(notes) or None

    def numpy(self) -> Callable[..., np.ndarray]:
        """callable(**arrays) -> the derivative's value (vectors are 1-D arrays). Its shape is
        shape(F) followed by the shape of each wrt in turn (shape(x) + shape(S) for
        wrt=("x", "S")); a directional derivative has shape(F) (order 1) or shape(X). In the
        numerator and denominator layouts it is the printed matrix (2-D; a scalar stays a
        scalar).

        Values are checked against the declarations: a wrong shape, a missing or unknown
        name, a non-finite or non-numeric value, or an array that breaks a declared property
        (a non-symmetric array for a symmetric variable, say) is a MatdiffError; arrays are
        never silently symmetrised."""
        props = {name: d.props for name, d in self._all_variables.items()}
        with budget.request(self.limits):
            tensor = compile_numpy(self.derivative, self._shapes, props, self.declared,
                                   self.limits)
        if self.layout == "shape":
            return tensor
        return self._in_layout(tensor)

    def _in_layout(self, tensor: Callable) -> Callable:
        """``tensor``'s values as the printed matrix of a numerator or denominator layout; for
        NumPy, JAX and PyTorch arrays alike (reshaped column-major by way of the reversed
        axes, which all three have)."""
        case, rows, layout = self._layout_case, self._row_axes, self.layout

        def in_layout(**arrays):
            d = tensor(**arrays)
            if not d.ndim:
                return d
            if case == "gradient":
                m = d.T
            elif case == "plain" and d.ndim == 2:
                m = d
            else:
                n_rows = int(np.prod(d.shape[:rows], dtype=int))
                n_cols = int(np.prod(d.shape[rows:], dtype=int))
                reversed_axes = tuple(range(d.ndim))[::-1]
                flipped = d.permute(*reversed_axes) if hasattr(d, "permute") else \
                    d.transpose(reversed_axes)
                m = flipped.reshape(n_cols, n_rows).T
            return m.T if layout == "denominator" and case != "hessian" else m

        return in_layout

    def compile(self, backend: str = "numpy"):
        """callable(**arrays) -> the derivative's value, as fast code for "numpy", "jax" or
        "torch" (planned and cached per binding of the sizes)."""
        from .numeric.compile import Compiled
        compiled = Compiled([self.derivative], self._shapes, backend, self._name,
                            lambda: self._doc)
        return compiled if self.layout == "shape" else self._in_layout(compiled)

    def source(self, backend: str = "numpy", sizes: dict[str, int] | None = None) -> str:
        """Self-contained Python source of :meth:`compile`'s function (contraction order
        planned for ``sizes``), with the function itself and a ``check_gradient`` helper where
        the derivative is a gradient."""
        from .numeric.compile import Compiled
        from .numeric.emit import gradient_check_source, module_source
        compiled = Compiled([self.derivative], self._shapes, backend, self._name,
                            lambda: self._doc)   # the source is of the shape layout's tensor
        sizes = compiled.bound_sizes(sizes)
        functions, check = [compiled.function(sizes)], ""
        if self.order == 1 and not self.function.ndim and self.convention != "cookbook" \
                and self.direction is None:
            value = Compiled([self.function], self._shapes, backend, "f",
                             lambda: f"f = {self.function_text}")
            functions.append(value.function(sizes))
            props = {n: d.props for n, d in self._all_variables.items()}
            check = gradient_check_source("f", self._name, self.wrt, self._shapes, props,
                                          self.convention, backend)
        return module_source(functions, backend, check)

    @property
    def _name(self) -> str:
        f = "f" if not self.function.ndim else "F"
        name = f"d{self.order if self.order > 1 else ''}{f}_" + "_".join(
            f"d{w}" for w in (self.wrts or (self.wrt,)))
        return name + (f"_{self.direction}" if self.direction else "")

    @property
    def _doc(self) -> str:
        label = self._name.replace("_", "/", 1)
        lines = [f"{label} of f = {self.function_text}", "",
                 f"{label} = {self.abbreviated('f') or self.text}",
                 f"shape {shape_text(self.shape)} (shape(F) + shape(X))"]
        if self.convention_note:
            lines.append(self.convention_note)
        return "\n".join(lines)

    def to_dict(self, check: float | None = None) -> dict:
        """The result as plain data (``--format json`` and the web API's fields); ``check`` is
        a :meth:`check` verdict to include."""
        return {"expr": self.expr, "wrt": self.wrt, "order": self.order,
                "function": self.function_text, "text": self.text,
                "text_with_f": self.abbreviated("f"), "latex": self.latex,
                "unicode": self.unicode, "shape": [str(d) for d in self.shape],
                "layout": self.layout, "vec": self.vec.text if self.vec else None,
                "vec_reason": self.vec_reason, "convention": self.convention,
                "convention_note": self.convention_note, "declared": self.declarations,
                "check_max_relative_error": None if check is None else float(check),
                "check_verdict": getattr(check, "verdict", None),
                "differential": self.differential.text,
                "shown_as_differential": self.shown_as_differential,
                "index": self._index_or_none() if self.shown_as_differential else None,
                "notes": list(self.notes)}

    def _index_or_none(self) -> str | None:
        try:
            return self.index
        except MatdiffError:  # a map without index names (kron, vec)
            return None

    def check(self, trials: int = 3, seed: int = 0) -> Verdict:
        """Max relative error against central finite differences at random valid points (of
        the derivative one order lower, for higher orders): a float that also says
        ``.verdict``, "ok", "mismatch" or "inconclusive" (judged by the differences' own error
        estimate), and ``.resolution``."""
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= 100:
            raise MatdiffError(f"trials must be a whole number from 1 to 100, not {trials!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise MatdiffError(f"seed must be a whole number >= 0, not {seed!r}")
        with budget.request(self.limits):
            lower = self.function if self.order == 1 else self._first
            f = compile_numpy(lower, self._shapes, limits=self.limits)
            df = compile_numpy(self.derivative, self._shapes, limits=self.limits)
            props = {name: d.props for name, d in self._all_variables.items()}
            wrt = self.wrts[-1]
            if self.direction is not None:
                return verify_directional(f, df, self._shapes, props, wrt, self.direction,
                                          trials, seed)
            mode = self.convention if self.variables[wrt].props & STRUCTURE else None
            if self.order > 1 and mode == "full" and "symmetric" in self.variables[wrt].props:
                # the lower derivative was simplified on symmetric matrices and holds only
                # there: the last derivative is checked along symmetric directions, i.e. its
                # symmetric part in the last two axes (which acts on them as it does)
                df = _symmetric_part(df)
                mode = "sym"
            return verify(f, df, self._shapes, props, wrt, mode or "full", trials, seed)

    @property
    def _all_variables(self) -> dict[str, Decl]:
        return {**self.variables, **self.directions}

    @property
    def _shapes(self) -> dict[str, tuple[Dim, ...]]:
        return {name: d.shape for name, d in self._all_variables.items()}


def _symmetric_part(df: Callable) -> Callable:
    def symmetric(**arrays):
        d = np.asarray(df(**arrays))
        return (d + np.swapaxes(d, -1, -2)) / 2
    return symmetric


def _style(style: object):
    if not isinstance(style, str) or style not in STYLES:
        raise MatdiffError(f"unknown style {style!r}", hint="use one of " + ", ".join(STYLES))
    return STYLES[style]


def _typed(text: object, declare: object, syntax: str = "auto") -> tuple:
    """The parsed tree, the variables it uses and the declarations (Python types checked:
    every bad argument is a MatdiffError)."""
    if not isinstance(text, str):
        raise MatdiffError(f"the expression must be text (str), not {type(text).__name__}")
    if declare is not None and not isinstance(declare, (str, dict)):
        raise MatdiffError(f"declare must be text or a dict, not {type(declare).__name__}")
    decls = parse_declarations(declare)
    root, variables = parse_typed(text, decls, syntax)
    return root, variables, decls


def parse(text: str, declare: str | dict | None = None, *,
          limits: Limits | dict | None = None, syntax: str = "auto",
          wrt: str | None = None) -> Expr:
    """The simplified IR of an expression (two texts mean the same when they parse to the
    same node). ``syntax``: "text", "latex" or "auto" (LaTeX if it has a backslash, braces or
    bars). ``wrt``: the variable X that a differential d(u) in the text is taken by, in the
    direction dX (needed where the expression has more than one variable)."""
    with budget.request(limits):
        root, variables, _ = _typed(text, declare, syntax)
        return simplify(lower(root, variables, _wrt_name(wrt)))


def evaluate(text: str, declare: str | dict | None = None, *, syntax: str = "auto",
             wrt: str | None = None, **values) -> np.ndarray:
    """The NumPy value of any expression of the input language (a derivative, a differential
    with its directions dX...), at ``values`` (vectors as 1-D arrays). Dimension sizes come
    from every value passed, declared variables the text does not use included. ``syntax``:
    "text", "latex" or "auto" (LaTeX if it has a backslash, braces or bars). ``wrt``: the
    variable X of a differential d(u) in the text (the values then include its direction
    dX)."""
    with budget.request():
        root, variables, decls = _typed(text, declare, syntax)
        lowered = lower(root, variables, _wrt_name(wrt))
        shapes = {name: d.shape for name, d in variables.items()}
        props = {name: d.props for name, d in variables.items()}
        for node in ir.topological(lowered):  # the direction dX of a d(u)
            if node.op == "var" and node.data[0] not in shapes:
                shapes[node.data[0]], props[node.data[0]] = node.shape, node.data[1]
        for name, decl in decls.items():
            if name not in shapes and name in values and None not in decl.shape:
                shapes[name] = decl.shape  # binds the dimensions its value shows
        # other names are ignored here: a derived text may drop variables its values still
        # carry (Result.numpy() refuses names the expression and declarations lack)
        return compile_numpy(lowered, shapes, props)(**values)


def _wrt_name(wrt: object) -> str | None:
    if wrt is None:
        return None
    if not isinstance(wrt, str):
        raise MatdiffError(f"wrt must be a variable name, not {wrt!r}")
    return variable_name(wrt)


def derive(expr: str, wrt: str | tuple[str, ...], *, declare: str | dict | None = None,
           order: int = 1, symmetric: str = "sym", direction: str | None = None,
           limits: Limits | dict | None = None, layout: str = "shape",
           syntax: str = "auto") -> Result:
    """The derivative of ``expr`` with respect to the variable ``wrt``.

    ``order`` 1 gives the gradient / Jacobian (shape(F) + shape(X)), 2 the Hessian of a scalar,
    3 and more the higher derivatives of a scalar. A tuple ``wrt=("x", "S")`` differentiates by
    each variable in turn (the mixed second derivative, shape(x) + shape(S)). ``direction``
    names a direction V in wrt's space (a variable of its shape, or a new name): the result is
    then the derivative applied to V, dF[V] for order 1, the Hessian applied to V (of wrt's
    shape) for order 2. For a symmetric ``wrt``, ``symmetric`` picks the convention: "sym"
    (default), "full" or "cookbook". ``limits`` overrides :class:`matdiff.Limits` for this
    call and its result. ``syntax``: "text", "latex" or "auto" (LaTeX if it has a backslash,
    braces or bars); ``wrt`` may be spelled as in the input (``Sigma``, ``Σ``, ``\\Sigma``).

    ``layout`` "shape" (default) prints the tensor of shape(F) + shape(X); "numerator" the
    matrix with rows from F and columns from X (the Jacobian J, a gradient as the row G', and
    where F or X is a matrix and the result has three or more axes the vec form J of
    d vec(F) = J d vec(X)); "denominator" its transpose. A Hessian is the same symmetric
    matrix in both. Layouts apply to first and second derivatives without a direction.
    """
    if layout not in LAYOUTS:
        raise MatdiffError(f"unknown layout {layout!r}", hint="use one of " + ", ".join(LAYOUTS))
    with budget.request(limits):
        r = _derive(expr, wrt, declare, order, symmetric, direction, limits, syntax)
        r.layout = layout
        if layout != "shape":
            if r._row_axes is None:
                raise MatdiffError("layouts apply to first and second derivatives without a "
                                   "direction", hint="use layout='shape'")
            r.layout_notation  # noqa: B018 - a layout without a matrix form is refused here
        return r


def _derive(expr, wrt, declare, order, symmetric, direction, limits, syntax) -> Result:
    # spelled as in the input: Σ, \Sigma, \boldsymbol\mu
    wrt = tuple(map(variable_name, wrt)) if isinstance(wrt, (tuple, list)) else variable_name(wrt)
    wrts = _wrts(wrt, order, direction)
    order = len(wrts)
    budget.check("power", order, f"a derivative of order {order}")
    if not isinstance(symmetric, str) or symmetric not in CONVENTIONS:
        raise MatdiffError(f"unknown symmetric convention {symmetric!r}",
                           hint="use one of " + ", ".join(CONVENTIONS))
    root, variables, decls = _typed(expr, declare, syntax)
    for w in wrts:
        if w not in variables:
            shown = ", ".join(list(variables)[:10]) or "no variables"
            more = f" and {len(variables) - 10} more" if len(variables) > 10 else ""
            raise MatdiffError(f"cannot differentiate with respect to {w!r}: the expression "
                               f"uses {shown}{more}", hint="pass one of them as wrt")
    # the expression as written, with wrt's entries independent: what "full" means and what
    # finite differences along single entries see
    plain = {w: Decl(w, variables[w].shape, variables[w].props - STRUCTURE) for w in wrts}
    f = simplify(lower(root, {**variables, **plain}, wrts[0] if len(set(wrts)) == 1 else None))
    xs = {w: ir.var(d.name, d.shape, d.props) for w, d in plain.items()}
    conventions = {w: _convention_of(variables[w], symmetric) for w in xs}
    convention = next((c for c in conventions.values() if c is not None), None)
    if order >= 2 and f.ndim:
        raise MatdiffError(f"order={order} needs a scalar expression",
                           hint="differentiate each entry, or take order=1 for the Jacobian")
    if order >= 2 and "cookbook" in conventions.values():
        raise MatdiffError("the cookbook convention is defined for gradients only",
                           hint="use symmetric='sym' or 'full' for a Hessian")
    declared = {w: ir.var(w, variables[w].shape, variables[w].props) for w in xs}
    restore = {xs[w]: declared[w] for w in xs}
    taken = set(variables)
    if direction is not None:
        v = _direction(direction, declared[wrts[0]], variables, expr)
        directions = [v] * order
    elif isinstance(wrt, str):
        directions = [direction_variable(declared[wrt], taken)] * order
    else:
        directions = []
        for w in wrts:
            directions.append(direction_variable(declared[w],
                                                 taken | {d.data[0] for d in directions}))
    differentiated: list[tuple[Expr, str]] = []  # what was differentiated by what (for notes)

    def d(e: Expr, w: str, along: Expr | None = None) -> Expr:
        differentiated.append((e, w))
        return _differentiate(e, xs[w], expr, along)

    # the differential: the rules applied to the directions (forward mode), of F's shape;
    # a derivative without a direction needs it only when it is shown
    def differential() -> Expr:
        chain = f
        for w, v_ in zip(wrts, directions):
            chain = _differentiate(chain, xs[w], expr, v_)
        return simplify(ir.substitute(chain, restore))

    lead = f.ndim

    def with_conventions(e: Expr, block_variables: tuple[str, ...]) -> Expr:
        start = lead
        for w in block_variables:
            if conventions[w] is not None:
                e = _convention(e, conventions[w], start)
            start += xs[w].ndim
        return e

    def restored(e: Expr) -> Expr:
        """e with the declared variables back: the simplifier then knows their structure
        (S' = S), before a convention adds the transposes that it cancels."""
        return simplify(ir.substitute(e, restore))

    def finished(e: Expr, block_variables: tuple[str, ...]) -> Expr:
        e = with_conventions(restored(e), block_variables)
        _check_size(e)
        return e

    unstructured = None  # G, where the result is sym(G): names.py may print 1/2*(G + G')
    if direction is None:
        derivatives = [f]
        for w in wrts[:-1]:
            derivatives.append(d(derivatives[-1], w))
        first = with_conventions(restored(derivatives[-1]), wrts[:-1])
        # a tensor of three or more axes is shown by its differential, not by itself: then
        # the differential is worked out here and the tensor when something asks for it
        if lead + sum(xs[w].ndim for w in wrts) > 2:
            differentiated.append((derivatives[-1], wrts[-1]))
            last = derivatives[-1]
            result = lambda: finished(_differentiate(last, xs[wrts[-1]], expr),  # noqa: E731
                                      wrts)
            differential_expr = differential()
        else:
            g = restored(d(derivatives[-1], wrts[-1]))
            result = with_conventions(g, wrts)
            _check_size(result)
            if order == 1 and not f.ndim and conventions[wrts[0]] == "sym":
                unstructured = g
            differential_expr = differential
    else:
        differentials = [f]
        for w, v_ in zip(wrts, directions):
            differentials.append(d(differentials[-1], w, v_))
        differential_expr = restored(differentials[-1])
        if order == 1:  # dF[V]
            result, first = differential_expr, restored(f)
            _check_size(result)
        else:           # the gradient of d^(k-1)f[V, ..., V]: the Hessian applied to V for k=2
            result = finished(d(differentials[-2], wrts[0]), wrts[:1])
            first = f if order == 2 else differentials[-3]
            first = finished(d(first, wrts[0]), wrts[:1])
    dirs = {v_.data[0]: Decl(v_.data[0], v_.shape, v_.data[1]) for v_ in directions
            if v_.data[0] not in variables}
    return Result(expr, wrt if isinstance(wrt, str) else tuple(wrt), order, convention,
                  result, f, variables, first, wrts, direction, differential_expr, dirs,
                  _notes(differentiated), frozenset(decls), limits,
                  unstructured=unstructured)


def _wrts(wrt: str | tuple[str, ...], order: object, direction: str | None) -> tuple[str, ...]:
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise MatdiffError(f"order must be a whole number ≥ 1, not {order!r}")
    if isinstance(wrt, str):
        return (wrt,) * order
    wrts = tuple(wrt) if isinstance(wrt, (tuple, list)) else ()
    if not wrts or not all(isinstance(w, str) for w in wrts):
        raise MatdiffError(f"wrt must be a variable name or a tuple of them, not {wrt!r}")
    if order not in (1, len(wrts)):
        raise MatdiffError(f"wrt={wrt!r} is a derivative of order {len(wrts)}, but "
                           f"order={order}", hint="leave order out for a tuple wrt")
    if direction is not None and len(set(wrts)) > 1:
        raise MatdiffError("a direction needs a single wrt variable",
                           hint="pass wrt as one name and order for higher derivatives")
    return wrts


def _direction(name: str, x: Expr, variables: dict[str, Decl], source: str) -> Expr:
    """The direction V: an existing variable of x's shape, or a new one in x's space."""
    if not isinstance(name, str) or not name.isidentifier() or name in RESERVED:
        raise MatdiffError(f"direction must be a variable name, not {name!r}")
    decl = variables.get(name)
    if decl is None:
        return direction_variable(x, set(variables), name)
    if decl.shape != x.shape or name == x.data[0]:
        raise MatdiffError(f"direction {name} has shape {ir.shape_text(decl.shape)}, but "
                           f"{x.data[0]} has shape {ir.shape_text(x.shape)}"
                           if name != x.data[0] else f"direction {name} is the variable itself",
                           hint="name a variable of the same shape, or a new name")
    return ir.var(name, decl.shape, decl.props)


def _notes(differentiated: list[tuple[Expr, str]]) -> tuple[str, ...]:
    """What the derivatives assume: a primitive with a note (sign: derivative 0 where it exists)
    met on the way to a variable."""
    notes = []
    for e, w in differentiated:
        for node in ir.topological(e):
            note = PRIMITIVES[node.op].note if node.op in PRIMITIVES else None
            if note and ir.depends_on(node, w) and note not in notes:
                notes.append(note)
    return tuple(notes)


def _convention_of(decl: Decl, symmetric: str) -> str | None:
    structured = decl.props & STRUCTURE
    if not structured:
        return None
    return "diagonal" if "diagonal" in structured and symmetric != "full" else symmetric


def _differentiate(f: Expr, x: Expr, source: str, direction: Expr | None = None) -> Expr:
    try:
        raw = derivative(f, x, direction)
    except NotDifferentiable as err:
        raise err.at_call(err.function, source) from None
    # distinct nodes undercount the work: a sum of n products of n factors each has few
    # nodes but n^2 links, and simplifying and printing walk every link
    links = sum(len(node.args) for node in ir.topological(raw))
    budget.check("ir_links", links, f"the derivative, {links:,} links between its parts "
                 "before simplifying,")
    d = simplify(raw)
    _check_size(d)
    return d


def _check_size(e: Expr) -> None:
    budget.check("ir_nodes", ir.size(e), "the derivative's number of distinct parts")


def _convention(d: Expr, convention: str, start: int) -> Expr:
    """Apply the symmetric-variable convention to the pair of axes ``start, start + 1``."""
    if convention != "full":
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


def compile(expr: str, wrt: str | tuple[str, ...] | list, *, declare: str | dict | None = None,
            value: bool = False, order: int = 1, direction: str | None = None,
            symmetric: str = "sym", backend: str = "numpy"):
    """One fast function returning several derivatives of ``expr`` at once (and, with
    ``value``, the expression itself first), everything they share computed once.

    ``wrt`` is a variable or a list of them (each as :func:`derive` takes it); ``order`` 2
    gives Hessians, and with ``direction="V"`` Hessian-vector products (V an input of the
    variable's shape; the full Hessian is never formed). Returns ``callable(**arrays)`` giving a
    tuple in the order [value,] *wrt (a single array for one wrt and no value).
    """
    from .numeric.compile import Compiled
    names = list(wrt) if isinstance(wrt, list) else [wrt]
    if not names:
        raise MatdiffError("compile() needs at least one variable to differentiate by",
                           hint="pass wrt='x' or wrt=['x', 'S']")
    results = [derive(expr, w, declare=declare, order=order, direction=direction,
                      symmetric=symmetric) for w in names]
    shapes: dict = {}
    for r in results:
        shapes.update(r._shapes)
    roots, labels = [], []
    if value:
        roots.append(parse(expr, declare))
        labels.append(lambda: f"f = {results[0].function_text}")
    for r in results:
        roots.append(r.derivative)
        labels.append(lambda r=r: f"{r._name.replace('_', '/', 1)}: {r.text}")
    name = "f_and_derivatives" if value else "derivatives"
    return Compiled(roots, shapes, backend, name, lambda: "\n".join(f() for f in labels))

